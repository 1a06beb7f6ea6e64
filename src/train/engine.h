/* The per-step math of training behind one small table of operations, so
 * that the loop (train/trainer.c) does not care where the parameters live.
 * The CPU engine (train/engine_cpu.c) is the one implementation now; a GPU
 * engine holding parameters, gradients and moments in device memory fills
 * the same table.
 *
 * Contract, for every engine:
 * - The model state is three fp32 buffers of layout->total floats in the
 *   order of the param_layout (core/param_layout.h): the parameters and the
 *   Adam moments m and v; plus a gradient buffer of the same size that only
 *   the engine sees. The loop never reads or writes any of them except
 *   through these operations.
 * - An engine is created from host buffers (train_engine_new_cpu takes them
 *   over) and gives them back, read-only, through export_state, e.g. for a
 *   checkpoint; the checkpoint files do not depend on the engine.
 * - One optimizer step is: zero_grads, accumulate once per micro-batch
 *   (B = config.batch sequences of T = config.ctx_len tokens), grad_norm,
 *   then adam_step unless the loop skips the step (a non-finite loss or
 *   norm). Every result must be deterministic for a given thread count, so
 *   a resumed run repeats the losses of an uninterrupted one.
 * - Errors are returned as rwkv_status with err filled; nothing is printed. */
#ifndef RWKV_TRAIN_ENGINE_H
#define RWKV_TRAIN_ENGINE_H

#include <stddef.h>

#include "core/error.h"
#include "core/param_layout.h"
#include "train/adam.h"
#include "train/arch.h"

typedef struct train_engine_config {
    const train_arch *arch;
    const arch_shape *shape;  /* of the model being trained; borrowed like lay */
    const param_layout *lay;  /* borrowed: must outlive the engine */
    int batch, ctx_len;       /* a micro-batch: batch sequences of ctx_len tokens */
    int val_rem_batch;        /* sequences of the last, smaller validation batch (0: none) */
    int threads;
    const adam_group *groups; /* copied */
    int n_groups;
    adam_hparams hp;
    float l2wrap;             /* the RWKV-4 logit regulariser (ignored by gpt) */
} train_engine_config;

typedef struct train_engine train_engine;

typedef struct train_engine_ops {
    const char *name;
    void (*free)(train_engine *e);
    /* Gradients := 0 (the start of an optimizer step). */
    void (*zero_grads)(train_engine *e);
    /* Forward + backward of one micro-batch, inputs/targets [batch][ctx_len]
     * on the host; d(loss)/d(params) is ADDED to the gradients and the mean
     * loss written. RWKV_ERR_NUMERIC when the loss is not finite (the loop's
     * non-finite guard handles it); any other error ends the run. */
    rwkv_status (*accumulate)(train_engine *e, const int *inputs, const int *targets, float *loss,
                              rwkv_error *err);
    /* sqrt(sum g^2) of the accumulated gradients, unscaled; NaN or Inf when
     * any element is not finite. */
    double (*grad_norm)(train_engine *e);
    /* The name of the first parameter (layout order) whose gradient is not
     * finite, "(none)" when all are: for the error message. */
    const char *(*nonfinite_param)(train_engine *e);
    /* Adam step number t (1-based) with gradients scaled by grad_scale (the
     * 1/accumulation and clipping factors) at learning rate lr, every group
     * at lr * lr_scale (train/adam.h). */
    void (*adam_step)(train_engine *e, float lr, float grad_scale, long t);
    /* Mean loss of a validation batch of n_seq sequences: n_seq is batch or
     * val_rem_batch. */
    rwkv_status (*eval_loss)(train_engine *e, const int *inputs, const int *targets, int n_seq, float *loss,
                             rwkv_error *err);
    /* Host copies of the parameters and moments (n = layout->total floats
     * each), valid until the next call that changes them. */
    rwkv_status (*export_state)(train_engine *e, const float **params, const float **m, const float **v,
                                rwkv_error *err);
    /* Test hook: makes the first gradient NaN (the non-finite guard's test). */
    void (*poison_grad)(train_engine *e);
} train_engine_ops;

/* Every engine starts with this header. */
struct train_engine {
    const train_engine_ops *ops;
};

/* The CPU engine. Takes over params, m and v (malloc'ed, layout->total
 * floats; m and v NULL: zeros) whatever it returns. The error of a training
 * context that does not fit names "--batch B x --ctx T". */
rwkv_status train_engine_new_cpu(const train_engine_config *cfg, float *params, float *m, float *v,
                                 train_engine **out, rwkv_error *err);

#endif
