/* Reading llama.cpp's RWKV-6/7 GGUF files as official checkpoints
 * (formats/gguf_rwkv.h): the name tables, and gguf_read, which undoes the
 * converter's transforms so that a GGUF model is the same model as its .pth. */
#include "formats/gguf_rwkv.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/formats.h"
#include "formats/gguf.h"
#include "formats/undo.h"

static const gguf_rwkv_name global_names[] = {
    {"token_embd.weight", "emb.weight", GR_KEEP},
    {"token_embd_norm.weight", "blocks.0.ln0.weight", GR_KEEP},
    {"token_embd_norm.bias", "blocks.0.ln0.bias", GR_KEEP},
    {"output_norm.weight", "ln_out.weight", GR_KEEP},
    {"output_norm.bias", "ln_out.bias", GR_KEEP},
    {"output.weight", "head.weight", GR_KEEP},
};

static const gguf_rwkv_name v7_names[] = {
    {"attn_norm.weight", "ln1.weight", GR_KEEP},
    {"attn_norm.bias", "ln1.bias", GR_KEEP},
    {"attn_norm_2.weight", "ln2.weight", GR_KEEP},
    {"attn_norm_2.bias", "ln2.bias", GR_KEEP},
    {"time_mix_lerp_fused.weight", "att.x_", GR_MIXES},
    {"time_mix_w0.weight", "att.w0", GR_VEC3},
    {"time_mix_w1.weight", "att.w1", GR_TRANSPOSE},
    {"time_mix_w2.weight", "att.w2", GR_TRANSPOSE},
    {"time_mix_a0.weight", "att.a0", GR_VEC3},
    {"time_mix_a1.weight", "att.a1", GR_TRANSPOSE},
    {"time_mix_a2.weight", "att.a2", GR_TRANSPOSE},
    {"time_mix_v0.weight", "att.v0", GR_VEC3},
    {"time_mix_v1.weight", "att.v1", GR_TRANSPOSE},
    {"time_mix_v2.weight", "att.v2", GR_TRANSPOSE},
    {"time_mix_g1.weight", "att.g1", GR_TRANSPOSE},
    {"time_mix_g2.weight", "att.g2", GR_TRANSPOSE},
    {"time_mix_k_k.weight", "att.k_k", GR_VEC3},
    {"time_mix_k_a.weight", "att.k_a", GR_VEC3},
    {"time_mix_r_k.weight", "att.r_k", GR_HEADS},
    {"time_mix_key.weight", "att.key.weight", GR_KEEP},
    {"time_mix_value.weight", "att.value.weight", GR_KEEP},
    {"time_mix_receptance.weight", "att.receptance.weight", GR_KEEP},
    {"time_mix_output.weight", "att.output.weight", GR_KEEP},
    {"time_mix_ln.weight", "att.ln_x.weight", GR_KEEP},
    {"time_mix_ln.bias", "att.ln_x.bias", GR_KEEP},
    {"channel_mix_lerp_k.weight", "ffn.x_k", GR_VEC3},
    {"channel_mix_key.weight", "ffn.key.weight", GR_KEEP},
    {"channel_mix_value.weight", "ffn.value.weight", GR_KEEP},
};

static const gguf_rwkv_name v6_names[] = {
    {"attn_norm.weight", "ln1.weight", GR_KEEP},
    {"attn_norm.bias", "ln1.bias", GR_KEEP},
    {"attn_norm_2.weight", "ln2.weight", GR_KEEP},
    {"attn_norm_2.bias", "ln2.bias", GR_KEEP},
    {"time_mix_lerp_x.weight", "att.time_maa_x", GR_VEC3},
    {"time_mix_lerp_fused.weight", "att.time_maa_", GR_MIXES},
    {"time_mix_w1.weight", "att.time_maa_w1", GR_TRANSPOSE},
    {"time_mix_w2.weight", "att.time_maa_w2", GR_TRANSPOSE},
    {"time_mix_first.weight", "att.time_faaaa", GR_PER_HEAD},
    {"time_mix_decay.weight", "att.time_decay", GR_VEC3},
    {"time_mix_decay_w1.weight", "att.time_decay_w1", GR_TRANSPOSE},
    {"time_mix_decay_w2.weight", "att.time_decay_w2", GR_TRANSPOSE},
    {"time_mix_key.weight", "att.key.weight", GR_KEEP},
    {"time_mix_value.weight", "att.value.weight", GR_KEEP},
    {"time_mix_receptance.weight", "att.receptance.weight", GR_KEEP},
    {"time_mix_gate.weight", "att.gate.weight", GR_KEEP},
    {"time_mix_output.weight", "att.output.weight", GR_RESCALED},
    {"time_mix_ln.weight", "att.ln_x.weight", GR_KEEP},
    {"time_mix_ln.bias", "att.ln_x.bias", GR_KEEP},
    {"channel_mix_lerp_k.weight", "ffn.time_maa_k", GR_VEC3},
    {"channel_mix_lerp_r.weight", "ffn.time_maa_r", GR_VEC3},
    {"channel_mix_key.weight", "ffn.key.weight", GR_KEEP},
    {"channel_mix_receptance.weight", "ffn.receptance.weight", GR_KEEP},
    {"channel_mix_value.weight", "ffn.value.weight", GR_RESCALED},
};

