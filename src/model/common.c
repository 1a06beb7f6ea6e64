#include "model/common.h"

#include "kernels/kernels.h"

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
    /* the embedding is only ever read a row at a time: never packed */
    rwkv_status s = model_matrix(set, "emb.weight", c->V, c->C, &c->emb, err);
    if (s != RWKV_OK) return s;
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

/* The row loops below run each row on one thread through parallel_rows
 * (kernels/pool.c); `rows_args` carries a loop's operands to its row function. */
typedef struct rows_args {
    const float *x, *w, *b;
    shift_src prev;
    float *y, *z;
    int n, n2, H, N;
    float eps;
} rows_args;

static void layernorm_row(void *p, int t) {
    const rows_args *a = p;
    layernorm(a->x + (size_t)t * a->n, a->w, a->b, a->n, LN_EPS, a->y + (size_t)t * a->n);
}

void layernorm_rows(const float *x, const float *w, const float *b, int T, int C, float *z, int nt) {
    rows_args a = {.x = x, .w = w, .b = b, .y = z, .n = C};
    parallel_rows(nt, T, (size_t)C, layernorm_row, &a);
}

static void add_row(void *p, int t) {
    const rows_args *a = p;
    float *xt = a->y + (size_t)t * a->n;
    const float *yt = a->x + (size_t)t * a->n;
#pragma omp simd
    for (int i = 0; i < a->n; i++) xt[i] += yt[i];
}

void add_rows(float *x, const float *y, int T, int C, int nt) {
    rows_args a = {.x = y, .y = x, .n = C};
    parallel_rows(nt, T, (size_t)C, add_row, &a);
}

static void relu_square_row(void *p, int t) {
    const rows_args *a = p;
    relu_square(a->y + (size_t)t * a->n, (size_t)a->n);
}

static void add_sigmoid_mul_row(void *p, int t) {
    const rows_args *a = p; /* y += sigmoid(r = x) * (v = w) */
    add_sigmoid_mul(a->y + (size_t)t * a->n, a->x + (size_t)t * a->n, a->w + (size_t)t * a->n, (size_t)a->n);
}

void ffn_relu2(const block_states *st, const matrix *ffn_k, const matrix *ffn_v, const matrix *ffn_r, const float *xk,
               const float *xr, int T, float *h, float *v, float *r, float *x, int nt) {
    const int F = ffn_k->rows, C = ffn_v->rows;
    /* h = Wk xk [T][F] and r = Wr xr [T][C] in one job */
    const matrix *W[] = {ffn_k, ffn_r};
    const float *X[] = {xk, xr};
    float *const Y[] = {h, r};
    block_matmul_group(st, ffn_r ? 2 : 1, W, X, T, Y, nt);
    rows_args hk = {.y = h, .n = F};
    parallel_rows(nt, T, (size_t)F, relu_square_row, &hk);
    block_matmul(st, ffn_v, h, T, v, nt); /* [T][C] */
    if (!ffn_r) {
        add_rows(x, v, T, C, nt);
        return;
    }
    rows_args gate = {.x = r, .w = v, .y = x, .n = C};
    parallel_rows(nt, T, (size_t)C, add_sigmoid_mul_row, &gate);
}

/* z[t-1] of row t (see shift_src). */
static const float *prev_row(shift_src prev, const float *z, int t, int C) {
    if (prev.st->batched || t == 0) return row_state(prev.st, t) + prev.off;
    return z + (size_t)(t - 1) * C;
}

void shift_save(shift_src prev, const float *z, int T, int C) {
    if (!prev.st->batched) {
        memcpy(prev.st->layer[0] + prev.off, z + (size_t)(T - 1) * C, sizeof(float) * C);
        return;
    }
    for (int t = 0; t < T; t++) memcpy(prev.st->layer[t] + prev.off, z + (size_t)t * C, sizeof(float) * C);
}

static void shift_delta_row(void *p, int t) {
    const rows_args *a = p;
    const int C = a->n;
    const float *cur = a->x + (size_t)t * C, *prev = prev_row(a->prev, a->x, t, C);
    float *d = a->y + (size_t)t * C;
#pragma omp simd
    for (int i = 0; i < C; i++) d[i] = prev[i] - cur[i];
}

void shift_delta_rows(const float *z, shift_src prev, int T, int C, float *dz, int nt) {
    rows_args a = {.x = z, .prev = prev, .y = dz, .n = C};
    parallel_rows(nt, T, (size_t)C, shift_delta_row, &a);
}

/* Token shift, docs §1.2: the n_mix outputs of one row from z[t] and z[t-1]. */
typedef struct mix_args {
    const float *z;
    shift_src prev;
    int C, n_mix;
    const float *const *mu;
    float *const *out;
} mix_args;

static void shift_mix_row(void *p, int t) {
    const mix_args *a = p;
    const float *cur = a->z + (size_t)t * a->C, *prev = prev_row(a->prev, a->z, t, a->C);
    for (int m = 0; m < a->n_mix; m++) token_mix(cur, prev, a->mu[m], a->C, a->out[m] + (size_t)t * a->C);
}

void shift_mix_rows(const float *z, shift_src prev, int T, int C, int n_mix, const float *const *mu,
                    float *const *out, int nt) {
    mix_args a = {z, prev, C, n_mix, mu, out};
    parallel_rows(nt, T, (size_t)C * (size_t)(n_mix + 1), shift_mix_row, &a);
}

