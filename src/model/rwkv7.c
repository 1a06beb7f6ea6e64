/* RWKV-7 "Goose", inference (docs/model.md §4.5): the
 * generalised delta-rule state update, data-dependent decay and in-context
 * learning rate, the value residual (every block's v is pulled towards block
 * 0's v) and the per-head bonus term. One code path for RNN mode (one token)
 * and sequence mode (a chunk of T tokens, matrix-matrix products),
 * continuing from the recurrent state.
 *
 * State of one layer: att_xx[C], S[H][N][N] (S[h][value i][key j], float32),
 * ffn_xx[C]; a fresh state is all zeros. v_first (block 0's value, passed up
 * the blocks within one token) is not state: it is recomputed per token. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/wkv.h"
#include "model/common.h"

/* The six token-shift mixes and their key suffixes. */
enum { MIX_R, MIX_W, MIX_K, MIX_V, MIX_A, MIX_G, N_MIX };
static const char *const mix_names[N_MIX] = {"r", "w", "k", "v", "a", "g"};

typedef struct rwkv7_layer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    float *mix[N_MIX];       /* att.x_r ... att.x_g [C] */
    float *w0, *a0, *v0;     /* [A]; v0 NULL in block 0 */
    matrix w1, w2, a1, a2, v1, v2, g1, g2; /* LoRA, f32 [out, in] (v1/v2 unset in block 0) */
    float *k_k, *k_a;        /* [A] */
    float *r_k;              /* [H, N] */
    matrix att_r, att_k, att_v, att_o;
    float *lnx_w, *lnx_b;
    float *ffn_x_k;
    matrix ffn_k, ffn_v;
} rwkv7_layer;

typedef struct rwkv7 {
    rwkv_common c;
    int H, N, Dw, Da, Dv, Dg;
    float gn_eps;
    rwkv7_layer *layers;
} rwkv7;

/* Scratch for one chunk of T tokens (A = C for RWKV-7). */
typedef struct scratch {
    float *x, *z;         /* [T][C] residual stream, layernorm output */
    float *xm[N_MIX];     /* [T][C] mixed inputs */
    float *r, *k, *v, *w; /* [T][A] */
    float *a, *b, *g, *y; /* [T][A]: alpha then kappa*alpha; -kappa; gate; WKV output */
    float *v_first;       /* [T][A] block 0's v, read by the later blocks */
    float *tmp;           /* [T][A] LoRA / projection output */
    float *h;             /* [T][max(F, Dw + Da + Dv + Dg)] */
} scratch;

/* h holds the FFN's hidden layer, or the four LoRAs' hidden layers side by
 * side (they are computed together: projections). */
static size_t hidden_width(const rwkv7 *w) {
    const int loras = w->Dw + w->Da + w->Dv + w->Dg;
    return (size_t)(loras > w->c.F ? loras : w->c.F);
}

static size_t rwkv7_scratch_floats(const void *impl, int T) {
    const rwkv7 *w = impl;
    return (size_t)T * (N_MIX * (size_t)w->c.C + 10 * (size_t)w->c.A + hidden_width(w));
}

/* v_first sits at the same place for every block of a chunk, so block 0's
 * values are there when the later blocks read them. */
static scratch carve(const rwkv7 *w, float *x, float *z, float *p, int T) {
    scratch s = {.x = x, .z = z};
    const size_t tc = (size_t)T * w->c.C, ta = (size_t)T * w->c.A;
    for (int c = 0; c < N_MIX; c++) s.xm[c] = p, p += tc;
    float **as[] = {&s.r, &s.k, &s.v, &s.w, &s.a, &s.b, &s.g, &s.y, &s.v_first, &s.tmp};
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) *as[i] = p, p += ta;
    s.h = p;
    return s;
}

static float tanh_f(float x) { return tanhf(x); }
static float sigmoid_f(float x) { return sigmoidf(x); }

static void apply(float *h, size_t n, float (*f)(float)) {
    for (size_t i = 0; i < n; i++) h[i] = f(h[i]);
}

/* Receptance, key and value, and the LoRAs out = M2 @ f(M1 @ x) of the
 * decay (f = tanh), alpha, the value residual (from block 1 on) and the gate
 * (f = sigmoid): every first product in one job, every second product in
 * another, so that the threads meet twice a block instead of nine times
 * (at decode each meeting costs a join). */
