/* RWKV-6 "Finch", inference (docs/rwkv-architecture.md §4.4): RWKV-5.2 with
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

#include "kernels/kernels_heads.h"
#include "model/model.h"

#define LN_EPS 1e-5f
#define CHUNK_TOKENS 256 /* bounds scratch memory for long prompts */

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
    int V, C, L, F, A, H, N, Dm, Dd;
    float gn_eps;
    matrix emb, head;
    float *ln0_w, *ln0_b, *ln_out_w, *ln_out_b;
    rwkv6_layer *layers;
} rwkv6;

static size_t layer_state_floats(const rwkv6 *w) {
    return 2 * (size_t)w->C + (size_t)w->H * (size_t)w->N * (size_t)w->N;
}

static void rwkv6_state_init(const rwkv_model *m, float *state) {
    const rwkv6 *w = m->impl;
    memset(state, 0, (size_t)w->L * layer_state_floats(w) * sizeof(float));
}

/* Scratch for one chunk of T tokens; "wide" buffers hold [T][max(C, A)]. */
typedef struct scratch {
    float *x, *z, *dz;         /* [T][C] residual stream, layernorm output, z_prev - z */
    float *xm[N_MIX];          /* [T][C] the mixed inputs x_w, x_k, x_v, x_r, x_g */
    float *r, *k, *v, *g, *wd; /* wide: projections and per-token decay */
    float *y, *tmp;            /* wide: WKV output; LoRA / projection output */
    float *lora;               /* [T][5 Dm] */
    float *lora_in;            /* [T][max(Dm, Dd)] */
    float *h;                  /* [T][F] channel-mix hidden */
} scratch;

/* Token-wise work (norms, mixes, activations) of a chunk goes to the model's
 * threads when there is enough of it (sequence mode); each token's row is
 * computed the same way whichever thread does it. */
#define PAR_MIN_FLOATS 16384
static int par(int T, int n) { return T > 1 && (long)T * n >= PAR_MIN_FLOATS; }

/* z = LN(x) for each token. */
static void layernorm_rows(const float *x, const float *w, const float *b, int T, int C, float *z, int nt) {
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, C))
    for (int t = 0; t < T; t++) layernorm(x + (size_t)t * C, w, b, C, LN_EPS, z + (size_t)t * C);
}

/* x += y over T rows of C. */
static void add_rows(float *x, const float *y, int T, int C, int nt) {
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, C))
    for (int t = 0; t < T; t++) {
        float *xt = x + (size_t)t * C;
        const float *yt = y + (size_t)t * C;
#pragma omp simd
        for (int i = 0; i < C; i++) xt[i] += yt[i];
    }
}

/* The data-dependent token shift: x_c = z + dz (maa_c + tanh((z + dz maa_x) @ maa_w1)[c] @ maa_w2[c]). */
static void ddlerp(const rwkv6 *w, const rwkv6_layer *ly, scratch *s, int T, int nt) {
    const int C = w->C, Dm = w->Dm;
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, C))
    for (int t = 0; t < T; t++) {
        const float *z = s->z + (size_t)t * C, *d = s->dz + (size_t)t * C;
        float *xx = s->tmp + (size_t)t * C;
#pragma omp simd
        for (int i = 0; i < C; i++) xx[i] = z[i] + d[i] * ly->maa_x[i];
    }
    matmul(&ly->maa_w1, s->tmp, T, s->lora, nt);
    for (size_t i = 0; i < (size_t)T * N_MIX * Dm; i++) s->lora[i] = tanhf(s->lora[i]);
    for (int c = 0; c < N_MIX; c++) {
        for (int t = 0; t < T; t++)
            memcpy(s->lora_in + (size_t)t * Dm, s->lora + ((size_t)t * N_MIX + c) * Dm, sizeof(float) * Dm);
        matmul(&ly->maa_w2[c], s->lora_in, T, s->tmp, nt);
        const float *maa = ly->maa[c];
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, C))
        for (int t = 0; t < T; t++) {
            const float *z = s->z + (size_t)t * C, *d = s->dz + (size_t)t * C, *m = s->tmp + (size_t)t * C;
            float *out = s->xm[c] + (size_t)t * C;
#pragma omp simd
            for (int i = 0; i < C; i++) out[i] = z[i] + d[i] * (maa[i] + m[i]);
        }
    }
}

