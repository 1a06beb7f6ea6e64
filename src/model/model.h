/* The model object behind the public rwkv_model handle: the checkpoint's
 * tensors plus a version-specific implementation (model/rwkv4.c, ...). */
#ifndef RWKV_MODEL_H
#define RWKV_MODEL_H

#include "kernels/kernels.h"
#include "rwkv.h"
#include "core/tensor.h"

/* What a version file (model/rwkv4.c ... rwkv7.c) supplies; model/common.c
 * does the rest. The version's impl struct begins with an rwkv_common. */
typedef struct model_ops {
    /* Sets what a fresh state holds besides zeros (NULL: all zeros). */
    void (*state_init)(const void *impl, float *state);
    /* Working memory one block needs for a chunk of T tokens, in floats. */
    size_t (*scratch_floats)(const void *impl, int T);
    /* One block over a chunk: reads and updates the residual stream x [T][C]
     * with the layer's recurrent state; z [T][C] and scratch are free. */
    void (*block)(const void *impl, int layer, float *layer_state, float *x, float *z, float *scratch, int T,
                  int n_threads);
} model_ops;

struct rwkv_model {
    tensor_set weights; /* owns the file mapping and converted buffers */
    rwkv_model_info info;
    int n_threads;
    /* Epsilon of the per-head GroupNorm ln_x of RWKV-5/6/7, chosen at load
     * by the file's origin (model_group_norm_eps), not by the version. */
    float gn_eps;
    const model_ops *ops;
    void *impl;
};

struct rwkv_state {
    const rwkv_model *model;
    size_t n;
    float *data;
};

/* Version detection from the tensor names and shapes (docs §4.6). Returns
 * "4", "5.0", "5.1", "5.2", "6" or "7". */
const char *model_detect_version(const tensor_set *set);

/* The GroupNorm epsilon of ln_x for a file of `format` ("safetensors", "pth",
 * "rwkv.cpp") holding an RWKV-`version` model: 64e-5 for the official
 * checkpoints (training computes GroupNorm(y/8) with eps 1e-5, which is
 * GN(y) with eps 64e-5), 1e-5 for rwkv.cpp's v5 files (rwkv.cpp computes them
 * so); rwkv.cpp's v6/v7 use 64e-5 too. See docs/rwkv-versions.md. */
float model_group_norm_eps(const char *format, const char *version);

/* Builds the RWKV-4 implementation from m->weights: checks every tensor's
 * presence and shape, fills m->info, m->ops and m->impl. */
rwkv_status rwkv4_build(rwkv_model *m, rwkv_error *err);
/* The same for RWKV-5 (5.2 and the 5.0/5.1 previews, model/rwkv5.c),
 * RWKV-6 (model/rwkv6.c) and RWKV-7 (model/rwkv7.c); they use m->gn_eps. */
rwkv_status rwkv5_build(rwkv_model *m, rwkv_error *err);
rwkv_status rwkv6_build(rwkv_model *m, rwkv_error *err);
rwkv_status rwkv7_build(rwkv_model *m, rwkv_error *err);

/* Helpers shared by the version implementations. */
const tensor *model_tensor(const tensor_set *set, const char *name, rwkv_error *err);
/* A float vector of exactly n elements (any stored shape with n elements),
 * converted to an owned f32 buffer. NULL + err on mismatch. */
float *model_vector(tensor_set *set, const char *name, int64_t n, rwkv_error *err);
/* A 2-D matrix [rows, cols] kept in its stored dtype. */
rwkv_status model_matrix(const tensor_set *set, const char *name, int64_t rows, int64_t cols,
                         matrix *out, rwkv_error *err);
/* 1 + the largest N of the blocks.N.* tensors (0 when there are none). */
int model_layer_count(const tensor_set *set);
/* `count` low-rank matrices stored [in, out] (count == 1) or [count, in, out]
 * and applied as x @ M (docs §0), converted to owned f32 nn.Linear-style
 * matrices out[c] = [out rows, in cols] for matmul/matvec. */
rwkv_status model_lora(tensor_set *set, const char *name, int count, int64_t in, int64_t out, matrix *outm,
                       rwkv_error *err);

#endif
