/* Decode products of Q4_K, Q5_K and Q6_K rows on AVX2 with the activations
 * quantized to 8 bits per 256, the scheme of kernels/kquant_q8_avx512.c in
 * 32-byte registers: x as int8 codes with one float scale per 256
 * (dx = max|x| / 127), weight codes times activation codes in vpmaddubsw
 * (pairs summed to int16), times the sub-block scale in vpmaddwd (pairs
 * summed to int32), one float multiply per super-block for d·dx.
 *
 * Without AVX-512's word permute the sub-block scales are broadcast instead:
 * a 32-byte register holds the 32 codes of one Q4_K/Q5_K sub-block (one
 * scale), or of two Q6_K sub-blocks of 16, one per 128-bit half (two
 * scales). The activations are read in their natural order.
 *
 * Exactness and ranges as in the AVX-512 file: the integer sums are exact
 * (codes <= 63 times |q| <= 127, two summed, fit int16); the only new error
 * is the rounding of x, at most dx/2 per element. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))

#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/avx_common.h"
#include "kernels/kquant_q8.h"
#include "kernels/row_groups.h"

typedef struct q8_acts {
    float dx[KQ8_MAX_COLS / QK_K];
    int8_t q[KQ8_MAX_COLS] __attribute__((aligned(32)));
    int16_t sum16[KQ8_MAX_COLS / 16]; /* sums of q over 16 (Q6_K's code bias) */
    int32_t bias16[KQ8_MAX_COLS / 16]; /* -32 x sum16: a grouped Q6_K sub-block's sum starts there */
    float xs32[KQ8_MAX_COLS / 32];    /* sums of x over 32 (the Q4_K/Q5_K minimums) */
} q8_acts;

static void quantize_acts(const float *x, int n, q8_acts *a) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); /* undoes the packs' lane interleave */
    for (int b = 0; b < n / QK_K; b++) {
        const float *xb = x + QK_K * b;
        __m256 mx = _mm256_setzero_ps();
        for (int i = 0; i < QK_K; i += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + i)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4), id = activation_scale_ok(amax / 127.0f) ? 127.0f / amax : 0.0f;
        a->dx[b] = amax / 127.0f;
        const __m256 vid = _mm256_set1_ps(id);
        int8_t *q = a->q + QK_K * b;
        for (int i = 0; i < QK_K; i += 32) {
            /* round to nearest (even on ties) in the current mode; |x / dx| <= 127 */
            __m256i v[4];
            for (int k = 0; k < 4; k++) v[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i + 8 * k), vid));
            const __m256i w16 = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
            _mm256_store_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(w16, order));
        }
        for (int s = 0; s < QK_K / 16; s++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += q[16 * s + l];
            a->sum16[QK_K / 16 * b + s] = (int16_t)sum;
            a->bias16[QK_K / 16 * b + s] = -32 * sum;
        }
        for (int s = 0; s < QK_K / 32; s++) {
            const __m256 v = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(xb + 32 * s), _mm256_loadu_ps(xb + 32 * s + 8)),
                                           _mm256_add_ps(_mm256_loadu_ps(xb + 32 * s + 16), _mm256_loadu_ps(xb + 32 * s + 24)));
            a->xs32[QK_K / 32 * b + s] = hsum8(v);
        }
    }
}

/* Σ over one sub-block of 32: codes (0..31) against 32 activation codes, times the scale */
static inline __m256i sub_block(__m256i codes, const int8_t *xq, int scale) {
    const __m256i p = _mm256_maddubs_epi16(codes, _mm256_load_si256((const __m256i *)xq));
    return _mm256_madd_epi16(p, _mm256_set1_epi16((short)scale));
}

/* One Q4_K (qh NULL) or Q5_K row: group g of a super-block is 32 bytes of
 * codes, low nibbles sub-block 2g (x 64g..64g+31), high nibbles 2g + 1
 * (x 64g+32..64g+63); Q5_K's fifth bit of element l of sub-block s is bit s
 * of qh[l]. The minimums come from the exact sums of x over 32. */
static float dot_q45_k(const uint8_t *w, const q8_acts *a, int n, int q5) {
    const __m256i nib = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(0x01);
    const size_t bb = q5 ? 176 : 144;
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int b = 0; b < n / QK_K; b++, w += bb) {
        uint8_t sc[8], mn[8];
        kquant_unpack_scales(w + 4, sc, mn);
        const uint8_t *qs = w + (q5 ? 48 : 16);
        const __m256i qh = q5 ? _mm256_loadu_si256((const __m256i *)(w + 16)) : _mm256_setzero_si256();
        const int8_t *xq = a->q + QK_K * b;
        __m256i sum = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
            __m256i lo = _mm256_and_si256(v, nib), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
            if (q5) { /* bits 2g and 2g + 1 of each byte to bit 4 */
                const __m256i b_lo = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), one);
                const __m256i b_hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g + 1), one);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(b_lo, 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(b_hi, 4));
            }
            sum = _mm256_add_epi32(sum, sub_block(lo, xq + 64 * g, sc[2 * g]));
            sum = _mm256_add_epi32(sum, sub_block(hi, xq + 64 * g + 32, sc[2 * g + 1]));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(f16_at(w) * a->dx[b]), acc);
        float m = 0;
        for (int s = 0; s < 8; s++) m += (float)mn[s] * a->xs32[8 * b + s];
        mins += f16_at(w + 2) * m;
    }
    return hsum8(acc) - mins;
}

