/* The GPT baseline (model/gpt.h): layout, GPT-2 init, training forward with
 * saved activations and its backward, KV-cache decoding, checkpoints.
 *
 * The generic layers (embedding, layernorm, linear, residual, cross-entropy)
 * come from train/layers.h and the matrix products from the shared kernels;
 * this file adds what only a transformer needs: biases, learned positions,
 * causal softmax attention and GELU. Its loops run on the library's thread
 * pool (kernels/pool.c), in the shapes of train/layers.h. Every sum over
 * rows is owned by one thread and runs in row order, so results do not
 * depend on the thread count. */
#include "model/gpt.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats.h"
#include "kernels/kernels.h"
#include "core/machine.h"
#include "train/data.h"
#include "train/layers.h"

#define LN_EPS 1e-5f
#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

/* Parameter indices: 0 wte, 1 wpe, then P_PER_LAYER per layer, then ln_f.weight,
 * ln_f.bias, lm_head.weight. */
enum {
    P_LN1_W, P_LN1_B, P_QKV_W, P_QKV_B, P_PROJ_W, P_PROJ_B,
    P_LN2_W, P_LN2_B, P_FC_W, P_FC_B, P_FCP_W, P_FCP_B, P_PER_LAYER
};
#define IDX_WTE 0
#define IDX_WPE 1
#define IDX_LAYER(l, k) (2 + (l) * P_PER_LAYER + (k))
#define IDX_LNF_W(L) (2 + (L) * P_PER_LAYER)
#define IDX_LNF_B(L) (3 + (L) * P_PER_LAYER)
#define IDX_HEAD(L) (4 + (L) * P_PER_LAYER)

static const char *const layer_names[P_PER_LAYER] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias"};

/* ---- shape and layout --------------------------------------------------- */

rwkv_status gpt_shape_check(gpt_shape *s, rwkv_error *err) {
    if (!s) return rwkv_fail(err, RWKV_ERR_ARG, "gpt: no shape");
    if (s->n_ffn == 0) s->n_ffn = 4 * s->n_embd;
    const int lim = 1 << 20;
    if (s->n_vocab <= 0 || s->n_embd <= 0 || s->n_layer <= 0 || s->n_head <= 0 || s->n_ctx <= 0 ||
        s->n_ffn <= 0 || s->n_vocab > lim || s->n_embd > lim / 4 || s->n_layer > 4096 || s->n_ctx > lim ||
        s->n_ffn > lim)
        return rwkv_fail(err, RWKV_ERR_ARG,
                         "gpt: bad shape (n_vocab %d, n_embd %d, n_layer %d, n_head %d, n_ctx %d, n_ffn %d)",
                         s->n_vocab, s->n_embd, s->n_layer, s->n_head, s->n_ctx, s->n_ffn);
    if (s->n_embd % s->n_head)
        return rwkv_fail(err, RWKV_ERR_ARG, "gpt: n_embd %d is not a multiple of n_head %d", s->n_embd,
                         s->n_head);
    return RWKV_OK;
}

size_t gpt_param_count(const gpt_shape *s) {
    const size_t V = (size_t)s->n_vocab, C = (size_t)s->n_embd, F = (size_t)s->n_ffn;
    const size_t per_layer = 2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + F * C + F + C * F + C;
    return V * C + (size_t)s->n_ctx * C + (size_t)s->n_layer * per_layer + 2 * C + V * C;
}

double gpt_train_flops_per_token(const gpt_shape *s, int T) {
    const double C = s->n_embd, F = s->n_ffn, L = s->n_layer, V = s->n_vocab;
    const double matmul_params = L * (4 * C * C + 2 * C * F) + V * C;
    return 3.0 * (2.0 * matmul_params + 2.0 * L * (double)T * C);
}

