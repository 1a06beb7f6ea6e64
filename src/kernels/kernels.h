/* The math kernels. Each operation is written once as a plain scalar
 * reference (kernels/<op>.c); faster variants of the same signature may be
 * selected at run time (kernels/cpu.c), and tests compare every variant with
 * the reference. Model code says *what* is computed; kernels say *how*.
 *
 * Matrices are PyTorch nn.Linear weights: `rows` (out) x `cols` (in),
 * row-major, in any float dtype (f32/f16/bf16) or ggml block type; the
 * arithmetic is always float32. */
#ifndef RWKV_KERNELS_H
#define RWKV_KERNELS_H

#include <stddef.h>

#include <math.h>

#include "dtype.h"

typedef struct matrix {
    dtype type;
    int rows, cols;
    const void *data;
} matrix;

/* y[r] = sum_c W[r][c] * x[c]  (decode: one token) */
void matvec(const matrix *W, const float *x, float *y, int n_threads);

/* Y[n][r] = sum_c W[r][c] * X[n][c] for n < N; X is [N][cols], Y is [N][rows]
 * (sequence mode / training: many tokens against one weight read) */
void matmul(const matrix *W, const float *X, int N, float *Y, int n_threads);

/* Row r of W converted to float32 (embedding lookup). */
void matrix_row_f32(const matrix *W, int r, float *out);

/* LN(x; w, b) = w * (x - mean) / sqrt(var + eps) + b, biased variance
 * (docs/rwkv-architecture.md §0). x and y may alias. */
void layernorm(const float *x, const float *w, const float *b, int n, float eps, float *y);

/* WKV over T steps for C channels, the stable recurrence of docs §1.3.
 * d = -exp(time_decay) (per-step log decay), u = time_first; k, v, y are
 * [T][C]; (aa, bb, pp) is the state [C] each, read and updated in place. */
void wkv_forward(int T, int C, const float *d, const float *u, const float *k, const float *v,
                 float *aa, float *bb, float *pp, float *y);

/* Token shift mix: out = mu * cur + (1 - mu) * prev  (docs §1.2). */
void token_mix(const float *cur, const float *prev, const float *mu, int n, float *out);

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

#endif
