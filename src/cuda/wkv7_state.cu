/* The RWKV-7 WKV of inference (kernels/wkv7.c, the generalised delta rule)
 * continuing each stream's float32 state. Row i of a head's state only ever
 * reads row i (kernels/wkv.h), so every (stream, head, R rows) is a warp of
 * its own: the rows sit in the lanes' registers (lane holds columns lane,
 * lane + 32, ...), the per-token sums are warp sums, and no warp waits on
 * another. The stream's tokens go through in order, the next token's inputs
 * loaded while the current one is computed. */
#include <cuda_pipeline.h>

#include "cuda/rwkv_infer.cuh"

/* E = state columns per lane: ceil(N / 32), a power of two up to CUDA_WKV_MAX_HEAD / 32;
 * R = state rows per warp (wkv_by_shape): the rows of one head share r, w, k, a, b */
template <int E, int R>
struct wkv7_in {
    float r[E], w[E], k[E], a[E], b[E], v[R];
};

template <int E, int R>
__device__ __forceinline__ void wkv7_load(wkv7_in<E, R> *in, const float *r, const float *w, const float *k,
                                          const float *a, const float *b, const float *v, size_t o, int i0,
                                          int lane, int N) {
#pragma unroll
    for (int q = 0; q < E; q++) {
        const int j = lane + 32 * q;
        const bool on = j < N;
        in->r[q] = on ? r[o + j] : 0.0f, in->w[q] = on ? w[o + j] : 0.0f, in->k[q] = on ? k[o + j] : 0.0f;
        in->a[q] = on ? a[o + j] : 0.0f, in->b[q] = on ? b[o + j] : 0.0f;
    }
#pragma unroll
    for (int m = 0; m < R; m++) in->v[m] = v[o + i0 + m];
}

template <int E, int R>
__global__ void wkv7_state_kernel(float *const *states, size_t off, int per, int H, int N, const float *r,
                                  const float *w, const float *k, const float *v, const float *a, const float *b,
                                  float *y) {
    const int row0 = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32) * R, lane = threadIdx.x & 31;
    if (row0 >= H * N) return;
    const int stream = blockIdx.y, h = row0 / N, i0 = row0 % N, A = H * N;
    float *st = states[stream] + off + (size_t)row0 * N;
    float s[R][E];
#pragma unroll
    for (int m = 0; m < R; m++) wkv_row_load<E>(s[m], st + (size_t)m * N, lane, N);
    const size_t first = (size_t)stream * per * A + (size_t)h * N;
    wkv7_in<E, R> cur, next;
    wkv7_load(&cur, r, w, k, a, b, v, first, i0, lane, N);
    for (int t = 0; t < per; t++) {
        const size_t o = first + (size_t)t * A;
        if (t + 1 < per) wkv7_load(&next, r, w, k, a, b, v, o + A, i0, lane, N);
        float sa[R], acc[R];
#pragma unroll
        for (int m = 0; m < R; m++) {
            sa[m] = 0.0f, acc[m] = 0.0f;
#pragma unroll
            for (int q = 0; q < E; q++) sa[m] += s[m][q] * cur.a[q];
        }
        warp_sums<R>(sa);
#pragma unroll
        for (int m = 0; m < R; m++)
#pragma unroll
            for (int q = 0; q < E; q++) {
                s[m][q] = s[m][q] * cur.w[q] + sa[m] * cur.b[q] + cur.v[m] * cur.k[q];
                acc[m] += s[m][q] * cur.r[q];
            }
        warp_sums<R>(acc);
        if (lane < R) y[o + i0 + lane] = wkv_pick<R>(acc, lane);
        cur = next;
    }
#pragma unroll
    for (int m = 0; m < R; m++) wkv_row_store<E>(st + (size_t)m * N, s[m], lane, N);
}

