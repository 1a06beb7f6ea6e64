/* The RWKV-5.2 / RWKV-6 WKV of inference (kernels/wkv5.c) continuing each
 * stream's float32 state, laid out as the RWKV-7 one (wkv7_state.cu): a
 * block per (head, stream), a thread per value row, the state transposed in
 * shared memory, each token's r, k, w staged there. */
#include "cuda/rwkv_infer.cuh"

__global__ void wkv5_state_kernel(float *const *states, size_t off, int per, int H, int N, const float *r,
                                  const float *k, const float *v, const float *w, size_t w_stride, const float *u,
                                  float *y) {
    extern __shared__ float sm[];
    float *S = sm, *vr = S + N * N, *vk = vr + N, *vw = vk + N, *vu = vw + N;
    const int h = blockIdx.x, stream = blockIdx.y, i = threadIdx.x, A = H * N;
    float *st = states[stream] + off + (size_t)h * N * N;
    for (int e = i; e < N * N; e += N) S[(e % N) * N + e / N] = st[e];
    vu[i] = u[h * N + i];
    __syncthreads();
    for (int t = 0; t < per; t++) {
        const size_t row = (size_t)stream * per + t, o = row * A + (size_t)h * N;
        vr[i] = r[o + i], vk[i] = k[o + i], vw[i] = w[row * w_stride + (size_t)h * N + i];
        const float vi = v[o + i];
        __syncthreads();
        float acc = 0.0f;
        for (int j = 0; j < N; j++) {
            const float kv = vk[j] * vi, s = S[j * N + i];
            acc += vr[j] * (s + vu[j] * kv);
            S[j * N + i] = vw[j] * s + kv;
        }
        y[o + i] = acc;
        __syncthreads(); /* the next token's inputs overwrite the staged ones */
    }
    for (int e = i; e < N * N; e += N) st[e] = S[(e % N) * N + e / N];
}

void cuda_wkv5_state(const infer_rows *rows, size_t off, int H, int N, const float *r, const float *k,
                     const float *v, const float *w, size_t w_stride, const float *u, float *y, cudaStream_t s) {
    const size_t shared = ((size_t)N * N + 4 * (size_t)N) * sizeof(float);
    if (shared > 48 * 1024)
        cudaFuncSetAttribute(wkv5_state_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shared);
    wkv5_state_kernel<<<dim3(H, rows->n_streams), N, shared, s>>>(rows->states, off, rows->per, H, N, r, k, v, w,
                                                                  w_stride, u, y);
}
