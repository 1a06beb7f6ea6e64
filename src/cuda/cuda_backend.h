/* RWKV-4 training on one CUDA device, callable from C (no CUDA types here).
 *
 * A context holds, on the device: the float32 master parameters in the
 * flat RWKV-4 layout (core/param_layout.h, the official state_dict order;
 * plus a bfloat16 copy in bf16 mode),
 * the float32 gradient buffer, Adam's moments, and every activation of one
 * forward/backward over B sequences of T tokens. Parameters and moments
 * travel to and from the host in the CPU's flat layout, so a checkpoint
 * written from a GPU run is the CPU's checkpoint, and either resumes the
 * other.
 *
 * Precision: RWKV4_CUDA_FP32 keeps activations in float32 and multiplies in
 * strict fp32 (the mode the tests compare tightly with the CPU);
 * RWKV4_CUDA_BF16 stores activations and matrix operands in bfloat16 with
 * float32 accumulation, master weights, gradients, optimizer state, layer
 * norm statistics and the whole WKV recurrence in float32.
 *
 * Every call returns an rwkv_status and fills err (CUDA failures become
 * RWKV_ERR_IO / RWKV_ERR_NOMEM / RWKV_ERR_UNSUPPORTED with the CUDA message);
 * nothing prints. Calls only enqueue device work unless they say they wait. */
#ifndef RWKV_CUDA_BACKEND_H
#define RWKV_CUDA_BACKEND_H

#include "core/error.h"
#include "core/param_layout.h"
#include "cuda/cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rwkv4_cuda_precision { RWKV4_CUDA_FP32 = 0, RWKV4_CUDA_BF16 = 1 } rwkv4_cuda_precision;

typedef struct rwkv4_cuda rwkv4_cuda;

/* RWKV_OK when a CUDA device can be used; RWKV_ERR_UNSUPPORTED otherwise. */
rwkv_status rwkv4_cuda_available(rwkv_error *err);

/* A context for the model described by layout (which is copied) and batches
 * of B x T tokens, on the current device. Gradients start at zero,
 * parameters and moments unset (upload them). */
rwkv_status rwkv4_cuda_new(const param_layout *layout, int B, int T, rwkv4_cuda_precision precision,
                           rwkv4_cuda **out, rwkv_error *err);
void rwkv4_cuda_free(rwkv4_cuda *ctx);

/* Data parallel (train/engine_cuda.c): the parameter buffer holds at least
 * param_floats floats (room for an in-place all-gather of equal shards),
 * and Adam's moments exist only for the parameters [moment_lo, moment_hi):
 * the moment copies below move that many floats, and every Adam span must
 * lie inside the range. */
typedef struct rwkv4_cuda_shard {
    size_t param_floats, moment_lo, moment_hi;
} rwkv4_cuda_shard;
rwkv_status rwkv4_cuda_new_shard(const param_layout *layout, int B, int T, rwkv4_cuda_precision precision,
                                 const rwkv4_cuda_shard *shard, rwkv4_cuda **out, rwkv_error *err);

/* Called while forward_backward enqueues the backward, each time the
 * gradients from offset `from` to the end of the layout are final (once
 * the work enqueued so far on the context's stream has run): after the head
 * and ln_out, after each block, and with from = 0 at the end. An engine
 * uses it to start reducing those gradients while the rest is computed.
 * NULL: none. */
typedef void (*rwkv4_cuda_grad_hook)(void *user, size_t from);
void rwkv4_cuda_set_grad_hook(rwkv4_cuda *ctx, rwkv4_cuda_grad_hook hook, void *user);

/* The device buffers, for collectives run beside the context: the float32
 * parameters and gradients (total floats each), the moments of the shard,
 * and the stream every call of the context enqueues on. */
typedef struct rwkv4_cuda_device {
    float *params, *grads, *m, *v;
    cuda_stream stream;
    size_t total;
} rwkv4_cuda_device;
rwkv4_cuda_device rwkv4_cuda_device_state(rwkv4_cuda *ctx);
/* Enqueues the bf16 copy's refresh from the float32 parameters (bf16 mode;
 * nothing in fp32), after they were changed on the device. */
void rwkv4_cuda_refresh_bf16(rwkv4_cuda *ctx);

