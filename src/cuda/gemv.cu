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
#include "cuda/gemv.cuh"

enum { THREADS = 128 }; /* threads per block */

typedef struct gemv_group {
    cuda_gemv_op op[CUDA_GEMV_MAX_OPS];
    unsigned first_block[CUDA_GEMV_MAX_OPS + 1]; /* blocks of op p: [first_block[p], first_block[p + 1]) */
    int n, rows;
} gemv_group;

/* T: float, bf16, or int8_t for CUDA_Q8 rows. */
template <typename T>
__global__ void gemv_kernel(gemv_group g) {
    cuda_let_dependents_start();
    int p = 0;
    while (p + 1 < g.n && blockIdx.x >= g.first_block[p + 1]) p++;
    const cuda_gemv_op *op = &g.op[p];
    const int o = (int)(((blockIdx.x - g.first_block[p]) * (size_t)blockDim.x + threadIdx.x) / 32);
    const int lane = threadIdx.x & 31;
    if (o >= op->out) return;
    typename row_of<T, PACK(T)>::type(op->W, op->out, op->in, o).prefetch(op->in, lane);
    cuda_wait_for_prior_grids();
    gemv_output<T>(op, g.rows, o, lane);
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
    if (wt == CUDA_Q8) cuda_launch_early(gemv_kernel<int8_t>, grid, dim3(THREADS), 0, stream, g);
    else if (wt == CUDA_BF16) cuda_launch_early(gemv_kernel<bf16>, grid, dim3(THREADS), 0, stream, g);
    else cuda_launch_early(gemv_kernel<float>, grid, dim3(THREADS), 0, stream, g);
}

/* One thread per 16 codes (half a block): their scale, 16 bf16 out. */
__global__ void dequant_q8_kernel(const int8_t *q, const __half *d, size_t n, int cols, bf16 *out) {
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n / 16; k += (size_t)gridDim.x * blockDim.x) {
        const size_t i = 16 * k;
        const float s = __half2float(d[(i / cols) * (cols / 32) + (i % cols) / 32]);
        const int4 raw = *reinterpret_cast<const int4 *>(q + i);
        const int8_t *b = reinterpret_cast<const int8_t *>(&raw);
        float x[16];
#pragma unroll
        for (int e = 0; e < 16; e++) x[e] = s * (float)b[e];
        store_pack(out + i, x);
        store_pack(out + i + 8, x + 8);
    }
}

void cuda_dequant_q8(const void *q8, int rows, int cols, void *d_bf16, cuda_stream stream) {
    const size_t n = (size_t)rows * cols;
    const int8_t *q = (const int8_t *)q8;
    const unsigned blocks = cuda_blocks(n / 16, 256) < 4096 ? cuda_blocks(n / 16, 256) : 4096;
    dequant_q8_kernel<<<blocks, 256, 0, stream>>>(q, (const __half *)(q + n), n, cols, (bf16 *)d_bf16);
}
