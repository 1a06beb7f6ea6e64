/* A training session's state (train/run.h): setting it up from the run's
 * settings, handing the model to the engine, checkpoints. */
#include "train/run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/options.h"
#include "train/run_files.h"
#include "train/train_state.h"

rwkv_status run_init(run *r, const char *dir, const char *what, rwkv_error *err) {
    memset(r, 0, sizeof *r);
    r->lock_fd = -1;
    r->last_saved = -1;
    r->last_val = NAN;
    if (snprintf(r->dir, sizeof r->dir, "%s", dir) >= (int)sizeof r->dir)
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: path too long", what);
    return RWKV_OK;
}

void run_free(run *r) {
    if (r->log) fclose(r->log);
    if (r->engine) r->engine->ops->free(r->engine);
    train_dist_free(r->dist); /* after the engine, which uses it */
    free(r->inputs);
    free(r->targets);
    free(r->params);
    free(r->m);
    free(r->v);
    free(r->val_starts);
    if (r->have_layout) param_layout_free(&r->lay);
    token_data_close(&r->data);
    train_config_free(&r->cfg);
    if (r->lock_fd >= 0) close(r->lock_fd);
    memset(r, 0, sizeof *r);
    r->lock_fd = -1;
}

/* The token file a config names: a bare name lives in the run directory. */
static void resolve_tokens_path(const char *dir, const char *tokens, char *buf, size_t size) {
    int n = strchr(tokens, '/') ? snprintf(buf, size, "%s", tokens) : snprintf(buf, size, "%s/%s", dir, tokens);
    if (n < 0 || (size_t)n >= size) buf[0] = '\0'; /* too long: fails to open with a clear name */
}

rwkv_status run_open_data(run *r, rwkv_error *err) {
    char path[FS_PATH_MAX];
    resolve_tokens_path(r->dir, r->cfg.tokens_path, path, sizeof path);
    rwkv_status s = token_data_open(path, &r->data, err);
    if (s != RWKV_OK) return s;
    s = token_data_split(&r->data, r->o->val_fraction, r->o->ctx_len, path, err);
    if (s != RWKV_OK) return s;
    if (r->o->val_fraction > 0) {
        r->n_val = data_val_windows(&r->data, r->o->ctx_len, r->o->val_windows, &r->val_starts);
        if (r->n_val < 0) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    return RWKV_OK;
}

/* (the position table of a transformer is ctx_len rows) */
arch_shape run_options_shape(const run *r) {
    const rwkv_train_options *o = r->o;
    arch_shape sh = {.n_vocab = r->cfg.n_vocab, .n_embd = o->n_embd, .n_layer = o->n_layer, .n_ffn = o->n_ffn,
                     .n_head = o->n_head, .n_ctx = o->ctx_len, .head_size = o->head_size};
    return sh;
}

rwkv_status run_fresh_params(run *r, rwkv_error *err) {
    const rwkv_train_options *o = r->o;
    rwkv_status s;
    r->shape = run_options_shape(r);
    if (r->cfg.init_path) {
        s = r->arch->load(r->cfg.init_path, &r->shape, &r->lay, &r->params, err);
        if (s != RWKV_OK) return s;
        r->have_layout = 1;
        return RWKV_OK;
    }
    s = r->arch->shape_check(&r->shape, err);
    if (s == RWKV_OK) s = r->arch->layout(&r->shape, &r->lay, err);
    if (s != RWKV_OK) return s;
    r->have_layout = 1;
    r->params = malloc(r->lay.total * sizeof(float) + 1);
    if (!r->params) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu parameters", r->lay.total);
    return train_arch_init(r->arch, &r->shape, &r->lay, r->params, o->seed,
                           (float)(o->emb_init > 0 ? o->emb_init : o->lr_init), err);
}

/* (the run's settings hold the resolved sizes: n_ffn and n_head are stored
 * filled in) */
rwkv_status run_check_shape(const run *r, const arch_shape *sh, const char *what, rwkv_error *err) {
    const rwkv_train_options *o = r->o;
    int ffn = o->n_ffn ? o->n_ffn : 4 * o->n_embd;
    if (sh->n_vocab != r->cfg.n_vocab || sh->n_embd != o->n_embd || sh->n_layer != o->n_layer || sh->n_ffn != ffn ||
        (o->n_head > 0 && sh->n_head != o->n_head) || (o->head_size > 0 && sh->head_size != o->head_size))
        return rwkv_fail(err, RWKV_ERR_SHAPE,
                         "%s: model is %d layers x %d (ffn %d, vocab %d, heads %d) but the run is %d x %d (ffn %d, "
                         "vocab %d, heads %d)",
                         what, sh->n_layer, sh->n_embd, sh->n_ffn, sh->n_vocab, sh->n_head, o->n_layer, o->n_embd,
                         ffn, r->cfg.n_vocab, o->n_head);
    if (sh->n_ctx > 0 && sh->n_ctx < o->ctx_len)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "%s: the model has %d positions, fewer than --ctx %d", what, sh->n_ctx,
                         o->ctx_len);
    return RWKV_OK;
}