static void projections(const rwkv7 *w, const rwkv7_layer *ly, int l, const block_states *st, scratch *s, int T,
                        int nt) {
    const size_t t = (size_t)T;
    float *hw = s->h, *ha = hw + t * w->Dw, *hg = ha + t * w->Da, *hv = hg + t * w->Dg;
    const int loras = l > 0 ? 4 : 3; /* the value LoRA last: block 0 has none */
    const matrix *W1[] = {&ly->att_r, &ly->att_k, &ly->att_v, &ly->w1, &ly->a1, &ly->g1, &ly->v1};
    const float *X1[] = {s->xm[MIX_R], s->xm[MIX_K], s->xm[MIX_V], s->xm[MIX_W], s->xm[MIX_A], s->xm[MIX_G],
                         s->xm[MIX_V]};
    float *const Y1[] = {s->r, s->k, s->v, hw, ha, hg, hv};
    block_matmul_group(st, 3 + loras, W1, X1, T, Y1, nt);
    apply(hw, t * w->Dw, tanh_f);
    apply(hg, t * w->Dg, sigmoid_f);
    const matrix *W2[] = {&ly->w2, &ly->a2, &ly->g2, &ly->v2};
    const float *X2[] = {hw, ha, hg, hv};
    float *const Y2[] = {s->w, s->a, s->g, s->tmp};
    block_matmul_group(st, loras, W2, X2, T, Y2, nt);
}

/* Channels c0 .. c1 - 1 (whole heads) of one token's decay, alpha, value
 * residual and the kernel's k, a, b. */
static void prepare_span(const rwkv7 *w, const rwkv7_layer *ly, int l, scratch *s, size_t t, int c0, int c1) {
    const size_t o = t * (size_t)w->c.A + (size_t)c0;
    float *v = s->v + o;
    /* block 0 keeps its values as the first block's; later blocks mix toward
     * them (the gate in tmp, in place). The kernel's a = -kappa goes into b's
     * buffer and b = kappa alpha into a's, which held alpha. */
    if (l == 0) memcpy(s->v_first + o, v, sizeof(float) * (size_t)(c1 - c0));
    const wkv7_prep p = {ly->w0 + c0, ly->a0 + c0, l > 0 ? ly->v0 + c0 : NULL, ly->k_k + c0, ly->k_a + c0,
                         s->w + o,    s->w + o,    s->a + o,                  s->tmp + o,   v,
                         s->v_first + o, v,        s->k + o,                  s->k + o,     NULL,
                         NULL,        s->b + o,    s->a + o};
    wkv7_prepare(&p, c1 - c0, w->N);
}

/* Heads h0 .. h1 - 1 of one token's (GN(y) + (sum_j r_j k_j r_k[h, j]) v) * g,
 * in place in y. */
static void finish_heads(const rwkv7 *w, const rwkv7_layer *ly, scratch *s, size_t t, int h0, int h1) {
    const int N = w->N;
    const size_t o = t * (size_t)w->c.A, c0 = (size_t)h0 * N;
    float *y = s->y + o;
    const float *r = s->r + o, *k = s->k + o, *v = s->v + o, *g = s->g + o;
    group_norm(y + c0, ly->lnx_w + c0, ly->lnx_b + c0, h1 - h0, N, w->gn_eps, y + c0);
    for (int h = h0; h < h1; h++) {
        const size_t c = (size_t)h * N;
        float bonus = 0.0f;
        for (int j = 0; j < N; j++) bonus += r[c + j] * k[c + j] * ly->r_k[c + j];
#pragma omp simd
        for (int j = 0; j < N; j++) y[c + j] = (y[c + j] + bonus * v[c + j]) * g[c + j];
    }
}

/* The per-token steps around the WKV kernel, one row each on the threads. */
typedef struct token_args {
    const rwkv7 *w;
    const rwkv7_layer *ly;
    scratch *s;
    int l;
} token_args;

static void prepare_row(void *p, int t) {
    const token_args *a = p;
    prepare_span(a->w, a->ly, a->l, a->s, (size_t)t, 0, a->w->c.A);
}

static void finish_row(void *p, int t) {
    const token_args *a = p;
    finish_heads(a->w, a->ly, a->s, (size_t)t, 0, a->w->H);
}

