#include "core/atomic_write.h"
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "formats/formats.h"
#include "core/tensor.h"

uint64_t fnv1a64(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Floats are hashed by their little-endian bytes, so the hash does not depend
 * on the host's byte order. */
static uint64_t fnv_floats(uint64_t h, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        for (int b = 0; b < 4; b++) {
            h ^= (uint8_t)(u >> (8 * b));
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

uint64_t params_hash(const float *params, size_t n) { return fnv_floats(FNV_INIT, params, n); }

/* ---- model ---- */

rwkv_status train_save_model(const char *path, const param_layout *lay, const float *params,
                             rwkv_error *err) {
    tensor *t = calloc((size_t)lay->count, sizeof *t);
    if (!t) return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < lay->count; i++) {
        const param_info *p = &lay->params[i];
        t[i].name = (char *)p->name;
        t[i].type = DT_F32;
        t[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim && d < TENSOR_MAX_DIMS; d++) t[i].shape[d] = p->shape[d];
        t[i].data = params + p->offset;
        t[i].nbytes = p->numel * sizeof(float);
    }
    rwkv_status s = safetensors_write(path, t, lay->count, DT_F32, err);
    free(t);
    return s;
}

rwkv_status train_load_model(const char *path, param_layout *lay, float **params, rwkv_error *err) {
    tensor_set set;
    *params = NULL;
    rwkv_status s = checkpoint_read(path, &set, err);
    if (s != RWKV_OK) return s;
    s = params_from_tensors(&set, lay, params, err);
    if (s != RWKV_OK && err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
    tensor_set_free(&set);
    return s;
}

/* ---- training state ---- */

#define STATE_MAGIC "RWKVTST"
#define STATE_HEADER 112

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_f64(uint8_t *p, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    put_u64(p, u);
}
static double rd_f64(const uint8_t *p) {
    uint64_t u = rd_u64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

typedef struct state_writer {
    const train_state *st;
    int pause_ms;
} state_writer;

/* Writes floats little-endian in chunks, hashing what it writes. */
static int write_floats(FILE *f, const float *x, size_t n, uint64_t *h) {
    uint8_t buf[4096];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < sizeof buf / 4 && i < n; k++, i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            put_u32(buf + 4 * k, u);
        }
        *h = fnv1a64(*h, buf, 4 * k);
        if (fwrite(buf, 4, k, f) != k) return 0;
    }
    return 1;
}

static rwkv_status write_state(FILE *f, void *ctx, rwkv_error *err) {
    state_writer *w = ctx;
    const train_state *st = w->st;
    uint8_t hdr[STATE_HEADER] = {0};
    memcpy(hdr, STATE_MAGIC, 8);
    put_u32(hdr + 8, 1);
    put_u64(hdr + 16, st->step);
    put_u64(hdr + 24, (uint64_t)st->n);
    for (int i = 0; i < 4; i++) put_u64(hdr + 32 + 8 * i, st->rng[i]);
    put_u64(hdr + 64, st->samples);
    put_u64(hdr + 72, st->tokens_seen);
    put_u64(hdr + 80, st->skipped);
    put_f64(hdr + 88, st->elapsed_s);
    put_f64(hdr + 96, st->last_val_loss);
    put_u64(hdr + 104, st->params_hash);
    uint64_t h = fnv1a64(FNV_INIT, hdr, sizeof hdr);
    if (fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr || !write_floats(f, st->m, st->n, &h))
        return rwkv_fail(err, RWKV_ERR_IO, "write failed");
    if (w->pause_ms > 0) { /* testing hook: a window for kill -9 in the middle of the write */
        fflush(f);
        struct timespec ts = {w->pause_ms / 1000, (long)(w->pause_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    if (!write_floats(f, st->v, st->n, &h)) return rwkv_fail(err, RWKV_ERR_IO, "write failed");
    uint8_t tail[8];
    put_u64(tail, h);
    if (fwrite(tail, 1, 8, f) != 8) return rwkv_fail(err, RWKV_ERR_IO, "write failed");
    return RWKV_OK;
}

rwkv_status train_state_write(const char *path, const train_state *st, int pause_ms, rwkv_error *err) {
    state_writer w = {st, pause_ms};
    rwkv_status s = atomic_write_file(path, write_state, &w, err);
    if (s != RWKV_OK && err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
    return s;
}

static void read_floats(const uint8_t *p, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = rd_u32(p + 4 * i);
        memcpy(&x[i], &u, 4);
    }
}

rwkv_status train_state_read(const char *path, train_state *st, rwkv_error *err) {
    memset(st, 0, sizeof *st);
    mapped_file mf;
    rwkv_status s = mapped_file_open(path, &mf, err);
    if (s != RWKV_OK) return s;
    const uint8_t *p = mf.data;
    size_t size = mf.size;
    const char *why = NULL;
    uint64_t n = 0;
    if (size < STATE_HEADER + 8 || memcmp(p, STATE_MAGIC, 8) != 0)
        why = "not a training-state file (expected the \"RWKVTST\" header)";
    else if (rd_u32(p + 8) != 1)
        why = "unsupported version (expected 1) (offset 8)";
    else {
        n = rd_u64(p + 24);
        if (n > (size - STATE_HEADER - 8) / 8 || STATE_HEADER + 8 * n + 8 != size)
            why = "moment count does not match the file size (offset 24)";
        else if (fnv1a64(FNV_INIT, p, size - 8) != rd_u64(p + size - 8))
            why = "checksum mismatch (the file is damaged or was cut short)";
    }
    if (why) {
        mapped_file_close(&mf);
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: %s", path, why);
    }
    st->step = rd_u64(p + 16);
    st->n = (size_t)n;
    for (int i = 0; i < 4; i++) st->rng[i] = rd_u64(p + 32 + 8 * i);
    st->samples = rd_u64(p + 64);
    st->tokens_seen = rd_u64(p + 72);
    st->skipped = rd_u64(p + 80);
    st->elapsed_s = rd_f64(p + 88);
    st->last_val_loss = rd_f64(p + 96);
    st->params_hash = rd_u64(p + 104);
    st->m = malloc(st->n * sizeof(float) + 1);
    st->v = malloc(st->n * sizeof(float) + 1);
    if (!st->m || !st->v) {
        train_state_free(st);
        mapped_file_close(&mf);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory for %zu moments", path, (size_t)n);
    }
    read_floats(p + STATE_HEADER, st->m, st->n);
    read_floats(p + STATE_HEADER + 4 * n, st->v, st->n);
    mapped_file_close(&mf);
    return rwkv_ok(err);
}

void train_state_free(train_state *st) {
    free(st->m);
    free(st->v);
    st->m = st->v = NULL;
}

/* ---- checkpoint files in a run directory ---- */

void ckpt_model_path(const char *dir, long step, char *buf, size_t size) {
    snprintf(buf, size, "%s/model-%08ld.safetensors", dir, step);
}

void ckpt_state_path(const char *dir, long step, char *buf, size_t size) {
    snprintf(buf, size, "%s/train_state-%08ld.bin", dir, step);
}

/* Parses "<prefix>DDDDDDDD<suffix>" (at least 8 digits) into *step. */
static int parse_step_name(const char *name, const char *prefix, const char *suffix, long *step) {
    size_t lp = strlen(prefix), ls = strlen(suffix), ln = strlen(name);
    if (ln < lp + ls + 8 || strncmp(name, prefix, lp) != 0 || strcmp(name + ln - ls, suffix) != 0) return 0;
    long v = 0;
    for (size_t i = lp; i < ln - ls; i++) {
        if (name[i] < '0' || name[i] > '9' || v > 100000000000L) return 0;
        v = v * 10 + (name[i] - '0');
    }
    *step = v;
    return 1;
}

static int cmp_desc(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int ckpt_list(const char *dir, long **steps, rwkv_error *err) {
    *steps = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        rwkv_fail(err, RWKV_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
        return -1;
    }
    int n = 0, cap = 0;
    long *s = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long step;
        if (!parse_step_name(e->d_name, "train_state-", ".bin", &step)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            long *ns = realloc(s, (size_t)cap * sizeof *ns);
            if (!ns) {
                free(s);
                closedir(d);
                rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
                return -1;
            }
            s = ns;
        }
        s[n++] = step;
    }
    closedir(d);
    if (n > 1) qsort(s, (size_t)n, sizeof *s, cmp_desc);
    *steps = s;
    return n;
}

void ckpt_remove_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    static const char *const ours[] = {"model-", "train_state-", "model.safetensors", "config.json",
                                       "tokens.bin", "train.jsonl"};
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (!strstr(e->d_name, ".tmp.")) continue;
        int mine = 0;
        for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
            if (strncmp(e->d_name, ours[i], strlen(ours[i])) == 0) mine = 1;
        if (!mine) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

void ckpt_prune(const char *dir, int keep) {
    long *steps;
    int n = ckpt_list(dir, &steps, NULL);
    if (n <= 0) {
        free(steps);
        return;
    }
    int kept = keep > 0 && keep < n ? keep : n;
    char path[4096];
    for (int i = kept; i < n; i++) {
        ckpt_state_path(dir, steps[i], path, sizeof path);
        unlink(path); /* the state first: a model without its state is never taken */
        ckpt_model_path(dir, steps[i], path, sizeof path);
        unlink(path);
    }
    /* models whose state was never written (killed between the two files),
     * older than the newest checkpoint */
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            long step;
            if (!parse_step_name(e->d_name, "model-", ".safetensors", &step) || step >= steps[0]) continue;
            int has_state = 0;
            for (int i = 0; i < kept; i++)
                if (steps[i] == step) has_state = 1;
            if (has_state) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    free(steps);
}

/* ---- config.json ---- */

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
    return ok ? RWKV_OK : rwkv_fail(err, RWKV_ERR_IO, "write failed");
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
        if (json_object_get(root, "arch")) s = get_str(root, "arch", &c->arch, 0, path, err);
        else if (!(c->arch = strdup("rwkv4"))) s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    json_t *nh = json_object_get(root, "n_head");
    if (s == RWKV_OK && nh && (!json_is_integer(nh) || json_integer_value(nh) < 0 || json_integer_value(nh) > (1 << 20)))
        s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: \"n_head\" must be a non-negative integer", path);
    if (s == RWKV_OK && nh) c->opt.n_head = (int)json_integer_value(nh);
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
    return rwkv_ok(err);
}

void train_config_free(train_config *c) {
    free(c->data_path);
    free(c->out_dir);
    free(c->init_path);
    free(c->tokenizer);
    free(c->tokens_path);
    free(c->arch);
    c->data_path = c->out_dir = c->init_path = c->tokenizer = c->tokens_path = c->arch = NULL;
}
