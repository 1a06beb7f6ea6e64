/* Code shared by the AVX2 and AVX-512 tables (included by kernels_avx2.c /
 * kernels_avx512.c, so it is compiled for each file's instruction set):
 * scalar f16 loads, the sum of 8 float lanes, the Q4_0 nibble unpack, the
 * software prefetch of the decode loops, and the weight-panel packing of the
 * blocked matmul. */
#ifndef RWKV_AVX_COMMON_H
#define RWKV_AVX_COMMON_H

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/kquants.h"
#include "kernels/kernels.h"

static inline float f16_at(const uint8_t *p) { return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8)); }
/* the 32 bits at p (any alignment): four int8 codes to broadcast */
static inline int32_t i32_at(const void *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The 32 signed values of one Q4_0 block (nibble - 8) as two 16-byte halves. */
static inline void q4_0_unpack(const uint8_t *qs, __m128i *lo, __m128i *hi) {
    const __m128i m4 = _mm_set1_epi8(0x0f), e8 = _mm_set1_epi8(8);
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    *lo = _mm_sub_epi8(_mm_and_si128(b, m4), e8);
    *hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), m4), e8);
}

/* Software prefetch ~12 KB ahead of the row being read. The hardware
 * prefetcher alone kept the slower-consuming streams (the integer kernels of
 * the block formats and k-quants: more work per byte than f32) below the
 * read bandwidth on one core; prefetching this far ahead reached it
 * (docs/perf.md). Called once per row, it covers the next rb bytes of the
 * stream 12 KB ahead. Used by the k-quant row kernels, the AVX-512 rows
 * past the 16-row groups, the k-quants' prompt tiles, and f32 matrices of at
 * most 1 MB (a stream the hardware prefetcher spends getting started); the
 * other decode kernels touch each page ahead instead (prefetch_pages_ahead
 * below), which read faster for them (changes 52, 53, 58-60; f32, f16 and
 * bf16 had lost 10-15% with every line asked for, the integer kernels 10-40%
 * without any prefetch). */
#define PREFETCH_AHEAD 12288
/* Products of several tokens (batched steps, prompts) through the decode's
 * grouped kernels prefetch the same way while a tile has at most this many
 * tokens: a batched step of a few rows is as memory-bound as decode (a
 * batch of 2 of a 0.1B q4_k model took 11 ms a step without, 6 with, where
 * one decode step took 3.5), while a prompt's full tiles are bound by the
 * arithmetic and ran 1.5% slower with it. */
#define PREFETCH_MAX_TOKENS 16
/* __builtin_prefetch with constant arguments: inlined late into an
 * always_inline kernel, _mm_prefetch's hint reached the prefetch as a
 * variable, and GCC 12 dropped the instruction without a word (the 4/5-bit
 * integer row kernels ran without it; docs/perf.md, change 24). */
static inline __attribute__((always_inline)) void prefetch_lines(const uint8_t *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch((const char *)p + o, 0, 3);
}
static inline __attribute__((always_inline)) void prefetch_row_ahead(const uint8_t *row, size_t rb) {
    prefetch_lines(row + PREFETCH_AHEAD, rb);
}
/* One prefetch in each 4 KB page, PAGE_AHEAD bytes ahead of the end of the
 * row being read. The hardware prefetchers follow a stream within a 4 KB page
 * and start again at every page boundary, so a long run of rows read by a
 * kernel that consumes lines slower than a plain sum (f16, bf16: a convert
 * and an FMA per 16 values) paid a cold start every 4 KB. One touch a page
 * starts them early at a cost of a prefetch per 4 KB, where prefetching every
 * line (prefetch_row_ahead) had cost f16 more than it gained (docs/perf.md,
 * changes 26 and 52). `next` is the first address not yet asked for; the
 * caller starts it at the first row and keeps the value returned. */
#define PAGE_AHEAD 8192
static inline __attribute__((always_inline)) const uint8_t *prefetch_pages_ahead(const uint8_t *next,
                                                                                  const uint8_t *row_end) {
    for (const uint8_t *upto = row_end + PAGE_AHEAD; next < upto; next += 4096) __builtin_prefetch(next, 0, 3);
    return next;
}

/* The Q5 and k-quant columns on AVX-512 and every integer row kernel on
 * AVX2 also ask for each line, with the page touch, this far ahead: nearer
 * than PREFETCH_AHEAD, since the touch has the hardware prefetchers bring
 * the page's lines already (docs/perf.md, changes 53 and 58-60): with the
 * touch alone the Q4_K columns read about half the probe's bandwidth. */
#define LINES_AHEAD_WITH_PAGES 6144

/* The first PREFETCH_AHEAD bytes of a range of rows (at most `bytes`), which
 * prefetch_row_ahead, always 12 KB ahead of the kernel, never covers: asked
 * for together at the start rather than missed one line after another. A
 * decode product's chunks are short (a 768 x 768 Q4_K product's are 20-120
 * KB), so their first 12 KB were a large part of them; two-thread decode
 * was 2-3% faster (docs/perf.md, change 51). */
static inline __attribute__((always_inline)) void prefetch_start(const uint8_t *p, size_t bytes) {
    prefetch_lines(p, bytes < PREFETCH_AHEAD ? bytes : PREFETCH_AHEAD);
}

/* ---- k-quant rows (core/kquants.h). Each sub-block's offset (the minimum
 * for Q4_K/Q5_K, the code bias 32 for Q6_K) multiplies the sum of x over the
 * sub-block, so those sums are taken once per product (xs16: the sums of x
 * over every 16 consecutive elements) and a row costs only the code . x dots.
 * kdot(t, row, x, xs16, n) is the variant's row kernel. */
typedef float (*kquant_dot_fn)(dtype t, const uint8_t *row, const float *x, const float *xs16, int n);

