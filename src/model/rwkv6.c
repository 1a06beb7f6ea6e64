/* RWKV-6 "Finch", inference (docs/model.md §4.4): RWKV-5.2 with
 * a data-dependent token shift (a low-rank "LoRA" correction of each mix
 * vector) and a data-dependent, per-token decay. One code path for RNN mode
 * (one token) and sequence mode (a chunk of T tokens, matrix-matrix
 * products), continuing from the recurrent state.
 *
 * State of one layer: att_xx[C], S[H][N][N] (S[h][value i][key j], float32),
 * ffn_xx[C]; a fresh state is all zeros. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/wkv.h"
#include "model/common.h"

/* The five data-dependent mixes, in the order of the time_maa_w1 column
 * blocks and of time_maa_w2's first axis. */
enum { MIX_W, MIX_K, MIX_V, MIX_R, MIX_G, N_MIX };
static const char *const mix_names[N_MIX] = {"w", "k", "v", "r", "g"};

typedef struct rwkv6_layer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    float *maa_x, *maa[N_MIX]; /* [C] */
    matrix maa_w1;             /* [5 Dm, C] (f32, transposed from [C, 5 Dm]) */
    matrix maa_w2[N_MIX];      /* [C, Dm] each */
    float *decay;              /* time_decay [A], raw */
    matrix decay_w1;           /* [Dd, C] */
    matrix decay_w2;           /* [A, Dd] */
    float *u;                  /* time_faaaa [A] */
    matrix att_r, att_k, att_v, att_o, att_g;
    float *lnx_w, *lnx_b;
    float *ffn_maa_k, *ffn_maa_r;
    matrix ffn_k, ffn_r, ffn_v;
} rwkv6_layer;

typedef struct rwkv6 {
    rwkv_common c;
    int H, N, Dm, Dd;
    float gn_eps;
    rwkv6_layer *layers;
} rwkv6;

/* Scratch for one chunk of T tokens; "wide" buffers hold [T][max(C, A)]. */
typedef struct scratch {
    float *x, *z, *dz;         /* [T][C] residual stream, layernorm output, z_prev - z */
    float *xm[N_MIX];          /* [T][C] the mixed inputs x_w, x_k, x_v, x_r, x_g */
    float *r, *k, *v, *g, *wd; /* wide: projections and per-token decay */
    float *y, *tmp;            /* wide: WKV output; LoRA / projection output */
    float *lora;               /* [T][5 Dm] */
    float *lora_in;            /* [N_MIX][T][Dm] the mixes' LoRA inputs, then [T][Dd] */
    float *h;                  /* [T][F] channel-mix hidden */
} scratch;

static size_t wide(const rwkv6 *w) { return (size_t)(w->c.A > w->c.C ? w->c.A : w->c.C); }
static size_t lora_width(const rwkv6 *w) { return (size_t)(N_MIX * w->Dm > w->Dd ? N_MIX * w->Dm : w->Dd); }

static size_t rwkv6_scratch_floats(const void *impl, int T) {
    const rwkv6 *w = impl;
    return (size_t)T * ((1 + N_MIX) * (size_t)w->c.C + 7 * wide(w) + N_MIX * (size_t)w->Dm + lora_width(w) +
                        (size_t)w->c.F);
}

static scratch carve(const rwkv6 *w, float *x, float *z, float *p, int T) {
    scratch s = {.x = x, .z = z};
    const size_t tc = (size_t)T * w->c.C, tw = (size_t)T * wide(w);
    s.dz = p, p += tc;
    for (int c = 0; c < N_MIX; c++) s.xm[c] = p, p += tc;
    float **wides[] = {&s.r, &s.k, &s.v, &s.g, &s.wd, &s.y, &s.tmp};
    for (size_t i = 0; i < sizeof wides / sizeof wides[0]; i++) *wides[i] = p, p += tw;
    s.lora = p, p += (size_t)T * N_MIX * w->Dm;
    s.lora_in = p, p += (size_t)T * lora_width(w);
    s.h = p;
    return s;
}

/* Rows of the data-dependent token shift: out[t] = z[t] + dz[t] * (mu + m[t])
 * (m = NULL: mu alone). */
