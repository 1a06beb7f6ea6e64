/* rwkv.cpp ("ggmf", version 101) model file writer. All integers are u32
 * little-endian; header: magic 0x67676d66, version, n_vocab, n_embd, n_layer,
 * file type; then per tensor: n_dims, name_len, type code, dims (ggml order:
 * fastest axis first, i.e. the PyTorch shape reversed), name, data. No
 * padding anywhere. */
#include <stdint.h>
#include <string.h>

#include "core/atomic_write.h"
#include "formats/formats.h"
#include "formats/rwkvcpp_write.h"

static int type_code(dtype t) {
    switch (t) {
    case DT_F32: return 0;
    case DT_F16: return 1;
    case DT_Q4_0: return 2;
    case DT_Q4_1: return 3;
    case DT_Q5_0: return 7;
    case DT_Q5_1: return 8;
    case DT_Q8_0: return 9;
    default: return -1;
    }
}

typedef struct write_ctx {
    const char *path;
    const tensor *tensors;
    int count;
    uint32_t header[6];
} write_ctx;

static int put_u32(FILE *f, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return fwrite(b, 1, 4, f) == 4 ? 0 : -1;
}

static rwkv_status write_all(FILE *f, void *p, rwkv_error *err) {
    write_ctx *c = p;
    for (int i = 0; i < 6; i++)
        if (put_u32(f, c->header[i])) return rwkv_fail_errno(err, RWKV_ERR_IO, "%s: write failed", c->path);
    for (int i = 0; i < c->count; i++) {
        const tensor *t = &c->tensors[i];
        size_t nl = strlen(t->name);
        int fail = put_u32(f, (uint32_t)t->ndim) || put_u32(f, (uint32_t)nl) || put_u32(f, (uint32_t)type_code(t->type));
        for (int d = t->ndim - 1; d >= 0 && !fail; d--) fail = put_u32(f, (uint32_t)t->shape[d]);
        if (fail || fwrite(t->name, 1, nl, f) != nl || fwrite(t->data, 1, t->nbytes, f) != t->nbytes)
            return rwkv_fail_errno(err, RWKV_ERR_IO, "%s: write failed at tensor '%s'", c->path, t->name);
    }
    return RWKV_OK;
}

rwkv_status rwkvcpp_write(const char *path, const tensor *tensors, int count, int n_vocab, int n_embd,
                          int n_layer, dtype file_type, rwkv_error *err) {
    if (type_code(file_type) < 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: rwkv.cpp files cannot hold %s as the file type", path,
                         dtype_name(file_type));
    for (int i = 0; i < count; i++) {
        const tensor *t = &tensors[i];
        if (type_code(t->type) < 0)
            return rwkv_fail(err, RWKV_ERR_ARG, "%s: tensor '%s' has type %s, which rwkv.cpp files cannot hold", path,
                             t->name, dtype_name(t->type));
        if (t->ndim < 1 || t->ndim > 3)
            return rwkv_fail(err, RWKV_ERR_ARG, "%s: tensor '%s' has %d dims (1 to 3 allowed)", path, t->name, t->ndim);
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 1 || t->shape[d] > UINT32_MAX)
                return rwkv_fail(err, RWKV_ERR_ARG, "%s: tensor '%s' has a dimension out of range", path, t->name);
        if (dtype_is_block(t->type) && t->shape[t->ndim - 1] % 32)
            return rwkv_fail(err, RWKV_ERR_ARG, "%s: tensor '%s': quantized rows must be a multiple of 32", path,
                             t->name);
        if (dtype_bytes_for(t->type, (uint64_t)tensor_numel(t)) != t->nbytes)
            return rwkv_fail(err, RWKV_ERR_ARG, "%s: tensor '%s': %zu bytes do not match its shape and type", path,
                             t->name, t->nbytes);
    }
    write_ctx c = {path, tensors, count,
                   {0x67676d66u, 101u, (uint32_t)n_vocab, (uint32_t)n_embd, (uint32_t)n_layer,
                    (uint32_t)type_code(file_type)}};
    return atomic_write_file(path, write_all, &c, err);
}
