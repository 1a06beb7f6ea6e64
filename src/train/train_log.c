/* The per-step log of a run (train/train_log.h). */
#include "train/train_log.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_write.h"
#include "core/fs.h"

rwkv_status train_log_open(const char *dir, const char *mode, FILE **out, rwkv_error *err) {
    char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    *out = fopen(path, mode);
    if (!*out) return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return RWKV_OK;
}

static void json_num(FILE *f, const char *key, const char *fmt, double x) {
    fprintf(f, ",\"%s\":", key);
    if (isfinite(x)) fprintf(f, fmt, x);
    else fputs("null", f);
}

void train_log_write(FILE *f, const train_log_line *l) {
    fprintf(f, "{\"step\":%ld", l->step);
    json_num(f, "loss", "%.9g", l->loss);
    json_num(f, "lr", "%.9g", l->lr);
    json_num(f, "tokens_per_s", "%.1f", l->tokens_per_s);
    json_num(f, "grad_norm", "%.6g", l->grad_norm);
    json_num(f, "mfu", "%.5f", l->mfu);
    json_num(f, "elapsed_s", "%.3f", l->elapsed_s);
    if (!isnan(l->val_loss)) json_num(f, "val_loss", "%.9g", l->val_loss);
    if (l->skipped) fputs(",\"skipped\":true", f);
    fputs("}\n", f);
    fflush(f);
}

typedef struct log_keep {
    const char *data;
    size_t len;
} log_keep;

static rwkv_status write_log_keep(FILE *f, void *ctx, rwkv_error *err) {
    log_keep *k = ctx;
    if (k->len && fwrite(k->data, 1, k->len, f) != k->len) return rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
    return RWKV_OK;
}

/* The whole file into a malloc'ed buffer. */
static rwkv_status read_all(FILE *f, const char *path, char **out, size_t *out_len, rwkv_error *err) {
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    *out = buf;
    *out_len = len;
    return RWKV_OK;
}

rwkv_status train_log_truncate(const char *dir, long step, rwkv_error *err) {
    char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return RWKV_OK; /* no log yet */
    char *buf = NULL;
    size_t len = 0;
    rwkv_status st = read_all(f, path, &buf, &len, err);
    fclose(f);
    if (st != RWKV_OK) return st;
    size_t keep = 0;
    for (size_t i = 0; i < len;) {
        char *nl = memchr(buf + i, '\n', len - i);
        if (!nl) break; /* a partial last line */
        long s;
        if (sscanf(buf + i, "{\"step\":%ld", &s) != 1 || s > step) break;
        i = (size_t)(nl - buf) + 1;
        keep = i;
    }
    if (keep != len) {
        log_keep k = {buf, keep};
        st = atomic_write_file(path, write_log_keep, &k, err);
    }
    free(buf);
    return st;
}
