/* Per-head kernels of RWKV-5/6/7 (docs/rwkv-architecture.md §4.3-4.5): the
 * group norm ln_x and the WKV updates of the matrix-valued state.
 *
 * Layout everywhere: a token's attention vector of A = H*N floats is H
 * contiguous heads of N channels; the state of one layer's heads is
 * S[h][i][j] (H*N*N floats, row-major), i = value channel, j = key channel —
 * the layout of the test vectors and of the public rwkv_state. Every row
 * S[h][i][.] evolves independently of the others, which is how the kernels
 * split the work across threads; within a row, time is the outer loop, so
 * RNN mode (T = 1) and sequence mode (T > 1) do the same arithmetic in the
 * same order and agree bit for bit. The state is always float32. */
#ifndef RWKV_KERNELS_HEADS_H
#define RWKV_KERNELS_HEADS_H

#include <stddef.h>

/* GN_H(x; w, b, eps) for one token: each of the H groups of N channels is
 * normalised by its own mean and biased variance (eps inside the sqrt), then
 * y = w * xhat + b per channel (w, b: [H*N]). x and y may alias. */
void group_norm(const float *x, const float *w, const float *b, int H, int N, float eps, float *y);

/* RWKV-5.2 / RWKV-6 WKV over T tokens (r, k, v, y: [T][H*N]):
 *     y_i  = sum_j r_j (S_ij + u_j k_j v_i)      (y from the state before the token)
 *     S_ij = w_j S_ij + k_j v_i
 * w holds per-step decay multipliers in (0, 1): one [H*N] vector per token
 * w_stride floats apart (RWKV-6: w_stride = H*N), or the same vector for
 * every token (RWKV-5: w_stride = 0). u: the bonus [H*N]. S is updated in
 * place. */
void wkv5_forward(int T, int H, int N, const float *r, const float *k, const float *v, const float *w,
                  size_t w_stride, const float *u, float *S, float *y, int n_threads);

/* RWKV-7 WKV over T tokens (every argument but S is [T][H*N]), the
 * generalised delta rule with a = -kappa, b = kappa * alpha:
 *     S_ij = S_ij w_j + (sum_l S_il a_l) b_j + v_i k_j     (old S in every term)
 *     y_i  = sum_j S_ij r_j                                 (new S) */
void wkv7_forward(int T, int H, int N, const float *r, const float *w, const float *k, const float *v,
                  const float *a, const float *b, float *S, float *y, int n_threads);

#endif
