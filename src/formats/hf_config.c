/* config.json of transformers' RWKV-4 models (RwkvConfig): checked against
 * the tensors on reading, written on export. The tensors are the truth;
 * the config only has to agree with them. Defaults are RwkvConfig's own. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/atomic_write.h"
#include "core/fs.h"
#include "formats/hf.h"
#include "formats/json_bounds.h"

/* transformers' config.json files are a few kB */
#define HF_CONFIG_MAX_BYTES ((size_t)1 << 20)
#define HF_CONFIG_MAX_VALUES ((size_t)1 << 16)
#define RWKV4_LN_EPS 1e-5 /* the LayerNorm epsilon of every RWKV-4 model (docs/model.md §1) */

/* An integer field, or `dflt` when absent or null. */
static rwkv_status int_field(const char *path, json_t *cfg, const char *field, int64_t dflt, int64_t *out,
                             rwkv_error *err) {
    json_t *v = json_object_get(cfg, field);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return RWKV_OK;
    }
    if (!json_is_integer(v)) return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: %s is not an integer", path, field);
    *out = json_integer_value(v);
    return RWKV_OK;
}

typedef struct shape_field {
    const char *field, *tensor; /* the config field and the tensor the value comes from */
    int64_t weights;            /* what the tensors say */
    int64_t dflt;               /* RwkvConfig's default when the field is absent */
} shape_field;

static rwkv_status check_shape(const char *path, json_t *cfg, const tensor_set *set, rwkv_error *err) {
    hf_shape sh;
    rwkv_status s = hf_shape_of(path, set, &sh, err);
    if (s != RWKV_OK) return s;
    int64_t hidden = 0;
    if ((s = int_field(path, cfg, "hidden_size", 4096, &hidden, err)) != RWKV_OK) return s;
    const shape_field fields[] = {
        {"vocab_size", "rows of emb.weight", sh.n_vocab, 50277},
        {"hidden_size", "columns of emb.weight", sh.n_embd, 4096},
        {"num_hidden_layers", "blocks", sh.n_layer, 32},
        {"attention_hidden_size", "rows of blocks.0.att.key.weight", sh.dim_att, hidden},
        {"intermediate_size", "rows of blocks.0.ffn.key.weight", sh.n_ffn, 4 * hidden},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const shape_field *f = &fields[i];
        int64_t v = 0;
        if ((s = int_field(path, cfg, f->field, f->dflt, &v, err)) != RWKV_OK) return s;
        if (v != f->weights)
            return rwkv_fail(err, RWKV_ERR_SHAPE, "%s: %s is %lld, but the weights have %lld (%s)", path, f->field,
                             (long long)v, (long long)f->weights, f->tensor);
    }
    return RWKV_OK;
}

/* transformers ties head.weight to the embedding when the config says so,
 * and then saves the shared tensor once: the head is the embedding, whatever
 * head.weight the file may also hold. */
static rwkv_status tie_head(const char *path, tensor_set *set, rwkv_error *err) {
    const tensor *emb = tensor_set_find(set, "emb.weight");
    if (!emb)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "%s: tie_word_embeddings is true, but there is no emb.weight", path);
    const tensor e = *emb; /* the set's array moves when a tensor is removed or added */
    if (tensor_set_find(set, "head.weight") && tensor_set_remove(set, "head.weight") != 0)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    rwkv_status s = tensor_set_add(set, "head.weight", e.type, e.ndim, e.shape, e.data, e.nbytes, err);
    if (s != RWKV_OK && err) rwkv_error_prefix(err, path);
    return s;
}

/* What the model computes beyond its shape: the family, the LayerNorm
 * epsilon and the output head. */
