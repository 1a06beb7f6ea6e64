/* Helpers every command may use: error reporting, time, whole-file reads and
 * feeding tokens to a model. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "rwkv_tokenizer.h"

void cli_print_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
}

int cli_report(const rwkv_error *err) {
    fputs("rwkv: ", stderr);
    cli_print_escaped(stderr, err->message[0] ? err->message : rwkv_status_name(err->code));
    fputc('\n', stderr);
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

/* Only async-signal-safe calls here: write, strlen, _exit, signal, raise. */
static void on_bus_error(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    const char *path = rwkv_mapped_file_at(si->si_addr);
    if (!path) { /* not ours: the default action, when the faulting access repeats */
        signal(sig, SIG_DFL);
        return;
    }
    static const char head[] = "rwkv: ",
                      tail[] = ": the file was truncated or changed on disk while in use (bus error reading it); "
                               "keep it unchanged while rwkv runs, or load it with --no-mmap\n";
    ssize_t ignored = write(STDERR_FILENO, head, sizeof head - 1);
    ignored = write(STDERR_FILENO, path, strlen(path));
    ignored = write(STDERR_FILENO, tail, sizeof tail - 1);
    (void)ignored;
    _exit(1);
}

void cli_catch_bus_errors(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_bus_error;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

rwkv_dtype cli_dtype(const char *name) {
    return !name                     ? RWKV_DTYPE_KEEP
           : strcmp(name, "f32") == 0 ? RWKV_DTYPE_F32
           : strcmp(name, "f16") == 0 ? RWKV_DTYPE_F16
                                      : RWKV_DTYPE_BF16;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cli_read_input(const char *path, long max_mb, const char *what, char **data, size_t *len) {
    const int is_stdin = strcmp(path, "-") == 0;
    const size_t max = (size_t)max_mb << 20;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "rwkv: %s: cannot open the %s: %s\n", path, what, strerror(errno));
        return 1;
    }
    /* grow by doubling, but never past the limit: an endless input
     * (/dev/zero, a pipe) costs at most max_mb MiB before it is refused */
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    int too_long = 0;
    while (buf) {
        if (n == cap) {
            if (cap > max) {
                too_long = 1;
                break;
            }
            size_t next = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *b = realloc(buf, next + 1);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap = next;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int e = errno, bad = !buf || too_long || ferror(f);
    if (bad) {
        if (too_long)
            fprintf(stderr, "rwkv: %s: the %s is larger than %ld MiB (raise the limit with --max-input MB)\n",
                    is_stdin ? "stdin" : path, what, max_mb);
        else
            fprintf(stderr, "rwkv: %s: cannot read the %s: %s\n", is_stdin ? "stdin" : path, what,
                    buf ? strerror(e) : "out of memory");
        free(buf);
    } else {
        buf[n] = '\0';
        *data = buf;
        *len = n;
    }
    if (!is_stdin) fclose(f);
    return bad;
}

long cli_read_line(char **line, size_t *cap, long max_mb) {
    const size_t max = (size_t)max_mb << 20;
    size_t n = 0;
    for (int c; (c = getchar()) != EOF && c != '\n';) {
        if (n == max) return -2;
        if (n + 1 >= *cap) {
            size_t next = *cap ? *cap * 2 : 256;
            char *b = realloc(*line, next);
            if (!b) return -1;
            *line = b;
            *cap = next;
        }
        (*line)[n++] = (char)c;
    }
    if (n == 0 && (feof(stdin) || ferror(stdin))) return -1;
    if (!*line) {
        *line = malloc(1);
        if (!*line) return -1;
        *cap = 1;
    }
    (*line)[n] = '\0';
    return (long)n;
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

rwkv_status cli_tokenizer_for_model(const char *tok_path, const char *model_path, rwkv_tokenizer **out,
                                    rwkv_error *err) {
    if (tok_path) return rwkv_tokenizer_load(tok_path, out, err);
    if (model_path) {
        rwkv_status s = rwkv_tokenizer_from_model(model_path, out, err);
        if (s != RWKV_ERR_UNSUPPORTED) return s; /* loaded, or a file that cannot be read */
    }
    return rwkv_tokenizer_new_bytes(out, err);
}