static void add_param(param_layout *lay, const char *name, int ndim, int64_t d0, int64_t d1) {
    param_info *p = &lay->params[lay->count++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 0;
    p->shape[2] = 0;
    p->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
    p->offset = lay->total;
    p->lr_scale = 1.0f;
    lay->total += p->numel;
}

rwkv_status gpt_layout_init(const gpt_shape *shape_in, param_layout *lay, rwkv_error *err) {
    memset(lay, 0, sizeof *lay);
    gpt_shape s = *shape_in;
    rwkv_status st = gpt_shape_check(&s, err);
    if (st != RWKV_OK) return st;
    const int L = s.n_layer, C = s.n_embd, F = s.n_ffn, V = s.n_vocab;
    lay->params = calloc((size_t)(5 + L * P_PER_LAYER), sizeof *lay->params);
    if (!lay->params) return rwkv_fail(err, RWKV_ERR_NOMEM, "gpt: out of memory");
    lay->shape = (rwkv4_shape){V, C, L, F, C};
    add_param(lay, "transformer.wte.weight", 2, V, C);
    add_param(lay, "transformer.wpe.weight", 2, s.n_ctx, C);
    for (int l = 0; l < L; l++) {
        char name[64];
        const int64_t dims[P_PER_LAYER][2] = {{C, 0}, {C, 0}, {3 * C, C}, {3 * C, 0}, {C, C}, {C, 0},
                                              {C, 0}, {C, 0}, {F, C},     {F, 0},     {C, F}, {C, 0}};
        for (int k = 0; k < P_PER_LAYER; k++) {
            snprintf(name, sizeof name, "transformer.h.%d.%s", l, layer_names[k]);
            add_param(lay, name, dims[k][1] ? 2 : 1, dims[k][0], dims[k][1]);
        }
    }
    add_param(lay, "transformer.ln_f.weight", 1, C, 0);
    add_param(lay, "transformer.ln_f.bias", 1, C, 0);
    add_param(lay, "lm_head.weight", 2, V, C);
    return RWKV_OK;
}

/* ---- init ---------------------------------------------------------------- */

static double rng_normal(train_rng *r) {
    /* Box-Muller on two uniforms in (0, 1] and [0, 1) */
    double u1 = ((double)(rng_next(r) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = (double)(rng_next(r) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

rwkv_status gpt_init_params(const gpt_shape *shape, float *params, uint64_t seed) {
    param_layout lay;
    rwkv_status st = gpt_layout_init(shape, &lay, NULL);
    if (st != RWKV_OK) return st;
    train_rng rng;
    rng_seed(&rng, seed);
    const double std = 0.02, std_res = 0.02 / sqrt(2.0 * lay.shape.n_layer);
    for (int i = 0; i < lay.count; i++) {
        const param_info *p = &lay.params[i];
        float *w = params + p->offset;
        const size_t len = strlen(p->name);
        if (p->ndim == 2) {
            const int residual = strstr(p->name, "c_proj.weight") != NULL;
            const double sd = residual ? std_res : std;
            for (size_t j = 0; j < p->numel; j++) w[j] = (float)(sd * rng_normal(&rng));
        } else {
            const int is_ln_weight = len > 7 && strcmp(p->name + len - 7, ".weight") == 0;
            for (size_t j = 0; j < p->numel; j++) w[j] = is_ln_weight ? 1.0f : 0.0f;
        }
    }
    free(lay.params);
    return RWKV_OK;
}

/* ---- layer pieces only a transformer needs ------------------------------- */

/* Operands of the row and stripe loops below. */
typedef struct gpt_rows {
    float *out;
    const float *in;
    const int *idx;
    int N, M;
} gpt_rows;

static void add_row(void *p, int n) {
    const gpt_rows *a = p;
    const int M = a->M;
    float *y = a->out + (size_t)n * M;
    const float *b = a->in + (a->idx ? (size_t)a->idx[n] * M : 0);
    for (int j = 0; j < M; j++) y[j] += b[j];
}

/* Y[n] += B[idx[n]] for the N rows of M: with idx NULL, B is one row (a
 * bias); else a table (learned positions, idx = the rows' positions). */
static void add_rows_of(float *Y, const float *B, const int *idx, int N, int M, int nt) {
    gpt_rows a = {.out = Y, .in = B, .idx = idx, .N = N, .M = M};
    parallel_rows(nt, N, 3 * (size_t)M, add_row, &a);
}

static void add_bias(float *Y, const float *b, int N, int M, int nt) { add_rows_of(Y, b, NULL, N, M, nt); }

static void bias_stripe(void *p, int c0, int w) {
    const gpt_rows *a = p; /* out = db, in = dY */
    double acc[LAYER_STRIPE] = {0};
    for (int n = 0; n < a->N; n++) {
        const float *g = a->in + (size_t)n * a->M + c0;
        for (int j = 0; j < w; j++) acc[j] += g[j];
    }
    for (int j = 0; j < w; j++) a->out[c0 + j] += (float)acc[j];
}

/* db += Σ_n dY[n] (in row order, double accumulators per column stripe) */
static void bias_backward(const float *dY, int N, int M, float *db, int nt) {
    gpt_rows a = {.out = db, .in = dY, .N = N, .M = M};
    parallel_stripes(nt, M, (size_t)N, bias_stripe, &a);
}

/* tanh through one expf (cheaper than tanhf); exact limits ±1 for large |u|,
 * absolute error ~1e-7 near 0 */
static inline float tanh_fast(float u) { return 1.0f - 2.0f / (1.0f + expf(2.0f * u)); }

static inline float gelu1(float x) {
    return 0.5f * x * (1.0f + tanh_fast(GELU_K * (x + GELU_A * x * x * x)));
}

typedef struct gelu_args {
    const float *x;
    float *y;
} gelu_args;

/* An expf per element, worth several floats touched (floats per element in
 * parallel_range's terms). */
#define GELU_WORK 8

static void gelu_range(void *p, size_t i0, size_t i1) {
    const gelu_args *a = p;
    const float *x = a->x;
    float *y = a->y;
    for (size_t i = i0; i < i1; i++) y[i] = gelu1(x[i]);
}

static void gelu_forward(const float *x, float *y, size_t n, int nt) {
    gelu_args a = {x, y};
    parallel_range(nt, n, GELU_WORK, gelu_range, &a);
}

static void gelu_backward_range(void *p, size_t i0, size_t i1) {
    const gelu_args *a = p;
    const float *x = a->x;
    float *dy = a->y;
    for (size_t i = i0; i < i1; i++) {
        const float v = x[i], t = tanh_fast(GELU_K * (v + GELU_A * v * v * v));
        const float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_A * v * v);
        dy[i] *= d;
    }
}

/* dx = dy · gelu'(x), in place on dy */
static void gelu_backward(const float *x, float *dy, size_t n, int nt) {
    gelu_args a = {x, dy};
    parallel_range(nt, n, GELU_WORK, gelu_backward_range, &a);
}

/* Dot product with 8 partial sums (vectorisable, fixed order). */
static inline float dotf(const float *restrict a, const float *restrict b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* y += a x (blocks of 8 so that -O2 vectorises it; elementwise, so the
 * result is the same either way) */
static inline void axpyf(float *restrict y, float a, const float *restrict x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) y[i + j] += a * x[i + j];
    for (; i < n; i++) y[i] += a * x[i];
}

/* One head's causal softmax row: p[u] = softmax_u(scale q·k_u), u <= t, over
 * keys at stride `kstride`; returns nothing, p[0..t] written. */
static void attn_row(const float *q, const float *k0, size_t kstride, int t, int D, float scale, float *p) {
    float mx = -INFINITY;
    for (int u = 0; u <= t; u++) {
        const float s = dotf(q, k0 + (size_t)u * kstride, D) * scale;
        p[u] = s;
        if (s > mx) mx = s;
    }
    float sum = 0.0f;
    for (int u = 0; u <= t; u++) {
        p[u] = expf(p[u] - mx);
        sum += p[u];
    }
    const float inv = 1.0f / sum;
    for (int u = 0; u <= t; u++) p[u] *= inv;
}

/* Decoding: one head's attention of query q over keys/values 0..t (rows at
 * `stride` floats), y [D] written, p [t+1] scratch. The loops over the head
 * dimension are `omp simd` and the function is compiled for AVX-512, AVX2
 * and baseline x86-64 with the variant picked at load time, so the decode
 * path of the baseline is vectorised like the RWKV kernels are. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__)
#define GPT_DECODE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GPT_DECODE_CLONES
#endif
GPT_DECODE_CLONES
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

/* Attention runs over the B·H (sequence, head) pairs, one pair per unit of
 * work (parallel_rows); a pair touches about T²·D floats (T²/2 query-key
 * pairs, a D-long dot product or axpy each, a few times). */
typedef struct attn_args {
    const float *qkv, *dy;
    float *att, *y, *dqkv, *scratch;
    int T, C, H;
} attn_args;

static size_t attn_pair_work(const attn_args *a) { return (size_t)a->T * (size_t)a->T * (size_t)(a->C / a->H); }

static void attention_forward_pair(void *p, int bh) {
    const attn_args *a = p;
    const int T = a->T, C = a->C, H = a->H, D = C / H, b = bh / H, h = bh % H;
    const float scale = 1.0f / sqrtf((float)D);
    const size_t C3 = 3 * (size_t)C;
    const float *base = a->qkv + (size_t)b * T * C3;
    float *P = a->att + (size_t)bh * T * T;
    for (int t = 0; t < T; t++) {
        float *p = P + (size_t)t * T;
        attn_row(base + (size_t)t * C3 + (size_t)h * D, base + C + (size_t)h * D, C3, t, D, scale, p);
        for (int u = t + 1; u < T; u++) p[u] = 0.0f;
        float *yt = a->y + ((size_t)b * T + t) * C + (size_t)h * D;
        for (int d = 0; d < D; d++) yt[d] = 0.0f;
        for (int u = 0; u <= t; u++) axpyf(yt, p[u], base + (size_t)u * C3 + 2 * (size_t)C + (size_t)h * D, D);
    }
}

/* qkv [B][T][3C] -> att [B][H][T][T] (probabilities, 0 above the diagonal),
 * y [B][T][C] (heads side by side). */
static void attention_forward(const float *qkv, int B, int T, int C, int H, float *att, float *y, int nt) {
    attn_args a = {.qkv = qkv, .att = att, .y = y, .T = T, .C = C, .H = H};
    parallel_rows(nt, B * H, attn_pair_work(&a), attention_forward_pair, &a);
}

static void attention_backward_pair(void *p, int bh) {
    const attn_args *a = p;
    const int T = a->T, C = a->C, H = a->H, D = C / H, b = bh / H, h = bh % H;
    const float scale = 1.0f / sqrtf((float)D);
    const size_t C3 = 3 * (size_t)C;
    const size_t hq = (size_t)h * D, hk = C + hq, hv = 2 * (size_t)C + hq;
    const float *base = a->qkv + (size_t)b * T * C3, *dyb = a->dy + (size_t)b * T * C + hq;
    float *dbase = a->dqkv + (size_t)b * T * C3, *dP = a->scratch + (size_t)bh * T;
    float *P = a->att + (size_t)bh * T * T;
    /* dv_u = Σ_{t >= u} P_tu dy_t */
    for (int u = 0; u < T; u++) {
        float *dv = dbase + (size_t)u * C3 + hv;
        memset(dv, 0, sizeof(float) * (size_t)D);
        for (int t = u; t < T; t++) axpyf(dv, P[(size_t)t * T + u], dyb + (size_t)t * C, D);
    }
    /* P -> scale·ds, row by row */
    for (int t = 0; t < T; t++) {
        float *p = P + (size_t)t * T;
        const float *dyt = dyb + (size_t)t * C;
        float dot = 0.0f;
        for (int u = 0; u <= t; u++) {
            dP[u] = dotf(dyt, base + (size_t)u * C3 + hv, D);
            dot += p[u] * dP[u];
        }
        for (int u = 0; u <= t; u++) p[u] = scale * p[u] * (dP[u] - dot);
    }
    /* dq_t = Σ_{u <= t} ds_tu k_u;  dk_u = Σ_{t >= u} ds_tu q_t */
    for (int t = 0; t < T; t++) {
        float *dq = dbase + (size_t)t * C3 + hq;
        const float *p = P + (size_t)t * T;
        memset(dq, 0, sizeof(float) * (size_t)D);
        for (int u = 0; u <= t; u++) axpyf(dq, p[u], base + (size_t)u * C3 + hk, D);
    }
    for (int u = 0; u < T; u++) {
        float *dk = dbase + (size_t)u * C3 + hk;
        memset(dk, 0, sizeof(float) * (size_t)D);
        for (int t = u; t < T; t++) axpyf(dk, P[(size_t)t * T + u], base + (size_t)t * C3 + hq, D);
    }
}

/* dy [B][T][C] -> dqkv [B][T][3C] (overwritten). With s = scale q·k,
 * P = softmax(s), y = P v:  dv_u = Σ_t P_tu dy_t,  dP_tu = dy_t·v_u,
 * ds_tu = P_tu (dP_tu - Σ_u' P_tu' dP_tu'),  dq_t = scale Σ_u ds_tu k_u,
 * dk_u = scale Σ_t ds_tu q_t. The probabilities in `att` are overwritten by
 * scale·ds (the next forward recomputes them); `scratch` holds B·H·T floats.
 * Each output row is summed in a fixed order by the one thread that owns
 * its (b, h). */
static void attention_backward(const float *qkv, float *att, const float *dy, int B, int T, int C, int H,
                               float *dqkv, float *scratch, int nt) {
    attn_args a = {.qkv = qkv, .dy = dy, .att = att, .dqkv = dqkv, .scratch = scratch, .T = T, .C = C, .H = H};
    parallel_rows(nt, B * H, 2 * attn_pair_work(&a), attention_backward_pair, &a);
}

/* ---- training context ------------------------------------------------------ */

struct gpt_train_ctx {
    gpt_shape sh;
    param_layout lay;
    int B, T, N, nt;
    int *pos; /* [N]: position of each row */
    float **xin;                                   /* [L+1] residual stream entering layer l (L: final) */
    float **ln1, **qkv, **att, **y, **xmid, **ln2, **hpre, **hact; /* [L] */
    float *lnf, *logits, *lse, *rowloss;
    float *tmp, *dx, *dln, *dy, *dqkv, *dh, *stats, *scratch;
    float *block;
    size_t bytes;
};

void gpt_train_ctx_free(gpt_train_ctx *c) {
    if (!c) return;
    free(c->lay.params);
    free(c->pos);
    free(c->xin);
    free(c->ln1);
    free(c->block);
    free(c);
}

size_t gpt_train_ctx_bytes(const gpt_train_ctx *c) { return c->bytes; }

rwkv_status gpt_train_ctx_new(const gpt_shape *shape, int B, int T, int n_threads, gpt_train_ctx **out,
                              rwkv_error *err) {
    *out = NULL;
    gpt_shape s = *shape;
    rwkv_status st = gpt_shape_check(&s, err);
    if (st != RWKV_OK) return st;
    if (B <= 0 || T <= 0 || T > s.n_ctx || (int64_t)B * T > (1 << 24))
        return rwkv_fail(err, RWKV_ERR_ARG, "gpt: batch %d x context %d does not fit (n_ctx %d)", B, T, s.n_ctx);
    gpt_train_ctx *c = calloc(1, sizeof *c);
    if (!c) return rwkv_fail(err, RWKV_ERR_NOMEM, "gpt: out of memory");
    c->sh = s;
    c->B = B;
    c->T = T;
    c->N = B * T;
    c->nt = n_threads > 0 ? n_threads : machine_cores();
    st = gpt_layout_init(&s, &c->lay, err);
    if (st != RWKV_OK) {
        free(c);
        return st;
    }
    const size_t N = (size_t)c->N, C = (size_t)s.n_embd, F = (size_t)s.n_ffn, V = (size_t)s.n_vocab;
    const size_t L = (size_t)s.n_layer, H = (size_t)s.n_head;
    c->pos = malloc(N * sizeof *c->pos);
    c->xin = calloc(L + 1, sizeof *c->xin);
    c->ln1 = calloc(8 * L, sizeof *c->ln1); /* ln1 qkv att y xmid ln2 hpre hact, L each */
    if (!c->pos || !c->xin || !c->ln1) {
        gpt_train_ctx_free(c);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "gpt: out of memory");
    }
    c->qkv = c->ln1 + L;
    c->att = c->ln1 + 2 * L;
    c->y = c->ln1 + 3 * L;
    c->xmid = c->ln1 + 4 * L;
    c->ln2 = c->ln1 + 5 * L;
    c->hpre = c->ln1 + 6 * L;
    c->hact = c->ln1 + 7 * L;
    for (size_t n = 0; n < N; n++) c->pos[n] = (int)(n % (size_t)T);
    /* sizes of every buffer, rounded to 16 floats; carved out of one block */
    const size_t per_layer_sizes[8] = {N * C, 3 * N * C, (size_t)B * H * T * T, N * C, N * C, N * C, N * F, N * F};
#define R16(x) (((x) + 15) & ~(size_t)15)
    size_t per_layer = 0;
    for (int i = 0; i < 8; i++) per_layer += R16(per_layer_sizes[i]);
    const size_t rest[] = {N * C, N * V, N, N, N * C, N * C, N * C, N * C, 3 * N * C, N * F, 2 * N, (size_t)B * H * T};
    size_t total = (L + 1) * R16(N * C) + L * per_layer;
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) total += R16(rest[i]);
    if (total > ((size_t)1 << 36) / sizeof(float) || !(c->block = malloc(total * sizeof(float)))) {
        gpt_train_ctx_free(c);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "gpt: cannot allocate %zu MB of activations",
                         total * sizeof(float) >> 20);
    }
    c->bytes = total * sizeof(float);
    float *p = c->block;
    for (size_t l = 0; l <= L; l++, p += R16(N * C)) c->xin[l] = p;
    for (size_t l = 0; l < L; l++)
        for (int i = 0; i < 8; i++) {
            c->ln1[(size_t)i * L + l] = p;
            p += R16(per_layer_sizes[i]);
        }
    float **dst[] = {&c->lnf, &c->logits, &c->lse, &c->rowloss, &c->tmp, &c->dx, &c->dln, &c->dy,
                     &c->dqkv, &c->dh, &c->stats, &c->scratch};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) {
        *dst[i] = p;
        p += R16(rest[i]);
    }
#undef R16
    *out = c;
    return RWKV_OK;
}

