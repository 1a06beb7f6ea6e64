/* Decode products of Q4_K, Q5_K and Q6_K rows on AVX-512BW with the activations
 * quantized to 8 bits, as llama.cpp's CPU backend computes them (its
 * "q8_K"): x is cut into blocks of 256, each stored as int8 codes with one
 * float scale dx = max|x| / 127. The weight codes then meet the activation
 * codes in integer multiply-adds (vpmaddubsw: unsigned weight code times
 * signed activation code, pairs summed to int16; vpmaddwd: times the
 * sub-block scale, pairs summed to int32), and one float multiply per
 * super-block applies d·dx. The float path (kernels_avx512.c) converts every
 * weight code to float instead, about three times the instructions: decode
 * of these types was compute-bound, well below the memory bandwidth.
 *
 * Exactness: the integer sums are exact; the only new error is the
 * activations' rounding, at most dx/2 per element (tests/test_kernels.c
 * bounds it). Q4_K's minimums are applied in float from the exact sums of x
 * over each sub-block, as the float path does (Q5_K likewise).
 *
 * Ranges: a Q4_K code (0..15) times a code (|q| <= 127), two summed: <= 3810;
 * Q5_K (0..31): <= 7874; Q6_K (0..63): <= 16002, inside int16. Times a 6-bit or int8 sub-scale and
 * summed over a super-block: < 2^31. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))

#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#endif

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/avx_common.h"
#include "kernels/kquant_q8.h"
#include "kernels/row_groups.h"

/* x quantized per 256: codes in the order the kernels read them. The
 * arrays follow the header in the same allocation, each on its own cache
 * lines and sized for the row (q8_acts_bytes): a prompt quantizes every
 * token, and arrays sized for the widest row (37 KB a token) spent more
 * time in page faults than in the products. */
typedef struct q8_acts {
    float *dx; /* [n / 256] */
    /* Q4_K and Q5_K read 64 codes of one nibble half at a time (see dot_q45_k): per
     * 128 weights, [x 0..31, x 64..95] then [x 32..63, x 96..127] */
    int8_t *q4;     /* [n] */
    int8_t *q;      /* [n] natural order (Q6_K) */
    int16_t *sum16; /* [n / 16] sums of q over 16 (Q6_K's code bias) */
    int32_t *bias16; /* [n / 16] -32 x sum16: a Q6_K sub-block's sum starts there */
    float *xs32;    /* [n / 32] sums of x over 32 (Q4_K's minimums) */
} q8_acts;

static size_t lines(size_t bytes) { return (bytes + 63) / 64 * 64; }

static size_t q8_acts_bytes(int n) {
    return lines(sizeof(q8_acts)) + lines((size_t)n / QK_K * sizeof(float)) + 2 * lines((size_t)n) +
           lines((size_t)n / 16 * sizeof(int16_t)) + lines((size_t)n / 16 * sizeof(int32_t)) +
           lines((size_t)n / 32 * sizeof(float));
}

static q8_acts *q8_acts_bind(void *mem, int n) {
    q8_acts *a = mem;
    uint8_t *p = (uint8_t *)mem + lines(sizeof(q8_acts));
    a->dx = (float *)p, p += lines((size_t)n / QK_K * sizeof(float));
    a->q4 = (int8_t *)p, p += lines((size_t)n);
    a->q = (int8_t *)p, p += lines((size_t)n);
    a->sum16 = (int16_t *)p, p += lines((size_t)n / 16 * sizeof(int16_t));
    a->bias16 = (int32_t *)p, p += lines((size_t)n / 16 * sizeof(int32_t));
    a->xs32 = (float *)p;
    return a;
}

