/* The GPT baseline behind the one model handle (model/model.h): its weights
 * as one f32 buffer over the model code of model/gpt.c, a state that is a
 * KV cache, and the whole-sequence forward the scoring code windows over. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/gpt.h"
#include "model/model.h"

typedef struct gpt_impl {
    gpt_shape sh;
    param_layout lay;
    float *params;
    gpt_train_ctx *fwd; /* the forward's activations, kept for the next call of the same length */
    int fwd_n, fwd_threads;
} gpt_impl;

static void impl_free(void *p) {
    gpt_impl *g = p;
    gpt_train_ctx_free(g->fwd);
    free(g->params);
    free(g->lay.params);
    free(g);
}

rwkv_status model_build_gpt(rwkv_model *m, rwkv_error *err) {
    gpt_impl *g = calloc(1, sizeof *g);
    if (!g) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    m->backend = &gpt_cpu_backend;
    m->impl = g;
    rwkv_status s = gpt_params_from_tensors(&m->weights, 0, &g->sh, &g->lay, &g->params, err);
    if (s != RWKV_OK) return s;
    rwkv_model_info *i = &m->info;
    i->version = "gpt";
    i->dtype = "f32";
    i->n_vocab = g->sh.n_vocab;
    i->n_embd = g->sh.n_embd;
    i->n_layer = g->sh.n_layer;
    i->n_ffn = g->sh.n_ffn;
    i->dim_att = g->sh.n_embd;
    i->n_head = g->sh.n_head;
    i->head_size = g->sh.n_embd / g->sh.n_head;
    i->n_ctx = g->sh.n_ctx;
    i->n_params = (int64_t)g->lay.total;
    i->n_params_pos = (int64_t)g->sh.n_ctx * g->sh.n_embd;
    i->weight_bytes = (int64_t)(g->lay.total * sizeof(float));
    return RWKV_OK;
}

static rwkv_status state_init(rwkv_state *st, rwkv_error *err) {
    const gpt_impl *g = st->model->impl;
    return gpt_kv_cache_new(&g->sh, (gpt_kv_cache **)&st->seq, err);
}

static void state_reset(rwkv_state *st) { gpt_kv_cache_reset(st->seq); }

static void state_release(rwkv_state *st) { gpt_kv_cache_free(st->seq); }

static void state_memory(const rwkv_state *st, size_t *used, size_t *reserved) {
    const gpt_impl *g = st->model->impl;
    *used = 2 * (size_t)g->sh.n_layer * (size_t)gpt_kv_cache_pos(st->seq) * (size_t)g->sh.n_embd * sizeof(float);
    *reserved = gpt_kv_cache_bytes(st->seq);
}

/* One position after the other through the KV cache. */
static rwkv_status eval(rwkv_model *m, rwkv_state *st, const int *tokens, size_t n, float *logits, int all_logits,
                        rwkv_error *err) {
    const gpt_impl *g = m->impl;
    for (size_t i = 0; i < n; i++) {
        float *row = NULL;
        if (logits && all_logits) row = logits + i * (size_t)g->sh.n_vocab;
        else if (logits && i + 1 == n) row = logits;
        rwkv_status s = gpt_decode(st->seq, g->params, tokens[i], row, m->n_threads, err);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}

/* The GPT has no batched decode: each row is decoded in turn through its
 * own KV cache (the same results as rwkv_eval, one row at a time). */
static rwkv_status eval_batch(rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n, float *logits,
                              rwkv_error *err) {
    const gpt_impl *g = m->impl;
    for (size_t i = 0; i < n; i++) {
        float *row = logits ? logits + i * (size_t)g->sh.n_vocab : NULL;
        rwkv_status s = gpt_decode(states[i]->seq, g->params, tokens[i], row, m->n_threads, err);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}

static rwkv_status forward(rwkv_model *m, const int *tokens, size_t n, float *logits, rwkv_error *err) {
    gpt_impl *g = m->impl;
    if (!g->fwd || g->fwd_n != (int)n || g->fwd_threads != m->n_threads) {
        gpt_train_ctx_free(g->fwd);
        g->fwd = NULL;
        rwkv_status s = gpt_train_ctx_new(&g->sh, 1, (int)n, m->n_threads, &g->fwd, err);
        if (s != RWKV_OK) return s;
        g->fwd_n = (int)n;
        g->fwd_threads = m->n_threads;
    }
    return gpt_forward_loss(g->fwd, g->params, tokens, NULL, logits, NULL, err);
}

const model_backend gpt_cpu_backend = {
    .device = "cpu",
    .state_init = state_init,
    .state_reset = state_reset,
    .state_release = state_release,
    .state_memory = state_memory,
    .eval = eval,
    .eval_batch = eval_batch,
    .forward = forward,
    .impl_free = impl_free,
};