static inline void kquant_rows(const matrix *W, const float *x, float *y, int r0, int r1, kquant_dot_fn kdot) {
    const int n = W->cols;
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)n);
    const uint8_t *row = (const uint8_t *)W->data + (size_t)r0 * rb;
    float xs_small[1024], *xs16 = n / 16 <= 1024 ? xs_small : malloc(sizeof(float) * (size_t)(n / 16));
    if (!xs16) {
        matvec_rows_scalar(W, x, y, r0, r1);
        return;
    }
    for (int i = 0; i < n; i += 16) {
        __m256 s = _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8));
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        xs16[i / 16] = _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
    }
    for (int r = r0; r < r1; r++, row += rb) {
        prefetch_row_ahead(row, rb);
        y[r - r0] = kdot(W->type, row, x, xs16, n);
    }
    if (xs16 != xs_small) free(xs16);
}

/* What a variant's ukernel_fixed reads besides its f32 or f16 panel (its
 * `reads` argument): X's rows, X stored transposed (a weight gradient's dYᵀ
 * in place), or a bf16 panel in Wh instead of an f16 one. */
enum { UKERNEL_X_ROWS, UKERNEL_X_TRANSPOSED, UKERNEL_BF16_PANEL };

/* A variant's micro-kernel entry points (kernel_ops.mm: f32 panels, f16
 * panels, bf16 panels, X transposed), each its ukernel_mr(kc, Wp, Wh, X, ldx,
 * reads, Y, ldy, mr, nr, accumulate) with the source fixed. */
#define UKERNEL_ENTRY_POINTS                                                                                    \
    static void ukernel(int kc, const float *Wp, const float *X, size_t ldx, float *Y, size_t ldy, int mr,     \
                        int nr, int accumulate) {                                                               \
        ukernel_mr(kc, Wp, NULL, X, ldx, UKERNEL_X_ROWS, Y, ldy, mr, nr, accumulate);                           \
    }                                                                                                           \
    static void ukernel_f16(int kc, const uint16_t *Wh, const float *X, size_t ldx, float *Y, size_t ldy,      \
                            int mr, int nr, int accumulate) {                                                   \
        ukernel_mr(kc, NULL, Wh, X, ldx, UKERNEL_X_ROWS, Y, ldy, mr, nr, accumulate);                           \
    }                                                                                                           \
    static void ukernel_bf16_panel(int kc, const uint16_t *Wh, const float *X, size_t ldx, float *Y,           \
                                   size_t ldy, int mr, int nr, int accumulate) {                                \
        ukernel_mr(kc, NULL, Wh, X, ldx, UKERNEL_BF16_PANEL, Y, ldy, mr, nr, accumulate);                       \
    }                                                                                                           \
    static void ukernel_xt(int kc, const float *Wp, const float *X, size_t ldx, float *Y, size_t ldy, int mr,  \
                           int nr, int accumulate) {                                                            \
        ukernel_mr(kc, Wp, NULL, X, ldx, UKERNEL_X_TRANSPOSED, Y, ldy, mr, nr, accumulate);                     \
    }

/* ---- weight-panel packing: rows are converted to f32 (or read in place
 * for f32), then transposed 8x8 at a time into Wp[c][NR]. */

static inline void transpose8_store(const float *const src[8], int c, float *dst, int ld) {
    __m256 r0 = _mm256_loadu_ps(src[0] + c), r1 = _mm256_loadu_ps(src[1] + c);
    __m256 r2 = _mm256_loadu_ps(src[2] + c), r3 = _mm256_loadu_ps(src[3] + c);
    __m256 r4 = _mm256_loadu_ps(src[4] + c), r5 = _mm256_loadu_ps(src[5] + c);
    __m256 r6 = _mm256_loadu_ps(src[6] + c), r7 = _mm256_loadu_ps(src[7] + c);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    _mm256_store_ps(dst + 0 * ld, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_store_ps(dst + 1 * ld, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_store_ps(dst + 2 * ld, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_store_ps(dst + 3 * ld, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_store_ps(dst + 4 * ld, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_store_ps(dst + 5 * ld, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_store_ps(dst + 6 * ld, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_store_ps(dst + 7 * ld, _mm256_permute2f128_ps(s3, s7, 0x31));
}

/* Packs rows [r0, r0 + nr_valid) x columns [c0, c0 + kc) of W into Wp[c][NR]
 * (NR a multiple of 8, Wp 32-byte aligned), zero beyond nr_valid. tmp holds
 * NR * kc floats; row_to_f32 is the variant's converter. */
static inline void pack_panel_avx(const matrix *W, int r0, int nr_valid, int c0, int kc, float *Wp, float *tmp,
                                  const int NR, void (*row_to_f32)(dtype, const void *, float *, int)) {
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)W->cols);
    const uint8_t *base = (const uint8_t *)W->data + (size_t)r0 * rb;
    const float *src[32];
    for (int j = 0; j < NR; j++) {
        float *t = tmp + (size_t)j * kc;
        if (j >= nr_valid) {
            memset(t, 0, sizeof(float) * (size_t)kc);
            src[j] = t;
        } else if (W->type == DT_F32) {
            src[j] = (const float *)(base + (size_t)j * rb) + c0;
        } else {
            row_to_f32(W->type, base + (size_t)j * rb + dtype_bytes_for(W->type, (uint64_t)c0), t, kc);
            src[j] = t;
        }
    }
    int c = 0;
    for (; c + 8 <= kc; c += 8)
        for (int jb = 0; jb < NR; jb += 8) transpose8_store(src + jb, c, Wp + (size_t)c * NR + jb, NR);
    for (; c < kc; c++)
        for (int j = 0; j < NR; j++) Wp[(size_t)c * NR + j] = src[j][c];
}

#endif