static void quantize_acts(const float *x, int n, q8_acts *a) {
    for (int b = 0; b < n / QK_K; b++) {
        const float *xb = x + QK_K * b;
        __m512 mx = _mm512_setzero_ps();
        for (int i = 0; i < QK_K; i += 16) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(xb + i)));
        const float amax = _mm512_reduce_max_ps(mx), dx = amax / 127.0f, id = activation_scale_ok(dx) ? 127.0f / amax : 0.0f;
        a->dx[b] = dx;
        int8_t *q = a->q + QK_K * b;
        for (int i = 0; i < QK_K; i += 16) {
            /* round to nearest (even on ties) in the current mode; |x / dx| <= 127 */
            __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + i), _mm512_set1_ps(id)));
            _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtsepi32_epi8(v));
        }
        /* sums of 16 codes: the codes + 128 as unsigned bytes, summed 8 at a
         * time by vpsadbw against zero, two such sums less 16 x 128 */
        for (int c = 0; c < QK_K / 64; c++) {
            const __m512i u = _mm512_xor_si512(_mm512_loadu_si512(q + 64 * c), _mm512_set1_epi8((char)0x80));
            uint64_t s8[8];
            _mm512_storeu_si512(s8, _mm512_sad_epu8(u, _mm512_setzero_si512()));
            for (int g = 0; g < 4; g++) {
                const int sum = (int)(s8[2 * g] + s8[2 * g + 1]) - 16 * 128, at = QK_K / 16 * b + 4 * c + g;
                a->sum16[at] = (int16_t)sum;
                a->bias16[at] = -32 * sum;
            }
        }
        for (int s = 0; s < QK_K / 32; s++) {
            __m512 v = _mm512_add_ps(_mm512_loadu_ps(xb + 32 * s), _mm512_loadu_ps(xb + 32 * s + 16));
            a->xs32[QK_K / 32 * b + s] = _mm512_reduce_add_ps(v);
        }
        int8_t *q4 = a->q4 + QK_K * b;
        for (int p = 0; p < 2; p++) {
            const int8_t *src = q + 128 * p;
            int8_t *dst = q4 + 128 * p;
            memcpy(dst, src, 32), memcpy(dst + 32, src + 64, 32);
            memcpy(dst + 64, src + 32, 32), memcpy(dst + 96, src + 96, 32);
        }
    }
}

/* Lane k of an int16 vector from 16 int16 values: value idx[k]. */
static inline __m512i spread16(__m256i v16, __m512i idx) { return _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(v16)); }

static inline __m512i idx_halves(int a, int b) { /* 16 lanes of value a, then 16 of b */
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)a)), _mm256_set1_epi16((short)b), 1);
}

static inline __m512i idx_quarters(int a) { /* lanes 8k..8k+7 take value a + k, k = 0..3 */
    return _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_setr_epi16((short)a, (short)a, (short)a, (short)a, (short)a, (short)a, (short)a,
                                                 (short)a, (short)(a + 1), (short)(a + 1), (short)(a + 1),
                                                 (short)(a + 1), (short)(a + 1), (short)(a + 1), (short)(a + 1),
                                                 (short)(a + 1))),
        _mm256_setr_epi16((short)(a + 2), (short)(a + 2), (short)(a + 2), (short)(a + 2), (short)(a + 2),
                          (short)(a + 2), (short)(a + 2), (short)(a + 2), (short)(a + 3), (short)(a + 3),
                          (short)(a + 3), (short)(a + 3), (short)(a + 3), (short)(a + 3), (short)(a + 3),
                          (short)(a + 3)),
        1);
}

/* One Q4_K (q5 0) or Q5_K (q5 1) row: a 64-byte load of codes holds groups
 * 2p and 2p + 1 (sub-blocks 4p..4p+3); its low nibbles are sub-blocks 4p and
 * 4p + 2, its high nibbles 4p + 1 and 4p + 3, each against 64 activation
 * codes laid out to match (q8_acts.q4). Q5_K has Q4_K's layout with the codes
 * at w + 48 and a fifth bit per code, bit s of qh[l] (w + 16) for element l
 * of sub-block s: qh is repeated in both 256-bit halves, so one per-half
 * word shift by the sub-blocks' numbers (the vectors that spread the scales)
 * brings the bit of each half's sub-block to bit 0 of every byte. */
