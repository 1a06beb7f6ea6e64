/* The named layout of a model's parameters inside one flat float32 buffer:
 * for each tensor its name (the checkpoint key), shape, offset and size, in
 * the order of the buffer. Training keeps parameters, gradients and Adam
 * moments as flat buffers in this order, so the optimizer, the gradient norm
 * and checkpoint writing loop over a layout without knowing the model. */
#ifndef RWKV_CORE_PARAM_LAYOUT_H
#define RWKV_CORE_PARAM_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/tensor.h"

/* The sizes a layout was built from. A transformer fills dim_att = n_embd. */
typedef struct model_dims {
    int n_vocab, n_embd, n_layer, n_ffn, dim_att;
} model_dims;

typedef struct param_info {
    char name[64];
    int ndim;
    int64_t shape[3];
    size_t offset; /* in floats, into the flat buffer */
    size_t numel;
    float lr_scale; /* per-parameter learning-rate multiplier (1 for most) */
    int decay;      /* 1: weight decay applies (when the run sets one); param_layout_add: matrices */
} param_info;

typedef struct param_layout {
    model_dims shape;
    param_info *params; /* malloc'ed, room for every parameter */
    int count;
    size_t total; /* floats */
} param_layout;

/* Appends a tensor of shape [d0] / [d0][d1] / [d0][d1][d2] (ndim 1..3; unused
 * sizes are ignored) at the end of the buffer. lay->params must have room. */
void param_layout_add(param_layout *lay, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                      float lr_scale);

/* Appends "blocks.<l>.<suffix>" (as param_layout_add). */
void param_layout_add_in_block(param_layout *lay, int l, const char *suffix, int ndim, int64_t d0, int64_t d1,
                               int64_t d2, float lr_scale);

/* Appends an RWKV block's LayerNorms in the official order: ln1, ln2
 * (weight, bias [C]) and, in block 0, ln0 (LR scale 1, no weight decay). */
void param_layout_add_block_norms(param_layout *lay, int l, int C);

void param_layout_free(param_layout *layout);

/* Copies every parameter of the layout from the tensor of the same name
 * (any float dtype) into buf (layout->total floats). Matrices must match the
 * shape exactly; vectors may be stored [C] or [1,1,C] (any shape with the
 * same element count). Tensors the layout does not name are ignored. */
rwkv_status param_layout_fill(const param_layout *layout, const tensor_set *set, float *buf, rwkv_error *err);
const param_info *param_layout_find(const param_layout *layout, const char *name);
/* The name of the first tensor (layout order) with a NaN or Inf among its
 * values in the flat buffer `values`; "(none)" when all are finite. */
const char *param_layout_first_nonfinite(const param_layout *layout, const float *values);

#endif