/* A prompt's WKV inputs, WKV and outputs, each step over all its tokens. */
static void prompt_heads(const rwkv7 *w, const rwkv7_layer *ly, int l, const block_states *st, scratch *s, int T,
                         int nt) {
    const int C = w->c.C, A = w->c.A;
    token_args ta = {w, ly, s, l};
    parallel_rows(nt, T, 8 * (size_t)A, prepare_row, &ta);
    wkv7_forward(T, w->H, w->N, s->r, s->w, s->k, s->v, s->b, s->a, row_state(st, 0) + C, s->y, nt);
    parallel_rows(nt, T, 6 * (size_t)A, finish_row, &ta);
}

/* A decode step (one token, or a batch's rows of one token each): inputs,
 * WKV and outputs in one pass over spans of heads, split between the
 * threads the same way on every call, so that each core keeps its share of
 * the states in its own caches. Split anew each step, the states moved
 * between the cores and two threads ran the WKV no faster than one
 * (docs/perf.md). Spans start on multiples of 16 channels, where the
 * vector functions of wkv7_prepare give each channel the bits of a whole
 * row's call. */
typedef struct decode_job {
    const rwkv7 *w;
    const rwkv7_layer *ly;
    const block_states *st;
    scratch *s;
    int l, T, span, n_spans, n_chunks;
} decode_job;

static void decode_chunk(void *p, int c) {
    const decode_job *j = p;
    const rwkv7 *w = j->w;
    const int H = w->H, N = w->N, A = w->c.A, C = w->c.C;
    const int s0 = c * j->n_spans / j->n_chunks, s1 = (c + 1) * j->n_spans / j->n_chunks;
    const int h0 = s0 * j->span, h1 = s1 == j->n_spans ? H : s1 * j->span;
    scratch *s = j->s;
    for (int t = 0; t < j->T; t++) {
        const size_t o = (size_t)t * A;
        prepare_span(w, j->ly, j->l, s, (size_t)t, h0 * N, h1 * N);
        wkv7_forward_heads(1, H, N, h0, h1, s->r + o, s->w + o, s->k + o, s->v + o, s->b + o, s->a + o,
                           row_state(j->st, t) + C, s->y + o);
        finish_heads(w, j->ly, s, (size_t)t, h0, h1);
    }
}

static void decode_heads(const rwkv7 *w, const rwkv7_layer *ly, int l, const block_states *st, scratch *s, int T,
                         int nt) {
    int span = 1;
    while (span < w->H && span * w->N % 16) span++;
    decode_job j = {w, ly, st, s, l, T, span, w->H / span, 0};
    j.n_chunks = j.n_spans < 4 * nt ? j.n_spans : 4 * nt;
    if (j.n_chunks > PARALLEL_PINNED_MAX) j.n_chunks = PARALLEL_PINNED_MAX;
    const double work = (double)T * w->c.A * w->N; /* state floats touched */
    parallel_for_pinned(work < PARALLEL_MIN_WORK ? 1 : nt, j.n_chunks, decode_chunk, &j);
}

static void time_mix(const rwkv7 *w, const rwkv7_layer *ly, int l, const block_states *st, scratch *s, int T,
                     int nt) {
    const int C = w->c.C;
    const shift_src prev = {st, 0}; /* att_xx, then S at C */
    layernorm_rows(s->x, ly->ln1_w, ly->ln1_b, T, C, s->z, nt);
    /* x_c = z + (z_prev - z) x_c for the six mixes */
    shift_lerp_rows(s->z, prev, T, C, N_MIX, (const float *const *)ly->mix, s->xm, nt);
    shift_save(prev, s->z, T, C);
    projections(w, ly, l, st, s, T, nt);
    if (T == 1 || st->batched) decode_heads(w, ly, l, st, s, T, nt);
    else prompt_heads(w, ly, l, st, s, T, nt);
    block_matmul(st, &ly->att_o, s->y, T, s->tmp, nt);
    add_rows(s->x, s->tmp, T, C, nt);
}

