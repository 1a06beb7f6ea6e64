/* The measured bf16 matrix-product peak of a CUDA device (train/peak_cuda.h). */
#include "train/peak_cuda.h"

#include <time.h>

#include "cuda/cuda_ops.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

rwkv_status train_cuda_bf16_peak_gflops(double *gflops, rwkv_error *err) {
    enum { n = 8192, warmup = 3, reps = 20 };
    const size_t nn = (size_t)n * n;
    void *a = NULL, *b = NULL, *c = NULL;
    cuda_blas *h = NULL;
    *gflops = 0;
    rwkv_status st = cuda_alloc(&a, nn * 2, "peak A", err);
    if (st == RWKV_OK) st = cuda_alloc(&b, nn * 2, "peak B", err);
    if (st == RWKV_OK) st = cuda_alloc(&c, nn * 2, "peak C", err);
    if (st == RWKV_OK) st = cuda_blas_new(&h, err);
    if (st == RWKV_OK) {
        cuda_fill_uniform(CUDA_BF16, a, -1, 1, 1, nn, 0);
        cuda_fill_uniform(CUDA_BF16, b, -1, 1, 2, nn, 0);
    }
    cuda_gemm g = {CUDA_BF16, CUDA_BF16, 1, 0, n, n, n, a, b, NULL, c, n, n, n, 0, 0, 0, 1, 1.0f, 0.0f};
    double t0 = 0;
    for (int i = 0; i < warmup + reps && st == RWKV_OK; i++) {
        if (i == warmup) {
            st = cuda_sync(0, "bf16 peak", err);
            t0 = now_s();
        }
        if (st == RWKV_OK) st = cuda_matmul(h, &g, 0, err);
    }
    if (st == RWKV_OK) st = cuda_sync(0, "bf16 peak", err);
    if (st == RWKV_OK) *gflops = 2.0 * n * (double)n * n * reps / (now_s() - t0) * 1e-9;
    cuda_blas_free(h);
    cuda_free(a);
    cuda_free(b);
    cuda_free(c);
    return st;
}

rwkv_status train_cuda_copy_gbps(double *gbps, rwkv_error *err) {
    enum { warmup = 2, reps = 10 };
    const size_t n = (size_t)1 << 28; /* floats: 1 GiB each way */
    void *a = NULL, *b = NULL;
    *gbps = 0;
    rwkv_status st = cuda_alloc(&a, n * 4, "bandwidth source", err);
    if (st == RWKV_OK) st = cuda_alloc(&b, n * 4, "bandwidth target", err);
    if (st == RWKV_OK) cuda_fill(CUDA_F32, a, 1.0f, n, 0);
    double t0 = 0;
    for (int i = 0; i < warmup + reps && st == RWKV_OK; i++) {
        if (i == warmup) {
            st = cuda_sync(0, "bandwidth", err);
            t0 = now_s();
        }
        /* the driver's device-to-device copy, the fastest way to move bytes on the device (on an
         * H200 4.24 TB/s of reads + writes, where a float-at-a-time copy kernel moved 2.98 and one
         * of 16-byte packs 3.93): the fractions measured against it are fractions of what the
         * memory can do, not of what a plain kernel does */
        cuda_copy(b, a, 4 * n, 0);
    }
    if (st == RWKV_OK) st = cuda_sync(0, "bandwidth", err);
    if (st == RWKV_OK) *gbps = 8.0 * (double)n * reps / (now_s() - t0) * 1e-9;
    cuda_free(a);
    cuda_free(b);
    return st;
}