static const char *const v7_mix_parts[] = {"r", "w", "k", "v", "a", "g"};
static const char *const v6_mix_parts[] = {"w", "k", "v", "r", "g"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const gguf_rwkv_name *gguf_rwkv_layer_names(const char *arch, size_t *count) {
    if (strcmp(arch, "rwkv7") == 0) return *count = COUNT(v7_names), v7_names;
    if (strcmp(arch, "rwkv6") == 0) return *count = COUNT(v6_names), v6_names;
    return NULL;
}

const gguf_rwkv_name *gguf_rwkv_global_names(size_t *count) {
    *count = COUNT(global_names);
    return global_names;
}

const char *const *gguf_rwkv_mix_parts(const char *arch, int *count) {
    int v7 = strcmp(arch, "rwkv7") == 0;
    *count = v7 ? (int)COUNT(v7_mix_parts) : (int)COUNT(v6_mix_parts);
    return v7 ? v7_mix_parts : v6_mix_parts;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct read_ctx {
    const char *path;
    const char *arch;
    uint64_t head_size, rescale_every;
    tensor_set *set;
    rwkv_error *err;
} read_ctx;

/* The table entry for a GGUF name, with the block index (-1: global). */
static const gguf_rwkv_name *lookup(const read_ctx *c, const char *name, int *block) {
    size_t n;
    const gguf_rwkv_name *t;
    int bid, used = 0;
    if (sscanf(name, "blk.%d.%n", &bid, &used) == 1 && used > 0 && bid >= 0 && bid < 4096) {
        t = gguf_rwkv_layer_names(c->arch, &n);
        *block = bid;
        name += used;
    } else {
        t = gguf_rwkv_global_names(&n);
        *block = -1;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].gguf, name) == 0) return &t[i];
    return NULL;
}

static rwkv_status rescale(const read_ctx *c, tensor *t, int block) {
    if (c->rescale_every == 0 || (uint64_t)block < c->rescale_every) return RWKV_OK;
    float *v = undo_values_f32(c->path, c->set, t, c->err);
    if (!v) return c->err ? c->err->code : RWKV_ERR_NOMEM;
    const int e = (int)((uint64_t)block / c->rescale_every);
    for (int64_t i = 0, n = tensor_numel(t); i < n; i++) v[i] = ldexpf(v[i], e);
    undo_use_f32(t, v);
    return RWKV_OK;
}