static const float *par(const gpt_train_ctx *c, const float *params, int idx) {
    return params + c->lay.params[idx].offset;
}

static rwkv_status check_tokens(const int *tok, size_t n, int V, const char *what, rwkv_error *err) {
    for (size_t i = 0; i < n; i++)
        if (tok[i] < 0 || tok[i] >= V)
            return rwkv_fail(err, RWKV_ERR_ARG, "gpt: %s token %d at index %zu is outside [0, %d)", what, tok[i],
                             i, V);
    return RWKV_OK;
}

static void forward(gpt_train_ctx *c, const float *params, const int *inputs) {
    const int N = c->N, C = c->sh.n_embd, F = c->sh.n_ffn, V = c->sh.n_vocab, L = c->sh.n_layer, nt = c->nt;
    embedding_forward(par(c, params, IDX_WTE), inputs, N, C, c->xin[0], nt);
    add_rows_of(c->xin[0], par(c, params, IDX_WPE), c->pos, N, C, nt); /* + learned positions */
    for (int l = 0; l < L; l++) {
#define LP(k) par(c, params, IDX_LAYER(l, k))
        layernorm_forward(c->xin[l], LP(P_LN1_W), LP(P_LN1_B), N, C, c->ln1[l], nt);
        linear_forward(LP(P_QKV_W), 3 * C, C, c->ln1[l], N, c->qkv[l], nt);
        add_bias(c->qkv[l], LP(P_QKV_B), N, 3 * C, nt);
        attention_forward(c->qkv[l], c->B, c->T, C, c->sh.n_head, c->att[l], c->y[l], nt);
        linear_forward(LP(P_PROJ_W), C, C, c->y[l], N, c->tmp, nt);
        add_bias(c->tmp, LP(P_PROJ_B), N, C, nt);
        residual_forward(c->xin[l], c->tmp, c->xmid[l], (size_t)N * C, nt);
        layernorm_forward(c->xmid[l], LP(P_LN2_W), LP(P_LN2_B), N, C, c->ln2[l], nt);
        linear_forward(LP(P_FC_W), F, C, c->ln2[l], N, c->hpre[l], nt);
        add_bias(c->hpre[l], LP(P_FC_B), N, F, nt);
        gelu_forward(c->hpre[l], c->hact[l], (size_t)N * F, nt);
        linear_forward(LP(P_FCP_W), C, F, c->hact[l], N, c->tmp, nt);
        add_bias(c->tmp, LP(P_FCP_B), N, C, nt);
        residual_forward(c->xmid[l], c->tmp, c->xin[l + 1], (size_t)N * C, nt);
#undef LP
    }
    layernorm_forward(c->xin[L], par(c, params, IDX_LNF_W(L)), par(c, params, IDX_LNF_B(L)), N, C, c->lnf, nt);
    linear_forward(par(c, params, IDX_HEAD(L)), V, C, c->lnf, N, c->logits, nt);
}

