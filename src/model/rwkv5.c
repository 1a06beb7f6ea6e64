/* RWKV-5 "Eagle", inference (docs/rwkv-architecture.md §4.3): v5.2, the
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

#include "kernels/kernels_heads.h"
#include "model/model.h"

#define LN_EPS 1e-5f
#define CHUNK_TOKENS 256 /* bounds scratch memory for long prompts */

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
    int V, C, L, F, A, H, N;
    int has_gate;
    float gn_eps;
    matrix emb, head;
    float *ln0_w, *ln0_b, *ln_out_w, *ln_out_b;
    rwkv5_layer *layers;
} rwkv5;

static size_t layer_state_floats(const rwkv5 *w) {
    return 2 * (size_t)w->C + (size_t)w->H * (size_t)w->N * (size_t)w->N;
}

static void rwkv5_state_init(const rwkv_model *m, float *state) {
    const rwkv5 *w = m->impl;
    memset(state, 0, (size_t)w->L * layer_state_floats(w) * sizeof(float));
}

/* Scratch for one chunk of T tokens; "wide" buffers hold [T][max(C, A)]. */
typedef struct scratch {
    float *x, *z;              /* [T][C] residual stream, layernorm output */
    float *xa, *xb, *xc, *xd;  /* wide: mixed inputs */
    float *r, *k, *v, *g, *y;  /* wide: projections, WKV output */
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

static void time_mix(const rwkv5 *w, const rwkv5_layer *ly, float *st, scratch *s, int T, int nt) {
    const int C = w->C, A = w->A;
    float *att_xx = st, *S = st + C;
    layernorm_rows(s->x, ly->ln1_w, ly->ln1_b, T, C, s->z, nt);
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, C))
    for (int t = 0; t < T; t++) {
        const float *cur = s->z + (size_t)t * C, *prev = t ? cur - C : att_xx;
        token_mix(cur, prev, ly->mix_k, C, s->xa + (size_t)t * C);
        token_mix(cur, prev, ly->mix_v, C, s->xb + (size_t)t * C);
        token_mix(cur, prev, ly->mix_r, C, s->xc + (size_t)t * C);
        if (w->has_gate) token_mix(cur, prev, ly->mix_g, C, s->xd + (size_t)t * C);
    }
    memcpy(att_xx, s->z + (size_t)(T - 1) * C, sizeof(float) * C);
    matmul(&ly->att_k, s->xa, T, s->k, nt);
    matmul(&ly->att_v, s->xb, T, s->v, nt);
    matmul(&ly->att_r, s->xc, T, s->r, nt);
    if (w->has_gate) matmul(&ly->att_g, s->xd, T, s->g, nt);
    wkv5_forward(T, w->H, w->N, s->r, s->k, s->v, ly->w, 0, ly->u, S, s->y, nt);
    /* GN(y) * silu(g) */
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, A))
    for (int t = 0; t < T; t++) {
        float *y = s->y + (size_t)t * A;
        const float *g = s->g + (size_t)t * A;
        group_norm(y, ly->lnx_w, ly->lnx_b, w->H, w->N, w->gn_eps, y);
        if (w->has_gate)
            for (int i = 0; i < A; i++) y[i] *= g[i] * sigmoidf(g[i]);
    }
    matmul(&ly->att_o, s->y, T, s->k, nt); /* k is free again: [T][C] output */
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, C))
    for (int t = 0; t < T; t++) {
        float *x = s->x + (size_t)t * C;
        const float *o = s->k + (size_t)t * C;
#pragma omp simd
        for (int i = 0; i < C; i++) x[i] += o[i];
    }
}

