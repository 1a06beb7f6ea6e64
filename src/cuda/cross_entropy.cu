/* Softmax cross-entropy with the L2Wrap logit regulariser fused in
 * (docs/rwkv-architecture.md §1.2, §3.3); mirrors cross_entropy_forward and
 * cross_entropy_backward of train/layers.h. One block per row: the row's
 * max (first index on ties, like the CPU), its log-sum-exp, the row loss,
 * and in the backward the row overwritten in place by d(mean loss)/dlogits,
 * so the logits never need a second buffer. */
#include <float.h>

#include "cuda/common.cuh"

enum { CE_THREADS = 512 };

/* (value, index) maximum with the lower index winning ties. */
__device__ __forceinline__ void max_pair(float &v, int &j, float v2, int j2) {
    if (v2 > v || (v2 == v && j2 < j)) v = v2, j = j2;
}

template <typename T>
__global__ void cross_entropy_kernel(T *logits, int ld_row, const int *targets, int N, int V,
                                     float l2wrap, int backward, float *row_loss) {
    __shared__ float sh[32];
    __shared__ float sh_v[32];
    __shared__ int sh_j[32];
    const int n = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    T *l = logits + (size_t)n * ld_row;
    float mv = -FLT_MAX;
    int mj = V;
    for (int j = threadIdx.x; j < V; j += blockDim.x) max_pair(mv, mj, ld(l + j), j);
    for (int o = 16; o > 0; o >>= 1)
        max_pair(mv, mj, __shfl_xor_sync(0xffffffffu, mv, o), __shfl_xor_sync(0xffffffffu, mj, o));
    if (lane == 0) sh_v[warp] = mv, sh_j[warp] = mj;
    __syncthreads();
    mv = -FLT_MAX, mj = V;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) max_pair(mv, mj, sh_v[w], sh_j[w]);
    float s = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) s += expf(ld(l + j) - mv);
    const float lse = mv + logf(block_sum(s, sh));
    const int tgt = targets[n];
    const float target_logit = ld(l + tgt);
    if (threadIdx.x == 0) row_loss[n] = lse - target_logit;
    if (!backward) return;
    __syncthreads(); /* every read of the row is done before it is overwritten */
    const float inv_n = 1.0f / (float)N;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float g = expf(ld(l + j) - lse) * inv_n;
        if (j == tgt) g -= inv_n;
        if (j == mj) g += l2wrap * mv * inv_n; /* d/dy of (l2wrap/2N)·max(y)² */
        st(l + j, g);
    }
}

void cuda_cross_entropy(cuda_dtype t, void *d_logits, int ld, const int *d_targets, int N, int V,
                        float l2wrap, int backward, float *d_row_loss, cuda_stream stream) {
    CUDA_DISPATCH(t, cross_entropy_kernel<act_t><<<N, CE_THREADS, 0, stream>>>(
                         (act_t *)d_logits, ld, d_targets, N, V, l2wrap, backward, d_row_loss));
}

__global__ static void mean_kernel(const float *x, int n, float *out) {
    __shared__ double sh[1024];
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = (float)(sh[0] / n);
}

void cuda_mean(const float *d_x, int n, float *d_out, cuda_stream stream) {
    mean_kernel<<<1, 1024, 0, stream>>>(d_x, n, d_out);
}
