/* The pieces of the few-row products (gemv.cu) that other kernels share:
 * a warp's sum over its part of a weight row in the GEMV's order (row_dot),
 * the lanes' tree of sums, the activations, and how many warps share one
 * output (gemv_split). A kernel that sums a row through these gets the
 * GEMV's result for it bit for bit, wherever the row's weights come from
 * (global memory, or shared memory through staged_row). */
#ifndef RWKV_CUDA_GEMV_CUH
#define RWKV_CUDA_GEMV_CUH

#include "cuda/common.cuh"

/* packs a lane loads before using them; threads and warps per GEMV block */
enum { GEMV_UNROLL = 4, GEMV_THREADS = 128, GEMV_WARPS = GEMV_THREADS / 32 };

__device__ __forceinline__ float activate(float x, int act) {
    if (act == CUDA_ACT_TANH) return tanhf(x);
    if (act == CUDA_ACT_SIGMOID) return 1.0f / (1.0f + expf(-x));
    if (act == CUDA_ACT_RELU2) return x > 0.0f ? x * x : 0.0f;
    return x;
}

/* A warp's part of a bf16 weight row that a bulk copy has put in shared
 * memory (staged_gemv_kernel): fetched by the same indices as the row in
 * global memory, so row_dot visits it in the same order. */
struct staged_row {
    struct bits {
        int4 v;
    };
    const bf16 *s; /* element `begin` of the row */
    int begin;
    static constexpr bool SCALED = false;
    __device__ __forceinline__ bits fetch(int i) const { return {*reinterpret_cast<const int4 *>(s + (i - begin))}; }
    __device__ __forceinline__ void unpack(const bits &b, float *x) const {
        const bf16 *e = reinterpret_cast<const bf16 *>(&b.v);
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] = ld(e + k);
    }
};

/* acc[j][r] += this lane's share of W[o + j][begin, end) · X[r][begin, end)
 * for the OUTS outputs of a warp, E weights at a time (E > 1: 16-byte packs
 * of W and float4 loads of X, which the caller checked). Each X load serves
 * all OUTS outputs: with several rows, loading X for every weight pack would
 * bound the product by the L1 cache instead of the memory. A lane visits its
 * packs in the same order whatever OUTS and ROWS are, so every sum is too. */
template <int ROWS, int OUTS, typename Row, int E>
__device__ __forceinline__ void row_dot(const Row *w, const float *X, int ldx, int begin, int end, int rows, int lane,
                                        float (*acc)[ROWS]) {
    constexpr int U = OUTS >= GEMV_UNROLL ? 1 : GEMV_UNROLL / OUTS; /* packs in flight per output */
    for (int base = begin + lane * E; base < end; base += 32 * E * U) {
        typename Row::bits raw[U][OUTS];
#pragma unroll
        for (int u = 0; u < U; u++)
            if (base + u * 32 * E < end)
#pragma unroll
                for (int j = 0; j < OUTS; j++) raw[u][j] = w[j].fetch(base + u * 32 * E);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = base + u * 32 * E;
            if (i >= end) break;
            float wv[OUTS][E];
#pragma unroll
            for (int j = 0; j < OUTS; j++) w[j].unpack(raw[u][j], wv[j]);
#pragma unroll
            for (int r = 0; r < ROWS; r++) {
                if (r >= rows) break;
                float xv[E];
                if constexpr (E > 1) {
#pragma unroll
                    for (int e = 0; e < E; e += 4) load_pack(xv + e, X + (size_t)r * ldx + i + e);
                } else {
                    xv[0] = X[(size_t)r * ldx + i];
                }
#pragma unroll
                for (int j = 0; j < OUTS; j++) {
                    if constexpr (Row::SCALED) {
                        float pack = 0.0f;
#pragma unroll
                        for (int e = 0; e < E; e++) pack += wv[j][e] * xv[e];
                        acc[j][r] += w[j].scale(raw[u][j]) * pack;
                    } else {
#pragma unroll
                        for (int e = 0; e < E; e++) acc[j][r] += wv[j][e] * xv[e];
                    }
                }
            }
        }
    }
}

/* The warp's N = 2^LOG_N partial sums (v[i], one set per lane) summed over
 * the lanes in one tree of 31 shuffles instead of N warp_sums of 5: at each
 * step a lane keeps half of its values and adds its partner's same half, so
 * sum i ends in the lanes l with l >> (5 - LOG_N) == i. Every sum pairs the
 * lanes in warp_sum's order (l ^ 16, then 8, 4, 2, 1), so it is the same
 * float as warp_sum gives for it. Returns the lane's sum. */
template <int LOG_N>
__device__ __forceinline__ float lanes_sum(float *v, int lane) {
    int n = 1 << LOG_N, o = 16;
#pragma unroll
    for (int step = 0; step < LOG_N; step++, o >>= 1) {
        n /= 2;
        const bool upper = (lane & o) != 0;
#pragma unroll
        for (int i = 0; i < (1 << LOG_N) / 2; i++) {
            if (i >= n) break;
            const float send = upper ? v[i] : v[i + n], keep = upper ? v[i + n] : v[i];
            v[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
        }
    }
#pragma unroll
    for (int step = LOG_N; step < 5; step++, o >>= 1) v[0] += __shfl_xor_sync(0xffffffffu, v[0], o);
    return v[0];
}

__host__ __device__ constexpr int log2_of(int n) { return n <= 1 ? 0 : 1 + log2_of(n / 2); }

/* Warps that share one output, each summing a contiguous part of the row.
 * A product of few long rows (the channel mix's value: 2048 rows of 8192)
 * otherwise has too few warps to keep enough loads in flight, and a warp with
 * a shorter part ends its chain of dependent loads sooner. Split while the op
 * keeps at most 16384 warps (the channel mix's key product, 8192 rows, in two
 * parts: 1.5B bf16 decode 1.87 -> 1.82 ms on an H100), parts of at least
 * 1024 weights, and whole rounds of packs per lane (so a part starts on a
 * pack, and on a q8 block). The order of the sum depends only on the shape,
 * so a row's result is the same whatever rows share the launch. */
static inline int gemv_split(int out, int in, int pack) {
    int s = 1;
    while (2 * s <= GEMV_WARPS && (size_t)out * 2 * s <= 16384 && in / (2 * s) >= 1024 &&
           in % (2 * s * 32 * pack) == 0)
        s *= 2;
    return s;
}

#endif
