/* `rwkv train` of a new run (include/rwkv_train.h): the run directory, the
 * data (a text is tokenized into DIR/tokens.bin), the fresh model, the stored
 * settings, then the loop (train/trainer.c). */
#include "rwkv_train.h"

#include <stdlib.h>
#include <string.h>

#include "core/machine.h"
#include "train/options.h"
#include "train/run.h"
#include "train/run_files.h"
#include "train/train_log.h"

/* Creates and locks DIR, which must not hold a run yet. */
static rwkv_status claim_dir(run *r, rwkv_error *err) {
    char path[FS_PATH_MAX];
    rwkv_status s = mkdir_p(r->dir, err);
    if (s == RWKV_OK) s = lock_dir(r->dir, &r->lock_fd, err);
    snprintf(path, sizeof path, "%s/config.json", r->dir);
    if (s == RWKV_OK && file_exists(path))
        s = rwkv_fail(err, RWKV_ERR_ARG,
                      "%s: already holds a training run (config.json); continue it with --resume %s or choose "
                      "another --out",
                      r->dir, r->dir);
    if (s == RWKV_OK) ckpt_remove_temps(r->dir);
    return s;
}

/* The paths the config stores (absolute), the architecture, and the token
 * file: a token file is used in place, a text is tokenized into DIR/tokens.bin. */
static rwkv_status prepare_data(run *r, const rwkv_train_options *opt, rwkv_error *err) {
    const int bytes_tok = !opt->tokenizer || strcmp(opt->tokenizer, "bytes") == 0;
    r->cfg.data_path = abs_path(opt->data_path);
    r->cfg.tokenizer = bytes_tok ? strdup("bytes") : abs_path(opt->tokenizer);
    r->cfg.init_path = opt->init_path ? abs_path(opt->init_path) : NULL;
    r->cfg.arch = strdup(opt->arch ? opt->arch : "rwkv4");
    r->arch = train_arch_find(r->cfg.arch);
    r->cfg.device = strdup(opt->device ? opt->device : "cpu");
    r->cfg.precision = strdup(opt->precision ? opt->precision : train_default_precision(opt->device));
    if (!r->cfg.data_path || !r->cfg.tokenizer || !r->cfg.arch || (opt->init_path && !r->cfg.init_path) ||
        !r->cfg.device || !r->cfg.precision)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    r->cfg.opt.device = r->cfg.device;
    r->cfg.opt.precision = r->cfg.precision;
    mapped_file mf;
    rwkv_status s = mapped_file_open(opt->data_path, &mf, err);
    if (s != RWKV_OK) {
        rwkv_error_prefix(err, "--data");
        return s;
    }
    int is_tokens = token_file_detect(mf.data, mf.size);
    mapped_file_close(&mf);
    if (is_tokens) {
        r->cfg.tokens_path = strdup(r->cfg.data_path);
    } else {
        char path[FS_PATH_MAX];
        snprintf(path, sizeof path, "%s/tokens.bin", r->dir);
        s = tokenize_text_file(opt->data_path, r->cfg.tokenizer, path, NULL, NULL, err);
        r->cfg.tokens_path = strdup("tokens.bin");
    }
    if (s == RWKV_OK && !r->cfg.tokens_path) s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    if (s == RWKV_OK) s = run_open_data(r, err);
    return s;
}

/* The fresh model; with --init the model decides the sizes, and its
 * vocabulary must cover the data's. The resolved sizes are stored, so a
 * resume checks against exactly them. */
static rwkv_status fresh_model(run *r, rwkv_error *err) {
    rwkv_train_options *o = &r->cfg.opt;
    r->cfg.n_vocab = r->data.n_vocab;
    if (o->threads == 0) o->threads = machine_cores();
    if (o->const_steps < 0) o->const_steps = lr_default_const_steps(o->steps);
    rwkv_status s = run_fresh_params(r, err);
    if (s == RWKV_OK && r->cfg.init_path) {
        if (r->shape.n_vocab < r->data.n_vocab)
            s = rwkv_fail(err, RWKV_ERR_SHAPE, "%s: vocabulary %d is smaller than the data's %d", r->cfg.init_path,
                          r->shape.n_vocab, r->data.n_vocab);
        else if (r->shape.n_ctx > 0 && r->shape.n_ctx < o->ctx_len)
            s = rwkv_fail(err, RWKV_ERR_SHAPE, "%s: the model has %d positions, fewer than --ctx %d",
                          r->cfg.init_path, r->shape.n_ctx, o->ctx_len);
        r->cfg.n_vocab = r->shape.n_vocab;
        o->n_layer = r->shape.n_layer;
        o->n_embd = r->shape.n_embd;
    }
    if (s == RWKV_OK) {
        o->n_ffn = r->shape.n_ffn;
        o->n_head = r->shape.n_head;
        o->head_size = r->shape.head_size;
    }
    return s;
}

static rwkv_status write_config(run *r, rwkv_error *err) {
    char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", r->dir);
    return train_config_write(path, &r->cfg, err);
}

rwkv_status rwkv_train_run(const rwkv_train_options *opt, rwkv_train_callback cb, void *user, rwkv_error *err) {
    if (!opt) return rwkv_fail(err, RWKV_ERR_ARG, "no options");
    rwkv_status s = train_options_check(opt, 1, err);
    if (s != RWKV_OK) return s;
    if (opt->world_size > 0 && opt->rank > 0) return train_join(opt->out_dir, opt, cb, user, err);
    run r;
    s = run_init(&r, opt->out_dir, "--out", err);
    if (s != RWKV_OK) return s;
    r.cfg.opt = *opt;
    r.o = &r.cfg.opt;
    r.debug_save_pause_ms = opt->debug_save_pause_ms;
    r.debug_nan_step = opt->debug_nan_step;
    r.measure_peak = opt->measure_peak;

    s = claim_dir(&r, err);
    if (s == RWKV_OK) s = prepare_data(&r, opt, err);
    if (s == RWKV_OK) s = fresh_model(&r, err);
    if (s == RWKV_OK) rng_seed(&r.rng, r.o->seed);
    /* the settings, then the log; from here on --resume works. With several
     * GPUs the other ranks read the settings when rank 0 meets them, in
     * run_start_engine, so they are written first. */
    const int dist = r.o->world_size > 0;
    if (s == RWKV_OK && !dist) s = run_start_engine(&r, err);
    if (s == RWKV_OK) s = write_config(&r, err);
    if (s == RWKV_OK && dist) s = run_start_engine(&r, err);
    if (s == RWKV_OK) s = train_log_open(r.dir, "w", &r.log, err);
    if (s == RWKV_OK) s = train_loop(&r, cb, user, NULL, err);
    run_free(&r);
    return s;
}
