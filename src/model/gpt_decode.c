/* Token-by-token decoding of the GPT baseline (model/gpt.h) with a KV cache
 * that grows as positions are added. */
#include "model/gpt_forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/machine.h"
#include "kernels/kernels.h"
#include "kernels/simd_clones.h"
#include "kernels/transformer_ops.h"

#define LN_EPS 1e-5f

/* Decoding: one head's attention of query q over keys/values 0..t (rows at
 * `stride` floats), y [D] written, p [t+1] scratch. The loops over the head
 * dimension are `omp simd` and the function is compiled for AVX-512, AVX2
 * and baseline x86-64 with the variant picked at load time
 * (kernels/simd_clones.h), so the decode path of the baseline is vectorised
 * like the RWKV kernels are. */
SIMD_CLONES
static void attn_decode_head(const float *restrict q, const float *restrict K, const float *restrict Vv,
                             size_t stride, int t, int D, float scale, float *restrict p, float *restrict y) {
    float mx = -INFINITY;
    for (int u = 0; u <= t; u++) {
        const float *restrict k = K + (size_t)u * stride;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int d = 0; d < D; d++) s += q[d] * k[d];
        s *= scale;
        p[u] = s;
        if (s > mx) mx = s;
    }
    float sum = 0.0f;
    for (int u = 0; u <= t; u++) {
        p[u] = expf(p[u] - mx);
        sum += p[u];
    }
    const float inv = 1.0f / sum;
    for (int d = 0; d < D; d++) y[d] = 0.0f;
    for (int u = 0; u <= t; u++) {
        const float a = p[u] * inv;
        const float *restrict v = Vv + (size_t)u * stride;
#pragma omp simd
        for (int d = 0; d < D; d++) y[d] += a * v[d];
    }
}

struct gpt_kv_cache {
    gpt_shape sh;
    param_layout lay;
    int pos, cap;
    float **k, **v;                        /* [L] each [cap][C] */
    float *x, *xn, *qkv, *y, *tmp, *h, *p; /* scratch */
};

void gpt_kv_cache_free(gpt_kv_cache *c) {
    if (!c) return;
    for (int l = 0; c->k && l < c->sh.n_layer; l++) {
        free(c->k[l]);
        free(c->v[l]);
    }
    free(c->k);
    free(c->v);
    free(c->x);
    free(c->lay.params);
    free(c);
}

rwkv_status gpt_kv_cache_new(const gpt_shape *shape, gpt_kv_cache **out, rwkv_error *err) {
    *out = NULL;
    gpt_shape s = *shape;
    rwkv_status st = gpt_shape_check(&s, err);
    if (st != RWKV_OK) return st;
    gpt_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return rwkv_fail(err, RWKV_ERR_NOMEM, "gpt: out of memory");
    c->sh = s;
    st = gpt_layout_init(&s, &c->lay, err);
    if (st != RWKV_OK) {
        free(c);
        return st;
    }
    const size_t C = (size_t)s.n_embd, F = (size_t)s.n_ffn;
    c->k = calloc((size_t)s.n_layer, sizeof *c->k);
    c->v = calloc((size_t)s.n_layer, sizeof *c->v);
    /* scratch; p: one row of attention probabilities per head */
    c->x = malloc(sizeof(float) * (7 * C + F + (size_t)s.n_head * (size_t)s.n_ctx));
    if (!c->k || !c->v || !c->x) {
        gpt_kv_cache_free(c);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "gpt: out of memory");
    }
    c->xn = c->x + C;
    c->qkv = c->xn + C;
    c->y = c->qkv + 3 * C;
    c->tmp = c->y + C;
    c->h = c->tmp + C;
    c->p = c->h + F;
    *out = c;
    return RWKV_OK;
}

void gpt_kv_cache_reset(gpt_kv_cache *c) { c->pos = 0; }
int gpt_kv_cache_pos(const gpt_kv_cache *c) { return c->pos; }
size_t gpt_kv_cache_bytes(const gpt_kv_cache *c) {
    return 2 * (size_t)c->sh.n_layer * (size_t)c->cap * (size_t)c->sh.n_embd * sizeof(float);
}

static rwkv_status kv_grow(gpt_kv_cache *c, rwkv_error *err) {
    int cap = c->cap ? 2 * c->cap : 16;
    if (cap > c->sh.n_ctx) cap = c->sh.n_ctx;
    const size_t bytes = (size_t)cap * (size_t)c->sh.n_embd * sizeof(float);
    for (int l = 0; l < c->sh.n_layer; l++) {
        float *nk = realloc(c->k[l], bytes);
        if (nk) c->k[l] = nk;
        float *nv = nk ? realloc(c->v[l], bytes) : NULL;
        if (nv) c->v[l] = nv;
        if (!nk || !nv) return rwkv_fail(err, RWKV_ERR_NOMEM, "gpt: out of memory growing the KV cache to %d", cap);
    }
    c->cap = cap;
    return RWKV_OK;
}

