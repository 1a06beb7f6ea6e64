/* The RWKV-5.2 / RWKV-6 state update (kernels/kernels_heads.h): one row
 * S[h][i][.] at a time, all T tokens, so rows can go to different threads
 * and the result does not depend on how many there are.
 *
 * The dot product keeps WKV_LANES independent partial sums (combined in a
 * fixed order), so it is not one serial chain of dependent additions and the
 * compiler keeps the lanes in one vector register. The same source is also
 * compiled for AVX2 (8 lanes in one register), used unless the scalar
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

WKV_INLINE void wkv5_row_body(int T, int A, int N, int h, int i, const float *restrict r, const float *restrict k,
                              const float *restrict v, const float *restrict w, size_t w_stride,
                              const float *restrict u, float *restrict s, float *restrict y) {
    const size_t base = (size_t)h * (size_t)N;
    const float *restrict uh = u + base;
    const int nv = N - N % WKV_LANES;
    for (int t = 0; t < T; t++) {
        const size_t o = (size_t)t * (size_t)A + base;
        const float *restrict rt = r + o, *restrict kt = k + o, *restrict wt = w + (size_t)t * w_stride + base;
        const float vi = v[o + (size_t)i];
        float p[WKV_LANES] = {0};
        for (int j = 0; j < nv; j += WKV_LANES)
            for (int q = 0; q < WKV_LANES; q++) {
                const float kv = kt[j + q] * vi;
                p[q] += rt[j + q] * (s[j + q] + uh[j + q] * kv);
                s[j + q] = wt[j + q] * s[j + q] + kv;
            }
        float acc = lanes_sum(p);
        for (int j = nv; j < N; j++) {
            const float kv = kt[j] * vi;
            acc += rt[j] * (s[j] + uh[j] * kv);
            s[j] = wt[j] * s[j] + kv;
        }
        y[o + (size_t)i] = acc;
    }
}

typedef void (*wkv5_row_fn)(int T, int A, int N, int h, int i, const float *r, const float *k, const float *v,
                            const float *w, size_t w_stride, const float *u, float *s, float *y);

static void wkv5_row(int T, int A, int N, int h, int i, const float *r, const float *k, const float *v,
                     const float *w, size_t w_stride, const float *u, float *s, float *y) {
    wkv5_row_body(T, A, N, h, i, r, k, v, w, w_stride, u, s, y);
}

#ifdef WKV_X86
__attribute__((target("avx2"))) static void wkv5_row_avx2(int T, int A, int N, int h, int i, const float *r,
                                                          const float *k, const float *v, const float *w,
                                                          size_t w_stride, const float *u, float *s, float *y) {
    wkv5_row_body(T, A, N, h, i, r, k, v, w, w_stride, u, s, y);
}
#endif

/* The AVX2 build of the rows whenever the active kernels are not the scalar
 * reference (every SIMD variant of kernels/cpu.c implies AVX2). */
static wkv5_row_fn pick_row(void) {
#ifdef WKV_X86
    if (strcmp(kernels_active()->name, "scalar") != 0) return wkv5_row_avx2;
#endif
    return wkv5_row;
}

typedef struct wkv5_job {
    wkv5_row_fn row_fn;
    int T, A, N;
    const float *r, *k, *v, *w, *u;
    size_t w_stride;
    float *S, *y;
} wkv5_job;

static void wkv5_job_row(void *p, int row) {
    const wkv5_job *j = p;
    j->row_fn(j->T, j->A, j->N, row / j->N, row % j->N, j->r, j->k, j->v, j->w, j->w_stride, j->u,
              j->S + (size_t)row * j->N, j->y);
}

void wkv5_forward(int T, int H, int N, const float *r, const float *k, const float *v, const float *w,
                  size_t w_stride, const float *u, float *S, float *y, int n_threads) {
    wkv5_job j = {pick_row(), T, H * N, N, r, k, v, w, u, w_stride, S, y};
    /* per row and token: N multiply-adds into the state row */
    parallel_rows(n_threads, H * N, (size_t)T * N, wkv5_job_row, &j);
}
