/* config.json of a run (train/run_config.h). */
#include "train/run_config.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_write.h"

typedef enum { K_INT, K_LONG, K_DOUBLE, K_U64 } kind;
typedef struct field {
    const char *key;
    kind k;
    size_t off;
} field;

#define F(name, k) {#name, k, offsetof(rwkv_train_options, name)}
static const field fields[] = {
    F(val_fraction, K_DOUBLE), F(val_windows, K_INT),  F(n_layer, K_INT),       F(n_embd, K_INT),
    F(n_ffn, K_INT),           F(ctx_len, K_INT),      F(batch, K_INT),         F(grad_accum, K_INT),
    F(steps, K_LONG),          F(lr_init, K_DOUBLE),   F(lr_final, K_DOUBLE),   F(warmup_steps, K_LONG),
    F(const_steps, K_LONG),    F(beta1, K_DOUBLE),     F(beta2, K_DOUBLE),      F(adam_eps, K_DOUBLE),
    F(weight_decay, K_DOUBLE), F(grad_clip, K_DOUBLE), F(l2wrap, K_DOUBLE),     F(layerwise_lr, K_INT),
    F(emb_init, K_DOUBLE),     F(eval_every, K_LONG),  F(save_every, K_LONG),   F(keep_checkpoints, K_INT),
    F(seed, K_U64),            F(threads, K_INT),      F(skip_nonfinite, K_INT),
};
#undef F
static const int n_fields = (int)(sizeof fields / sizeof fields[0]);

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static rwkv_status dump_json(FILE *f, void *ctx, rwkv_error *err) {
    char *text = json_dumps((json_t *)ctx, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, f) == len && fputc('\n', f) != EOF;
    free(text);
    return ok ? RWKV_OK : rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
}

rwkv_status train_config_write(const char *path, const train_config *c, rwkv_error *err) {
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string("rwkv.c training run"));
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "arch", json_string(c->arch ? c->arch : "rwkv4"));
    json_object_set_new(root, "data_path", str_or_null(c->data_path));
    json_object_set_new(root, "tokens_path", str_or_null(c->tokens_path));
    json_object_set_new(root, "init_path", str_or_null(c->init_path));
    json_object_set_new(root, "tokenizer", str_or_null(c->tokenizer));
    json_object_set_new(root, "n_vocab", json_integer(c->n_vocab));
    json_object_set_new(root, "n_head", json_integer(c->opt.n_head));
    json_object_set_new(root, "head_size", json_integer(c->opt.head_size));
    json_object_set_new(root, "device", json_string(c->device ? c->device : "cpu"));
    json_object_set_new(root, "precision", json_string(c->precision ? c->precision : "fp32"));
    const char *base = (const char *)&c->opt;
    for (int i = 0; i < n_fields; i++) {
        const void *p = base + fields[i].off;
        json_t *v = NULL;
        switch (fields[i].k) {
        case K_INT: v = json_integer(*(const int *)p); break;
        case K_LONG: v = json_integer(*(const long *)p); break;
        case K_DOUBLE: v = json_real(*(const double *)p); break;
        case K_U64: v = json_integer((json_int_t)*(const uint64_t *)p); break;
        }
        json_object_set_new(root, fields[i].key, v);
    }
    rwkv_status s = atomic_write_file(path, dump_json, root, err);
    json_decref(root);
    if (s != RWKV_OK && err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
    return s;
}

static rwkv_status get_str(json_t *root, const char *key, char **out, int nullable, const char *path,
                           rwkv_error *err) {
    json_t *v = json_object_get(root, key);
    *out = NULL;
    if (v && json_is_null(v) && nullable) return RWKV_OK;
    if (!v || !json_is_string(v))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: \"%s\" must be a string%s", path, key,
                         nullable ? " or null" : "");
    *out = strdup(json_string_value(v));
    return *out ? RWKV_OK : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
}

/* A string that older config.json files lack: `absent` then. */
static rwkv_status get_optional_str(json_t *root, const char *key, const char *absent, char **out, const char *path,
                                    rwkv_error *err) {
    if (json_object_get(root, key)) return get_str(root, key, out, 0, path, err);
    *out = strdup(absent);
    return *out ? RWKV_OK : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
}

