/* The model object behind the public rwkv_model handle: the checkpoint's
 * tensors plus a version-specific implementation (model/rwkv4.c, ...). */
#ifndef RWKV_MODEL_H
#define RWKV_MODEL_H

#include "kernels/kernels.h"
#include "rwkv.h"
#include "tensor.h"

typedef struct model_ops {
    /* Feeds n tokens from `state` (updated in place); writes all n rows of
     * logits or only the last row (logits may be NULL). n == 1 is RNN mode. */
    rwkv_status (*eval)(rwkv_model *m, float *state, const int *tokens, size_t n, float *logits,
                        int all_logits, rwkv_error *err);
    void (*state_init)(const rwkv_model *m, float *state);
    void (*free_impl)(void *impl);
} model_ops;

struct rwkv_model {
    tensor_set weights; /* owns the file mapping and converted buffers */
    rwkv_model_info info;
    int n_threads;
    const model_ops *ops;
    void *impl;
};

struct rwkv_state {
    const rwkv_model *model;
    size_t n;
    float *data;
};

/* Version detection from the tensor names (docs §4.6). Returns "4", "5.2",
 * "6", "7", ... */
const char *model_detect_version(const tensor_set *set);

/* Builds the RWKV-4 implementation from m->weights: checks every tensor's
 * presence and shape, fills m->info, m->ops and m->impl. */
rwkv_status rwkv4_build(rwkv_model *m, rwkv_error *err);

/* Helpers shared by the version implementations. */
const tensor *model_tensor(const tensor_set *set, const char *name, rwkv_error *err);
/* A float vector of exactly n elements (any stored shape with n elements),
 * converted to an owned f32 buffer. NULL + err on mismatch. */
float *model_vector(tensor_set *set, const char *name, int64_t n, rwkv_error *err);
/* A 2-D matrix [rows, cols] kept in its stored dtype. */
rwkv_status model_matrix(const tensor_set *set, const char *name, int64_t rows, int64_t cols,
                         matrix *out, rwkv_error *err);

#endif
