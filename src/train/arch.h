/* The model architectures the trainer can train, behind one small table of
 * operations: the loop (train/trainer.c) never asks which one it has.
 *
 *   "rwkv4"  RWKV-4 (train/rwkv4_grad.h): the paper's init, L2Wrap, per-parameter LR scales
 *   "rwkv7"  RWKV-7 "Goose" (train/rwkv7_grad.h): the official x070 init, L2Wrap, w0 at 2x LR
 *   "gpt"    the GPT-2-style transformer baseline (model/gpt.h): GPT-2 init, no L2Wrap
 *
 * "rwkv5" and "rwkv6" (train/rwkv56_init.c) have only the operations of a
 * fresh model (shape, layout, init): random RWKV-5.2 / RWKV-6 models for
 * benchmarks and tests, written by `rwkv init`; they cannot be trained.
 *
 * All keep their parameters in one flat float32 buffer described by a
 * param_layout, so Adam, the gradient norm, the weight hash and the training
 * state file are shared. */
#ifndef RWKV_TRAIN_ARCH_H
#define RWKV_TRAIN_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"
#include "train/rwkv4_grad.h"

/* Sizes of a model of any architecture. */
typedef struct arch_shape {
    int n_vocab, n_embd, n_layer;
    int n_ffn;  /* 0 on input: 4 n_embd */
    int n_head; /* gpt: attention heads (0 on input: arch_default_heads); rwkv4: 0 */
    int n_ctx;  /* gpt: positions of the position table; rwkv4: 0 (no limit) */
    /* rwkv5/6/7 (0 on input: the version's defaults); others: 0 */
    int head_size;
    int d_decay, d_aaa, d_mv, d_gate; /* LoRA ranks (rwkv6: d_decay; rwkv7: all four) */
    int d_mix;   /* rwkv6: the token-shift LoRA rank */
    int uniform; /* rwkv5/6/7 init: uniform matrices instead of orthogonal (rwkv_init_options.uniform) */
} arch_shape;

/* What an init carries from one tensor to the next: gpt draws the whole
 * model from one generator (seeded at tensor 0); the RWKV versions seed a
 * stream per tensor and need nothing. */
typedef struct arch_init_state {
    rng gen;
} arch_init_state;

typedef struct train_arch {
    const char *name;
    /* Fills the defaults of `sh` and checks it. */
    rwkv_status (*shape_check)(arch_shape *sh, rwkv_error *err);
    /* The named layout of the flat buffer (lay->params malloc'ed). */
    rwkv_status (*layout)(const arch_shape *sh, param_layout *lay, rwkv_error *err);
    /* Fresh weights of tensor `index` of the layout into w (its numel
     * floats), deterministic for a seed; called once per tensor, in layout
     * order from 0. emb_scale is RWKV-4's emb.weight half-width (the
     * others have their own). */
    rwkv_status (*init_tensor)(const arch_shape *sh, const param_layout *lay, int index, float *w, uint64_t seed,
                               float emb_scale, arch_init_state *st, rwkv_error *err);
    /* Reads a checkpoint of this architecture; sh->n_head is the head count
     * to use when the file does not store one. */
    rwkv_status (*load)(const char *path, arch_shape *sh, param_layout *lay, float **params, rwkv_error *err);
    /* Writes float32 safetensors (atomically). */
    rwkv_status (*save)(const char *path, const arch_shape *sh, const param_layout *lay, const float *params,
                        rwkv_error *err);
    /* Activation memory for B sequences of T tokens. */
    rwkv_status (*ctx_new)(const arch_shape *sh, const param_layout *lay, int B, int T, int n_threads,
                           void **ctx, rwkv_error *err);
    void (*ctx_free)(void *ctx);
    /* Mean loss of inputs/targets [B][T]; d(loss)/d(params) ADDED into grads.
     * l2wrap: the RWKV-4 logit regulariser factor (ignored by gpt). */
    rwkv_status (*forward_backward)(void *ctx, const float *params, const int *inputs, const int *targets,
                                    float l2wrap, float *grads, float *loss, rwkv_error *err);
    rwkv_status (*forward_loss)(void *ctx, const float *params, const int *inputs, const int *targets,
                                float *loss, rwkv_error *err);
    /* Training FLOPs per token at context T (the MFU numerator). */
    double (*flops_per_token)(const arch_shape *sh, const param_layout *lay, int T);
} train_arch;

extern const train_arch train_arch_rwkv4;
extern const train_arch train_arch_gpt;
extern const train_arch train_arch_rwkv7;
extern const train_arch train_arch_rwkv5; /* init only */
extern const train_arch train_arch_rwkv6; /* init only */

/* The architecture called `name` ("rwkv4", "rwkv7" or "gpt"), or NULL. */
const train_arch *train_arch_find(const char *name);
/* "rwkv4, rwkv7, gpt": for messages. */
const char *train_arch_names(void);
/* The default head count of a transformer of width C: C/64 (at least 1),
 * lowered to the nearest divisor of C. */
int arch_default_heads(int n_embd);
/* Fresh weights of the whole flat buffer (init_tensor over the layout). */
rwkv_status train_arch_init(const train_arch *arch, const arch_shape *sh, const param_layout *lay, float *params,
                            uint64_t seed, float emb_scale, rwkv_error *err);

#endif
