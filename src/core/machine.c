/* FMA peak measurement: each thread runs NACC independent accumulator chains
 * acc = acc * a + b (enough chains to cover the FMA latency times the number
 * of FMA pipes), for a fixed iteration count calibrated to ~0.1 s; peak =
 * 2 * lanes * NACC * iterations * threads / wall time, best of seven runs of
 * ~30 ms (short runs, many of them: on a shared machine the best one is the
 * one no other process interrupted). */
#include "core/machine.h"

#include "core/huge_pages.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MACHINE_X86 1
#include <immintrin.h>
#endif

#define NACC 12

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int machine_cores(void) {
    int n = omp_get_num_procs();
    if (n < 1) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    return n;
}

static volatile float machine_sink;

/* Twelve accumulators in named variables so they stay in registers. */
#define ACC_DECL(T, SET)                                                                           \
    T c0 = SET(0.f), c1 = SET(1.f), c2 = SET(2.f), c3 = SET(3.f), c4 = SET(4.f), c5 = SET(5.f),    \
      c6 = SET(6.f), c7 = SET(7.f), c8 = SET(8.f), c9 = SET(9.f), c10 = SET(10.f), c11 = SET(11.f);
#define ACC_STEP(FMA)                                                                              \
    {                                                                                              \
        c0 = FMA(c0, a, b); c1 = FMA(c1, a, b); c2 = FMA(c2, a, b); c3 = FMA(c3, a, b);            \
        c4 = FMA(c4, a, b); c5 = FMA(c5, a, b); c6 = FMA(c6, a, b); c7 = FMA(c7, a, b);            \
        c8 = FMA(c8, a, b); c9 = FMA(c9, a, b); c10 = FMA(c10, a, b); c11 = FMA(c11, a, b);        \
    }
#define ACC_SUM(ADD)                                                                               \
    ADD(ADD(ADD(ADD(c0, c1), ADD(c2, c3)), ADD(ADD(c4, c5), ADD(c6, c7))),                         \
        ADD(ADD(c8, c9), ADD(c10, c11)))

/* Each kernel runs `iters` iterations of NACC FMAs and returns the lanes per FMA. */
#ifdef MACHINE_X86
__attribute__((target("avx512f"))) static int fma_avx512(long iters) {
    __m512 a = _mm512_set1_ps(0.9999999f), b = _mm512_set1_ps(1e-7f);
    ACC_DECL(__m512, _mm512_set1_ps)
    for (long it = 0; it < iters; it++) ACC_STEP(_mm512_fmadd_ps)
    machine_sink = _mm512_reduce_add_ps(ACC_SUM(_mm512_add_ps));
    return 16;
}

__attribute__((target("avx2,fma"))) static int fma_avx2(long iters) {
    __m256 a = _mm256_set1_ps(0.9999999f), b = _mm256_set1_ps(1e-7f);
    ACC_DECL(__m256, _mm256_set1_ps)
    for (long it = 0; it < iters; it++) ACC_STEP(_mm256_fmadd_ps)
    __m256 s = ACC_SUM(_mm256_add_ps);
    float out[8];
    _mm256_storeu_ps(out, s);
    machine_sink = out[0] + out[7];
    return 8;
}
#endif

static inline float scalar_set(float x) { return x; }
static inline float scalar_madd(float x, float a, float b) { return x * a + b; }
static inline float scalar_add(float x, float y) { return x + y; }

static int fma_scalar(long iters) {
    float a = 0.9999999f, b = 1e-7f;
    ACC_DECL(float, scalar_set)
    for (long it = 0; it < iters; it++) ACC_STEP(scalar_madd)
    machine_sink = ACC_SUM(scalar_add);
    return 1;
}

typedef int (*fma_kernel)(long iters);

static fma_kernel pick(const char **name) {
#ifdef MACHINE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        *name = "avx512f";
        return fma_avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *name = "avx2+fma";
        return fma_avx2;
    }
#endif
    *name = "scalar";
    return fma_scalar;
}

const char *machine_fma_isa(void) {
    const char *name;
    pick(&name);
    return name;
}

double machine_fma_peak_gflops(int threads) {
    const char *name;
    fma_kernel k = pick(&name);
    if (threads <= 0) threads = machine_cores();
    /* calibrate on one thread: grow the count until a run takes >= 20 ms */
    long iters = 1 << 12;
    int lanes = 1;
    for (;;) {
        double t0 = now_s();
        lanes = k(iters);
        double dt = now_s() - t0;
        if (dt >= 0.02 || iters > (1L << 40)) {
            double per = dt > 0 ? dt / (double)iters : 1e-9;
            iters = (long)(0.03 / per) + 1;
            break;
        }
        iters *= 4;
    }
    double best = 0;
    for (int rep = 0; rep < 7; rep++) {
        double t0 = now_s();
#pragma omp parallel num_threads(threads)
        k(iters);
        double dt = now_s() - t0;
        double flops = 2.0 * lanes * NACC * (double)iters * threads;
        if (dt > 0 && flops / dt > best) best = flops / dt;
    }
    return best > 0 ? best * 1e-9 : 1.0;
}

