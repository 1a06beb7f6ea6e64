/* GGUF version 3 writer (formats/gguf_write.h): header, metadata, tensor
 * infos, zero padding to the alignment, then each tensor's data padded to
 * the alignment, as llama.cpp's gguf writer lays them out. */
#include "formats/gguf_write.h"

#include <string.h>

#include "core/atomic_write.h"

typedef struct write_ctx {
    const char *path;
    const gguf_out_kv *kvs;
    int n_kv;
    const tensor *tensors;
    int n_tensors;
} write_ctx;

static int put_le(FILE *f, uint64_t v, int bytes) {
    uint8_t b[8];
    for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
    return fwrite(b, 1, (size_t)bytes, f) == (size_t)bytes ? 0 : -1;
}

static int put_str(FILE *f, const char *s, size_t n) { return put_le(f, n, 8) || fwrite(s, 1, n, f) != n; }

static int put_pad(FILE *f, uint64_t at) {
    static const uint8_t zeros[GGUF_DEFAULT_ALIGNMENT];
    size_t pad = (size_t)((GGUF_DEFAULT_ALIGNMENT - at % GGUF_DEFAULT_ALIGNMENT) % GGUF_DEFAULT_ALIGNMENT);
    return fwrite(zeros, 1, pad, f) != pad;
}

static int put_kv(FILE *f, const gguf_out_kv *kv) {
    static const int size[GGUF_TYPE_COUNT] = {[GGUF_U8] = 1, [GGUF_I8] = 1, [GGUF_U16] = 2, [GGUF_I16] = 2,
                                              [GGUF_U32] = 4, [GGUF_I32] = 4, [GGUF_BOOL] = 1, [GGUF_U64] = 8,
                                              [GGUF_I64] = 8};
    if (put_str(f, kv->key, strlen(kv->key)) || put_le(f, (uint64_t)kv->type, 4)) return -1;
    switch (kv->type) {
    case GGUF_STRING: return put_str(f, kv->str, kv->len);
    case GGUF_F32: {
        float v = (float)kv->f;
        uint32_t u;
        memcpy(&u, &v, 4);
        return put_le(f, u, 4);
    }
    case GGUF_F64: {
        uint64_t u;
        memcpy(&u, &kv->f, 8);
        return put_le(f, u, 8);
    }
    case GGUF_ARRAY:
        if (put_le(f, (uint64_t)kv->elem, 4) || put_le(f, kv->count, 8)) return -1;
        for (uint64_t i = 0; i < kv->count; i++)
            if (kv->elem == GGUF_STRING ? put_str(f, kv->strs[i], kv->lens[i])
                                        : put_le(f, (uint32_t)kv->i32s[i], 4))
                return -1;
        return 0;
    default: return put_le(f, kv->u, size[kv->type]);
    }
}

static uint64_t padded(uint64_t n) { return (n + GGUF_DEFAULT_ALIGNMENT - 1) / GGUF_DEFAULT_ALIGNMENT * GGUF_DEFAULT_ALIGNMENT; }

static rwkv_status write_all(FILE *f, void *p, rwkv_error *err) {
    const write_ctx *c = p;
    int fail = put_le(f, GGUF_MAGIC, 4) || put_le(f, 3, 4) || put_le(f, (uint64_t)c->n_tensors, 8) ||
               put_le(f, (uint64_t)c->n_kv, 8);
    for (int i = 0; i < c->n_kv && !fail; i++) fail = put_kv(f, &c->kvs[i]);
    uint64_t offset = 0;
    for (int i = 0; i < c->n_tensors && !fail; i++) {
        const tensor *t = &c->tensors[i];
        fail = put_str(f, t->name, strlen(t->name)) || put_le(f, (uint64_t)t->ndim, 4);
        for (int d = t->ndim - 1; d >= 0 && !fail; d--) fail = put_le(f, (uint64_t)t->shape[d], 8);
        fail = fail || put_le(f, (uint64_t)gguf_ggml_type(t->type), 4) || put_le(f, offset, 8);
        offset += padded(t->nbytes);
    }
    long at = fail ? 0 : ftell(f);
    fail = fail || at < 0 || put_pad(f, (uint64_t)at);
    for (int i = 0; i < c->n_tensors && !fail; i++) {
        const tensor *t = &c->tensors[i];
        fail = fwrite(t->data, 1, t->nbytes, f) != t->nbytes || put_pad(f, t->nbytes);
    }
    return fail ? rwkv_fail_errno(err, RWKV_ERR_IO, "%s: write failed", c->path) : RWKV_OK;
}

rwkv_status gguf_write(const char *path, const gguf_out_kv *kvs, int n_kv, const tensor *tensors, int n_tensors,
                       rwkv_error *err) {
    for (int i = 0; i < n_tensors; i++) {
        const tensor *t = &tensors[i];
        if (gguf_ggml_type(t->type) < 0)
            return rwkv_fail(err, RWKV_ERR_ARG, "%s: tensor '%s' has type %s, which GGUF files cannot hold", path,
                             t->name, dtype_name(t->type));
        if (t->ndim < 1 || t->ndim > 4 || dtype_bytes_for(t->type, (uint64_t)tensor_numel(t)) != t->nbytes ||
            t->shape[t->ndim - 1] % (int64_t)dtype_block_elems(t->type))
            return rwkv_fail(err, RWKV_ERR_ARG, "%s: tensor '%s': shape, type and size do not agree", path, t->name);
    }
    write_ctx c = {path, kvs, n_kv, tensors, n_tensors};
    return atomic_write_file(path, write_all, &c, err);
}
