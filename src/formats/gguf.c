/* The GGUF container (formats/gguf.h): the directory of metadata and tensor
 * infos, every length, count and offset checked against the file before it
 * is used. Errors name the file, the field and its offset. */
#include "formats/gguf.h"

#include <stdlib.h>
#include <string.h>

#define GGUF_MAX_KEY 65536             /* keys and tensor names; real ones are < 100 bytes */
#define GGUF_MAX_ALIGNMENT (1u << 20)
#define GGUF_MAX_KV 65536                /* real files: a few dozen keys */
#define GGUF_MAX_TENSORS (1u << 20)      /* real files: a few thousand tensors */

typedef struct cursor {
    const char *path;
    const uint8_t *p;
    uint64_t size, at;
    rwkv_error *err;
} cursor;

static rwkv_status truncated(cursor *c, const char *what) {
    return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF %s runs past the end of the file (%llu bytes) (offset %llu)",
                     c->path, what, (unsigned long long)c->size, (unsigned long long)c->at);
}

static rwkv_status take(cursor *c, uint64_t n, const char *what, const uint8_t **out) {
    if (!in_bounds(c->at, n, c->size)) return truncated(c, what);
    *out = c->p + c->at;
    c->at += n;
    return RWKV_OK;
}

static rwkv_status read_u32(cursor *c, const char *what, uint32_t *v) {
    const uint8_t *q = NULL;
    rwkv_status s = take(c, 4, what, &q);
    if (s == RWKV_OK) *v = rd_u32(q);
    return s;
}

static rwkv_status read_u64(cursor *c, const char *what, uint64_t *v) {
    const uint8_t *q = NULL;
    rwkv_status s = take(c, 8, what, &q);
    if (s == RWKV_OK) *v = rd_u64(q);
    return s;
}

static rwkv_status read_string(cursor *c, const char *what, const char **s, uint64_t *len) {
    uint64_t at = c->at, n;
    rwkv_status st = read_u64(c, what, &n);
    if (st != RWKV_OK) return st;
    if (n > c->size - c->at) {
        c->at = at;
        return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF %s of %llu bytes runs past the end of the file (offset %llu)",
                         c->path, what, (unsigned long long)n, (unsigned long long)at);
    }
    const uint8_t *q = NULL;
    take(c, n, what, &q);
    *s = (const char *)q;
    *len = n;
    return RWKV_OK;
}

/* A key or tensor name, copied and terminated; printable (messages are one line). */
static rwkv_status read_name(cursor *c, const char *what, char **out) {
    uint64_t at = c->at, n;
    const char *s;
    rwkv_status st = read_string(c, what, &s, &n);
    if (st != RWKV_OK) return st;
    if (n == 0 || n > GGUF_MAX_KEY)
        return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF %s of %llu bytes (1 to %d expected) (offset %llu)", c->path,
                         what, (unsigned long long)n, GGUF_MAX_KEY, (unsigned long long)at);
    for (uint64_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF %s holds a control character (offset %llu)", c->path,
                             what, (unsigned long long)(at + 8 + i));
    if (!(*out = malloc(n + 1))) return rwkv_fail(c->err, RWKV_ERR_NOMEM, "%s: out of memory", c->path);
    memcpy(*out, s, n);
    (*out)[n] = '\0';
    return RWKV_OK;
}

static const uint8_t scalar_size[GGUF_TYPE_COUNT] = {
    [GGUF_U8] = 1, [GGUF_I8] = 1, [GGUF_U16] = 2, [GGUF_I16] = 2, [GGUF_U32] = 4, [GGUF_I32] = 4,
    [GGUF_F32] = 4, [GGUF_BOOL] = 1, [GGUF_U64] = 8, [GGUF_I64] = 8, [GGUF_F64] = 8,
};