static inline float dot_q45_k(const uint8_t *w, const q8_acts *a, int n, int q5) {
    const __m512i nib = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(0x01);
    const __m512i idx_lo[2] = {idx_halves(0, 2), idx_halves(4, 6)}, idx_hi[2] = {idx_halves(1, 3), idx_halves(5, 7)};
    const size_t bb = q5 ? 176 : 144;
    __m512 acc = _mm512_setzero_ps();
    __m256 acc_min = _mm256_setzero_ps();
    for (int b = 0; b < n / QK_K; b++, w += bb) {
        uint8_t sc[8], mn[8];
        kquant_unpack_scales(w + 4, sc, mn);
        const __m256i sc16 = _mm256_castsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
        const __m512i qh = q5 ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + 16))) : _mm512_setzero_si512();
        const uint8_t *qs = w + (q5 ? 48 : 16);
        const int8_t *xq = a->q4 + QK_K * b;
        __m512i sum = _mm512_setzero_si512();
        for (int p = 0; p < 2; p++) {
            const __m512i v = _mm512_loadu_si512((const void *)(qs + 64 * p));
            __m512i lo = _mm512_and_si512(v, nib), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
            if (q5) {
                lo = _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, idx_lo[p]), one), 4));
                hi = _mm512_or_si512(hi, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, idx_hi[p]), one), 4));
            }
            const __m512i plo = _mm512_maddubs_epi16(lo, _mm512_load_si512((const void *)(xq + 128 * p)));
            const __m512i phi = _mm512_maddubs_epi16(hi, _mm512_load_si512((const void *)(xq + 128 * p + 64)));
            sum = _mm512_add_epi32(sum, _mm512_madd_epi16(plo, spread16(sc16, idx_lo[p])));
            sum = _mm512_add_epi32(sum, _mm512_madd_epi16(phi, spread16(sc16, idx_hi[p])));
        }
        const float d = f16_at(w), dmin = f16_at(w + 2);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(d * a->dx[b]), acc);
        const __m256 mf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)mn)));
        acc_min = _mm256_fmadd_ps(_mm256_mul_ps(mf, _mm256_loadu_ps(a->xs32 + 8 * b)), _mm256_set1_ps(dmin), acc_min);
    }
    return _mm512_reduce_add_ps(acc) - hsum8(acc_min);
}

/* One Q6_K row: per half h of 128 weights, ql[64h..64h+63] holds the low
 * nibbles of weights 0..63 (low nibbles) and 64..127 (high nibbles) of the
 * half, qh[32h..32h+31] their top two bits, pair k of each byte for the
 * quarter k. Codes 0..63 (bias 32) against the natural-order activations;
 * the bias comes back through the sums of the codes over 16. */
static float dot_q6_k(const uint8_t *w, const q8_acts *a, int n) {
    const __m512i nib = _mm512_set1_epi8(0x0f), two = _mm512_set1_epi8(0x03);
    /* the top-bit pair of the low 32 bytes is at shift 0 (quarter 0) or 4 (quarter 2), of the high 32 at 2 or 6 */
    const __m512i shift_a = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i shift_b = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    const __m512i idx[4] = {idx_quarters(0), idx_quarters(4), idx_quarters(8), idx_quarters(12)};
    __m512 acc = _mm512_setzero_ps();
    float bias = 0;
    for (int b = 0; b < n / QK_K; b++, w += 210) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 192)));
        const int8_t *xq = a->q + QK_K * b;
        __m512i sum = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            const __m512i ql = _mm512_loadu_si512((const void *)(w + 64 * h));
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + 128 + 32 * h)));
            const __m512i ha = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift_a), two), 4);
            const __m512i hb = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift_b), two), 4);
            const __m512i qa = _mm512_or_si512(_mm512_and_si512(ql, nib), ha);
            const __m512i qb = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), nib), hb);
            const __m512i pa = _mm512_maddubs_epi16(qa, _mm512_load_si512((const void *)(xq + 128 * h)));
            const __m512i pb = _mm512_maddubs_epi16(qb, _mm512_load_si512((const void *)(xq + 128 * h + 64)));
            sum = _mm512_add_epi32(sum, _mm512_madd_epi16(pa, spread16(sc16, idx[2 * h])));
            sum = _mm512_add_epi32(sum, _mm512_madd_epi16(pb, spread16(sc16, idx[2 * h + 1])));
        }
        const __m256i bsum = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)(a->sum16 + 16 * b)));
        const float ddx = f16_at(w + 208) * a->dx[b];
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(ddx), acc);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(bsum), _mm256_extracti128_si256(bsum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        bias += 32.0f * ddx * (float)_mm_cvtsi128_si32(s4);
    }
    return _mm512_reduce_add_ps(acc) - bias;
}

/* ---- Q4_K and Q5_K sixteen rows at a time (kernels/row_groups.h): lane r
 * of every vector is row r of the group; each code vector meets x's 4
 * activations broadcast in one vpdpbusd, and a sub-block's sum takes its
 * 6-bit scale with one 32-bit multiply for all 16 rows. Q4_K's high nibbles
 * are multiplied in place (16 x the code, the sum shifted back once); Q5_K
 * shifts them down and adds 16 where the sub-block's fifth bit is set. */

/* The grouped kernel multiplies with vpdpbusd: built for AVX-512 VNNI as
 * well, and used only where the CPU has it (matvec_reads_groups). */
