/* safetensors: u64 header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"k": "v"}}
 * then the data; offsets are relative to the first byte after the header. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_write.h"
#include "formats/formats.h"
#include "formats/json_bounds.h"

#define SAFETENSORS_MAX_HEADER (100u << 20) /* the reference library's own limit */
/* The largest real checkpoints hold a few thousand tensors per file; a
 * tensor's entry is about a dozen JSON values (docs/limits.md). */
#define SAFETENSORS_MAX_TENSORS 65536
#define SAFETENSORS_MAX_VALUES (SAFETENSORS_MAX_TENSORS * 24)

static const struct {
    const char *name;
    dtype type;
} st_dtypes[] = {
    {"F32", DT_F32}, {"F16", DT_F16}, {"BF16", DT_BF16}, {"F64", DT_F64}, {"I64", DT_I64},
    {"I32", DT_I32}, {"I16", DT_I16}, {"I8", DT_I8},     {"U8", DT_U8},   {"BOOL", DT_BOOL},
};

static int st_dtype_from_name(const char *s, dtype *out) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) {
            *out = st_dtypes[i].type;
            return 1;
        }
    return 0;
}

static const char *st_dtype_name(dtype t) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].type == t) return st_dtypes[i].name;
    return NULL;
}

static rwkv_status read_entry(const char *path, tensor_set *set, const char *name, json_t *v,
                              const uint8_t *data, uint64_t data_size, rwkv_error *err) {
    if (!json_is_object(v))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: header entry '%s' is not an object", path, name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) || json_array_size(jo) != 2)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: header entry '%s' needs \"dtype\" (string), \"shape\" (array) and "
                         "\"data_offsets\" ([begin, end])", path, name);
    dtype type;
    if (!st_dtype_from_name(json_string_value(jd), &type))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: tensor '%s' has unknown dtype '%s'", path, name,
                         json_string_value(jd));
    size_t ndim = json_array_size(js);
    if (ndim > TENSOR_MAX_DIMS)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dimensions", path, name, ndim);
    int64_t shape[TENSOR_MAX_DIMS];
    for (size_t i = 0; i < ndim; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer",
                             path, name, i);
        shape[i] = json_integer_value(d);
    }
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
        json_integer_value(je) < json_integer_value(jb))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': data_offsets must be integers 0 <= begin <= end",
                         path, name);
    uint64_t b = (uint64_t)json_integer_value(jb), e = (uint64_t)json_integer_value(je);
    if (e > data_size)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data (%llu bytes)",
                         path, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_size);
    rwkv_status s = tensor_set_add(set, name, type, (int)ndim, shape, data + b, (size_t)(e - b), err);
    if (s != RWKV_OK && err) rwkv_error_prefix(err, path);
    return s;
}

rwkv_status safetensors_read(const char *path, tensor_set *set, rwkv_error *err) {
    const uint8_t *p = set->file.data;
    uint64_t size = set->file.size;
    if (size < 8) return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: truncated safetensors file (%llu bytes)", path,
                                   (unsigned long long)size);
    uint64_t n = rd_u64(p);
    if (n > SAFETENSORS_MAX_HEADER || n < 2)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: safetensors header length %llu is not plausible (offset 0)",
                         path, (unsigned long long)n);
    if (!in_bounds(8, n, size))
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: truncated: the safetensors header needs %llu bytes, the file has %llu", path,
                         (unsigned long long)(n + 8), (unsigned long long)size);
    json_counts counts = json_count((const char *)p + 8, (size_t)n);
    if (counts.top_members > SAFETENSORS_MAX_TENSORS + 1 || counts.values > SAFETENSORS_MAX_VALUES)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: the safetensors header declares %zu top-level entries and %zu JSON values (at most %d tensors "
                         "of up to %d dimensions are accepted)",
                         path, counts.top_members, counts.values, SAFETENSORS_MAX_TENSORS, TENSOR_MAX_DIMS);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)p + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: bad safetensors JSON header at byte %d: %s", path,
                         8 + jerr.position, jerr.text);
    rwkv_status s = RWKV_OK;
    if (!json_is_object(root)) {
        s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: safetensors header is not a JSON object", path);
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
            if (strcmp(key, "__metadata__") == 0) continue;
            s = read_entry(path, set, key, v, p + 8 + n, size - 8 - n, err);
            if (s != RWKV_OK) break;
        }
    }
    json_decref(root);
    if (s == RWKV_OK) set->format = "safetensors";
    return s;
}

typedef struct st_writer {
    const tensor *tensors;
    int count;
    dtype to;
    tensor_fill_fn fill; /* makes the values of the tensors without data (may be NULL) */
    void *fill_ctx;
    void *buf;  /* one tensor as float32, then converted into conv; their sizes in bytes: */
    void *conv;
    size_t buf_cap, conv_cap;
} st_writer;

/* *p holds at least n bytes (its old contents are not kept). */
static int reserve(void **p, size_t *cap, size_t n) {
    if (n <= *cap) return 1;
    free(*p);
    *p = malloc(n);
    *cap = *p ? n : 0;
    return *p != NULL;
}