static void decode_scalar(gguf_kv *kv, const uint8_t *q) {
    uint64_t raw = 0;
    for (int b = scalar_size[kv->type] - 1; b >= 0; b--) raw = raw << 8 | q[b];
    switch (kv->type) {
    case GGUF_I8: kv->i = (int8_t)raw; break;
    case GGUF_I16: kv->i = (int16_t)raw; break;
    case GGUF_I32: kv->i = (int32_t)raw; break;
    case GGUF_I64: kv->i = (int64_t)raw; break;
    case GGUF_F32: {
        float f;
        uint32_t u = (uint32_t)raw;
        memcpy(&f, &u, 4);
        kv->f = f;
        return;
    }
    case GGUF_F64: memcpy(&kv->f, &raw, 8); return;
    default: kv->i = (int64_t)raw; break;
    }
    kv->u = kv->i < 0 ? 0 : (uint64_t)kv->i;
    if (kv->type == GGUF_U64) kv->u = raw;
}

/* One value of kv->type at the cursor. Arrays hold scalars or strings (an
 * array of arrays is refused: no RWKV file has one). */
static rwkv_status read_value(cursor *c, gguf_kv *kv) {
    kv->at = c->at;
    if (kv->type == GGUF_STRING) return read_string(c, "string value", &kv->str, &kv->len);
    if (kv->type != GGUF_ARRAY) {
        const uint8_t *q;
        rwkv_status s = take(c, scalar_size[kv->type], "value", &q);
        if (s == RWKV_OK) decode_scalar(kv, q);
        return s;
    }
    uint32_t elem;
    rwkv_status s = read_u32(c, "array type", &elem);
    if (s == RWKV_OK) s = read_u64(c, "array length", &kv->count);
    if (s != RWKV_OK) return s;
    if (elem >= GGUF_TYPE_COUNT || elem == GGUF_ARRAY)
        return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF key '%s': array element type %u is not supported "
                         "(offset %llu)", c->path, kv->key, (unsigned)elem, (unsigned long long)kv->at);
    kv->elem = (gguf_type)elem;
    uint64_t min_elem = elem == GGUF_STRING ? 8 : scalar_size[elem];
    if (kv->count > (c->size - c->at) / min_elem)
        return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF key '%s': array of %llu elements cannot fit in the file "
                         "(offset %llu)", c->path, kv->key, (unsigned long long)kv->count, (unsigned long long)kv->at);
    if (elem != GGUF_STRING) {
        c->at += kv->count * min_elem;
        return RWKV_OK;
    }
    for (uint64_t i = 0; i < kv->count; i++) {
        const char *str;
        uint64_t len;
        if ((s = read_string(c, "array string", &str, &len)) != RWKV_OK) return s;
    }
    return RWKV_OK;
}

static rwkv_status read_kvs(cursor *c, gguf_file *g) {
    strmap seen;
    if (strmap_init(&seen, (size_t)g->n_kv) != 0) return rwkv_fail(c->err, RWKV_ERR_NOMEM, "%s: out of memory", c->path);
    rwkv_status s = RWKV_OK;
    for (uint64_t k = 0; s == RWKV_OK && k < g->n_kv; k++) {
        gguf_kv *kv = &g->kv[k];
        uint64_t at = c->at;
        uint32_t type = 0;
        int old = -1;
        s = read_name(c, "key", &kv->key);
        if (s == RWKV_OK) s = read_u32(c, "value type", &type);
        if (s == RWKV_OK && type >= GGUF_TYPE_COUNT)
            s = rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF key '%s' has unknown value type %u (offset %llu)", c->path,
                          kv->key, (unsigned)type, (unsigned long long)(c->at - 4));
        if (s != RWKV_OK) break;
        kv->type = (gguf_type)type;
        s = read_value(c, kv);
        if (s == RWKV_OK && strmap_put(&seen, kv->key, strlen(kv->key), (int)k, &old) != 0)
            s = rwkv_fail(c->err, RWKV_ERR_NOMEM, "%s: out of memory", c->path);
        if (s == RWKV_OK && old >= 0)
            s = rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF key '%s' appears twice (offset %llu)", c->path, kv->key,
                          (unsigned long long)at);
    }
    strmap_free(&seen);
    return s;
}

/* ggml type codes (ggml.h, enum ggml_type). */
static const struct {
    uint32_t code;
    dtype t;
} ggml_types[] = {
    {0, DT_F32}, {1, DT_F16}, {2, DT_Q4_0}, {3, DT_Q4_1}, {6, DT_Q5_0}, {7, DT_Q5_1}, {8, DT_Q8_0},
    {12, DT_Q4_K}, {13, DT_Q5_K}, {14, DT_Q6_K}, {30, DT_BF16},
};