static void time_mix(const rwkv6 *w, const rwkv6_layer *ly, float *st, scratch *s, int T, int nt) {
    const int C = w->C, A = w->A, Dd = w->Dd;
    float *att_xx = st, *S = st + C;
    layernorm_rows(s->x, ly->ln1_w, ly->ln1_b, T, C, s->z, nt);
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, C))
    for (int t = 0; t < T; t++) {
        const float *cur = s->z + (size_t)t * C, *prev = t ? cur - C : att_xx;
        float *d = s->dz + (size_t)t * C;
#pragma omp simd
        for (int i = 0; i < C; i++) d[i] = prev[i] - cur[i];
    }
    memcpy(att_xx, s->z + (size_t)(T - 1) * C, sizeof(float) * C);
    ddlerp(w, ly, s, T, nt);
    /* w_t = exp(-exp(time_decay + tanh(x_w @ decay_w1) @ decay_w2)) */
    matmul(&ly->decay_w1, s->xm[MIX_W], T, s->lora_in, nt);
    for (size_t i = 0; i < (size_t)T * Dd; i++) s->lora_in[i] = tanhf(s->lora_in[i]);
    matmul(&ly->decay_w2, s->lora_in, T, s->wd, nt);
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, A))
    for (int t = 0; t < T; t++) {
        float *wd = s->wd + (size_t)t * A;
        for (int i = 0; i < A; i++) wd[i] = expf(-expf(ly->decay[i] + wd[i]));
    }
    matmul(&ly->att_r, s->xm[MIX_R], T, s->r, nt);
    matmul(&ly->att_k, s->xm[MIX_K], T, s->k, nt);
    matmul(&ly->att_v, s->xm[MIX_V], T, s->v, nt);
    matmul(&ly->att_g, s->xm[MIX_G], T, s->g, nt);
    wkv5_forward(T, w->H, w->N, s->r, s->k, s->v, s->wd, (size_t)A, ly->u, S, s->y, nt);
    /* GN(y) * silu(g) */
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, A))
    for (int t = 0; t < T; t++) {
        float *y = s->y + (size_t)t * A;
        const float *g = s->g + (size_t)t * A;
        group_norm(y, ly->lnx_w, ly->lnx_b, w->H, w->N, w->gn_eps, y);
        for (int i = 0; i < A; i++) y[i] *= g[i] * sigmoidf(g[i]);
    }
    matmul(&ly->att_o, s->y, T, s->tmp, nt);
    add_rows(s->x, s->tmp, T, C, nt);
}