#define KQUANT_GROUPS_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

/* byte k of every 32-bit lane, zero-extended */
static inline __m512i lane_byte(__m512i v, int k) {
    return _mm512_and_si512(_mm512_srli_epi32(v, 8 * k), _mm512_set1_epi32(0xff));
}

/* x's int8 codes e..e+3, in every lane */
static inline __m512i x_quad(const int8_t *q) { return _mm512_set1_epi32(i32_at(q)); }

/* Code vector h of chunk j of a column as the two operands of its
 * products: sub-block 2j's codes and 2j + 1's (16 x the code for Q4_K,
 * shifted back after the sum). The vector is loaded once: GCC would fold
 * the load into each of its uses. */
static inline __attribute__((always_inline)) KQUANT_GROUPS_TARGET void chunk_codes(const uint8_t *col, int j, int h,
                                                                                   int five, __m512i *l, __m512i *u) {
    const __m512i m4 = _mm512_set1_epi8(15), sixteen = _mm512_set1_epi8(16);
    __m512i z = _mm512_load_si512(col + (five ? 768 : 256) + 64 * (8 * j + h));
    __asm__("" : "+v"(z));
    *l = _mm512_and_si512(z, m4);
    if (five) {
        const __m512i qh = _mm512_load_si512(col + 256 + 64 * h);
        const __m512i bit_lo = _mm512_set1_epi8((char)(1 << 2 * j)), bit_hi = _mm512_set1_epi8((char)(1 << (2 * j + 1)));
        *l = _mm512_mask_add_epi8(*l, _mm512_test_epi8_mask(qh, bit_lo), *l, sixteen);
        *u = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
        *u = _mm512_mask_add_epi8(*u, _mm512_test_epi8_mask(qh, bit_hi), *u, sixteen);
    } else {
        *u = _mm512_andnot_si512(m4, z);
    }
}

/* kquant_unpack_scales on the 16 rows of column col: scales and minimums 0-3 and 4-7 */
static inline KQUANT_GROUPS_TARGET void column_scales_mins(const uint8_t *col, __m512i sc[2], __m512i mn[2]) {
    const __m512i lo6 = _mm512_set1_epi32(0x3f3f3f3f), lo4 = _mm512_set1_epi32(0x0f0f0f0f);
    const __m512i top2 = _mm512_set1_epi32(0x03030303);
    const __m512i w0 = _mm512_load_si512(col + 64), w1 = _mm512_load_si512(col + 128), w2 = _mm512_load_si512(col + 192);
    sc[0] = _mm512_and_si512(w0, lo6);
    sc[1] = _mm512_or_si512(_mm512_and_si512(w2, lo4), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w0, 6), top2), 4));
    mn[0] = _mm512_and_si512(w1, lo6);
    mn[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 4), lo4),
                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w1, 6), top2), 4));
}

/* Super-block column b at col (Q4_K, or Q5_K when five): acc + d dx Σ sc
 * isum, accm + dmin Σ m xsum. The 64 multiply-adds run as 16 independent
 * chains (sub-block k, even or odd code vector): as a loop over the four
 * chunks, each a chain of eight, the column waited on its chains and took
 * half as many cycles again (docs/perf.md, changes 58 and 60). The high
 * nibbles' sums of Q4_K are shifted back once, after their scales. */
