/* Matrix products of a few rows (decode): Y[r] (+)= act(W X[r]) with one warp
 * per output, the weight row read once for all rows in 16-byte packs,
 * several packs in flight per lane. Where a product is bound by reading the
 * weights this reaches the bandwidth that a general GEMM of one column does
 * not; it reads float32 inputs directly (no bf16 copy of them first), sums in
 * float32 in a fixed order (a row's result does not depend on the other
 * rows), and runs several products of the same rows in one launch.
 *
 * A launch may begin before the kernel ahead of it in the stream has ended
 * (programmatic dependent launch): its warps first ask the L2 cache for their
 * weight rows, which no earlier kernel writes, and only then wait for the
 * earlier kernels and read X. So the weights of a product stream in while
 * the small kernels between products (norms, shifts, the WKV) still run. */
#include "cuda/common.cuh"

enum { UNROLL = 4, THREADS = 128 }; /* packs a lane loads before using them; threads per block */

typedef struct gemv_group {
    cuda_gemv_op op[CUDA_GEMV_MAX_OPS];
    unsigned first_block[CUDA_GEMV_MAX_OPS + 1]; /* blocks of op p: [first_block[p], first_block[p + 1]) */
    int n, rows;
} gemv_group;

__device__ __forceinline__ float activate(float x, int act) {
    if (act == CUDA_ACT_TANH) return tanhf(x);
    if (act == CUDA_ACT_SIGMOID) return 1.0f / (1.0f + expf(-x));
    if (act == CUDA_ACT_RELU2) return x > 0.0f ? x * x : 0.0f;
    return x;
}

/* acc[r] += this lane's share of W[o] · X[r], E weights at a time (E > 1:
 * 16-byte packs of W and float4 loads of X, which the caller checked). */
template <typename T, int E>
__device__ __forceinline__ void row_dot(const T *w, const float *X, int ldx, int in, int rows, int lane, float *acc) {
    for (int base = lane * E; base < in; base += 32 * E * UNROLL) {
        float wv[UNROLL][E];
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            if (base + u * 32 * E < in) load_w<E>(wv[u], w + base + u * 32 * E);
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int i = base + u * 32 * E;
            if (i >= in) break;
#pragma unroll
            for (int r = 0; r < CUDA_GEMV_ROWS; r++) {
                if (r >= rows) break;
                float xv[E];
                if constexpr (E > 1) {
#pragma unroll
                    for (int e = 0; e < E; e += 4) load_pack(xv + e, X + (size_t)r * ldx + i + e);
                } else {
                    xv[0] = X[(size_t)r * ldx + i];
                }
#pragma unroll
                for (int e = 0; e < E; e++) acc[r] += wv[u][e] * xv[e];
            }
        }
    }
}

/* Asks the L2 cache for the `bytes` bytes at w, one 128-byte line per lane at a time. */
__device__ __forceinline__ void prefetch_l2(const void *w, size_t bytes, int lane) {
    const char *c = (const char *)w;
    for (size_t o = (size_t)lane * 128; o < bytes; o += 32 * 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(c + o));
}

template <typename T>
__global__ void gemv_kernel(gemv_group g) {
    cuda_let_dependents_start();
    int p = 0;
    while (p + 1 < g.n && blockIdx.x >= g.first_block[p + 1]) p++;
    const cuda_gemv_op *op = &g.op[p];
    const int o = (int)(((blockIdx.x - g.first_block[p]) * (size_t)blockDim.x + threadIdx.x) / 32);
    const int lane = threadIdx.x & 31;
    if (o >= op->out) return;
    const T *w = (const T *)op->W + (size_t)o * op->in;
    prefetch_l2(w, sizeof(T) * (size_t)op->in, lane);
    cuda_wait_for_prior_grids();
    float acc[CUDA_GEMV_ROWS];
#pragma unroll
    for (int r = 0; r < CUDA_GEMV_ROWS; r++) acc[r] = 0.0f;
    const bool packed = op->in % PACK(T) == 0 && ((uintptr_t)op->W & 15) == 0 && ((uintptr_t)op->X & 15) == 0 &&
                        op->ldx % 4 == 0;
    if (packed) row_dot<T, PACK(T)>(w, op->X, op->ldx, op->in, g.rows, lane, acc);
    else row_dot<T, 1>(w, op->X, op->ldx, op->in, g.rows, lane, acc);
#pragma unroll
    for (int r = 0; r < CUDA_GEMV_ROWS; r++) {
        if (r >= g.rows) break;
        const float s = warp_sum(acc[r]);
        float *y = op->Y + (size_t)r * op->out + o;
        if (lane == 0) *y = op->accumulate ? *y + s : activate(s, op->act);
    }
}

void cuda_gemv_group(cuda_dtype wt, const cuda_gemv_op *ops, int n_ops, int rows, cuda_stream stream) {
    gemv_group g;
    memset(&g, 0, sizeof g);
    g.n = n_ops, g.rows = rows;
    for (int p = 0; p < n_ops; p++) {
        g.op[p] = ops[p];
        g.first_block[p + 1] = g.first_block[p] + (unsigned)(((size_t)ops[p].out * 32 + THREADS - 1) / THREADS);
    }
    const dim3 grid(g.first_block[n_ops]);
    if (wt == CUDA_BF16) cuda_launch_early(gemv_kernel<bf16>, grid, dim3(THREADS), 0, stream, g);
    else cuda_launch_early(gemv_kernel<float>, grid, dim3(THREADS), 0, stream, g);
}
