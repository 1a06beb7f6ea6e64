/* Forward/backward pairs of the training layers (docs/training-math.md).
 * Every loop runs on the library's thread pool (kernels/pool.c), so training
 * shares one set of threads with the kernels: row-wise work is split over
 * rows, element-wise work over blocks of elements, and sums over rows
 * (parameter gradients of vectors) over stripes of LAYER_STRIPE columns,
 * each stripe summing its rows in order in double, so results never depend
 * on the thread count. */
#include "kernels/train_ops.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_train.h"

#define LN_EPS 1e-5f

enum { CS = LAYER_STRIPE };
static const float zero_row[CS];

/* ---- the two loop shapes of train_ops.h ------------------------------------ */

/* Elements per block of an element-wise loop: a multiple of every SIMD
 * width, small enough that a loop has many blocks (parallel_rows groups
 * them into a few contiguous ranges per thread). */
enum { RANGE_BLOCK = 2048 };

typedef struct range_job {
    range_fn fn;
    void *ctx;
    size_t n, block;
} range_job;

static void range_block(void *p, int r) {
    const range_job *j = p;
    const size_t i0 = (size_t)r * j->block, i1 = j->n - i0 < j->block ? j->n : i0 + j->block;
    j->fn(j->ctx, i0, i1);
}

void parallel_range(int nt, size_t n, size_t elem_work, range_fn fn, void *ctx) {
    range_job j = {fn, ctx, n, RANGE_BLOCK};
    while ((n + j.block - 1) / j.block > INT_MAX) j.block *= 2; /* block indices are ints */
    parallel_rows(nt, (int)((n + j.block - 1) / j.block), j.block * elem_work, range_block, &j);
}

typedef struct stripe_job {
    stripe_fn fn;
    void *ctx;
    int C;
} stripe_job;

static void stripe_unit(void *p, int s) {
    const stripe_job *j = p;
    const int c0 = s * CS;
    j->fn(j->ctx, c0, j->C - c0 < CS ? j->C - c0 : CS);
}

void parallel_stripes(int nt, int C, size_t col_work, stripe_fn fn, void *ctx) {
    stripe_job j = {fn, ctx, C};
    parallel_rows(nt, (C + CS - 1) / CS, CS * col_work, stripe_unit, &j);
}

/* Operands of the row and stripe loops below (which field holds what is
 * said at each loop). */
typedef struct rows_args {
    const float *x, *w, *b, *g; /* input, weight (or mix), bias (or zero row), incoming gradient */
    const int *tok;
    float *y, *dx, *dw, *db, *stats;
    int N, T, C, G, accumulate;
    float eps;
} rows_args;

/* ---- embedding (§1.2: x = E[tok]) ------------------------------------- */

static void embedding_row(void *p, int n) {
    const rows_args *a = p; /* w = E, y = out */
    memcpy(a->y + (size_t)n * a->C, a->w + (size_t)a->tok[n] * a->C, sizeof(float) * (size_t)a->C);
}

void embedding_forward(const float *E, const int *tok, int N, int C, float *out, int nt) {
    rows_args a = {.w = E, .tok = tok, .y = out, .C = C};
    parallel_rows(nt, N, 2 * (size_t)C, embedding_row, &a);
}

/* Each stripe adds its rows in order: a token repeated in the batch gets its
 * rows' gradients in the same order for any thread count. */
static void embedding_stripe(void *p, int c0, int w) {
    const rows_args *a = p; /* g = dout, dw = dE */
    for (int n = 0; n < a->N; n++) {
        const float *g = a->g + (size_t)n * a->C + c0;
        float *e = a->dw + (size_t)a->tok[n] * a->C + c0;
#pragma omp simd
        for (int j = 0; j < w; j++) e[j] += g[j];
    }
}

void embedding_backward(const float *dout, const int *tok, int N, int C, float *dE, int nt) {
    rows_args a = {.g = dout, .tok = tok, .dw = dE, .N = N, .C = C};
    parallel_stripes(nt, C, 3 * (size_t)N, embedding_stripe, &a);
}

/* ---- layernorm (§0) ----------------------------------------------------- */

/* Group norm: each of the G groups of C/G adjacent channels of a row
 * normalised on its own (layernorm: G = 1), then the per-channel affine. */
static void group_norm_row(void *p, int n) {
    const rows_args *a = p;
    group_norm(a->x + (size_t)n * a->C, a->w, a->b, a->G, a->C / a->G, a->eps, a->y + (size_t)n * a->C);
}

void group_norm_forward(const float *x, const float *w, const float *b, int N, int C, int G, float eps, float *y,
                        int nt) {
    rows_args a = {.x = x, .w = w, .b = b, .y = y, .C = C, .G = G, .eps = eps};
    parallel_rows(nt, N, 2 * (size_t)C, group_norm_row, &a);
}

