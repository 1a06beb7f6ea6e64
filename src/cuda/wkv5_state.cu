/* The RWKV-5.2 / RWKV-6 WKV of inference (kernels/wkv5.c) continuing each
 * stream's float32 state, laid out as the RWKV-7 one (wkv7_state.cu): a warp
 * per (stream, head, row), the row in the lanes' registers, the next token's
 * inputs loaded while the current one is computed. */
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
    wkv5_in<E> cur, next;
    wkv5_load(&cur, r, k, w, v, first, row0 * w_stride + (size_t)h * N, i, lane, N);
    for (int t = 0; t < per; t++) {
        const size_t o = first + (size_t)t * A;
        if (t + 1 < per) wkv5_load(&next, r, k, w, v, o + A, (row0 + t + 1) * w_stride + (size_t)h * N, i, lane, N);
        float acc = 0.0f;
#pragma unroll
        for (int q = 0; q < E; q++) {
            const float kv = cur.k[q] * cur.v;
            acc += cur.r[q] * (s[q] + uq[q] * kv);
            s[q] = cur.w[q] * s[q] + kv;
        }
        acc = warp_sum(acc);
        if (lane == 0) y[o + i] = acc;
        cur = next;
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
