/* Token shift + mix (docs/model.md §1.2), forward and backward;
 * mirrors token_shift_forward / token_shift_backward of kernels/train_ops.h, but
 * does all n_mix mixes of one layer-norm output (k, v, r of time mixing;
 * k, r of channel mixing) in one pass. Row n is position t = n mod T of its
 * sequence; z[t-1] is zero at t = 0. */
#include "cuda/colsum.cuh"

/* Chunks of W elements within a row (W = the pack width when C and the
 * pointers allow it, else 1). */
template <typename T, int W>
__global__ void token_shift_forward_kernel(const T *z, const float *mu, int n_mix, int T_len,
                                           int C, size_t NC, T *out) {
    for (size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * W; i < NC;
         i += (size_t)gridDim.x * blockDim.x * W) {
        const int c = (int)(i % C);
        const size_t n = i / C;
        float cur[W], prev[W], o[W];
        load_w<W>(cur, z + i);
        if (n % T_len) load_w<W>(prev, z + i - C);
        else
#pragma unroll
            for (int e = 0; e < W; e++) prev[e] = 0.0f;
        for (int m = 0; m < n_mix; m++) {
#pragma unroll
            for (int e = 0; e < W; e++) {
                const float w = mu[m * C + c + e];
                o[e] = w * cur[e] + (1.0f - w) * prev[e];
            }
            store_w<W>(out + m * NC + i, o);
        }
    }
}

template <typename T>
static int shift_width(int C, const void *a, const void *b) {
    return C % PACK(T) == 0 && aligned16(a) && aligned16(b) ? PACK(T) : 1;
}

static unsigned shift_blocks(size_t n) { return cuda_blocks(n, 256) < 132 * 16 ? cuda_blocks(n,
        256) : 132 * 16; }

void cuda_token_shift_forward(cuda_dtype t, const void *d_z, const float *d_mu, int n_mix, int B,
                              int T, int C, void *d_out, cuda_stream stream) {
    const size_t NC = (size_t)B * T * C;
    CUDA_DISPATCH(t, {
        const act_t *z = (const act_t *)d_z;
        act_t *out = (act_t *)d_out;
        if (shift_width<act_t>(C, z, out) > 1)
            token_shift_forward_kernel<act_t, PACK(act_t)><<<shift_blocks(NC / PACK(act_t)), 256, 0, stream>>>(
                z, d_mu, n_mix, T, C, NC, out);
        else
            token_shift_forward_kernel<act_t, 1><<<shift_blocks(NC), 256, 0, stream>>>(z, d_mu, n_mix, T, C,
                    NC,
                                                                                     out);
    });
}

template <typename T, int W>
__global__ void token_shift_backward_kernel(const T *dout, const float *mu, int n_mix, int T_len,
                                            int C, size_t NC, T *dz) {
    for (size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * W; i < NC;
         i += (size_t)gridDim.x * blockDim.x * W) {
        const int c = (int)(i % C);
        const size_t n = i / C;
        const int has_next = (int)(n % T_len) + 1 < T_len;
        float s[W], g[W], gn[W];
#pragma unroll
        for (int e = 0; e < W; e++) s[e] = 0.0f, gn[e] = 0.0f;
        for (int m = 0; m < n_mix; m++) {
            load_w<W>(g, dout + m * NC + i);
            if (has_next) load_w<W>(gn, dout + m * NC + i + C);
#pragma unroll
            for (int e = 0; e < W; e++) {
                const float w = mu[m * C + c + e];
                s[e] += w * g[e] + (1.0f - w) * gn[e];
            }
        }
        store_w<W>(dz + i, s);
    }
}

/* dmu_m terms: dout_m[t] ⊙ (z[t] - z[t-1]). */
template <typename T, int K>
struct mix_terms {
    static constexpr int n_out = K;
    const T *dout, *z;
    int T_len, C;
    size_t NC;
    __device__ void operator()(int row, int col, float *out) const {
        const size_t i = (size_t)row * C + col;
        const float diff = ld(z + i) - (row % T_len ? ld(z + i - C) : 0.0f);
#pragma unroll
        for (int m = 0; m < K; m++) out[m] = ld(dout + m * NC + i) * diff;
    }
};

template <typename T, int K>
static void mix_grads(const T *dout, const T *z, int N, int T_len, int C, float *dmu,
                      float *partial, cudaStream_t stream) {
    mix_terms<T, K> f = {dout, z, T_len, C, (size_t)N * C};
    colsum_dst dst = {{dmu, K > 1 ? dmu + C : NULL, K > 2 ? dmu + 2 * C : NULL}};
    colsum(f, N, C, dst, partial, stream);
}

void cuda_token_shift_backward(cuda_dtype t, const void *d_dout, const void *d_z, const float *d_mu,
                               int n_mix, int B, int T, int C, void *d_dz, float *d_dmu,
                               float *d_partial, cuda_stream stream) {
    const int N = B * T;
    const size_t NC = (size_t)N * C;
    CUDA_DISPATCH(t, {
        const act_t *dout = (const act_t *)d_dout, *z = (const act_t *)d_z;
        act_t *dz = (act_t *)d_dz;
        if (shift_width<act_t>(C, dout, dz) > 1)
            token_shift_backward_kernel<act_t, PACK(act_t)><<<shift_blocks(NC / PACK(act_t)), 256, 0, stream>>>(
                dout, d_mu, n_mix, T, C, NC, dz);
        else
            token_shift_backward_kernel<act_t, 1><<<shift_blocks(NC), 256, 0, stream>>>(dout, d_mu, n_mix,
                    T, C,
                                                                                      NC, dz);
        if (n_mix == 1) mix_grads<act_t, 1>(dout, z, N, T, C, d_dmu, d_partial, stream);
        else if (n_mix == 2) mix_grads<act_t, 2>(dout, z, N, T, C, d_dmu, d_partial, stream);
        else mix_grads<act_t, 3>(dout, z, N, T, C, d_dmu, d_partial, stream);
    });
}

/* ---- inference: the shift continues from the state -------------------------------- */

/* out[m][t] = mu_m ⊙ z[t] + (1 - mu_m) ⊙ z[t-1] with z[-1] = prev (the
 * state's last row of the previous call), float32. */
__global__ void token_shift_state_kernel(const float *z, const float *prev, const float *mu, int n_mix,
                                         int C, size_t NC, float *out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < NC; i += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(i % C);
        const float cur = z[i], before = i < (size_t)C ? prev[c] : z[i - C];
        for (int m = 0; m < n_mix; m++) {
            const float w = mu[m * C + c];
            out[m * NC + i] = w * cur + (1.0f - w) * before;
        }
    }
}

void cuda_token_shift_state(const float *d_z, float *d_prev, const float *d_mu, int n_mix, int T, int C,
                            float *d_out, cuda_stream stream) {
    const size_t NC = (size_t)T * C;
    token_shift_state_kernel<<<shift_blocks(NC), 256, 0, stream>>>(d_z, d_prev, d_mu, n_mix, C, NC, d_out);
    /* same stream: the copy starts after every read of the old row */
    cudaMemcpyAsync(d_prev, d_z + NC - C, sizeof(float) * C, cudaMemcpyDeviceToDevice, stream);
}
