#include "model/common.h"

#include "kernels/kernels_heads.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

rwkv_status common_load(tensor_set *set, rwkv_common *c, rwkv_error *err) {
    const tensor *emb = model_tensor(set, "emb.weight", err);
    if (!emb) return RWKV_ERR_SHAPE;
    if (emb->ndim != 2 || emb->shape[0] < 1 || emb->shape[1] < 1 || emb->shape[0] > (1 << 24) ||
        emb->shape[1] > (1 << 16))
        return rwkv_fail(err, RWKV_ERR_SHAPE, "emb.weight must be a [n_vocab, n_embd] matrix of plausible size");
    c->V = (int)emb->shape[0];
    c->C = (int)emb->shape[1];
    if ((c->L = model_layer_count(set)) == 0) return rwkv_fail(err, RWKV_ERR_SHAPE, "no blocks.N.* tensors found");
    const tensor *k = model_tensor(set, "blocks.0.att.key.weight", err);
    const tensor *fk = k ? model_tensor(set, "blocks.0.ffn.key.weight", err) : NULL;
    if (!fk) return RWKV_ERR_SHAPE;
    if (k->ndim != 2 || fk->ndim != 2 || k->shape[0] < 1 || fk->shape[0] < 1 || k->shape[0] > (1 << 16) ||
        fk->shape[0] > (1 << 18))
        return rwkv_fail(err, RWKV_ERR_SHAPE, "att.key / ffn.key weights must be matrices of plausible size");
    c->A = (int)k->shape[0];
    c->F = (int)fk->shape[0];
    LOAD_MAT(c->emb, "emb.weight", c->V, c->C);
    LOAD_MAT(c->head, "head.weight", c->V, c->C);
    LOAD_VEC(c->ln0_w, "blocks.0.ln0.weight", c->C);
    LOAD_VEC(c->ln0_b, "blocks.0.ln0.bias", c->C);
    LOAD_VEC(c->ln_out_w, "ln_out.weight", c->C);
    LOAD_VEC(c->ln_out_b, "ln_out.bias", c->C);
    return RWKV_OK;
}

void common_fill_info(const rwkv_common *c, const char *version, rwkv_model_info *info) {
    info->version = version;
    info->n_vocab = c->V;
    info->n_embd = c->C;
    info->n_layer = c->L;
    info->n_ffn = c->F;
    info->dim_att = c->A;
    info->state_floats = (size_t)c->L * c->layer_state;
}

#define PAR_MIN_FLOATS 16384
int common_par(int T, int n) { return T > 1 && (long)T * n >= PAR_MIN_FLOATS; }

void layernorm_rows(const float *x, const float *w, const float *b, int T, int C, float *z, int nt) {
#pragma omp parallel for schedule(static) num_threads(nt) if (common_par(T, C))
    for (int t = 0; t < T; t++) layernorm(x + (size_t)t * C, w, b, C, LN_EPS, z + (size_t)t * C);
}

void add_rows(float *x, const float *y, int T, int C, int nt) {
#pragma omp parallel for schedule(static) num_threads(nt) if (common_par(T, C))
    for (int t = 0; t < T; t++) {
        float *xt = x + (size_t)t * C;
        const float *yt = y + (size_t)t * C;
#pragma omp simd
        for (int i = 0; i < C; i++) xt[i] += yt[i];
    }
}

void ffn_relu2(const matrix *ffn_k, const matrix *ffn_v, const matrix *ffn_r, const float *xk, const float *xr,
               int T, float *h, float *v, float *r, float *x, int nt) {
    const int F = ffn_k->rows, C = ffn_v->rows;
    matmul(ffn_k, xk, T, h, nt); /* [T][F] */
#pragma omp parallel for schedule(static) num_threads(nt) if (common_par(T, F))
    for (int t = 0; t < T; t++) relu_square(h + (size_t)t * F, (size_t)F);
    matmul(ffn_v, h, T, v, nt); /* [T][C] */
    if (!ffn_r) {
        add_rows(x, v, T, C, nt);
        return;
    }
    matmul(ffn_r, xr, T, r, nt); /* [T][C] */
#pragma omp parallel for schedule(static) num_threads(nt) if (common_par(T, C))
    for (int t = 0; t < T; t++) add_sigmoid_mul(x + (size_t)t * C, r + (size_t)t * C, v + (size_t)t * C, (size_t)C);
}