int gguf_dtype(uint32_t code, dtype *out) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].code == code) {
            *out = ggml_types[i].t;
            return 1;
        }
    return 0;
}

int gguf_ggml_type(dtype t) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].t == t) return (int)ggml_types[i].code;
    return -1;
}

/* One tensor info: name, dims, type, offset (data placed by place_tensors). */
static rwkv_status read_tensor_info(cursor *c, gguf_tensor_info *t, uint64_t *offset) {
    rwkv_status s = read_name(c, "tensor name", &t->name);
    uint32_t ndim, code;
    if (s == RWKV_OK) s = read_u32(c, "tensor dimension count", &ndim);
    if (s != RWKV_OK) return s;
    if (ndim < 1 || ndim > TENSOR_MAX_DIMS)
        return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF tensor '%s' has %u dimensions (1 to %d supported) "
                         "(offset %llu)", c->path, t->name, (unsigned)ndim, TENSOR_MAX_DIMS, (unsigned long long)(c->at - 4));
    t->ndim = (int)ndim;
    for (uint32_t d = 0; d < ndim; d++) {
        uint64_t v;
        if ((s = read_u64(c, "tensor dimension", &v)) != RWKV_OK) return s;
        if (v == 0 || v > ((uint64_t)1 << 40))
            return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF tensor '%s' has dimension %llu (offset %llu)", c->path,
                             t->name, (unsigned long long)v, (unsigned long long)(c->at - 8));
        t->shape[ndim - 1 - d] = (int64_t)v; /* ggml dims[0] is PyTorch's last axis */
    }
    if ((s = read_u32(c, "tensor type", &code)) != RWKV_OK) return s;
    if (!gguf_dtype(code, &t->type))
        return rwkv_fail(c->err, RWKV_ERR_UNSUPPORTED, "%s: GGUF tensor '%s' has ggml type %u, which rwkv.c does not "
                         "read (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) (offset %llu)", c->path,
                         t->name, (unsigned)code, (unsigned long long)(c->at - 4));
    if (t->shape[ndim - 1] % (int64_t)dtype_block_elems(t->type))
        return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF tensor '%s' (%s) has rows of %lld elements, not whole "
                         "blocks of %zu (offset %llu)", c->path, t->name, dtype_name(t->type),
                         (long long)t->shape[ndim - 1], dtype_block_elems(t->type), (unsigned long long)(c->at - 4));
    int64_t numel = shape_numel(t->ndim, t->shape);
    t->nbytes = numel < 0 ? 0 : dtype_bytes_for(t->type, (uint64_t)numel);
    if (t->nbytes == 0)
        return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF tensor '%s' is too large (offset %llu)", c->path, t->name,
                         (unsigned long long)c->at);
    return read_u64(c, "tensor offset", offset);
}

const gguf_kv *gguf_find(const gguf_file *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

int gguf_get_uint(const gguf_file *g, const char *key, uint64_t *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv || kv->type == GGUF_STRING || kv->type == GGUF_ARRAY || kv->type == GGUF_F32 || kv->type == GGUF_F64 ||
        kv->i < 0)
        return 0;
    *out = kv->u;
    return 1;
}

static rwkv_status read_alignment(cursor *c, gguf_file *g) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find(g, "general.alignment");
    if (!kv) return RWKV_OK;
    if (kv->type != GGUF_U32 || kv->u == 0 || kv->u > GGUF_MAX_ALIGNMENT || (kv->u & (kv->u - 1)))
        return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF general.alignment must be a u32 power of two up to %u "
                         "(offset %llu)", c->path, GGUF_MAX_ALIGNMENT, (unsigned long long)kv->at);
    g->alignment = kv->u;
    return RWKV_OK;
}

