/* The element-wise layers of RWKV-4 (docs/model.md §1.2): the
 * squared ReLU of channel mixing and the sigmoid gates (receptance), forward
 * and backward; mirrors relu2_* and sigmoid_gate_* of kernels/train_ops.h. The
 * channel-mix gate is fused with the residual add it feeds. Each is a
 * functor over one element run by map(), which moves 16-byte packs when the
 * buffers allow it (memory-bound: the pack width is what matters). */
#include "cuda/common.cuh"

enum { MAX_IN = 3, MAX_OUT = 2 };

template <typename T>
struct map_ptrs {
    const T *in[MAX_IN];
    T *out[MAX_OUT];
};

/* out_j[i] = f(in_0[i], ..., in_{NI-1}[i])_j over packs [0, n / PACK). */
template <typename T, int NI, int NO, class F>
__global__ void map_pack_kernel(F f, map_ptrs<T> p, size_t n_packs) {
    constexpr int E = PACK(T);
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < n_packs;
         q += (size_t)gridDim.x * blockDim.x) {
        float x[NI][E], y[NO][E];
#pragma unroll
        for (int a = 0; a < NI; a++) load_pack(x[a], p.in[a] + q * E);
#pragma unroll
        for (int e = 0; e < E; e++) {
            float xi[NI], yi[NO];
#pragma unroll
            for (int a = 0; a < NI; a++) xi[a] = x[a][e];
            f(xi, yi);
#pragma unroll
            for (int o = 0; o < NO; o++) y[o][e] = yi[o];
        }
#pragma unroll
        for (int o = 0; o < NO; o++) store_pack(p.out[o] + q * E, y[o]);
    }
}

template <typename T, int NI, int NO, class F>
__global__ void map_scalar_kernel(F f, map_ptrs<T> p, size_t i0, size_t n) {
    for (size_t i = i0 + blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float xi[NI], yi[NO];
#pragma unroll
        for (int a = 0; a < NI; a++) xi[a] = ld(p.in[a] + i);
        f(xi, yi);
#pragma unroll
        for (int o = 0; o < NO; o++) st(p.out[o] + i, yi[o]);
    }
}

template <typename T, int NI, int NO, class F>
static void map(F f, map_ptrs<T> p, size_t n, cudaStream_t stream) {
    int ok = 1;
    for (int a = 0; a < NI; a++) ok &= aligned16(p.in[a]);
    for (int o = 0; o < NO; o++) ok &= aligned16(p.out[o]);
    const size_t packs = ok ? n / PACK(T) : 0, done = packs * PACK(T);
    const unsigned cap = 132 * 16; /* a few waves of the largest GPUs; the loops stride */
    if (packs) {
        const unsigned blocks = cuda_blocks(packs, 256) < cap ? cuda_blocks(packs, 256) : cap;
        map_pack_kernel<T, NI, NO, F><<<blocks, 256, 0, stream>>>(f, p, packs);
    }
    if (done < n) {
        const unsigned blocks = cuda_blocks(n - done, 256) < cap ? cuda_blocks(n - done, 256) : cap;
        map_scalar_kernel<T, NI, NO, F><<<blocks, 256, 0, stream>>>(f, p, done, n);
    }
}

struct relu2_f { /* h = max(k, 0)² */
    __device__ void operator()(const float *x, float *y) const {
        const float a = fmaxf(x[0], 0.0f);
        y[0] = a * a;
    }
};
struct relu2_backward_f { /* dk = dh ⊙ 2 max(k, 0) */
    __device__ void operator()(const float *x, float *y) const { y[0] = 2.0f * fmaxf(x[0], 0.0f) * x[1]; }
};
struct gate_residual_f { /* y = x + σ(pre) ⊙ val */
    __device__ void operator()(const float *x, float *y) const { y[0] = x[0] + sigmoid(x[1]) * x[2]; }
};
struct gate_f { /* out = σ(pre) ⊙ val */
    __device__ void operator()(const float *x, float *y) const { y[0] = sigmoid(x[0]) * x[1]; }
};
struct gate_backward_f { /* dval = dout σ(pre), dpre = dout val σ(1 - σ) */
    __device__ void operator()(const float *x, float *y) const {
        const float r = sigmoid(x[0]);
        y[0] = x[2] * r;
        y[1] = x[2] * x[1] * r * (1.0f - r);
    }
};

void cuda_relu2_forward(cuda_dtype t, const void *d_k, void *d_h, size_t n, cuda_stream stream) {
    CUDA_DISPATCH(t, {
        map_ptrs<act_t> p = {{(const act_t *)d_k}, {(act_t *)d_h}};
        map<act_t, 1, 1>(relu2_f(), p, n, stream);
    });
}

void cuda_relu2_backward(cuda_dtype t, const void *d_k, const void *d_dh, void *d_dk, size_t n,
                         cuda_stream stream) {
    CUDA_DISPATCH(t, {
        map_ptrs<act_t> p = {{(const act_t *)d_k, (const act_t *)d_dh}, {(act_t *)d_dk}};
        map<act_t, 2, 1>(relu2_backward_f(), p, n, stream);
    });
}

void cuda_gate_residual_forward(cuda_dtype t, const void *d_x, const void *d_pre, const void *d_val,
                                void *d_y, size_t n, cuda_stream stream) {
    CUDA_DISPATCH(t, {
        map_ptrs<act_t> p = {{(const act_t *)d_x, (const act_t *)d_pre, (const act_t *)d_val}, {(act_t *)d_y}};
        map<act_t, 3, 1>(gate_residual_f(), p, n, stream);
    });
}

void cuda_gate_forward(cuda_dtype t, const void *d_pre, const void *d_val, void *d_out, size_t n,
                       cuda_stream stream) {
    CUDA_DISPATCH(t, {
        map_ptrs<act_t> p = {{(const act_t *)d_pre, (const act_t *)d_val}, {(act_t *)d_out}};
        map<act_t, 2, 1>(gate_f(), p, n, stream);
    });
}

void cuda_gate_backward(cuda_dtype t, const void *d_pre, const void *d_val, const void *d_dout,
                        void *d_dval, void *d_dpre, size_t n, cuda_stream stream) {
    CUDA_DISPATCH(t, {
        map_ptrs<act_t> p = {{(const act_t *)d_pre, (const act_t *)d_val, (const act_t *)d_dout},
                             {(act_t *)d_dval, (act_t *)d_dpre}};
        map<act_t, 3, 2>(gate_backward_f(), p, n, stream);
    });
}
