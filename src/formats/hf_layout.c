/* transformers' RWKV-4 layout (RwkvForCausalLM, docs/formats.md): its tensor
 * names <-> the official ones, and the model shape a config.json describes.
 * The values are the same in both layouts (transformers also stores
 * time_decay as θ and applies −exp at run time), so only names and the
 * vector shapes differ. */
#include <stdio.h>
#include <string.h>

#include "formats/hf.h"

/* shape_kind: how transformers shapes the tensor, so that files whose vectors
 * are stored flat (rwkv.c keeps some as [C]) still load in transformers. */
enum { KEEP_SHAPE, VECTOR, MIX_1_1_C };

typedef struct name_pair {
    const char *hf, *official;
    int shape_kind;
} name_pair;

static const name_pair model_names[] = {
    {"rwkv.embeddings.weight", "emb.weight", KEEP_SHAPE},
    {"rwkv.ln_out.weight", "ln_out.weight", VECTOR},
    {"rwkv.ln_out.bias", "ln_out.bias", VECTOR},
    {"head.weight", "head.weight", KEEP_SHAPE},
};

/* Inside block N: "rwkv.blocks.N." + hf <-> "blocks.N." + official. */
static const name_pair block_names[] = {
    {"pre_ln.weight", "ln0.weight", VECTOR},
    {"pre_ln.bias", "ln0.bias", VECTOR},
    {"ln1.weight", "ln1.weight", VECTOR},
    {"ln1.bias", "ln1.bias", VECTOR},
    {"ln2.weight", "ln2.weight", VECTOR},
    {"ln2.bias", "ln2.bias", VECTOR},
    {"attention.time_decay", "att.time_decay", VECTOR},
    {"attention.time_first", "att.time_first", VECTOR},
    {"attention.time_mix_key", "att.time_mix_k", MIX_1_1_C},
    {"attention.time_mix_value", "att.time_mix_v", MIX_1_1_C},
    {"attention.time_mix_receptance", "att.time_mix_r", MIX_1_1_C},
    {"attention.key.weight", "att.key.weight", KEEP_SHAPE},
    {"attention.value.weight", "att.value.weight", KEEP_SHAPE},
    {"attention.receptance.weight", "att.receptance.weight", KEEP_SHAPE},
    {"attention.output.weight", "att.output.weight", KEEP_SHAPE},
    {"feed_forward.time_mix_key", "ffn.time_mix_k", MIX_1_1_C},
    {"feed_forward.time_mix_receptance", "ffn.time_mix_r", MIX_1_1_C},
    {"feed_forward.key.weight", "ffn.key.weight", KEEP_SHAPE},
    {"feed_forward.value.weight", "ffn.value.weight", KEEP_SHAPE},
    {"feed_forward.receptance.weight", "ffn.receptance.weight", KEEP_SHAPE},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define HF_BLOCK_PREFIX "rwkv.blocks."
#define OFFICIAL_BLOCK_PREFIX "blocks."

/* Translates one name, to_official or back. 1 and the name in out (with its
 * shape kind in *kind), or 0 when the name is not part of the layout. */
static int translate(const char *name, int to_official, char *out, size_t size, int *kind) {
    for (size_t i = 0; i < N_OF(model_names); i++) {
        const name_pair *p = &model_names[i];
        if (strcmp(name, to_official ? p->hf : p->official) == 0) {
            *kind = p->shape_kind;
            return snprintf(out, size, "%s", to_official ? p->official : p->hf) < (int)size;
        }
    }
    const char *from_prefix = to_official ? HF_BLOCK_PREFIX : OFFICIAL_BLOCK_PREFIX;
    const char *to_prefix = to_official ? OFFICIAL_BLOCK_PREFIX : HF_BLOCK_PREFIX;
    size_t plen = strlen(from_prefix);
    if (strncmp(name, from_prefix, plen) != 0) return 0;
    const char *p = name + plen, *digits = p;
    while (*p >= '0' && *p <= '9' && p - digits < 6) p++;
    if (p == digits || *p != '.' || (digits[0] == '0' && p - digits > 1)) return 0;
    for (size_t i = 0; i < N_OF(block_names); i++) {
        const name_pair *b = &block_names[i];
        if (strcmp(p + 1, to_official ? b->hf : b->official) != 0) continue;
        *kind = b->shape_kind;
        return snprintf(out, size, "%s%.*s.%s", to_prefix, (int)(p - digits), digits,
                        to_official ? b->official : b->hf) < (int)size;
    }
    return 0;
}

/* Official names never start with "rwkv.", every transformers RWKV name does
 * except head.weight, which both layouts share. */
static int has_hf_names(const tensor_set *set) {
    for (int i = 0; i < set->count; i++)
        if (strncmp(set->tensors[i].name, "rwkv.", 5) == 0) return 1;
    return 0;
}

rwkv_status hf_layout_to_official(const char *path, tensor_set *set, rwkv_error *err) {
    if (!has_hf_names(set)) return rwkv_ok(err);
    for (int i = 0; i < set->count; i++) {
        char official[160];
        int kind;
        const char *name = set->tensors[i].name;
        if (!translate(name, 1, official, sizeof official, &kind))
            return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                             "%s: tensor '%s' is not part of transformers' RWKV-4 layout (RwkvForCausalLM)", path,
                             name);
        if (strcmp(official, name) == 0) continue;
        if (tensor_set_find(set, official))
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensors '%s' and '%s' are the same parameter", path, name,
                             official);
        if (tensor_set_rename(set, i, official) != 0) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    set->layout = "transformers";
    return rwkv_ok(err);
}