typedef struct lerp_args {
    const float *z, *dz, *mu, *m;
    float *out;
    int C;
} lerp_args;

static void ddlerp_row(void *p, int t) {
    const lerp_args *a = p;
    const size_t o = (size_t)t * a->C;
    const float *z = a->z + o, *d = a->dz + o, *mu = a->mu;
    float *out = a->out + o;
    if (a->m) {
        const float *m = a->m + o;
#pragma omp simd
        for (int i = 0; i < a->C; i++) out[i] = z[i] + d[i] * (mu[i] + m[i]);
    } else {
#pragma omp simd
        for (int i = 0; i < a->C; i++) out[i] = z[i] + d[i] * mu[i];
    }
}

/* The data-dependent token shift: x_c = z + dz (maa_c + tanh((z + dz maa_x) @ maa_w1)[c] @ maa_w2[c]). */
static void ddlerp(const rwkv6 *w, const rwkv6_layer *ly, const block_states *st, scratch *s, int T, int nt) {
    const int C = w->c.C, Dm = w->Dm;
    lerp_args a = {s->z, s->dz, ly->maa_x, NULL, s->tmp, C};
    parallel_rows(nt, T, 3 * (size_t)C, ddlerp_row, &a);
    block_matmul(st, &ly->maa_w1, s->tmp, T, s->lora, nt);
    for (size_t i = 0; i < (size_t)T * N_MIX * Dm; i++) s->lora[i] = tanhf(s->lora[i]);
    /* the five second products in one job (one meeting of the threads, not
     * five), each mix's LoRA output into x_c, then mixed in place */
    const matrix *W[N_MIX];
    const float *X[N_MIX];
    float *Y[N_MIX];
    for (int c = 0; c < N_MIX; c++) {
        float *in = s->lora_in + (size_t)c * T * Dm;
        for (int t = 0; t < T; t++)
            memcpy(in + (size_t)t * Dm, s->lora + ((size_t)t * N_MIX + c) * Dm, sizeof(float) * Dm);
        W[c] = &ly->maa_w2[c], X[c] = in, Y[c] = s->xm[c];
    }
    block_matmul_group(st, N_MIX, W, X, T, Y, nt);
    for (int c = 0; c < N_MIX; c++) {
        lerp_args mix = {s->z, s->dz, ly->maa[c], s->xm[c], s->xm[c], C};
        parallel_rows(nt, T, 4 * (size_t)C, ddlerp_row, &mix);
    }
}

/* w_t = exp(-exp(time_decay + lora_t)), in place over one row */
typedef struct decay_args {
    const float *decay;
    float *wd;
    int A;
} decay_args;

static void decay_row(void *p, int t) {
    const decay_args *a = p;
    float *wd = a->wd + (size_t)t * a->A;
    for (int i = 0; i < a->A; i++) wd[i] = expf(-expf(a->decay[i] + wd[i]));
}

static void time_mix(const rwkv6 *w, const rwkv6_layer *ly, const block_states *st, scratch *s, int T, int nt) {
    const int C = w->c.C, A = w->c.A, Dd = w->Dd;
    const shift_src prev = {st, 0}; /* att_xx, then S at C */
    layernorm_rows(s->x, ly->ln1_w, ly->ln1_b, T, C, s->z, nt);
    shift_delta_rows(s->z, prev, T, C, s->dz, nt);
    shift_save(prev, s->z, T, C);
    ddlerp(w, ly, st, s, T, nt);
    /* w_t = exp(-exp(time_decay + tanh(x_w @ decay_w1) @ decay_w2)) */
    block_matmul(st, &ly->decay_w1, s->xm[MIX_W], T, s->lora_in, nt);
    for (size_t i = 0; i < (size_t)T * Dd; i++) s->lora_in[i] = tanhf(s->lora_in[i]);
    /* the decay's second product with receptance, key, value and gate: one job */
    const matrix *W[] = {&ly->decay_w2, &ly->att_r, &ly->att_k, &ly->att_v, &ly->att_g};
    const float *X[] = {s->lora_in, s->xm[MIX_R], s->xm[MIX_K], s->xm[MIX_V], s->xm[MIX_G]};
    float *const Y[] = {s->wd, s->r, s->k, s->v, s->g};
    block_matmul_group(st, 5, W, X, T, Y, nt);
    decay_args dec = {ly->decay, s->wd, A};
    parallel_rows(nt, T, 8 * (size_t)A, decay_row, &dec);
    for (int t = 0, rows = st->batched ? 1 : T; t < T; t += rows) {
        const size_t o = (size_t)t * A;
        wkv5_forward(rows, w->H, w->N, s->r + o, s->k + o, s->v + o, s->wd + o, (size_t)A, ly->u, row_state(st, t) + C,
                     s->y + o, nt);
    }
    group_norm_gate_rows(s->y, s->g, ly->lnx_w, ly->lnx_b, w->H, w->N, w->gn_eps, T, nt);
    block_matmul(st, &ly->att_o, s->y, T, s->tmp, nt);
    add_rows(s->x, s->tmp, T, C, nt);
}

