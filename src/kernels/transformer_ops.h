/* The layers only a transformer needs, as forward/backward pairs over
 * N = B·T rows in the conventions of kernels/train_ops.h: bias rows, learned
 * position rows, the tanh-approximated GELU and causal multi-head softmax
 * attention. The GPT baseline's forward (model/gpt_forward.c) and its
 * backward (train/gpt_grad.c) are built from them. Every sum over rows is
 * owned by one thread and runs in row order, so results do not depend on the
 * thread count. */
#ifndef RWKV_KERNELS_TRANSFORMER_OPS_H
#define RWKV_KERNELS_TRANSFORMER_OPS_H

#include <math.h>
#include <stddef.h>

/* GELU of GPT-2 ("gelu_new", PyTorch approximate='tanh'):
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

/* tanh through one expf (cheaper than tanhf); exact limits ±1 for large |u|,
 * absolute error ~1e-7 near 0 */
static inline float tanh_fast(float u) { return 1.0f - 2.0f / (1.0f + expf(2.0f * u)); }

static inline float gelu_tanh(float x) {
    return 0.5f * x * (1.0f + tanh_fast(GELU_K * (x + GELU_A * x * x * x)));
}

/* Y[n] += B[idx[n]] for the N rows of M: with idx NULL, B is one row (a
 * bias); else a table (learned positions, idx = the rows' positions). */
void add_rows_of(float *Y, const float *B, const int *idx, int N, int M, int nt);
/* Y[n] += b */
void add_bias(float *Y, const float *b, int N, int M, int nt);
/* db += Σ_n dY[n] (in row order, double accumulators per column stripe) */
void bias_backward(const float *dY, int N, int M, float *db, int nt);

/* y = gelu_tanh(x) elementwise */
void gelu_forward(const float *x, float *y, size_t n, int nt);
/* dx = dy · gelu'(x), in place on dy */
void gelu_backward(const float *x, float *dy, size_t n, int nt);

/* qkv [B][T][3C] -> att [B][H][T][T] (probabilities, 0 above the diagonal),
 * y [B][T][C] (heads side by side); head h owns columns h*D..h*D+D-1 of each
 * of q, k and v (D = C/H), scale 1/sqrt(D). */
void attention_forward(const float *qkv, int B, int T, int C, int H, float *att, float *y, int nt);

/* dy [B][T][C] -> dqkv [B][T][3C] (overwritten). With s = scale q·k,
 * P = softmax(s), y = P v:  dv_u = Σ_t P_tu dy_t,  dP_tu = dy_t·v_u,
 * ds_tu = P_tu (dP_tu - Σ_u' P_tu' dP_tu'),  dq_t = scale Σ_u ds_tu k_u,
 * dk_u = scale Σ_t ds_tu q_t. The probabilities in `att` are overwritten by
 * scale·ds (the next forward recomputes them); `scratch` holds B·H·T floats. */
void attention_backward(const float *qkv, float *att, const float *dy, int B, int T, int C, int H, float *dqkv,
                        float *scratch, int nt);

#endif
