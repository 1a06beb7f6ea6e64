/* rwkv.cpp model files ("ggmf" container, file versions 100/101; described in
 * docs/formats.md "rwkv.cpp"): a 24-byte header, then tensor
 * records until the end of the file, each with its dims in ggml order
 * (fastest axis first, the reverse of PyTorch) and unpadded data.
 *
 * The converter that wrote these files changed some values
 * (docs/formats.md, docs/rwkv-versions.md). For RWKV-4 we undo them so
 * that the rest of the engine sees the official checkpoint (docs/model.md
 * §1.1): time_decay back to θ, time_mix_* back to [1, 1, C]; for RWKV-5/6/7
 * the decay/bonus encodings, the transposed low-rank matrices and v7's packed
 * token-shift mixes. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/formats.h"

#define GGMF_MAGIC 0x67676d66u
#define RC_HEADER_SIZE 24
#define RC_RECORD_FIXED 12 /* n_dims, name_len, type */
#define RC_MAX_DIMS 3
#define RC_MAX_NAME 1024

typedef struct rc_header {
    uint32_t version, n_vocab, n_embd, n_layer, type;
} rc_header;

/* File type codes; 4, 5 and 6 were ggml formats removed before version 101. */
static int dtype_from_code(uint32_t code, dtype *out) {
    static const int map[10] = {DT_F32, DT_F16, DT_Q4_0, DT_Q4_1, -1, -1, -1, DT_Q5_0, DT_Q5_1, DT_Q8_0};
    if (code >= 10 || map[code] < 0) return 0;
    *out = (dtype)map[code];
    return 1;
}

static rwkv_status check_type_code(const char *path, uint32_t code, uint32_t version, uint64_t off, dtype *out,
                                   rwkv_error *err) {
    if (code >= 4 && code <= 6)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: data type %u is a removed ggml quantization format "
                         "(Q4_1_O/Q4_2/Q4_3); re-quantize the model (offset %llu)", path, (unsigned)code,
                         (unsigned long long)off);
    dtype t = DT_F32;
    if (!dtype_from_code(code, &t))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: unknown rwkv.cpp data type %u (offset %llu)", path,
                         (unsigned)code, (unsigned long long)off);
    if (dtype_is_block(t) && version != 101)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: quantized data in file version %u uses the old ggml block "
                         "layout; only version 101 files may hold quantized tensors (offset %llu)", path,
                         (unsigned)version, (unsigned long long)off);
    if (out) *out = t;
    return RWKV_OK;
}

static rwkv_status read_header(const char *path, const uint8_t *p, uint64_t size, rc_header *h, rwkv_error *err) {
    if (size < RC_HEADER_SIZE)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: truncated rwkv.cpp header (%llu of %d bytes)", path,
                         (unsigned long long)size, RC_HEADER_SIZE);
    if (rd_u32(p) != GGMF_MAGIC)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: bad rwkv.cpp magic 0x%08x (offset 0)", path, rd_u32(p));
    h->version = rd_u32(p + 4);
    h->n_vocab = rd_u32(p + 8);
    h->n_embd = rd_u32(p + 12);
    h->n_layer = rd_u32(p + 16);
    h->type = rd_u32(p + 20);
    if (h->version != 100 && h->version != 101)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: rwkv.cpp file version %u (100 or 101 supported) (offset 4)",
                         path, (unsigned)h->version);
    if (h->n_vocab == 0 || h->n_embd == 0 || h->n_layer == 0)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: rwkv.cpp header has n_vocab %u, n_embd %u, n_layer %u "
                         "(offset 8)", path, (unsigned)h->n_vocab, (unsigned)h->n_embd, (unsigned)h->n_layer);
    return check_type_code(path, h->type, h->version, 20, NULL, err);
}

static int has_control_char(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 1;
    return 0;
}

