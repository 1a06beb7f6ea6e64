/* The fused layer norm + token shift of one-row streams (decode), by a
 * block of 256 threads per (row, 256 channels): the device side that the
 * decode launches (infer_ops.cu) and the persistent decode program
 * (decode_program.cu) share. */
#ifndef RWKV_CUDA_LN_SHIFT_CUH
#define RWKV_CUDA_LN_SHIFT_CUH

#include "cuda/rwkv_infer.cuh"

enum { LN_SHIFT_CHUNK = 256 }; /* channels (and threads) of a block */

typedef struct mix_set {
    const float *mu[SHIFT_MAX_MIX];
} mix_set;

template <int FORM>
__device__ __forceinline__ float shift_value(float cur, float prev, const float *mu, int ch) {
    if (FORM == SHIFT_DELTA) return prev - cur;
    const float w = mu[ch];
    return FORM == SHIFT_LERP ? cur + (prev - cur) * w : w * cur + (1.0f - w) * prev;
}

/* What the fused step reads and writes: z = LN(x[r]; lw, lb) of each row r
 * (a stream of its own, whose state is states[r]), the state's slot (`off`
 * floats in) holding the previous token's z, replaced by this one's; the
 * n_mix outputs are n values apart. */
typedef struct ln_shift_step {
    const float *x, *lw, *lb;
    float *const *states;
    size_t off;
    int C, n_mix;
    mix_set mu;
    float *z;
    size_t n;
} ln_shift_step;

/* Channels [256 chunk, 256 chunk + 256) of row r; every block of the row
 * sums the whole row itself (two-pass, as the layer norm), which costs a
 * read of C floats from the cache and saves a launch. */
template <int FORM, typename T>
__device__ __forceinline__ void ln_shift_chunk(const ln_shift_step &a, T *out, int r, int chunk) {
    __shared__ float part[32];
    const int C = a.C;
    const float *xr = a.x + (size_t)r * C;
    float acc = 0.0f;
    for (int ch = threadIdx.x; ch < C; ch += blockDim.x) acc += xr[ch];
    const float mean = block_sum(acc, part) / C;
    acc = 0.0f;
    for (int ch = threadIdx.x; ch < C; ch += blockDim.x) acc += (xr[ch] - mean) * (xr[ch] - mean);
    const float rstd = rsqrtf(block_sum(acc, part) / C + 1e-5f);
    const int ch = chunk * blockDim.x + threadIdx.x;
    if (ch >= C) return;
    float *slot = a.states[r] + a.off;
    const float cur = (xr[ch] - mean) * rstd * a.lw[ch] + a.lb[ch], prev = slot[ch];
    a.z[(size_t)r * C + ch] = cur;
    slot[ch] = cur;
#pragma unroll
    for (int m = 0; m < SHIFT_MAX_MIX; m++)
        if (m < a.n_mix) st(out + m * a.n + (size_t)r * C + ch, shift_value<FORM>(cur, prev, a.mu.mu[m], ch));
}

#endif
