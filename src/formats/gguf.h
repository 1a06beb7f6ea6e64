/* GGUF, llama.cpp's model container (version 3; docs/formats.md "GGUF"):
 *
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x   (string key, u32 value type, value)
 *   n_tensors x (string name, u32 n_dims, u64 dims[n_dims] (ggml order:
 *                fastest first), u32 ggml type, u64 offset)
 *   padding to `general.alignment` (default 32), then the data section;
 *   every offset is relative to it and a multiple of the alignment.
 *
 * Strings are u64 length + bytes (no terminator); an array value is u32
 * element type, u64 count, then the elements. All little-endian.
 *
 * gguf_parse reads the directory of a mapped file and checks every length,
 * count, offset and size against the file; the values stay in the mapping. */
#ifndef RWKV_GGUF_H
#define RWKV_GGUF_H

#include <stdint.h>

#include "core/tensor.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" on disk */
#define GGUF_DEFAULT_ALIGNMENT 32

typedef enum gguf_type {
    GGUF_U8 = 0, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL,
    GGUF_STRING, GGUF_ARRAY, GGUF_U64, GGUF_I64, GGUF_F64, GGUF_TYPE_COUNT
} gguf_type;

typedef struct gguf_kv {
    char *key;
    gguf_type type;
    uint64_t at;        /* file offset of the value */
    /* scalars: integer types in u (zero-extended) or i (sign-extended), floats in f */
    uint64_t u;
    int64_t i;
    double f;
    const char *str;    /* GGUF_STRING: the bytes (not terminated) and their length */
    uint64_t len;
    gguf_type elem;     /* GGUF_ARRAY: element type and count; elements start at `at + 12` */
    uint64_t count;
} gguf_kv;

typedef struct gguf_tensor_info {
    char *name;
    dtype type;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS]; /* PyTorch order (ggml's reversed) */
    const uint8_t *data;
    size_t nbytes;
} gguf_tensor_info;

typedef struct gguf_file {
    uint32_t version;
    uint64_t alignment, data_at;
    gguf_kv *kv;
    uint64_t n_kv;
    gguf_tensor_info *tensors;
    uint64_t n_tensors;
} gguf_file;

/* Parses the directory of the GGUF file p[0..size) (path for messages). */
rwkv_status gguf_parse(const char *path, const uint8_t *p, uint64_t size, gguf_file *g, rwkv_error *err);
void gguf_free(gguf_file *g);

/* The entry named key, or NULL. */
const gguf_kv *gguf_find(const gguf_file *g, const char *key);
/* An unsigned integer entry (any integer type, value >= 0): 1 and *out, or 0 when absent or another type. */
int gguf_get_uint(const gguf_file *g, const char *key, uint64_t *out);

/* Reads the strings of a string array in order (their lengths were checked
 * by gguf_parse, so the walk stays inside the file). */
typedef struct gguf_string_iter {
    const uint8_t *p;
} gguf_string_iter;
void gguf_strings_begin(const uint8_t *file, const gguf_kv *kv, gguf_string_iter *it);
/* The next string of the array (the caller counts kv->count of them). */
void gguf_strings_next(gguf_string_iter *it, const char **s, uint64_t *len);

/* ggml type codes <-> dtypes (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * Q4_K, Q5_K, Q6_K); -1 / 0 for types rwkv.c does not handle. */
int gguf_ggml_type(dtype t);
int gguf_dtype(uint32_t ggml_type, dtype *out);

#endif
