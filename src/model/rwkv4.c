/* RWKV-4, inference: RNN mode (one token) and sequence mode (many tokens,
 * matrix-matrix products) are the same code — the forward pass of
 * docs/rwkv-architecture.md §1.2 over a chunk of T tokens, continuing from
 * the recurrent state of §1.4. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

#define LN_EPS 1e-5f
#define CHUNK_TOKENS 256 /* bounds scratch memory for long prompts (ChatRWKV uses 256 too) */
#define FRESH_PP (-1e38f)

typedef struct rwkv4_layer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    float *att_mix_k, *att_mix_v, *att_mix_r;
    float *att_d; /* d = -exp(time_decay), the per-step log decay (§0) */
    float *att_u; /* time_first, the bonus */
    matrix att_k, att_v, att_r, att_o;
    float *ffn_mix_k, *ffn_mix_r;
    matrix ffn_k, ffn_r, ffn_v;
} rwkv4_layer;

typedef struct rwkv4 {
    int V, C, L, F, A;
    matrix emb, head;
    float *ln0_w, *ln0_b, *ln_out_w, *ln_out_b;
    rwkv4_layer *layers;
} rwkv4;

/* State slots of one layer (§1.4): att_xx[C], aa[A], bb[A], pp[A], ffn_xx[C]. */
static size_t layer_state_floats(const rwkv4 *w) { return 2 * (size_t)w->C + 3 * (size_t)w->A; }

static void rwkv4_state_init(const rwkv_model *m, float *state) {
    const rwkv4 *w = m->impl;
    for (int l = 0; l < w->L; l++) {
        float *s = state + (size_t)l * layer_state_floats(w);
        memset(s, 0, layer_state_floats(w) * sizeof(float));
        float *pp = s + w->C + 2 * (size_t)w->A;
        for (int i = 0; i < w->A; i++) pp[i] = FRESH_PP;
    }
}

/* Scratch for one chunk of T tokens. */
typedef struct scratch {
    float *x;          /* [T][C] residual stream */
    float *z;          /* [T][C] layernorm output */
    float *xa, *xb, *xc; /* [T][max(C,A)] mixed inputs */
    float *k, *v, *r;  /* [T][max(A,F,C)] projections */
    float *y;          /* [T][max(A,C)] */
} scratch;

static void shift_mix3(const float *z, const float *prev0, int T, int n, const float *mu_a, float *out_a,
                       const float *mu_b, float *out_b, const float *mu_c, float *out_c) {
    for (int t = 0; t < T; t++) {
        const float *cur = z + (size_t)t * n, *prev = t ? z + (size_t)(t - 1) * n : prev0;
        token_mix(cur, prev, mu_a, n, out_a + (size_t)t * n);
        token_mix(cur, prev, mu_b, n, out_b + (size_t)t * n);
        if (mu_c) token_mix(cur, prev, mu_c, n, out_c + (size_t)t * n);
    }
}

static void time_mix(const rwkv4 *w, const rwkv4_layer *ly, float *st, scratch *s, int T, int nt) {
    const int C = w->C, A = w->A;
    float *att_xx = st, *aa = st + C, *bb = aa + A, *pp = bb + A;
    for (int t = 0; t < T; t++) layernorm(s->x + (size_t)t * C, ly->ln1_w, ly->ln1_b, C, LN_EPS, s->z + (size_t)t * C);
    shift_mix3(s->z, att_xx, T, C, ly->att_mix_k, s->xa, ly->att_mix_v, s->xb, ly->att_mix_r, s->xc);
    memcpy(att_xx, s->z + (size_t)(T - 1) * C, sizeof(float) * C);
    matmul(&ly->att_k, s->xa, T, s->k, nt);
    matmul(&ly->att_v, s->xb, T, s->v, nt);
    matmul(&ly->att_r, s->xc, T, s->r, nt);
    wkv_forward(T, A, ly->att_d, ly->att_u, s->k, s->v, aa, bb, pp, s->y);
    for (size_t i = 0; i < (size_t)T * A; i++) s->y[i] *= sigmoidf(s->r[i]);
    matmul(&ly->att_o, s->y, T, s->k, nt); /* k is free again: reuse as [T][C] output */
    for (size_t i = 0; i < (size_t)T * C; i++) s->x[i] += s->k[i];
}