void shift_delta_rows(const float *z, const float *prev0, int T, int C, float *dz, int nt) {
#pragma omp parallel for schedule(static) num_threads(nt) if (common_par(T, C))
    for (int t = 0; t < T; t++) {
        const float *cur = z + (size_t)t * C, *prev = t ? cur - C : prev0;
        float *d = dz + (size_t)t * C;
#pragma omp simd
        for (int i = 0; i < C; i++) d[i] = prev[i] - cur[i];
    }
}

void group_norm_gate_rows(float *y, const float *g, const float *lnx_w, const float *lnx_b, int H, int N, float eps,
                          int T, int nt) {
    const int A = H * N;
#pragma omp parallel for schedule(static) num_threads(nt) if (common_par(T, A))
    for (int t = 0; t < T; t++) {
        float *yt = y + (size_t)t * A;
        group_norm(yt, lnx_w, lnx_b, H, N, eps, yt);
        if (g) {
            const float *gt = g + (size_t)t * A;
            for (int i = 0; i < A; i++) yt[i] *= gt[i] * sigmoidf(gt[i]);
        }
    }
}

/* One chunk of T tokens: x, z are [T][C]. */
static void eval_chunk(const rwkv_common *c, const void *impl, const model_ops *ops, float *state,
                       const int *tokens, int T, float *logits, int all_logits, float *x, float *z, float *scratch,
                       int nt) {
    for (int t = 0; t < T; t++) matrix_row_f32(&c->emb, tokens[t], x + (size_t)t * c->C);
    layernorm_rows(x, c->ln0_w, c->ln0_b, T, c->C, x, nt);
    for (int l = 0; l < c->L; l++) ops->block(impl, l, state + (size_t)l * c->layer_state, x, z, scratch, T, nt);
    if (!logits) return;
    int first = all_logits ? 0 : T - 1, rows = T - first;
    layernorm_rows(x + (size_t)first * c->C, c->ln_out_w, c->ln_out_b, rows, c->C, z, nt);
    matmul(&c->head, z, rows, logits, nt);
}

rwkv_status common_eval(const rwkv_model *m, float *state, const int *tokens, size_t n, float *logits,
                        int all_logits, rwkv_error *err) {
    const rwkv_common *c = m->impl;
    const void *impl = m->impl;
    const model_ops *ops = m->ops;
    const int nt = m->n_threads;
    int T = n < CHUNK_TOKENS ? (int)n : CHUNK_TOKENS;
    size_t tc = (size_t)T * c->C;
    float *buf = malloc(sizeof(float) * (2 * tc + ops->scratch_floats(impl, T)));
    if (!buf) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for a %d-token scratch", T);
    for (size_t done = 0; done < n; done += (size_t)T) {
        int len = n - done < (size_t)T ? (int)(n - done) : T;
        float *out = NULL;
        if (logits && all_logits) out = logits + done * (size_t)c->V;
        else if (logits && done + (size_t)len == n) out = logits;
        eval_chunk(c, impl, ops, state, tokens + done, len, out, all_logits, buf, buf + tc, buf + 2 * tc, nt);
    }
    free(buf);
    return rwkv_ok(err);
}

void common_state_init(const rwkv_model *m, float *state) {
    const rwkv_common *c = m->impl;
    memset(state, 0, (size_t)c->L * c->layer_state * sizeof(float));
    if (m->ops->state_init) m->ops->state_init(m->impl, state);
}

void common_free(void *impl) {
    rwkv_common *c = impl;
    if (!c) return;
    free(c->layers);
    free(c);
}

rwkv_status reject_keys(const tensor_set *set, const char *const *keys, size_t n_keys, const char *variant,
                        rwkv_error *err) {
    for (int i = 0; i < set->count; i++)
        for (size_t j = 0; j < n_keys; j++)
            if (strstr(set->tensors[i].name, keys[j]))
                return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "tensor '%s' belongs to %s, which is not supported",
                                 set->tensors[i].name, variant);
    return RWKV_OK;
}