/* sigmoid(Wr (z + dz maa_r)) * Wv relu(Wk (z + dz maa_k))^2 */
static void channel_mix(const rwkv6 *w, const rwkv6_layer *ly, const block_states *st, scratch *s, int T, int nt) {
    const int C = w->c.C;
    const shift_src prev = {st, w->c.layer_state - C}; /* ffn_xx */
    float *xk = s->xm[MIX_K], *xr = s->xm[MIX_R];
    layernorm_rows(s->x, ly->ln2_w, ly->ln2_b, T, C, s->z, nt);
    const float *mu[] = {ly->ffn_maa_k, ly->ffn_maa_r};
    float *const in[] = {xk, xr};
    shift_lerp_rows(s->z, prev, T, C, 2, mu, in, nt);
    shift_save(prev, s->z, T, C);
    ffn_relu2(st, &ly->ffn_k, &ly->ffn_v, &ly->ffn_r, xk, xr, T, s->h, s->v, s->r, s->x, nt);
}

static void rwkv6_block(const void *impl, int l, const block_states *st, float *x, float *z, float *scratch_mem, int T, int nt) {
    const rwkv6 *w = impl;
    scratch s = carve(w, x, z, scratch_mem, T);
    time_mix(w, &w->layers[l], st, &s, T, nt);
    channel_mix(w, &w->layers[l], st, &s, T, nt);
}

static const model_ops rwkv6_ops = {NULL, rwkv6_scratch_floats, rwkv6_block};

static rwkv_status load_layer(tensor_set *set, rwkv6 *w, int l, rwkv_error *err) {
    rwkv6_layer *ly = &w->layers[l];
    const int C = w->c.C, A = w->c.A, F = w->c.F;
    char n[128], suffix[64];
#define NAME(sfx) (snprintf(n, sizeof n, "blocks.%d.%s", l, sfx), n)
    LOAD_VEC(ly->ln1_w, NAME("ln1.weight"), C);
    LOAD_VEC(ly->ln1_b, NAME("ln1.bias"), C);
    LOAD_VEC(ly->ln2_w, NAME("ln2.weight"), C);
    LOAD_VEC(ly->ln2_b, NAME("ln2.bias"), C);
    LOAD_VEC(ly->maa_x, NAME("att.time_maa_x"), C);
    for (int c = 0; c < N_MIX; c++) {
        snprintf(suffix, sizeof suffix, "att.time_maa_%s", mix_names[c]);
        LOAD_VEC(ly->maa[c], NAME(suffix), C);
    }
    LOAD_LORA(&ly->maa_w1, NAME("att.time_maa_w1"), 1, C, N_MIX * w->Dm);
    LOAD_LORA(ly->maa_w2, NAME("att.time_maa_w2"), N_MIX, w->Dm, C);
    LOAD_VEC(ly->decay, NAME("att.time_decay"), A);
    LOAD_LORA(&ly->decay_w1, NAME("att.time_decay_w1"), 1, C, w->Dd);
    LOAD_LORA(&ly->decay_w2, NAME("att.time_decay_w2"), 1, w->Dd, A);
    LOAD_VEC(ly->u, NAME("att.time_faaaa"), A);
    LOAD_MAT(ly->att_r, NAME("att.receptance.weight"), A, C);
    LOAD_MAT(ly->att_k, NAME("att.key.weight"), A, C);
    LOAD_MAT(ly->att_v, NAME("att.value.weight"), A, C);
    LOAD_MAT(ly->att_g, NAME("att.gate.weight"), A, C);
    LOAD_MAT(ly->att_o, NAME("att.output.weight"), C, A);
    LOAD_VEC(ly->lnx_w, NAME("att.ln_x.weight"), A);
    LOAD_VEC(ly->lnx_b, NAME("att.ln_x.bias"), A);
    LOAD_VEC(ly->ffn_maa_k, NAME("ffn.time_maa_k"), C);
    LOAD_VEC(ly->ffn_maa_r, NAME("ffn.time_maa_r"), C);
    LOAD_MAT(ly->ffn_k, NAME("ffn.key.weight"), F, C);
    LOAD_MAT(ly->ffn_r, NAME("ffn.receptance.weight"), C, C);
    LOAD_MAT(ly->ffn_v, NAME("ffn.value.weight"), C, F);
#undef NAME
    return RWKV_OK;
}