/* One record at *pos: n_dims, name_len, type, dims[n_dims] (ggml order), name, data. */
static rwkv_status read_record(const char *path, tensor_set *set, const rc_header *h, uint64_t *pos,
                               rwkv_error *err) {
    const uint8_t *p = set->file.data;
    uint64_t size = set->file.size, at = *pos;
    if (!in_bounds(at, RC_RECORD_FIXED, size))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: truncated tensor record header (offset %llu)", path,
                         (unsigned long long)at);
    uint32_t n_dims = rd_u32(p + at), name_len = rd_u32(p + at + 4), code = rd_u32(p + at + 8);
    if (n_dims < 1 || n_dims > RC_MAX_DIMS)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor record with %u dimensions (1 to 3 expected) (offset %llu)",
                         path, (unsigned)n_dims, (unsigned long long)at);
    if (name_len < 1 || name_len > RC_MAX_NAME)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor name length %u (1 to %d expected) (offset %llu)", path,
                         (unsigned)name_len, RC_MAX_NAME, (unsigned long long)(at + 4));
    dtype type = DT_F32;
    rwkv_status s = check_type_code(path, code, h->version, at + 8, &type, err);
    if (s != RWKV_OK) return s;
    uint64_t dims_at = at + RC_RECORD_FIXED, name_at = dims_at + 4 * (uint64_t)n_dims;
    if (!in_bounds(dims_at, 4 * (uint64_t)n_dims + name_len, size))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: truncated tensor record (offset %llu)", path,
                         (unsigned long long)at);
    const char *name_p = (const char *)p + name_at;
    char name[RC_MAX_NAME + 1];
    memcpy(name, name_p, name_len);
    name[name_len] = '\0';
    if (has_control_char(name_p, name_len)) /* names are printed in messages, which are one line */
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor name holds a control character (offset %llu)", path,
                         (unsigned long long)name_at);
    int64_t shape[RC_MAX_DIMS];
    for (uint32_t i = 0; i < n_dims; i++) {
        uint32_t d = rd_u32(p + dims_at + 4 * i);
        if (d == 0)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s' has a zero dimension (offset %llu)", path, name,
                             (unsigned long long)(dims_at + 4 * i));
        shape[n_dims - 1 - i] = d; /* ggml dims[0] is PyTorch's last axis */
    }
    if (dtype_is_block(type) && rd_u32(p + dims_at) % 32 != 0)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: quantized tensor '%s' has rows of %u elements, not a multiple of "
                         "32 (offset %llu)", path, name, (unsigned)rd_u32(p + dims_at), (unsigned long long)dims_at);
    int64_t numel = shape_numel((int)n_dims, shape);
    size_t nbytes = numel < 0 ? 0 : dtype_bytes_for(type, (uint64_t)numel);
    uint64_t data_at = name_at + name_len;
    if (nbytes == 0 || !in_bounds(data_at, nbytes, size))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s' (%s, %zu bytes) runs past the end of the file "
                         "(%llu bytes) (offset %llu)", path, name, dtype_name(type), nbytes,
                         (unsigned long long)size, (unsigned long long)data_at);
    s = tensor_set_add(set, name, type, (int)n_dims, shape, p + data_at, nbytes, err);
    if (s != RWKV_OK) {
        if (err) rwkv_error_prefix(err, path);
        return s;
    }
    *pos = data_at + nbytes;
    return RWKV_OK;
}

static int has_part(const tensor_set *set, const char *part) {
    for (int i = 0; i < set->count; i++)
        if (strstr(set->tensors[i].name, part)) return 1;
    return 0;
}

/* The RWKV version from tensor names (docs/rwkv-versions.md "Version
 * detection"; later rules override earlier ones). */