static dtype output_type(const tensor *t, dtype to) {
    if (dtype_is_block(t->type)) return to == DT_COUNT ? DT_F32 : to;
    if (to == DT_COUNT || !dtype_is_float(t->type)) return t->type;
    return to;
}

static rwkv_status st_write_header(FILE *f, const st_writer *w, rwkv_error *err) {
    json_t *root = json_object(), *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", meta);
    uint64_t off = 0;
    for (int i = 0; i < w->count; i++) {
        const tensor *t = &w->tensors[i];
        dtype out = output_type(t, w->to);
        uint64_t nb = dtype_bytes_for(out, (uint64_t)tensor_numel(t));
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + nb)));
        json_object_set_new(e, "dtype", json_string(st_dtype_name(out)));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        json_object_set_new(root, t->name, e);
        off += nb;
    }
    char *hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!hdr) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    size_t len = strlen(hdr), padded = (len + 7) & ~(size_t)7;
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int ok = fwrite(lenbuf, 1, 8, f) == 8 && fwrite(hdr, 1, len, f) == len;
    for (size_t i = len; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    free(hdr);
    return ok ? RWKV_OK : rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
}

/* dtype_from_f32 of a large tensor on all cores, in blocks of 1M values
 * (each block converts alone: the bytes are the same). */
static void convert_from_f32(dtype out, const float *src, uint8_t *dst, size_t n) {
    const size_t block = (size_t)1 << 20, per = dtype_bytes_for(out, 1);
    const long blocks = (long)((n + block - 1) / block);
#pragma omp parallel for schedule(static) if (blocks > 1)
    for (long b = 0; b < blocks; b++) {
        const size_t i = (size_t)b * block;
        dtype_from_f32(out, src + i, dst + i * per, n - i < block ? n - i : block);
    }
}

/* Tensor i's bytes: as stored, converted to the output type, or made by the
 * fill function (as float32, then converted). Only one tensor is ever held
 * in memory besides the caller's. */
static rwkv_status st_write_tensor(FILE *f, st_writer *w, int i, rwkv_error *err) {
    const tensor *t = &w->tensors[i];
    const dtype out = output_type(t, w->to);
    if (t->data && out == t->type)
        return fwrite(t->data, 1, t->nbytes, f) == t->nbytes ? RWKV_OK
                                                             : rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
    const size_t n = (size_t)tensor_numel(t), nb = dtype_bytes_for(out, n);
    if (!reserve(&w->buf, &w->buf_cap, n * sizeof(float)) ||
        (out != DT_F32 && !reserve(&w->conv, &w->conv_cap, nb)))
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for the %zu values of '%s' (%zu bytes)", n, t->name,
                         n * sizeof(float) + (out != DT_F32 ? nb : 0));
    if (t->data) {
        dtype_to_f32(t->type, t->data, w->buf, n);
    } else {
        rwkv_status s = w->fill(w->fill_ctx, i, w->buf, err);
        if (s != RWKV_OK) return s;
    }
    const void *bytes = w->buf;
    if (out != DT_F32) {
        convert_from_f32(out, w->buf, w->conv, n);
        bytes = w->conv;
    }
    return fwrite(bytes, 1, nb, f) == nb ? RWKV_OK : rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
}

static rwkv_status st_write_body(FILE *f, void *ctx, rwkv_error *err) {
    st_writer *w = ctx;
    rwkv_status s = st_write_header(f, w, err);
    for (int i = 0; s == RWKV_OK && i < w->count; i++) s = st_write_tensor(f, w, i, err);
    free(w->buf);
    free(w->conv);
    w->buf = w->conv = NULL;
    w->buf_cap = w->conv_cap = 0;
    return s;
}

static rwkv_status st_write(const char *path, st_writer *w, rwkv_error *err) {
    if (w->to != DT_COUNT && w->to != DT_F32 && w->to != DT_F16 && w->to != DT_BF16)
        return rwkv_fail(err, RWKV_ERR_ARG, "safetensors output dtype must be f32, f16 or bf16");
    for (int i = 0; i < w->count; i++)
        if (!w->tensors[i].data && (!w->fill || !dtype_is_float(w->tensors[i].type)))
            return rwkv_fail(err, RWKV_ERR_ARG, "%s: tensor '%s' has no data", path, w->tensors[i].name);
    rwkv_status s = atomic_write_file(path, st_write_body, w, err);
    if (s != RWKV_OK && err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
    return s;
}

rwkv_status safetensors_write(const char *path, const tensor *tensors, int count, dtype to, rwkv_error *err) {
    st_writer w = {tensors, count, to, NULL, NULL, NULL, NULL, 0, 0};
    return st_write(path, &w, err);
}

rwkv_status safetensors_write_filled(const char *path, const tensor *tensors, int count, tensor_fill_fn fill,
                                     void *ctx, rwkv_error *err) {
    st_writer w = {tensors, count, DT_COUNT, fill, ctx, NULL, NULL, 0, 0};
    return st_write(path, &w, err);
}