/* One Adam group per tensor: its LR scale (with --layerwise-lr), weight
 * decay where the layout says (matrices; RWKV-7: not the LoRA factors). */
static adam_group *adam_groups_of(const param_layout *lay, int layerwise_lr) {
    adam_group *groups = calloc((size_t)lay->count + 1, sizeof *groups);
    if (!groups) return NULL;
    for (int i = 0; i < lay->count; i++) {
        const param_info *p = &lay->params[i];
        groups[i].offset = p->offset;
        groups[i].count = p->numel;
        groups[i].lr_scale = layerwise_lr ? p->lr_scale : 1.0f;
        groups[i].decay = p->decay;
    }
    return groups;
}

train_dist_settings run_dist_settings(const rwkv_train_options *o) {
    train_dist_settings d = {o->world_size, o->rank, o->rendezvous, o->allreduce,
                             o->dist_timeout_s > 0 ? o->dist_timeout_s : 600.0};
    return d;
}

int run_writes(const run *r) { return r->rank == 0; }

rwkv_status run_any_rank(run *r, int *flag, rwkv_error *err) {
    if (!r->dist) return RWKV_OK;
    double v = *flag ? 1.0 : 0.0;
    rwkv_status s = train_dist_sum(r->dist, &v, 1, err);
    *flag = v > 0;
    return s;
}

/* What every rank of a data-parallel run takes from rank 0 before the
 * engine starts: the counters of the step resumed from, the session's
 * precision, and the model size as a check. */
typedef struct shared_state {
    int64_t step, last_saved, steps, skip_nonfinite;
    uint64_t rng[4], samples, tokens_seen, skipped, n_params;
    double elapsed_before, last_val;
    int32_t bf16, allreduce_bf16;
} shared_state;

static rwkv_status share_state(run *r, int *bf16, int *allreduce_bf16, rwkv_error *err) {
    rwkv_train_options *o = &r->cfg.opt;
    shared_state st;
    memset(&st, 0, sizeof st);
    st.step = r->step, st.last_saved = r->last_saved, st.steps = o->steps, st.skip_nonfinite = o->skip_nonfinite;
    memcpy(st.rng, r->rng.s, sizeof st.rng);
    st.samples = r->samples, st.tokens_seen = r->tokens_seen, st.skipped = r->skipped, st.n_params = r->lay.total;
    st.elapsed_before = r->elapsed_before, st.last_val = r->last_val;
    st.bf16 = *bf16, st.allreduce_bf16 = *allreduce_bf16;
    rwkv_status s = train_dist_broadcast(r->dist, &st, sizeof st, err);
    if (s != RWKV_OK) return s;
    if (st.n_params != r->lay.total)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "rank %d: the model has %zu parameters, rank 0's %llu", r->rank,
                         r->lay.total, (unsigned long long)st.n_params);
    r->step = (long)st.step, r->last_saved = (long)st.last_saved;
    o->steps = (long)st.steps, o->skip_nonfinite = (int)st.skip_nonfinite;
    memcpy(r->rng.s, st.rng, sizeof st.rng);
    r->samples = st.samples, r->tokens_seen = st.tokens_seen, r->skipped = st.skipped;
    r->elapsed_before = st.elapsed_before, r->last_val = st.last_val;
    *bf16 = st.bf16, *allreduce_bf16 = st.allreduce_bf16;
    o->precision = st.bf16 ? "bf16" : "fp32";
    return RWKV_OK;
}

