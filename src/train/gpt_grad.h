/* Training the GPT baseline (model/gpt.h): the GPT-2 initialisation, the
 * backward through the activations the batched forward saved, and the
 * training FLOPs per token. */
#ifndef RWKV_TRAIN_GPT_GRAD_H
#define RWKV_TRAIN_GPT_GRAD_H

#include <stdint.h>

#include "core/rng.h"
#include "model/gpt.h"

/* Training FLOPs per token at context T (forward + backward = 3 x forward,
 * forward = 2 x matmul parameters + 2 L T C for the causal QKᵀ and PV). */
double gpt_train_flops_per_token(const gpt_shape *shape, int T);

/* GPT-2 initialisation, deterministic for a seed: every weight matrix,
 * wte and wpe ~ N(0, 0.02); the two residual projections of each block
 * (attn.c_proj, mlp.c_proj) ~ N(0, 0.02 / sqrt(2 L)); biases 0; LayerNorm
 * weights 1, biases 0. RWKV_ERR_ARG on a bad shape, RWKV_ERR_NOMEM. */
rwkv_status gpt_init_params(const gpt_shape *shape, float *params, uint64_t seed);
/* The same one tensor at a time: tensor p of the layout into w, drawing from
 * *gen, which gpt_init_params seeds once with the seed and runs through the
 * tensors in layout order (the model is one stream). */
void gpt_init_tensor(const gpt_shape *shape, const param_info *p, float *w, rng *gen);

/* Forward + backward over inputs/targets [B][T] (each row a separate
 * sequence at positions 0..T-1). *loss = mean cross-entropy over B*T tokens;
 * d(loss)/d(params) is ADDED into grads (zero it once per optimizer step).
 * Deterministic: the result does not depend on the thread count. */
rwkv_status gpt_forward_backward(gpt_train_ctx *ctx, const float *params, const int *inputs,
                                 const int *targets, float *grads, float *loss, rwkv_error *err);

#endif
