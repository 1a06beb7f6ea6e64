/* The RWKV-5.2 / RWKV-6 WKV of inference (kernels/wkv5.c) continuing each
 * stream's float32 state, laid out as the RWKV-7 one (wkv7_state.cu): a warp
 * per (stream, head, R rows), the rows in the lanes' registers, the next tokens'
 * inputs loaded while the current ones are computed. */
#include "cuda/rwkv_infer.cuh"

/* E = state columns per lane: ceil(N / 32), a power of two up to CUDA_WKV_MAX_HEAD / 32;
 * R = state rows per warp (wkv_by_shape): the rows of one head share r, k, w */
template <int E, int R>
struct wkv5_in {
    float r[E], k[E], w[E], v[R];
};

template <int E, int R>
__device__ __forceinline__ void wkv5_load(wkv5_in<E, R> *in, const float *r, const float *k, const float *w,
                                          const float *v, size_t o, size_t ow, int i0, int lane, int N) {
#pragma unroll
    for (int q = 0; q < E; q++) {
        const int j = lane + 32 * q;
        const bool on = j < N;
        in->r[q] = on ? r[o + j] : 0.0f, in->k[q] = on ? k[o + j] : 0.0f, in->w[q] = on ? w[ow + j] : 0.0f;
    }
#pragma unroll
    for (int m = 0; m < R; m++) in->v[m] = v[o + i0 + m];
}

/* Tokens per group: a token's output is a warp sum that no later token needs,
 * so the GROUP x R sums of a group are taken side by side (their shuffles
 * overlap) after its state updates, which are all a token waits on. With
 * four rows a warp the rows give that overlap, and a group is one token. */
template <int R>
struct wkv5_group {
    static constexpr int GROUP = 4 / R;
};

template <int E, int R>
__global__ void wkv5_state_kernel(float *const *states, size_t off, int per, int H, int N, const float *r,
                                  const float *k, const float *v, const float *w, size_t w_stride, const float *u,
                                  float *y) {
    constexpr int GROUP = wkv5_group<R>::GROUP;
    cuda_let_dependents_start();
    const int row0 = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32) * R, lane = threadIdx.x & 31;
    if (row0 >= H * N) return;
    const int stream = blockIdx.y, h = row0 / N, i0 = row0 % N, A = H * N;
    float *st = states[stream] + off + (size_t)row0 * N;
    float s[R][E], uq[E];
#pragma unroll
    for (int m = 0; m < R; m++) wkv_row_load<E>(s[m], st + (size_t)m * N, lane, N);
    wkv_row_load<E>(uq, u + h * N, lane, N);
    cuda_wait_for_prior_grids(); /* launched early: the state and the bonus (no earlier kernel of the pass writes them) are read first */
    const size_t first_row = (size_t)stream * per, first = first_row * A + (size_t)h * N;
    wkv5_in<E, R> cur[GROUP], next[GROUP];
    const auto load_group = [&](wkv5_in<E, R> *g, int t0) {
#pragma unroll
        for (int g_t = 0; g_t < GROUP; g_t++)
            if (t0 + g_t < per)
                wkv5_load(&g[g_t], r, k, w, v, first + (size_t)(t0 + g_t) * A,
                          (first_row + t0 + g_t) * w_stride + (size_t)h * N, i0, lane, N);
    };
    load_group(cur, 0);
    for (int t0 = 0; t0 < per; t0 += GROUP) {
        if (t0 + GROUP < per) load_group(next, t0 + GROUP);
        float acc[GROUP * R]; /* token g_t, row m at g_t * R + m */
#pragma unroll
        for (int g_t = 0; g_t < GROUP; g_t++)
#pragma unroll
            for (int m = 0; m < R; m++) {
                float sum = 0.0f;
                if (t0 + g_t < per) {
#pragma unroll
                    for (int q = 0; q < E; q++) {
                        const float kv = cur[g_t].k[q] * cur[g_t].v[m];
                        sum += cur[g_t].r[q] * (s[m][q] + uq[q] * kv);
                        s[m][q] = cur[g_t].w[q] * s[m][q] + kv;
                    }
                }
                acc[g_t * R + m] = sum;
            }
        warp_sums<GROUP * R>(acc);
#pragma unroll
        for (int g_t = 0; g_t < GROUP; g_t++)
            if (lane < R && t0 + g_t < per)
                y[first + (size_t)(t0 + g_t) * A + i0 + lane] = wkv_pick<R>(acc + g_t * R, lane);
#pragma unroll
        for (int g_t = 0; g_t < GROUP; g_t++) cur[g_t] = next[g_t];
    }
#pragma unroll
    for (int m = 0; m < R; m++) wkv_row_store<E>(st + (size_t)m * N, s[m], lane, N);
}

void cuda_wkv5_state(const infer_rows *rows, size_t off, int H, int N, const float *r, const float *k,
                     const float *v, const float *w, size_t w_stride, const float *u, float *y, cudaStream_t s) {
    wkv_by_shape(N, [&](auto width, auto rows_per_warp) {
        constexpr int R = decltype(rows_per_warp)::value;
        const dim3 grid(wkv_blocks(H, N, R), rows->n_streams);
        cuda_launch_early(wkv5_state_kernel<decltype(width)::value, R>, grid, dim3(256), 0, s, rows->states, off,
                          rows->per, H, N, r, k, v, w, w_stride, u, y);
    });
}