static inline __attribute__((always_inline)) KQUANT_GROUPS_TARGET void
kquant_column(const uint8_t *col, const q8_acts *a, int b, int five, __m512 *acc, __m512 *accm) {
    const int8_t *xq = a->q + QK_K * b;
    const float *xs = a->xs32 + QK_K / 32 * b;
    __m512i s[2][8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) s[0][k] = s[1][k] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int h = 0; h < 8; h++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m512i l, u;
            chunk_codes(col, j, h, five, &l, &u);
            s[h & 1][2 * j] = _mm512_dpbusd_epi32(s[h & 1][2 * j], l, x_quad(xq + 64 * j + 4 * h));
            s[h & 1][2 * j + 1] = _mm512_dpbusd_epi32(s[h & 1][2 * j + 1], u, x_quad(xq + 64 * j + 32 + 4 * h));
        }
    __m512i sc[2], mn[2];
    column_scales_mins(col, sc, mn);
    __m512i even = _mm512_setzero_si512(), odd = even;
    __m512 mins = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const int k = 2 * j; /* sub-blocks k and k + 1: bytes k % 4 and k % 4 + 1 of half k / 4 */
        even = _mm512_add_epi32(even, _mm512_mullo_epi32(_mm512_add_epi32(s[0][k], s[1][k]), lane_byte(sc[k / 4], k % 4)));
        odd = _mm512_add_epi32(odd, _mm512_mullo_epi32(_mm512_add_epi32(s[0][k + 1], s[1][k + 1]),
                                                       lane_byte(sc[k / 4], k % 4 + 1)));
        mins = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lane_byte(mn[k / 4], k % 4)), _mm512_set1_ps(xs[k]), mins);
        mins = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lane_byte(mn[k / 4], k % 4 + 1)), _mm512_set1_ps(xs[k + 1]), mins);
    }
    /* Q4_K's odd sums: 16 x the code's, exactly */
    const __m512i isum = _mm512_add_epi32(even, five ? odd : _mm512_srai_epi32(odd, 4));
    const __m512 d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)col));
    const __m512 dmin = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(col + 32)));
    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(d, _mm512_set1_ps(a->dx[b])), *acc);
    *accm = _mm512_fmadd_ps(mins, dmin, *accm);
}

/* The columns touch each page ahead and ask for every line 6 KB ahead: Q4_K
 * read from memory at 88-90% of the probe where every line 12 KB ahead read
 * 83-84% (changes 58 and 60). */
static inline __attribute__((always_inline)) KQUANT_GROUPS_TARGET void
kquant_group_rows(const matrix *W, const q8_acts *a, float *y, int g0, int g1, int five) {
    const int nb = W->cols / QK_K;
    const size_t cb = ROW_GROUP * dtype_block_bytes(W->type), stride = row_group_stride(W->type, W->cols);
    const uint8_t *ahead = (const uint8_t *)W->groups + (size_t)g0 * stride;
    prefetch_start(ahead, (size_t)(g1 - g0) * stride);
    for (int g = g0; g < g1; g++) {
        const uint8_t *col = (const uint8_t *)W->groups + (size_t)g * stride;
        __m512 acc = _mm512_setzero_ps(), accm = acc;
        for (int b = 0; b < nb; b++, col += cb) {
            ahead = prefetch_pages_ahead(ahead, col + cb);
            prefetch_lines(col + LINES_AHEAD_WITH_PAGES, cb);
            kquant_column(col, a, b, five, &acc, &accm);
        }
        _mm512_storeu_ps(y + ROW_GROUP * (g - g0), _mm512_sub_ps(acc, accm));
    }
}

/* ---- Q6_K sixteen rows at a time: the four 6-bit codes of a vector of ql
 * low nibbles, ql high nibbles and qh bit pairs are rebuilt in place (one
 * ternary-logic merge each) and meet x's 4 activations in one vpdpbusd. A
 * sub-block's sum starts at -32 Σ x (the code bias) and takes its signed
 * 8-bit scale with one 32-bit multiply for all 16 rows. */

/* (low & 0x0f) | high, high holding only bits 4-5 of each byte */
static inline KQUANT_GROUPS_TARGET __m512i q6_code(__m512i low, __m512i high) {
    return _mm512_ternarylogic_epi32(low, high, _mm512_set1_epi8(0x0f), 0xec); /* (a & c) | b */
}

/* signed byte k of every 32-bit lane */
static inline KQUANT_GROUPS_TARGET __m512i lane_sbyte(__m512i v, int k) {
    return _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * k), 24);
}

/* The codes of vector v of half h of super-block column col: c[k] holds
 * element 4v..4v+3 of sub-block 8h + 2k + v / 4 for each of the 16 rows. */
static inline __attribute__((always_inline)) KQUANT_GROUPS_TARGET void q6k_codes(const uint8_t *col, int h, int v,
                                                                                 __m512i c[4]) {
    const __m512i top = _mm512_set1_epi8(0x30);
    __m512i lo_a = _mm512_load_si512(col + 256 + 64 * (16 * h + v));
    __m512i lo_b = _mm512_load_si512(col + 256 + 64 * (16 * h + 8 + v));
    __m512i qh = _mm512_load_si512(col + 2304 + 64 * (8 * h + v));
    __asm__("" : "+v"(lo_a), "+v"(lo_b), "+v"(qh)); /* one load each: GCC would fold them into every use */
    c[0] = q6_code(lo_a, _mm512_and_si512(_mm512_slli_epi16(qh, 4), top));
    c[1] = q6_code(lo_b, _mm512_and_si512(_mm512_slli_epi16(qh, 2), top));
    c[2] = q6_code(_mm512_srli_epi16(lo_a, 4), _mm512_and_si512(qh, top));
    c[3] = q6_code(_mm512_srli_epi16(lo_b, 4), _mm512_and_si512(_mm512_srli_epi16(qh, 2), top));
}