static const char *detect_version(const tensor_set *set) {
    if (has_part(set, ".att.r_k") || has_part(set, ".att.x_rwkvag")) return "7";
    if (has_part(set, ".att.time_maa_x")) return "6";
    if (has_part(set, ".att.ln_x.")) return has_part(set, ".att.gate.weight") ? "5.2" : "5.1";
    return "4";
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* rwkv.cpp stores RWKV-4's att.time_decay as d = -exp(θ); the checkpoint
 * value is θ = log(-d). d = -0 (exp underflow) gives θ = -inf, which maps
 * back to the same d. */
static rwkv_status undo_decay(const char *path, tensor_set *set, tensor *t, rwkv_error *err) {
    if (!dtype_is_float(t->type) || dtype_is_block(t->type))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s' has type %s; a float type is expected", path,
                         t->name, dtype_name(t->type));
    size_t n = (size_t)tensor_numel(t);
    float *buf = tensor_set_alloc(set, n * sizeof(float));
    if (!buf) return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    dtype_to_f32(t->type, t->data, buf, n);
    for (size_t i = 0; i < n; i++) {
        if (!(buf[i] <= 0.0f))
            return rwkv_fail(err, RWKV_ERR_NUMERIC, "%s: '%s'[%zu] = %g; rwkv.cpp RWKV-4 files store -exp(time_decay), "
                             "which is never positive", path, t->name, i, (double)buf[i]);
        buf[i] = logf(-buf[i]);
    }
    t->type = DT_F32;
    t->data = buf;
    t->nbytes = n * sizeof(float);
    return RWKV_OK;
}

/* The file has no tensor count, so a file cut at a record boundary still
 * parses; rwkv.cpp's own loader requires every tensor of the version, and
 * so do we (docs/rwkv-versions.md). */
static rwkv_status check_complete_v4(const char *path, const tensor_set *set, const rc_header *h,
                                     rwkv_error *err) {
    static const char *const global[] = {"emb.weight", "blocks.0.ln0.weight", "blocks.0.ln0.bias",
                                         "ln_out.weight", "ln_out.bias", "head.weight"};
    static const char *const layer[] = {
        "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "att.time_mix_k", "att.time_mix_v",
        "att.time_mix_r", "att.time_first", "att.time_decay", "att.key.weight", "att.value.weight",
        "att.receptance.weight", "att.output.weight", "ffn.time_mix_k", "ffn.time_mix_r", "ffn.key.weight",
        "ffn.receptance.weight", "ffn.value.weight"};
    char name[96];
    for (size_t i = 0; i < sizeof global / sizeof global[0]; i++)
        if (!tensor_set_find(set, global[i]))
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s' is missing (truncated file?)", path, global[i]);
    for (uint32_t l = 0; l < h->n_layer; l++)
        for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++) {
            snprintf(name, sizeof name, "blocks.%u.%s", (unsigned)l, layer[i]);
            if (!tensor_set_find(set, name))
                return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s' is missing (the header says %u layers; "
                                 "truncated file?)", path, name, (unsigned)h->n_layer);
        }
    return RWKV_OK;
}

static rwkv_status to_official_v4(const char *path, tensor_set *set, const rc_header *h, rwkv_error *err) {
    rwkv_status s = check_complete_v4(path, set, h, err);
    if (s != RWKV_OK) return s;
    const tensor *emb = tensor_set_find(set, "emb.weight");
    if (emb->ndim != 2 || emb->shape[0] != h->n_vocab || emb->shape[1] != h->n_embd) {
        char sb[96];
        shape_format(emb->ndim, emb->shape, sb, sizeof sb);
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: emb.weight is %s, but the header says n_vocab %u, n_embd %u",
                         path, sb, (unsigned)h->n_vocab, (unsigned)h->n_embd);
    }
    for (int i = 0; i < set->count; i++) {
        tensor *t = &set->tensors[i];
        if (ends_with(t->name, ".att.time_decay")) {
            rwkv_status s = undo_decay(path, set, t, err);
            if (s != RWKV_OK) return s;
        } else if (strstr(t->name, ".time_mix_") && t->ndim == 1) {
            t->shape[2] = t->shape[0]; /* squeezed by the converter; official shape [1, 1, C] */
            t->shape[0] = t->shape[1] = 1;
            t->ndim = 3;
        }
    }
    return RWKV_OK;
}

