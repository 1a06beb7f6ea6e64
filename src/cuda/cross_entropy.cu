/* Softmax cross-entropy with the L2Wrap logit regulariser fused in
 * (docs/model.md §1.2, §3.3); mirrors cross_entropy_forward and
 * cross_entropy_backward of kernels/train_ops.h. One block per row: the row's
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

/* One pass for the max (with its index) and the sum of exponentials
 * (online: the running sum is rescaled when the running max grows), a
 * second to write the gradient. W-element chunks as in layernorm.cu; the
 * row's tail past the last whole pack is done one by one. Columns in
 * [V, ld) of the gradient are set to zero (the head may be padded). */
/* d(mean loss)/d logit j: (softmax - onehot)/N, plus the L2Wrap term
 * d/dy of (l2wrap/2N)·max(y)² on the row's max; zero past V (padding). */
__device__ __forceinline__ float ce_grad(float x, int j, int V, int tgt, int jmax, float vmax, float lse,
                                         float inv_n, float l2wrap) {
    if (j >= V) return 0.0f;
    float g = expf(x - lse) * inv_n;
    if (j == tgt) g -= inv_n;
    if (j == jmax) g += l2wrap * vmax * inv_n;
    return g;
}

/* Running max (lowest index on ties) and sum of exponentials rescaled to it. */
__device__ __forceinline__ void online_max_sum(float x, int j, float &mv, int &mj, float &s) {
    if (x > mv) {
        s *= expf(mv - x);
        mv = x, mj = j;
    }
    s += expf(x - mv);
}

template <typename T, int W>
__global__ void cross_entropy_kernel(T *logits, int ld_row, const int *targets, int N, int V,
                                     float l2wrap, int backward, float *row_loss) {
    __shared__ float sh[32];
    __shared__ float sh_v[32];
    __shared__ int sh_j[32];
    const int n = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    T *l = logits + (size_t)n * ld_row;
    const int Vw = V / W * W; /* whole chunks; the tail one by one */
    float mv = -FLT_MAX, s = 0.0f, x[W];
    int mj = V;
    for (int j0 = threadIdx.x * W; j0 < Vw; j0 += blockDim.x * W) {
        load_w<W>(x, l + j0);
#pragma unroll
        for (int e = 0; e < W; e++) online_max_sum(x[e], j0 + e, mv, mj, s);
    }
    for (int j = Vw + threadIdx.x; j < V; j += blockDim.x) online_max_sum(ld(l + j), j, mv, mj, s);
    float bv = mv;
    int bj = mj;
    for (int o = 16; o > 0; o >>= 1)
        max_pair(bv, bj, __shfl_xor_sync(0xffffffffu, bv, o), __shfl_xor_sync(0xffffffffu, bj, o));
    if (lane == 0) sh_v[warp] = bv, sh_j[warp] = bj;
    __syncthreads();
    bv = -FLT_MAX, bj = V;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) max_pair(bv, bj, sh_v[w], sh_j[w]);
    const float lse = bv + logf(block_sum(mv > -FLT_MAX ? s * expf(mv - bv) : 0.0f, sh));
    const int tgt = targets[n];
    const float target_logit = ld(l + tgt);
    if (threadIdx.x == 0) row_loss[n] = lse - target_logit;
    if (!backward) return;
    __syncthreads(); /* every read of the row is done before it is overwritten */
    const float inv_n = 1.0f / (float)N;
    for (int j0 = threadIdx.x * W; j0 < Vw; j0 += blockDim.x * W) {
        load_w<W>(x, l + j0);
#pragma unroll
        for (int e = 0; e < W; e++) x[e] = ce_grad(x[e], j0 + e, V, tgt, bj, bv, lse, inv_n, l2wrap);
        store_w<W>(l + j0, x);
    }
    for (int j = Vw + threadIdx.x; j < ld_row; j += blockDim.x)
        st(l + j, ce_grad(j < V ? ld(l + j) : 0.0f, j, V, tgt, bj, bv, lse, inv_n, l2wrap));
}

void cuda_cross_entropy(cuda_dtype t, void *d_logits, int ld, const int *d_targets, int N, int V,
                        float l2wrap, int backward, float *d_row_loss, cuda_stream stream) {
    CUDA_DISPATCH(t, {
        act_t *l = (act_t *)d_logits;
        if (ld % PACK(act_t) == 0 && aligned16(l))
            cross_entropy_kernel<act_t, PACK(act_t)><<<N, CE_THREADS, 0, stream>>>(l, ld, d_targets, N, V,
                    l2wrap,
                                                                                  backward, d_row_loss);
        else
            cross_entropy_kernel<act_t, 1><<<N, CE_THREADS, 0, stream>>>(l, ld, d_targets, N, V, l2wrap,
                    backward,
                                                                        d_row_loss);
    });
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