/* The signed scale of sub-block sub for each of the 16 rows. */
static inline KQUANT_GROUPS_TARGET __m512i q6k_scale(const uint8_t *col, int sub) {
    return lane_sbyte(_mm512_load_si512(col + 64 * (sub / 4)), sub % 4);
}

/* Super-block column col against x's codes xq: the 16 sub-blocks' scaled
 * sums. Each sub-block's sum is a chain of four multiply-adds started at
 * its code bias (bias: -32 x the sum of its x codes), the 16 chains side by
 * side so that none waits on another (change 59). */
static inline __attribute__((always_inline)) KQUANT_GROUPS_TARGET __m512i q6k_column(const uint8_t *col,
                                                                                     const int8_t *xq,
                                                                                     const int32_t *bias) {
    __m512i s[16];
#pragma GCC unroll 16
    for (int sub = 0; sub < 16; sub++) s[sub] = _mm512_set1_epi32(bias[sub]);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++) {
            __m512i c[4];
            q6k_codes(col, h, v, c);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) { /* c[k]: elements 4v..4v+3 of sub-block 8h + 2k + v / 4 */
                const int sub = 8 * h + 2 * k + v / 4;
                s[sub] = _mm512_dpbusd_epi32(s[sub], c[k], x_quad(xq + 128 * h + 32 * k + 4 * v));
            }
        }
    __m512i isum = _mm512_setzero_si512();
#pragma GCC unroll 16
    for (int sub = 0; sub < 16; sub++) isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(s[sub], q6k_scale(col, sub)));
    return isum;
}

static KQUANT_GROUPS_TARGET void q6k_group_rows(const matrix *W, const q8_acts *a, float *y, int g0, int g1) {
    const int nb = W->cols / QK_K;
    const size_t stride = row_group_stride(W->type, W->cols);
    const uint8_t *ahead = (const uint8_t *)W->groups + (size_t)g0 * stride;
    prefetch_start(ahead, (size_t)(g1 - g0) * stride);
    for (int g = g0; g < g1; g++) {
        const uint8_t *group = (const uint8_t *)W->groups + (size_t)g * stride;
        const uint8_t *d16 = group + (size_t)ROW_GROUP_Q6K_PARTS * nb;
        __m512 acc = _mm512_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const uint8_t *col = group + (size_t)ROW_GROUP_Q6K_PARTS * b;
            ahead = prefetch_pages_ahead(ahead, col + ROW_GROUP_Q6K_PARTS); /* as the Q4_K columns (change 59) */
            prefetch_lines(col + LINES_AHEAD_WITH_PAGES, ROW_GROUP_Q6K_PARTS);
            const __m512i isum = q6k_column(col, a->q + QK_K * b, a->bias16 + QK_K / 16 * b);
            const __m512 d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(d16 + 32 * b)));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(d, _mm512_set1_ps(a->dx[b])), acc);
        }
        _mm512_storeu_ps(y + ROW_GROUP * (g - g0), acc);
    }
}

static KQUANT_GROUPS_TARGET void kquant_groups(const matrix *W, const q8_acts *a, float *y, int g0, int g1) {
    if (W->type == DT_Q6_K) q6k_group_rows(W, a, y, g0, g1);
    else if (W->type == DT_Q5_K) kquant_group_rows(W, a, y, g0, g1, 1);
    else kquant_group_rows(W, a, y, g0, g1, 0);
}

/* ---- 16 rows against several tokens (a prompt, a batched step) ----
 * The same super-block columns as the group kernels above, each chunk of
 * codes unpacked once and multiplied with every token of a tile; per token
 * the sums are the decode's own — the integer ones exact in any order, the
 * float ones (the minimum terms, the column's scale and the accumulators)
 * in the same order — so every row of every token is bit for bit its
 * decode step. */
#define KQ_TILE 32

