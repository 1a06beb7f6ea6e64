/* Deterministic sums over rows, per column: the shape of every vector
 * parameter's gradient (layer norm weight/bias, token-shift mix). The rows
 * are cut into at most COLSUM_CHUNKS chunks; a block sums 32 columns of one
 * chunk (8 row lanes, each in row order, then the lanes in order) into a
 * partial, and a second kernel adds the partials in chunk order (in double)
 * into the gradient. No atomics: the same bits on every run.
 *
 * A term functor F has `static constexpr int n_out` and
 * `__device__ void operator()(int row, int col, float *out) const`. */
#ifndef RWKV_CUDA_COLSUM_CUH
#define RWKV_CUDA_COLSUM_CUH

#include "cuda/common.cuh"

enum { COLSUM_CHUNKS = 64, COLSUM_LANES = 8, COLSUM_MAX_OUT = 3 };

template <class F>
__global__ void colsum_partial_kernel(F f, int N, int C, int rows_per_chunk, float *partial) {
    constexpr int K = F::n_out;
    __shared__ float sh[COLSUM_LANES][K][33];
    const int col = blockIdx.x * 32 + threadIdx.x;
    const int r0 = blockIdx.y * rows_per_chunk;
    const int r1 = min(N, r0 + rows_per_chunk);
    float acc[K];
#pragma unroll
    for (int j = 0; j < K; j++) acc[j] = 0.0f;
    if (col < C)
#pragma unroll 4 /* several rows' loads in flight: the loop is bound by memory latency */
        for (int r = r0 + threadIdx.y; r < r1; r += COLSUM_LANES) {
            float o[K];
            f(r, col, o);
#pragma unroll
            for (int j = 0; j < K; j++) acc[j] += o[j];
        }
#pragma unroll
    for (int j = 0; j < K; j++) sh[threadIdx.y][j][threadIdx.x] = acc[j];
    __syncthreads();
    if (threadIdx.y == 0 && col < C) {
#pragma unroll
        for (int j = 0; j < K; j++) {
            float s = 0.0f;
            for (int y = 0; y < COLSUM_LANES; y++) s += sh[y][j][threadIdx.x];
            partial[((size_t)blockIdx.y * K + j) * C + col] = s;
        }
    }
}

struct colsum_dst {
    float *p[COLSUM_MAX_OUT];
};

__global__ static void colsum_finish_kernel(const float *partial, int chunks, int C, int n_out,
                                            colsum_dst dst) {
    const int col = blockIdx.x * blockDim.x + threadIdx.x, j = blockIdx.y;
    if (col >= C) return;
    double s = 0.0;
    for (int c = 0; c < chunks; c++) s += partial[((size_t)c * n_out + j) * C + col];
    dst.p[j][col] += (float)s;
}

/* dst.p[j][col] += Σ_rows f(row, col)[j]; `partial` holds
 * cuda_colsum_scratch(C, F::n_out) floats. */
template <class F>
static void colsum(const F &f, int N, int C, colsum_dst dst, float *partial, cudaStream_t stream) {
    const int rows_per_chunk = (N + COLSUM_CHUNKS - 1) / COLSUM_CHUNKS;
    const int chunks = (N + rows_per_chunk - 1) / rows_per_chunk;
    colsum_partial_kernel<F><<<dim3((C + 31) / 32, chunks), dim3(32, COLSUM_LANES), 0, stream>>>(
        f, N, C, rows_per_chunk, partial);
    colsum_finish_kernel<<<dim3((C + 255) / 256, F::n_out), 256, 0, stream>>>(partial, chunks, C,
                                                                               F::n_out, dst);
}

#endif