/* Adds one GGUF tensor under its official name, undoing its transform. */
static rwkv_status add_tensor(const read_ctx *c, const gguf_tensor_info *gt) {
    int block;
    const gguf_rwkv_name *m = lookup(c, gt->name, &block);
    if (!m)
        return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF tensor '%s' is not part of an %s model as llama.cpp "
                         "writes it", c->path, gt->name, c->arch);
    /* v7 block 0's v0/v1/v2: copies of a0/a1/a2 the converter adds for llama.cpp's loader; unused */
    if (block == 0 && strcmp(c->arch, "rwkv7") == 0 &&
        (strcmp(m->official, "att.v0") == 0 || strcmp(m->official, "att.v1") == 0 || strcmp(m->official, "att.v2") == 0))
        return RWKV_OK;
    char name[160];
    if (block >= 0) snprintf(name, sizeof name, "blocks.%d.%s%s", block, m->official, m->op == GR_MIXES ? "fused" : "");
    else snprintf(name, sizeof name, "%s", m->official);
    int64_t shape[TENSOR_MAX_DIMS];
    int ndim = gt->ndim;
    memcpy(shape, gt->shape, sizeof shape);
    const int64_t numel = shape_numel(ndim, shape);
    if (m->op == GR_VEC3) {
        ndim = 3;
        shape[0] = shape[1] = 1;
        shape[2] = numel;
    } else if (m->op == GR_HEADS || m->op == GR_PER_HEAD) {
        if (c->head_size == 0 || numel % (int64_t)c->head_size)
            return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF tensor '%s' (%lld values) is not whole heads of "
                             "%s.wkv.head_size %llu", c->path, gt->name, (long long)numel, c->arch,
                             (unsigned long long)c->head_size);
        ndim = 2;
        shape[0] = numel / (int64_t)c->head_size;
        shape[1] = (int64_t)c->head_size;
    }
    rwkv_status s = tensor_set_add(c->set, name, gt->type, ndim, shape, gt->data, gt->nbytes, c->err);
    if (s != RWKV_OK) return c->err ? rwkv_error_prefix(c->err, c->path) : s;
    tensor *t = &c->set->tensors[c->set->count - 1];
    switch (m->op) {
    case GR_TRANSPOSE: return undo_transpose_last2(c->path, c->set, t, c->err);
    case GR_RESCALED: return rescale(c, t, block);
    case GR_MIXES: {
        int n;
        const char *const *parts = gguf_rwkv_mix_parts(c->arch, &n);
        char full[8][160];
        const char *names[8];
        for (int i = 0; i < n; i++) {
            snprintf(full[i], sizeof full[i], "blocks.%d.%s%s", block, m->official, parts[i]);
            names[i] = full[i];
        }
        return undo_split_stacked(c->path, c->set, name, names, n, c->err);
    }
    default: return RWKV_OK;
    }
}

static rwkv_status read_hparams(read_ctx *c, const gguf_file *g, char *arch, size_t arch_size) {
    const gguf_kv *a = gguf_find(g, "general.architecture");
    if (!a || a->type != GGUF_STRING)
        return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF file has no general.architecture string", c->path);
    snprintf(arch, arch_size, "%.*s", (int)(a->len < 64 ? a->len : 64), a->str);
    size_t n;
    if (!gguf_rwkv_layer_names(arch, &n) || strlen(arch) != a->len)
        return rwkv_fail(c->err, RWKV_ERR_UNSUPPORTED, "%s: GGUF architecture '%s' is not one rwkv.c runs (rwkv6, "
                         "rwkv7) (offset %llu)", c->path, arch, (unsigned long long)a->at);
    c->arch = arch;
    char key[96];
    snprintf(key, sizeof key, "%s.wkv.head_size", arch);
    if (!gguf_get_uint(g, key, &c->head_size) || c->head_size == 0 || c->head_size > 65536)
        return rwkv_fail(c->err, RWKV_ERR_FORMAT, "%s: GGUF %s is missing or out of range", c->path, key);
    snprintf(key, sizeof key, "%s.rescale_every_n_layers", arch);
    if (!gguf_get_uint(g, key, &c->rescale_every)) c->rescale_every = 0;
    if (c->rescale_every > 0 && strcmp(arch, "rwkv6") != 0)
        return rwkv_fail(c->err, RWKV_ERR_UNSUPPORTED, "%s: GGUF %s is set for %s", c->path, key, arch);
    return RWKV_OK;
}

rwkv_status gguf_read(const char *path, tensor_set *set, rwkv_error *err) {
    gguf_file g;
    rwkv_status s = gguf_parse(path, set->file.data, set->file.size, &g, err);
    if (s != RWKV_OK) return s;
    read_ctx c = {.path = path, .set = set, .err = err};
    char arch[72];
    s = read_hparams(&c, &g, arch, sizeof arch);
    for (uint64_t i = 0; s == RWKV_OK && i < g.n_tensors; i++) s = add_tensor(&c, &g.tensors[i]);
    if (s == RWKV_OK && set->count == 0) s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: GGUF file holds no tensors", path);
    gguf_free(&g);
    if (s != RWKV_OK) return s;
    set->format = "gguf";
    return rwkv_ok(err);
}