/* Q4_K / Q5_K column b at col for the nt tokens a[0..nt): acc[t], accm[t] as kquant_column. */
static inline __attribute__((always_inline)) KQUANT_GROUPS_TARGET void
kquant_column_tokens(const uint8_t *col, const q8_acts *const *a, int nt, int b, int five, __m512 *acc, __m512 *accm) {
    __m512i sc[2], mn[2];
    column_scales_mins(col, sc, mn);
    __m512i scale[8], isum[KQ_TILE];
    __m512 minimum[8], mins[KQ_TILE];
    for (int s = 0; s < 8; s++) {
        scale[s] = lane_byte(sc[s / 4], s % 4);
        minimum[s] = _mm512_cvtepi32_ps(lane_byte(mn[s / 4], s % 4));
    }
    for (int j = 0; j < 4; j++) {
        __m512i l[8], u[8];
#pragma GCC unroll 8
        for (int h = 0; h < 8; h++) chunk_codes(col, j, h, five, &l[h], &u[h]); /* once for the tile */
        const int s = 2 * j;
        for (int t = 0; t < nt; t++) {
            const int8_t *xq = a[t]->q + QK_K * b + 64 * j;
            const float *xs = a[t]->xs32 + QK_K / 32 * b;
            __m512i lo = _mm512_setzero_si512(), hi = lo;
#pragma GCC unroll 8
            for (int h = 0; h < 8; h++) {
                lo = _mm512_dpbusd_epi32(lo, l[h], x_quad(xq + 4 * h));
                hi = _mm512_dpbusd_epi32(hi, u[h], x_quad(xq + 32 + 4 * h));
            }
            if (!five) hi = _mm512_srai_epi32(hi, 4);
            /* the first chunk starts from zero, as kquant_column's sums do */
            const __m512i is = j ? isum[t] : _mm512_setzero_si512();
            const __m512 ms = j ? mins[t] : _mm512_setzero_ps();
            isum[t] = _mm512_add_epi32(_mm512_add_epi32(is, _mm512_mullo_epi32(lo, scale[s])),
                                       _mm512_mullo_epi32(hi, scale[s + 1]));
            mins[t] = _mm512_fmadd_ps(minimum[s + 1], _mm512_set1_ps(xs[s + 1]),
                                      _mm512_fmadd_ps(minimum[s], _mm512_set1_ps(xs[s]), ms));
        }
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)col));
    const __m512 dmin = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(col + 32)));
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, _mm512_set1_ps(a[t]->dx[b])), acc[t]);
        accm[t] = _mm512_fmadd_ps(mins[t], dmin, accm[t]);
    }
}

/* Q4_K / Q5_K groups g0..g1 against the nt tokens a[0..nt), token t's results at Y + t ldy. */
static KQUANT_GROUPS_TARGET void kquant_group_tokens(const matrix *W, const q8_acts *const *a, int nt, float *Y,
                                                     size_t ldy, int g0, int g1) {
    const int nb = W->cols / QK_K, five = W->type == DT_Q5_K;
    const size_t cb = ROW_GROUP * dtype_block_bytes(W->type);
    __m512 acc[KQ_TILE], accm[KQ_TILE];
    for (int g = g0; g < g1; g++) {
        const uint8_t *group = (const uint8_t *)W->groups + (size_t)g * row_group_stride(W->type, W->cols);
        for (int t = 0; t < nt; t++) acc[t] = accm[t] = _mm512_setzero_ps();
        for (int b = 0; b < nb; b++) {
            if (nt <= PREFETCH_MAX_TOKENS) prefetch_row_ahead(group + cb * (size_t)b, cb);
            kquant_column_tokens(group + cb * (size_t)b, a, nt, b, five, acc, accm);
        }
        for (int t = 0; t < nt; t++)
            _mm512_storeu_ps(Y + (size_t)t * ldy + ROW_GROUP * (g - g0), _mm512_sub_ps(acc[t], accm[t]));
    }
}

/* Q6_K quarter q of super-block column b (q6k_quarter's four sub-blocks) for
 * the nt tokens a[0..nt): each token's scaled sums added to isum[t] (set,
 * for the first quarter). The 16 code vectors are rebuilt once for the tile. */
