/* The RWKV-7 delta-rule state update (kernels/kernels_heads.h): row by row
 * as in kernels/wkv5.c. Row i of S only ever reads row i (S a is a dot
 * product within the row), so the rows are independent. */
#include "kernels/kernels_heads.h"

enum { WKV_MIN_PARALLEL_WORK = 1 << 15 };

static void wkv7_row(int T, int A, int N, int h, int i, const float *r, const float *w, const float *k,
                     const float *v, const float *a, const float *b, float *s, float *y) {
    const size_t base = (size_t)h * (size_t)N;
    for (int t = 0; t < T; t++) {
        const size_t o = (size_t)t * (size_t)A + base;
        const float *rt = r + o, *wt = w + o, *kt = k + o, *at = a + o, *bt = b + o;
        const float vi = v[o + (size_t)i];
        float sa = 0.0f;
        for (int j = 0; j < N; j++) sa += s[j] * at[j];
        float acc = 0.0f;
        for (int j = 0; j < N; j++) {
            const float sj = s[j] * wt[j] + sa * bt[j] + vi * kt[j];
            s[j] = sj;
            acc += sj * rt[j];
        }
        y[o + (size_t)i] = acc;
    }
}

void wkv7_forward(int T, int H, int N, const float *r, const float *w, const float *k, const float *v,
                  const float *a, const float *b, float *S, float *y, int n_threads) {
    const int A = H * N, rows = H * N;
    const long work = (long)T * rows * N;
#pragma omp parallel for schedule(static) num_threads(n_threads) if (work >= WKV_MIN_PARALLEL_WORK && n_threads > 1)
    for (int row = 0; row < rows; row++)
        wkv7_row(T, A, N, row / N, row % N, r, w, k, v, a, b, S + (size_t)row * (size_t)N, y);
}