/* ---- long streams (prefill) ----------------------------------------------------
 * Heads of 64 take the chunked form (wkv7_chunk.cu) where it fits; other
 * heads, and passes it does not take, take this kernel.
 * A stream of many tokens is a chain of dependent steps, so what counts is
 * the latency of one step, which is mostly the count of dependent
 * instructions a thread issues for it. So a row is split over TPR = 16
 * threads (8 for heads of 32), each holding F float4 columns (column
 * j = 4 (c TPR + q) + e), and a block of SEQ_ROWS rows
 * shares the token's r, w, k, a, b, which are staged in shared memory a tile
 * of tokens at a time, the next tile copied in (cp.async) while the current
 * one is used. Only S a lies on the path from one token to the next; the
 * output S r is reduced one token late, beside the next token's S a, so its
 * shuffles add no latency. */
enum { SEQ_ROWS = 16, SEQ_TILE = 1024 /* floats of r, w, k, a, b per tile: TT * N */ };

template <int N>
struct seq_tile {
    static constexpr int F = N >= 64 ? N / 64 : 1; /* float4 columns per thread */
    static constexpr int TPR = N / (4 * F);         /* threads per state row */
    static constexpr int TT = SEQ_TILE / N;                 /* tokens per tile */
    static constexpr int TOKEN = 5 * N + SEQ_ROWS;          /* floats per token: r, w, k, a, b, the rows' v */
    static constexpr int FLOATS = TT * TOKEN;
};

/* Copies the tile of tokens [t0, t0 + TT) (those < per) into buf. */
template <int N>
__device__ __forceinline__ void seq_load_tile(float *buf, int t0, int per, size_t first, int A, int row0,
                                              const float *const *vecs, const float *v) {
    constexpr int Q = N / 4, PER_TOKEN = 5 * Q + SEQ_ROWS / 4;
    for (int idx = threadIdx.x; idx < seq_tile<N>::TT * PER_TOKEN; idx += blockDim.x) {
        const int tt = idx / PER_TOKEN, part = idx % PER_TOKEN;
        if (t0 + tt >= per) break;
        const size_t o = first + (size_t)(t0 + tt) * A;
        const float *src = part < 5 * Q ? vecs[part / Q] + o + (part % Q) * 4 : v + o + row0 + (part - 5 * Q) * 4;
        __pipeline_memcpy_async(buf + tt * seq_tile<N>::TOKEN + part * 4, src, 16);
    }
    __pipeline_commit();
}

template <int E>
__global__ void wkv7_seq_kernel(float *const *states, size_t off, int per, int H, const float *r, const float *w,
                                const float *k, const float *v, const float *a, const float *b, float *y) {
    constexpr int N = 32 * E, TT = seq_tile<N>::TT, F = seq_tile<N>::F, TPR = seq_tile<N>::TPR;
    extern __shared__ float4 smem4[];
    float *const tiles = (float *)smem4;
    const int A = H * N, h = blockIdx.x / (N / SEQ_ROWS), row0 = (blockIdx.x % (N / SEQ_ROWS)) * SEQ_ROWS;
    const int q = threadIdx.x % TPR, i = row0 + threadIdx.x / TPR;
    float *st = states[blockIdx.y] + off + ((size_t)h * N + i) * N;
    float4 s[F];
#pragma unroll
    for (int c = 0; c < F; c++) s[c] = *(const float4 *)(st + 4 * (c * TPR + q));
    const size_t first = (size_t)blockIdx.y * per * A + (size_t)h * N;
    const float *const vecs[5] = {r, w, k, a, b};
    const int n_tiles = (per + TT - 1) / TT;
    float pending = 0.0f; /* the unreduced output of token t_prev */
    int t_prev = -1;
    seq_load_tile<N>(tiles, 0, per, first, A, row0, vecs, v);
    for (int tile = 0; tile < n_tiles; tile++) {
        if (tile + 1 < n_tiles)
            seq_load_tile<N>(tiles + ((tile + 1) & 1) * seq_tile<N>::FLOATS, (tile + 1) * TT, per, first, A, row0,
                             vecs, v);
        else
            __pipeline_commit(); /* an empty group keeps the count of groups in flight uniform */
        __pipeline_wait_prior(1);
        __syncthreads();
        const float *tb = tiles + (tile & 1) * seq_tile<N>::FLOATS;
        const int count = per - tile * TT < TT ? per - tile * TT : TT;
#pragma unroll 2
        for (int tt = 0; tt < count; tt++, tb += seq_tile<N>::TOKEN) {
            const float4 *in = (const float4 *)tb; /* r, w, k, a, b: N / 4 float4 each */
            float sa0 = 0.0f, sa1 = 0.0f; /* two chains: the sum is on the path from one token to the next */
#pragma unroll
            for (int c = 0; c < F; c++) {
                const float4 av = in[3 * N / 4 + c * TPR + q];
                sa0 += s[c].x * av.x + s[c].y * av.y;
                sa1 += s[c].z * av.z + s[c].w * av.w;
            }
            /* this token's sum and the previous token's output reduced side by side */
            float sa = sa0 + sa1;
#pragma unroll
            for (int m = 1; m < TPR; m <<= 1) {
                sa += __shfl_xor_sync(0xffffffffu, sa, m);
                pending += __shfl_xor_sync(0xffffffffu, pending, m);
            }
            if (q == 0 && t_prev >= 0) y[first + (size_t)t_prev * A + i] = pending;
            const float vi = tb[5 * N + i - row0];
            float acc = 0.0f;
#pragma unroll
            for (int c = 0; c < F; c++) {
                const int j = c * TPR + q;
                acc += wkv7_step4(s[c], in[j], in[N / 4 + j], in[2 * N / 4 + j], in[4 * N / 4 + j], sa, vi);
            }
            pending = acc, t_prev = tile * TT + tt;
        }
        __syncthreads(); /* every thread is done with this buffer before the next load refills it */
    }
#pragma unroll
    for (int m = 1; m < TPR; m <<= 1) pending += __shfl_xor_sync(0xffffffffu, pending, m);
    if (q == 0) y[first + (size_t)t_prev * A + i] = pending;
#pragma unroll
    for (int c = 0; c < F; c++) *(float4 *)(st + 4 * (c * TPR + q)) = s[c];
}