/* ---- read bandwidth ------------------------------------------------------ */

/* Each kernel sums n floats (n a multiple of 64) with several accumulators,
 * asking for each 4 KB page 8 KB before it reads it: the hardware prefetchers
 * start again at every 4 KB boundary, and without that touch a pass read
 * 15-25% less, below what the decode kernels that touch their pages read
 * (docs/perf.md, change 52). The probe is meant as the most the machine
 * gives, not a typical loop. */
#define PROBE_PAGE_AHEAD 8192
#define PROBE_TOUCH(p, i)                                                                                              \
    do {                                                                                                               \
        if (((i) & 1023) == 0) __builtin_prefetch((const char *)((p) + (i)) + PROBE_PAGE_AHEAD, 0, 3);                  \
    } while (0)
#ifdef MACHINE_X86
__attribute__((target("avx512f"))) static float sum_avx512(const float *p, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 64) {
        PROBE_TOUCH(p, i);
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

__attribute__((target("avx2"))) static float sum_avx2(const float *p, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (size_t i = 0; i < n; i += 64) {
        PROBE_TOUCH(p, i);
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
        a4 = _mm256_add_ps(a4, _mm256_load_ps(p + i + 32));
        a5 = _mm256_add_ps(a5, _mm256_load_ps(p + i + 40));
        a6 = _mm256_add_ps(a6, _mm256_load_ps(p + i + 48));
        a7 = _mm256_add_ps(a7, _mm256_load_ps(p + i + 56));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}
#endif

static float sum_scalar(const float *p, size_t n) {
    float a[8] = {0};
    for (size_t i = 0; i < n; i += 8) {
        PROBE_TOUCH(p, i);
        for (int j = 0; j < 8; j++) a[j] += p[i + j];
    }
    return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

typedef float (*sum_kernel)(const float *p, size_t n);

static sum_kernel pick_sum(void) {
#ifdef MACHINE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return sum_avx512;
    if (__builtin_cpu_supports("avx2")) return sum_avx2;
#endif
    return sum_scalar;
}

struct machine_read_buffer {
    float *buf; /* in huge pages where the kernel gives them, as a model's copies are */
    size_t mapped, per; /* bytes mapped; floats per thread */
    int threads;
    sum_kernel k;
};

machine_read_buffer *machine_read_buffer_new(int threads, long long bytes) {
    if (threads <= 0) threads = machine_cores();
    if (bytes <= 0) bytes = 512LL << 20;
    size_t chunk = 64, n = (size_t)bytes / sizeof(float);
    size_t per = n / (size_t)threads / chunk * chunk;
    if (per == 0) return NULL;
    machine_read_buffer *b = malloc(sizeof *b);
    size_t mapped = 0;
    float *buf = huge_pages_map(per * (size_t)threads * sizeof(float), &mapped);
    if (!b || !buf) {
        free(b);
        huge_pages_unmap(buf, mapped);
        return NULL;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; t++) /* first touch by the thread that reads it */
        for (size_t i = 0; i < per; i++) buf[(size_t)t * per + i] = (float)(i & 7) * 0.125f;
    b->buf = buf;
    b->mapped = mapped;
    b->per = per;
    b->threads = threads;
    b->k = pick_sum();
    return b;
}

double machine_read_pass_gbps(machine_read_buffer *b) {
    float total = 0;
    double t0 = now_s();
#pragma omp parallel num_threads(b->threads) reduction(+ : total)
    total += b->k(b->buf + (size_t)omp_get_thread_num() * b->per, b->per);
    double dt = now_s() - t0;
    machine_sink = total;
    return dt > 0 ? (double)(b->per * (size_t)b->threads * sizeof(float)) / dt * 1e-9 : 0;
}

void machine_read_buffer_free(machine_read_buffer *b) {
    if (!b) return;
    huge_pages_unmap(b->buf, b->mapped);
    free(b);
}

double machine_read_gbps(int threads, long long bytes, int passes) {
    if (passes <= 0) passes = 5;
    machine_read_buffer *b = machine_read_buffer_new(threads, bytes);
    if (!b) return 0;
    double best = 0;
    for (int rep = 0; rep < passes; rep++) {
        double g = machine_read_pass_gbps(b);
        if (g > best) best = g;
    }
    machine_read_buffer_free(b);
    return best;
}
