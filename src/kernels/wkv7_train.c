/* The RWKV-7 WKV for training: the forward over a batch of sequences, each
 * from the zero state, and its exact backward (equations in kernels/wkv.h
 * and docs/training-math.md).
 *
 * Sequential, not chunked. The chunked ("WY") form of the delta rule turns a
 * chunk of steps into matrix products, but it needs the cumulative product
 * of the decays inside a chunk and the inverse of a triangular matrix built
 * from a and b; both divide by products of decays that reach e^-(0.6·T) and
 * lose float32 precision (or overflow) exactly where the decay is fast. The
 * sequential recurrence only ever multiplies by w_j in (0, 1] and adds rank-1
 * terms, so every intermediate stays of the size of the state itself: it is
 * stable in float32 for any decay and any sequence length, and on a CPU a
 * step is a few passes of N multiply-adds over each state row, the same work
 * as a chunked product.
 *
 * Memory: the forward keeps the state at the start of every WKV7_CHUNK steps
 * (B·H·ceil(T/CHUNK)·N² floats); the backward, one (b, h) pair at a time,
 * recomputes the states of one chunk from its checkpoint and walks it
 * backwards. The forward's rows are those of the inference kernel
 * (kernel_ops.wkv7_row), so training and inference compute the same y. */
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/wkv.h"

size_t wkv7_checkpoint_floats(int B, int T, int H, int N) {
    const size_t chunks = ((size_t)T + WKV7_CHUNK - 1) / WKV7_CHUNK;
    return (size_t)B * (size_t)H * chunks * (size_t)N * (size_t)N;
}

size_t wkv7_scratch_floats(int N, int n_threads) {
    const size_t per_job = (WKV7_CHUNK + 2) * (size_t)N * (size_t)N + 2 * (size_t)N;
    return (size_t)(n_threads > 0 ? n_threads : 1) * per_job;
}

typedef struct wkv7_batch {
    wkv7_row_fn row_fn;
    int B, T, H, N, jobs;
    const float *r, *w, *k, *v, *a, *b, *dy;
    float *ckpt, *y;
    float *dr, *dw, *dk, *dv, *da, *db;
    float *scratch;
} wkv7_batch;

/* The state checkpoint of chunk c of pair (b, h). */
static float *checkpoint_of(const wkv7_batch *j, int b, int h, int c) {
    const size_t chunks = ((size_t)j->T + WKV7_CHUNK - 1) / WKV7_CHUNK, NN = (size_t)j->N * j->N;
    return j->ckpt + (((size_t)b * j->H + h) * chunks + (size_t)c) * NN;
}

/* Pair p = (b, h): T steps from the zero state, saving the state before
 * every chunk. */
static void forward_pair(const wkv7_batch *j, int p, float *S) {
    const int b = p / j->H, h = p % j->H, N = j->N, A = j->H * j->N;
    memset(S, 0, sizeof(float) * (size_t)N * N);
    for (int t0 = 0, c = 0; t0 < j->T; t0 += WKV7_CHUNK, c++) {
        const int len = j->T - t0 < WKV7_CHUNK ? j->T - t0 : WKV7_CHUNK;
        memcpy(checkpoint_of(j, b, h, c), S, sizeof(float) * (size_t)N * N);
        const size_t o = ((size_t)b * j->T + (size_t)t0) * (size_t)A;
        for (int i = 0; i < N; i++)
            j->row_fn(len, A, N, h, i, j->r + o, j->w + o, j->k + o, j->v + o, j->a + o, j->b + o,
                      S + (size_t)i * N, j->y + o);
    }
}

/* One step t of pair (b, h) backwards. Sp = S_{t-1}, Sc = S_t, dS = dL/dS_t
 * on entry and dL/dS_{t-1} on return; sa is scratch [N].
 *   dS   += dy r^T                 dr_j = sum_i S_t[i][j] dy_i
 *   dv_i  = sum_j dS_ij k_j        dk_j = sum_i dS_ij v_i
 *   dw_j  = sum_i dS_ij S_{t-1}[i][j]
 *   db_j  = sum_i dS_ij sa_i       (sa = S_{t-1} a)
 *   dsa_i = sum_j dS_ij b_j        da_j = sum_i dsa_i S_{t-1}[i][j]
 *   dS_{t-1}[i][j] = dS_ij w_j + dsa_i a_j */
