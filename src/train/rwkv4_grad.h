/* RWKV-4 training math: the time-parallel forward with saved activations and
 * the backward of every layer (docs/model.md §1.2, §2), over one
 * flat float32 parameter buffer and one flat gradient buffer.
 *
 * Parameter order and shapes are those of an official RWKV-4 state_dict
 * (emb.weight, blocks.0.ln1.*, ln2.*, ln0.*, att.*, ffn.*, ..., ln_out.*,
 * head.weight), so a checkpoint is one loop over the layout. */
#ifndef RWKV_TRAIN_RWKV4_GRAD_H
#define RWKV_TRAIN_RWKV4_GRAD_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/param_layout.h"
#include "core/tensor.h"

/* The sizes of an RWKV-4 model (dim_att: the attention width, n_embd in
 * every released model). */
typedef model_dims rwkv4_shape;

/* The RWKV-4 layout (official state_dict order and shapes). */
rwkv_status rwkv4_layout_init(const rwkv4_shape *shape, param_layout *layout, rwkv_error *err);

/* Copies a checkpoint's tensors (any float dtype) into the flat f32 buffer;
 * the shape is taken from the tensors (docs §4.2); every parameter must be
 * present with the right number of elements. */
rwkv_status params_from_tensors(const tensor_set *set, param_layout *layout, float **params,
                                rwkv_error *err);

/* Activation memory for one forward/backward of B sequences of T tokens
 * ((6C + 4A + F)·L + 8C + 3A + F + V + 4 floats per token); n_threads <= 0 uses
 * every core. The context keeps its own copy of what it needs from layout. */
typedef struct rwkv4_train_ctx rwkv4_train_ctx;
rwkv_status rwkv4_train_ctx_new(const param_layout *layout, int B, int T, int n_threads,
                                rwkv4_train_ctx **out, rwkv_error *err);
void rwkv4_train_ctx_free(rwkv4_train_ctx *ctx);

typedef struct rwkv4_fb_options {
    float l2wrap;   /* L2Wrap factor (docs §3.3), 1e-4 by default (opt NULL); 0 disables */
} rwkv4_fb_options;

/* Forward + backward over inputs/targets [B][T] (each row from a fresh
 * state, zero token shift). Returns the mean cross-entropy loss in *loss;
 * ADDS d(loss)/d(params) into grads (so accumulation over micro-batches is
 * the caller zeroing grads once). Deterministic, and bitwise the same for
 * any thread count. RWKV_ERR_ARG for a token outside the vocabulary (nothing
 * computed); RWKV_ERR_NUMERIC when the loss is not finite (grads then hold
 * whatever the non-finite values produced). */
rwkv_status rwkv4_forward_backward(rwkv4_train_ctx *ctx, const float *params, const int *inputs,
                                   const int *targets, const rwkv4_fb_options *opt, float *grads,
                                   float *loss, rwkv_error *err);

/* Forward only (validation loss); logits for [B][T][V] are written when
 * logits is not NULL. */
rwkv_status rwkv4_forward_loss(rwkv4_train_ctx *ctx, const float *params, const int *inputs,
                               const int *targets, float *logits, float *loss, rwkv_error *err);

/* The paper's initialisation (docs §3.1-§3.2), deterministic for a seed;
 * emb_scale is the uniform half-width of emb.weight (the run's initial LR).
 * Returns RWKV_ERR_NOMEM when the double-precision workspace of the
 * orthogonal init (rows·cols doubles of the largest such matrix) cannot be
 * allocated; params is then partly written. */
rwkv_status rwkv4_init_params(const param_layout *layout, float *params, uint64_t seed,
                              float emb_scale);
/* The same for tensor `index` of the layout alone, into w (its numel floats):
 * each tensor has its own random stream, so any order gives the same model. */
rwkv_status rwkv4_init_tensor(const param_layout *layout, int index, float *w, uint64_t seed, float emb_scale);

#endif