/* sigmoid(Wr (z + dz maa_r)) * Wv relu(Wk (z + dz maa_k))^2 */
static void channel_mix(const rwkv6 *w, const rwkv6_layer *ly, float *st, scratch *s, int T, int nt) {
    const int C = w->C, F = w->F;
    float *ffn_xx = st + layer_state_floats(w) - C;
    float *xk = s->xm[MIX_K], *xr = s->xm[MIX_R];
    layernorm_rows(s->x, ly->ln2_w, ly->ln2_b, T, C, s->z, nt);
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, C))
    for (int t = 0; t < T; t++) {
        const float *cur = s->z + (size_t)t * C, *prev = t ? cur - C : ffn_xx;
        float *ok = xk + (size_t)t * C, *orr = xr + (size_t)t * C;
#pragma omp simd
        for (int i = 0; i < C; i++) {
            float d = prev[i] - cur[i];
            ok[i] = cur[i] + d * ly->ffn_maa_k[i];
            orr[i] = cur[i] + d * ly->ffn_maa_r[i];
        }
    }
    memcpy(ffn_xx, s->z + (size_t)(T - 1) * C, sizeof(float) * C);
    matmul(&ly->ffn_k, xk, T, s->h, nt); /* [T][F] */
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, F))
    for (int t = 0; t < T; t++) {
        float *h = s->h + (size_t)t * F;
#pragma omp simd
        for (int i = 0; i < F; i++) {
            float a = 0.5f * (h[i] + fabsf(h[i])); /* relu, branch-free (exact: max(h, 0)) */
            h[i] = a * a;
        }
    }
    matmul(&ly->ffn_v, s->h, T, s->v, nt); /* [T][C] */
    matmul(&ly->ffn_r, xr, T, s->r, nt);   /* [T][C] */
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, C))
    for (int t = 0; t < T; t++) {
        float *x = s->x + (size_t)t * C;
        const float *r = s->r + (size_t)t * C, *v = s->v + (size_t)t * C;
        for (int i = 0; i < C; i++) x[i] += sigmoidf(r[i]) * v[i];
    }
}

static void eval_chunk(rwkv_model *m, float *state, const int *tokens, int T, float *logits, int all_logits,
                       scratch *s) {
    const rwkv6 *w = m->impl;
    const int C = w->C, nt = m->n_threads;
    for (int t = 0; t < T; t++) matrix_row_f32(&w->emb, tokens[t], s->x + (size_t)t * C);
    layernorm_rows(s->x, w->ln0_w, w->ln0_b, T, C, s->x, nt);
    for (int l = 0; l < w->L; l++) {
        float *st = state + (size_t)l * layer_state_floats(w);
        time_mix(w, &w->layers[l], st, s, T, nt);
        channel_mix(w, &w->layers[l], st, s, T, nt);
    }
    if (!logits) return;
    int first = all_logits ? 0 : T - 1, rows = T - first;
    layernorm_rows(s->x + (size_t)first * C, w->ln_out_w, w->ln_out_b, rows, C, s->z, nt);
    matmul(&w->head, s->z, rows, logits, nt);
}

static rwkv_status rwkv6_eval(rwkv_model *m, float *state, const int *tokens, size_t n, float *logits,
                              int all_logits, rwkv_error *err) {
    const rwkv6 *w = m->impl;
    int T = n < CHUNK_TOKENS ? (int)n : CHUNK_TOKENS;
    size_t wide = (size_t)(w->A > w->C ? w->A : w->C);
    size_t dl = (size_t)(w->Dm > w->Dd ? w->Dm : w->Dd);
    size_t tc = (size_t)T * w->C, tw = (size_t)T * wide, tf = (size_t)T * w->F;
    size_t tl = (size_t)T * N_MIX * w->Dm, td = (size_t)T * dl;
    float *buf = malloc(sizeof(float) * ((3 + N_MIX) * tc + 7 * tw + tl + td + tf));
    if (!buf) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for a %d-token scratch", T);
    float *p = buf;
    scratch s;
    s.x = p, p += tc;
    s.z = p, p += tc;
    s.dz = p, p += tc;
    for (int c = 0; c < N_MIX; c++) s.xm[c] = p, p += tc;
    float **wides[] = {&s.r, &s.k, &s.v, &s.g, &s.wd, &s.y, &s.tmp};
    for (size_t i = 0; i < sizeof wides / sizeof wides[0]; i++) *wides[i] = p, p += tw;
    s.lora = p, p += tl;
    s.lora_in = p, p += td;
    s.h = p;
    for (size_t done = 0; done < n; done += (size_t)T) {
        int len = n - done < (size_t)T ? (int)(n - done) : T;
        float *out = NULL;
        if (logits && all_logits) out = logits + done * (size_t)w->V;
        else if (logits && done + (size_t)len == n) out = logits;
        eval_chunk(m, state, tokens + done, len, out, all_logits, &s);
    }
    free(buf);
    return rwkv_ok(err);
}

