/* RWKV-5/6/7 inference on one CUDA device, callable from C: the weights of
 * one model uploaded once, and the forward over tokens continuing recurrent
 * states that live in device memory in the CPU's layout (per layer att_xx[C],
 * S[H][N][N], ffn_xx[C]), so a download of a state is the CPU's state.
 *
 * One call runs either one sequence (n tokens from one state, rwkv_eval_sequence)
 * or a batch (token i fed to state i, rwkv_eval_batch): the same kernels, which
 * read each row's state through a table of state pointers, so every matrix
 * product of a batch step runs once for all rows.
 *
 * Precision as for RWKV-4 (cuda/rwkv4_infer.h): float32 multiplies in strict
 * fp32; bf16 stores every matrix (LoRA included) and the head in bfloat16 and
 * rounds each product's input to bfloat16, accumulating in float32. The
 * residual stream, layer and group norms, token shift, WKV (its state is
 * always float32) and every element-wise step stay float32. Nothing prints. */
#ifndef RWKV_CUDA_RWKV_INFER_H
#define RWKV_CUDA_RWKV_INFER_H

#include <stddef.h>

#include "core/error.h"
#include "cuda/cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rwkv_infer rwkv_infer;

typedef struct rwkv_infer_shape {
    int version;  /* 5, 6 or 7 */
    int has_gate; /* RWKV-5: 0 for the 5.0 preview (no att.gate) */
    int n_vocab, n_embd, n_layer, n_ffn, dim_att, n_head, head_size;
    int lora[4];  /* RWKV-6: Dm, Dd; RWKV-7: Dw, Da, Dv, Dg */
    float gn_eps; /* the GroupNorm epsilon of ln_x */
} rwkv_infer_shape;

/* Where the weights come from (official tensor names, "blocks.3.att.w1"):
 * numel returns a tensor's element count (0: absent); fetch fills dst with
 * its numel values as float32, in the file's layout. */
typedef struct rwkv_infer_source {
    void *ctx;
    size_t (*numel)(void *ctx, const char *name);
    rwkv_status (*fetch)(void *ctx, const char *name, float *dst, size_t numel, rwkv_error *err);
    /* int8 matrices: n floats (a multiple of 32) as n / 32 q8_0 blocks of
     * RWKV_INFER_Q8_BLOCK bytes (an fp16 scale, then 32 int8 codes), by the
     * CPU's quantizer, so the GPU's codes are those a q8_0 file holds */
    void (*quantize_q8)(const float *src, void *blocks, size_t n);
} rwkv_infer_source;
enum { RWKV_INFER_Q8_BLOCK = 34 };

/* How the matrices (LoRA factors and the head included) are stored: float32,
 * bfloat16, or int8 rows with one fp16 scale per 32 weights (q8_0's rule:
 * scale = max |w| / 127 rounded to fp16, w = scale x round(w / scale)),
 * multiplied with bf16 activations in passes of more than 8 rows. */
typedef enum rwkv_infer_matrices { RWKV_INFER_FP32, RWKV_INFER_BF16, RWKV_INFER_INT8 } rwkv_infer_matrices;

/* Selects device `device`, allocates the weights and the work buffers and
 * uploads every weight (it waits). Quantized weights in the file are
 * dequantized by the source's fetch and stored as `mats` says. */
rwkv_status rwkv_infer_new(const rwkv_infer_shape *shape, rwkv_infer_matrices mats, int device,
                           const rwkv_infer_source *src, rwkv_infer **out, rwkv_error *err);
void rwkv_infer_free(rwkv_infer *ctx);

/* Floats of one sequence's state. */
size_t rwkv_infer_state_floats(const rwkv_infer *ctx);

/* n_states == 1: feeds n >= 1 tokens from the device state d_states[0] as
 * rwkv_eval_sequence (logits [n][V] when all_logits, else the last row's).
 * n_states == n: feeds tokens[i] to d_states[i] (distinct), as
 * rwkv_eval_batch (logits [n][V]). d_states is a host array of device
 * pointers; logits (host) may be NULL. Tokens are already checked. Waits. */
rwkv_status rwkv_infer_eval(rwkv_infer *ctx, float *const *d_states, size_t n_states, const int *tokens, size_t n,
                            float *logits, int all_logits, rwkv_error *err);

/* A batch step that draws each row's next token on the device
 * (rwkv_eval_batch_sample): rules[i] for stream i, whose biases lie at
 * rules[i].bias_start in the flat lists; next[i] receives the token. */
typedef struct rwkv_infer_draw {
    const cuda_draw_rule *rules;
    const int *bias_ids;
    const float *bias;
    size_t n_bias;
    int *next;
} rwkv_infer_draw;

/* As rwkv_infer_eval's batch (n streams, tokens[i] fed to d_states[i]), the
 * rows' logits kept on the device and drawn from there. Waits. */
rwkv_status rwkv_infer_eval_draw(rwkv_infer *ctx, float *const *d_states, size_t n, const int *tokens,
                                 const rwkv_infer_draw *draw, rwkv_error *err);

#ifdef __cplusplus
}
#endif

#endif