static inline __attribute__((always_inline)) KQUANT_GROUPS_TARGET void
q6k_quarter_tokens(const uint8_t *col, const q8_acts *const *a, int nt, int b, int q, __m512i *isum) {
    const int h = q / 2, half = q % 2;
    __m512i c[4][4], scale[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) q6k_codes(col, h, 4 * half + i, c[i]);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) scale[k] = q6k_scale(col, 8 * h + 2 * k + half);
    for (int t = 0; t < nt; t++) {
        const int8_t *xv = a[t]->q + QK_K * b + 128 * h + 16 * half;
        const int32_t *bias = a[t]->bias16 + QK_K / 16 * b + 8 * h + half;
        __m512i s[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) s[k] = _mm512_set1_epi32(bias[2 * k]);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) s[k] = _mm512_dpbusd_epi32(s[k], c[i][k], x_quad(xv + 4 * i + 32 * k));
        __m512i sum = q ? isum[t] : _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) sum = _mm512_add_epi32(sum, _mm512_mullo_epi32(s[k], scale[k]));
        isum[t] = sum;
    }
}

/* Q6_K groups g0..g1 against the nt tokens a[0..nt), as q6k_group_rows per token. */
static KQUANT_GROUPS_TARGET void q6k_group_tokens(const matrix *W, const q8_acts *const *a, int nt, float *Y,
                                                  size_t ldy, int g0, int g1) {
    const int nb = W->cols / QK_K;
    __m512 acc[KQ_TILE];
    __m512i isum[KQ_TILE];
    for (int g = g0; g < g1; g++) {
        const uint8_t *group = (const uint8_t *)W->groups + (size_t)g * row_group_stride(W->type, W->cols);
        const uint8_t *d16 = group + (size_t)ROW_GROUP_Q6K_PARTS * nb;
        for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const uint8_t *col = group + (size_t)ROW_GROUP_Q6K_PARTS * b;
            if (nt <= PREFETCH_MAX_TOKENS) prefetch_row_ahead(col, ROW_GROUP_Q6K_PARTS);
            for (int q = 0; q < 4; q++) q6k_quarter_tokens(col, a, nt, b, q, isum);
            const __m512 d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(d16 + 32 * b)));
            for (int t = 0; t < nt; t++)
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, _mm512_set1_ps(a[t]->dx[b])),
                                         acc[t]);
        }
        for (int t = 0; t < nt; t++) _mm512_storeu_ps(Y + (size_t)t * ldy + ROW_GROUP * (g - g0), acc[t]);
    }
}

void kquant_tokens_avx512(const matrix *W, const void *const *acts, int N, float *Y, size_t ldy, int r0, int r1) {
    const int end = row_groups_end(W, r0, r1);
    for (int n0 = 0; n0 < N && end > r0; n0 += KQ_TILE) {
        const q8_acts *const *a = (const q8_acts *const *)acts + n0;
        const int nt = N - n0 < KQ_TILE ? N - n0 : KQ_TILE;
        if (W->type == DT_Q6_K) q6k_group_tokens(W, a, nt, Y + (size_t)n0 * ldy, ldy, r0 / ROW_GROUP, end / ROW_GROUP);
        else kquant_group_tokens(W, a, nt, Y + (size_t)n0 * ldy, ldy, r0 / ROW_GROUP, end / ROW_GROUP);
    }
    if (end < r1)
        for (int n = 0; n < N; n++) kquant_rows_avx512(W, acts[n], Y + (size_t)n * ldy + (end - r0), end, r1);
}

size_t kquant_bytes_avx512(int cols) { return q8_acts_bytes(cols); }

void *kquant_prepare_avx512(const matrix *W, const float *x, void *mem) {
    if (!kquant_q8_applies(W, x)) return NULL;
    q8_acts *a = q8_acts_bind(mem, W->cols);
    quantize_acts(x, W->cols, a);
    return a;
}

void kquant_rows_avx512(const matrix *W, const void *acts, float *y, int r0, int r1) {
    const q8_acts *a = acts;
    const int n = W->cols;
    const int end = row_groups_end(W, r0, r1); /* whole groups from the grouped copy */
    if (end > r0) {
        kquant_groups(W, a, y, r0 / ROW_GROUP, end / ROW_GROUP);
        y += end - r0;
        r0 = end;
    }
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)n);
    const uint8_t *row = (const uint8_t *)W->data + (size_t)r0 * rb;
    prefetch_start(row, (size_t)(r1 - r0) * rb);
    for (int r = r0; r < r1; r++, row += rb) {
        prefetch_row_ahead(row, rb);
        y[r - r0] = W->type == DT_Q6_K ? dot_q6_k(row, a, n) : W->type == DT_Q5_K ? dot_q45_k(row, a, n, 1) : dot_q45_k(row, a, n, 0);
    }
}

#ifdef __clang__
#pragma clang attribute pop
#endif

#endif