typedef struct decode_args {
    const float *q, *K, *V; /* the query of every head; the layer's keys and values, rows C apart */
    float *p, *y;
    int t, D, C, n_ctx;
    float scale;
} decode_args;

static void decode_head(void *p, int h) {
    const decode_args *a = p;
    const size_t o = (size_t)h * (size_t)a->D;
    attn_decode_head(a->q + o, a->K + o, a->V + o, (size_t)a->C, a->t, a->D, a->scale, a->p + (size_t)h * (size_t)a->n_ctx,
                     a->y + o);
}

static void matvec_bias(const float *W, const float *b, int rows, int cols, const float *x, float *y, int nt) {
    const matrix m = {.type = DT_F32, .rows = rows, .cols = cols, .data = W};
    matvec(&m, x, y, nt);
    if (b)
        for (int r = 0; r < rows; r++) y[r] += b[r];
}

rwkv_status gpt_decode(gpt_kv_cache *c, const float *params, int token, float *logits, int n_threads,
                       rwkv_error *err) {
    if (!params || !c) return rwkv_fail(err, RWKV_ERR_ARG, "gpt_decode: null argument");
    const int C = c->sh.n_embd, F = c->sh.n_ffn, V = c->sh.n_vocab, L = c->sh.n_layer, H = c->sh.n_head;
    const int D = C / H, t = c->pos, nt = n_threads > 0 ? n_threads : machine_cores();
    if (t >= c->sh.n_ctx)
        return rwkv_fail(err, RWKV_ERR_ARG, "gpt_decode: the context is full (%d positions)", c->sh.n_ctx);
    if (token < 0 || token >= V)
        return rwkv_fail(err, RWKV_ERR_ARG, "gpt_decode: token %d is outside [0, %d)", token, V);
    if (t == c->cap) {
        rwkv_status s = kv_grow(c, err);
        if (s != RWKV_OK) return s;
    }
#define CP(idx) (params + c->lay.params[idx].offset)
    const float *e = CP(IDX_WTE) + (size_t)token * C, *pe = CP(IDX_WPE) + (size_t)t * C;
    for (int j = 0; j < C; j++) c->x[j] = e[j] + pe[j];
    const float scale = 1.0f / sqrtf((float)D);
    for (int l = 0; l < L; l++) {
#define LP(k) CP(IDX_LAYER(l, k))
        layernorm(c->x, LP(P_LN1_W), LP(P_LN1_B), C, LN_EPS, c->xn);
        matvec_bias(LP(P_QKV_W), LP(P_QKV_B), 3 * C, C, c->xn, c->qkv, nt);
        memcpy(c->k[l] + (size_t)t * C, c->qkv + C, sizeof(float) * (size_t)C);
        memcpy(c->v[l] + (size_t)t * C, c->qkv + 2 * C, sizeof(float) * (size_t)C);
        /* heads in parallel once the context is long enough to pay for it
         * (a head reads t + 1 keys and values of D floats); each head is
         * computed the same way whatever thread runs it */
        decode_args da = {c->qkv, c->k[l], c->v[l], c->p, c->y, t, D, C, c->sh.n_ctx, scale};
        parallel_rows(nt, H, 2 * (size_t)(t + 1) * (size_t)D, decode_head, &da);
        matvec_bias(LP(P_PROJ_W), LP(P_PROJ_B), C, C, c->y, c->tmp, nt);
        for (int j = 0; j < C; j++) c->x[j] += c->tmp[j];
        layernorm(c->x, LP(P_LN2_W), LP(P_LN2_B), C, LN_EPS, c->xn);
        matvec_bias(LP(P_FC_W), LP(P_FC_B), F, C, c->xn, c->h, nt);
        for (int j = 0; j < F; j++) c->h[j] = gelu_tanh(c->h[j]);
        matvec_bias(LP(P_FCP_W), LP(P_FCP_B), C, F, c->h, c->tmp, nt);
        for (int j = 0; j < C; j++) c->x[j] += c->tmp[j];
#undef LP
    }
    c->pos = t + 1;
    if (logits) {
        layernorm(c->x, CP(IDX_LNF_W(L)), CP(IDX_LNF_B(L)), C, LN_EPS, c->xn);
        matvec_bias(CP(IDX_HEAD(L)), NULL, V, C, c->xn, logits, nt);
    }
#undef CP
    return RWKV_OK;
}
