/* RWKV-5 "Eagle", inference (docs/model.md §4.3): v5.2, the
 * released World v2 models, plus the 5.0/5.1 previews (one decay per head,
 * no gate in 5.0). As for RWKV-4, RNN mode (one token) and sequence mode
 * (many tokens, matrix-matrix products) are the same code: the forward pass
 * over a chunk of T tokens, continuing from the recurrent state.
 *
 * State of one layer: att_xx[C], S[H][N][N] (S[h][value i][key j], float32),
 * ffn_xx[C]; a fresh state is all zeros. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/wkv.h"
#include "model/common.h"

typedef struct rwkv5_layer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    float *mix_k, *mix_v, *mix_r, *mix_g; /* mix_g: NULL without a gate (5.0) */
    float *w;                             /* decay multiplier exp(-exp(time_decay)) [A], per channel */
    float *u;                             /* bonus [A], per channel */
    matrix att_r, att_k, att_v, att_o, att_g;
    float *lnx_w, *lnx_b;
    float *ffn_mix_k, *ffn_mix_r;
    matrix ffn_k, ffn_r, ffn_v;
} rwkv5_layer;

typedef struct rwkv5 {
    rwkv_common c;
    int H, N;
    int has_gate;
    float gn_eps;
    rwkv5_layer *layers;
} rwkv5;

/* Working memory of one block, carved from the chunk's scratch: "wide"
 * buffers hold [T][max(C, A)], h holds [T][F]. */
typedef struct scratch {
    float *x, *z;              /* [T][C] residual stream, layernorm output (the driver's) */
    float *xa, *xb, *xc, *xd;  /* wide: mixed inputs */
    float *r, *k, *v, *g, *y;  /* wide: projections, WKV output */
    float *h;                  /* [T][F] channel-mix hidden */
} scratch;

static size_t wide(const rwkv5 *w) { return (size_t)(w->c.A > w->c.C ? w->c.A : w->c.C); }

static size_t rwkv5_scratch_floats(const void *impl, int T) {
    const rwkv5 *w = impl;
    return (size_t)T * (9 * wide(w) + (size_t)w->c.F);
}

static scratch carve(const rwkv5 *w, float *x, float *z, float *p, int T) {
    scratch s = {.x = x, .z = z};
    const size_t tw = (size_t)T * wide(w);
    float **wides[] = {&s.xa, &s.xb, &s.xc, &s.xd, &s.r, &s.k, &s.v, &s.g, &s.y};
    for (size_t i = 0; i < sizeof wides / sizeof wides[0]; i++) *wides[i] = p, p += tw;
    s.h = p;
    return s;
}

static void time_mix(const rwkv5 *w, const rwkv5_layer *ly, const block_states *st, scratch *s, int T, int nt) {
    const int C = w->c.C;
    const shift_src prev = {st, 0}; /* att_xx, then S at C */
    layernorm_rows(s->x, ly->ln1_w, ly->ln1_b, T, C, s->z, nt);
    const float *mu[] = {ly->mix_k, ly->mix_v, ly->mix_r, ly->mix_g};
    float *const in[] = {s->xa, s->xb, s->xc, s->xd};
    shift_mix_rows(s->z, prev, T, C, w->has_gate ? 4 : 3, mu, in, nt);
    shift_save(prev, s->z, T, C);
    const matrix *W[] = {&ly->att_k, &ly->att_v, &ly->att_r, &ly->att_g};
    const float *X[] = {s->xa, s->xb, s->xc, s->xd};
    float *const Y[] = {s->k, s->v, s->r, s->g};
    block_matmul_group(st, w->has_gate ? 4 : 3, W, X, T, Y, nt);
    for (int t = 0, rows = st->batched ? 1 : T; t < T; t += rows) {
        const size_t o = (size_t)t * w->c.A;
        wkv5_forward(rows, w->H, w->N, s->r + o, s->k + o, s->v + o, ly->w, 0, ly->u, row_state(st, t) + C, s->y + o,
                     nt);
    }
    group_norm_gate_rows(s->y, w->has_gate ? s->g : NULL, ly->lnx_w, ly->lnx_b, w->H, w->N, w->gn_eps, T, nt);
    block_matmul(st, &ly->att_o, s->y, T, s->k, nt); /* k is free again: [T][C] output */
    add_rows(s->x, s->k, T, C, nt);
}