rwkv_status train_config_read(const char *path, train_config *c, rwkv_error *err) {
    memset(c, 0, sizeof *c);
    c->opt = rwkv_train_options_default();
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return rwkv_fail(err, errno == ENOENT ? RWKV_ERR_IO : RWKV_ERR_FORMAT, "%s: %s (line %d)", path,
                         je.text, je.line);
    rwkv_status s = RWKV_OK;
    if (!json_is_object(root)) s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: expected a JSON object", path);
    json_t *ver = json_object_get(root, "version");
    if (s == RWKV_OK && (!json_is_integer(ver) || json_integer_value(ver) != 1))
        s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: \"version\" must be 1", path);
    if (s == RWKV_OK) s = get_str(root, "data_path", &c->data_path, 1, path, err);
    if (s == RWKV_OK) s = get_str(root, "tokens_path", &c->tokens_path, 0, path, err);
    if (s == RWKV_OK) s = get_str(root, "init_path", &c->init_path, 1, path, err);
    if (s == RWKV_OK) s = get_str(root, "tokenizer", &c->tokenizer, 0, path, err);
    if (s == RWKV_OK) {
        /* optional: runs written before the GPT baseline are RWKV-4 runs */
        s = get_optional_str(root, "arch", "rwkv4", &c->arch, path, err);
    }
    /* optional: runs written before the GPU engine trained on the CPU in fp32 */
    if (s == RWKV_OK) s = get_optional_str(root, "device", "cpu", &c->device, path, err);
    if (s == RWKV_OK) s = get_optional_str(root, "precision", "fp32", &c->precision, path, err);
    /* optional: runs written before the transformer and RWKV-7 have neither */
    static const char *const head_keys[] = {"n_head", "head_size"};
    int *const head_fields[] = {&c->opt.n_head, &c->opt.head_size};
    for (int i = 0; i < 2; i++) {
        json_t *nh = json_object_get(root, head_keys[i]);
        if (s == RWKV_OK && nh &&
            (!json_is_integer(nh) || json_integer_value(nh) < 0 || json_integer_value(nh) > (1 << 20)))
            s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: \"%s\" must be a non-negative integer", path, head_keys[i]);
        if (s == RWKV_OK && nh) *head_fields[i] = (int)json_integer_value(nh);
    }
    json_t *nv = json_object_get(root, "n_vocab");
    if (s == RWKV_OK && (!json_is_integer(nv) || json_integer_value(nv) < 1 || json_integer_value(nv) > (1 << 30)))
        s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: \"n_vocab\" must be a positive integer", path);
    if (s == RWKV_OK) c->n_vocab = (int)json_integer_value(nv);
    char *base = (char *)&c->opt;
    for (int i = 0; s == RWKV_OK && i < n_fields; i++) {
        json_t *v = json_object_get(root, fields[i].key);
        void *p = base + fields[i].off;
        if (fields[i].k == K_DOUBLE) {
            if (!json_is_number(v)) {
                s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: \"%s\" must be a number", path, fields[i].key);
                break;
            }
            *(double *)p = json_number_value(v);
            continue;
        }
        if (!json_is_integer(v)) {
            s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: \"%s\" must be an integer", path, fields[i].key);
            break;
        }
        json_int_t x = json_integer_value(v);
        if (fields[i].k == K_INT && (x < -2147483647LL || x > 2147483647LL)) {
            s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: \"%s\" is out of range", path, fields[i].key);
            break;
        }
        if (fields[i].k == K_U64 && x < 0) {
            s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: \"%s\" must not be negative", path, fields[i].key);
            break;
        }
        switch (fields[i].k) {
        case K_INT: *(int *)p = (int)x; break;
        case K_LONG: *(long *)p = (long)x; break;
        case K_U64: *(uint64_t *)p = (uint64_t)x; break;
        case K_DOUBLE: break;
        }
    }
    json_decref(root);
    if (s != RWKV_OK) {
        train_config_free(c);
        return s;
    }
    c->opt.data_path = c->data_path;
    c->opt.init_path = c->init_path;
    c->opt.tokenizer = c->tokenizer;
    c->opt.arch = c->arch;
    c->opt.device = c->device;
    c->opt.precision = c->precision;
    return rwkv_ok(err);
}

void train_config_free(train_config *c) {
    free(c->data_path);
    free(c->out_dir);
    free(c->init_path);
    free(c->tokenizer);
    free(c->tokens_path);
    free(c->arch);
    free(c->device);
    free(c->precision);
    c->data_path = c->out_dir = c->init_path = c->tokenizer = c->tokens_path = c->arch = NULL;
    c->device = c->precision = NULL;
}
