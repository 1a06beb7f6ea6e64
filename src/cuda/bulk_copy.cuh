/* Bulk copies from global to shared memory (sm_90's cp.async.bulk) with an
 * mbarrier that counts their bytes: one instruction moves a whole block of
 * bytes, where cp.async moves 16 per thread and instruction. A consumer waits
 * on the barrier's phase: the k-th fill of a barrier completes phase k, whose
 * parity is k & 1. */
#ifndef RWKV_CUDA_BULK_COPY_CUH
#define RWKV_CUDA_BULK_COPY_CUH

#include <cstdint>

__device__ __forceinline__ uint32_t shared_address(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* One thread initialises the barriers, then every thread passes a __syncthreads(). */
__device__ __forceinline__ void bulk_barrier_init(uint64_t *bar) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(shared_address(bar)) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

/* The one arrival of a fill: its bytes, which the copies then count down. */
__device__ __forceinline__ void bulk_barrier_expect(uint64_t *bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(shared_address(bar)), "r"(bytes)
                 : "memory");
}

/* bytes (a multiple of 16, both addresses 16-byte aligned) from src to dst. */
__device__ __forceinline__ void bulk_copy(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     shared_address(dst)),
                 "l"(src), "r"(bytes), "r"(shared_address(bar))
                 : "memory");
}

__device__ __forceinline__ void bulk_barrier_wait(uint64_t *bar, uint32_t parity) {
    uint32_t done;
    do {
        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                     : "=r"(done)
                     : "r"(shared_address(bar)), "r"(parity)
                     : "memory");
    } while (!done);
}

#endif
