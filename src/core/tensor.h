/* A tensor set: the named, typed, shaped arrays of one checkpoint, viewed in
 * place in a mapped file or held in buffers the set owns. Every file-format
 * reader produces one; the model and the writers consume it. */
#ifndef RWKV_TENSOR_H
#define RWKV_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/strmap.h"

#define TENSOR_MAX_DIMS 4

typedef struct tensor {
    char *name;
    dtype type;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS]; /* PyTorch order: last index fastest */
    const void *data;               /* contiguous, little-endian */
    size_t nbytes;
    /* A matrix whose file stores its last two axes swapped in a block type
     * (a GGUF or rwkv.cpp LoRA): the reader puts `data` in order as float32,
     * and keeps here the file's rows as stored ([..][shape[ndim-1]][shape[ndim-2]]
     * of stored_type), which a model can read as they are; else NULL. */
    const void *stored_rows;
    dtype stored_type;
} tensor;

/* A buffer the set owns: heap memory (bytes 0), freed with the set, or an
 * anonymous mapping of `bytes` (tensor_set_alloc_large), unmapped with it. */
typedef struct tensor_owned {
    void *data;
    size_t bytes;
} tensor_owned;

typedef struct tensor_set {
    tensor *tensors;
    int count, capacity;
    strmap index; /* name -> position in tensors (loading stays linear in the tensor count) */
    tensor_owned *owned; /* buffers freed (or unmapped) with the set */
    int owned_count, owned_capacity;
    uint8_t *arena;    /* the free rest of the last arena (tensor_set_alloc) */
    size_t arena_left;
    mapped_file file; /* the mapping the views point into (may be empty) */
    mapped_file *more_files; /* further mappings: the other shards of a sharded checkpoint */
    int more_count;
    const char *format; /* "safetensors", "pth", "rwkv.cpp" */
    const char *layout; /* NULL: official names as stored; "transformers": renamed from its layout */
    int pack_panels;    /* set before a model is built from the set: keep its matrices packed too (model/load.c) */
    int group_rows;     /* likewise: keep its block-format matrices grouped for decode too (model/load.c) */
} tensor_set;

void tensor_set_init(tensor_set *set);
void tensor_set_free(tensor_set *set);

/* Adds a tensor viewing `data` (which must outlive the set: the mapping or an
 * owned buffer). The name is copied. Checks nbytes against dtype and shape. */
rwkv_status tensor_set_add(tensor_set *set, const char *name, dtype type, int ndim,
                           const int64_t *shape, const void *data, size_t nbytes,
                           rwkv_error *err);

/* A zeroed buffer owned by the set, 64-byte aligned from 64 KB on (NULL when
 * out of memory). Buffers of 64 KB or more are carved from 32 MB arenas of
 * tensor_set_alloc_large (the larger ones get a mapping of their own): a
 * model's load-time copies are many such buffers (a 1.5B GGUF's LoRA
 * factors, converted and transposed, are 3 x 113 MB in pieces under 1 MB),
 * and each would otherwise fault its 4 KB pages in one by one. Builds with
 * AddressSanitizer keep every buffer on the heap, where it checks bounds. */
void *tensor_set_alloc(tensor_set *set, size_t nbytes);
/* A zeroed buffer owned by the set in an anonymous mapping of its own,
 * aligned to 2 MB and, where the system has them, in transparent huge pages
 * (what tensor_set_alloc takes its arenas and largest buffers from). A 4 KB
 * page costs a fault when first written, slow on a virtual machine: a 1.5B
 * model's load-time copies took 500,000. */
void *tensor_set_alloc_large(tensor_set *set, size_t nbytes);

const tensor *tensor_set_find(const tensor_set *set, const char *name);

/* dst[k][j][i] = src[k][i][j] for k < batch, i < a, j < b: values of `elem`
 * bytes (2: f16 or bf16, 4: float32) with their last two axes swapped (the
 * layouts converters transpose). */
void transpose_last2(const void *src, void *dst, size_t elem, int64_t batch, int64_t a, int64_t b);

/* The type transpose_last2_to writes values of `type` in: f16 and bf16 as
 * they are (every token reads a model's LoRAs: as floats they would be twice
 * the bytes), any other type as float32. */
dtype transposed_type(dtype type);
/* The batch·a·b values of `type` at src, as transposed_type(type), into dst
 * with their last two axes swapped. 0, or -1 when out of memory (a float32
 * scratch copy). */
int transpose_last2_to(dtype type, const void *src, void *dst, int64_t batch, int64_t a, int64_t b);

/* Removes the named tensor (a reader that splits or renames tensors); the
 * data it viewed stays valid until the set is freed. 0, or -1 when absent or
 * out of memory. */
int tensor_set_remove(tensor_set *set, const char *name);

/* Gives tensor i a new name; -1 when out of memory (the set keeps its old name). */
int tensor_set_rename(tensor_set *set, int i, const char *name);

/* Moves every tensor, owned buffer and the mapping of `src` into `dst` (one
 * shard of a sharded checkpoint joining the others); `src` is left empty.
 * A name already in `dst` is an error ("appears twice"). */
rwkv_status tensor_set_merge(tensor_set *dst, tensor_set *src, rwkv_error *err);

/* Bytes of every file the set maps. */
uint64_t tensor_set_file_bytes(const tensor_set *set);

/* Number of elements; -1 when the shape is negative or overflows. */
int64_t tensor_numel(const tensor *t);
/* numel of a shape, -1 on a negative dimension or overflow past 2^62 */
int64_t shape_numel(int ndim, const int64_t *shape);

/* Writes "[a, b, c]" into buf. */
void shape_format(int ndim, const int64_t *shape, char *buf, size_t size);

#endif
