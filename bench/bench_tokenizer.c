/* Tokenizer throughput on one core: encode (and decode) MB/s of the NeoX and
 * World tokenizers on testvectors/tokenizer/mixed.txt repeated to ~4 MB.
 *
 *   build/bench/bench_tokenizer [SHARED_DIR]     (default: ../shared or $RWKV_SHARED)
 *
 * Not a test: it prints numbers and exits 0 (1 when the files are missing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rwkv.h"
#include "rwkv_tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void bench(const char *label, const char *path, const char *text, size_t len) {
    rwkv_tokenizer *tok;
    rwkv_error err;
    double t0 = now();
    if (rwkv_tokenizer_load(path, &tok, &err)) {
        printf("%-6s load failed: %s\n", label, err.message);
        return;
    }
    double t_load = now() - t0;
    int *ids = NULL;
    size_t n = 0;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        rwkv_free(ids);
        t0 = now();
        if (rwkv_tokenize(tok, text, len, &ids, &n, &err)) {
            printf("%-6s tokenize failed: %s\n", label, err.message);
            rwkv_tokenizer_free(tok);
            return;
        }
        double t = now() - t0;
        if (t < best) best = t;
    }
    char *back;
    size_t blen;
    double best_dec = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        t0 = now();
        if (rwkv_detokenize(tok, ids, n, &back, &blen, &err)) {
            printf("%-6s detokenize failed: %s\n", label, err.message);
            break;
        }
        double t = now() - t0;
        if (t < best_dec) best_dec = t;
        rwkv_free(back);
    }
    printf("%-6s load %6.1f ms   encode %7.2f MB/s (%zu tokens, %.2f bytes/token)   decode %8.1f MB/s\n", label,
           1e3 * t_load, (double)len / best / 1e6, n, (double)len / (double)n, (double)len / best_dec / 1e6);
    rwkv_free(ids);
    rwkv_tokenizer_free(tok);
}

int main(int argc, char **argv) {
    const char *env = getenv("RWKV_SHARED");
    const char *shared = argc > 1 ? argv[1] : env && *env ? env : "../shared";
    char mixed[1024], neox[1024], world[1024];
    snprintf(mixed, sizeof mixed, "%s/testvectors/tokenizer/mixed.txt", shared);
    snprintf(neox, sizeof neox, "%s/reference/rwkv-cpp/20B_tokenizer.json", shared);
    snprintf(world, sizeof world, "%s/reference/rwkv-cpp/rwkv_vocab_v20230424.txt", shared);
    size_t len;
    char *one = read_all(mixed, &len);
    if (!one || len == 0) {
        fprintf(stderr, "bench_tokenizer: cannot read %s\n", mixed);
        return 1;
    }
    size_t copies = (4u << 20) / len + 1, total = copies * len;
    char *text = malloc(total);
    if (!text) return 1;
    for (size_t i = 0; i < copies; i++) memcpy(text + i * len, one, len);
    free(one);
    printf("tokenizer benchmark: mixed.txt x %zu = %.2f MB, one thread, best of 3\n", copies, (double)total / 1e6);
    bench("neox", neox, text, total);
    bench("world", world, text, total);
    bench("bytes", "bytes", text, total);
    free(text);
    return 0;
}
