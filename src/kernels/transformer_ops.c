/* The transformer layers of kernels/transformer_ops.h. Their loops run on
 * the library's thread pool (kernels/pool.c) in the shapes of
 * kernels/train_ops.h. */
#include "kernels/transformer_ops.h"

#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/train_ops.h"

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

void add_rows_of(float *Y, const float *B, const int *idx, int N, int M, int nt) {
    gpt_rows a = {.out = Y, .in = B, .idx = idx, .N = N, .M = M};
    parallel_rows(nt, N, 3 * (size_t)M, add_row, &a);
}

void add_bias(float *Y, const float *b, int N, int M, int nt) { add_rows_of(Y, b, NULL, N, M, nt); }

static void bias_stripe(void *p, int c0, int w) {
    const gpt_rows *a = p; /* out = db, in = dY */
    double acc[LAYER_STRIPE] = {0};
    for (int n = 0; n < a->N; n++) {
        const float *g = a->in + (size_t)n * a->M + c0;
        for (int j = 0; j < w; j++) acc[j] += g[j];
    }
    for (int j = 0; j < w; j++) a->out[c0 + j] += (float)acc[j];
}

void bias_backward(const float *dY, int N, int M, float *db, int nt) {
    gpt_rows a = {.out = db, .in = dY, .N = N, .M = M};
    parallel_stripes(nt, M, (size_t)N, bias_stripe, &a);
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
    for (size_t i = i0; i < i1; i++) y[i] = gelu_tanh(x[i]);
}

void gelu_forward(const float *x, float *y, size_t n, int nt) {
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

void gelu_backward(const float *x, float *dy, size_t n, int nt) {
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

void attention_forward(const float *qkv, int B, int T, int C, int H, float *att, float *y, int nt) {
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

/* Each output row is summed in a fixed order by the one thread that owns
 * its (b, h). */
void attention_backward(const float *qkv, float *att, const float *dy, int B, int T, int C, int H,
                               float *dqkv, float *scratch, int nt) {
    attn_args a = {.qkv = qkv, .dy = dy, .att = att, .dqkv = dqkv, .scratch = scratch, .T = T, .C = C, .H = H};
    parallel_rows(nt, B * H, 2 * attn_pair_work(&a), attention_backward_pair, &a);
}
