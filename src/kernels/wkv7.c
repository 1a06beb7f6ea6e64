/* The RWKV-7 delta-rule state update (kernels/kernels_heads.h): row by row
 * as in kernels/wkv5.c. Row i of S only ever reads row i (S a is a dot
 * product within the row), so the rows are independent.
 *
 * The dot products keep WKV_LANES independent partial sums (combined in a
 * fixed order), so they are not one serial chain of dependent additions and
 * the compiler keeps the lanes in one vector register. The same source is
 * also compiled for AVX2 (8 lanes in one register), used unless the scalar
 * kernels are selected (RWKV_KERNELS=scalar); both do the same operations in
 * the same order (no contraction into FMA in ISO C mode). */
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_heads.h"

enum { WKV_LANES = 8 };

#if defined(__GNUC__)
#define WKV_INLINE static inline __attribute__((always_inline))
#else
#define WKV_INLINE static inline
#endif
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define WKV_X86 1
#endif

WKV_INLINE float lanes_sum(const float *p) {
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

WKV_INLINE void wkv7_row_body(int T, int A, int N, int h, int i, const float *restrict r, const float *restrict w,
                              const float *restrict k, const float *restrict v, const float *restrict a,
                              const float *restrict b, float *restrict s, float *restrict y) {
    const size_t base = (size_t)h * (size_t)N;
    const int nv = N - N % WKV_LANES;
    for (int t = 0; t < T; t++) {
        const size_t o = (size_t)t * (size_t)A + base;
        const float *restrict rt = r + o, *restrict wt = w + o, *restrict kt = k + o, *restrict at = a + o,
                              *restrict bt = b + o;
        const float vi = v[o + (size_t)i];
        float p[WKV_LANES] = {0};
        for (int j = 0; j < nv; j += WKV_LANES)
            for (int q = 0; q < WKV_LANES; q++) p[q] += s[j + q] * at[j + q];
        float sa = lanes_sum(p);
        for (int j = nv; j < N; j++) sa += s[j] * at[j];
        for (int q = 0; q < WKV_LANES; q++) p[q] = 0.0f;
        for (int j = 0; j < nv; j += WKV_LANES)
            for (int q = 0; q < WKV_LANES; q++) {
                const float sj = s[j + q] * wt[j + q] + sa * bt[j + q] + vi * kt[j + q];
                s[j + q] = sj;
                p[q] += sj * rt[j + q];
            }
        float acc = lanes_sum(p);
        for (int j = nv; j < N; j++) {
            const float sj = s[j] * wt[j] + sa * bt[j] + vi * kt[j];
            s[j] = sj;
            acc += sj * rt[j];
        }
        y[o + (size_t)i] = acc;
    }
}

typedef void (*wkv7_row_fn)(int T, int A, int N, int h, int i, const float *r, const float *w, const float *k,
                            const float *v, const float *a, const float *b, float *s, float *y);

static void wkv7_row(int T, int A, int N, int h, int i, const float *r, const float *w, const float *k,
                     const float *v, const float *a, const float *b, float *s, float *y) {
    wkv7_row_body(T, A, N, h, i, r, w, k, v, a, b, s, y);
}

#ifdef WKV_X86
__attribute__((target("avx2"))) static void wkv7_row_avx2(int T, int A, int N, int h, int i, const float *r,
                                                          const float *w, const float *k, const float *v,
                                                          const float *a, const float *b, float *s, float *y) {
    wkv7_row_body(T, A, N, h, i, r, w, k, v, a, b, s, y);
}
#endif

/* The AVX2 build of the rows whenever the active kernels are not the scalar
 * reference (every SIMD variant of kernels/cpu.c implies AVX2). */
static wkv7_row_fn pick_row(void) {
#ifdef WKV_X86
    if (strcmp(kernels_active()->name, "scalar") != 0) return wkv7_row_avx2;
#endif
    return wkv7_row;
}

typedef struct wkv7_job {
    wkv7_row_fn row_fn;
    int T, A, N;
    const float *r, *w, *k, *v, *a, *b;
    float *S, *y;
} wkv7_job;

static void wkv7_job_row(void *p, int row) {
    const wkv7_job *j = p;
    j->row_fn(j->T, j->A, j->N, row / j->N, row % j->N, j->r, j->w, j->k, j->v, j->a, j->b,
              j->S + (size_t)row * j->N, j->y);
}

void wkv7_forward(int T, int H, int N, const float *r, const float *w, const float *k, const float *v,
                  const float *a, const float *b, float *S, float *y, int n_threads) {
    wkv7_job j = {pick_row(), T, H * N, N, r, w, k, v, a, b, S, y};
    /* per row and token: a few passes of N multiply-adds over the state row */
    parallel_rows(n_threads, H * N, (size_t)T * N, wkv7_job_row, &j);
}
