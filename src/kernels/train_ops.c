/* Forward/backward pairs of the training layers (docs/training-math.md).
 * Every loop runs on the library's thread pool (kernels/pool.c), so training
 * shares one set of threads with the kernels: row-wise work is split over
 * rows, element-wise work over blocks of elements, and sums over rows
 * (parameter gradients of vectors) over stripes of LAYER_STRIPE columns,
 * each stripe summing its rows in order in double, or, inside a row loop,
 * over fixed blocks of rows (add_block_sums), so results never depend on
 * the thread count. */
#include "kernels/train_ops.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_train.h"
#include "kernels/simd_clones.h"

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
    float *y, *dx, *dw, *db, *scratch;
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
SIMD_CLONES
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

/* ---- sums over rows in fixed blocks ------------------------------------------ */

/* The backward passes that are row loops (norms, token shifts) also sum
 * over rows for parameter gradients. Rather than a second pass over the
 * activations by column stripes, each of ROW_BLOCKS fixed blocks of rows
 * adds its rows in order into its own partial sums (double), and the
 * partials are then added block by block, in order. The blocks depend on N
 * only, so the results do not depend on the thread count. */
enum { ROW_BLOCKS = 32, SUM_VECTORS_MAX = SHIFT_NORM_MAX + 2 };

size_t train_scratch_floats(int C) {
    return 2 * (size_t)ROW_BLOCKS * (size_t)SUM_VECTORS_MAX * (size_t)C + (size_t)ROW_BLOCKS * (size_t)C;
}

static int rows_per_block(int N) { return (N + ROW_BLOCKS - 1) / ROW_BLOCKS; }

/* How many blocks N rows make (ROW_BLOCKS at most; fewer when N is small). */
static int row_blocks(int N) { return (N + rows_per_block(N) - 1) / rows_per_block(N); }

/* The rows [*n0, *n1) of block b. */
static void block_bounds(int N, int b, int *n0, int *n1) {
    const int rb = rows_per_block(N);
    *n0 = b * rb;
    *n1 = (b + 1) * rb < N ? (b + 1) * rb : N;
}

/* Partial sums of block b: nvec vectors of C doubles; scratch layout [block][vector][C]. */
static double *block_partials(float *scratch, int b, int nvec, int C) {
    return (double *)(void *)scratch + (size_t)b * (size_t)nvec * (size_t)C;
}

/* One row of floats per block after the partials (shift_norm_backward's gz). */
static float *block_row(float *scratch, int b, int C) {
    return scratch + 2 * (size_t)ROW_BLOCKS * (size_t)SUM_VECTORS_MAX * (size_t)C + (size_t)b * (size_t)C;
}

typedef struct block_sum_job {
    float *scratch;
    float *out[SUM_VECTORS_MAX];
    int blocks, nvec, C;
} block_sum_job;

SIMD_CLONES
static void block_sum_stripe(void *p, int c0, int w) {
    const block_sum_job *j = p;
    for (int v = 0; v < j->nvec; v++) {
        double acc[CS] = {0};
        for (int b = 0; b < j->blocks; b++) {
            const double *part = block_partials(j->scratch, b, j->nvec, j->C) + (size_t)v * j->C + c0;
            for (int i = 0; i < w; i++) acc[i] += part[i];
        }
        for (int i = 0; i < w; i++) j->out[v][c0 + i] += (float)acc[i];
    }
}

/* out[v] += the blocks' partial sums of vector v, block by block. */
static void add_block_sums(float *scratch, int blocks, int nvec, int C, float *const *out, int nt) {
    block_sum_job j = {.scratch = scratch, .blocks = blocks, .nvec = nvec, .C = C};
    for (int v = 0; v < nvec; v++) j.out[v] = out[v];
    parallel_stripes(nt, C, (size_t)blocks * (size_t)nvec * 2, block_sum_stripe, &j);
}

/* ---- norm backward -------------------------------------------------------------- */

/* With x̂ = (x - mean)·rstd and g = dy ⊙ w, per group of S channels:
 *   dx = rstd·(g - mean(g) - x̂·mean(g ⊙ x̂)),  dw = Σ_n dy ⊙ x̂,  db = Σ_n dy.
 * One group of one row: dx added, dy ⊙ x̂ and dy added into the partials pw, pb. */