static void rwkv6_free(void *impl) {
    rwkv6 *w = impl;
    if (!w) return;
    free(w->layers);
    free(w);
}

static const model_ops rwkv6_ops = {rwkv6_eval, rwkv6_state_init, rwkv6_free};

#define VEC(dst, name, n)                                                                          \
    do {                                                                                           \
        if (!((dst) = model_vector(set, (name), (n), err))) return err ? err->code : RWKV_ERR_SHAPE; \
    } while (0)
#define MAT(dst, name, r, c)                                                                       \
    do {                                                                                           \
        rwkv_status ms_ = model_matrix(set, (name), (r), (c), &(dst), err);                        \
        if (ms_ != RWKV_OK) return ms_;                                                            \
    } while (0)
#define LORA(dst, name, count, in, out)                                                            \
    do {                                                                                           \
        rwkv_status ls_ = model_lora(set, (name), (count), (in), (out), (dst), err);               \
        if (ls_ != RWKV_OK) return ls_;                                                            \
    } while (0)

static rwkv_status load_layer(tensor_set *set, rwkv6 *w, int l, rwkv_error *err) {
    rwkv6_layer *ly = &w->layers[l];
    const int C = w->C, A = w->A, F = w->F;
    char n[128], suffix[64];
#define NAME(sfx) (snprintf(n, sizeof n, "blocks.%d.%s", l, sfx), n)
    VEC(ly->ln1_w, NAME("ln1.weight"), C);
    VEC(ly->ln1_b, NAME("ln1.bias"), C);
    VEC(ly->ln2_w, NAME("ln2.weight"), C);
    VEC(ly->ln2_b, NAME("ln2.bias"), C);
    VEC(ly->maa_x, NAME("att.time_maa_x"), C);
    for (int c = 0; c < N_MIX; c++) {
        snprintf(suffix, sizeof suffix, "att.time_maa_%s", mix_names[c]);
        VEC(ly->maa[c], NAME(suffix), C);
    }
    LORA(&ly->maa_w1, NAME("att.time_maa_w1"), 1, C, N_MIX * w->Dm);
    LORA(ly->maa_w2, NAME("att.time_maa_w2"), N_MIX, w->Dm, C);
    VEC(ly->decay, NAME("att.time_decay"), A);
    LORA(&ly->decay_w1, NAME("att.time_decay_w1"), 1, C, w->Dd);
    LORA(&ly->decay_w2, NAME("att.time_decay_w2"), 1, w->Dd, A);
    VEC(ly->u, NAME("att.time_faaaa"), A);
    MAT(ly->att_r, NAME("att.receptance.weight"), A, C);
    MAT(ly->att_k, NAME("att.key.weight"), A, C);
    MAT(ly->att_v, NAME("att.value.weight"), A, C);
    MAT(ly->att_g, NAME("att.gate.weight"), A, C);
    MAT(ly->att_o, NAME("att.output.weight"), C, A);
    VEC(ly->lnx_w, NAME("att.ln_x.weight"), A);
    VEC(ly->lnx_b, NAME("att.ln_x.bias"), A);
    VEC(ly->ffn_maa_k, NAME("ffn.time_maa_k"), C);
    VEC(ly->ffn_maa_r, NAME("ffn.time_maa_r"), C);
    MAT(ly->ffn_k, NAME("ffn.key.weight"), F, C);
    MAT(ly->ffn_r, NAME("ffn.receptance.weight"), C, C);
    MAT(ly->ffn_v, NAME("ffn.value.weight"), C, F);
#undef NAME
    return RWKV_OK;
}

/* Sizes from the tensors: V, C from emb.weight, L from the block indices,
 * A from att.key rows, F from ffn.key rows, H and N from att.time_faaaa
 * [H, N], Dm from att.time_maa_w1 [C, 5 Dm], Dd from att.time_decay_w1 [C, Dd]. */
