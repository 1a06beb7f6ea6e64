/* The converter transforms undone by the readers (formats/undo.h). */
#include "formats/undo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RWKV_OK when t's values convert to float32; an error naming it otherwise. */
static rwkv_status converts_to_f32(const char *path, const tensor *t, rwkv_error *err) {
    if (dtype_is_float(t->type) || dtype_is_block(t->type)) return RWKV_OK;
    return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s' has type %s; a float type is expected", path, t->name,
                     dtype_name(t->type));
}

float *undo_values_f32(const char *path, tensor_set *set, const tensor *t, rwkv_error *err) {
    size_t n = (size_t)tensor_numel(t);
    if (converts_to_f32(path, t, err) != RWKV_OK) return NULL;
    float *buf = tensor_set_alloc(set, n * sizeof(float));
    if (!buf) rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    else dtype_to_f32(t->type, t->data, buf, n);
    return buf;
}

void undo_use_f32(tensor *t, float *buf) {
    t->type = DT_F32;
    t->data = buf;
    t->nbytes = (size_t)tensor_numel(t) * sizeof(float);
}

rwkv_status undo_transpose_last2(const char *path, tensor_set *set, tensor *t, rwkv_error *err) {
    if (t->ndim < 2)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s' should be a matrix", path, t->name);
    rwkv_status s = converts_to_f32(path, t, err);
    if (s != RWKV_OK) return s;
    const int64_t a = t->shape[t->ndim - 2], b = t->shape[t->ndim - 1], batch = tensor_numel(t) / (a * b);
    /* only the transposed copy stays with the set (a second kept float32
     * copy cost 200 MB at 1.5B) */
    const dtype to = transposed_type(t->type);
    const size_t nbytes = (size_t)tensor_numel(t) * dtype_block_bytes(to);
    void *dst = tensor_set_alloc(set, nbytes);
    if (!dst || transpose_last2_to(t->type, t->data, dst, batch, a, b) != 0)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    if (dtype_is_block(t->type)) t->stored_rows = t->data, t->stored_type = t->type; /* model_lora's */
    t->type = to, t->data = dst, t->nbytes = nbytes;
    t->shape[t->ndim - 2] = b;
    t->shape[t->ndim - 1] = a;
    return RWKV_OK;
}

rwkv_status undo_split_stacked(const char *path, tensor_set *set, const char *name, const char *const *parts, int n,
                               rwkv_error *err) {
    const tensor *t = tensor_set_find(set, name);
    int64_t numel = tensor_numel(t);
    if (!t || numel % n != 0 || t->shape[0] != n || dtype_is_block(t->type) || !dtype_is_float(t->type))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: '%s' must hold %d float vectors stacked on its first axis", path,
                         name, n);
    int64_t C = numel / n, shape[3] = {1, 1, C};
    size_t bytes = dtype_bytes_for(t->type, (uint64_t)C);
    const uint8_t *data = t->data;
    dtype type = t->type;
    for (int i = 0; i < n; i++) {
        rwkv_status s = tensor_set_add(set, parts[i], type, 3, shape, data + (size_t)i * bytes, bytes, err);
        if (s != RWKV_OK) return err ? rwkv_error_prefix(err, path) : s;
    }
    if (tensor_set_remove(set, name) != 0) return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    return RWKV_OK;
}