/* The long-stream kernel takes heads of 32, 64, 128 or 256 channels with
 * 16-byte aligned arrays (every offset it reads is a multiple of 4 floats). */
static bool seq_fits(const infer_rows *rows, size_t off, int H, int N, const float *const *arrays, int n_arrays) {
    if (rows->per < 8 || (N != 32 && N != 64 && N != 128 && N != 256) || off % 4) return false;
    return wkv_aligned16(arrays, n_arrays) && (size_t)H * N % 4 == 0;
}

template <int E>
static void wkv7_seq_launch(const infer_rows *rows, size_t off, int H, const float *r, const float *w,
                            const float *k, const float *v, const float *a, const float *b, float *y, cudaStream_t s) {
    constexpr int N = 32 * E;
    const size_t bytes = 2 * sizeof(float) * seq_tile<N>::FLOATS; /* two tiles: under the 48 KiB default */
    const dim3 grid((unsigned)(H * (N / SEQ_ROWS)), (unsigned)rows->n_streams);
    wkv7_seq_kernel<E><<<grid, SEQ_ROWS * seq_tile<N>::TPR, bytes, s>>>(rows->states, off, rows->per, H, r, w, k,
                                                                         v, a, b, y);
}

void cuda_wkv7_state(const infer_rows *rows, size_t off, int H, int N, const float *r, const float *w,
                     const float *k, const float *v, const float *a, const float *b, float *y, cudaStream_t s) {
    const float *const arrays[] = {r, w, k, v, a, b, y};
    if (seq_fits(rows, off, H, N, arrays, 7)) {
        wkv_by_width(N, [&](auto width) {
            wkv7_seq_launch<decltype(width)::value>(rows, off, H, r, w, k, v, a, b, y, s);
        });
        return;
    }
    wkv_by_shape(N, [&](auto width, auto rows_per_warp) {
        constexpr int R = decltype(rows_per_warp)::value;
        const dim3 grid(wkv_blocks(H, N, R), rows->n_streams);
        wkv7_state_kernel<decltype(width)::value, R><<<grid, 256, 0, s>>>(rows->states, off, rows->per, H, N, r,
                                                                           w, k, v, a, b, y);
    });
}
