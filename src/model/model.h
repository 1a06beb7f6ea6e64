/* The model object behind the public rwkv_model handle: the checkpoint's
 * tensors, the architecture's implementation built from them, and the
 * backend table through which every public call runs it.
 *
 * A backend is the set of operations a loaded model runs on one device
 * (model_backend below). The CPU has a table per architecture: the RWKV family (model/rwkv_backend.c, over the version
 * files model/rwkv4.c ... rwkv7.c) and the GPT baseline
 * (model/gpt_backend.c). The GPU has one for the RWKV family (model/rwkv_cuda.c),
 * chosen in rwkv_model_load_ex (model/model.c) by the load options; nothing
 * above this layer changes. */
#ifndef RWKV_MODEL_H
#define RWKV_MODEL_H

#include "core/tensor.h"
#include "kernels/kernels.h"
#include "rwkv.h"
#include "rwkv_sample.h"

typedef struct model_backend {
    const char *device; /* "cpu", "cuda" */
    /* Per-sequence memory of a state: allocate it (st->model is set), bring
     * it back to a fresh state, release it. */
    rwkv_status (*state_init)(rwkv_state *st, rwkv_error *err);
    void (*state_reset)(rwkv_state *st);
    void (*state_release)(rwkv_state *st);
    /* The state's floats in host memory, current (NULL: st->data always
     * is); the caller may write them before the next eval. NULL on failure. */
    float *(*state_host)(rwkv_state *st);
    /* Bytes the state's tokens occupy / hold reserved. */
    void (*state_memory)(const rwkv_state *st, size_t *used, size_t *reserved);
    /* Feeds n >= 1 tokens (already checked against the vocabulary and the
     * context) from the state, as rwkv_eval_sequence. */
    rwkv_status (*eval)(rwkv_model *m, rwkv_state *st, const int *tokens, size_t n, float *logits, int all_logits,
                        rwkv_error *err);
    /* Feeds tokens[i] to states[i] for i < n (n >= 1 distinct states, tokens
     * and contexts already checked), as rwkv_eval_batch: logits [n][V]. */
    rwkv_status (*eval_batch)(rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n, float *logits,
                              rwkv_error *err);
    /* As eval_batch, then next[i] drawn from row i's logits by draws[i]
     * (already checked) on the device (NULL: the logits come to the host
     * and model_eval_batch_draw_host draws there). */
    rwkv_status (*eval_batch_draw)(rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n,
                                   const rwkv_draw *draws, int *next, rwkv_error *err);
    /* Bounded-context models only (NULL otherwise): logits [n][V] of tokens
     * fed from position 0 without any state, 1 <= n <= n_ctx (the GPT's
     * whole-sequence forward, for scoring windows). */
    rwkv_status (*forward)(rwkv_model *m, const int *tokens, size_t n, float *logits, rwkv_error *err);
    /* Host memory for logits that the device copies into directly, and its
     * release (NULL: plain malloc and free). */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);
    /* Releases m->impl, and m->device (NULL: nothing there). */
    void (*impl_free)(void *impl);
    void (*device_free)(rwkv_model *m);
} model_backend;

/* What a version file (model/rwkv4.c ... rwkv7.c) supplies; model/common.c
 * does the rest. The version's impl struct begins with an rwkv_common. */
/* The recurrent states a block reads and updates, each already offset to
 * the block's layer: one sequence whose T rows are consecutive tokens of
 * layer[0] (batched = 0), or T independent streams of one token each, row t
 * belonging to layer[t] (batched = 1, the batched decode). */
typedef struct block_states {
    float *const *layer;
    int batched;
} block_states;

