/* The RWKV-5.2 / RWKV-6 state update (kernels/kernels_heads.h): one row
 * S[h][i][.] at a time, all T tokens, so rows can go to different threads
 * and the result does not depend on how many there are. */
#include "kernels/kernels_heads.h"

/* Multiply-adds (T * rows * N) below which threading costs more than it saves. */
enum { WKV_MIN_PARALLEL_WORK = 1 << 15 };

static void wkv5_row(int T, int A, int N, int h, int i, const float *r, const float *k, const float *v,
                     const float *w, size_t w_stride, const float *u, float *s, float *y) {
    const size_t base = (size_t)h * (size_t)N;
    const float *uh = u + base;
    for (int t = 0; t < T; t++) {
        const size_t o = (size_t)t * (size_t)A + base;
        const float *rt = r + o, *kt = k + o, *wt = w + (size_t)t * w_stride + base;
        const float vi = v[o + (size_t)i];
        float acc = 0.0f;
        for (int j = 0; j < N; j++) {
            const float kv = kt[j] * vi;
            acc += rt[j] * (s[j] + uh[j] * kv);
            s[j] = wt[j] * s[j] + kv;
        }
        y[o + (size_t)i] = acc;
    }
}

void wkv5_forward(int T, int H, int N, const float *r, const float *k, const float *v, const float *w,
                  size_t w_stride, const float *u, float *S, float *y, int n_threads) {
    const int A = H * N, rows = H * N;
    const long work = (long)T * rows * N;
#pragma omp parallel for schedule(static) num_threads(n_threads) if (work >= WKV_MIN_PARALLEL_WORK && n_threads > 1)
    for (int row = 0; row < rows; row++)
        wkv5_row(T, A, N, row / N, row % N, r, k, v, w, w_stride, u, S + (size_t)row * (size_t)N, y);
}
