/* The RWKV-7 WKV of inference (kernels/wkv7.c, the generalised delta rule)
 * continuing each stream's float32 state: one block per (head, stream), one
 * thread per value row i of the head's N x N state, which sits in shared
 * memory transposed (S[j][i]) so that the N threads touch consecutive words.
 * The stream's tokens go through in order; each token's r, w, k, a, b are
 * staged in shared memory for every thread of the head. */
#include "cuda/rwkv_infer.cuh"

__global__ void wkv7_state_kernel(float *const *states, size_t off, int per, int H, int N, const float *r,
                                  const float *w, const float *k, const float *v, const float *a, const float *b,
                                  float *y) {
    extern __shared__ float sm[];
    float *S = sm, *vr = S + N * N, *vw = vr + N, *vk = vw + N, *va = vk + N, *vb = va + N;
    const int h = blockIdx.x, stream = blockIdx.y, i = threadIdx.x, A = H * N;
    float *st = states[stream] + off + (size_t)h * N * N;
    for (int e = i; e < N * N; e += N) S[(e % N) * N + e / N] = st[e];
    __syncthreads();
    for (int t = 0; t < per; t++) {
        const size_t o = ((size_t)stream * per + t) * A + (size_t)h * N;
        vr[i] = r[o + i], vw[i] = w[o + i], vk[i] = k[o + i], va[i] = a[o + i], vb[i] = b[o + i];
        const float vi = v[o + i];
        __syncthreads();
        float sa = 0.0f, acc = 0.0f;
        for (int j = 0; j < N; j++) sa += S[j * N + i] * va[j];
        for (int j = 0; j < N; j++) {
            const float s = S[j * N + i] * vw[j] + sa * vb[j] + vi * vk[j];
            S[j * N + i] = s;
            acc += s * vr[j];
        }
        y[o + i] = acc;
        __syncthreads(); /* the next token's inputs overwrite the staged ones */
    }
    for (int e = i; e < N * N; e += N) st[e] = S[(e % N) * N + e / N];
}

void cuda_wkv7_state(const infer_rows *rows, size_t off, int H, int N, const float *r, const float *w,
                     const float *k, const float *v, const float *a, const float *b, float *y, cudaStream_t s) {
    const size_t shared = ((size_t)N * N + 5 * (size_t)N) * sizeof(float);
    if (shared > 48 * 1024)
        cudaFuncSetAttribute(wkv7_state_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shared);
    wkv7_state_kernel<<<dim3(H, rows->n_streams), N, shared, s>>>(rows->states, off, rows->per, H, N, r, w, k, v,
                                                                  a, b, y);
}