static void backward_step(const wkv7_batch *j, size_t o, const float *restrict Sp, const float *restrict Sc,
                          float *restrict dS, float *restrict dsa) {
    const int N = j->N;
    const float *restrict r = j->r + o, *restrict w = j->w + o, *restrict k = j->k + o, *restrict v = j->v + o;
    const float *restrict a = j->a + o, *restrict b = j->b + o, *restrict dy = j->dy + o;
    float *restrict dr = j->dr + o, *restrict dw = j->dw + o, *restrict dk = j->dk + o, *restrict dv = j->dv + o;
    float *restrict da = j->da + o, *restrict db = j->db + o;
    for (int q = 0; q < N; q++) dr[q] = dw[q] = dk[q] = da[q] = db[q] = 0.0f;
    /* the sums over q run as SIMD reductions: a fixed order for a given build */
    for (int i = 0; i < N; i++) {
        const float *restrict sp = Sp + (size_t)i * N, *restrict sc = Sc + (size_t)i * N;
        float *restrict ds = dS + (size_t)i * N;
        const float gy = dy[i], vi = v[i];
        float sa = 0.0f, gv = 0.0f, gsa = 0.0f;
#pragma omp simd reduction(+ : sa)
        for (int q = 0; q < N; q++) sa += sp[q] * a[q];
#pragma omp simd reduction(+ : gv, gsa)
        for (int q = 0; q < N; q++) {
            dr[q] += sc[q] * gy;
            const float d = ds[q] + gy * r[q];
            ds[q] = d;
            gv += d * k[q];
            dk[q] += d * vi;
            dw[q] += d * sp[q];
            db[q] += d * sa;
            gsa += d * b[q];
        }
        dv[i] = gv;
        dsa[i] = gsa;
    }
    for (int i = 0; i < N; i++) {
        const float *restrict sp = Sp + (size_t)i * N;
        float *restrict ds = dS + (size_t)i * N;
        const float gsa = dsa[i];
#pragma omp simd
        for (int q = 0; q < N; q++) {
            da[q] += gsa * sp[q];
            ds[q] = ds[q] * w[q] + gsa * a[q];
        }
    }
}

/* Pair p = (b, h) backwards, chunk by chunk from the last: the chunk's
 * states are recomputed from its checkpoint, one step at a time. */
static void backward_pair(const wkv7_batch *j, int p, float *mem) {
    const int b = p / j->H, h = p % j->H, N = j->N, A = j->H * j->N;
    const size_t NN = (size_t)N * N;
    float *dS = mem, *states = mem + NN, *dsa = states + (WKV7_CHUNK + 1) * NN, *ytmp = dsa + N;
    memset(dS, 0, sizeof(float) * NN);
    const int chunks = (j->T + WKV7_CHUNK - 1) / WKV7_CHUNK;
    for (int c = chunks - 1; c >= 0; c--) {
        const int t0 = c * WKV7_CHUNK, len = j->T - t0 < WKV7_CHUNK ? j->T - t0 : WKV7_CHUNK;
        memcpy(states, checkpoint_of(j, b, h, c), sizeof(float) * NN);
        for (int s = 0; s < len; s++) { /* states[s + 1] = S after step t0 + s */
            const size_t o = ((size_t)b * j->T + (size_t)(t0 + s)) * (size_t)A + (size_t)h * N;
            float *next = states + (size_t)(s + 1) * NN;
            memcpy(next, states + (size_t)s * NN, sizeof(float) * NN);
            for (int i = 0; i < N; i++)
                j->row_fn(1, A, N, 0, i, j->r + o, j->w + o, j->k + o, j->v + o, j->a + o, j->b + o,
                          next + (size_t)i * N, ytmp);
        }
        for (int s = len - 1; s >= 0; s--) {
            const size_t o = ((size_t)b * j->T + (size_t)(t0 + s)) * (size_t)A + (size_t)h * N;
            backward_step(j, o, states + (size_t)s * NN, states + (size_t)(s + 1) * NN, dS, dsa);
        }
    }
}

static void forward_job(void *ctx, int job) {
    const wkv7_batch *j = ctx;
    float *S = j->scratch + (size_t)job * wkv7_scratch_floats(j->N, 1);
    for (int p = job; p < j->B * j->H; p += j->jobs) forward_pair(j, p, S);
}

static void backward_job(void *ctx, int job) {
    const wkv7_batch *j = ctx;
    float *mem = j->scratch + (size_t)job * wkv7_scratch_floats(j->N, 1);
    for (int p = job; p < j->B * j->H; p += j->jobs) backward_pair(j, p, mem);
}

/* Each job handles the pairs job, job + jobs, ...; a pair's results do not
 * depend on which job ran it, so any thread count gives the same bits. */
static int jobs_for(int B, int H, int n_threads) {
    const int pairs = B * H, nt = n_threads > 0 ? n_threads : 1;
    return pairs < nt ? pairs : nt;
}

void wkv7_forward_batch(int B, int T, int H, int N, const float *r, const float *w, const float *k, const float *v,
                        const float *a, const float *b, float *ckpt, float *y, float *scratch, int n_threads) {
    wkv7_batch j = {kernels_active()->wkv7_row, B, T, H, N, jobs_for(B, H, n_threads), r, w, k, v, a, b, NULL,
                    ckpt, y, NULL, NULL, NULL, NULL, NULL, NULL, scratch};
    parallel_for(j.jobs, j.jobs, forward_job, &j);
}

void wkv7_backward(int B, int T, int H, int N, const float *r, const float *w, const float *k, const float *v,
                   const float *a, const float *b, const float *ckpt, const float *dy, float *dr, float *dw,
                   float *dk, float *dv, float *da, float *db, float *scratch, int n_threads) {
    wkv7_batch j = {kernels_active()->wkv7_row, B, T, H, N, jobs_for(B, H, n_threads), r, w, k, v, a, b, dy,
                    (float *)ckpt, NULL, dr, dw, dk, dv, da, db, scratch};
    parallel_for(j.jobs, j.jobs, backward_job, &j);
}
