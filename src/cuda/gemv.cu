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
#include <cuda_fp16.h>

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

/* Asks the L2 cache for the `bytes` bytes at w, one 128-byte line per lane at a time. */
__device__ __forceinline__ void prefetch_l2(const void *w, size_t bytes, int lane) {
    const char *c = (const char *)w;
    for (size_t o = (size_t)lane * 128; o < bytes; o += 32 * 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(c + o));
}

/* The weight row of output o, read E weights at a time as floats: rows of
 * float or bf16 (E > 1: one 16-byte pack), or of int8 codes with one fp16
 * scale per 32 (CUDA_Q8: the codes of all rows, then the scales; E = 16 is
 * one 16-byte pack of codes, half a block). */
template <typename T, int E>
struct float_row {
    const T *w;
    __device__ float_row(const void *W, int out, int in, int o) : w((const T *)W + (size_t)o * in) { (void)out; }
    __device__ __forceinline__ void load(float *x, int i) const { load_w<E>(x, w + i); }
    __device__ __forceinline__ void prefetch(int in, int lane) const { prefetch_l2(w, sizeof(T) * (size_t)in, lane); }
};

template <int E>
struct q8_row {
    const int8_t *q;
    const __half *d;
    __device__ q8_row(const void *W, int out, int in, int o)
        : q((const int8_t *)W + (size_t)o * in),
          d((const __half *)((const int8_t *)W + (size_t)out * in) + (size_t)o * (in / 32)) {}
    __device__ __forceinline__ void load(float *x, int i) const {
        const float s = __half2float(d[i / 32]);
        if constexpr (E == 16) {
            /* code c + 128 as the low byte of the float 2^23 (bits 0x4B0000uu: one byte
             * permute), minus 2^23 + 128, is c exactly: no int-to-float conversion, which
             * runs at a quarter of the FMA rate; s c is exact too (11 + 8 bits) */
            const int4 raw = *reinterpret_cast<const int4 *>(q + i);
            const unsigned words[4] = {(unsigned)raw.x ^ 0x80808080u, (unsigned)raw.y ^ 0x80808080u,
                                       (unsigned)raw.z ^ 0x80808080u, (unsigned)raw.w ^ 0x80808080u};
#pragma unroll
            for (int e = 0; e < 16; e++)
                x[e] = s * (__uint_as_float(__byte_perm(words[e / 4], 0x4B00u, 0x5440u + (e % 4))) - 8388736.0f);
        } else {
#pragma unroll
            for (int e = 0; e < E; e++) x[e] = s * (float)q[i + e];
        }
    }
    __device__ __forceinline__ void prefetch(int in, int lane) const {
        prefetch_l2(q, (size_t)in, lane);
        prefetch_l2(d, sizeof(__half) * (size_t)(in / 32), lane);
    }
};

template <typename T, int E>
struct row_of {
    using type = float_row<T, E>;
};
template <int E>
struct row_of<int8_t, E> {
    using type = q8_row<E>;
};

/* acc[r] += this lane's share of W[o] · X[r], E weights at a time (E > 1:
 * 16-byte packs of W and float4 loads of X, which the caller checked). */
template <typename Row, int E>
__device__ __forceinline__ void row_dot(const Row &w, const float *X, int ldx, int in, int rows, int lane,
                                        float *acc) {
    for (int base = lane * E; base < in; base += 32 * E * UNROLL) {
        float wv[UNROLL][E];
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
            if (base + u * 32 * E < in) w.load(wv[u], base + u * 32 * E);
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
    using packed_row = typename row_of<T, PACK(T)>::type;
    using plain_row = typename row_of<T, 1>::type;
    const packed_row wp(op->W, op->out, op->in, o);
    wp.prefetch(op->in, lane);
    cuda_wait_for_prior_grids();
    float acc[CUDA_GEMV_ROWS];
#pragma unroll
    for (int r = 0; r < CUDA_GEMV_ROWS; r++) acc[r] = 0.0f;
    const bool packed = op->in % PACK(T) == 0 && ((uintptr_t)op->W & 15) == 0 && ((uintptr_t)op->X & 15) == 0 &&
                        op->ldx % 4 == 0;
    if (packed) row_dot<packed_row, PACK(T)>(wp, op->X, op->ldx, op->in, g.rows, lane, acc);
    else row_dot<plain_row, 1>(plain_row(op->W, op->out, op->in, o), op->X, op->ldx, op->in, g.rows, lane, acc);
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
