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

/* 16-byte packs: PACK<T> elements (8 bf16 or 4 floats) moved with one
 * load or store; the memory-bound kernels take them whenever every pointer
 * is 16-byte aligned and the length (or row width) is a multiple. */
template <typename T>
struct pack_of {
    static constexpr int n = 16 / sizeof(T);
};
#define PACK(T) pack_of<T>::n

template <typename T>
__device__ __forceinline__ void load_pack(float *x, const T *p) {
    const int4 raw = *reinterpret_cast<const int4 *>(p);
    const T *e = reinterpret_cast<const T *>(&raw);
#pragma unroll
    for (int i = 0; i < PACK(T); i++) x[i] = ld(e + i);
}

template <typename T>
__device__ __forceinline__ void store_pack(T *p, const float *x) {
    int4 raw;
    T *e = reinterpret_cast<T *>(&raw);
#pragma unroll
    for (int i = 0; i < PACK(T); i++) st(e + i, x[i]);
    *reinterpret_cast<int4 *>(p) = raw;
}

/* W elements at p: one 16-byte pack when W is the pack width, else one by one. */
template <int W, typename T>
__device__ __forceinline__ void load_w(float *x, const T *p) {
    if constexpr (W == PACK(T)) load_pack(x, p);
    else
#pragma unroll
        for (int i = 0; i < W; i++) x[i] = ld(p + i);
}

template <int W, typename T>
__device__ __forceinline__ void store_w(T *p, const float *x) {
    if constexpr (W == PACK(T)) store_pack(p, x);
    else
#pragma unroll
        for (int i = 0; i < W; i++) st(p + i, x[i]);
}

static inline int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/* Programmatic dependent launch (sm_90): a kernel that calls this lets the
 * next kernel of its stream, when that one is launched with the
 * programmatic-serialization attribute (the GEMV), start before this one
 * ends; the next kernel must call cuda_wait_for_prior_grids() before it reads
 * anything this one writes. Both are no-ops on older devices. */
__device__ __forceinline__ void cuda_let_dependents_start() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}
__device__ __forceinline__ void cuda_wait_for_prior_grids() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/* Asks L2 for the `bytes` bytes at p, the 32 lanes of a warp one 128-byte
 * line each at a time: a hint for data that no earlier kernel writes, issued
 * before cuda_wait_for_prior_grids() so that its latency passes meanwhile. */
__device__ __forceinline__ void cuda_prefetch_l2(const void *p, size_t bytes, int lane) {
    const char *c = (const char *)p;
    for (size_t o = (size_t)lane * 128; o < bytes; o += 32 * 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(c + o));
}

/* Launches kernel<<<grid, block, smem, s>>>(args...) with the
 * programmatic-serialization attribute: it may start while the kernel ahead
 * of it still runs, so it must call cuda_wait_for_prior_grids() before it
 * touches what earlier kernels write (a decode step is a chain of short
 * kernels; this hides each one's launch behind the one before). */
template <typename... Params, typename... Args>
static inline void cuda_launch_early(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                                     cudaStream_t s, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = s;
    cudaLaunchAttribute early;
    early.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    early.val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = &early, cfg.numAttrs = 1;
    cudaLaunchKernelEx(&cfg, kernel, args...);
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

/* Two block sums for the price of one (the same barriers), each in
 * block_sum's order. `sh` holds 32 float2s. */
__device__ __forceinline__ float2 block_sum2(float2 x, float2 *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x.x = warp_sum(x.x), x.y = warp_sum(x.y);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[warp] = x;
    __syncthreads();
    x = lane < nw ? sh[lane] : make_float2(0.0f, 0.0f);
    return make_float2(warp_sum(x.x), warp_sum(x.y));
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