static float mean_loss(gpt_train_ctx *c, const int *targets) {
    cross_entropy_forward(c->logits, targets, c->N, c->sh.n_vocab, c->rowloss, c->lse, c->nt);
    double sum = 0.0;
    for (int n = 0; n < c->N; n++) sum += c->rowloss[n];
    return (float)(sum / c->N);
}

rwkv_status gpt_forward_loss(gpt_train_ctx *c, const float *params, const int *inputs, const int *targets,
                             float *logits, float *loss, rwkv_error *err) {
    if (!c || !params || !inputs) return rwkv_fail(err, RWKV_ERR_ARG, "gpt_forward_loss: null argument");
    rwkv_status s = check_tokens(inputs, (size_t)c->N, c->sh.n_vocab, "input", err);
    if (s == RWKV_OK && targets) s = check_tokens(targets, (size_t)c->N, c->sh.n_vocab, "target", err);
    if (s != RWKV_OK) return s;
    forward(c, params, inputs);
    if (logits) memcpy(logits, c->logits, sizeof(float) * (size_t)c->N * (size_t)c->sh.n_vocab);
    if (targets && loss) *loss = mean_loss(c, targets);
    return RWKV_OK;
}

rwkv_status gpt_forward_backward(gpt_train_ctx *c, const float *params, const int *inputs, const int *targets,
                                 float *grads, float *loss, rwkv_error *err) {
    if (!c || !params || !inputs || !targets || !grads)
        return rwkv_fail(err, RWKV_ERR_ARG, "gpt_forward_backward: null argument");
    rwkv_status s = check_tokens(inputs, (size_t)c->N, c->sh.n_vocab, "input", err);
    if (s == RWKV_OK) s = check_tokens(targets, (size_t)c->N, c->sh.n_vocab, "target", err);
    if (s != RWKV_OK) return s;
    const int N = c->N, C = c->sh.n_embd, F = c->sh.n_ffn, V = c->sh.n_vocab, L = c->sh.n_layer, nt = c->nt;
    forward(c, params, inputs);
    const float l = mean_loss(c, targets);
    if (loss) *loss = l;
#define G(idx) (grads + c->lay.params[idx].offset)
    /* head and final LayerNorm; logits become dL/dlogits in place */
    cross_entropy_backward(c->logits, targets, c->lse, N, V, 0.0f, nt);
    linear_backward(par(c, params, IDX_HEAD(L)), V, C, c->lnf, c->logits, N, c->dln, G(IDX_HEAD(L)), nt);
    memset(c->dx, 0, sizeof(float) * (size_t)N * C);
    layernorm_backward(c->xin[L], par(c, params, IDX_LNF_W(L)), c->dln, N, C, c->dx, G(IDX_LNF_W(L)),
                       G(IDX_LNF_B(L)), c->stats, nt);
    for (int ly = L - 1; ly >= 0; ly--) {
#define LP(k) par(c, params, IDX_LAYER(ly, k))
#define LG(k) G(IDX_LAYER(ly, k))
        /* MLP: x_out = xmid + c_proj(gelu(c_fc(LN2(xmid)))) */
        bias_backward(c->dx, N, C, LG(P_FCP_B), nt);
        linear_backward(LP(P_FCP_W), C, F, c->hact[ly], c->dx, N, c->dh, LG(P_FCP_W), nt);
        gelu_backward(c->hpre[ly], c->dh, (size_t)N * F, nt);
        bias_backward(c->dh, N, F, LG(P_FC_B), nt);
        linear_backward(LP(P_FC_W), F, C, c->ln2[ly], c->dh, N, c->dln, LG(P_FC_W), nt);
        layernorm_backward(c->xmid[ly], LP(P_LN2_W), c->dln, N, C, c->dx, LG(P_LN2_W), LG(P_LN2_B), c->stats, nt);
        /* attention: xmid = x_in + c_proj(attn(c_attn(LN1(x_in)))) */
        bias_backward(c->dx, N, C, LG(P_PROJ_B), nt);
        linear_backward(LP(P_PROJ_W), C, C, c->y[ly], c->dx, N, c->dy, LG(P_PROJ_W), nt);
        attention_backward(c->qkv[ly], c->att[ly], c->dy, c->B, c->T, C, c->sh.n_head, c->dqkv, c->scratch, nt);
        bias_backward(c->dqkv, N, 3 * C, LG(P_QKV_B), nt);
        linear_backward(LP(P_QKV_W), 3 * C, C, c->ln1[ly], c->dqkv, N, c->dln, LG(P_QKV_W), nt);
        layernorm_backward(c->xin[ly], LP(P_LN1_W), c->dln, N, C, c->dx, LG(P_LN1_W), LG(P_LN1_B), c->stats, nt);
#undef LP
#undef LG
    }
    embedding_backward(c->dx, inputs, N, C, G(IDX_WTE), nt);
    embedding_backward(c->dx, c->pos, N, C, G(IDX_WPE), nt);
#undef G
    return RWKV_OK;
}

