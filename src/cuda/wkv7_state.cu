/* The RWKV-7 WKV of inference (kernels/wkv7.c, the generalised delta rule)
 * continuing each stream's float32 state. Row i of a head's state only ever
 * reads row i (kernels/wkv.h), so every (stream, head, row) is a warp of its
 * own: the row sits in the lanes' registers (lane holds columns lane,
 * lane + 32, ...), the per-token sums are warp sums, and no warp waits on
 * another. The stream's tokens go through in order, the next token's inputs
 * loaded while the current one is computed. */
#include "cuda/rwkv_infer.cuh"

/* E = state columns per lane: ceil(N / 32), a power of two up to CUDA_WKV_MAX_HEAD / 32 */
template <int E>
struct wkv7_in {
    float r[E], w[E], k[E], a[E], b[E], v;
};

template <int E>
__device__ __forceinline__ void wkv7_load(wkv7_in<E> *in, const float *r, const float *w, const float *k,
                                          const float *a, const float *b, const float *v, size_t o, int i,
                                          int lane, int N) {
#pragma unroll
    for (int q = 0; q < E; q++) {
        const int j = lane + 32 * q;
        const bool on = j < N;
        in->r[q] = on ? r[o + j] : 0.0f, in->w[q] = on ? w[o + j] : 0.0f, in->k[q] = on ? k[o + j] : 0.0f;
        in->a[q] = on ? a[o + j] : 0.0f, in->b[q] = on ? b[o + j] : 0.0f;
    }
    in->v = v[o + i];
}

template <int E>
__global__ void wkv7_state_kernel(float *const *states, size_t off, int per, int H, int N, const float *r,
                                  const float *w, const float *k, const float *v, const float *a, const float *b,
                                  float *y) {
    const int row = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32), lane = threadIdx.x & 31;
    if (row >= H * N) return;
    const int stream = blockIdx.y, h = row / N, i = row % N, A = H * N;
    float *st = states[stream] + off + (size_t)row * N;
    float s[E];
    wkv_row_load<E>(s, st, lane, N);
    const size_t first = (size_t)stream * per * A + (size_t)h * N;
    wkv7_in<E> cur, next;
    wkv7_load(&cur, r, w, k, a, b, v, first, i, lane, N);
    for (int t = 0; t < per; t++) {
        const size_t o = first + (size_t)t * A;
        if (t + 1 < per) wkv7_load(&next, r, w, k, a, b, v, o + A, i, lane, N);
        float sa = 0.0f, acc = 0.0f;
#pragma unroll
        for (int q = 0; q < E; q++) sa += s[q] * cur.a[q];
        sa = warp_sum(sa);
#pragma unroll
        for (int q = 0; q < E; q++) {
            s[q] = s[q] * cur.w[q] + sa * cur.b[q] + cur.v * cur.k[q];
            acc += s[q] * cur.r[q];
        }
        acc = warp_sum(acc);
        if (lane == 0) y[o + i] = acc;
        cur = next;
    }
    wkv_row_store<E>(st, s, lane, N);
}

void cuda_wkv7_state(const infer_rows *rows, size_t off, int H, int N, const float *r, const float *w,
                     const float *k, const float *v, const float *a, const float *b, float *y, cudaStream_t s) {
    const dim3 grid(wkv_blocks(H, N), rows->n_streams);
    wkv_by_width(N, [&](auto width) {
        wkv7_state_kernel<decltype(width)::value><<<grid, 256, 0, s>>>(
            rows->states, off, rows->per, H, N, r, w, k, v, a, b, y);
    });
}
