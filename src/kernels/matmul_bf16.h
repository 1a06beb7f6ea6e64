/* Sequence-mode products with bf16 operands on AVX-512 BF16
 * (kernels/matmul_bf16_avx512.c): for block-quantized weights in prompts,
 * used by matmul when kernels_cpu_supports("avx512bf16") and the reduced-
 * precision activations are on (kernels_int8_activations). Panels of
 * MATMUL_BF16_NR weight rows, register tiles of MATMUL_BF16_MR tokens. */
#ifndef RWKV_KERNELS_MATMUL_BF16_H
#define RWKV_KERNELS_MATMUL_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

enum { MATMUL_BF16_MR = 8, MATMUL_BF16_NR = 32 };

/* out[i] = x[i] rounded to bf16 (nearest even), i < n. */
void matmul_bf16_convert(const float *x, size_t n, uint16_t *out);
/* Rows [r0, r0 + nr_valid) x columns [c0, c0 + kc) of W (kc even) as
 * [kc/2][MATMUL_BF16_NR] bf16 pairs, zero rows past nr_valid; tmp holds
 * MATMUL_BF16_NR * kc floats, row_to_f32 converts a row slice. */
void matmul_bf16_pack(const matrix *W, int r0, int nr_valid, int c0, int kc, uint16_t *Wp, float *tmp,
                      void (*row_to_f32)(dtype, const void *, float *, int));
/* Y[i][j] (+)= sum_{c<kc} X[i][c] * W[c][j], i < mr (<= MR), j < nr (<= NR):
 * X rows of bf16 ldx apart, the panel as matmul_bf16_pack writes it. */
void matmul_bf16_ukernel(int kc, const uint16_t *Wp, const uint16_t *X, size_t ldx, float *Y, size_t ldy, int mr,
                         int nr, int accumulate);

#endif