/* Heads from att.time_faaaa [H, N], Dm from att.time_maa_w1 [C, 5 Dm], Dd
 * from att.time_decay_w1 [C, Dd]. */
static rwkv_status read_heads(const tensor_set *set, rwkv6 *w, rwkv_error *err) {
    const tensor *u = model_tensor(set, "blocks.0.att.time_faaaa", err);
    const tensor *m1 = u ? model_tensor(set, "blocks.0.att.time_maa_w1", err) : NULL;
    const tensor *d1 = m1 ? model_tensor(set, "blocks.0.att.time_decay_w1", err) : NULL;
    if (!d1) return RWKV_ERR_SHAPE;
    const int A = w->c.A;
    int64_t H = u->ndim >= 1 ? u->shape[0] : 0;
    if (H < 1 || H > A || A % H != 0 || tensor_numel(u) != A)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "blocks.0.att.time_faaaa must be [H, N] with H*N = dim_att %d", A);
    w->H = (int)H;
    w->N = A / w->H;
    if (m1->ndim != 2 || m1->shape[1] % N_MIX != 0 || m1->shape[1] < N_MIX || m1->shape[1] > (1 << 16))
        return rwkv_fail(err, RWKV_ERR_SHAPE, "blocks.0.att.time_maa_w1 must be [C, 5*Dm]");
    if (d1->ndim != 2 || d1->shape[1] < 1 || d1->shape[1] > (1 << 16))
        return rwkv_fail(err, RWKV_ERR_SHAPE, "blocks.0.att.time_decay_w1 must be [C, Dd]");
    w->Dm = (int)(m1->shape[1] / N_MIX);
    w->Dd = (int)d1->shape[1];
    return RWKV_OK;
}

rwkv_status rwkv6_build(rwkv_model *m, rwkv_error *err) {
    tensor_set *set = &m->weights;
    if (tensor_set_find(set, "blocks.0.att.time_state"))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "state-tuned RWKV-6 files (att.time_state) are not supported");
    rwkv6 *w = calloc(1, sizeof *w);
    if (!w) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    m->impl = w;
    m->ops = &rwkv6_ops;
    m->backend = &rwkv_cpu_backend;
    rwkv_status s = common_load(set, &w->c, err);
    if (s != RWKV_OK || (s = read_heads(set, w, err)) != RWKV_OK) return s;
    w->c.layer_state = 2 * (size_t)w->c.C + (size_t)w->H * (size_t)w->N * (size_t)w->N;
    w->gn_eps = m->gn_eps;
    if (!(w->gn_eps > 0.0f)) return rwkv_fail(err, RWKV_ERR_ARG, "the GroupNorm epsilon of ln_x is not set");
    w->c.layers = w->layers = calloc((size_t)w->c.L, sizeof *w->layers);
    if (!w->layers) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    for (int l = 0; l < w->c.L; l++)
        if ((s = load_layer(set, w, l, err)) != RWKV_OK) return s;
    common_fill_info(&w->c, "6", &m->info);
    m->info.n_head = w->H;
    m->info.head_size = w->N;
    m->info.d_mix_lora = w->Dm;
    m->info.d_decay_lora = w->Dd;
    m->info.gn_eps = w->gn_eps;
    return RWKV_OK;
}
