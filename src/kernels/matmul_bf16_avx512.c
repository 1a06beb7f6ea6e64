/* Sequence-mode products of block-quantized weights with bf16 operands, on
 * AVX-512 BF16 (vdpbf16ps: 16 lanes, each adding the products of two bf16
 * pairs into a float, twice the multiply-adds of an fp32 FMA).
 *
 * Why: in a prompt the float micro-kernel's speed does not depend on the
 * weights' type, so a Q4_K or Q8_0 file prefilled no faster than f32 while
 * llama.cpp multiplies them in 8-bit integers. Rounding both operands to
 * bf16 (8 significant bits, as the 8-bit activations of decode keep about
 * 7) doubles the products per instruction. The weights are block-quantized
 * already, so nothing exact is lost that the file had; f32/f16/bf16 files
 * keep the float path, and RWKV_ACTIVATIONS=f32 turns this one off
 * (kernels_int8_activations).
 *
 * Layouts: a weight panel holds NR = 32 rows of a kc slice as [kc/2][32]
 * pairs (weights c and c + 1 of row j adjacent, bf16 each); x rows are bf16,
 * so the pair (c, c + 1) of a token is one 32-bit broadcast. Products of
 * bf16 values are exact in float; the sums run in float like the float
 * kernel's. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))

#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")
#endif

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/avx512_tile.h"
#include "kernels/avx_common.h"
#include "kernels/matmul_bf16.h"

enum { MR = 8, NR = 32 };

/* Rounded to nearest even, 32 at a time (the tail through a masked load). */
void matmul_bf16_convert(const float *x, size_t n, uint16_t *out) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512((void *)(out + i), (__m512i)v);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
        _mm256_mask_storeu_epi16(out + i, m, (__m256i)v);
    }
}

/* Rows [r0, r0 + nr_valid) x columns [c0, c0 + kc) of W as bf16 pairs
 * [kc/2][NR] (zero rows past nr_valid): each row converted to float
 * (row_to_f32 of the variant), rounded to bf16 pairs in place, then the
 * [NR][kc/2] pairs transposed 8 x 8 as 32-bit values. tmp holds NR * kc floats. */
void matmul_bf16_pack(const matrix *W, int r0, int nr_valid, int c0, int kc, uint16_t *Wp, float *tmp,
                      void (*row_to_f32)(dtype, const void *, float *, int)) {
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)W->cols);
    const uint8_t *base = (const uint8_t *)W->data + (size_t)r0 * rb;
    const float *src[NR];
    for (int j = 0; j < NR; j++) {
        float *t = tmp + (size_t)j * kc;
        if (j < nr_valid) {
            row_to_f32(W->type, base + (size_t)j * rb + dtype_bytes_for(W->type, (uint64_t)c0), t, kc);
            matmul_bf16_convert(t, (size_t)kc, (uint16_t *)(void *)t); /* pairs over the row's first half */
        } else {
            memset(t, 0, sizeof(float) * (size_t)kc / 2);
        }
        src[j] = t;
    }
    float *dst = (float *)(void *)Wp; /* pairs moved as 32-bit values: no arithmetic touches them */
    for (int p = 0; p < kc / 2; p += 8)
        for (int jb = 0; jb < NR; jb += 8) transpose8_store(src + jb, p, dst + (size_t)p * NR + jb, NR);
}

static inline __attribute__((always_inline)) void ukernel_fixed(int kc, const uint16_t *Wp, const uint16_t *X,
                                                                 size_t ldx, float *Y, size_t ldy, const int mr,
                                                                 int nr, int accumulate) {
    __m512 acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int c = 0; c < kc; c += 2) {
        const __m512bh w0 = (__m512bh)_mm512_load_si512((const void *)(Wp + (size_t)c * NR));
        const __m512bh w1 = (__m512bh)_mm512_load_si512((const void *)(Wp + (size_t)c * NR + 32));
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            uint32_t pair;
            memcpy(&pair, X + (size_t)i * ldx + c, sizeof pair);
            const __m512bh xb = (__m512bh)_mm512_set1_epi32((int)pair);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], xb, w0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], xb, w1);
        }
    }
    store_tile_x32(acc, mr, nr, Y, ldy, accumulate);
}

void matmul_bf16_ukernel(int kc, const uint16_t *Wp, const uint16_t *X, size_t ldx, float *Y, size_t ldy, int mr,
                         int nr, int accumulate) {
    switch (mr) {
    case 8: ukernel_fixed(kc, Wp, X, ldx, Y, ldy, 8, nr, accumulate); break;
    case 7: ukernel_fixed(kc, Wp, X, ldx, Y, ldy, 7, nr, accumulate); break;
    case 6: ukernel_fixed(kc, Wp, X, ldx, Y, ldy, 6, nr, accumulate); break;
    case 5: ukernel_fixed(kc, Wp, X, ldx, Y, ldy, 5, nr, accumulate); break;
    case 4: ukernel_fixed(kc, Wp, X, ldx, Y, ldy, 4, nr, accumulate); break;
    case 3: ukernel_fixed(kc, Wp, X, ldx, Y, ldy, 3, nr, accumulate); break;
    case 2: ukernel_fixed(kc, Wp, X, ldx, Y, ldy, 2, nr, accumulate); break;
    default: ukernel_fixed(kc, Wp, X, ldx, Y, ldy, 1, nr, accumulate); break;
    }
}

#ifdef __clang__
#pragma clang attribute pop
#endif

#endif
