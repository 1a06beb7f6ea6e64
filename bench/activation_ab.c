/* activation_ab: decode time with int8 and with float32 activations
 * (kernels/dot_int8.h) compared token by token. The two modes alternate
 * every token in one process on one model and state, so a busy machine
 * slows both alike; prints the median wall time and process CPU time per
 * token of each mode and their ratios. CPU time leaves out the time the
 * process waited for a core, so on a loaded machine it shows what the
 * kernels cost better than the wall time does (for one thread; for more it
 * adds the threads' times up).
 *
 *   activation_ab MODEL [THREADS] [TOKENS_PER_MODE]
 *
 * Switches the mode through the library's internal kernel header (the only
 * bench program that does). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/kernels.h"
#include "rwkv.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: activation_ab MODEL [THREADS] [TOKENS_PER_MODE]\n");
        return 2;
    }
    const int threads = argc > 2 ? atoi(argv[2]) : 1, n = argc > 3 ? atoi(argv[3]) : 40;
    rwkv_error err;
    rwkv_model *m;
    rwkv_state *st;
    if (n < 1 || rwkv_model_load(argv[1], &m, &err) != RWKV_OK || rwkv_state_new(m, &st, &err) != RWKV_OK) {
        fprintf(stderr, "activation_ab: %s\n", n < 1 ? "TOKENS_PER_MODE must be >= 1" : err.message);
        return 1;
    }
    rwkv_model_set_threads(m, threads);
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    float *logits = malloc(sizeof(float) * (size_t)info.n_vocab);
    double *wall[2] = {malloc(sizeof(double) * (size_t)n), malloc(sizeof(double) * (size_t)n)};
    double *cpu[2] = {malloc(sizeof(double) * (size_t)n), malloc(sizeof(double) * (size_t)n)};
    for (int i = 0; i < 8; i++) rwkv_eval(m, st, i % info.n_vocab, logits, &err); /* warm-up */
    for (int i = 0; i < 2 * n; i++) {
        const int mode = i & 1; /* 0: f32, 1: int8 */
        kernels_set_int8_activations(mode);
        const double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        if (rwkv_eval(m, st, (int)((i * 7919L) % info.n_vocab), logits, &err) != RWKV_OK) {
            fprintf(stderr, "activation_ab: %s\n", err.message);
            return 1;
        }
        wall[mode][i / 2] = clock_s(CLOCK_MONOTONIC) - w0;
        cpu[mode][i / 2] = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    const double w32 = median(wall[0], n), w8 = median(wall[1], n), c32 = median(cpu[0], n), c8 = median(cpu[1], n);
    printf("%s, %d thread%s: f32 %.3f ms (cpu %.3f) | int8 %.3f ms (cpu %.3f) | f32/int8 wall %.2f cpu %.2f\n", argv[1],
           threads, threads == 1 ? "" : "s", 1e3 * w32, 1e3 * c32, 1e3 * w8, 1e3 * c8, w32 / w8, c32 / c8);
    for (int i = 0; i < 2; i++) free(wall[i]), free(cpu[i]);
    free(logits);
    rwkv_state_free(st);
    rwkv_model_free(m);
    return 0;
}
