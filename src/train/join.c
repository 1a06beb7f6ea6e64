/* A rank other than 0 of a data-parallel run (train/run.h, docs/multigpu.md).
 * Rank 0 owns the run directory: it creates or resumes the run, writes
 * config.json before it meets the other ranks, and alone writes checkpoints
 * and the log. Any other rank reads the settings and the token file (so
 * across hosts the run directory must be on a file system every host sees),
 * builds the same model shape, and receives the parameters, moments and
 * counters from rank 0, so it needs no checkpoint of its own. */
#include <stdlib.h>
#include <string.h>

#include "core/machine.h"
#include "train/options.h"
#include "train/run.h"

/* The stored settings with this session's device, threads and ranks. */
static rwkv_status read_settings(run *r, const rwkv_train_options *session, rwkv_error *err) {
    char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", r->dir);
    rwkv_status s = train_config_read(path, &r->cfg, err);
    if (s != RWKV_OK) return s;
    r->o = &r->cfg.opt;
    r->arch = train_arch_find(r->cfg.arch);
    if (!r->arch) return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: unknown \"arch\" '%s'", path, r->cfg.arch);
    rwkv_train_options *o = &r->cfg.opt;
    o->device = session->device;
    o->precision = NULL; /* rank 0's, from run_start_engine */
    if (session->threads > 0) o->threads = session->threads;
    if (o->threads == 0) o->threads = machine_cores();
    o->world_size = session->world_size;
    o->rank = session->rank;
    o->rendezvous = session->rendezvous;
    o->allreduce = session->allreduce;
    o->dist_timeout_s = session->dist_timeout_s;
    return train_options_check(o, 0, err);
}

/* The model's layout from the stored sizes; the values come from rank 0. */
static rwkv_status empty_model(run *r, rwkv_error *err) {
    r->shape = run_options_shape(r);
    rwkv_status s = r->arch->shape_check(&r->shape, err);
    if (s == RWKV_OK) s = r->arch->layout(&r->shape, &r->lay, err);
    if (s != RWKV_OK) return s;
    r->have_layout = 1;
    r->params = calloc(r->lay.total + 1, sizeof(float));
    return r->params ? RWKV_OK : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu parameters", r->lay.total);
}

rwkv_status train_join(const char *dir, const rwkv_train_options *session, rwkv_train_callback cb, void *user,
                       rwkv_error *err) {
    if (!dir || !*dir) return rwkv_fail(err, RWKV_ERR_ARG, "the run directory is required");
    run r;
    rwkv_status s = run_init(&r, dir, "--out", err);
    if (s != RWKV_OK) return s;
    r.rank = session->rank;
    r.debug_nan_step = session->debug_nan_step;
    r.measure_peak = 0; /* rank 0 reports the figures */
    train_dist_settings set = run_dist_settings(session);
    s = train_dist_open(&set, train_device_index(session->device), &r.dist, err);
    if (s == RWKV_OK) s = read_settings(&r, session, err);
    if (s == RWKV_OK) s = run_open_data(&r, err);
    if (s == RWKV_OK) s = empty_model(&r, err);
    if (s == RWKV_OK) s = run_start_engine(&r, err);
    if (s == RWKV_OK) s = train_loop(&r, cb, user, NULL, err);
    run_free(&r);
    return s;
}
