/* The layers training is built from, as forward/backward pairs over N = B·T
 * rows: embedding, LayerNorm, linear, residual and cross-entropy, shared by
 * RWKV-4 (train/rwkv4_grad.c) and the GPT baseline, plus the token shift,
 * sigmoid gate and squared ReLU of RWKV-4 (docs/model.md §1.2;
 * the backward equations are in docs/training-math.md). Activations are row-major [N][width], the B
 * sequences of T tokens one after another.
 *
 * Conventions: a backward ADDS into parameter gradients (dW, dw, db, dmu,
 * dE) and into an input gradient only where it says "+="; sums over rows
 * always run in row order (each thread owns whole columns, whole rows, or
 * fixed blocks of rows whose partial sums are added in block order), so
 * results do not depend on the thread count. */
#ifndef RWKV_KERNELS_TRAIN_OPS_H
#define RWKV_KERNELS_TRAIN_OPS_H

#include <stddef.h>

/* The layers' loops run on the library's thread pool (parallel_rows,
 * kernels/pool.c), in two shapes besides plain row loops, shared with the
 * GPT baseline:
 *
 * parallel_range: fn(ctx, i0, i1) over consecutive blocks covering [0, n),
 * for element-wise loops (elem_work = floats touched per element); any
 * split gives the same result.
 *
 * parallel_stripes: fn(ctx, c0, w) for every stripe of columns [c0, c0 + w)
 * of a width-C activation, w = LAYER_STRIPE (less for the last): the shape
 * of a sum over rows (a parameter gradient). The stripe is the unit of
 * work: one thread sums its rows in order (in double), so the result does
 * not depend on the thread count; col_work = floats touched per column. */
enum { LAYER_STRIPE = 16 }; /* one cache line of each row */
typedef void (*range_fn)(void *ctx, size_t i0, size_t i1);
typedef void (*stripe_fn)(void *ctx, int c0, int w);
void parallel_range(int nt, size_t n, size_t elem_work, range_fn fn, void *ctx);
void parallel_stripes(int nt, int C, size_t col_work, stripe_fn fn, void *ctx);

/* out[n] = E[tok[n]] */
void embedding_forward(const float *E, const int *tok, int N, int C, float *out, int nt);
/* dE[tok[n]] += dout[n] */
void embedding_backward(const float *dout, const int *tok, int N, int C, float *dE, int nt);

/* Scratch (floats) of the backward passes that sum over rows: layernorm,
 * group norm and shift_norm_backward, for activations of width C. */
size_t train_scratch_floats(int C);

/* y[n] = LN(x[n]; w, b) with eps 1e-5 (§0). */
void layernorm_forward(const float *x, const float *w, const float *b, int N, int C, float *y,
                       int nt);
/* dx += dLN/dx·dy; dw += Σ dy ⊙ x̂; db += Σ dy. `scratch`: train_scratch_floats(C). */
void layernorm_backward(const float *x, const float *w, const float *dy, int N, int C, float *dx,
                        float *dw, float *db, float *scratch, int nt);

/* Group norm (RWKV-7's ln_x): each row's G groups of C/G adjacent channels
 * normalised on their own with `eps`, then y = x̂ ⊙ w + b per channel; the
 * layernorm above is G = 1, eps 1e-5. The backward as layernorm_backward. */
void group_norm_forward(const float *x, const float *w, const float *b, int N, int C, int G, float eps, float *y,
                        int nt);
void group_norm_backward(const float *x, const float *w, const float *dy, int N, int C, int G, float eps, float *dx,
                         float *dw, float *db, float *scratch, int nt);

/* Token shift + mix (§1.2): out[b,t] = mu ⊙ z[b,t] + (1 - mu) ⊙ z[b,t-1],
 * z[b,-1] = 0; `zeros` is C zero floats. */
void token_shift_forward(const float *z, const float *mu, int B, int T, int C, const float *zeros,
                         float *out, int nt);