static void channel_mix(const rwkv4 *w, const rwkv4_layer *ly, float *st, scratch *s, int T, int nt) {
    const int C = w->C, F = w->F;
    float *ffn_xx = st + C + 3 * (size_t)w->A;
    for (int t = 0; t < T; t++) layernorm(s->x + (size_t)t * C, ly->ln2_w, ly->ln2_b, C, LN_EPS, s->z + (size_t)t * C);
    shift_mix3(s->z, ffn_xx, T, C, ly->ffn_mix_k, s->xa, ly->ffn_mix_r, s->xb, NULL, NULL);
    memcpy(ffn_xx, s->z + (size_t)(T - 1) * C, sizeof(float) * C);
    matmul(&ly->ffn_k, s->xa, T, s->k, nt); /* [T][F] */
    for (size_t i = 0; i < (size_t)T * F; i++) {
        float h = s->k[i] > 0.0f ? s->k[i] : 0.0f; /* relu² */
        s->k[i] = h * h;
    }
    matmul(&ly->ffn_v, s->k, T, s->v, nt); /* [T][C] */
    matmul(&ly->ffn_r, s->xb, T, s->r, nt); /* [T][C] */
    for (size_t i = 0; i < (size_t)T * C; i++) s->x[i] += sigmoidf(s->r[i]) * s->v[i];
}

static rwkv_status eval_chunk(rwkv_model *m, float *state, const int *tokens, int T, float *logits,
                              int all_logits, scratch *s) {
    const rwkv4 *w = m->impl;
    const int C = w->C, nt = m->n_threads;
    for (int t = 0; t < T; t++) {
        float *x = s->x + (size_t)t * C;
        matrix_row_f32(&w->emb, tokens[t], x);
        layernorm(x, w->ln0_w, w->ln0_b, C, LN_EPS, x);
    }
    for (int l = 0; l < w->L; l++) {
        float *st = state + (size_t)l * layer_state_floats(w);
        time_mix(w, &w->layers[l], st, s, T, nt);
        channel_mix(w, &w->layers[l], st, s, T, nt);
    }
    if (!logits) return RWKV_OK;
    int first = all_logits ? 0 : T - 1, rows = T - first;
    for (int t = first; t < T; t++)
        layernorm(s->x + (size_t)t * C, w->ln_out_w, w->ln_out_b, C, LN_EPS, s->z + (size_t)(t - first) * C);
    matmul(&w->head, s->z, rows, logits, nt);
    return RWKV_OK;
}

static rwkv_status rwkv4_eval(rwkv_model *m, float *state, const int *tokens, size_t n, float *logits,
                              int all_logits, rwkv_error *err) {
    const rwkv4 *w = m->impl;
    int T = n < CHUNK_TOKENS ? (int)n : CHUNK_TOKENS;
    size_t wide = (size_t)(w->F > w->C ? w->F : w->C);
    if ((size_t)w->A > wide) wide = (size_t)w->A;
    size_t tc = (size_t)T * w->C, tw = (size_t)T * wide;
    float *buf = malloc(sizeof(float) * (2 * tc + 3 * tw + 4 * tw));
    if (!buf) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %d-token scratch", T);
    scratch s = {buf, buf + tc, buf + 2 * tc, buf + 2 * tc + tw, buf + 2 * tc + 2 * tw,
                 buf + 2 * tc + 3 * tw, buf + 2 * tc + 4 * tw, buf + 2 * tc + 5 * tw, buf + 2 * tc + 6 * tw};
    for (size_t done = 0; done < n; done += (size_t)T) {
        int len = n - done < (size_t)T ? (int)(n - done) : T;
        int last_chunk = done + (size_t)len == n;
        float *out = NULL;
        if (logits && all_logits) out = logits + done * (size_t)w->V;
        else if (logits && last_chunk) out = logits;
        eval_chunk(m, state, tokens + done, len, out, all_logits, &s);
    }
    free(buf);
    return rwkv_ok(err);
}

static void rwkv4_free(void *impl) {
    rwkv4 *w = impl;
    if (!w) return;
    free(w->layers);
    free(w);
}

static const model_ops rwkv4_ops = {rwkv4_eval, rwkv4_state_init, rwkv4_free};

/* Keys that only experimental RWKV-4 variants have (docs §1.1). */
static rwkv_status reject_unknown(const tensor_set *set, rwkv_error *err) {
    static const char *bad[] = {"head_q", "head_k", "pos_emb", "tiny_", "ffnPre", "_strategy"};
    for (int i = 0; i < set->count; i++)
        for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++)
            if (strstr(set->tensors[i].name, bad[j]))
                return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "tensor '%s' belongs to an unsupported RWKV-4 variant",
                                 set->tensors[i].name);
    return RWKV_OK;
}

#define VEC(dst, name, n)                                                                          \
    do {                                                                                           \
        if (!((dst) = model_vector(set, (name), (n), err))) return err ? err->code : RWKV_ERR_SHAPE; \
    } while (0)
#define MAT(dst, name, r, c)                                                                       \
    do {                                                                                           \
        rwkv_status ms_ = model_matrix(set, (name), (r), (c), &(dst), err);                        \
        if (ms_ != RWKV_OK) return ms_;                                                            \
    } while (0)