static void shift_lerp_row(void *p, int t) {
    const mix_args *a = p;
    const int C = a->C;
    const float *cur = a->z + (size_t)t * C, *prev = prev_row(a->prev, a->z, t, C);
    for (int m = 0; m < a->n_mix; m++) {
        const float *mu = a->mu[m];
        float *out = a->out[m] + (size_t)t * C;
#pragma omp simd
        for (int i = 0; i < C; i++) out[i] = cur[i] + (prev[i] - cur[i]) * mu[i];
    }
}

void shift_lerp_rows(const float *z, shift_src prev, int T, int C, int n_mix, const float *const *mu,
                     float *const *out, int nt) {
    mix_args a = {z, prev, C, n_mix, mu, out};
    parallel_rows(nt, T, (size_t)C * (size_t)(n_mix + 1), shift_lerp_row, &a);
}

static void group_norm_gate_row(void *p, int t) {
    const rows_args *a = p;
    const int A = a->H * a->N;
    float *yt = a->y + (size_t)t * A;
    group_norm(yt, a->w, a->b, a->H, a->N, a->eps, yt);
    if (a->x) {
        const float *gt = a->x + (size_t)t * A;
        for (int i = 0; i < A; i++) yt[i] *= gt[i] * sigmoidf(gt[i]);
    }
}

void group_norm_gate_rows(float *y, const float *g, const float *lnx_w, const float *lnx_b, int H, int N, float eps,
                          int T, int nt) {
    rows_args a = {.x = g, .w = lnx_w, .b = lnx_b, .y = y, .H = H, .N = N, .eps = eps};
    parallel_rows(nt, T, (size_t)H * N, group_norm_gate_row, &a);
}

/* One chunk of T rows: x, z are [T][C]; states holds one state (a sequence)
 * or T (a batch, see block_states); layer_ptrs has room for as many. */
static void eval_chunk(const rwkv_model *m, float *const *states, int batched, const int *tokens, int T,
                       float *logits, int all_logits, float *x, float *z, float *scratch, float **layer_ptrs) {
    const rwkv_common *c = m->impl;
    const int nt = m->n_threads, n_states = batched ? T : 1;
    for (int t = 0; t < T; t++) matrix_row_f32(&c->emb, tokens[t], x + (size_t)t * c->C);
    layernorm_rows(x, c->ln0_w, c->ln0_b, T, c->C, x, nt);
    block_states st = {layer_ptrs, batched};
    for (int l = 0; l < c->L; l++) {
        for (int i = 0; i < n_states; i++) layer_ptrs[i] = states[i] + (size_t)l * c->layer_state;
        m->ops->block(m->impl, l, &st, x, z, scratch, T, nt);
    }
    if (!logits) return;
    int first = all_logits ? 0 : T - 1, rows = T - first;
    layernorm_rows(x + (size_t)first * c->C, c->ln_out_w, c->ln_out_b, rows, c->C, z, nt);
    block_matmul(&st, &c->head, z, rows, logits, nt);
}

/* Rows per chunk: at most CHUNK_TOKENS, and never a last chunk of one row
 * when n > 1 (a product of one row runs as a matrix-vector product, whose
 * sums round differently), so that how n rows are split into calls does
 * not change a bit of the results. */
static int chunk_rows(size_t left) {
    if (left <= CHUNK_TOKENS) return (int)left;
    return left == CHUNK_TOKENS + 1 ? CHUNK_TOKENS - 1 : CHUNK_TOKENS;
}

/* Scratch for chunks of up to T rows: x, z, the block's scratch. */
static float *chunk_scratch(const rwkv_model *m, int T, rwkv_error *err) {
    const rwkv_common *c = m->impl;
    float *buf = malloc(sizeof(float) * (2 * (size_t)T * c->C + m->ops->scratch_floats(m->impl, T)));
    if (!buf) rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for a %d-token scratch", T);
    return buf;
}

rwkv_status common_eval(const rwkv_model *m, float *state, const int *tokens, size_t n, float *logits,
                        int all_logits, rwkv_error *err) {
    const rwkv_common *c = m->impl;
    int T = chunk_rows(n);
    size_t tc = (size_t)T * c->C;
    float *buf = chunk_scratch(m, T, err), *layer_ptr;
    if (!buf) return RWKV_ERR_NOMEM;
    for (size_t done = 0; done < n;) {
        int len = chunk_rows(n - done);
        float *out = NULL;
        if (logits && all_logits) out = logits + done * (size_t)c->V;
        else if (logits && done + (size_t)len == n) out = logits;
        eval_chunk(m, &state, 0, tokens + done, len, out, all_logits, buf, buf + tc, buf + 2 * tc, &layer_ptr);
        done += (size_t)len;
    }
    free(buf);
    return rwkv_ok(err);
}

rwkv_status common_eval_batch(const rwkv_model *m, float *const *states, const int *tokens, size_t n, float *logits,
                              rwkv_error *err) {
    const rwkv_common *c = m->impl;
    const int T = n < CHUNK_TOKENS ? (int)n : CHUNK_TOKENS;
    const size_t tc = (size_t)T * c->C;
    float *buf = chunk_scratch(m, T, err);
    float **ptrs = malloc(sizeof(float *) * (size_t)T);
    rwkv_status s = RWKV_OK;
    if (!buf || !ptrs) {
        s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for a batch of %zu", n);
        goto done;
    }
    /* a batch's rows take the matrix-matrix kernels in chunks of any size (block_matmul) */
    for (size_t done = 0; done < n;) {
        const int len = n - done < (size_t)T ? (int)(n - done) : T;
        eval_chunk(m, states + done, 1, tokens + done, len, logits ? logits + done * (size_t)c->V : NULL, 1, buf,
                   buf + tc, buf + 2 * tc, ptrs);
        done += (size_t)len;
    }
    s = rwkv_ok(err);
done:
    free(buf);
    free(ptrs);
    return s;
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