/* dz = (or += when accumulate) mu ⊙ dout[t] + (1 - mu) ⊙ dout[t+1] (within
 * each sequence); dmu += Σ dout[t] ⊙ (z[t] - z[t-1]). */
void token_shift_backward(const float *dout, const float *z, const float *mu, int B, int T, int C,
                          float *dz, int accumulate, float *dmu, int nt);

/* Several token shifts of one layernorm's output z = LN(x; w, b), and that
 * norm, backward in one pass over the rows (RWKV-4's mixes: the token
 * shifts' backward and layernorm_backward, each reading and writing every
 * row once instead of once per shift and twice for the norm):
 *   gz = Σ_i mu_i ⊙ dout_i[t] + (1 - mu_i) ⊙ dout_i[t+1],
 *   dmu_i += Σ dout_i[t] ⊙ (z[t] - z[t-1]),
 * then dx +=, dw +=, db += as layernorm_backward with dy = gz. */
enum { SHIFT_NORM_MAX = 3 };
typedef struct shift_norm_grad {
    int n_mix; /* shifts, at most SHIFT_NORM_MAX */
    const float *dout[SHIFT_NORM_MAX], *mu[SHIFT_NORM_MAX];
    float *dmu[SHIFT_NORM_MAX];
    const float *z, *x, *w; /* the norm's output and input [N][C], its weight [C] */
    float *dx, *dw, *db;
} shift_norm_grad;
void shift_norm_backward(const shift_norm_grad *g, int B, int T, int C, float *scratch, int nt);

/* Y = X Wᵀ, W [out][in] f32 (matmul_forward_tiled: the backward products' tiling). */
void linear_forward(const float *W, int out, int in, const float *X, int N, float *Y, int nt);
/* dW += dYᵀ X, then dX = dY W when dX is not NULL; dX may be X itself. */
void linear_backward(const float *W, int out, int in, const float *X, const float *dY, int N,
                     float *dX, float *dW, int nt);

/* x[i] = 0 for i < n (gradients before a step's backward: the memory
 * bandwidth of both cores, not one). */
void zero_floats(float *x, size_t n, int nt);

/* Sigmoid gate out = σ(pre) ⊙ val, in two steps: sigmoid_forward turns pre
 * into r = σ(pre) in place (the saved activation), gate_forward multiplies. */
void sigmoid_forward(float *x, size_t n, int nt);
void gate_forward(const float *r, const float *val, float *out, size_t n, int nt);
/* From the saved r = σ(pre): dval = dout ⊙ r, dpre = dout ⊙ val ⊙ r(1 - r);
 * dval or dpre may be dout itself. */
void sigmoid_gate_backward(const float *r, const float *val, const float *dout, float *dval,
                           float *dpre, size_t n, int nt);

/* h = max(k, 0)² */
void relu2_forward(const float *k, float *h, size_t n, int nt);
/* dk = dh ⊙ 2 max(k, 0); dk may be dh. */
void relu2_backward(const float *k, const float *dh, float *dk, size_t n, int nt);

/* out[c] += Σ_n x[n][c] (the gradient of a per-channel vector added to every row). */
void sum_rows(const float *x, int N, int C, float *out, int nt);

/* y = x + a (residual add); y may be x. */
void residual_forward(const float *x, const float *a, float *y, size_t n, int nt);

/* Cross-entropy of softmax(logits[n]) against targets[n]: row_loss[n] =
 * lse[n] - logits[n][target], lse = log Σ exp. */
void cross_entropy_forward(const float *logits, const int *targets, int N, int V, float *row_loss,
                           float *lse, int nt);
/* logits -> d(mean loss)/dlogits in place: (softmax - onehot) / N, plus the
 * L2Wrap term l2wrap·max / N on each row's (first) largest logit (§3.3). */
void cross_entropy_backward(float *logits, const int *targets, const float *lse, int N, int V,
                            float l2wrap, int nt);

#endif
