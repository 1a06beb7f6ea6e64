/* The CUDA kernels of RWKV-4 training, one launcher per operation, callable
 * from C. Each mirrors a CPU layer of kernels/train_ops.h or kernels/ (same
 * equations, same "adds into parameter gradients" convention) and lives in
 * its own src/cuda/<op>.cu with its forward and backward kernels.
 *
 * Pointers named d_* are device memory. Activations are stored as
 * `cuda_dtype` (float32, or bfloat16 in mixed precision); parameters,
 * their gradients and every reduction are float32. Launchers only enqueue
 * work on `stream` (0 = the default stream) and never synchronise; a launch
 * error is picked up by the next cuda_check(). Every buffer is [rows][width]
 * row-major, N = B·T rows of B sequences of T tokens. */
#ifndef RWKV_CUDA_OPS_H
#define RWKV_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "rwkv.h"

#ifdef __cplusplus
extern "C" {
#endif

struct CUstream_st;
typedef struct CUstream_st *cuda_stream; /* = cudaStream_t, without the CUDA headers */

/* CUDA_Q8 is inference's int8 matrix storage (gemv.cu, cuda_dequant_q8):
 * [rows][cols] int8 codes, then [rows][cols / 32] fp16 scales; nothing else takes it. */
typedef enum cuda_dtype { CUDA_F32 = 0, CUDA_BF16 = 1, CUDA_Q8 = 2 } cuda_dtype;
size_t cuda_dtype_size(cuda_dtype t);

/* ---- device, memory, errors (memory.cu) -------------------------------- */

/* Number of usable CUDA devices; 0 when there is no device or no driver. */
int cuda_device_count(void);
/* Multiprocessors of the current device; 0 when it cannot be asked. */
int cuda_sm_count(void);
/* RWKV_OK when the last launch and everything before it went well (no
 * synchronisation); otherwise the error as "what: CUDA message". */
rwkv_status cuda_check(const char *what, rwkv_error *err);
/* Waits for the stream, then as cuda_check (faults inside kernels show here). */
rwkv_status cuda_sync(cuda_stream stream, const char *what, rwkv_error *err);
rwkv_status cuda_alloc(void **d_ptr, size_t bytes, const char *what, rwkv_error *err);
void cuda_free(void *d_ptr);
/* Page-locked host memory (the device copies into it directly); NULL on failure. */
void *cuda_host_alloc(size_t bytes);
void cuda_host_free(void *p);
rwkv_status cuda_upload(void *d_dst, const void *src, size_t bytes, rwkv_error *err);
rwkv_status cuda_download(void *dst, const void *d_src, size_t bytes, rwkv_error *err);
/* bytes from d_src to d_dst on the device (the driver's copy engine path). */
void cuda_copy(void *d_dst, const void *d_src, size_t bytes, cuda_stream stream);
/* d_dst[i] = d_src[i] converted between storage types (float32 <-> bf16). */
void cuda_convert(cuda_dtype dst_t, void *d_dst, cuda_dtype src_t, const void *d_src, size_t n,
                  cuda_stream stream);
/* Sets n elements to a float value (NaN poisons a buffer in the tests). */
void cuda_fill(cuda_dtype t, void *d_dst, float value, size_t n, cuda_stream stream);
/* n elements uniform in [lo, hi) from a counter-based hash of (seed, index). */
void cuda_fill_uniform(cuda_dtype t, void *d_dst, float lo, float hi, uint64_t seed, size_t n,
                       cuda_stream stream);
/* Device bytes in use now on the current device, by every process (cudaMemGetInfo). */
size_t cuda_memory_used(void);

/* ---- embedding.cu --------------------------------------------------------- */

/* out[n] = E[tok[n]] (E float32 [V][C]). */
void cuda_embedding_forward(cuda_dtype t, const float *d_E, const int *d_tok, int N, int C,
                            void *d_out, cuda_stream stream);
/* dE[tok[n]] += dout[n], deterministically: `d_order` lists the N rows
 * grouped by token (rows of one token in increasing order), `d_seg` has
 * n_seg + 1 starts into it, `d_seg_tok` the token of each group; see
 * cuda_embedding_plan(). */
void cuda_embedding_backward(cuda_dtype t, const void *d_dout, const int *d_order, const int *d_seg,
                             const int *d_seg_tok, int n_seg, int C, float *d_dE, cuda_stream stream);
/* Host side of the plan: groups the N tokens (each in [0, V)) by value with
 * a counting sort; order [N], seg [N + 1], seg_tok [N], count [V] scratch.
 * Returns the number of groups. */
int cuda_embedding_plan(const int *tok, int N, int V, int *order, int *seg, int *seg_tok, int *count);

/* ---- layernorm.cu (eps 1e-5, biased variance) ----------------------------- */

/* y[n] = LN(x[n]; w, b); mean/rstd [N] are saved for the backward. */
void cuda_layernorm_forward(cuda_dtype t, const void *d_x, const float *d_w, const float *d_b,
                            int N, int C, void *d_y, float *d_mean, float *d_rstd,
                            cuda_stream stream);
/* dx (+)= dLN/dx·dy (accumulate: add into dx, else overwrite); dw += Σ dy ⊙ x̂,
 * db += Σ dy. `d_partial` is scratch of cuda_colsum_scratch(C, 2) floats. */
void cuda_layernorm_backward(cuda_dtype t, const void *d_x, const float *d_w, const float *d_mean,
                             const float *d_rstd, const void *d_dy, int N, int C, void *d_dx,
                             int accumulate, float *d_dw, float *d_db, float *d_partial,
                             cuda_stream stream);
/* Floats of scratch that a column sum of n_out outputs over width C needs. */
size_t cuda_colsum_scratch(int C, int n_out);

/* ---- token_shift.cu --------------------------------------------------------- */

/* For i < n_mix: out[i][b,t] = mu_i ⊙ z[b,t] + (1 - mu_i) ⊙ z[b,t-1], z[b,-1] = 0;
 * mu_i = d_mu + i·C, out [n_mix][N][C]. */
void cuda_token_shift_forward(cuda_dtype t, const void *d_z, const float *d_mu, int n_mix, int B,
                              int T, int C, void *d_out, cuda_stream stream);
/* dz = Σ_i mu_i ⊙ dout_i[t] + (1 - mu_i) ⊙ dout_i[t+1] (overwritten), and
 * dmu_i += Σ_rows dout_i[t] ⊙ (z[t] - z[t-1]); dout [n_mix][N][C],
 * dmu_i = d_dmu + i·C. `d_partial`: cuda_colsum_scratch(C, n_mix) floats. */
void cuda_token_shift_backward(cuda_dtype t, const void *d_dout, const void *d_z, const float *d_mu,
                               int n_mix, int B, int T, int C, void *d_dz, float *d_dmu,
                               float *d_partial, cuda_stream stream);

/* Inference, one sequence of T tokens continuing a recurrent state (float32):
 * as the forward with z[-1] = d_prev [C] instead of zero; afterwards d_prev
 * holds z[T-1], the state the next call continues from. */
void cuda_token_shift_state(const float *d_z, float *d_prev, const float *d_mu, int n_mix, int T, int C,
                            float *d_out, cuda_stream stream);

/* ---- activation.cu ---------------------------------------------------------- */

/* h = max(k, 0)² */
void cuda_relu2_forward(cuda_dtype t, const void *d_k, void *d_h, size_t n, cuda_stream stream);
/* dk = dh ⊙ 2 max(k, 0); dk may be dh. */
void cuda_relu2_backward(cuda_dtype t, const void *d_k, const void *d_dh, void *d_dk, size_t n,
                         cuda_stream stream);
/* y = x + σ(pre) ⊙ val (the channel-mix output joining the residual). */
void cuda_gate_residual_forward(cuda_dtype t, const void *d_x, const void *d_pre, const void *d_val,
                                void *d_y, size_t n, cuda_stream stream);
/* out = σ(pre) ⊙ val */
void cuda_gate_forward(cuda_dtype t, const void *d_pre, const void *d_val, void *d_out, size_t n,
                       cuda_stream stream);
/* dval = dout ⊙ σ(pre), dpre = dout ⊙ val ⊙ σ(1 - σ); either may be dout. */
void cuda_gate_backward(cuda_dtype t, const void *d_pre, const void *d_val, const void *d_dout,
                        void *d_dval, void *d_dpre, size_t n, cuda_stream stream);

/* ---- wkv4.cu (docs/model.md §1.3, §2) ---------------------------------------- */

/* Scratch of the two WKV launchers for B x T x C: `floats` floats (the
 * per-chunk states) and `doubles` doubles (the backward's per-chunk sums). */
void cuda_wkv_scratch(int B, int T, int C, size_t *floats, size_t *doubles);
/* y = WKV(d = -exp(θ), u, k, v) per row from the zero state, and
 * ry = σ(r) ⊙ y (the gated output fed to the output projection); all [B][T][C]. */
void cuda_wkv_forward(cuda_dtype t, int B, int T, int C, const float *d_theta, const float *d_u,
                      const void *d_k, const void *d_v, const void *d_r, void *d_y, void *d_ry,
                      float *d_chunk, cuda_stream stream);
/* From g = dL/d(ry): gk, gv, gr (the gate's pre-activation) [B][T][C], and
 * ADDS dL/dθ and dL/du into d_gtheta, d_gu [C] (summed in a fixed order).
 * Scratch: d_s, d_q [B][T][C] floats, d_chunk and d_sums of cuda_wkv_scratch. */
void cuda_wkv_backward(cuda_dtype t, int B, int T, int C, const float *d_theta, const float *d_u,
                       const void *d_k, const void *d_v, const void *d_r, const void *d_y,
                       const void *d_g, void *d_gk, void *d_gv, void *d_gr, float *d_gtheta,
                       float *d_gu, float *d_s, float *d_q, float *d_chunk, double *d_sums,
                       cuda_stream stream);

/* Inference, one sequence continuing its state (float32, the CPU's
 * wkv4_forward): y [T][C] from k, v [T][C]; the state aa, bb, pp [C] is read
 * and replaced by the state after the T steps. */
void cuda_wkv_forward_state(int T, int C, const float *d_theta, const float *d_u, const float *d_k,
                            const float *d_v, float *d_aa, float *d_bb, float *d_pp, float *d_y,
                            cuda_stream stream);

/* ---- cross_entropy.cu (§1.2, §3.3) ------------------------------------------ */

/* Row n of logits [N][ld] (V used): row_loss[n] = lse - logits[target]. With
 * backward != 0 the row is replaced by d(mean loss)/dlogits =
 * (softmax - onehot)/N plus l2wrap·max/N on its first largest logit, and
 * its columns [V, ld) by zeros. */
void cuda_cross_entropy(cuda_dtype t, void *d_logits, int ld, const int *d_targets, int N, int V,
                        float l2wrap, int backward, float *d_row_loss, cuda_stream stream);
/* d_out[0] = mean of the n floats (fixed order, accumulated in double). */
void cuda_mean(const float *d_x, int n, float *d_out, cuda_stream stream);

/* ---- adam.cu ------------------------------------------------------------------ */

/* d_norm[0] = sqrt(Σ g²) over n floats (double, fixed blocks; NaN/Inf when
 * an element is not finite). d_partial: cuda_norm_scratch(n) doubles. */
size_t cuda_norm_scratch(size_t n);
void cuda_global_norm(const float *d_g, size_t n, double *d_partial, double *d_norm,
                      cuda_stream stream);
/* One Adam(W) step over a flat buffer cut into spans of equal LR scale and
 * weight decay: the same update as train/adam.c, with the gradients
 * multiplied by grad_scale and, when max_norm > 0, by the clipping factor
 * min(1, max_norm / (norm·grad_scale + 1e-6)) read from d_norm on the device.
 * d_bf16 (optional) receives a bfloat16 copy of the updated parameters. */
typedef struct cuda_adam_span {
    size_t offset, count;
    float lr_scale;
    int decay;
} cuda_adam_span;
void cuda_adam_update(float *d_p, const float *d_g, float *d_m, float *d_v, uint16_t *d_bf16,
                      const cuda_adam_span *d_spans, const int *d_block_span, int n_blocks,
                      float lr, float grad_scale, float max_norm, const double *d_norm, float beta1,
                      float beta2, float eps, float weight_decay, long step, cuda_stream stream);
/* Elements per block of cuda_adam_update: the host cuts every span into
 * chunks of at most this many and lists, per block, the span index and the
 * chunk index within it (2 ints). cuda_adam_blocks fills that table when
 * block_span is not NULL and returns the number of blocks either way. */
enum { CUDA_ADAM_BLOCK = 4096 };
int cuda_adam_blocks(const cuda_adam_span *spans, int n_spans, int *block_span);

/* ---- matmul.cu: cuBLASLt -------------------------------------------------------- */

typedef struct cuda_blas cuda_blas;
rwkv_status cuda_blas_new(cuda_blas **out, rwkv_error *err);
void cuda_blas_free(cuda_blas *h);
/* Column-major GEMM as cuBLASLt sees it, `batch` times with element strides:
 * D = alpha·op(A)·op(B) + beta·C, m×n result, k inner; A and B of type ab,
 * C and D of type cd (C = D when d_C is NULL); fp32 accumulation (strict
 * fp32 when ab is float32). */
typedef struct cuda_gemm {
    cuda_dtype ab, cd;
    int trans_a, trans_b, m, n, k;
    const void *A, *B;
    const void *C;
    void *D;
    int lda, ldb, ldc;
    long long stride_a, stride_b, stride_c;
    int batch;
    float alpha, beta;
} cuda_gemm;
rwkv_status cuda_matmul(cuda_blas *h, const cuda_gemm *g, cuda_stream stream, rwkv_error *err);

/* ---- draw.cu: the next tokens of a batched decode, drawn on the device ------------ */

/* One row's rule (rwkv_draw), its biases at [bias_start, bias_start + n_bias)
 * of the batch's lists. */
typedef struct cuda_draw_rule {
    double temperature, top_p, uniform;
    int top_k;
    int bias_start, n_bias;
    int n_ids; /* draw among ids [0, n_ids) of the row (1 <= n_ids <= V) */
} cuda_draw_rule;
/* next[r] for the n rows of logits [n][V] (clobbered): the token kernels/draw.c
 * draws by rules[r] after its biases, or -1 where none can be drawn. */
void cuda_draw(float *d_logits, int V, int n, const cuda_draw_rule *d_rules, const int *d_bias_ids,
               const float *d_bias, int *d_next, cuda_stream stream);

/* ---- gemv.cu: products of a few rows -------------------------------------------- */

/* For each op: Y[r][out] = act(Σ_i W[o][i] X[r][i]), or Y += the sum when
 * accumulate (no act), for r < rows <= CUDA_GEMV_ROWS; W [out][in] in wt
 * (float32 or bf16), X float32 with rows ldx apart, Y float32 [rows][out];
 * float32 sums. Up to CUDA_GEMV_MAX_OPS ops of the same rows in one launch. */
enum { CUDA_GEMV_ROWS = 8, CUDA_GEMV_MAX_OPS = 8 };
enum { CUDA_ACT_NONE, CUDA_ACT_TANH, CUDA_ACT_SIGMOID, CUDA_ACT_RELU2 };
typedef struct cuda_gemv_op {
    const void *W;
    int out, in;
    const float *X;
    int ldx;
    float *Y;
    int accumulate, act;
    /* Products of more rows (a GEMM, bf16 weights) only: X16, when set, is X
     * already in bf16 (no conversion); Y16, when set, receives the product in
     * bf16 instead of Y (with its act, no accumulate). */
    const void *X16;
    void *Y16;
} cuda_gemv_op;
void cuda_gemv_group(cuda_dtype wt, const cuda_gemv_op *ops, int n_ops, int rows, cuda_stream stream);
/* ---- sparse_product.cu: products of a few rows of mostly zero inputs ------------- */

/* Y[r][out] = Σ_j X[r][j] Wt[j][o], or Y += that when accumulate, for r < rows
 * <= CUDA_GEMV_ROWS, reading only the rows j of Wt [in][out] (the matrix
 * transposed; float32 or bf16, 16-byte aligned) where some X[r][j] is not
 * zero; X float32 with rows ldx apart, Y float32 [rows][out]. scratch holds
 * cuda_sparse_product_scratch() floats, zeros before its first use (each
 * launch leaves its counters at zero again); one launch at a time uses it.
 * A row's result does not depend on the other rows of the launch. Shapes:
 * cuda_sparse_product_fits. */
int cuda_sparse_product_fits(cuda_dtype wt, int out, int in);
size_t cuda_sparse_product_scratch(cuda_dtype wt, int out, int in);
void cuda_sparse_product(cuda_dtype wt, const void *Wt, int out, int in, const float *X, int ldx, int rows, float *Y,
                         int accumulate, float *scratch, cuda_stream stream);

/* A CUDA_Q8 matrix of rows x cols (cols a multiple of 32) to bf16 [rows][cols]. */
void cuda_dequant_q8(const void *q8, int rows, int cols, void *d_bf16, cuda_stream stream);

#ifdef __cplusplus
}
#endif

#endif
