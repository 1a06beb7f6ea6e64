/* RWKV-7 "Goose" training math: the parameter layout (official key names and
 * shapes), the official initialisation, the time-parallel forward with saved
 * activations and the backward of every layer (docs/model.md §4.5, the
 * equations in docs/training-math.md), over one flat float32 parameter
 * buffer and one flat gradient buffer.
 *
 * Every layer is a forward/backward pair over [B·T][width] activations
 * (kernels/train_ops.h, kernels/matmul_backward.c, the WKV-7 operator of
 * kernels/wkv7_train.c), so a GPU backend can mirror the same sequence of
 * calls over device buffers.
 *
 * Block 0's value-residual LoRA (att.v0/v1/v2) is not part of the layout:
 * block 0's value is the one the others are mixed towards, so those tensors
 * never influence the output (released checkpoints do not have them). */
#ifndef RWKV_TRAIN_RWKV7_GRAD_H
#define RWKV_TRAIN_RWKV7_GRAD_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/param_layout.h"
#include "core/tensor.h"

/* The sizes of an RWKV-7 model. The attention width is n_embd. */
typedef struct rwkv7_shape {
    int n_vocab, n_embd, n_layer, n_ffn;
    int head_size;                        /* N; n_embd / N heads */
    int d_decay, d_aaa, d_mv, d_gate;     /* LoRA ranks of w, a, v, g */
    int uniform; /* init: matrices uniform with the orthogonal init's variance (no QR) */
} rwkv7_shape;

/* Fills the zero fields with the official defaults (n_ffn 4 C, head size 64
 * or C when smaller, the LoRA ranks of docs/training-rwkv7.md) and checks
 * the shape. */
rwkv_status rwkv7_shape_complete(rwkv7_shape *shape, rwkv_error *err);

/* The layout in the official state_dict order. */
rwkv_status rwkv7_layout_init(const rwkv7_shape *shape, param_layout *layout, rwkv_error *err);

/* Reads the shape from a checkpoint's tensors (emb.weight, ffn.key.weight,
 * att.r_k [H, N], the LoRA factors) and copies the parameters into a new
 * flat buffer. Tensors outside the layout (block 0's v0/v1/v2) are ignored. */
rwkv_status rwkv7_params_from_tensors(const tensor_set *set, rwkv7_shape *shape, param_layout *layout,
                                      float **params, rwkv_error *err);

/* The official RWKV-7 initialisation (docs/training-rwkv7.md), deterministic
 * for a seed. RWKV_ERR_NOMEM when the orthogonal init's workspace cannot be
 * had (params then partly written). */
rwkv_status rwkv7_init_params(const rwkv7_shape *shape, const param_layout *layout, float *params, uint64_t seed);
/* The same for tensor `index` of the layout alone, into w (its numel floats);
 * each tensor has its own random stream. */
rwkv_status rwkv7_init_tensor(const rwkv7_shape *shape, const param_layout *layout, int index, float *w,
                              uint64_t seed);

/* Activation memory for one forward/backward of B sequences of T tokens;
 * n_threads <= 0 uses every core. */
typedef struct rwkv7_train_ctx rwkv7_train_ctx;
rwkv_status rwkv7_train_ctx_new(const rwkv7_shape *shape, const param_layout *layout, int B, int T, int n_threads,
                                rwkv7_train_ctx **out, rwkv_error *err);
void rwkv7_train_ctx_free(rwkv7_train_ctx *ctx);

/* Forward + backward over inputs/targets [B][T], each row from a fresh
 * state: the mean cross-entropy in *loss, d(loss)/d(params) ADDED into
 * grads, with the L2Wrap term of factor l2wrap (0 disables). Bitwise the
 * same for any thread count. RWKV_ERR_ARG for a token outside the
 * vocabulary; RWKV_ERR_NUMERIC when the loss is not finite. */
rwkv_status rwkv7_forward_backward(rwkv7_train_ctx *ctx, const float *params, const int *inputs, const int *targets,
                                   float l2wrap, float *grads, float *loss, rwkv_error *err);

/* Forward only; logits [B][T][V] written when not NULL. */
rwkv_status rwkv7_forward_loss(rwkv7_train_ctx *ctx, const float *params, const int *inputs, const int *targets,
                               float *logits, float *loss, rwkv_error *err);

#endif