/* Wv relu(Wk (z + dz x_k))^2 (no receptance in RWKV-7) */
static void channel_mix(const rwkv7 *w, const rwkv7_layer *ly, const block_states *st, scratch *s, int T, int nt) {
    const int C = w->c.C;
    const shift_src prev = {st, w->c.layer_state - C}; /* ffn_xx */
    float *xk = s->xm[MIX_K];
    layernorm_rows(s->x, ly->ln2_w, ly->ln2_b, T, C, s->z, nt);
    const float *mu[] = {ly->ffn_x_k};
    float *const in[] = {xk};
    shift_lerp_rows(s->z, prev, T, C, 1, mu, in, nt);
    shift_save(prev, s->z, T, C);
    ffn_relu2(st, &ly->ffn_k, &ly->ffn_v, NULL, xk, NULL, T, s->h, s->tmp, NULL, s->x, nt);
}

static void rwkv7_block(const void *impl, int l, const block_states *st, float *x, float *z, float *scratch_mem, int T, int nt) {
    const rwkv7 *w = impl;
    scratch s = carve(w, x, z, scratch_mem, T);
    time_mix(w, &w->layers[l], l, st, &s, T, nt);
    channel_mix(w, &w->layers[l], st, &s, T, nt);
}

static const model_ops rwkv7_ops = {NULL, rwkv7_scratch_floats, rwkv7_block};

static rwkv_status load_layer(tensor_set *set, rwkv7 *w, int l, rwkv_error *err) {
    rwkv7_layer *ly = &w->layers[l];
    const int C = w->c.C, A = w->c.A, F = w->c.F;
    char n[128], suffix[64];
#define NAME(sfx) (snprintf(n, sizeof n, "blocks.%d.%s", l, sfx), n)
    LOAD_VEC(ly->ln1_w, NAME("ln1.weight"), C);
    LOAD_VEC(ly->ln1_b, NAME("ln1.bias"), C);
    LOAD_VEC(ly->ln2_w, NAME("ln2.weight"), C);
    LOAD_VEC(ly->ln2_b, NAME("ln2.bias"), C);
    for (int c = 0; c < N_MIX; c++) {
        snprintf(suffix, sizeof suffix, "att.x_%s", mix_names[c]);
        LOAD_VEC(ly->mix[c], NAME(suffix), C);
    }
    LOAD_VEC(ly->w0, NAME("att.w0"), A);
    LOAD_LORA(&ly->w1, NAME("att.w1"), 1, C, w->Dw);
    LOAD_LORA(&ly->w2, NAME("att.w2"), 1, w->Dw, A);
    LOAD_VEC(ly->a0, NAME("att.a0"), A);
    LOAD_LORA(&ly->a1, NAME("att.a1"), 1, C, w->Da);
    LOAD_LORA(&ly->a2, NAME("att.a2"), 1, w->Da, A);
    if (l > 0) { /* block 0's v0/v1/v2, present in training checkpoints, are unused */
        LOAD_VEC(ly->v0, NAME("att.v0"), A);
        LOAD_LORA(&ly->v1, NAME("att.v1"), 1, C, w->Dv);
        LOAD_LORA(&ly->v2, NAME("att.v2"), 1, w->Dv, A);
    }
    LOAD_LORA(&ly->g1, NAME("att.g1"), 1, C, w->Dg);
    LOAD_LORA(&ly->g2, NAME("att.g2"), 1, w->Dg, A);
    LOAD_VEC(ly->k_k, NAME("att.k_k"), A);
    LOAD_VEC(ly->k_a, NAME("att.k_a"), A);
    LOAD_VEC(ly->r_k, NAME("att.r_k"), A);
    LOAD_MAT(ly->att_r, NAME("att.receptance.weight"), A, C);
    LOAD_MAT(ly->att_k, NAME("att.key.weight"), A, C);
    LOAD_MAT(ly->att_v, NAME("att.value.weight"), A, C);
    LOAD_MAT(ly->att_o, NAME("att.output.weight"), C, A);
    LOAD_VEC(ly->lnx_w, NAME("att.ln_x.weight"), A);
    LOAD_VEC(ly->lnx_b, NAME("att.ln_x.bias"), A);
    LOAD_VEC(ly->ffn_x_k, NAME("ffn.x_k"), C);
    LOAD_MAT(ly->ffn_k, NAME("ffn.key.weight"), F, C);
    LOAD_MAT(ly->ffn_v, NAME("ffn.value.weight"), C, F);
#undef NAME
    return RWKV_OK;
}