static rwkv_status read_tensors(cursor *c, gguf_file *g) {
    uint64_t *offsets = malloc(sizeof *offsets * (size_t)(g->n_tensors ? g->n_tensors : 1));
    if (!offsets) return rwkv_fail(c->err, RWKV_ERR_NOMEM, "%s: out of memory", c->path);
    rwkv_status s = RWKV_OK;
    uint64_t *info_at = malloc(sizeof *info_at * (size_t)(g->n_tensors ? g->n_tensors : 1));
    if (!info_at) s = rwkv_fail(c->err, RWKV_ERR_NOMEM, "%s: out of memory", c->path);
    for (uint64_t k = 0; s == RWKV_OK && k < g->n_tensors; k++) {
        info_at[k] = c->at;
        s = read_tensor_info(c, &g->tensors[k], &offsets[k]);
    }
    if (s == RWKV_OK) {
        g->data_at = (c->at + g->alignment - 1) / g->alignment * g->alignment;
        if (g->data_at > c->size && g->n_tensors > 0)
            s = rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF data section starts at %llu, past the end of the file "
                          "(%llu bytes)", c->path, (unsigned long long)g->data_at, (unsigned long long)c->size);
    }
    for (uint64_t k = 0; s == RWKV_OK && k < g->n_tensors; k++) {
        gguf_tensor_info *t = &g->tensors[k];
        uint64_t off = offsets[k], at = info_at[k];
        if (off % g->alignment)
            s = rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF tensor '%s' offset %llu is not a multiple of the "
                          "alignment %llu (offset %llu)", c->path, t->name, (unsigned long long)off,
                          (unsigned long long)g->alignment, (unsigned long long)at);
        else if (off > c->size || !in_bounds(g->data_at + off, t->nbytes, c->size))
            s = rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF tensor '%s' (%s, %zu bytes at data offset %llu) runs past "
                          "the end of the file (%llu bytes) (offset %llu)", c->path, t->name, dtype_name(t->type),
                          t->nbytes, (unsigned long long)off, (unsigned long long)c->size, (unsigned long long)at);
        else
            t->data = c->p + g->data_at + off;
    }
    free(offsets);
    free(info_at);
    return s;
}

rwkv_status gguf_parse(const char *path, const uint8_t *p, uint64_t size, gguf_file *g, rwkv_error *err) {
    memset(g, 0, sizeof *g);
    cursor c = {path, p, size, 0, err};
    uint32_t magic;
    rwkv_status s = read_u32(&c, "header", &magic);
    if (s == RWKV_OK && magic != GGUF_MAGIC)
        s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: bad GGUF magic 0x%08x (offset 0)", path, magic);
    if (s == RWKV_OK) s = read_u32(&c, "header", &g->version);
    if (s == RWKV_OK && g->version != 3)
        s = rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: GGUF version %u (version 3 supported) (offset 4)", path,
                      (unsigned)g->version);
    if (s == RWKV_OK) s = read_u64(&c, "header", &g->n_tensors);
    if (s == RWKV_OK) s = read_u64(&c, "header", &g->n_kv);
    if (s != RWKV_OK) return s;
    /* a key takes at least 12 bytes plus a 1-byte value, a tensor info 8 + 1 + 4 + 8 + 4 + 8 */
    if (g->n_kv > (size - c.at) / 13 || g->n_tensors > (size - c.at) / 33 || g->n_kv > GGUF_MAX_KV ||
        g->n_tensors > GGUF_MAX_TENSORS)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: GGUF header counts %llu tensors and %llu keys, more than the file "
                         "can hold or rwkv.c accepts (offset 8)", path, (unsigned long long)g->n_tensors, (unsigned long long)g->n_kv);
    g->kv = calloc((size_t)g->n_kv + 1, sizeof *g->kv);
    g->tensors = calloc((size_t)g->n_tensors + 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) s = rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    if (s == RWKV_OK) s = read_kvs(&c, g);
    if (s == RWKV_OK) s = read_alignment(&c, g);
    if (s == RWKV_OK) s = read_tensors(&c, g);
    if (s != RWKV_OK) gguf_free(g);
    return s;
}

void gguf_free(gguf_file *g) {
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++) free(g->kv[i].key);
    for (uint64_t i = 0; g->tensors && i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    memset(g, 0, sizeof *g);
}

void gguf_strings_begin(const uint8_t *file, const gguf_kv *kv, gguf_string_iter *it) { it->p = file + kv->at + 12; }

void gguf_strings_next(gguf_string_iter *it, const char **s, uint64_t *len) {
    *len = rd_u64(it->p);
    *s = (const char *)it->p + 8;
    it->p += 8 + *len;
}
