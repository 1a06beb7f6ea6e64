/* Training kernels: the backward products of a linear layer and the WKV
 * forward/backward over a batch (docs/rwkv-architecture.md §2).
 *
 * Every product here is deterministic: each output element is owned by one
 * thread and its sum runs in a fixed order, so results do not depend on
 * thread timing nor on the thread count. Matrices are float32, row-major,
 * PyTorch nn.Linear layout W[rows = out][cols = in]. */
#ifndef RWKV_KERNELS_TRAIN_H
#define RWKV_KERNELS_TRAIN_H

#include "kernels/kernels.h"

/* dX[n][c] = sum_r dY[n][r] * W[r][c]  (gradient w.r.t. the input of Y = X Wᵀ);
 * dY is [N][rows], dX is [N][cols] and is overwritten. */
void matmul_backward_input(const float *W, int rows, int cols, const float *dY, int N, float *dX,
                           int n_threads);

/* dW[r][c] += sum_n dY[n][r] * X[n][c]  (gradient w.r.t. W, accumulated);
 * dY is [N][rows], X is [N][cols], dW is [rows][cols]. */
void matmul_backward_weight(const float *dY, const float *X, int N, int rows, int cols, float *dW,
                            int n_threads);

/* The same products on an explicit kernel variant's micro-kernel
 * (kernel_ops.mm, kernels/cpu.c); the two above use kernels_active(). */
void matmul_backward_input_with(const kernel_ops *k, const float *W, int rows, int cols,
                                const float *dY, int N, float *dX, int n_threads);
void matmul_backward_weight_with(const kernel_ops *k, const float *dY, const float *X, int N,
                                 int rows, int cols, float *dW, int n_threads);

/* Plain scalar references of the two products (single thread, the sums in
 * index order), kept for the tests. */
void matmul_backward_input_ref(const float *W, int rows, int cols, const float *dY, int N,
                               float *dX);
void matmul_backward_weight_ref(const float *dY, const float *X, int N, int rows, int cols,
                                float *dW);

/* WKV forward over B independent rows of T steps, each from the zero state
 * (a = b = 0, p = -1e38), with the shared wkv_forward kernel (§1.3, §2).
 * d = -exp(time_decay) and u are [C]; k, v, y are [B][T][C]. `state` is
 * scratch of 3·B·C floats. Backward needs only y (besides d, u, k, v). */
void wkv_forward_batch(int B, int T, int C, const float *d, const float *u, const float *k,
                       const float *v, float *state, float *y, int n_threads);

/* WKV backward, the stable two-sweep algorithm of §2. Given gy = dL/dy
 * [B][T][C], writes gk, gv [B][T][C] and ADDS dL/dθ (θ = time_decay, via
 * gθ = d·Gd) and dL/du into gtheta, gu [C], summed over the B rows in order.
 * gk and gv serve as the scratch of the first sweep; one of them (not both) may be gy itself. */
void wkv_backward(int B, int T, int C, const float *d, const float *u, const float *k,
                  const float *v, const float *y, const float *gy, float *gk, float *gv,
                  float *gtheta, float *gu, int n_threads);

#endif
