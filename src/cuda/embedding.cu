/* Token embedding (docs/model.md §1.2: x = E[tok]), forward and
 * backward; mirrors embedding_forward / embedding_backward of
 * kernels/train_ops.h. The backward is deterministic without atomics: the host
 * groups the rows by token once per batch (a counting sort of N ints), and
 * one block per distinct token adds that token's rows in increasing order. */
#include "cuda/common.cuh"

template <typename T>
__global__ void embedding_forward_kernel(const float *E, const int *tok, int N, int C, T *out) {
    const int n = blockIdx.x;
    const float *e = E + (size_t)tok[n] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) st(out + (size_t)n * C + c, e[c]);
}

void cuda_embedding_forward(cuda_dtype t, const float *d_E, const int *d_tok, int N, int C,
                            void *d_out, cuda_stream stream) {
    CUDA_DISPATCH(t, embedding_forward_kernel<act_t><<<N, 256, 0, stream>>>(d_E, d_tok, N, C,
                                                                          (act_t *)d_out));
}

template <typename T>
__global__ void embedding_backward_kernel(const T *dout, const int *order, const int *seg,
                                          const int *seg_tok, int C, float *dE) {
    const int s = blockIdx.x;
    float *e = dE + (size_t)seg_tok[s] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = e[c];
        for (int i = seg[s]; i < seg[s + 1]; i++) acc += ld(dout + (size_t)order[i] * C + c);
        e[c] = acc;
    }
}

void cuda_embedding_backward(cuda_dtype t, const void *d_dout, const int *d_order, const int *d_seg,
                             const int *d_seg_tok, int n_seg, int C, float *d_dE, cuda_stream stream) {
    if (n_seg <= 0) return;
    CUDA_DISPATCH(t, embedding_backward_kernel<act_t><<<n_seg, 256, 0, stream>>>(
                         (const act_t *)d_dout, d_order, d_seg, d_seg_tok, C, d_dE));
}

int cuda_embedding_plan(const int *tok, int N, int V, int *order, int *seg, int *seg_tok, int *count) {
    for (int v = 0; v < V; v++) count[v] = 0;
    for (int n = 0; n < N; n++) count[tok[n]]++;
    int n_seg = 0, pos = 0;
    for (int v = 0; v < V; v++) { /* count[v] becomes the first slot of token v */
        const int k = count[v];
        count[v] = pos;
        if (k > 0) {
            seg[n_seg] = pos;
            seg_tok[n_seg++] = v;
        }
        pos += k;
    }
    seg[n_seg] = pos;
    for (int n = 0; n < N; n++) order[count[tok[n]]++] = n;
    return n_seg;
}
