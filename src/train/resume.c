/* `rwkv train --resume` (include/rwkv_train.h): the stored settings, the
 * newest complete checkpoint whose weights match its state file, the log cut
 * back to that step, then the loop (train/trainer.c). With no complete
 * checkpoint the run starts over exactly as its first session did. */
#include "rwkv_train.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/machine.h"
#include "train/options.h"
#include "train/run.h"
#include "train/run_files.h"
#include "train/train_log.h"
#include "train/train_state.h"

/* Locks DIR and reads its config.json; the options given here are merged in
 * (a new step count and the non-finite policy are stored for later
 * resumes; a thread count, a device and a precision apply to this session
 * only). */
static rwkv_status open_run(run *r, const rwkv_resume_options *ro, rwkv_error *err) {
    char path[FS_PATH_MAX];
    struct stat st;
    if (stat(r->dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return rwkv_fail(err, RWKV_ERR_IO, "%s: not a directory (--resume expects a run directory)", r->dir);
    rwkv_status s = lock_dir(r->dir, &r->lock_fd, err);
    if (s != RWKV_OK) return s;
    snprintf(path, sizeof path, "%s/config.json", r->dir);
    if (!file_exists(path))
        return rwkv_fail(err, RWKV_ERR_IO, "%s: no config.json here, so this is not a training run directory",
                         r->dir);
    s = train_config_read(path, &r->cfg, err);
    if (s != RWKV_OK) return s;
    r->o = &r->cfg.opt;
    rwkv_train_options *o = &r->cfg.opt;
    r->arch = train_arch_find(r->cfg.arch);
    if (!r->arch)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: unknown \"arch\" '%s' (expected one of %s)", path, r->cfg.arch,
                         train_arch_names());
    int changed = 0;
    if (ro->steps > 0 && ro->steps != o->steps) {
        o->steps = ro->steps;
        changed = 1;
    }
    if (ro->skip_nonfinite >= 0 && ro->skip_nonfinite != o->skip_nonfinite) {
        o->skip_nonfinite = ro->skip_nonfinite;
        changed = 1;
    }
    if (o->threads == 0) o->threads = machine_cores();
    r->debug_save_pause_ms = ro->debug_save_pause_ms;
    r->debug_nan_step = ro->debug_nan_step;
    r->measure_peak = ro->measure_peak;
    s = train_options_check(o, 0, err);
    if (s == RWKV_OK && o->const_steps < 0) o->const_steps = lr_default_const_steps(o->steps);
    if (s == RWKV_OK && changed) s = train_config_write(path, &r->cfg, err);
    if (ro->threads > 0) o->threads = ro->threads;
    if (s == RWKV_OK && (ro->device || ro->precision)) { /* this session only, like the thread count */
        /* another GPU keeps the run's precision; another kind of device takes its default */
        const int same_kind = ro->device && (train_device_index(ro->device) >= 0) == (train_device_index(o->device) >= 0);
        if (ro->device) o->device = ro->device;
        if (ro->precision) o->precision = ro->precision;
        else if (!same_kind) o->precision = train_default_precision(o->device);
        s = train_options_check(o, 0, err);
    }
    if (s == RWKV_OK && (ro->world_size > 0 || ro->allreduce)) { /* this session only, like the device */
        o->world_size = ro->world_size;
        o->rank = ro->rank;
        o->rendezvous = ro->rendezvous;
        o->allreduce = ro->allreduce;
        o->dist_timeout_s = ro->dist_timeout_s;
        s = train_options_check(o, 0, err);
    }
    if (s == RWKV_OK) s = run_open_data(r, err);
    return s;
}

/* Loads checkpoint `step` into the run when it is complete and consistent
 * (state for that step, model of the run's shape, weights hash). */
static rwkv_status try_checkpoint(run *r, long step, rwkv_error *e) {
    char mpath[FS_PATH_MAX], spath[FS_PATH_MAX];
    ckpt_model_path(r->dir, step, mpath, sizeof mpath);
    ckpt_state_path(r->dir, step, spath, sizeof spath);
    train_state ts;
    param_layout lay;
    arch_shape sh = run_options_shape(r);
    float *params = NULL;
    rwkv_status cs = train_state_read(spath, &ts, e);
    if (cs != RWKV_OK) return cs;
    if (ts.step != (uint64_t)step)
        cs = rwkv_fail(e, RWKV_ERR_FORMAT, "%s: holds step %llu", spath, (unsigned long long)ts.step);
    if (cs == RWKV_OK) {
        cs = r->arch->load(mpath, &sh, &lay, &params, e);
        if (cs == RWKV_OK) {
            cs = run_check_shape(r, &sh, mpath, e);
            if (cs == RWKV_OK && (lay.total != ts.n || params_hash(params, lay.total) != ts.params_hash))
                cs = rwkv_fail(e, RWKV_ERR_FORMAT, "%s: does not match %s (weights hash)", mpath, spath);
            if (cs != RWKV_OK) {
                free(params);
                param_layout_free(&lay);
            }
        }
    }
    if (cs != RWKV_OK) {
        train_state_free(&ts);
        return cs;
    }
    r->shape = sh;
    r->lay = lay;
    r->have_layout = 1;
    r->params = params;
    r->m = ts.m;
    r->v = ts.v;
    memcpy(r->rng.s, ts.rng, sizeof ts.rng);
    r->step = (long)ts.step;
    r->samples = ts.samples;
    r->tokens_seen = ts.tokens_seen;
    r->skipped = ts.skipped;
    r->elapsed_before = ts.elapsed_s;
    r->last_val = ts.last_val_loss;
    r->last_saved = r->step;
    return RWKV_OK;
}

/* The newest checkpoint that loads, or a fresh start; `note` says which and
 * what was ignored. Checkpoints newer than the one taken are damaged and
 * deleted: the run rewrites them. *resumed = its step, -1 when none. */
static rwkv_status pick_checkpoint(run *r, char *note, size_t note_size, long *resumed, rwkv_error *err) {
    size_t nl = 0;
    long *steps = NULL;
    int n = ckpt_list(r->dir, &steps, err);
    if (n < 0) return err ? err->code : RWKV_ERR_IO;
    *resumed = -1;
    int first_ok = n;
    for (int i = 0; i < n && *resumed < 0; i++) {
        rwkv_error e;
        if (try_checkpoint(r, steps[i], &e) != RWKV_OK) {
            if (nl < note_size - 1)
                nl += (size_t)snprintf(note + nl, note_size - nl, "ignored checkpoint %ld (%s); ", steps[i],
                                       e.message);
            continue;
        }
        *resumed = steps[i];
        first_ok = i;
    }
    for (int i = 0; i < first_ok && i < n; i++) {
        char p2[FS_PATH_MAX];
        ckpt_state_path(r->dir, steps[i], p2, sizeof p2);
        unlink(p2);
        ckpt_model_path(r->dir, steps[i], p2, sizeof p2);
        unlink(p2);
    }
    free(steps);
    rwkv_status s = RWKV_OK;
    if (*resumed < 0) {
        /* nothing saved yet: start over exactly as the first session did */
        s = run_fresh_params(r, err);
        if (s == RWKV_OK) s = run_check_shape(r, &r->shape, r->cfg.init_path ? r->cfg.init_path : "fresh model", err);
        rng_seed(&r->rng, r->o->seed);
        if (nl < note_size - 1) snprintf(note + nl, note_size - nl, "no complete checkpoint: starting from step 0");
    } else if (nl < note_size - 1) {
        snprintf(note + nl, note_size - nl, "resuming from checkpoint %ld", *resumed);
    }
    return s;
}

/* A rank other than 0: the run's state comes from rank 0 (train/join.c). */
static rwkv_status join_resumed(const char *dir, const rwkv_resume_options *ro, rwkv_train_callback cb, void *user,
                                rwkv_error *err) {
    rwkv_train_options session = rwkv_train_options_default();
    session.device = ro->device ? ro->device : "cuda";
    session.threads = ro->threads;
    session.world_size = ro->world_size;
    session.rank = ro->rank;
    session.rendezvous = ro->rendezvous;
    session.allreduce = ro->allreduce;
    session.dist_timeout_s = ro->dist_timeout_s;
    session.debug_nan_step = ro->debug_nan_step;
    return train_join(dir, &session, cb, user, err);
}

rwkv_status rwkv_train_resume(const char *dir, const rwkv_resume_options *ro, rwkv_train_callback cb, void *user,
                              rwkv_error *err) {
    rwkv_resume_options def = rwkv_resume_options_default();
    if (!ro) ro = &def;
    if (!dir || !*dir) return rwkv_fail(err, RWKV_ERR_ARG, "--resume needs the run directory");
    if (ro->steps < 0) return rwkv_fail(err, RWKV_ERR_ARG, "--steps must be at least 1, got %ld", ro->steps);
    if (ro->threads < 0 || ro->threads > 4096)
        return rwkv_fail(err, RWKV_ERR_ARG, "--threads must be in [0, 4096], got %d", ro->threads);
    if (ro->world_size > 0 && ro->rank > 0) return join_resumed(dir, ro, cb, user, err);
    run r;
    rwkv_status s = run_init(&r, dir, "--resume", err);
    if (s != RWKV_OK) return s;
    s = open_run(&r, ro, err);
    if (s == RWKV_OK) ckpt_remove_temps(dir);
    char note[1024] = "";
    long resumed = -1;
    if (s == RWKV_OK) s = pick_checkpoint(&r, note, sizeof note, &resumed, err);
    if (s == RWKV_OK && resumed > r.o->steps)
        s = rwkv_fail(err, RWKV_ERR_ARG, "--steps %ld is below the step of the checkpoint to resume from (%ld)",
                      r.o->steps, resumed);
    if (s == RWKV_OK) s = run_start_engine(&r, err);
    if (s == RWKV_OK) s = train_log_truncate(dir, resumed < 0 ? 0 : resumed, err);
    if (s == RWKV_OK) s = train_log_open(r.dir, "a", &r.log, err);
    if (s == RWKV_OK) s = train_loop(&r, cb, user, note, err);
    run_free(&r);
    return s;
}

