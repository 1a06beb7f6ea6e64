/* The device side of the few-row matrix products (gemv.cu): one warp per
 * output row reads the weight row once for all rows in 16-byte packs,
 * several packs in flight per lane, and sums in float32 in a fixed order.
 * Shared by the GEMV launches and the persistent decode program
 * (decode_program.cu), so both compute every output alike. */
#ifndef RWKV_CUDA_GEMV_CUH
#define RWKV_CUDA_GEMV_CUH

#include <cuda_fp16.h>

#include "cuda/common.cuh"

enum { GEMV_UNROLL = 4 }; /* packs a lane loads before using them */

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
    for (int base = lane * E; base < in; base += 32 * E * GEMV_UNROLL) {
        float wv[GEMV_UNROLL][E];
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++)
            if (base + u * 32 * E < in) w.load(wv[u], base + u * 32 * E);
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
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

/* Output o of op: its weight row against the rows of X, the activation (or
 * the accumulation into Y) on the way out; every lane of the warp calls it. */
template <typename T>
__device__ __forceinline__ void gemv_output(const cuda_gemv_op *op, int rows, int o, int lane) {
    using packed_row = typename row_of<T, PACK(T)>::type;
    using plain_row = typename row_of<T, 1>::type;
    float acc[CUDA_GEMV_ROWS];
#pragma unroll
    for (int r = 0; r < CUDA_GEMV_ROWS; r++) acc[r] = 0.0f;
    const bool packed = op->in % PACK(T) == 0 && ((uintptr_t)op->W & 15) == 0 && ((uintptr_t)op->X & 15) == 0 &&
                        op->ldx % 4 == 0;
    if (packed) row_dot<packed_row, PACK(T)>(packed_row(op->W, op->out, op->in, o), op->X, op->ldx, op->in, rows, lane, acc);
    else row_dot<plain_row, 1>(plain_row(op->W, op->out, op->in, o), op->X, op->ldx, op->in, rows, lane, acc);
#pragma unroll
    for (int r = 0; r < CUDA_GEMV_ROWS; r++) {
        if (r >= rows) break;
        const float s = warp_sum(acc[r]);
        float *y = op->Y + (size_t)r * op->out + o;
        if (lane == 0) *y = op->accumulate ? *y + s : activate(s, op->act);
    }
}

/* Bytes of op's weights (CUDA_Q8: the codes of all rows, then their scales). */
__host__ __device__ static inline size_t gemv_weight_bytes(cuda_dtype wt, const cuda_gemv_op *op) {
    const size_t n = (size_t)op->out * op->in;
    return wt == CUDA_Q8 ? n + n / 16 : n * (wt == CUDA_F32 ? 4 : 2);
}

#endif
