/* Transforms that model converters (rwkv.cpp's, llama.cpp's) apply to
 * official RWKV tensors, undone by the readers of their files
 * (formats/rwkvcpp.c, formats/gguf_rwkv.c). Each replaces the tensor in the
 * set with an f32 buffer the set owns (block types are dequantised). */
#ifndef RWKV_FORMATS_UNDO_H
#define RWKV_FORMATS_UNDO_H

#include "core/tensor.h"

/* t's values as float32 in a buffer the set owns; NULL with err set when t
 * is not a float or block type, or out of memory. */
float *undo_values_f32(const char *path, tensor_set *set, const tensor *t, rwkv_error *err);

/* Points t at buf, which holds its values as float32. */
void undo_use_f32(tensor *t, float *buf);

/* Swaps the last two axes ([.., a, b] -> [.., b, a]). */
rwkv_status undo_transpose_last2(const char *path, tensor_set *set, tensor *t, rwkv_error *err);

/* Splits the tensor `name`, n equal float vectors stacked along its first
 * axis, into n tensors `parts[i]` of shape [1, 1, C] that view it in place,
 * and removes `name`. */
rwkv_status undo_split_stacked(const char *path, tensor_set *set, const char *name, const char *const *parts, int n,
                               rwkv_error *err);

#endif
