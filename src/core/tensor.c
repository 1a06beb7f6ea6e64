#include "core/tensor.h"

#include "core/huge_pages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tensor_set_init(tensor_set *set) { memset(set, 0, sizeof *set); }

void tensor_set_free(tensor_set *set) {
    for (int i = 0; i < set->count; i++) free(set->tensors[i].name);
    free(set->tensors);
    strmap_free(&set->index);
    for (int i = 0; i < set->owned_count; i++) {
        const tensor_owned *o = &set->owned[i];
        if (o->bytes) huge_pages_unmap(o->data, o->bytes);
        else free(o->data);
    }
    free(set->owned);
    mapped_file_close(&set->file);
    for (int i = 0; i < set->more_count; i++) mapped_file_close(&set->more_files[i]);
    free(set->more_files);
    memset(set, 0, sizeof *set);
}

int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] != 0 && n > ((int64_t)1 << 62) / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

int64_t tensor_numel(const tensor *t) { return shape_numel(t->ndim, t->shape); }

void shape_format(int ndim, const int64_t *shape, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

rwkv_status tensor_set_add(tensor_set *set, const char *name, dtype type, int ndim,
                           const int64_t *shape, const void *data, size_t nbytes,
                           rwkv_error *err) {
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "tensor '%s': %d dimensions (at most %d supported)",
                         name, ndim, TENSOR_MAX_DIMS);
    int64_t numel = shape_numel(ndim, shape);
    char sbuf[96];
    shape_format(ndim, shape, sbuf, sizeof sbuf);
    if (numel < 0) return rwkv_fail(err, RWKV_ERR_FORMAT, "tensor '%s': invalid shape %s", name, sbuf);
    size_t want = dtype_bytes_for(type, (uint64_t)numel);
    if (numel > 0 && want == 0) /* dtype_bytes_for's 0: no whole number of blocks, or more bytes than size_t holds */
        return numel % (int64_t)dtype_block_elems(type)
                   ? rwkv_fail(err, RWKV_ERR_FORMAT, "tensor '%s': %s %s is not a whole number of %d-element blocks",
                               name, dtype_name(type), sbuf, (int)dtype_block_elems(type))
                   : rwkv_fail(err, RWKV_ERR_FORMAT, "tensor '%s': %s %s is too large (its size in bytes overflows)",
                               name, dtype_name(type), sbuf);
    if (want != nbytes)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "tensor '%s': %zu data bytes, but %s %s needs %zu", name,
                         nbytes, dtype_name(type), sbuf, want);
    if (tensor_set_find(set, name))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "tensor '%s' appears twice", name);
    if (set->count == set->capacity) {
        int cap = set->capacity ? set->capacity * 2 : 64;
        tensor *nt = realloc(set->tensors, (size_t)cap * sizeof *nt);
        if (!nt) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
        set->tensors = nt;
        set->capacity = cap;
    }
    /* Views into a file can be misaligned for their element type (safetensors
     * and rwkv.cpp files do not pad). Kernels load whole float elements, so
     * such float tensors are copied into an aligned buffer (16-bit floats
     * too: read in place, half their vector loads would straddle two cache
     * lines, and a 169M fp16 prompt ran 5% slower). Blocks are read byte by
     * byte (their fp16 scales assembled from two bytes, their codes by
     * unaligned loads) and stay in the file: in an rwkv.cpp file about half
     * the matrices start on an odd byte. */
    size_t align = dtype_is_block(type) ? 1 : dtype_block_bytes(type);
    if (nbytes > 0 && (uintptr_t)data % align != 0) {
        void *copy = tensor_set_alloc(set, nbytes);
        if (!copy) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (tensor '%s', %zu bytes)", name, nbytes);
        memcpy(copy, data, nbytes);
        data = copy;
    }
    if (!set->index.cap && strmap_init(&set->index, 64) != 0) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    tensor *t = &set->tensors[set->count];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name || strmap_put(&set->index, t->name, strlen(t->name), set->count, NULL) != 0) {
        free(t->name);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    t->type = type;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = nbytes;
    set->count++;
    return rwkv_ok(err);
}

/* Hands buffer p to the set, which frees it with itself (bytes 0) or
 * unmaps its `bytes`; -1 when out of memory. */
static int own(tensor_set *set, void *p, size_t bytes) {
    if (set->owned_count == set->owned_capacity) {
        int cap = set->owned_capacity ? set->owned_capacity * 2 : 16;
        tensor_owned *no = realloc(set->owned, (size_t)cap * sizeof *no);
        if (!no) return -1;
        set->owned = no;
        set->owned_capacity = cap;
    }
    set->owned[set->owned_count++] = (tensor_owned){p, bytes};
    return 0;
}

enum { ARENA_FROM = 64 << 10, ARENA_BYTES = 32 << 20 };

