/* The RWKV-5.2 / RWKV-6 WKV of inference (kernels/wkv5.c) continuing each
 * stream's float32 state, laid out as the RWKV-7 one (wkv7_state.cu): a warp
 * per (stream, head, row), the row in the lanes' registers, the next tokens'
 * inputs loaded while the current ones are computed. */
#include "cuda/rwkv_infer.cuh"

/* E = state columns per lane: ceil(N / 32), a power of two up to CUDA_WKV_MAX_HEAD / 32 */
template <int E>
struct wkv5_in {
    float r[E], k[E], w[E], v;
};

template <int E>
__device__ __forceinline__ void wkv5_load(wkv5_in<E> *in, const float *r, const float *k, const float *w,
                                          const float *v, size_t o, size_t ow, int i, int lane, int N) {
#pragma unroll
    for (int q = 0; q < E; q++) {
        const int j = lane + 32 * q;
        const bool on = j < N;
        in->r[q] = on ? r[o + j] : 0.0f, in->k[q] = on ? k[o + j] : 0.0f, in->w[q] = on ? w[ow + j] : 0.0f;
    }
    in->v = v[o + i];
}

/* Tokens per group: a token's output is a warp sum that no later token needs,
 * so the sums of a group are taken side by side (their shuffles overlap)
 * after its state updates, which are all a token waits on. */
enum { GROUP = 4 };

template <int E>
__global__ void wkv5_state_kernel(float *const *states, size_t off, int per, int H, int N, const float *r,
                                  const float *k, const float *v, const float *w, size_t w_stride, const float *u,
                                  float *y) {
    const int row = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32), lane = threadIdx.x & 31;
    if (row >= H * N) return;
    const int stream = blockIdx.y, h = row / N, i = row % N, A = H * N;
    float *st = states[stream] + off + (size_t)row * N;
    float s[E], uq[E];
    wkv_row_load<E>(s, st, lane, N);
    wkv_row_load<E>(uq, u + h * N, lane, N);
    const size_t row0 = (size_t)stream * per, first = row0 * A + (size_t)h * N;
    wkv5_in<E> cur[GROUP], next[GROUP];
    const auto load_group = [&](wkv5_in<E> *g, int t0) {
#pragma unroll
        for (int m = 0; m < GROUP; m++)
            if (t0 + m < per)
                wkv5_load(&g[m], r, k, w, v, first + (size_t)(t0 + m) * A, (row0 + t0 + m) * w_stride + (size_t)h * N,
                          i, lane, N);
    };
    load_group(cur, 0);
    for (int t0 = 0; t0 < per; t0 += GROUP) {
        if (t0 + GROUP < per) load_group(next, t0 + GROUP);
        float acc[GROUP];
#pragma unroll
        for (int m = 0; m < GROUP; m++) {
            acc[m] = 0.0f;
            if (t0 + m >= per) continue;
#pragma unroll
            for (int q = 0; q < E; q++) {
                const float kv = cur[m].k[q] * cur[m].v;
                acc[m] += cur[m].r[q] * (s[q] + uq[q] * kv);
                s[q] = cur[m].w[q] * s[q] + kv;
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
#pragma unroll
            for (int m = 0; m < GROUP; m++) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
#pragma unroll
        for (int m = 0; m < GROUP; m++)
            if (lane == 0 && t0 + m < per) y[first + (size_t)(t0 + m) * A + i] = acc[m];
#pragma unroll
        for (int m = 0; m < GROUP; m++) cur[m] = next[m];
    }
    wkv_row_store<E>(st, s, lane, N);
}

void cuda_wkv5_state(const infer_rows *rows, size_t off, int H, int N, const float *r, const float *k,
                     const float *v, const float *w, size_t w_stride, const float *u, float *y, cudaStream_t s) {
    const dim3 grid(wkv_blocks(H, N), rows->n_streams);
    wkv_by_width(N, [&](auto width) {
        wkv5_state_kernel<decltype(width)::value><<<grid, 256, 0, s>>>(
            rows->states, off, rows->per, H, N, r, k, v, w, w_stride, u, y);
    });
}
