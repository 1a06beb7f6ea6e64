/* context_cost: the cost of generating token after token as the context
 * grows, for an RWKV-4 model (recurrent state) or the GPT baseline (KV
 * cache). Generates --max-ctx tokens greedily from one token and reports,
 * every --every tokens: the decode time per token (median and mean over the
 * last --window tokens), the cumulative generation time, the state or KV
 * cache bytes and the process RSS.
 *
 *   context_cost --arch rwkv4|gpt [--model FILE | --layers L --embd C [--ffn F] [--heads H]
 *                [--vocab V] [--seed S]] --max-ctx N [--every K] [--window W] [--threads T]
 *                [--out FILE]
 *
 * Without --model a freshly initialised model of the given shape is written
 * to a temporary file and loaded (decode time does not depend on the weights'
 * values); a GPT then gets --max-ctx positions. Output: '#' comment lines
 * (model, threads), then a header line and tab-separated rows.
 * Uses only the public API (rwkv.h, rwkv_train.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rwkv.h"
#include "rwkv_train.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long size = 0, res = 0;
    int ok = fscanf(f, "%ld %ld", &size, &res) == 2;
    fclose(f);
    return ok ? res * sysconf(_SC_PAGESIZE) : -1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(FILE *f) {
    fprintf(f, "usage: context_cost --arch rwkv4|gpt [--model FILE | --layers L --embd C [--ffn F] [--heads H]\n"
               "                    [--vocab V] [--seed S]] --max-ctx N [--every K] [--window W] [--threads T]\n"
               "                    [--out FILE]\n");
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

int main(int argc, char **argv) {
    const char *arch = NULL, *model_path = NULL, *out_path = NULL;
    long layers = 4, embd = 256, ffn = 0, heads = 0, vocab = 256, seed = 1, max_ctx = 16384, every = 256,
         window = 64, threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "context_cost: %s expects a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        long *num = NULL;
        if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--layers")) num = &layers;
        else if (!strcmp(a, "--embd")) num = &embd;
        else if (!strcmp(a, "--ffn")) num = &ffn;
        else if (!strcmp(a, "--heads")) num = &heads;
        else if (!strcmp(a, "--vocab")) num = &vocab;
        else if (!strcmp(a, "--seed")) num = &seed;
        else if (!strcmp(a, "--max-ctx")) num = &max_ctx;
        else if (!strcmp(a, "--every")) num = &every;
        else if (!strcmp(a, "--window")) num = &window;
        else if (!strcmp(a, "--threads")) num = &threads;
        else {
            fprintf(stderr, "context_cost: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (num) {
            char *end;
            errno = 0;
            *num = strtol(v, &end, 10);
            if (errno || *end || *num < 0 || *num > (1L << 30)) {
                fprintf(stderr, "context_cost: %s expects a non-negative integer, got '%s'\n", a, v);
                return 2;
            }
        }
    }
    if (!arch || (strcmp(arch, "rwkv4") && strcmp(arch, "gpt"))) {
        fprintf(stderr, "context_cost: --arch rwkv4 or --arch gpt is required\n");
        return 2;
    }
    if (max_ctx < 2 || every < 1 || window < 1) {
        fprintf(stderr, "context_cost: --max-ctx must be >= 2, --every and --window >= 1\n");
        return 2;
    }
    rwkv_error err;
    char tmp[512] = "";
    if (!model_path) {
        const char *dir = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/context_cost_%ld_%s.safetensors", dir && *dir ? dir : "/tmp", (long)getpid(),
                 arch);
        rwkv_init_options io = rwkv_init_options_default();
        io.arch = arch;
        io.n_layer = (int)layers;
        io.n_embd = (int)embd;
        io.n_ffn = (int)ffn;
        io.n_vocab = (int)vocab;
        io.n_head = (int)heads;
        io.n_ctx = (int)max_ctx;
        io.seed = (uint64_t)seed;
        if (rwkv_init_checkpoint(&io, tmp, &err) != RWKV_OK) {
            fprintf(stderr, "context_cost: %s\n", err.message);
            return 1;
        }
        model_path = tmp;
    }
    rwkv_model *m = NULL;
    rwkv_state *st = NULL;
    int V = 0;
    int64_t n_params = 0, n_params_pos = 0;
    char desc[256];
    rwkv_status s = rwkv_model_load(model_path, &m, &err);
    if (s == RWKV_OK) s = rwkv_state_new(m, &st, &err);
    if (s == RWKV_OK) {
        rwkv_model_set_threads(m, (int)threads);
        rwkv_model_info mi;
        rwkv_model_get_info(m, &mi);
        V = mi.n_vocab;
        n_params = mi.n_params;
        n_params_pos = mi.n_params_pos;
        if (mi.arch == RWKV_ARCH_GPT)
            snprintf(desc, sizeof desc, "gpt %d layers x %d, %d heads, ffn %d, vocab %d, n_ctx %d", mi.n_layer,
                     mi.n_embd, mi.n_head, mi.n_ffn, mi.n_vocab, mi.n_ctx);
        else
            snprintf(desc, sizeof desc, "rwkv%s %d layers x %d, ffn %d, vocab %d", mi.version, mi.n_layer,
                     mi.n_embd, mi.n_ffn, mi.n_vocab);
        if (mi.n_ctx && mi.n_ctx < max_ctx) {
            fprintf(stderr, "context_cost: %s has %d positions, fewer than --max-ctx %ld\n", model_path, mi.n_ctx,
                    max_ctx);
            s = RWKV_ERR_ARG;
            err.message[0] = '\0';
        }
    }
    if (tmp[0]) unlink(tmp);
    if (s != RWKV_OK) {
        if (err.message[0]) fprintf(stderr, "context_cost: %s\n", err.message);
        rwkv_state_free(st);
        rwkv_model_free(m);
        return 1;
    }
    FILE *out = out_path ? fopen(out_path, "w") : stdout;
    if (!out) {
        fprintf(stderr, "context_cost: %s: %s\n", out_path, strerror(errno));
        return 1;
    }
    float *logits = malloc(sizeof(float) * (size_t)V);
    double *times = malloc(sizeof(double) * (size_t)max_ctx), *sorted = malloc(sizeof(double) * (size_t)window);
    if (!logits || !times || !sorted) {
        fprintf(stderr, "context_cost: out of memory\n");
        return 1;
    }
    fprintf(out, "# model: %s\n# parameters: %lld (position table: %lld)\n# threads: %ld\n", desc,
            (long long)n_params, (long long)n_params_pos, threads);
    fprintf(out, "# ctx\tms_per_token_median\tms_per_token_mean\tcumulative_s\tstate_bytes\tcache_alloc_bytes\trss_bytes\n");
    const long rss0 = rss_bytes();
    double total = 0;
    int token = 0;
    for (long t = 0; t < max_ctx && s == RWKV_OK; t++) {
        double t0 = now_s();
        s = rwkv_eval(m, st, token, logits, &err);
        token = argmax(logits, V); /* greedy: part of generating */
        double dt = now_s() - t0;
        times[t] = dt;
        total += dt;
        long n = t + 1;
        if (n % every == 0 || n == max_ctx || n == 1) {
            long w = n < window ? n : window;
            double mean = 0;
            for (long i = 0; i < w; i++) {
                sorted[i] = times[n - w + i];
                mean += sorted[i];
            }
            qsort(sorted, (size_t)w, sizeof *sorted, cmp_double);
            double med = w % 2 ? sorted[w / 2] : 0.5 * (sorted[w / 2 - 1] + sorted[w / 2]);
            size_t state_b = 0, alloc_b = 0;
            rwkv_state_memory(st, &state_b, &alloc_b);
            fprintf(out, "%ld\t%.5f\t%.5f\t%.5f\t%zu\t%zu\t%ld\n", n, 1e3 * med, 1e3 * mean / (double)w, total, state_b,
                    alloc_b, rss_bytes());
            fflush(out);
        }
    }
    if (s != RWKV_OK) fprintf(stderr, "context_cost: %s\n", err.message);
    fprintf(out, "# rss before the first token: %ld bytes\n", rss0);
    if (out != stdout) fclose(out);
    free(logits);
    free(times);
    free(sorted);
    rwkv_state_free(st);
    rwkv_model_free(m);
    return s == RWKV_OK ? 0 : 1;
}