/* With x̂ = (x - mean)·rstd and g = dy ⊙ w, per group of S channels:
 *   dx = rstd·(g - mean(g) - x̂·mean(g ⊙ x̂)),  dw = Σ_n dy ⊙ x̂,  db = Σ_n dy.
 * dx row by row (saving each group's mean and rstd in stats), then dw, db by stripes. */
static void norm_backward_group(const rows_args *a, const float *xr, const float *g, const float *w, int S,
                                float *d, float *stats) {
    double sum = 0, sq = 0;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < S; i++) sum += xr[i];
    const double mean = sum / S;
#pragma omp simd reduction(+ : sq)
    for (int i = 0; i < S; i++) sq += (xr[i] - mean) * (xr[i] - mean);
    const double rstd = 1.0 / sqrt(sq / S + a->eps);
    double m1 = 0, m2 = 0;
#pragma omp simd reduction(+ : m1, m2)
    for (int i = 0; i < S; i++) {
        const double gi = (double)g[i] * w[i];
        m1 += gi;
        m2 += gi * (xr[i] - mean) * rstd;
    }
    m1 /= S;
    m2 /= S;
#pragma omp simd
    for (int i = 0; i < S; i++) {
        const double xh = (xr[i] - mean) * rstd;
        d[i] += (float)(rstd * ((double)g[i] * w[i] - m1 - xh * m2));
    }
    stats[0] = (float)mean;
    stats[1] = (float)rstd;
}

static void group_norm_backward_row(void *p, int n) {
    const rows_args *a = p; /* g = dy */
    const int C = a->C, S = C / a->G;
    for (int q = 0; q < a->G; q++) {
        const size_t o = (size_t)n * C + (size_t)q * S;
        norm_backward_group(a, a->x + o, a->g + o, a->w + (size_t)q * S, S, a->dx + o,
                            a->stats + 2 * ((size_t)n * a->G + q));
    }
}

static void group_norm_backward_stripe(void *p, int c0, int wd) {
    const rows_args *a = p; /* g = dy */
    const int S = a->C / a->G;
    double aw[CS] = {0}, ab[CS] = {0};
    for (int n = 0; n < a->N; n++) {
        const float *xr = a->x + (size_t)n * a->C + c0, *g = a->g + (size_t)n * a->C + c0;
        const float *st = a->stats + 2 * (size_t)n * a->G;
        /* the stripe group by group, so the inner loop has one mean and rstd and vectorizes */
        for (int j = 0; j < wd;) {
            const int q = (c0 + j) / S, end = (q + 1) * S - c0 < wd ? (q + 1) * S - c0 : wd;
            const float mean = st[2 * q], rstd = st[2 * q + 1];
#pragma omp simd
            for (int i = j; i < end; i++) {
                aw[i] += (double)g[i] * ((xr[i] - mean) * rstd);
                ab[i] += g[i];
            }
            j = end;
        }
    }
    for (int j = 0; j < wd; j++) {
        a->dw[c0 + j] += (float)aw[j];
        a->db[c0 + j] += (float)ab[j];
    }
}

void group_norm_backward(const float *x, const float *w, const float *dy, int N, int C, int G, float eps, float *dx,
                         float *dw, float *db, float *stats, int nt) {
    rows_args a = {.x = x, .w = w, .g = dy, .dx = dx, .dw = dw, .db = db, .stats = stats, .N = N, .C = C, .G = G,
                   .eps = eps};
    parallel_rows(nt, N, 6 * (size_t)C, group_norm_backward_row, &a); /* x four times, dy twice */
    parallel_stripes(nt, C, 2 * (size_t)N, group_norm_backward_stripe, &a);
}

void layernorm_forward(const float *x, const float *w, const float *b, int N, int C, float *y, int nt) {
    group_norm_forward(x, w, b, N, C, 1, LN_EPS, y, nt);
}

void layernorm_backward(const float *x, const float *w, const float *dy, int N, int C, float *dx, float *dw,
                        float *db, float *stats, int nt) {
    group_norm_backward(x, w, dy, N, C, 1, LN_EPS, dx, dw, db, stats, nt);
}

static void sum_rows_stripe(void *p, int c0, int wd) {
    const rows_args *a = p; /* x = rows, dw = out */
    double acc[CS] = {0};
    for (int n = 0; n < a->N; n++) {
        const float *xr = a->x + (size_t)n * a->C + c0;
        for (int j = 0; j < wd; j++) acc[j] += xr[j];
    }
    for (int j = 0; j < wd; j++) a->dw[c0 + j] += (float)acc[j];
}

