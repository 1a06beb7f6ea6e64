/* Helpers every command may use: error reporting, time, whole-file reads and
 * feeding tokens to a model. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int cli_report(const rwkv_error *err) {
    fprintf(stderr, "rwkv: %s\n", err->message[0] ? err->message : rwkv_status_name(err->code));
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rwkv %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'rwkv %s --help')\n", cmd);
    va_end(ap);
    return 2;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cli_read_file(const char *path, char **data, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = !buf || ferror(f);
    if (f != stdin) fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

rwkv_status cli_feed(rwkv_model *m, rwkv_state *st, const int *toks, size_t n, size_t chunk, float *logits,
                     rwkv_error *err) {
    if (chunk == 0) chunk = 256;
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        int last = i + k == n;
        rwkv_status s = k == 1 ? rwkv_eval(m, st, toks[i], last ? logits : NULL, err)
                               : rwkv_eval_sequence(m, st, toks + i, k, last ? logits : NULL, 0, err);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}
