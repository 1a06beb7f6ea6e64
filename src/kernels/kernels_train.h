/* Training kernels: the backward products of a linear layer. The WKV-4
 * forward over a batch and its backward live with the other WKV operators
 * (kernels/wkv.h, included here for the training code).
 *
 * Every product here is deterministic: each output element is owned by one
 * thread and its sum runs in a fixed order, so results do not depend on
 * thread timing nor on the thread count. Matrices are float32, row-major,
 * PyTorch nn.Linear layout W[rows = out][cols = in]. */
#ifndef RWKV_KERNELS_TRAIN_H
#define RWKV_KERNELS_TRAIN_H

#include "kernels/kernels.h"
#include "kernels/wkv.h"

/* Y[n][r] = sum_c X[n][c] * W[r][c] (Y = X Wᵀ, the forward of the linear
 * layer) as the backward products are computed: tiles of tokens × outputs,
 * so a thread reads the rows of X of its own tokens only (matmul cuts by
 * weight rows, every thread reading all of X: in a training step X was
 * just written by both cores, half of it in the other core's cache). */
void matmul_forward_tiled(const float *W, int rows, int cols, const float *X, int N, float *Y, int n_threads);
void matmul_forward_tiled_with(const kernel_ops *k, const float *W, int rows, int cols, const float *X, int N,
                               float *Y, int n_threads);

/* dX[n][c] = sum_r dY[n][r] * W[r][c]  (gradient w.r.t. the input of Y = X Wᵀ);
 * dY is [N][rows], dX is [N][cols] and is overwritten. */
void matmul_backward_input(const float *W, int rows, int cols, const float *dY, int N, float *dX,
                           int n_threads);

/* dW[r][c] += sum_n dY[n][r] * X[n][c]  (gradient w.r.t. W, accumulated);
 * dY is [N][rows], X is [N][cols], dW is [rows][cols]. */
void matmul_backward_weight(const float *dY, const float *X, int N, int rows, int cols, float *dW,
                            int n_threads);

/* The same products on an explicit kernel variant's micro-kernel
 * (kernel_ops.mm); the two above use kernels_active(). */
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

#endif
