/* The public face of the GPT baseline (include/rwkv_gpt.h): weights plus one
 * KV cache, over the model code of model/gpt.c. */
#include "rwkv_gpt.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/machine.h"
#include "model/gpt.h"

struct rwkv_gpt {
    gpt_shape sh;
    param_layout lay;
    float *params;
    gpt_kv_cache *cache;
    int threads;
    gpt_train_ctx *fwd; /* rwkv_gpt_forward's activations, kept for the next call of the same length */
    int fwd_n, fwd_threads;
};

rwkv_status rwkv_gpt_load(const char *path, rwkv_gpt **out, rwkv_error *err) {
    if (!out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_gpt_load: out is NULL");
    *out = NULL;
    if (!path) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_gpt_load: path is NULL");
    rwkv_gpt *g = calloc(1, sizeof *g);
    if (!g) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    rwkv_status s = gpt_load_model(path, 0, &g->sh, &g->lay, &g->params, err);
    if (s == RWKV_OK) s = gpt_kv_cache_new(&g->sh, &g->cache, err);
    if (s != RWKV_OK) {
        rwkv_gpt_free(g);
        return s;
    }
    g->threads = machine_cores();
    *out = g;
    return rwkv_ok(err);
}

void rwkv_gpt_free(rwkv_gpt *g) {
    if (!g) return;
    gpt_kv_cache_free(g->cache);
    gpt_train_ctx_free(g->fwd);
    free(g->params);
    free(g->lay.params);
    free(g);
}

void rwkv_gpt_get_info(const rwkv_gpt *g, rwkv_gpt_info *info) {
    memset(info, 0, sizeof *info);
    info->n_vocab = g->sh.n_vocab;
    info->n_embd = g->sh.n_embd;
    info->n_layer = g->sh.n_layer;
    info->n_head = g->sh.n_head;
    info->n_ffn = g->sh.n_ffn;
    info->n_ctx = g->sh.n_ctx;
    info->n_params = (int64_t)g->lay.total;
    info->n_params_pos = (int64_t)g->sh.n_ctx * g->sh.n_embd;
}

void rwkv_gpt_set_threads(rwkv_gpt *g, int n_threads) { g->threads = n_threads > 0 ? n_threads : machine_cores(); }

rwkv_status rwkv_gpt_eval(rwkv_gpt *g, int token, float *logits, rwkv_error *err) {
    if (!g) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_gpt_eval: gpt is NULL");
    rwkv_status s = gpt_decode(g->cache, g->params, token, logits, g->threads, err);
    return s == RWKV_OK ? rwkv_ok(err) : s;
}

void rwkv_gpt_reset(rwkv_gpt *g) { gpt_kv_cache_reset(g->cache); }

int rwkv_gpt_pos(const rwkv_gpt *g) { return gpt_kv_cache_pos(g->cache); }

void rwkv_gpt_cache_bytes(const rwkv_gpt *g, size_t *used, size_t *allocated) {
    if (used)
        *used = 2 * (size_t)g->sh.n_layer * (size_t)gpt_kv_cache_pos(g->cache) * (size_t)g->sh.n_embd * sizeof(float);
    if (allocated) *allocated = gpt_kv_cache_bytes(g->cache);
}

rwkv_status rwkv_gpt_forward(rwkv_gpt *g, const int *tokens, size_t n, float *logits, rwkv_error *err) {
    if (!g || !tokens || !logits) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_gpt_forward: null argument");
    if (n < 1 || n > (size_t)g->sh.n_ctx)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_gpt_forward: %zu tokens; the model takes 1 to %d", n,
                         g->sh.n_ctx);
    if (!g->fwd || g->fwd_n != (int)n || g->fwd_threads != g->threads) {
        gpt_train_ctx_free(g->fwd);
        g->fwd = NULL;
        rwkv_status s = gpt_train_ctx_new(&g->sh, 1, (int)n, g->threads, &g->fwd, err);
        if (s != RWKV_OK) return s;
        g->fwd_n = (int)n;
        g->fwd_threads = g->threads;
    }
    rwkv_status s = gpt_forward_loss(g->fwd, g->params, tokens, NULL, logits, NULL, err);
    return s == RWKV_OK ? rwkv_ok(err) : s;
}
