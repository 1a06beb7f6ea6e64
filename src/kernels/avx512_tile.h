/* The store of a micro-kernel's register tile on AVX-512 (the float and the
 * bf16 products: kernels_avx512.c, matmul_bf16_avx512.c): mr rows of 32
 * floats, acc[i][0] columns 0..15 and acc[i][1] 16..31, the last panel's
 * columns past nr masked off; accumulate adds what Y holds. Included by
 * AVX-512 files only (their target pragma must be in force). */
#ifndef RWKV_KERNELS_AVX512_TILE_H
#define RWKV_KERNELS_AVX512_TILE_H

#include <immintrin.h>
#include <stddef.h>

static inline __attribute__((always_inline)) void store_tile_x32(__m512 acc[][2], const int mr, int nr, float *Y,
                                                                 size_t ldy, int accumulate) {
    const __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff : nr <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nr - 16)) - 1);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        float *y = Y + (size_t)i * ldy;
        if (accumulate) {
            acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_maskz_loadu_ps(m0, y));
            acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_maskz_loadu_ps(m1, y + 16));
        }
        _mm512_mask_storeu_ps(y, m0, acc[i][0]);
        _mm512_mask_storeu_ps(y + 16, m1, acc[i][1]);
    }
}

#endif