rwkv_status hf_layout_tensor(const tensor *t, char *name, size_t size, tensor *out, rwkv_error *err) {
    int kind;
    if (!translate(t->name, 0, name, size, &kind))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                         "tensor '%s' has no place in transformers' RWKV-4 layout (RwkvForCausalLM)", t->name);
    *out = *t;
    out->name = name;
    int64_t n = tensor_numel(t);
    if (kind == VECTOR) {
        out->ndim = 1;
        out->shape[0] = n;
    } else if (kind == MIX_1_1_C) {
        out->ndim = 3;
        out->shape[0] = out->shape[1] = 1;
        out->shape[2] = n;
    }
    return rwkv_ok(err);
}

/* The rows (dim 0) and, when cols is not NULL, the columns of a 2-D tensor. */
static rwkv_status matrix_dims(const char *path, const tensor_set *set, const char *name, int64_t *rows,
                               int64_t *cols, rwkv_error *err) {
    const tensor *t = tensor_set_find(set, name);
    if (!t) return rwkv_fail(err, RWKV_ERR_SHAPE, "%s: missing tensor '%s'", path, name);
    if (t->ndim != 2) return rwkv_fail(err, RWKV_ERR_SHAPE, "%s: tensor '%s' is not a matrix", path, name);
    *rows = t->shape[0];
    if (cols) *cols = t->shape[1];
    return RWKV_OK;
}

rwkv_status hf_shape_of(const char *path, const tensor_set *set, hf_shape *out, rwkv_error *err) {
    rwkv_status s;
    if ((s = matrix_dims(path, set, "emb.weight", &out->n_vocab, &out->n_embd, err)) != RWKV_OK ||
        (s = matrix_dims(path, set, "blocks.0.att.key.weight", &out->dim_att, NULL, err)) != RWKV_OK ||
        (s = matrix_dims(path, set, "blocks.0.ffn.key.weight", &out->n_ffn, NULL, err)) != RWKV_OK)
        return s;
    /* every block has ln1; its weight names the block */
    out->n_layer = 0;
    for (;;) {
        char name[48];
        snprintf(name, sizeof name, "blocks.%lld.ln1.weight", (long long)out->n_layer);
        if (!tensor_set_find(set, name)) break;
        out->n_layer++;
    }
    return rwkv_ok(err);
}
