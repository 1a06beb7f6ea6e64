/* Device discovery, memory, copies and the mapping of CUDA errors onto
 * rwkv_status (the library never prints: every CUDA failure becomes a code
 * and a one-line message). */
#include "cuda/common.cuh"

extern "C" {
#include "core/error.h"
}

size_t cuda_dtype_size(cuda_dtype t) { return t == CUDA_BF16 ? 2 : 4; }

int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return n;
}

int cuda_sm_count(void) {
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
        cudaGetLastError(); /* not left for the next error check */
        return 0;
    }
    return sms;
}

/* Out of memory -> RWKV_ERR_NOMEM, no device or driver -> RWKV_ERR_UNSUPPORTED,
 * anything else (a failed launch, a fault inside a kernel) -> RWKV_ERR_IO. */
static rwkv_status status_of(cudaError_t e) {
    switch (e) {
    case cudaErrorMemoryAllocation: return RWKV_ERR_NOMEM;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorNoKernelImageForDevice: return RWKV_ERR_UNSUPPORTED;
    default: return RWKV_ERR_IO;
    }
}

static rwkv_status fail_cuda(cudaError_t e, const char *what, rwkv_error *err) {
    return rwkv_fail(err, status_of(e), "%s: CUDA error %s (%s)", what, cudaGetErrorName(e),
                     cudaGetErrorString(e));
}

rwkv_status cuda_check(const char *what, rwkv_error *err) {
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? RWKV_OK : fail_cuda(e, what, err);
}

rwkv_status cuda_sync(cuda_stream stream, const char *what, rwkv_error *err) {
    cudaError_t e = cudaStreamSynchronize(stream);
    if (e == cudaSuccess) e = cudaGetLastError();
    return e == cudaSuccess ? RWKV_OK : fail_cuda(e, what, err);
}

rwkv_status cuda_alloc(void **d_ptr, size_t bytes, const char *what, rwkv_error *err) {
    *d_ptr = NULL;
    cudaError_t e = cudaMalloc(d_ptr, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *d_ptr = NULL;
        cudaGetLastError();
        return rwkv_fail(err, status_of(e), "device allocation of %.1f MiB (%s) failed: %s",
                         (double)bytes / (1 << 20), what, cudaGetErrorString(e));
    }
    return RWKV_OK;
}

void cuda_free(void *d_ptr) {
    if (d_ptr) cudaFree(d_ptr);
}

void *cuda_host_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

void cuda_host_free(void *p) {
    if (p) cudaFreeHost(p);
}

rwkv_status cuda_upload(void *d_dst, const void *src, size_t bytes, rwkv_error *err) {
    cudaError_t e = cudaMemcpy(d_dst, src, bytes, cudaMemcpyHostToDevice);
    return e == cudaSuccess ? RWKV_OK : fail_cuda(e, "copy to the device", err);
}

rwkv_status cuda_download(void *dst, const void *d_src, size_t bytes, rwkv_error *err) {
    cudaError_t e = cudaMemcpy(dst, d_src, bytes, cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? RWKV_OK : fail_cuda(e, "copy from the device", err);
}

template <typename D, typename S>
__global__ void convert_kernel(D *dst, const S *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        st(dst + i, ld(src + i));
}

void cuda_copy(void *d_dst, const void *d_src, size_t bytes, cuda_stream stream) {
    cudaMemcpyAsync(d_dst, d_src, bytes, cudaMemcpyDeviceToDevice, stream);
}

void cuda_convert(cuda_dtype dst_t, void *d_dst, cuda_dtype src_t, const void *d_src, size_t n,
                  cuda_stream stream) {
    const unsigned blocks = cuda_blocks(n, 256) < 65536 ? cuda_blocks(n, 256) : 65536;
    CUDA_DISPATCH(dst_t, {
        typedef act_t dst_type;
        CUDA_DISPATCH(src_t, convert_kernel<dst_type, act_t><<<blocks, 256, 0, stream>>>(
                                 (dst_type *)d_dst, (const act_t *)d_src, n));
    });
}

template <typename T>
__global__ void fill_kernel(T *dst, float value, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        st(dst + i, value);
}

void cuda_fill(cuda_dtype t, void *d_dst, float value, size_t n, cuda_stream stream) {
    const unsigned blocks = cuda_blocks(n, 256) < 65536 ? cuda_blocks(n, 256) : 65536;
    CUDA_DISPATCH(t, fill_kernel<act_t><<<blocks, 256, 0, stream>>>((act_t *)d_dst, value, n));
}

template <typename T>
__global__ void fill_uniform_kernel(T *dst, float lo, float hi, uint64_t seed, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull; /* splitmix64 */
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        st(dst + i, lo + (hi - lo) * (float)((z >> 40) * (1.0 / 16777216.0)));
    }
}

void cuda_fill_uniform(cuda_dtype t, void *d_dst, float lo, float hi, uint64_t seed, size_t n,
                       cuda_stream stream) {
    const unsigned blocks = cuda_blocks(n, 256) < 65536 ? cuda_blocks(n, 256) : 65536;
    CUDA_DISPATCH(t, fill_uniform_kernel<act_t><<<blocks, 256, 0, stream>>>((act_t *)d_dst, lo, hi, seed, n));
}

size_t cuda_memory_used(void) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return total_b - free_b;
}
