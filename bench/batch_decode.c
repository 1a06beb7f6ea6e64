/* batch_decode: what one decode step costs as the batch grows. Feeds one
 * token to B states with rwkv_eval_batch for each B given, and one token
 * to one state with rwkv_eval, round after round in turn (so that other
 * work on the machine weighs on every configuration alike), and reports
 * per configuration the median time of a step (with the fastest and slowest
 * round), tokens per second over all streams, and how much a step costs and
 * how much more it decodes than rwkv_eval.
 *
 *   batch_decode MODEL [--threads T] [--batches 1,8,32,64] [--rounds R] [--steps S] [--no-pack]
 *
 * The model is loaded as `rwkv serve` loads it, with its f32/f16/bf16 matrices
 * packed once (rwkv_load_options.pack_weights); --no-pack leaves them as
 * stored (every product of more than one row then packs its weights).
 * Uses only the public API (rwkv.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rwkv.h"

#define MAX_CONFIGS 16

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Seconds per step of S steps: B == 0 is rwkv_eval on states[0]. */
static double time_steps(rwkv_model *m, rwkv_state **states, int B, int S, int *tokens, float *logits,
                         int n_vocab, rwkv_error *err) {
    double t0 = now_s();
    for (int s = 0; s < S; s++) {
        rwkv_status st = B == 0 ? rwkv_eval(m, states[0], tokens[0], logits, err)
                                : rwkv_eval_batch(m, states, tokens, (size_t)B, logits, err);
        if (st != RWKV_OK) return -1;
        for (int i = 0; i < (B ? B : 1); i++) tokens[i] = (tokens[i] * 31 + 7 + i) % n_vocab;
    }
    return (now_s() - t0) / S;
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    for (char *end; *s && n < max; s = *end ? end + 1 : end) {
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096 || (*end && *end != ',')) return -1;
        out[n++] = (int)v;
    }
    return n;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int threads = 0, rounds = 5, steps = 4, batches[MAX_CONFIGS], n_b = 4, pack = 1;
    memcpy(batches, (int[]){1, 8, 32, 64}, 4 * sizeof(int));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-pack")) pack = 0;
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) n_b = parse_list(argv[++i], batches, MAX_CONFIGS - 1);
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else n_b = -1;
    }
    if (!path || n_b < 1 || rounds < 1 || rounds > 1000 || steps < 1) {
        fprintf(stderr, "usage: batch_decode MODEL [--threads T] [--batches 1,8,32,64] [--rounds R] [--steps S] "
                        "[--no-pack]\n");
        return 2;
    }
    rwkv_error err;
    rwkv_model *m;
    if (rwkv_model_load_ex(path, &(rwkv_load_options){.pack_weights = pack}, &m, &err) != RWKV_OK) {
        fprintf(stderr, "batch_decode: %s\n", err.message);
        return 1;
    }
    rwkv_model_set_threads(m, threads);
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    int max_b = 1;
    for (int i = 0; i < n_b; i++) max_b = batches[i] > max_b ? batches[i] : max_b;
    rwkv_state **states = calloc((size_t)max_b, sizeof *states);
    int *tokens = calloc((size_t)max_b, sizeof *tokens);
    float *logits = malloc(sizeof(float) * (size_t)max_b * (size_t)info.n_vocab);
    double *t = malloc(sizeof(double) * (size_t)(n_b + 1) * (size_t)rounds);
    int ok = states && tokens && logits && t;
    for (int i = 0; ok && i < max_b; i++) ok = rwkv_state_new(m, &states[i], &err) == RWKV_OK;
    /* one warm-up round, then the measured ones; config 0 is rwkv_eval */
    for (int r = -1; ok && r < rounds; r++)
        for (int c = 0; ok && c <= n_b; c++) {
            double s = time_steps(m, states, c ? batches[c - 1] : 0, steps, tokens, logits, info.n_vocab, &err);
            ok = s >= 0;
            if (r >= 0) t[c * rounds + r] = s;
        }
    if (!ok) {
        fprintf(stderr, "batch_decode: %s\n", err.message);
        return 1;
    }
    printf("# %s: RWKV-%s, %d layers x %d, vocab %d, %s%s; threads %d (0: all cores); median of %d rounds of %d "
           "steps\n", path, info.version, info.n_layer, info.n_embd, info.n_vocab, info.dtype,
           pack ? ", packed once" : "", threads, rounds, steps);
    printf("| decode | ms per step (min-max) | tokens/s | step cost / rwkv_eval | tokens/s / rwkv_eval |\n");
    printf("|---|---:|---:|---:|---:|\n");
    double base = 0;
    for (int c = 0; c <= n_b; c++) {
        double *row = t + (size_t)c * rounds;
        qsort(row, (size_t)rounds, sizeof *row, cmp_double);
        double med = row[rounds / 2];
        int B = c ? batches[c - 1] : 1;
        if (c == 0) base = med;
        char name[32];
        snprintf(name, sizeof name, c ? "rwkv_eval_batch B=%d" : "rwkv_eval", B);
        printf("| %s | %.2f (%.2f-%.2f) | %.1f | %.2f | %.2f |\n", name, 1e3 * med, 1e3 * row[0],
               1e3 * row[rounds - 1], B / med, med / base, B / med * base);
    }
    for (int i = 0; i < max_b; i++) rwkv_state_free(states[i]);
    free(states), free(tokens), free(logits), free(t);
    rwkv_model_free(m);
    return 0;
}
