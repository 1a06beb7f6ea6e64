/* The RWKV-5.2 / RWKV-6 WKV (equations in kernels/wkv.h):
 *     y_i  = sum_j r_j (S_ij + u_j k_j v_i),   S_ij = w_j S_ij + k_j v_i
 * one row S[h][i][.] at a time, all T tokens, so rows can go to different
 * threads and the result does not depend on how many there are. The row
 * source is built twice: the scalar reference (kernels_scalar's slot) and an
 * AVX2 build (the AVX2 and AVX-512 tables' slot); see kernels/wkv_lanes.h
 * for why both give the same bits. */
#include "kernels/kernels.h"
#include "kernels/wkv.h"
#include "kernels/wkv_lanes.h"

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

void wkv5_row_scalar(int T, int A, int N, int h, int i, const float *r, const float *k, const float *v,
                     const float *w, size_t w_stride, const float *u, float *s, float *y) {
    wkv5_row_body(T, A, N, h, i, r, k, v, w, w_stride, u, s, y);
}

#ifdef WKV_X86
__attribute__((target("avx2"))) void wkv5_row_avx2(int T, int A, int N, int h, int i, const float *r,
                                                   const float *k, const float *v, const float *w, size_t w_stride,
                                                   const float *u, float *s, float *y) {
    wkv5_row_body(T, A, N, h, i, r, k, v, w, w_stride, u, s, y);
}
#endif

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

void wkv5_forward_with(const kernel_ops *ops, int T, int H, int N, const float *r, const float *k, const float *v,
                       const float *w, size_t w_stride, const float *u, float *S, float *y, int n_threads) {
    wkv5_job j = {ops->wkv5_row, T, H * N, N, r, k, v, w, u, w_stride, S, y};
    /* per row and token: N multiply-adds into the state row; each thread
     * keeps the same rows, so that at decode (one token a call) its share of
     * the state stays in its core's caches (docs/perf.md, change 48) */
    parallel_rows_pinned(n_threads, H * N, (size_t)T * N, wkv5_job_row, &j);
}

void wkv5_forward(int T, int H, int N, const float *r, const float *k, const float *v, const float *w,
                  size_t w_stride, const float *u, float *S, float *y, int n_threads) {
    wkv5_forward_with(kernels_active(), T, H, N, r, k, v, w, w_stride, u, S, y, n_threads);
}