/* As RWKV-4: sigmoid(Wr xr) * Wv relu(Wk xk)^2. */
static void channel_mix(const rwkv5 *w, const rwkv5_layer *ly, const block_states *st, scratch *s, int T, int nt) {
    const int C = w->c.C;
    const shift_src prev = {st, w->c.layer_state - C}; /* ffn_xx */
    layernorm_rows(s->x, ly->ln2_w, ly->ln2_b, T, C, s->z, nt);
    const float *mu[] = {ly->ffn_mix_k, ly->ffn_mix_r};
    float *const in[] = {s->xa, s->xb};
    shift_mix_rows(s->z, prev, T, C, 2, mu, in, nt);
    shift_save(prev, s->z, T, C);
    ffn_relu2(st, &ly->ffn_k, &ly->ffn_v, &ly->ffn_r, s->xa, s->xb, T, s->h, s->v, s->r, s->x, nt);
}

static void rwkv5_block(const void *impl, int l, const block_states *st, float *x, float *z, float *scratch_mem, int T, int nt) {
    const rwkv5 *w = impl;
    scratch s = carve(w, x, z, scratch_mem, T);
    time_mix(w, &w->layers[l], st, &s, T, nt);
    channel_mix(w, &w->layers[l], st, &s, T, nt);
}

static const model_ops rwkv5_ops = {NULL, rwkv5_scratch_floats, rwkv5_block};

/* A per-channel vector [A] from a tensor holding one value per channel
 * ([H, N]) or one per head ([H], the 5.0/5.1 previews), broadcast. */
static float *head_vector(tensor_set *set, const rwkv5 *w, const char *name, rwkv_error *err) {
    const tensor *t = model_tensor(set, name, err);
    if (!t) return NULL;
    int64_t n = tensor_numel(t);
    if (n != w->c.A && n != w->H) {
        rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' has %lld elements, expected %d (per channel) or %d (per head)",
                  name, (long long)n, w->c.A, w->H);
        return NULL;
    }
    float *v = model_vector(set, name, n, err);
    float *out = v ? tensor_set_alloc(set, sizeof(float) * (size_t)w->c.A) : NULL;
    if (v && !out) rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    if (!out) return NULL;
    for (int i = 0; i < w->c.A; i++) out[i] = n == w->c.A ? v[i] : v[i / w->N];
    return out;
}

