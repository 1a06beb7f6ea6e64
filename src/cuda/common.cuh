/* Shared pieces of the CUDA kernels: storage-type loads and stores,
 * warp/block reductions and the dispatch from cuda_dtype to a template. */
#ifndef RWKV_CUDA_COMMON_CUH
#define RWKV_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda/cuda_ops.h"

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float ld(const float *p) { return *p; }
__device__ __forceinline__ float ld(const bf16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st(float *p, float x) { *p = x; }
__device__ __forceinline__ void st(bf16 *p, float x) { *p = __float2bfloat16(x); }

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/* Sum over a block of blockDim.x threads (a multiple of 32, at most 1024);
 * every thread gets the result. `sh` holds 32 floats. Fixed order, so
 * deterministic. */
__device__ __forceinline__ float block_sum(float x, float *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = warp_sum(x);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[warp] = x;
    __syncthreads();
    x = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(x);
}

/* Calls fn.template operator()<T>() with T = float or bf16 for t. */
#define CUDA_DISPATCH(t, ...)                                                                      \
    do {                                                                                           \
        if ((t) == CUDA_BF16) {                                                                    \
            typedef bf16 act_t;                                                                    \
            __VA_ARGS__;                                                                           \
        } else {                                                                                   \
            typedef float act_t;                                                                   \
            __VA_ARGS__;                                                                           \
        }                                                                                          \
    } while (0)

static inline unsigned cuda_blocks(size_t n, int threads) {
    size_t b = (n + (size_t)threads - 1) / (size_t)threads;
    return b > 0x7fffffffu ? 0x7fffffffu : (unsigned)(b ? b : 1);
}

#endif