SIMD_CLONES
static void norm_backward_group(const float *xr, const float *dy, const float *w, int S, float eps, float *d,
                                double *pw, double *pb) {
    double sum = 0, sq = 0;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < S; i++) sum += xr[i];
    const double mean = sum / S;
#pragma omp simd reduction(+ : sq)
    for (int i = 0; i < S; i++) sq += (xr[i] - mean) * (xr[i] - mean);
    const double rstd = 1.0 / sqrt(sq / S + eps);
    double m1 = 0, m2 = 0;
#pragma omp simd reduction(+ : m1, m2)
    for (int i = 0; i < S; i++) {
        const double gi = (double)dy[i] * w[i];
        m1 += gi;
        m2 += gi * (xr[i] - mean) * rstd;
    }
    /* the sums above in double; each element's own terms in float (twice the lanes) */
    const float meanf = (float)mean, rstdf = (float)rstd, m1f = (float)(m1 / S), m2f = (float)(m2 / S);
#pragma omp simd
    for (int i = 0; i < S; i++) {
        const float xh = (xr[i] - meanf) * rstdf;
        d[i] += rstdf * (dy[i] * w[i] - m1f - xh * m2f);
        pw[i] += dy[i] * xh;
        pb[i] += dy[i];
    }
}

/* One row of a group norm's backward (g = dy), its sums into the partials pw, pb. */
static void norm_backward_row(const rows_args *a, int n, const float *dy, double *pw, double *pb) {
    const int C = a->C, S = C / a->G;
    for (int q = 0; q < a->G; q++) {
        const size_t o = (size_t)n * C + (size_t)q * S;
        norm_backward_group(a->x + o, dy + (size_t)q * S, a->w + (size_t)q * S, S, a->eps, a->dx + o,
                            pw + (size_t)q * S, pb + (size_t)q * S);
    }
}

static void group_norm_backward_block(void *p, int b) {
    const rows_args *a = p; /* g = dy */
    int n0, n1;
    block_bounds(a->N, b, &n0, &n1);
    double *pw = block_partials(a->scratch, b, 2, a->C), *pb = pw + a->C;
    memset(pw, 0, 2 * sizeof(double) * (size_t)a->C);
    for (int n = n0; n < n1; n++) norm_backward_row(a, n, a->g + (size_t)n * a->C, pw, pb);
}

void group_norm_backward(const float *x, const float *w, const float *dy, int N, int C, int G, float eps, float *dx,
                         float *dw, float *db, float *scratch, int nt) {
    rows_args a = {.x = x, .w = w, .g = dy, .dx = dx, .scratch = scratch, .N = N, .C = C, .G = G, .eps = eps};
    const int blocks = row_blocks(N);
    parallel_rows(nt, blocks, 8 * (size_t)C * (size_t)rows_per_block(N), group_norm_backward_block, &a);
    float *const out[2] = {dw, db};
    add_block_sums(scratch, blocks, 2, C, out, nt);
}

void layernorm_forward(const float *x, const float *w, const float *b, int N, int C, float *y, int nt) {
    group_norm_forward(x, w, b, N, C, 1, LN_EPS, y, nt);
}

void layernorm_backward(const float *x, const float *w, const float *dy, int N, int C, float *dx, float *dw,
                        float *db, float *scratch, int nt) {
    group_norm_backward(x, w, dy, N, C, 1, LN_EPS, dx, dw, db, scratch, nt);
}

/* acc[j] += the rows' column c0 + j, j < wd. */
static inline __attribute__((always_inline)) void add_rows(const rows_args *a, int c0, int wd, double *acc) {
    for (int n = 0; n < a->N; n++) {
        const float *xr = a->x + (size_t)n * a->C + c0;
        for (int j = 0; j < wd; j++) acc[j] += xr[j];
    }
}

/* A full stripe takes add_rows with a constant width, so the compiler
 * vectorizes it across the columns (each column's sum in the same order). */