static rwkv_status read_shape(const tensor_set *set, rwkv6 *w, rwkv_error *err) {
    const tensor *emb = model_tensor(set, "emb.weight", err);
    if (!emb) return RWKV_ERR_SHAPE;
    if (emb->ndim != 2 || emb->shape[0] < 1 || emb->shape[1] < 1 || emb->shape[0] > (1 << 24) ||
        emb->shape[1] > (1 << 16))
        return rwkv_fail(err, RWKV_ERR_SHAPE, "emb.weight must be a [n_vocab, n_embd] matrix of plausible size");
    w->V = (int)emb->shape[0];
    w->C = (int)emb->shape[1];
    if ((w->L = model_layer_count(set)) == 0) return rwkv_fail(err, RWKV_ERR_SHAPE, "no blocks.N.* tensors found");
    const tensor *k = model_tensor(set, "blocks.0.att.key.weight", err);
    const tensor *fk = k ? model_tensor(set, "blocks.0.ffn.key.weight", err) : NULL;
    const tensor *u = fk ? model_tensor(set, "blocks.0.att.time_faaaa", err) : NULL;
    const tensor *m1 = u ? model_tensor(set, "blocks.0.att.time_maa_w1", err) : NULL;
    const tensor *d1 = m1 ? model_tensor(set, "blocks.0.att.time_decay_w1", err) : NULL;
    if (!d1) return RWKV_ERR_SHAPE;
    if (k->ndim != 2 || fk->ndim != 2 || k->shape[0] < 1 || fk->shape[0] < 1 || k->shape[0] > (1 << 16) ||
        fk->shape[0] > (1 << 18))
        return rwkv_fail(err, RWKV_ERR_SHAPE, "att.key / ffn.key weights must be matrices of plausible size");
    w->A = (int)k->shape[0];
    w->F = (int)fk->shape[0];
    int64_t H = u->ndim >= 1 ? u->shape[0] : 0;
    if (H < 1 || H > w->A || w->A % H != 0 || tensor_numel(u) != w->A)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "blocks.0.att.time_faaaa must be [H, N] with H*N = dim_att %d", w->A);
    w->H = (int)H;
    w->N = w->A / w->H;
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
    rwkv6 *w = calloc(1, sizeof *w);
    if (!w) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    m->impl = w;
    m->ops = &rwkv6_ops;
    rwkv_status s = read_shape(set, w, err);
    if (s != RWKV_OK) return s;
    if (tensor_set_find(set, "blocks.0.att.time_state"))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "state-tuned RWKV-6 files (att.time_state) are not supported");
    w->gn_eps = m->gn_eps;
    if (!(w->gn_eps > 0.0f)) return rwkv_fail(err, RWKV_ERR_ARG, "the GroupNorm epsilon of ln_x is not set");
    w->layers = calloc((size_t)w->L, sizeof *w->layers);
    if (!w->layers) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    MAT(w->emb, "emb.weight", w->V, w->C);
    MAT(w->head, "head.weight", w->V, w->C);
    VEC(w->ln0_w, "blocks.0.ln0.weight", w->C);
    VEC(w->ln0_b, "blocks.0.ln0.bias", w->C);
    VEC(w->ln_out_w, "ln_out.weight", w->C);
    VEC(w->ln_out_b, "ln_out.bias", w->C);
    for (int l = 0; l < w->L; l++)
        if ((s = load_layer(set, w, l, err)) != RWKV_OK) return s;
    rwkv_model_info *info = &m->info;
    info->version = "6";
    info->n_vocab = w->V;
    info->n_embd = w->C;
    info->n_layer = w->L;
    info->n_ffn = w->F;
    info->dim_att = w->A;
    info->n_head = w->H;
    info->head_size = w->N;
    info->d_mix_lora = w->Dm;
    info->d_decay_lora = w->Dd;
    info->gn_eps = w->gn_eps;
    info->state_floats = (size_t)w->L * layer_state_floats(w);
    return RWKV_OK;
}