/* Rank 0 meets the others here (they are waiting at the rendezvous), then
 * every rank takes rank 0's counters and precision. */
static rwkv_status start_ranks(run *r, int *bf16, int *allreduce_bf16, rwkv_error *err) {
    const rwkv_train_options *o = r->o;
    rwkv_status s = RWKV_OK;
    if (!r->dist) {
        train_dist_settings set = run_dist_settings(o);
        s = train_dist_open(&set, train_device_index(o->device), &r->dist, err);
    }
    return s == RWKV_OK ? share_state(r, bf16, allreduce_bf16, err) : s;
}

rwkv_status run_start_engine(run *r, rwkv_error *err) {
    const rwkv_train_options *o = r->o;
    int bf16 = o->precision && strcmp(o->precision, "bf16") == 0;
    int allreduce_bf16 = o->allreduce ? strcmp(o->allreduce, "bf16") == 0 : bf16;
    if (o->world_size > 0) {
        rwkv_status s = start_ranks(r, &bf16, &allreduce_bf16, err);
        if (s != RWKV_OK) return s;
    }
    size_t bt = (size_t)o->batch * (size_t)o->ctx_len;
    r->inputs = malloc(bt * sizeof(int));
    r->targets = malloc(bt * sizeof(int));
    adam_group *groups = adam_groups_of(&r->lay, o->layerwise_lr);
    if (!r->inputs || !r->targets || !groups) {
        free(groups);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu parameters' gradients and moments",
                         r->lay.total);
    }
    r->sched.lr_init = o->lr_init;
    r->sched.lr_final = o->lr_final;
    r->sched.total_steps = o->steps;
    r->sched.const_steps = o->const_steps;
    r->sched.warmup_steps = o->warmup_steps;
    train_engine_config cfg = {
        .arch = r->arch,
        .shape = &r->shape,
        .lay = &r->lay,
        .batch = o->batch,
        .ctx_len = o->ctx_len,
        .val_rem_batch = r->n_val > 0 ? (int)(r->n_val % o->batch) : 0,
        .threads = o->threads,
        .groups = groups,
        .n_groups = r->lay.count,
        .hp = {(float)o->beta1, (float)o->beta2, (float)o->adam_eps, (float)o->weight_decay},
        .l2wrap = (float)o->l2wrap,
        .device_index = train_device_index(o->device),
        .bf16 = bf16,
        .dist = r->dist,
        .allreduce_bf16 = allreduce_bf16,
    };
    /* the engine owns the model state from here on, even when it fails */
    rwkv_status s = cfg.device_index >= 0 ? train_engine_new_cuda(&cfg, r->params, r->m, r->v, &r->engine, err)
                                          : train_engine_new_cpu(&cfg, r->params, r->m, r->v, &r->engine, err);
    r->params = r->m = r->v = NULL;
    free(groups);
    return s;
}

rwkv_status run_save_checkpoint(run *r, double elapsed, const char *model_path, rwkv_error *err) {
    char state_path[FS_PATH_MAX];
    ckpt_state_path(r->dir, r->step, state_path, sizeof state_path);
    const float *params, *m, *v;
    rwkv_status s = r->engine->ops->export_state(r->engine, &params, &m, &v, err);
    if (s == RWKV_OK && !run_writes(r)) {
        r->last_saved = r->step;
        return RWKV_OK;
    }
    /* model first, then the state that completes the checkpoint */
    if (s == RWKV_OK) s = r->arch->save(model_path, &r->shape, &r->lay, params, err);
    if (s != RWKV_OK) return s;
    train_state st;
    memset(&st, 0, sizeof st);
    st.step = (uint64_t)r->step;
    memcpy(st.rng, r->rng.s, sizeof st.rng);
    st.samples = r->samples;
    st.tokens_seen = r->tokens_seen;
    st.skipped = r->skipped;
    st.elapsed_s = elapsed;
    st.last_val_loss = r->last_val;
    st.params_hash = params_hash(params, r->lay.total);
    st.n = r->lay.total;
    st.m = (float *)m;
    st.v = (float *)v;
    s = train_state_write(state_path, &st, r->debug_save_pause_ms, err);
    if (s != RWKV_OK) return s;
    r->last_saved = r->step;
    ckpt_prune(r->dir, r->o->keep_checkpoints);
    return RWKV_OK;
}
