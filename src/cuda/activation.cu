/* The element-wise layers of RWKV-4 (docs/rwkv-architecture.md §1.2): the
 * squared ReLU of channel mixing and the sigmoid gates (receptance), forward
 * and backward; mirrors relu2_* and sigmoid_gate_* of train/layers.h. The
 * channel-mix gate is fused with the residual add it feeds. */
#include "cuda/common.cuh"

#define FOR_EACH(i, n)                                                                             \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);                       \
         i += (size_t)gridDim.x * blockDim.x)

template <typename T>
__global__ void relu2_forward_kernel(const T *k, T *h, size_t n) {
    FOR_EACH(i, n) {
        const float a = fmaxf(ld(k + i), 0.0f);
        st(h + i, a * a);
    }
}

template <typename T>
__global__ void relu2_backward_kernel(const T *k, const T *dh, T *dk, size_t n) {
    FOR_EACH(i, n) st(dk + i, 2.0f * fmaxf(ld(k + i), 0.0f) * ld(dh + i));
}

template <typename T>
__global__ void gate_residual_kernel(const T *x, const T *pre, const T *val, T *y, size_t n) {
    FOR_EACH(i, n) st(y + i, ld(x + i) + sigmoid(ld(pre + i)) * ld(val + i));
}

template <typename T>
__global__ void gate_forward_kernel(const T *pre, const T *val, T *out, size_t n) {
    FOR_EACH(i, n) st(out + i, sigmoid(ld(pre + i)) * ld(val + i));
}

template <typename T>
__global__ void gate_backward_kernel(const T *pre, const T *val, const T *dout, T *dval, T *dpre,
                                     size_t n) {
    FOR_EACH(i, n) {
        const float g = ld(dout + i), r = sigmoid(ld(pre + i)), v = ld(val + i);
        st(dval + i, g * r);
        st(dpre + i, g * v * r * (1.0f - r));
    }
}

#define GRID(n) cuda_blocks(n, 256), 256, 0, stream

void cuda_relu2_forward(cuda_dtype t, const void *d_k, void *d_h, size_t n, cuda_stream stream) {
    CUDA_DISPATCH(t, relu2_forward_kernel<act_t><<<GRID(n)>>>((const act_t *)d_k, (act_t *)d_h, n));
}

void cuda_relu2_backward(cuda_dtype t, const void *d_k, const void *d_dh, void *d_dk, size_t n,
                         cuda_stream stream) {
    CUDA_DISPATCH(t, relu2_backward_kernel<act_t><<<GRID(n)>>>((const act_t *)d_k,
                                                                (const act_t *)d_dh, (act_t *)d_dk, n));
}

void cuda_gate_residual_forward(cuda_dtype t, const void *d_x, const void *d_pre, const void *d_val,
                                void *d_y, size_t n, cuda_stream stream) {
    CUDA_DISPATCH(t, gate_residual_kernel<act_t><<<GRID(n)>>>(
                         (const act_t *)d_x, (const act_t *)d_pre, (const act_t *)d_val, (act_t *)d_y, n));
}

void cuda_gate_forward(cuda_dtype t, const void *d_pre, const void *d_val, void *d_out, size_t n,
                       cuda_stream stream) {
    CUDA_DISPATCH(t, gate_forward_kernel<act_t><<<GRID(n)>>>((const act_t *)d_pre,
                                                              (const act_t *)d_val, (act_t *)d_out, n));
}

void cuda_gate_backward(cuda_dtype t, const void *d_pre, const void *d_val, const void *d_dout,
                        void *d_dval, void *d_dpre, size_t n, cuda_stream stream) {
    CUDA_DISPATCH(t, gate_backward_kernel<act_t><<<GRID(n)>>>(
                         (const act_t *)d_pre, (const act_t *)d_val, (const act_t *)d_dout,
                         (act_t *)d_dval, (act_t *)d_dpre, n));
}
