/* Q4_K / Q5_K / Q6_K decode products with 8-bit activations on AVX-512BW
 * (kernels/kquant_q8_avx512.c) and AVX2 (kernels/kquant_q8_avx2.c), as
 * llama.cpp computes them. */
#ifndef RWKV_KERNELS_KQUANT_Q8_H
#define RWKV_KERNELS_KQUANT_Q8_H

#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include "core/kquants.h"
#include "kernels/kernels.h"

/* The widest row the activation buffer holds (7B-class FFN rows: 14336). */
#define KQ8_MAX_COLS 16384

/* Whether the 8-bit path takes W and x (both variants' first check): a
 * k-quant of whole super-blocks, at most KQ8_MAX_COLS wide, and a finite x
 * (the float path carries NaN/Inf through as the reference does). */
static inline int kquant_q8_applies(const matrix *W, const float *x) {
    const int n = W->cols;
    if ((W->type != DT_Q4_K && W->type != DT_Q5_K && W->type != DT_Q6_K) || n > KQ8_MAX_COLS || n % QK_K) return 0;
    /* on the bits, without an early exit, so that the loop is vectorized:
     * isfinite with an exit at each element made this check two thirds of
     * quantizing x (a float is finite unless its exponent bits are all set) */
    uint32_t inf_or_nan = 0;
#pragma omp simd reduction(| : inf_or_nan)
    for (int i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        inf_or_nan |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return !inf_or_nan;
}

/* The 8-bit path in two steps, so that the chunks of one product share one
 * quantization of x (kernel_ops.kquant_prepare / kquant_rows): prepare
 * quantizes x to 8 bits per 256 (error at most max|x| / 254 per element of
 * each block) into mem (kquant_bytes(W->cols) bytes, a multiple of 64; mem
 * 64-byte aligned) in the
 * variant's own layout and returns mem, or NULL where the 8-bit path does
 * not apply (another type, rows wider than KQ8_MAX_COLS, a non-finite x);
 * rows sets y[r - r0] = row r of W . x for r in [r0, r1). */
size_t kquant_bytes_avx512(int cols);
void *kquant_prepare_avx512(const matrix *W, const float *x, void *mem);
void kquant_rows_avx512(const matrix *W, const void *acts, float *y, int r0, int r1);
/* Rows r0..r1 for N tokens (acts[n] from prepare for token n), token n's
 * at Y + n ldy, each bit for bit what rows gives for that token alone: the
 * Q4_K / Q5_K / Q6_K groups' codes unpacked once for a tile of tokens. */
void kquant_tokens_avx512(const matrix *W, const void *const *acts, int N, float *Y, size_t ldy, int r0, int r1);
size_t kquant_bytes_avx2(int cols);
void *kquant_prepare_avx2(const matrix *W, const float *x, void *mem);
void kquant_rows_avx2(const matrix *W, const void *acts, float *y, int r0, int r1);
/* kquant_rows_avx2's products from W's grouped copy (kernels/row_groups.h):
 * y[16 (g - g0) + i] = row 16 g + i . x for groups g0..g1, acts from
 * kquant_prepare_avx2. Two builds, the same sums to the bit: vpmaddubsw +
 * vpmaddwd, and AVX-VNNI's vpdpbusd (a CPU with AVX-VNNI only), which
 * kquant_rows_avx2 takes where the CPU has it. */
void kquant_groups_avx2(const matrix *W, const void *acts, float *y, int g0, int g1);
void kquant_groups_avxvnni(const matrix *W, const void *acts, float *y, int g0, int g1);

/* Both steps for one range of rows: 0, or -1 when prepare gives nothing or
 * no memory could be had (the caller then takes the float path). */
static inline int kquant_q8_rows(size_t (*bytes)(int), void *(*prepare)(const matrix *, const float *, void *),
                                 void (*rows)(const matrix *, const void *, float *, int, int), const matrix *W,
                                 const float *x, float *y, int r0, int r1) {
    void *mem = aligned_alloc(64, bytes(W->cols));
    const void *a = mem ? prepare(W, x, mem) : NULL;
    if (a) rows(W, a, y, r0, r1);
    free(mem);
    return a ? 0 : -1;
}

#endif
