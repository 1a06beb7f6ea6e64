/* Writer of GGUF version 3 files (layout in formats/gguf.h). */
#ifndef RWKV_GGUF_WRITE_H
#define RWKV_GGUF_WRITE_H

#include "core/tensor.h"
#include "formats/gguf.h"

/* One metadata entry to write: a scalar (u for integer types and BOOL, f
 * for F32/F64), a string (str, len), or an array of strings (strs, lens)
 * or of i32 (i32s) with count elements. */
typedef struct gguf_out_kv {
    const char *key;
    gguf_type type;
    uint64_t u;
    double f;
    const char *str;
    size_t len;
    gguf_type elem;
    uint64_t count;
    const char *const *strs;
    const size_t *lens;
    const int32_t *i32s;
} gguf_out_kv;

/* Writes the entries and the tensors (names as given; shapes in PyTorch
 * order, written reversed as ggml dims; data aligned to 32 bytes)
 * atomically. Tensor types: those gguf_ggml_type knows. */
rwkv_status gguf_write(const char *path, const gguf_out_kv *kvs, int n_kv, const tensor *tensors, int n_tensors,
                       rwkv_error *err);

#endif