/* ---- KV-cache decoding ----------------------------------------------------- */

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
    const matrix m = {DT_F32, rows, cols, W};
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
        for (int j = 0; j < F; j++) c->h[j] = gelu1(c->h[j]);
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

/* ---- checkpoints ------------------------------------------------------------- */

int gpt_is_checkpoint(const tensor_set *set) { return tensor_set_find(set, "transformer.wte.weight") != NULL; }

static const tensor *find2(const tensor_set *set, const char *name, rwkv_error *err) {
    const tensor *t = tensor_set_find(set, name);
    if (!t || t->ndim != 2) rwkv_fail(err, RWKV_ERR_SHAPE, "gpt checkpoint: '%s' missing or not a matrix", name);
    return t && t->ndim == 2 ? t : NULL;
}

rwkv_status gpt_shape_from_tensors(const tensor_set *set, int n_head, gpt_shape *shape, rwkv_error *err) {
    const tensor *wte = find2(set, "transformer.wte.weight", err);
    if (!wte) return RWKV_ERR_SHAPE;
    const tensor *wpe = find2(set, "transformer.wpe.weight", err);
    if (!wpe) return RWKV_ERR_SHAPE;
    gpt_shape s = {0};
    s.n_vocab = (int)wte->shape[0];
    s.n_embd = (int)wte->shape[1];
    s.n_ctx = (int)wpe->shape[0];
    char name[96];
    for (;;) {
        snprintf(name, sizeof name, "transformer.h.%d.ln_1.weight", s.n_layer);
        if (!tensor_set_find(set, name)) break;
        s.n_layer++;
        if (s.n_layer > 4096) break;
    }
    if (s.n_layer == 0) return rwkv_fail(err, RWKV_ERR_SHAPE, "gpt checkpoint: no layers (transformer.h.0.*)");
    const tensor *fc = find2(set, "transformer.h.0.mlp.c_fc.weight", err);
    if (!fc) return RWKV_ERR_SHAPE;
    s.n_ffn = (int)fc->shape[0];
    const tensor *nh = tensor_set_find(set, "config.n_head");
    if (nh) {
        if (nh->type != DT_I64 || tensor_numel(nh) != 1)
            return rwkv_fail(err, RWKV_ERR_SHAPE, "gpt checkpoint: config.n_head must be one I64");
        int64_t v;
        memcpy(&v, nh->data, sizeof v);
        if (v <= 0 || v > (1 << 20))
            return rwkv_fail(err, RWKV_ERR_SHAPE, "gpt checkpoint: config.n_head = %" PRId64, v);
        s.n_head = (int)v;
    } else if (n_head > 0) {
        s.n_head = n_head;
    } else {
        return rwkv_fail(err, RWKV_ERR_SHAPE, "gpt checkpoint: no config.n_head tensor and no head count given");
    }
    rwkv_status st = gpt_shape_check(&s, err);
    if (st != RWKV_OK) return st;
    *shape = s;
    return RWKV_OK;
}

