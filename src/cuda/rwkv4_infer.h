/* RWKV-4 inference on one CUDA device, callable from C: the weights of one
 * model uploaded once, and the forward of rwkv_eval_sequence over one
 * sequence whose recurrent state lives in device memory in the CPU's layout
 * (per layer att_xx[C], aa[A], bb[A], pp[A], ffn_xx[C]), so a download of it
 * is the CPU's state.
 *
 * Precision: float32 keeps every weight and activation in float32 and
 * multiplies in strict fp32 (the mode compared tightly with the CPU);
 * bf16 stores the matrices (and the head) in bfloat16 and rounds each
 * matrix product's input to bfloat16, accumulating in float32. The residual
 * stream, layer norms, token shift, the WKV recurrence and the state stay
 * float32 in both. Nothing prints; CUDA failures become statuses. */
#ifndef RWKV_CUDA_RWKV4_INFER_H
#define RWKV_CUDA_RWKV4_INFER_H

#include <stddef.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rwkv4_infer rwkv4_infer;

typedef struct rwkv4_infer_shape {
    int n_vocab, n_embd, n_layer, n_ffn, dim_att;
} rwkv4_infer_shape;

/* Fills dst with the numel float32 values of the checkpoint tensor `name`
 * (the official names: "emb.weight", "blocks.3.att.key.weight", ...). */
typedef rwkv_status (*rwkv4_infer_fetch)(void *ctx, const char *name, float *dst, size_t numel, rwkv_error *err);

/* Selects device `device`, allocates the weights and the work buffers and
 * uploads every weight through fetch (it waits). */
rwkv_status rwkv4_infer_new(const rwkv4_infer_shape *shape, int bf16, int device, rwkv4_infer_fetch fetch,
                            void *fetch_ctx, rwkv4_infer **out, rwkv_error *err);
void rwkv4_infer_free(rwkv4_infer *ctx);

/* Device bytes of the weights. */
size_t rwkv4_infer_weight_bytes(const rwkv4_infer *ctx);

/* Feeds n >= 1 tokens (already checked against the vocabulary) from the
 * device state d_state, as rwkv_eval_sequence: logits (host, may be NULL)
 * receives [n][V] when all_logits, else the last token's [V]. Waits. */
rwkv_status rwkv4_infer_eval(rwkv4_infer *ctx, float *d_state, const int *tokens, size_t n, float *logits,
                             int all_logits, rwkv_error *err);

/* Waits for everything the context enqueued. */
rwkv_status rwkv4_infer_sync(rwkv4_infer *ctx, rwkv_error *err);

#ifdef __cplusplus
}
#endif

#endif