/* ---- RWKV-5/6/7: undo the converter's transforms (docs/rwkv-versions.md
 * "What an rwkv.cpp reader must hand over") so the models see official tensors. */

/* t's values as float32 in a buffer the set owns (block types dequantised). */
static float *values_f32(const char *path, tensor_set *set, const tensor *t, rwkv_error *err) {
    size_t n = (size_t)tensor_numel(t);
    if (!dtype_is_float(t->type) && !dtype_is_block(t->type)) {
        rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s' has type %s; a float type is expected", path, t->name,
                  dtype_name(t->type));
        return NULL;
    }
    float *buf = tensor_set_alloc(set, n * sizeof(float));
    if (!buf) rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    else dtype_to_f32(t->type, t->data, buf, n);
    return buf;
}

static void use_f32(tensor *t, float *buf) {
    t->type = DT_F32;
    t->data = buf;
    t->nbytes = (size_t)tensor_numel(t) * sizeof(float);
}

typedef enum { UNDO_DECAY_V5, UNDO_EXP } undo_kind;

/* v5.x time_decay is stored as w = exp(-exp(θ)) in [0, 1]: θ = log(-log w).
 * v5.1 time_first is stored as exp(u) > 0: u = log of it. Computed in double
 * so the round trip back to w is exact in float. */
static rwkv_status undo_elementwise(const char *path, tensor_set *set, tensor *t, undo_kind kind, rwkv_error *err) {
    float *buf = values_f32(path, set, t, err);
    if (!buf) return err ? err->code : RWKV_ERR_NOMEM;
    size_t n = (size_t)tensor_numel(t);
    for (size_t i = 0; i < n; i++) {
        double x = buf[i];
        int ok = kind == UNDO_DECAY_V5 ? (x >= 0.0 && x <= 1.0) : x > 0.0;
        if (!ok)
            return rwkv_fail(err, RWKV_ERR_NUMERIC, "%s: '%s'[%zu] = %g is outside the range rwkv.cpp's converter "
                             "writes (%s)", path, t->name, i, x, kind == UNDO_DECAY_V5 ? "exp(-exp(w)) in [0, 1]"
                                                                                     : "exp(u) > 0");
        buf[i] = kind == UNDO_DECAY_V5 ? (float)log(-log(x)) : (float)log(x);
    }
    use_f32(t, buf);
    return RWKV_OK;
}

/* Swaps the last two axes ([.., a, b] -> [.., b, a]): the converter stored
 * the v6/v7 low-rank matrices transposed to fit its matrix convention. */
static rwkv_status transpose_last2(const char *path, tensor_set *set, tensor *t, rwkv_error *err) {
    if (t->ndim < 2)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s' should be a matrix", path, t->name);
    float *src = values_f32(path, set, t, err);
    float *dst = src ? tensor_set_alloc(set, (size_t)tensor_numel(t) * sizeof(float)) : NULL;
    if (!dst) return src ? rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path) : (err ? err->code : RWKV_ERR_NOMEM);
    int64_t a = t->shape[t->ndim - 2], b = t->shape[t->ndim - 1], batch = tensor_numel(t) / (a * b);
    for (int64_t k = 0; k < batch; k++)
        for (int64_t i = 0; i < a; i++)
            for (int64_t j = 0; j < b; j++) dst[k * a * b + j * a + i] = src[k * a * b + i * b + j];
    t->shape[t->ndim - 2] = b;
    t->shape[t->ndim - 1] = a;
    use_f32(t, dst);
    return RWKV_OK;
}

/* v7: att.x_rwkvag [6, 1, C] holds the token-shift mixes x_r, x_w, x_k, x_v,
 * x_a, x_g in that order; official files have six [1, 1, C] tensors. */
