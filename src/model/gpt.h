/* A GPT-style decoder-only transformer, the baseline RWKV is compared with:
 * learned token and position embeddings, pre-LayerNorm blocks of causal
 * multi-head softmax self-attention (fused QKV projection) and a GELU MLP,
 * a final LayerNorm and an untied output head (GPT-2 / nanoGPT with biases).
 *
 *   x   = wte[tok_t] + wpe[t]
 *   per block:  x += c_proj(attn(c_attn(LN1(x))))      attention scale 1/sqrt(D)
 *               x += mlp.c_proj(gelu(mlp.c_fc(LN2(x))))
 *   logits = lm_head(LN_f(x))                          loss = mean cross-entropy
 *
 * GELU is the tanh approximation of GPT-2 ("gelu_new", PyTorch
 * approximate='tanh'): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
 * LayerNorm: biased variance, eps 1e-5 (the shared layernorm kernel).
 *
 * Parameters live in one flat float32 buffer described by a param_layout
 * (core/param_layout.h), as RWKV-4's do, so the Adam, gradient-norm and
 * checkpoint code of the trainer works on it unchanged.
 * Order and names (nanoGPT's state_dict, nn.Linear orientation [out][in]):
 *   transformer.wte.weight [V][C], transformer.wpe.weight [n_ctx][C],
 *   per layer l, prefix transformer.h.l.:
 *     ln_1.weight [C], ln_1.bias [C],
 *     attn.c_attn.weight [3C][C], attn.c_attn.bias [3C]   (rows: q, then k, then v; head h
 *                                                          owns rows h*D..h*D+D-1 of each)
 *     attn.c_proj.weight [C][C], attn.c_proj.bias [C],
 *     ln_2.weight [C], ln_2.bias [C],
 *     mlp.c_fc.weight [F][C], mlp.c_fc.bias [F],
 *     mlp.c_proj.weight [C][F], mlp.c_proj.bias [C],
 *   transformer.ln_f.weight [C], transformer.ln_f.bias [C], lm_head.weight [V][C].
 * Every lr_scale is 1. layout->shape gets n_vocab, n_embd, n_layer, n_ffn
 * and dim_att = n_embd; the GPT-only sizes (n_head, n_ctx) are in gpt_shape.
 *
 * This header is the model: shape, layout, the batched forward, decoding and
 * checkpoints. Training (the GPT-2 init, the backward) is train/gpt_grad.h. */
#ifndef RWKV_MODEL_GPT_H
#define RWKV_MODEL_GPT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/tensor.h"
#include "core/param_layout.h"

typedef struct gpt_shape {
    int n_vocab; /* V */
    int n_embd;  /* C, a multiple of n_head */
    int n_layer; /* L */
    int n_head;  /* H; head size D = C / H */
    int n_ctx;   /* positions of wpe: the longest context */
    int n_ffn;   /* F, 4C in GPT-2 */
} gpt_shape;

/* Fills n_ffn = 4 n_embd when it is 0, then checks every size. */
rwkv_status gpt_shape_check(gpt_shape *shape, rwkv_error *err);

/* The named layout of the flat buffer (layout->params is malloc'ed; release
 * it with param_layout_free or free(layout->params)). */
rwkv_status gpt_layout_init(const gpt_shape *shape, param_layout *layout, rwkv_error *err);

/* Parameter count (= the layout's total). */
size_t gpt_param_count(const gpt_shape *shape);

/* ---- the batched forward with saved activations ------------------------- */

typedef struct gpt_train_ctx gpt_train_ctx;

/* Activation memory for B sequences of T tokens (T <= n_ctx); n_threads <= 0:
 * all cores. The backward (train/gpt_grad.h) runs on the same context. */
rwkv_status gpt_train_ctx_new(const gpt_shape *shape, int B, int T, int n_threads,
                              gpt_train_ctx **out, rwkv_error *err);
void gpt_train_ctx_free(gpt_train_ctx *ctx);
/* Bytes of activation memory the context holds. */
size_t gpt_train_ctx_bytes(const gpt_train_ctx *ctx);

/* Forward only. targets may be NULL (then *loss is not written and loss may
 * be NULL); logits [B][T][V] are copied out when logits is not NULL. */
rwkv_status gpt_forward_loss(gpt_train_ctx *ctx, const float *params, const int *inputs,
                             const int *targets, float *logits, float *loss, rwkv_error *err);

/* ---- inference: one token at a time with a KV cache ---------------------- */

/* Keys and values of every layer for positions 0..pos-1; the storage grows
 * (doubling) as positions are added, up to n_ctx. */
typedef struct gpt_kv_cache gpt_kv_cache;
rwkv_status gpt_kv_cache_new(const gpt_shape *shape, gpt_kv_cache **out, rwkv_error *err);
void gpt_kv_cache_free(gpt_kv_cache *cache);
void gpt_kv_cache_reset(gpt_kv_cache *cache);  /* back to position 0 (keeps the storage) */
int gpt_kv_cache_pos(const gpt_kv_cache *cache); /* tokens fed so far */
size_t gpt_kv_cache_bytes(const gpt_kv_cache *cache);

/* Feeds one token at position gpt_kv_cache_pos(cache), appends its keys and
 * values, writes V logits (logits may be NULL; n_threads <= 0: all cores).
 * RWKV_ERR_ARG when the cache already holds n_ctx positions or the token is
 * outside [0, V). */
rwkv_status gpt_decode(gpt_kv_cache *cache, const float *params, int token, float *logits,
                       int n_threads, rwkv_error *err);

/* ---- checkpoints ---------------------------------------------------------- */

/* 1 when the set holds a GPT checkpoint (transformer.wte.weight). */
int gpt_is_checkpoint(const tensor_set *set);

/* Sizes from the tensors' shapes; n_head from the I64 tensor "config.n_head"
 * when present, else from the argument (<= 0: an error when absent). */
rwkv_status gpt_shape_from_tensors(const tensor_set *set, int n_head, gpt_shape *shape,
                                   rwkv_error *err);

/* The I64 [1] tensor "config.n_head" every GPT checkpoint carries, viewing
 * *n_head. */
tensor gpt_head_count_tensor(const int64_t *n_head);

/* Writes the parameters as float32 safetensors with the names above plus
 * "config.n_head", atomically. */
rwkv_status gpt_save_model(const char *path, const gpt_shape *shape, const float *params,
                           rwkv_error *err);

/* The parameters of a GPT checkpoint already read into `set` (any float
 * dtype) as a malloc'ed flat f32 buffer; shape and layout (optional) are
 * filled. n_head as in gpt_shape_from_tensors. */
rwkv_status gpt_params_from_tensors(const tensor_set *set, int n_head, gpt_shape *shape, param_layout *layout,
                                    float **params, rwkv_error *err);

/* Reads a GPT checkpoint (any float dtype) into a malloc'ed flat f32 buffer;
 * shape and layout (optional, may be NULL) are filled. n_head as in
 * gpt_shape_from_tensors. */
rwkv_status gpt_load_model(const char *path, int n_head, gpt_shape *shape, param_layout *layout,
                           float **params, rwkv_error *err);

#endif
