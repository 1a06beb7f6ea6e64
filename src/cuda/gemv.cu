/* Matrix products of a few rows (decode): Y[r] (+)= W X[r] with one warp per
 * output, the weight row read once for all rows in 16-byte packs. Where a
 * product is bound by reading the weights this reaches the bandwidth that
 * a general GEMM of one column does not, reads float32 inputs directly (no
 * bf16 copy of them first) and sums in float32 in a fixed order, so a row's
 * result does not depend on the other rows. */
#include "cuda/common.cuh"

/* W elements of weight type T at a time (the pack when in and W allow it). */
template <typename T, int E>
__global__ void gemv_kernel(const T *W, int out, int in, const float *X, int ldx, int rows, float *Y, int accumulate) {
    const int o = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32), lane = threadIdx.x & 31;
    if (o >= out) return;
    const T *w = W + (size_t)o * in;
    float acc[CUDA_GEMV_ROWS];
#pragma unroll
    for (int r = 0; r < CUDA_GEMV_ROWS; r++) acc[r] = 0.0f;
    for (int i = lane * E; i < in; i += 32 * E) {
        float wv[E];
        load_w<E>(wv, w + i);
#pragma unroll
        for (int r = 0; r < CUDA_GEMV_ROWS; r++)
            if (r < rows) {
                const float *x = X + (size_t)r * ldx + i;
#pragma unroll
                for (int e = 0; e < E; e++) acc[r] += wv[e] * x[e];
            }
    }
#pragma unroll
    for (int r = 0; r < CUDA_GEMV_ROWS; r++) {
        if (r >= rows) break;
        const float s = warp_sum(acc[r]);
        if (lane == 0) Y[(size_t)r * out + o] = accumulate ? Y[(size_t)r * out + o] + s : s;
    }
}

template <typename T>
static void gemv(const T *W, int out, int in, const float *X, int ldx, int rows, float *Y, int accumulate,
                 cudaStream_t stream) {
    const unsigned blocks = (unsigned)(((size_t)out * 32 + 255) / 256);
    if (in % PACK(T) == 0 && aligned16(W))
        gemv_kernel<T, PACK(T)><<<blocks, 256, 0, stream>>>(W, out, in, X, ldx, rows, Y, accumulate);
    else
        gemv_kernel<T, 1><<<blocks, 256, 0, stream>>>(W, out, in, X, ldx, rows, Y, accumulate);
}

void cuda_gemv(cuda_dtype wt, const void *d_W, int out, int in, const float *d_X, int ldx, int rows, float *d_Y,
               int accumulate, cuda_stream stream) {
    if (wt == CUDA_BF16) gemv((const bf16 *)d_W, out, in, d_X, ldx, rows, d_Y, accumulate, stream);
    else gemv((const float *)d_W, out, in, d_X, ldx, rows, d_Y, accumulate, stream);
}
