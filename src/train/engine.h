/* The per-step math of training behind one small table of operations, so
 * that the loop (train/trainer.c) does not care where the parameters live:
 * the CPU engine (train/engine_cpu.c) keeps them in host memory, the CUDA
 * engine (train/engine_cuda.c) in the memory of one NVIDIA GPU.
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
 *   norm). Every result must be deterministic for a given thread count (on
 *   the CPU) or device and precision (on a GPU), so a resumed run repeats
 *   the losses of an uninterrupted one.
 * - Data parallel (config.dist, the CUDA engine only): every rank's engine
 *   is given the same calls with the same whole micro-batches and returns
 *   the same results (losses, norms and exported state are those of the
 *   whole batch); each call that involves the other ranks (accumulate,
 *   adam_step, eval_loss, export_state) must be made on every rank in the
 *   same order. Only the ranks' rows of a batch differ, not the API.
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
    int device_index;         /* the CUDA engine: which GPU */
    int bf16;                 /* the CUDA engine: bf16 activations and matrix operands (else fp32) */
    struct train_dist *dist;  /* the CUDA engine: the ranks of a data-parallel run (borrowed), or NULL */
    int allreduce_bf16;       /* with dist: the gradients travel as bf16 (else fp32) */
} train_engine_config;

typedef struct train_engine train_engine;

typedef struct train_engine_ops {
    const char *name;
    void (*free)(train_engine *e);
    /* Gradients := 0 (the start of an optimizer step). */
    void (*zero_grads)(train_engine *e);
    /* Forward + backward of one micro-batch, inputs/targets [batch][ctx_len]
     * on the host; d(loss)/d(params) is ADDED to the gradients and the mean
     * loss written. `last` marks the optimizer step's last micro-batch: after
     * it the gradients are complete (a data-parallel engine averages them
     * over its ranks during that backward). RWKV_ERR_NUMERIC when the loss
     * is not finite (the loop's non-finite guard handles it); any other
     * error ends the run. */
    rwkv_status (*accumulate)(train_engine *e, const int *inputs, const int *targets, int last, float *loss,
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
    /* Test hook: makes the gradients NaN, the first parameter's included
     * (the non-finite guard's test). */
    void (*poison_grad)(train_engine *e);
    /* The measured peak (GFLOP/s) that MFU is quoted against: the CPU's
     * float32 FMA peak, a GPU's bf16 matrix-product peak; 0 when it could
     * not be measured. peak_kind names it for the progress display. */
    double (*peak_gflops)(train_engine *e);
    const char *peak_kind;
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

/* RWKV_OK when this build and machine can train `arch` on CUDA device
 * `device_index`; otherwise RWKV_ERR_UNSUPPORTED with one line saying why
 * (no CUDA support in this build, an architecture the GPU cannot train yet,
 * no such device). Cheap enough to call before a run directory is made. */
rwkv_status train_cuda_check(const char *arch, int device_index, rwkv_error *err);
/* Makes CUDA device `device_index` the current one of this thread (after the
 * checks of train_cuda_check that do not depend on an architecture). */
rwkv_status train_cuda_use_device(int device_index, rwkv_error *err);

/* The CUDA engine (train/engine_cuda.c; train/engine_nocuda.c in a build
 * without CUDA): parameters, gradients and moments in device memory, the
 * host buffers copied up and freed whatever it returns. */
rwkv_status train_engine_new_cuda(const train_engine_config *cfg, float *params, float *m, float *v,
                                  train_engine **out, rwkv_error *err);

#endif
