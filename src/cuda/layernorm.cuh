/* One row's layer norm (docs/model.md §0: biased variance, eps 1e-5
 * inside the square root) by one warp: the device side of the layer norm
 * forward (layernorm.cu), shared with the persistent decode program
 * (decode_program.cu). */
#ifndef RWKV_CUDA_LAYERNORM_CUH
#define RWKV_CUDA_LAYERNORM_CUH

#include "cuda/common.cuh"

#define LN_EPS 1e-5f

/* yr = LN(xr; w, b) over C elements, read in chunks of W per lane (a 16-byte
 * pack when the width and the pointers allow, else W = 1); lane 0 stores the
 * mean and 1/std where those pointers are given. */
template <typename T, int W>
__device__ __forceinline__ void layernorm_row(const T *xr, const float *w, const float *b, int C, T *yr, int lane,
                                              float *mean_out, float *rstd_out) {
    float s = 0.0f, v[W];
    for (int i = lane * W; i < C; i += 32 * W) {
        load_w<W>(v, xr + i);
#pragma unroll
        for (int e = 0; e < W; e++) s += v[e];
    }
    const float mean = warp_sum(s) / C;
    float var = 0.0f; /* two passes (mean first): large offsets do not cancel */
    for (int i = lane * W; i < C; i += 32 * W) {
        load_w<W>(v, xr + i);
#pragma unroll
        for (int e = 0; e < W; e++) var += (v[e] - mean) * (v[e] - mean);
    }
    const float rstd = rsqrtf(warp_sum(var) / C + LN_EPS);
    for (int i = lane * W; i < C; i += 32 * W) {
        load_w<W>(v, xr + i);
#pragma unroll
        for (int e = 0; e < W; e++) v[e] = (v[e] - mean) * rstd * w[i + e] + b[i + e];
        store_w<W>(yr + i, v);
    }
    if (lane == 0 && mean_out) *mean_out = mean;
    if (lane == 0 && rstd_out) *rstd_out = rstd;
}

#endif