SIMD_CLONES
static void sum_rows_stripe(void *p, int c0, int wd) {
    const rows_args *a = p; /* x = rows, dw = out */
    double acc[CS] = {0};
    if (wd == CS) add_rows(a, c0, CS, acc);
    else add_rows(a, c0, wd, acc);
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

SIMD_CLONES
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

/* ---- token shifts + the norm they read, backward in one pass ------------------- */

/* gz (first) or gz + (another shift): mu ⊙ d[t] + (1 - mu) ⊙ d[t+1], d[t+1] = 0
 * past the sequence's end; pm += d[t] ⊙ (z[t] - z[t-1]), z[-1] = 0. */
SIMD_CLONES
static void shift_row_backward(const float *d, const float *dn, const float *mu, const float *z, const float *zp,
                               int C, int first, float *gz, double *pm) {
    if (dn) {
#pragma omp simd
        for (int c = 0; c < C; c++) {
            const float v = mu[c] * d[c] + (1.0f - mu[c]) * dn[c];
            gz[c] = first ? v : gz[c] + v;
        }
    } else {
#pragma omp simd
        for (int c = 0; c < C; c++) gz[c] = first ? mu[c] * d[c] : gz[c] + mu[c] * d[c];
    }
    if (zp) {
#pragma omp simd
        for (int c = 0; c < C; c++) pm[c] += (double)d[c] * (z[c] - zp[c]);
    } else {
#pragma omp simd
        for (int c = 0; c < C; c++) pm[c] += (double)d[c] * z[c];
    }
}

typedef struct shift_norm_job {
    const shift_norm_grad *g;
    rows_args norm; /* the layernorm's operands, as layernorm_backward passes them */
    int T;
} shift_norm_job;

static void shift_norm_block(void *p, int b) {
    const shift_norm_job *j = p;
    const shift_norm_grad *g = j->g;
    const int C = j->norm.C, T = j->T, nm = g->n_mix;
    int n0, n1;
    block_bounds(j->norm.N, b, &n0, &n1);
    double *part = block_partials(j->norm.scratch, b, nm + 2, C);
    float *gz = block_row(j->norm.scratch, b, C);
    memset(part, 0, sizeof(double) * (size_t)(nm + 2) * (size_t)C);
    for (int n = n0; n < n1; n++) {
        const int t = n % T;
        const size_t r = (size_t)n * C;
        for (int i = 0; i < nm; i++)
            shift_row_backward(g->dout[i] + r, t + 1 < T ? g->dout[i] + r + C : NULL, g->mu[i], g->z + r,
                               t > 0 ? g->z + r - C : NULL, C, i == 0, gz, part + (size_t)i * C);
        norm_backward_row(&j->norm, n, gz, part + (size_t)nm * C, part + (size_t)(nm + 1) * C);
    }
}

void shift_norm_backward(const shift_norm_grad *g, int B, int T, int C, float *scratch, int nt) {
    const int N = B * T, blocks = row_blocks(N);
    shift_norm_job j = {.g = g, .T = T};
    j.norm = (rows_args){.x = g->x, .w = g->w, .dx = g->dx, .scratch = scratch, .N = N, .C = C, .G = 1,
                         .eps = LN_EPS};
    parallel_rows(nt, blocks, (size_t)(4 * g->n_mix + 8) * (size_t)C * (size_t)rows_per_block(N), shift_norm_block,
                  &j);
    float *out[SUM_VECTORS_MAX];
    for (int i = 0; i < g->n_mix; i++) out[i] = g->dmu[i];
    out[g->n_mix] = g->dw;
    out[g->n_mix + 1] = g->db;
    add_block_sums(scratch, blocks, g->n_mix + 2, C, out, nt);
}

/* ---- linear (no bias) ----------------------------------------------------- */

void linear_forward(const float *W, int out, int in, const float *X, int N, float *Y, int nt) {
    matmul_forward_tiled(W, out, in, X, N, Y, nt);
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

static void zero_range(void *p, size_t i0, size_t i1) {
    memset(((const elem_args *)p)->y + i0, 0, sizeof(float) * (i1 - i0));
}

void zero_floats(float *x, size_t n, int nt) {
    elem_args e = {.y = x};
    parallel_range(nt, n, 1, zero_range, &e);
}

static void sigmoid_range(void *p, size_t i0, size_t i1) {
    sigmoid_inplace(((const elem_args *)p)->y + i0, i1 - i0);
}

void sigmoid_forward(float *x, size_t n, int nt) {
    elem_args e = {.y = x};
    parallel_range(nt, n, 8, sigmoid_range, &e); /* 2 floats, and an expf worth several */
}

SIMD_CLONES
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

SIMD_CLONES
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
SIMD_CLONES
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

SIMD_CLONES
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

SIMD_CLONES
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