/* Device bytes this context allocated. */
size_t rwkv4_cuda_bytes(const rwkv4_cuda *ctx);

/* Host <-> device copies of layout.total floats (the moments: of the
 * shard's range); they wait. */
rwkv_status rwkv4_cuda_upload_params(rwkv4_cuda *ctx, const float *params, rwkv_error *err);
rwkv_status rwkv4_cuda_download_params(rwkv4_cuda *ctx, float *params, rwkv_error *err);
rwkv_status rwkv4_cuda_upload_moments(rwkv4_cuda *ctx, const float *m, const float *v,
                                      rwkv_error *err);
rwkv_status rwkv4_cuda_download_moments(rwkv4_cuda *ctx, float *m, float *v, rwkv_error *err);
rwkv_status rwkv4_cuda_download_grads(rwkv4_cuda *ctx, float *grads, rwkv_error *err);
rwkv_status rwkv4_cuda_zero_grads(rwkv4_cuda *ctx, rwkv_error *err);

/* The semantics of the CPU's rwkv4_forward_backward: inputs and targets
 * [B][T] on the host (RWKV_ERR_ARG for a token outside the vocabulary,
 * nothing run), each row from a fresh state; ADDS d(mean loss)/d(params),
 * with the L2Wrap term of factor l2wrap (1e-4 in the recipe, 0 for none),
 * into the device gradient buffer. When loss is not NULL it waits and
 * returns the mean cross-entropy (RWKV_ERR_NUMERIC when not finite); with
 * NULL nothing waits and rwkv4_cuda_last_loss fetches it later. */
rwkv_status rwkv4_cuda_forward_backward(rwkv4_cuda *ctx, const int *inputs, const int *targets,
                                        float l2wrap, float *loss, rwkv_error *err);
/* Forward only: the mean loss (waits); logits [B][T][V] copied out when not NULL. */
rwkv_status rwkv4_cuda_forward_loss(rwkv4_cuda *ctx, const int *inputs, const int *targets,
                                    float *logits, float *loss, rwkv_error *err);
rwkv_status rwkv4_cuda_last_loss(rwkv4_cuda *ctx, float *loss, rwkv_error *err);

/* sqrt(Σ grad²) of the device gradients, kept on the device for the next
 * Adam step's clipping; when norm is not NULL it waits and returns it. */
rwkv_status rwkv4_cuda_grad_norm(rwkv4_cuda *ctx, double *norm, rwkv_error *err);

/* One Adam(W) step, the update of the CPU trainer's Adam, over spans of
 * the flat layout (each with its LR scale and whether weight decay
 * applies), step number t (1-based), with the gradients scaled by
 * grad_scale and, when max_norm > 0, by the clipping factor
 * min(1, max_norm / (norm·grad_scale + 1e-6)) computed on the device from the
 * last rwkv4_cuda_grad_norm. */
typedef struct rwkv4_cuda_adam {
    float beta1, beta2, eps, weight_decay;
} rwkv4_cuda_adam;
rwkv_status rwkv4_cuda_adam_update(rwkv4_cuda *ctx, const cuda_adam_span *spans, int n_spans,
                                   float lr, float grad_scale, float max_norm, long t,
                                   const rwkv4_cuda_adam *h, rwkv_error *err);

/* Waits for all the context's work. */
rwkv_status rwkv4_cuda_sync(rwkv4_cuda *ctx, rwkv_error *err);

/* Device time of the last forward_backward split by kind (milliseconds,
 * from CUDA events; only when timing was enabled, else zeros; waits). */
typedef struct rwkv4_cuda_timing {
    double gemm_ms, wkv_ms, other_ms, total_ms; /* other = total - gemm - wkv */
    double norm_ms, shift_ms, elem_ms, loss_ms; /* parts of other: layer norms, token shifts,
                                                    element-wise and embedding, cross-entropy */
} rwkv4_cuda_timing;
void rwkv4_cuda_set_timing(rwkv4_cuda *ctx, int on);
rwkv_status rwkv4_cuda_timing_get(rwkv4_cuda *ctx, rwkv4_cuda_timing *out, rwkv_error *err);

#ifdef __cplusplus
}
#endif

#endif