/* One Q6_K row: per half h of 128 weights, ql[64h..64h+63] holds the low
 * nibbles of weights 0..63 (low nibbles) and 64..127 (high nibbles), qh
 * [32h..32h+31] their top two bits, pair k of each byte for quarter k. A
 * quarter is 32 weights, two sub-blocks of 16: one scale per 128-bit half.
 * Codes 0..63 (bias 32); the bias comes back through the sums of q over 16. */
static float dot_q6_k(const uint8_t *w, const q8_acts *a, int n) {
    const __m256i nib = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(0x03);
    __m256 acc = _mm256_setzero_ps();
    float bias = 0;
    for (int b = 0; b < n / QK_K; b++, w += 210) {
        const int8_t *sc = (const int8_t *)(w + 192);
        const int8_t *xq = a->q + QK_K * b;
        __m256i sum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * h));
            for (int k = 0; k < 4; k++) {
                const __m256i ql = _mm256_loadu_si256((const __m256i *)(w + 64 * h + 32 * (k & 1)));
                const __m256i low = k < 2 ? _mm256_and_si256(ql, nib) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), nib);
                const __m256i top = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), two);
                const __m256i codes = _mm256_or_si256(low, _mm256_slli_epi16(top, 4));
                /* quarter k: weights 128h + 32k .. + 31, sub-blocks 8h + 2k and 8h + 2k + 1 */
                const int s0 = 8 * h + 2 * k;
                const __m256i p = _mm256_maddubs_epi16(codes, _mm256_load_si256((const __m256i *)(xq + 128 * h + 32 * k)));
                const __m256i scales = _mm256_setr_m128i(_mm_set1_epi16(sc[s0]), _mm_set1_epi16(sc[s0 + 1]));
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, scales));
            }
        }
        int bsum = 0;
        for (int s = 0; s < 16; s++) bsum += sc[s] * a->sum16[16 * b + s];
        const float ddx = f16_at(w + 208) * a->dx[b];
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(ddx), acc);
        bias += 32.0f * ddx * (float)bsum;
    }
    return hsum8(acc) - bias;
}

/* ---- the grouped copy (kernels/kquant_q8_avx2_groups.h) ---- */

/* byte k of every 32-bit lane, zero-extended; x's int8 codes e..e+3 in every lane */
static inline __m256i lane_byte8(__m256i v, int k) {
    return _mm256_and_si256(_mm256_srli_epi32(v, 8 * k), _mm256_set1_epi32(0xff));
}
static inline __m256i x_quad8(const int8_t *q) { return _mm256_set1_epi32(i32_at(q)); }

/* kquant_unpack_scales on rows 8 hf .. 8 hf + 7 of column col: scales and minimums 0-3 and 4-7 */
static inline void scales_mins8(const uint8_t *col, int hf, __m256i sc[2], __m256i mn[2]) {
    const __m256i lo6 = _mm256_set1_epi32(0x3f3f3f3f), lo4 = _mm256_set1_epi32(0x0f0f0f0f);
    const __m256i top2 = _mm256_set1_epi32(0x03030303);
    const __m256i w0 = _mm256_load_si256((const __m256i *)(col + 64 + 32 * hf));
    const __m256i w1 = _mm256_load_si256((const __m256i *)(col + 128 + 32 * hf));
    const __m256i w2 = _mm256_load_si256((const __m256i *)(col + 192 + 32 * hf));
    sc[0] = _mm256_and_si256(w0, lo6);
    sc[1] = _mm256_or_si256(_mm256_and_si256(w2, lo4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(w0, 6), top2), 4));
    mn[0] = _mm256_and_si256(w1, lo6);
    mn[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(w2, 4), lo4),
                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(w1, 6), top2), 4));
}

#define KQ_VARIANT(name) name##_avx2
#define KQ_DPBUSD(acc, u, s) _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#include "kernels/kquant_q8_avx2_groups.h"
#undef KQ_VARIANT
#undef KQ_DPBUSD

#define KQ_VARIANT(name) name##_avxvnni
#define KQ_DPBUSD(acc, u, s) _mm256_dpbusd_avx_epi32((acc), (u), (s))
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avxvnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avxvnni")
#endif
#include "kernels/kquant_q8_avx2_groups.h"
#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#undef KQ_VARIANT
#undef KQ_DPBUSD

size_t kquant_bytes_avx2(int cols) {
    (void)cols; /* one layout for every width up to KQ8_MAX_COLS */
    return (sizeof(q8_acts) + 63) / 64 * 64;
}

void *kquant_prepare_avx2(const matrix *W, const float *x, void *mem) {
    if (!kquant_q8_applies(W, x)) return NULL;
    quantize_acts(x, W->cols, mem);
    return mem;
}

void kquant_rows_avx2(const matrix *W, const void *acts, float *y, int r0, int r1) {
    const q8_acts *a = acts;
    const int n = W->cols;
    const int end = row_groups_end(W, r0, r1); /* whole groups from the grouped copy */
    if (end > r0) {
        if (kernels_cpu_supports("avxvnni")) kquant_groups_avxvnni(W, a, y, r0 / ROW_GROUP, end / ROW_GROUP);
        else kquant_groups_avx2(W, a, y, r0 / ROW_GROUP, end / ROW_GROUP);
        y += end - r0;
        r0 = end;
    }
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)n);
    const uint8_t *row = (const uint8_t *)W->data + (size_t)r0 * rb;
    prefetch_start(row, (size_t)(r1 - r0) * rb);
    for (int r = r0; r < r1; r++, row += rb) {
        prefetch_row_ahead(row, rb);
        y[r - r0] = W->type == DT_Q6_K ? dot_q6_k(row, a, n) : dot_q45_k(row, a, n, W->type == DT_Q5_K);
    }
}

#ifdef __clang__
#pragma clang attribute pop
#endif

#endif