rwkv_status gpt_save_model(const char *path, const gpt_shape *shape, const float *params, rwkv_error *err) {
    param_layout lay;
    rwkv_status s = gpt_layout_init(shape, &lay, err);
    if (s != RWKV_OK) return s;
    tensor *t = calloc((size_t)lay.count + 1, sizeof *t);
    if (!t) {
        free(lay.params);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < lay.count; i++) {
        const param_info *p = &lay.params[i];
        t[i].name = (char *)p->name;
        t[i].type = DT_F32;
        t[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) t[i].shape[d] = p->shape[d];
        t[i].data = params + p->offset;
        t[i].nbytes = p->numel * sizeof(float);
    }
    const int64_t n_head = shape->n_head;
    tensor *h = &t[lay.count];
    h->name = "config.n_head";
    h->type = DT_I64;
    h->ndim = 1;
    h->shape[0] = 1;
    h->data = &n_head;
    h->nbytes = sizeof n_head;
    s = safetensors_write(path, t, lay.count + 1, DT_COUNT, err);
    free(t);
    free(lay.params);
    return s;
}

rwkv_status gpt_params_from_tensors(const tensor_set *set, int n_head, gpt_shape *shape, param_layout *layout,
                                    float **params, rwkv_error *err) {
    *params = NULL;
    gpt_shape sh;
    param_layout lay = {0};
    float *buf = NULL;
    rwkv_status s = RWKV_OK;
    if (!gpt_is_checkpoint(set))
        s = rwkv_fail(err, RWKV_ERR_SHAPE, "not a GPT checkpoint (no transformer.wte.weight)");
    if (s == RWKV_OK) s = gpt_shape_from_tensors(set, n_head, &sh, err);
    if (s == RWKV_OK) s = gpt_layout_init(&sh, &lay, err);
    if (s == RWKV_OK && !(buf = malloc(lay.total * sizeof(float))))
        s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu parameters", lay.total);
    for (int i = 0; s == RWKV_OK && i < lay.count; i++) {
        const param_info *p = &lay.params[i];
        const tensor *t = tensor_set_find(set, p->name);
        int ok = t && dtype_is_float(t->type) && t->ndim == p->ndim;
        for (int d = 0; ok && d < p->ndim; d++) ok = t->shape[d] == p->shape[d];
        if (!ok) {
            char want[64];
            shape_format(p->ndim, p->shape, want, sizeof want);
            s = rwkv_fail(err, RWKV_ERR_SHAPE, "gpt checkpoint: '%s' missing or not a float tensor of shape %s",
                          p->name, want);
            break;
        }
        dtype_to_f32(t->type, t->data, buf + p->offset, p->numel);
    }
    if (s != RWKV_OK) {
        free(buf);
        free(lay.params);
        return s;
    }
    *shape = sh;
    *params = buf;
    if (layout) *layout = lay;
    else free(lay.params);
    return RWKV_OK;
}

rwkv_status gpt_load_model(const char *path, int n_head, gpt_shape *shape, param_layout *layout, float **params,
                           rwkv_error *err) {
    *params = NULL;
    tensor_set set;
    rwkv_status s = checkpoint_read(path, &set, err);
    if (s != RWKV_OK) return s;
    s = gpt_params_from_tensors(&set, n_head, shape, layout, params, err);
    tensor_set_free(&set);
    if (s != RWKV_OK && err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
    return s;
}