void *tensor_set_alloc(tensor_set *set, size_t nbytes) {
#ifndef __SANITIZE_ADDRESS__
    if (nbytes >= ARENA_FROM) {
        const size_t need = (nbytes + 63) / 64 * 64;
        if (need > ARENA_BYTES / 4) return tensor_set_alloc_large(set, nbytes);
        if (set->arena_left < need) {
            set->arena = tensor_set_alloc_large(set, ARENA_BYTES);
            set->arena_left = set->arena ? ARENA_BYTES : 0;
            if (!set->arena) return NULL;
        }
        void *p = set->arena;
        set->arena += need;
        set->arena_left -= need;
        return p;
    }
#endif
    void *p = calloc(1, nbytes ? nbytes : 1);
    if (p && own(set, p, 0) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

void *tensor_set_alloc_large(tensor_set *set, size_t nbytes) {
    size_t bytes = 0;
    void *p = huge_pages_map(nbytes, &bytes);
    if (p && own(set, p, bytes) != 0) {
        huge_pages_unmap(p, bytes);
        return NULL;
    }
    return p;
}

void transpose_last2(const void *src, void *dst, size_t elem, int64_t batch, int64_t a, int64_t b) {
    /* in tiles: a plain loop strides through the destination (a second of
     * loading for a 1.5B model's value matrices on the GPU's upload) */
    enum { TILE = 64 };
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (int64_t k = 0; k < batch; k++)
        for (int64_t i0 = 0; i0 < a; i0 += TILE)
            for (int64_t j0 = 0; j0 < b; j0 += TILE)
                for (int64_t i = i0; i < a && i < i0 + TILE; i++)
                    for (int64_t j = j0; j < b && j < j0 + TILE; j++) {
                        /* memcpy: a file's 16-bit values need not be aligned */
                        const size_t from = (size_t)(k * a * b + i * b + j), to = (size_t)(k * a * b + j * a + i);
                        if (elem == 2) memcpy(d + 2 * to, s + 2 * from, 2);
                        else memcpy(d + 4 * to, s + 4 * from, 4);
                    }
}

dtype transposed_type(dtype type) { return type == DT_F16 || type == DT_BF16 ? type : DT_F32; }

int transpose_last2_to(dtype type, const void *src, void *dst, int64_t batch, int64_t a, int64_t b) {
    if (transposed_type(type) != DT_F32) {
        transpose_last2(src, dst, 2, batch, a, b);
        return 0;
    }
    const size_t n = (size_t)(batch * a * b);
    float *tmp = malloc(n * sizeof(float));
    if (!tmp) return -1;
    dtype_to_f32(type, src, tmp, n);
    transpose_last2(tmp, dst, sizeof(float), batch, a, b);
    free(tmp);
    return 0;
}

/* The index keys point at the names: rebuilt whenever a name changes. */
static int rebuild_index(tensor_set *set) {
    strmap_free(&set->index);
    if (strmap_init(&set->index, (size_t)set->count) != 0) return -1;
    for (int j = 0; j < set->count; j++)
        if (strmap_put(&set->index, set->tensors[j].name, strlen(set->tensors[j].name), j, NULL) != 0) return -1;
    return 0;
}

const tensor *tensor_set_find(const tensor_set *set, const char *name) {
    int i = strmap_get(&set->index, name, strlen(name));
    return i >= 0 ? &set->tensors[i] : NULL;
}

int tensor_set_remove(tensor_set *set, const char *name) {
    int i = strmap_get(&set->index, name, strlen(name));
    if (i < 0) return -1;
    free(set->tensors[i].name);
    memmove(&set->tensors[i], &set->tensors[i + 1], (size_t)(set->count - i - 1) * sizeof *set->tensors);
    set->count--;
    return rebuild_index(set); /* positions after i moved */
}

int tensor_set_rename(tensor_set *set, int i, const char *name) {
    char *copy = strdup(name);
    if (!copy) return -1;
    free(set->tensors[i].name);
    set->tensors[i].name = copy;
    return rebuild_index(set);
}

rwkv_status tensor_set_merge(tensor_set *dst, tensor_set *src, rwkv_error *err) {
    mapped_file *files = realloc(dst->more_files, (size_t)(dst->more_count + 1 + src->more_count) * sizeof *files);
    if (!files) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    dst->more_files = files;
    files[dst->more_count++] = src->file;
    for (int i = 0; i < src->more_count; i++) files[dst->more_count++] = src->more_files[i];
    memset(&src->file, 0, sizeof src->file);
    src->more_count = 0;
    for (; src->owned_count > 0; src->owned_count--) {
        const tensor_owned *o = &src->owned[src->owned_count - 1];
        if (own(dst, o->data, o->bytes) != 0) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < src->count; i++) {
        const tensor *t = &src->tensors[i];
        rwkv_status s = tensor_set_add(dst, t->name, t->type, t->ndim, t->shape, t->data, t->nbytes, err);
        if (s != RWKV_OK) return s;
        dst->tensors[dst->count - 1].stored_rows = t->stored_rows;
        dst->tensors[dst->count - 1].stored_type = t->stored_type;
    }
    tensor_set_free(src);
    return rwkv_ok(err);
}

uint64_t tensor_set_file_bytes(const tensor_set *set) {
    uint64_t n = set->file.size;
    for (int i = 0; i < set->more_count; i++) n += set->more_files[i].size;
    return n;
}