/* Columns of a [C, D] LoRA matrix (the rank D). */
static rwkv_status lora_rank(const tensor_set *set, const char *name, int *out, rwkv_error *err) {
    const tensor *t = model_tensor(set, name, err);
    if (!t) return RWKV_ERR_SHAPE;
    if (t->ndim != 2 || t->shape[1] < 1 || t->shape[1] > (1 << 16))
        return rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' must be a [C, rank] matrix", name);
    *out = (int)t->shape[1];
    return RWKV_OK;
}

/* Heads from att.r_k [H, N]; the LoRA ranks from the columns of w1, a1, g1
 * and (block 1's) v1. */
static rwkv_status read_heads(const tensor_set *set, rwkv7 *w, rwkv_error *err) {
    const int A = w->c.A;
    if (A != w->c.C)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "RWKV-7 with dim_att %d != n_embd %d is not supported", A, w->c.C);
    const tensor *rk = model_tensor(set, "blocks.0.att.r_k", err);
    if (!rk) return RWKV_ERR_SHAPE;
    int64_t H = rk->ndim >= 1 ? rk->shape[0] : 0;
    if (H < 1 || H > A || A % H != 0 || tensor_numel(rk) != A)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "blocks.0.att.r_k must be [H, N] with H*N = dim_att %d", A);
    w->H = (int)H;
    w->N = A / w->H;
    rwkv_status s;
    if ((s = lora_rank(set, "blocks.0.att.w1", &w->Dw, err)) != RWKV_OK) return s;
    if ((s = lora_rank(set, "blocks.0.att.a1", &w->Da, err)) != RWKV_OK) return s;
    if ((s = lora_rank(set, "blocks.0.att.g1", &w->Dg, err)) != RWKV_OK) return s;
    /* v1 is unused in block 0 and usually absent there: take the rank from block 1 */
    if (w->c.L > 1 && (s = lora_rank(set, "blocks.1.att.v1", &w->Dv, err)) != RWKV_OK) return s;
    if (w->c.L == 1 && tensor_set_find(set, "blocks.0.att.v1") &&
        (s = lora_rank(set, "blocks.0.att.v1", &w->Dv, err)) != RWKV_OK)
        return s;
    return RWKV_OK;
}

rwkv_status rwkv7_build(rwkv_model *m, rwkv_error *err) {
    /* the experimental "DeepEmbed" variant (docs §4.5) */
    static const char *const variant_keys[] = {".ffn.s_emb", ".ffn.s0", ".ffn.s1", ".ffn.s2", "s_emb."};
    tensor_set *set = &m->weights;
    rwkv_status s = reject_keys(set, variant_keys, sizeof variant_keys / sizeof variant_keys[0],
                                "the RWKV-7 \"DeepEmbed\" variant", err);
    if (s != RWKV_OK) return s;
    if (!tensor_set_find(set, "blocks.0.att.x_r") && tensor_set_find(set, "blocks.0.att.x_rwkvag"))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                         "att.x_rwkvag (rwkv.cpp's packed mixes) must be split into att.x_r ... att.x_g by the reader");
    rwkv7 *w = calloc(1, sizeof *w);
    if (!w) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    m->impl = w;
    m->ops = &rwkv7_ops;
    m->backend = &rwkv_cpu_backend;
    if ((s = common_load(set, &w->c, err)) != RWKV_OK || (s = read_heads(set, w, err)) != RWKV_OK) return s;
    w->c.layer_state = 2 * (size_t)w->c.C + (size_t)w->H * (size_t)w->N * (size_t)w->N;
    w->gn_eps = m->gn_eps;
    if (!(w->gn_eps > 0.0f)) return rwkv_fail(err, RWKV_ERR_ARG, "the GroupNorm epsilon of ln_x is not set");
    w->c.layers = w->layers = calloc((size_t)w->c.L, sizeof *w->layers);
    if (!w->layers) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    for (int l = 0; l < w->c.L; l++)
        if ((s = load_layer(set, w, l, err)) != RWKV_OK) return s;
    common_fill_info(&w->c, "7", &m->info);
    m->info.n_head = w->H;
    m->info.head_size = w->N;
    m->info.d_decay_lora = w->Dw;
    m->info.d_aaa_lora = w->Da;
    m->info.d_mv_lora = w->Dv;
    m->info.d_gate_lora = w->Dg;
    m->info.gn_eps = w->gn_eps;
    return RWKV_OK;
}