static rwkv_status load_layer(tensor_set *set, rwkv5 *w, int l, rwkv_error *err) {
    rwkv5_layer *ly = &w->layers[l];
    const int C = w->c.C, A = w->c.A, F = w->c.F;
    char n[128];
#define NAME(suffix) (snprintf(n, sizeof n, "blocks.%d.%s", l, suffix), n)
    LOAD_VEC(ly->ln1_w, NAME("ln1.weight"), C);
    LOAD_VEC(ly->ln1_b, NAME("ln1.bias"), C);
    LOAD_VEC(ly->ln2_w, NAME("ln2.weight"), C);
    LOAD_VEC(ly->ln2_b, NAME("ln2.bias"), C);
    LOAD_VEC(ly->mix_k, NAME("att.time_mix_k"), C);
    LOAD_VEC(ly->mix_v, NAME("att.time_mix_v"), C);
    LOAD_VEC(ly->mix_r, NAME("att.time_mix_r"), C);
    if (w->has_gate) {
        LOAD_VEC(ly->mix_g, NAME("att.time_mix_g"), C);
        LOAD_MAT(ly->att_g, NAME("att.gate.weight"), A, C);
    }
    /* w = exp(-exp(time_decay)), computed in double at load */
    if (!(ly->w = head_vector(set, w, NAME("att.time_decay"), err))) return err ? err->code : RWKV_ERR_SHAPE;
    for (int i = 0; i < A; i++) ly->w[i] = (float)exp(-exp((double)ly->w[i]));
    /* the bonus: time_faaaa used as stored; the older time_first means u = exp(time_first) (docs §4.6) */
    if (tensor_set_find(set, NAME("att.time_faaaa"))) {
        if (!(ly->u = head_vector(set, w, n, err))) return err ? err->code : RWKV_ERR_SHAPE;
    } else {
        if (!(ly->u = head_vector(set, w, NAME("att.time_first"), err))) return err ? err->code : RWKV_ERR_SHAPE;
        for (int i = 0; i < A; i++) ly->u[i] = (float)exp((double)ly->u[i]);
    }
    LOAD_MAT(ly->att_r, NAME("att.receptance.weight"), A, C);
    LOAD_MAT(ly->att_k, NAME("att.key.weight"), A, C);
    LOAD_MAT(ly->att_v, NAME("att.value.weight"), A, C);
    LOAD_MAT(ly->att_o, NAME("att.output.weight"), C, A);
    LOAD_VEC(ly->lnx_w, NAME("att.ln_x.weight"), A);
    LOAD_VEC(ly->lnx_b, NAME("att.ln_x.bias"), A);
    LOAD_VEC(ly->ffn_mix_k, NAME("ffn.time_mix_k"), C);
    LOAD_VEC(ly->ffn_mix_r, NAME("ffn.time_mix_r"), C);
    LOAD_MAT(ly->ffn_k, NAME("ffn.key.weight"), F, C);
    LOAD_MAT(ly->ffn_r, NAME("ffn.receptance.weight"), C, C);
    LOAD_MAT(ly->ffn_v, NAME("ffn.value.weight"), C, F);
#undef NAME
    return RWKV_OK;
}

/* Heads from att.time_decay: [H, N] in 5.2, [H] in 5.0/5.1 (then N = A / H). */
static rwkv_status read_heads(const tensor_set *set, rwkv5 *w, const char *version, rwkv_error *err) {
    const tensor *d = model_tensor(set, "blocks.0.att.time_decay", err);
    if (!d) return RWKV_ERR_SHAPE;
    const int A = w->c.A;
    int64_t H = strcmp(version, "5.2") == 0 ? d->shape[0] : tensor_numel(d);
    if (H < 1 || H > A || A % H != 0)
        return rwkv_fail(err, RWKV_ERR_SHAPE,
                         "blocks.0.att.time_decay gives %lld heads, which do not divide dim_att %d", (long long)H, A);
    w->H = (int)H;
    w->N = A / w->H;
    if (strcmp(version, "5.2") == 0 && tensor_numel(d) != A)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "blocks.0.att.time_decay must be [H, N] with H*N = dim_att %d", A);
    return RWKV_OK;
}

rwkv_status rwkv5_build(rwkv_model *m, rwkv_error *err) {
    tensor_set *set = &m->weights;
    const char *version = model_detect_version(set);
    rwkv5 *w = calloc(1, sizeof *w);
    if (!w) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    m->impl = w;
    m->ops = &rwkv5_ops;
    m->backend = &rwkv_cpu_backend;
    rwkv_status s = common_load(set, &w->c, err);
    if (s != RWKV_OK || (s = read_heads(set, w, version, err)) != RWKV_OK) return s;
    w->c.layer_state = 2 * (size_t)w->c.C + (size_t)w->H * (size_t)w->N * (size_t)w->N;
    w->has_gate = strcmp(version, "5.0") != 0;
    w->gn_eps = m->gn_eps;
    if (!(w->gn_eps > 0.0f)) return rwkv_fail(err, RWKV_ERR_ARG, "the GroupNorm epsilon of ln_x is not set");
    w->c.layers = w->layers = calloc((size_t)w->c.L, sizeof *w->layers);
    if (!w->layers) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    for (int l = 0; l < w->c.L; l++)
        if ((s = load_layer(set, w, l, err)) != RWKV_OK) return s;
    common_fill_info(&w->c, version, &m->info);
    m->info.n_head = w->H;
    m->info.head_size = w->N;
    m->info.gn_eps = w->gn_eps;
    return RWKV_OK;
}
