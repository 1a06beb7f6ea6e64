/* What the decode's layer norm + token shift computes, shared by its
 * launch (infer_ops.cu) and the streamed decode (streamed_decode.cu), so
 * both compute the same bits: a row's mean and 1/std summed over a block in
 * one fixed order, and the shift's mix of a channel. */
#ifndef RWKV_CUDA_LN_SHIFT_CUH
#define RWKV_CUDA_LN_SHIFT_CUH

#include "cuda/rwkv_infer.cuh"

template <int FORM>
__device__ __forceinline__ float shift_value(float cur, float prev, const float *mu, int ch) {
    if (FORM == SHIFT_DELTA) return prev - cur;
    const float w = mu[ch];
    return FORM == SHIFT_LERP ? cur + (prev - cur) * w : w * cur + (1.0f - w) * prev;
}

enum { LN_CHUNK_VALUES = 16 }; /* channels of a row a thread holds: rows of up to 4096 at 256 threads */

/* The mean and 1/std (eps 1e-5) of row xr of C floats, two passes, every
 * thread of the block calling; `part` holds 32 floats. The thread's first
 * LN_CHUNK_VALUES channels (threadIdx.x + e blockDim.x) are held in
 * registers, all their loads issued before the first use (a loop summing
 * straight from memory waited for each load before the next: 8.2 us a
 * launch at C = 2048, measured alone); the sums keep their order. */
__device__ __forceinline__ float2 ln_row_stats(const float *xr, int C, float *part) {
    float v[LN_CHUNK_VALUES], acc = 0.0f;
#pragma unroll
    for (int e = 0; e < LN_CHUNK_VALUES; e++) {
        const int ch = threadIdx.x + e * blockDim.x;
        v[e] = ch < C ? xr[ch] : 0.0f;
    }
#pragma unroll
    for (int e = 0; e < LN_CHUNK_VALUES; e++) acc += v[e];
    for (int ch = threadIdx.x + LN_CHUNK_VALUES * blockDim.x; ch < C; ch += blockDim.x) acc += xr[ch];
    const float mean = block_sum(acc, part) / C;
    acc = 0.0f;
#pragma unroll
    for (int e = 0; e < LN_CHUNK_VALUES; e++)
        if (threadIdx.x + e * blockDim.x < C) acc += (v[e] - mean) * (v[e] - mean);
    for (int ch = threadIdx.x + LN_CHUNK_VALUES * blockDim.x; ch < C; ch += blockDim.x)
        acc += (xr[ch] - mean) * (xr[ch] - mean);
    return make_float2(mean, rsqrtf(block_sum(acc, part) / C + 1e-5f));
}

#endif