static rwkv_status check_model(const char *path, json_t *cfg, tensor_set *set, rwkv_error *err) {
    json_t *type = json_object_get(cfg, "model_type");
    if (!json_is_string(type)) return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: model_type is not a string", path);
    const char *name = json_string_value(type);
    if (strcmp(name, "rwkv") != 0) /* echoed up to a line break: the message stays one line */
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                         "%s: model_type is \"%.*s\", but rwkv.c reads transformers' RWKV-4 models (\"rwkv\")", path,
                         (int)strcspn(name, "\r\n"), name);
    json_t *eps = json_object_get(cfg, "layer_norm_epsilon");
    if (eps && !json_is_null(eps)) {
        if (!json_is_number(eps)) return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: layer_norm_epsilon is not a number", path);
        if (fabs(json_number_value(eps) - RWKV4_LN_EPS) > 1e-6 * RWKV4_LN_EPS)
            return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: layer_norm_epsilon is %g, but RWKV-4 models use %g", path,
                             json_number_value(eps), RWKV4_LN_EPS);
    }
    json_t *tie = json_object_get(cfg, "tie_word_embeddings");
    if (tie && !json_is_null(tie)) {
        if (!json_is_boolean(tie)) return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tie_word_embeddings is not a boolean", path);
        if (json_is_true(tie)) return tie_head(path, set, err);
    }
    return RWKV_OK;
}

rwkv_status hf_config_check(const char *dir, tensor_set *set, rwkv_error *err) {
    char path[FS_PATH_MAX];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: path too long", dir);
    if (!file_exists(path)) return rwkv_ok(err);
    json_t *cfg;
    rwkv_status s = json_read_file(path, HF_CONFIG_MAX_BYTES, HF_CONFIG_MAX_VALUES, JSON_REJECT_DUPLICATES, &cfg, err);
    if (s != RWKV_OK) return s;
    s = json_is_object(cfg) ? RWKV_OK : rwkv_fail(err, RWKV_ERR_FORMAT, "%s: not a JSON object", path);
    /* transformers always writes model_type; a config.json without it is some
     * other program's (an rwkv.c training run's, for one) and describes no model */
    int from_transformers = s == RWKV_OK && json_object_get(cfg, "model_type");
    if (from_transformers) s = check_model(path, cfg, set, err);
    if (from_transformers && s == RWKV_OK) s = check_shape(path, cfg, set, err);
    json_decref(cfg);
    return s == RWKV_OK ? rwkv_ok(err) : s;
}

static rwkv_status write_json(FILE *f, void *ctx, rwkv_error *err) {
    char *text = json_dumps(ctx, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (!text) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    free(text);
    return ok ? RWKV_OK : rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
}

static const char *torch_dtype_name(dtype t) {
    return t == DT_F16 ? "float16" : t == DT_BF16 ? "bfloat16" : "float32";
}

rwkv_status hf_config_write(const char *path, const hf_shape *sh, dtype weights, rwkv_error *err) {
    json_t *cfg = json_object(), *arch = json_array();
    json_array_append_new(arch, json_string("RwkvForCausalLM"));
    json_object_set_new(cfg, "architectures", arch);
    json_object_set_new(cfg, "model_type", json_string("rwkv"));
    json_object_set_new(cfg, "vocab_size", json_integer(sh->n_vocab));
    json_object_set_new(cfg, "hidden_size", json_integer(sh->n_embd));
    json_object_set_new(cfg, "num_hidden_layers", json_integer(sh->n_layer));
    json_object_set_new(cfg, "attention_hidden_size", json_integer(sh->dim_att));
    json_object_set_new(cfg, "intermediate_size", json_integer(sh->n_ffn));
    json_object_set_new(cfg, "layer_norm_epsilon", json_real(RWKV4_LN_EPS));
    /* RWKV runs on any length; transformers uses this only to size its CUDA kernel */
    json_object_set_new(cfg, "context_length", json_integer(1024));
    /* 0: transformers computes exactly the trained model, with no halving of the
     * residual stream (which only matters against float16 overflow) */
    json_object_set_new(cfg, "rescale_every", json_integer(0));
    json_object_set_new(cfg, "tie_word_embeddings", json_false());
    json_object_set_new(cfg, "bos_token_id", json_integer(0));
    json_object_set_new(cfg, "eos_token_id", json_integer(0));
    json_object_set_new(cfg, "use_cache", json_true());
    /* the key transformers writes itself (older versions called it torch_dtype) */
    json_object_set_new(cfg, "dtype", json_string(torch_dtype_name(weights)));
    rwkv_status s = atomic_write_file(path, write_json, cfg, err);
    json_decref(cfg);
    if (s != RWKV_OK && err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
    return s;
}