void sum_rows(const float *x, int N, int C, float *out, int nt) {
    rows_args a = {.x = x, .dw = out, .N = N, .C = C};
    parallel_stripes(nt, C, (size_t)N, sum_rows_stripe, &a);
}

/* ---- token shift + mix (§1.2) ------------------------------------------- */

static void token_shift_row(void *p, int n) {
    const rows_args *a = p; /* x = z, w = mu, b = the zero row before each sequence, y = out */
    const float *prev = n % a->T ? a->x + (size_t)(n - 1) * a->C : a->b;
    token_mix(a->x + (size_t)n * a->C, prev, a->w, a->C, a->y + (size_t)n * a->C);
}

void token_shift_forward(const float *z, const float *mu, int B, int T, int C, const float *zeros,
                         float *out, int nt) {
    rows_args a = {.x = z, .w = mu, .b = zeros, .y = out, .T = T, .C = C};
    parallel_rows(nt, B * T, 3 * (size_t)C, token_shift_row, &a);
}

static void token_shift_backward_stripe(void *p, int c0, int w) {
    const rows_args *a = p; /* g = dout, x = z, w = mu, dx = dz, dw = dmu */
    const int T = a->T, C = a->C;
    const float *mu = a->w;
    double am[CS] = {0};
    for (int n = 0; n < a->N; n++) {
        const int t = n % T;
        const size_t r = (size_t)n * C + c0;
        const float *g = a->g + r, *gnext = t + 1 < T ? g + C : zero_row;
        const float *zc = a->x + r, *zprev = t > 0 ? zc - C : zero_row;
        float *d = a->dx + r;
#pragma omp simd
        for (int j = 0; j < w; j++) am[j] += (double)g[j] * (zc[j] - zprev[j]);
        if (a->accumulate) {
#pragma omp simd
            for (int j = 0; j < w; j++) d[j] += mu[c0 + j] * g[j] + (1.0f - mu[c0 + j]) * gnext[j];
        } else {
#pragma omp simd
            for (int j = 0; j < w; j++) d[j] = mu[c0 + j] * g[j] + (1.0f - mu[c0 + j]) * gnext[j];
        }
    }
    for (int j = 0; j < w; j++) a->dw[c0 + j] += (float)am[j];
}

void token_shift_backward(const float *dout, const float *z, const float *mu, int B, int T, int C,
                          float *dz, int accumulate, float *dmu, int nt) {
    rows_args a = {.g = dout, .x = z, .w = mu, .dx = dz, .dw = dmu, .N = B * T, .T = T, .C = C,
                   .accumulate = accumulate};
    parallel_stripes(nt, C, 5 * (size_t)B * T, token_shift_backward_stripe, &a);
}

/* ---- linear (no bias) ----------------------------------------------------- */

void linear_forward(const float *W, int out, int in, const float *X, int N, float *Y, int nt) {
    const matrix m = {.type = DT_F32, .rows = out, .cols = in, .data = W};
    matmul(&m, X, N, Y, nt);
}

void linear_backward(const float *W, int out, int in, const float *X, const float *dY, int N,
                     float *dX, float *dW, int nt) {
    matmul_backward_weight(dY, X, N, out, in, dW, nt); /* before dX: dX may overwrite X */
    if (dX) matmul_backward_input(W, out, in, dY, N, dX, nt);
}

/* ---- elementwise ----------------------------------------------------------- */

/* Operands of the element-wise loops: inputs a, b, c and outputs y, y2
 * (each loop names them as in its equation). */
typedef struct elem_args {
    const float *a, *b, *c;
    float *y, *y2;
} elem_args;

static void sigmoid_range(void *p, size_t i0, size_t i1) {
    float *x = ((const elem_args *)p)->y;
    for (size_t i = i0; i < i1; i++) x[i] = sigmoidf(x[i]);
}

void sigmoid_forward(float *x, size_t n, int nt) {
    elem_args e = {.y = x};
    parallel_range(nt, n, 8, sigmoid_range, &e); /* 2 floats, and an expf worth several */
}

static void gate_range(void *p, size_t i0, size_t i1) {
    const elem_args *e = p;
    const float *r = e->a, *val = e->b;
    float *out = e->y;
#pragma omp simd
    for (size_t i = i0; i < i1; i++) out[i] = r[i] * val[i];
}

void gate_forward(const float *r, const float *val, float *out, size_t n, int nt) {
    elem_args e = {.a = r, .b = val, .y = out};
    parallel_range(nt, n, 3, gate_range, &e);
}

static void sigmoid_gate_backward_range(void *p, size_t i0, size_t i1) {
    const elem_args *e = p;
    const float *r = e->a, *val = e->b, *dout = e->c;
    float *dval = e->y, *dpre = e->y2;
#pragma omp simd
    for (size_t i = i0; i < i1; i++) {
        const float g = dout[i];
        dval[i] = g * r[i];
        dpre[i] = g * val[i] * r[i] * (1.0f - r[i]);
    }
}

