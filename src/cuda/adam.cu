/* The optimizer over the flat float32 buffers: the global gradient norm and
 * a fused Adam(W) step with per-parameter LR scales and gradient clipping;
 * mirrors train/adam.c. The norm stays on the device and the clipping
 * factor is computed there too, so a training step needs no host sync. */
#include <math.h>

#include "cuda/common.cuh"

enum { NORM_BLOCK = 16384, NORM_THREADS = 256, NORM_FINISH = 1024 };

size_t cuda_norm_scratch(size_t n) { return (n + NORM_BLOCK - 1) / NORM_BLOCK; }

/* Tree sum of blockDim.x doubles in sh (a power of two), fixed order. */
__device__ static double tree_sum(double *sh) {
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        __syncthreads();
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
    }
    __syncthreads();
    return sh[0];
}

__global__ static void norm_partial_kernel(const float *g, size_t n, double *partial) {
    __shared__ double sh[NORM_THREADS];
    const size_t lo = (size_t)blockIdx.x * NORM_BLOCK;
    const size_t hi = lo + NORM_BLOCK < n ? lo + NORM_BLOCK : n;
    double s = 0.0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += (double)g[i] * g[i];
    sh[threadIdx.x] = s;
    const double total = tree_sum(sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ static void norm_finish_kernel(const double *partial, size_t nb, double *norm) {
    __shared__ double sh[NORM_FINISH];
    const size_t per = (nb + blockDim.x - 1) / blockDim.x, lo = threadIdx.x * per;
    double s = 0.0;
    for (size_t i = lo; i < lo + per && i < nb; i++) s += partial[i];
    sh[threadIdx.x] = s;
    const double total = tree_sum(sh);
    if (threadIdx.x == 0) norm[0] = sqrt(total);
}

void cuda_global_norm(const float *d_g, size_t n, double *d_partial, double *d_norm,
                      cuda_stream stream) {
    const size_t nb = cuda_norm_scratch(n);
    if (nb > 0) norm_partial_kernel<<<(unsigned)nb, NORM_THREADS, 0, stream>>>(d_g, n, d_partial);
    norm_finish_kernel<<<1, NORM_FINISH, 0, stream>>>(d_partial, nb, d_norm);
}

int cuda_adam_blocks(const cuda_adam_span *spans, int n_spans, int *block_span) {
    int nb = 0;
    for (int s = 0; s < n_spans; s++)
        for (size_t c = 0; c * CUDA_ADAM_BLOCK < spans[s].count; c++, nb++)
            if (block_span) block_span[2 * nb] = s, block_span[2 * nb + 1] = (int)c;
    return nb;
}

typedef struct adam_args {
    float lr, grad_scale, max_norm, b1, b2, c1, c2, eps, wd;
} adam_args;

__global__ static void adam_kernel(float *p, const float *g, float *m, float *v, bf16 *p16,
                                   const cuda_adam_span *spans, const int *block_span,
                                   const double *norm, adam_args a) {
    const cuda_adam_span sp = spans[block_span[2 * blockIdx.x]];
    const size_t lo = sp.offset + (size_t)block_span[2 * blockIdx.x + 1] * CUDA_ADAM_BLOCK;
    const size_t hi = lo + CUDA_ADAM_BLOCK < sp.offset + sp.count ? lo + CUDA_ADAM_BLOCK
                                                                  : sp.offset + sp.count;
    float scale = a.grad_scale;
    if (a.max_norm > 0.0f) { /* grad_clip_scale of train/adam.c, on the device */
        const double gnorm = norm[0] * a.grad_scale;
        const double c = a.max_norm / (gnorm + 1e-6);
        if (isfinite(gnorm) && c < 1.0) scale *= (float)c;
    }
    const float lr = a.lr * sp.lr_scale, wd = sp.decay ? a.wd : 0.0f;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        const float gg = g[i] * scale;
        const float mi = a.b1 * m[i] + (1.0f - a.b1) * gg;
        const float vi = a.b2 * v[i] + (1.0f - a.b2) * (gg * gg);
        m[i] = mi;
        v[i] = vi;
        float step = (mi * a.c1) / (sqrtf(vi * a.c2) + a.eps);
        if (wd > 0.0f) step += wd * p[i];
        const float pi = p[i] - lr * step;
        p[i] = pi;
        if (p16) p16[i] = __float2bfloat16(pi);
    }
}

void cuda_adam_update(float *d_p, const float *d_g, float *d_m, float *d_v, uint16_t *d_bf16,
                      const cuda_adam_span *d_spans, const int *d_block_span, int n_blocks,
                      float lr, float grad_scale, float max_norm, const double *d_norm, float beta1,
                      float beta2, float eps, float weight_decay, long step, cuda_stream stream) {
    adam_args a;
    a.lr = lr, a.grad_scale = grad_scale, a.max_norm = max_norm, a.b1 = beta1, a.b2 = beta2;
    a.c1 = (float)(1.0 / (1.0 - pow((double)beta1, (double)step)));
    a.c2 = (float)(1.0 / (1.0 - pow((double)beta2, (double)step)));
    a.eps = eps, a.wd = weight_decay;
    if (n_blocks > 0)
        adam_kernel<<<n_blocks, 256, 0, stream>>>(d_p, d_g, d_m, d_v, (bf16 *)d_bf16, d_spans,
                                                   d_block_span, d_norm, a);
}
