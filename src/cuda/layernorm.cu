/* Layer norm (docs/model.md §0: biased variance, eps 1e-5 inside
 * the square root), forward and backward; mirrors layernorm_forward /
 * layernorm_backward of kernels/train_ops.h. One warp per row; the row's mean
 * and 1/std are saved by the forward so the backward does not recompute
 * them. Parameter gradients are deterministic column sums (colsum.cuh). */
#include "cuda/colsum.cuh"

#define LN_EPS 1e-5f

size_t cuda_colsum_scratch(int C, int n_out) { return (size_t)COLSUM_CHUNKS * n_out * C; }

/* Rows are read in chunks of W elements per lane (a 16-byte pack when the
 * width and the pointers allow, else W = 1). */
template <typename T, int W>
__global__ void layernorm_forward_kernel(const T *x, const float *w, const float *b, int N, int C,
                                         T *y, float *mean_out, float *rstd_out) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N) return;
    const T *xr = x + (size_t)row * C;
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
    T *yr = y + (size_t)row * C;
    for (int i = lane * W; i < C; i += 32 * W) {
        load_w<W>(v, xr + i);
#pragma unroll
        for (int e = 0; e < W; e++) v[e] = (v[e] - mean) * rstd * w[i + e] + b[i + e];
        store_w<W>(yr + i, v);
    }
    if (lane == 0) {
        mean_out[row] = mean;
        rstd_out[row] = rstd;
    }
}

/* The pack width for rows of C elements at these pointers (1 when they do not allow packs). */
template <typename T>
static int row_width(int C, const void *a, const void *b, const void *c) {
    return C % PACK(T) == 0 && aligned16(a) && aligned16(b) && aligned16(c) ? PACK(T) : 1;
}

void cuda_layernorm_forward(cuda_dtype t, const void *d_x, const float *d_w, const float *d_b,
                            int N, int C, void *d_y, float *d_mean, float *d_rstd,
                            cuda_stream stream) {
    CUDA_DISPATCH(t, {
        const act_t *x = (const act_t *)d_x;
        act_t *y = (act_t *)d_y;
        if (row_width<act_t>(C, x, y, y) > 1)
            layernorm_forward_kernel<act_t, PACK(act_t)><<<cuda_blocks(N, 8), 256, 0, stream>>>(
                x, d_w, d_b, N, C, y, d_mean, d_rstd);
        else
            layernorm_forward_kernel<act_t, 1><<<cuda_blocks(N, 8), 256, 0, stream>>>(x, d_w, d_b, N, C, y,
                                                                                   d_mean, d_rstd);
    });
}

/* With x̂ = (x - mean)·rstd and g = dy ⊙ w:
 *   dx = rstd·(g - mean(g) - x̂·mean(g ⊙ x̂)). */
template <typename T, int W>
__global__ void layernorm_backward_kernel(const T *x, const float *w, const float *mean,
                                          const float *rstd, const T *dy, int N, int C, T *dx,
                                          int accumulate) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N) return;
    const size_t o = (size_t)row * C;
    const float mu = mean[row], rs = rstd[row];
    float m1 = 0.0f, m2 = 0.0f, xv[W], gv[W], dv[W];
    for (int i = lane * W; i < C; i += 32 * W) {
        load_w<W>(xv, x + o + i);
        load_w<W>(gv, dy + o + i);
#pragma unroll
        for (int e = 0; e < W; e++) {
            const float g = gv[e] * w[i + e];
            m1 += g;
            m2 += g * (xv[e] - mu) * rs;
        }
    }
    m1 = warp_sum(m1) / C;
    m2 = warp_sum(m2) / C;
    for (int i = lane * W; i < C; i += 32 * W) {
        load_w<W>(xv, x + o + i);
        load_w<W>(gv, dy + o + i);
        if (accumulate) load_w<W>(dv, dx + o + i);
#pragma unroll
        for (int e = 0; e < W; e++) {
            const float xh = (xv[e] - mu) * rs;
            const float d = rs * (gv[e] * w[i + e] - m1 - xh * m2);
            dv[e] = accumulate ? dv[e] + d : d;
        }
        store_w<W>(dx + o + i, dv);
    }
}

/* Terms of dw (dy ⊙ x̂) and db (dy). */
template <typename T>
struct ln_param_terms {
    static constexpr int n_out = 2;
    const T *x, *dy;
    const float *mean, *rstd;
    int C;
    __device__ void operator()(int row, int col, float *out) const {
        const size_t i = (size_t)row * C + col;
        const float g = ld(dy + i);
        out[0] = g * (ld(x + i) - mean[row]) * rstd[row];
        out[1] = g;
    }
};

void cuda_layernorm_backward(cuda_dtype t, const void *d_x, const float *d_w, const float *d_mean,
                             const float *d_rstd, const void *d_dy, int N, int C, void *d_dx,
                             int accumulate, float *d_dw, float *d_db, float *d_partial,
                             cuda_stream stream) {
    CUDA_DISPATCH(t, {
        const act_t *x = (const act_t *)d_x, *dy = (const act_t *)d_dy;
        act_t *dx = (act_t *)d_dx;
        if (row_width<act_t>(C, x, dy, dx) > 1)
            layernorm_backward_kernel<act_t, PACK(act_t)><<<cuda_blocks(N, 8), 256, 0, stream>>>(
                x, d_w, d_mean, d_rstd, dy, N, C, dx, accumulate);
        else
            layernorm_backward_kernel<act_t, 1><<<cuda_blocks(N, 8), 256, 0, stream>>>(
                x, d_w, d_mean, d_rstd, dy, N, C, dx, accumulate);
        ln_param_terms<act_t> f = {x, dy, d_mean, d_rstd, C};
        colsum_dst dst = {{d_dw, d_db, NULL}};
        colsum(f, N, C, dst, d_partial, stream);
    });
}