static rwkv_status load_layer(tensor_set *set, rwkv4 *w, int l, rwkv_error *err) {
    rwkv4_layer *ly = &w->layers[l];
    const int C = w->C, A = w->A, F = w->F;
    char n[128];
#define NAME(suffix) (snprintf(n, sizeof n, "blocks.%d.%s", l, suffix), n)
    VEC(ly->ln1_w, NAME("ln1.weight"), C);
    VEC(ly->ln1_b, NAME("ln1.bias"), C);
    VEC(ly->ln2_w, NAME("ln2.weight"), C);
    VEC(ly->ln2_b, NAME("ln2.bias"), C);
    VEC(ly->att_mix_k, NAME("att.time_mix_k"), C);
    VEC(ly->att_mix_v, NAME("att.time_mix_v"), C);
    VEC(ly->att_mix_r, NAME("att.time_mix_r"), C);
    VEC(ly->att_d, NAME("att.time_decay"), A);
    VEC(ly->att_u, NAME("att.time_first"), A);
    for (int i = 0; i < A; i++) ly->att_d[i] = -expf(ly->att_d[i]);
    MAT(ly->att_k, NAME("att.key.weight"), A, C);
    MAT(ly->att_v, NAME("att.value.weight"), A, C);
    MAT(ly->att_r, NAME("att.receptance.weight"), A, C);
    MAT(ly->att_o, NAME("att.output.weight"), C, A);
    VEC(ly->ffn_mix_k, NAME("ffn.time_mix_k"), C);
    VEC(ly->ffn_mix_r, NAME("ffn.time_mix_r"), C);
    MAT(ly->ffn_k, NAME("ffn.key.weight"), F, C);
    MAT(ly->ffn_r, NAME("ffn.receptance.weight"), C, C);
    MAT(ly->ffn_v, NAME("ffn.value.weight"), C, F);
#undef NAME
    return RWKV_OK;
}

/* Shapes come from the tensors (docs §4.2): V, C from emb.weight, L from the
 * largest block index, A from att.key rows, F from ffn.key rows. */
static rwkv_status read_shape(const tensor_set *set, rwkv4 *w, rwkv_error *err) {
    const tensor *emb = model_tensor(set, "emb.weight", err);
    if (!emb) return RWKV_ERR_SHAPE;
    if (emb->ndim != 2 || emb->shape[0] < 1 || emb->shape[1] < 1 || emb->shape[0] > (1 << 24) ||
        emb->shape[1] > (1 << 16))
        return rwkv_fail(err, RWKV_ERR_SHAPE, "emb.weight must be a [n_vocab, n_embd] matrix of plausible size");
    w->V = (int)emb->shape[0];
    w->C = (int)emb->shape[1];
    int L = 0;
    for (int i = 0; i < set->count; i++) {
        int idx;
        if (sscanf(set->tensors[i].name, "blocks.%d.", &idx) == 1 && idx >= 0 && idx < 4096 && idx + 1 > L)
            L = idx + 1;
    }
    if (L == 0) return rwkv_fail(err, RWKV_ERR_SHAPE, "no blocks.N.* tensors found");
    w->L = L;
    const tensor *k = model_tensor(set, "blocks.0.att.key.weight", err);
    const tensor *fk = k ? model_tensor(set, "blocks.0.ffn.key.weight", err) : NULL;
    if (!k || !fk) return RWKV_ERR_SHAPE;
    if (k->ndim != 2 || fk->ndim != 2 || k->shape[0] < 1 || fk->shape[0] < 1 || k->shape[0] > (1 << 16) ||
        fk->shape[0] > (1 << 18))
        return rwkv_fail(err, RWKV_ERR_SHAPE, "att.key / ffn.key weights must be matrices of plausible size");
    w->A = (int)k->shape[0];
    w->F = (int)fk->shape[0];
    return RWKV_OK;
}

rwkv_status rwkv4_build(rwkv_model *m, rwkv_error *err) {
    tensor_set *set = &m->weights;
    rwkv_status s = reject_unknown(set, err);
    if (s != RWKV_OK) return s;
    rwkv4 *w = calloc(1, sizeof *w);
    if (!w) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    m->impl = w;
    m->ops = &rwkv4_ops;
    if ((s = read_shape(set, w, err)) != RWKV_OK) return s;
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
    info->version = "4";
    info->n_vocab = w->V;
    info->n_embd = w->C;
    info->n_layer = w->L;
    info->n_ffn = w->F;
    info->dim_att = w->A;
    info->state_floats = (size_t)w->L * layer_state_floats(w);
    return RWKV_OK;
}