/* As RWKV-4: sigmoid(Wr xr) * Wv relu(Wk xk)^2. */
static void channel_mix(const rwkv5 *w, const rwkv5_layer *ly, float *st, scratch *s, int T, int nt) {
    const int C = w->C, F = w->F;
    float *ffn_xx = st + layer_state_floats(w) - C;
    layernorm_rows(s->x, ly->ln2_w, ly->ln2_b, T, C, s->z, nt);
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, C))
    for (int t = 0; t < T; t++) {
        const float *cur = s->z + (size_t)t * C, *prev = t ? cur - C : ffn_xx;
        token_mix(cur, prev, ly->ffn_mix_k, C, s->xa + (size_t)t * C);
        token_mix(cur, prev, ly->ffn_mix_r, C, s->xb + (size_t)t * C);
    }
    memcpy(ffn_xx, s->z + (size_t)(T - 1) * C, sizeof(float) * C);
    matmul(&ly->ffn_k, s->xa, T, s->h, nt); /* [T][F] */
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, F))
    for (int t = 0; t < T; t++) {
        float *h = s->h + (size_t)t * F;
#pragma omp simd
        for (int i = 0; i < F; i++) {
            float a = 0.5f * (h[i] + fabsf(h[i])); /* relu, branch-free (exact: max(h, 0)) */
            h[i] = a * a;
        }
    }
    matmul(&ly->ffn_v, s->h, T, s->v, nt);  /* [T][C] */
    matmul(&ly->ffn_r, s->xb, T, s->r, nt); /* [T][C] */
#pragma omp parallel for schedule(static) num_threads(nt) if (par(T, C))
    for (int t = 0; t < T; t++) {
        float *x = s->x + (size_t)t * C;
        const float *r = s->r + (size_t)t * C, *v = s->v + (size_t)t * C;
        for (int i = 0; i < C; i++) x[i] += sigmoidf(r[i]) * v[i];
    }
}