typedef struct model_ops {
    /* Sets what a fresh state holds besides zeros (NULL: all zeros). */
    void (*state_init)(const void *impl, float *state);
    /* Working memory one block needs for a chunk of T tokens, in floats. */
    size_t (*scratch_floats)(const void *impl, int T);
    /* One block over a chunk: reads and updates the residual stream x [T][C]
     * with the layer's recurrent state(s); z [T][C] and scratch are free. */
    void (*block)(const void *impl, int layer, const block_states *st, float *x, float *z, float *scratch, int T,
                  int n_threads);
} model_ops;

struct rwkv_model {
    tensor_set weights; /* owns the file mapping and converted buffers */
    rwkv_model_info info;
    int n_threads;
    /* Epsilon of the per-head GroupNorm ln_x of RWKV-5/6/7, chosen at load
     * by the file's origin (model_group_norm_eps), not by the version. */
    float gn_eps;
    const model_backend *backend;
    const model_ops *ops; /* the RWKV version's block (NULL for the GPT) */
    void *impl;
    void *device; /* the device backend's context (the GPU's weights); NULL on the CPU */
};

struct rwkv_state {
    const rwkv_model *model;
    size_t n;      /* floats of data: the RNN state (0 for the GPT) */
    float *data;
    void *seq;     /* the backend's own per-sequence memory (the GPT's KV cache) */
    size_t pos;    /* tokens fed since new/reset */
};

/* The CPU backends. */
extern const model_backend rwkv_cpu_backend;
extern const model_backend gpt_cpu_backend;

/* Builds the model from m->weights for the CPU: checks every tensor's
 * presence and shape, fills m->info (shape fields), m->backend, m->ops and
 * m->impl. The RWKV family detects its version (model/load.c); the GPT
 * baseline converts its weights to f32 (model/gpt_backend.c). */
rwkv_status model_build_rwkv(rwkv_model *m, rwkv_error *err);
rwkv_status model_build_gpt(rwkv_model *m, rwkv_error *err);

/* The version builders model_build_rwkv dispatches to: RWKV-4 (model/rwkv4.c),
 * RWKV-5 (5.2 and the 5.0/5.1 previews, model/rwkv5.c), RWKV-6 and RWKV-7;
 * the last three use m->gn_eps. */
rwkv_status rwkv4_build(rwkv_model *m, rwkv_error *err);
rwkv_status rwkv5_build(rwkv_model *m, rwkv_error *err);
rwkv_status rwkv6_build(rwkv_model *m, rwkv_error *err);
rwkv_status rwkv7_build(rwkv_model *m, rwkv_error *err);

/* How the GPU stores a model's matrices: float32, bfloat16, or int8 with one
 * fp16 scale per 32 weights (RWKV-5/6/7 only). */
typedef enum cuda_matrices { CUDA_MATRICES_FP32, CUDA_MATRICES_BF16, CUDA_MATRICES_INT8 } cuda_matrices;

/* Moves an RWKV model (any version) built for the CPU onto CUDA device
 * `device_index`, its matrices stored as `mats` says: m->backend becomes
 * the GPU's (model/rwkv_cuda.c). RWKV_ERR_UNSUPPORTED for the GPT baseline,
 * int8 for RWKV-4, and in a build without CUDA (model/rwkv_nocuda.c). */
rwkv_status model_to_cuda(rwkv_model *m, int device_index, cuda_matrices mats, rwkv_error *err);

/* rwkv_eval_batch's checks of the tokens and states (model/model.c). */
rwkv_status model_check_batch(const rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n,
                              rwkv_error *err);

/* The backend's eval_batch, then each row drawn on the host by kernels/draw.c
 * (model/batch_draw.c): every backend without a draw of its own. */
rwkv_status model_eval_batch_draw_host(rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n,
                                       const rwkv_draw *draws, int *next, rwkv_error *err);

/* The bounded-context forward of the backend (model_backend.forward) for
 * the scoring code: RWKV_ERR_UNSUPPORTED for a model without one. */
rwkv_status model_forward(rwkv_model *m, const int *tokens, size_t n, float *logits, rwkv_error *err);

#endif