static rwkv_status split_packed_mixes(const char *path, tensor_set *set, const char *name, rwkv_error *err) {
    static const char *const parts[6] = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"};
    const tensor *t = tensor_set_find(set, name);
    int64_t n = tensor_numel(t);
    if (n % 6 != 0 || dtype_is_block(t->type))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: '%s' must hold 6 float vectors", path, name);
    int64_t C = n / 6, shape[3] = {1, 1, C};
    size_t bytes = dtype_bytes_for(t->type, (uint64_t)C);
    const uint8_t *data = t->data;
    dtype type = t->type;
    char prefix[RC_MAX_NAME + 1], part_name[RC_MAX_NAME + 8];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(name) - strlen("x_rwkvag")), name);
    for (int i = 0; i < 6; i++) {
        snprintf(part_name, sizeof part_name, "%s%s", prefix, parts[i]);
        rwkv_status s = tensor_set_add(set, part_name, type, 3, shape, data + (size_t)i * bytes, bytes, err);
        if (s != RWKV_OK) return err ? rwkv_error_prefix(err, path) : s;
    }
    if (tensor_set_remove(set, name) != 0) return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    return RWKV_OK;
}

static int is_lora_v6(const char *name) {
    return ends_with(name, ".att.time_maa_w1") || ends_with(name, ".att.time_maa_w2") ||
           ends_with(name, ".att.time_decay_w1") || ends_with(name, ".att.time_decay_w2");
}

static int is_lora_v7(const char *name) {
    static const char *const suffix[] = {".att.w1", ".att.w2", ".att.a1", ".att.a2",
                                         ".att.v1", ".att.v2", ".att.g1", ".att.g2"};
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++)
        if (ends_with(name, suffix[i])) return 1;
    return 0;
}

static rwkv_status to_official_v5plus(const char *path, tensor_set *set, const char *version, rwkv_error *err) {
    int count = set->count; /* split_packed_mixes appends; handle those names after the loop */
    for (int i = 0; i < count; i++) {
        tensor *t = &set->tensors[i];
        rwkv_status s = RWKV_OK;
        if (version[0] == '5' && ends_with(t->name, ".att.time_decay")) s = undo_elementwise(path, set, t, UNDO_DECAY_V5, err);
        else if (version[0] == '5' && ends_with(t->name, ".att.time_first")) s = undo_elementwise(path, set, t, UNDO_EXP, err);
        else if (version[0] == '6' && is_lora_v6(t->name)) s = transpose_last2(path, set, t, err);
        else if (version[0] == '7' && is_lora_v7(t->name)) s = transpose_last2(path, set, t, err);
        if (s != RWKV_OK) return s;
    }
    for (int i = 0; i < set->count; i++)
        if (ends_with(set->tensors[i].name, ".att.x_rwkvag")) {
            char name[RC_MAX_NAME + 1];
            snprintf(name, sizeof name, "%s", set->tensors[i].name);
            rwkv_status s = split_packed_mixes(path, set, name, err);
            if (s != RWKV_OK) return s;
            i = -1; /* the set changed: rescan */
        }
    return RWKV_OK;
}

rwkv_status rwkvcpp_read(const char *path, tensor_set *set, rwkv_error *err) {
    rc_header h;
    rwkv_status s = read_header(path, set->file.data, set->file.size, &h, err);
    if (s != RWKV_OK) return s;
    uint64_t pos = RC_HEADER_SIZE;
    while (s == RWKV_OK && pos < set->file.size) s = read_record(path, set, &h, &pos, err);
    if (s != RWKV_OK) return s;
    if (set->count == 0) return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: rwkv.cpp file holds no tensors", path);
    const char *version = detect_version(set);
    s = strcmp(version, "4") == 0 ? to_official_v4(path, set, &h, err) : to_official_v5plus(path, set, version, err);
    if (s != RWKV_OK) return s;
    set->format = "rwkv.cpp";
    return rwkv_ok(err);
}