static void eval_chunk(rwkv_model *m, float *state, const int *tokens, int T, float *logits, int all_logits,
                       scratch *s) {
    const rwkv5 *w = m->impl;
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

static rwkv_status rwkv5_eval(rwkv_model *m, float *state, const int *tokens, size_t n, float *logits,
                              int all_logits, rwkv_error *err) {
    const rwkv5 *w = m->impl;
    int T = n < CHUNK_TOKENS ? (int)n : CHUNK_TOKENS;
    size_t wide = (size_t)(w->A > w->C ? w->A : w->C);
    size_t tc = (size_t)T * w->C, tw = (size_t)T * wide, tf = (size_t)T * w->F;
    float *buf = malloc(sizeof(float) * (2 * tc + 9 * tw + tf));
    if (!buf) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for a %d-token scratch", T);
    float *p = buf;
    scratch s;
    s.x = p, p += tc;
    s.z = p, p += tc;
    float **wides[] = {&s.xa, &s.xb, &s.xc, &s.xd, &s.r, &s.k, &s.v, &s.g, &s.y};
    for (size_t i = 0; i < sizeof wides / sizeof wides[0]; i++) *wides[i] = p, p += tw;
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

static void rwkv5_free(void *impl) {
    rwkv5 *w = impl;
    if (!w) return;
    free(w->layers);
    free(w);
}

static const model_ops rwkv5_ops = {rwkv5_eval, rwkv5_state_init, rwkv5_free};

#define VEC(dst, name, n)                                                                          \
    do {                                                                                           \
        if (!((dst) = model_vector(set, (name), (n), err))) return err ? err->code : RWKV_ERR_SHAPE; \
    } while (0)
#define MAT(dst, name, r, c)                                                                       \
    do {                                                                                           \
        rwkv_status ms_ = model_matrix(set, (name), (r), (c), &(dst), err);                        \
        if (ms_ != RWKV_OK) return ms_;                                                            \
    } while (0)

/* A per-channel vector [A] from a tensor holding one value per channel
 * ([H, N]) or one per head ([H], the 5.0/5.1 previews), broadcast. */
static float *head_vector(tensor_set *set, const rwkv5 *w, const char *name, rwkv_error *err) {
    const tensor *t = model_tensor(set, name, err);
    if (!t) return NULL;
    int64_t n = tensor_numel(t);
    if (n != w->A && n != w->H) {
        rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' has %lld elements, expected %d (per channel) or %d (per head)",
                  name, (long long)n, w->A, w->H);
        return NULL;
    }
    float *v = model_vector(set, name, n, err);
    float *out = v ? tensor_set_alloc(set, sizeof(float) * (size_t)w->A) : NULL;
    if (v && !out) rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    if (!out) return NULL;
    for (int i = 0; i < w->A; i++) out[i] = n == w->A ? v[i] : v[i / w->N];
    return out;
}

static rwkv_status load_layer(tensor_set *set, rwkv5 *w, int l, rwkv_error *err) {
    rwkv5_layer *ly = &w->layers[l];
    const int C = w->C, A = w->A, F = w->F;
    char n[128];
#define NAME(suffix) (snprintf(n, sizeof n, "blocks.%d.%s", l, suffix), n)
    VEC(ly->ln1_w, NAME("ln1.weight"), C);
    VEC(ly->ln1_b, NAME("ln1.bias"), C);
    VEC(ly->ln2_w, NAME("ln2.weight"), C);
    VEC(ly->ln2_b, NAME("ln2.bias"), C);
    VEC(ly->mix_k, NAME("att.time_mix_k"), C);
    VEC(ly->mix_v, NAME("att.time_mix_v"), C);
    VEC(ly->mix_r, NAME("att.time_mix_r"), C);
    if (w->has_gate) {
        VEC(ly->mix_g, NAME("att.time_mix_g"), C);
        MAT(ly->att_g, NAME("att.gate.weight"), A, C);
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
    MAT(ly->att_r, NAME("att.receptance.weight"), A, C);
    MAT(ly->att_k, NAME("att.key.weight"), A, C);
    MAT(ly->att_v, NAME("att.value.weight"), A, C);
    MAT(ly->att_o, NAME("att.output.weight"), C, A);
    VEC(ly->lnx_w, NAME("att.ln_x.weight"), A);
    VEC(ly->lnx_b, NAME("att.ln_x.bias"), A);
    VEC(ly->ffn_mix_k, NAME("ffn.time_mix_k"), C);
    VEC(ly->ffn_mix_r, NAME("ffn.time_mix_r"), C);
    MAT(ly->ffn_k, NAME("ffn.key.weight"), F, C);
    MAT(ly->ffn_r, NAME("ffn.receptance.weight"), C, C);
    MAT(ly->ffn_v, NAME("ffn.value.weight"), C, F);
#undef NAME
    return RWKV_OK;
}

/* Sizes from the tensors: V, C from emb.weight, L from the block indices,
 * A from att.key rows, F from ffn.key rows; heads from att.time_decay:
 * [H, N] in 5.2, [H] in 5.0/5.1 (then N = A / H). */
static rwkv_status read_shape(const tensor_set *set, rwkv5 *w, const char *version, rwkv_error *err) {
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
    const tensor *d = fk ? model_tensor(set, "blocks.0.att.time_decay", err) : NULL;
    if (!d) return RWKV_ERR_SHAPE;
    if (k->ndim != 2 || fk->ndim != 2 || k->shape[0] < 1 || fk->shape[0] < 1 || k->shape[0] > (1 << 16) ||
        fk->shape[0] > (1 << 18))
        return rwkv_fail(err, RWKV_ERR_SHAPE, "att.key / ffn.key weights must be matrices of plausible size");
    w->A = (int)k->shape[0];
    w->F = (int)fk->shape[0];
    int64_t H = strcmp(version, "5.2") == 0 ? d->shape[0] : tensor_numel(d);
    if (H < 1 || H > w->A || w->A % H != 0)
        return rwkv_fail(err, RWKV_ERR_SHAPE,
                         "blocks.0.att.time_decay gives %lld heads, which do not divide dim_att %d", (long long)H, w->A);
    w->H = (int)H;
    w->N = w->A / w->H;
    if (strcmp(version, "5.2") == 0 && tensor_numel(d) != w->A)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "blocks.0.att.time_decay must be [H, N] with H*N = dim_att %d", w->A);
    return RWKV_OK;
}

rwkv_status rwkv5_build(rwkv_model *m, rwkv_error *err) {
    tensor_set *set = &m->weights;
    const char *version = model_detect_version(set);
    rwkv5 *w = calloc(1, sizeof *w);
    if (!w) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    m->impl = w;
    m->ops = &rwkv5_ops;
    rwkv_status s = read_shape(set, w, version, err);
    if (s != RWKV_OK) return s;
    w->has_gate = strcmp(version, "5.0") != 0;
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
    info->version = version;
    info->n_vocab = w->V;
    info->n_embd = w->C;
    info->n_layer = w->L;
    info->n_ffn = w->F;
    info->dim_att = w->A;
    info->n_head = w->H;
    info->head_size = w->N;
    info->gn_eps = w->gn_eps;
    info->state_floats = (size_t)w->L * layer_state_floats(w);
    return RWKV_OK;
}