void sigmoid_gate_backward(const float *r, const float *val, const float *dout, float *dval,
                           float *dpre, size_t n, int nt) {
    elem_args e = {.a = r, .b = val, .c = dout, .y = dval, .y2 = dpre};
    parallel_range(nt, n, 5, sigmoid_gate_backward_range, &e);
}

/* Branch-free (the sign of k is random, a branch mispredicts half the time):
 * k + |k| is exactly 2·max(k, 0). */
static void relu2_range(void *p, size_t i0, size_t i1) {
    const elem_args *e = p;
    const float *k = e->a;
    float *h = e->y;
#pragma omp simd
    for (size_t i = i0; i < i1; i++) {
        const float a = 0.5f * (k[i] + fabsf(k[i]));
        h[i] = a * a;
    }
}

void relu2_forward(const float *k, float *h, size_t n, int nt) {
    elem_args e = {.a = k, .y = h};
    parallel_range(nt, n, 2, relu2_range, &e);
}

static void relu2_backward_range(void *p, size_t i0, size_t i1) {
    const elem_args *e = p;
    const float *k = e->a, *dh = e->b;
    float *dk = e->y;
#pragma omp simd
    for (size_t i = i0; i < i1; i++) dk[i] = (k[i] + fabsf(k[i])) * dh[i];
}

void relu2_backward(const float *k, const float *dh, float *dk, size_t n, int nt) {
    elem_args e = {.a = k, .b = dh, .y = dk};
    parallel_range(nt, n, 3, relu2_backward_range, &e);
}

static void residual_range(void *p, size_t i0, size_t i1) {
    const elem_args *e = p;
    const float *x = e->a, *a = e->b;
    float *y = e->y;
#pragma omp simd
    for (size_t i = i0; i < i1; i++) y[i] = x[i] + a[i];
}

void residual_forward(const float *x, const float *a, float *y, size_t n, int nt) {
    elem_args e = {.a = x, .b = a, .y = y};
    parallel_range(nt, n, 3, residual_range, &e);
}

/* ---- softmax cross-entropy and L2Wrap (§1.2, §3.3) --------------------------- */

typedef struct ce_args {
    const float *logits, *lse_in; /* forward: logits; backward: lse */
    float *dlogits, *row_loss, *lse; /* backward: the logits, in place; forward: row_loss, lse */
    const int *targets;
    int V;
    float inv_n, l2wrap;
} ce_args;

static void cross_entropy_row(void *p, int n) {
    const ce_args *a = p;
    const int V = a->V;
    const float *l = a->logits + (size_t)n * V;
    float mx = l[0];
    for (int j = 1; j < V; j++) mx = l[j] > mx ? l[j] : mx;
    double sum = 0;
    for (int j = 0; j < V; j++) sum += expf(l[j] - mx);
    const double s = (double)mx + log(sum);
    a->lse[n] = (float)s;
    a->row_loss[n] = (float)(s - l[a->targets[n]]);
}

/* The logits' row is read twice, with an expf per element (worth several). */
#define CE_ROW_WORK(V) (8 * (size_t)(V))

void cross_entropy_forward(const float *logits, const int *targets, int N, int V, float *row_loss,
                           float *lse, int nt) {
    ce_args a = {.logits = logits, .targets = targets, .row_loss = row_loss, .lse = lse, .V = V};
    parallel_rows(nt, N, CE_ROW_WORK(V), cross_entropy_row, &a);
}

static void cross_entropy_backward_row(void *p, int n) {
    const ce_args *a = p;
    const int V = a->V;
    const float inv_n = a->inv_n;
    float *l = a->dlogits + (size_t)n * V;
    int jmax = 0;
    for (int j = 1; j < V; j++)
        if (l[j] > l[jmax]) jmax = j;
    const float top = l[jmax];
    for (int j = 0; j < V; j++) l[j] = expf(l[j] - a->lse_in[n]) * inv_n;
    l[a->targets[n]] -= inv_n;
    l[jmax] += a->l2wrap * top * inv_n; /* L2Wrap: d/dy of (l2wrap/2N)·max(y)² */
}

void cross_entropy_backward(float *logits, const int *targets, const float *lse, int N, int V,
                            float l2wrap, int nt) {
    ce_args a = {.dlogits = logits, .lse_in = lse, .targets = targets, .V = V,
                 .inv_n = 1.0f / (float)N, .l2wrap = l2wrap};
    parallel_rows(nt, N, CE_ROW_WORK(V), cross_entropy_backward_row, &a);
}
