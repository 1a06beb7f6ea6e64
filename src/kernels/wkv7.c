/* The RWKV-7 WKV, the generalised delta rule (equations in kernels/wkv.h):
 *     S_ij = S_ij w_j + (sum_l S_il a_l) b_j + v_i k_j,   y_i = sum_j S_ij r_j
 * row by row as in kernels/wkv5.c. Row i of S only ever reads row i (S a is
 * a dot product within the row), so the rows are independent. The same two
 * builds as there: the scalar reference and an AVX2 build of one source. */
#include <math.h>

#include "kernels/kernels.h"
#include "kernels/wkv.h"
#include "kernels/wkv_lanes.h"

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

void wkv7_row_scalar(int T, int A, int N, int h, int i, const float *r, const float *w, const float *k,
                     const float *v, const float *a, const float *b, float *s, float *y) {
    wkv7_row_body(T, A, N, h, i, r, w, k, v, a, b, s, y);
}

#ifdef WKV_X86
__attribute__((target("avx2"))) void wkv7_row_avx2(int T, int A, int N, int h, int i, const float *r,
                                                   const float *w, const float *k, const float *v, const float *a,
                                                   const float *b, float *s, float *y) {
    wkv7_row_body(T, A, N, h, i, r, w, k, v, a, b, s, y);
}
#endif

typedef struct wkv7_job {
    wkv7_row_fn row_fn;
    wkv7_block_fn block_fn;
    wkv7_pair_fn pair_fn;
    int T, A, N;
    const float *r, *w, *k, *v, *a, *b;
    float *S, *y;
} wkv7_job;

static void wkv7_job_row(void *p, int row) {
    const wkv7_job *j = p;
    j->row_fn(j->T, j->A, j->N, row / j->N, row % j->N, j->r, j->w, j->k, j->v, j->a, j->b,
              j->S + (size_t)row * j->N, j->y);
}

static void wkv7_job_block(void *p, int block) {
    const wkv7_job *j = p;
    const int row = block * WKV7_BLOCK_ROWS;
    j->block_fn(j->T, j->A, j->N, row / j->N, row % j->N, j->r, j->w, j->k, j->v, j->a, j->b,
                j->S + (size_t)row * j->N, j->y);
}

static void wkv7_job_pair(void *p, int pair) {
    const wkv7_job *j = p;
    const int row = 2 * pair;
    float *s = j->S + (size_t)row * j->N;
    j->pair_fn(j->A, j->N, row / j->N, row % j->N, j->r, j->w, j->k, j->v, j->a, j->b, s, s, j->y);
}

void wkv7_forward_with(const kernel_ops *ops, int T, int H, int N, const float *r, const float *w, const float *k,
                       const float *v, const float *a, const float *b, float *S, float *y, int n_threads) {
    wkv7_job j = {ops->wkv7_row, ops->wkv7_block, ops->wkv7_pair, T, H * N, N, r, w, k, v, a, b, S, y};
    /* per row and token: a few passes of N multiply-adds over the state row; the
     * blocks and pairs give the same bits, so which runs never changes a result */
    if (wkv7_block_fits(j.block_fn, T, N))
        parallel_rows(n_threads, H * N / WKV7_BLOCK_ROWS, (size_t)T * N * WKV7_BLOCK_ROWS, wkv7_job_block, &j);
    else if (wkv7_pair_fits(j.pair_fn, T, N))
        parallel_rows(n_threads, H * N / 2, 2 * (size_t)N, wkv7_job_pair, &j);
    else parallel_rows(n_threads, H * N, (size_t)T * N, wkv7_job_row, &j);
}

void wkv7_forward(int T, int H, int N, const float *r, const float *w, const float *k, const float *v,
                  const float *a, const float *b, float *S, float *y, int n_threads) {
    wkv7_forward_with(kernels_active(), T, H, N, r, w, k, v, a, b, S, y, n_threads);
}

void wkv7_forward_heads(int T, int H, int N, int h0, int h1, const float *r, const float *w, const float *k,
                        const float *v, const float *a, const float *b, float *S, float *y) {
    const kernel_ops *ops = kernels_active();
    wkv7_job j = {ops->wkv7_row, ops->wkv7_block, ops->wkv7_pair, T, H * N, N, r, w, k, v, a, b, S, y};
    if (wkv7_block_fits(j.block_fn, T, N))
        for (int block = h0 * N / WKV7_BLOCK_ROWS; block < h1 * N / WKV7_BLOCK_ROWS; block++) wkv7_job_block(&j, block);
    else if (wkv7_pair_fits(j.pair_fn, T, N))
        for (int pair = h0 * N / 2; pair < h1 * N / 2; pair++) wkv7_job_pair(&j, pair);
    else
        for (int row = h0 * N; row < h1 * N; row++) wkv7_job_row(&j, row);
}

void wkv7_prepare(const wkv7_prep *p, int A, int N) {
    float *sigw = p->sigw, *alpha = p->alpha, *a = p->a, *b = p->b, *k = p->k, *kappa_out = p->kappa;
    const float *k_raw = p->k_raw, *k_k = p->k_k, *k_a = p->k_a;
    /* the exponentials on the kernel variant's vectors (libm's, one call per
     * element, was 7% of a prompt); `omp simd` on the element-wise loops, whose
     * arrays the compiler could not prove apart (each element's bits as before) */
#pragma omp simd
    for (int i = 0; i < A; i++) sigw[i] += p->w0[i], alpha[i] += p->a0[i];
    sigmoid_inplace(sigw, (size_t)A);
    sigmoid_inplace(alpha, (size_t)A);
#pragma omp simd
    for (int i = 0; i < A; i++) p->decay[i] = sigw[i] * -WKV7_DECAY_SCALE;
    exp_inplace(p->decay, (size_t)A);
    if (p->v0) {
        float *gate = p->vgate, *v = p->v;
        const float *raw = p->v_raw, *first = p->v_first;
#pragma omp simd
        for (int i = 0; i < A; i++) gate[i] += p->v0[i];
        sigmoid_inplace(gate, (size_t)A);
#pragma omp simd
        for (int i = 0; i < A; i++) v[i] = raw[i] + (first[i] - raw[i]) * gate[i];
    }
    for (int c = 0; c < A; c += N) {
        float ss = 0.0f;
        for (int i = c; i < c + N; i++) {
            const float kk = k_raw[i] * k_k[i];
            a[i] = kk; /* k k_k until kappa replaces it */
            ss += kk * kk;
        }
        const float norm = sqrtf(ss), inv = 1.0f / (norm > WKV7_KK_EPS ? norm : WKV7_KK_EPS);
        if (p->knorm) p->knorm[c / N] = norm;
#pragma omp simd
        for (int i = c; i < c + N; i++) {
            const float kappa = a[i] * inv, al = alpha[i];
            if (kappa_out) kappa_out[i] = kappa;
            a[i] = -kappa;
            k[i] = k_raw[i] * (1.0f + (al - 1.0f) * k_a[i]);
            b[i] = kappa * al;
        }
    }
}
