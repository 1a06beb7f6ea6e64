/* Q4_K, Q5_K and Q6_K decode products from the 16-row grouped copy
 * (kernels/row_groups.h) on AVX2, included twice by kquant_q8_avx2.c: once
 * with KQ_DPBUSD summing byte products by vpmaddubsw + vpmaddwd, once with
 * AVX-VNNI's vpdpbusd (KQ_VARIANT names the two builds).
 *
 * Each 64-byte part of a column holds rows 0-7 in its first 32 bytes and rows
 * 8-15 in the others, so a 32-byte register is one half of a group: lane r
 * of every vector is row r of the half, as in kquant_q8_avx512.c, whose
 * columns these follow operation for operation (the integer sums exact, the
 * float ones in the same order; the two builds agree to the bit). Both
 * halves of a column are summed before the next column, while its lines are
 * in L1. Read row by row, the AVX2 products had run at a third of the
 * memory's pace (docs/perf.md, change 61).
 *
 * The byte products cannot overflow vpmaddubsw's 16-bit pairs: codes <= 63
 * times |q| <= 127, two summed. */

/* Q4_K (five 0) or Q5_K super-block column b at col, half hf (rows 8 hf ..
 * 8 hf + 7): acc + d dx Σ sc isum, accm + dmin Σ m xsum. One chain of eight
 * multiply-adds per sub-block, the eight side by side. */
static inline __attribute__((always_inline)) void KQ_VARIANT(q45_column)(const uint8_t *col, const q8_acts *a, int b,
                                                                         int five, int hf, __m256 *acc, __m256 *accm) {
    const __m256i m4 = _mm256_set1_epi8(15), sixteen = _mm256_set1_epi8(16);
    const int8_t *xq = a->q + QK_K * b;
    const float *xs = a->xs32 + QK_K / 32 * b;
    const uint8_t *codes = col + (five ? 768 : 256) + 32 * hf;
    __m256i s[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) s[k] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int h = 0; h < 8; h++) {
        const __m256i qh = five ? _mm256_load_si256((const __m256i *)(col + 256 + 64 * h + 32 * hf)) : m4;
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i z = _mm256_load_si256((const __m256i *)(codes + 64 * (8 * j + h)));
            __m256i l = _mm256_and_si256(z, m4), u = _mm256_and_si256(_mm256_srli_epi16(z, 4), m4);
            if (five) { /* + 16 where the sub-block's fifth bit (bit 2j, 2j + 1 of qh) is set */
                const __m256i bit_lo = _mm256_set1_epi8((char)(1 << 2 * j)), bit_hi = _mm256_set1_epi8((char)(2 << 2 * j));
                l = _mm256_add_epi8(l, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_lo), bit_lo), sixteen));
                u = _mm256_add_epi8(u, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_hi), bit_hi), sixteen));
            }
            s[2 * j] = KQ_DPBUSD(s[2 * j], l, x_quad8(xq + 64 * j + 4 * h));
            s[2 * j + 1] = KQ_DPBUSD(s[2 * j + 1], u, x_quad8(xq + 64 * j + 32 + 4 * h));
        }
    }
    __m256i sc[2], mn[2];
    scales_mins8(col, hf, sc, mn);
    __m256i isum = _mm256_setzero_si256();
    __m256 mins = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(s[k], lane_byte8(sc[k / 4], k % 4)));
        mins = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lane_byte8(mn[k / 4], k % 4)), _mm256_set1_ps(xs[k]), mins);
    }
    const __m256 d = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(col + 16 * hf)));
    const __m256 dmin = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(col + 32 + 16 * hf)));
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, _mm256_set1_ps(a->dx[b])), *acc);
    *accm = _mm256_fmadd_ps(mins, dmin, *accm);
}

/* Q6_K super-block column col, half hf, against x's codes xq: the 16
 * sub-blocks' scaled sums, eight at a time (half h of the super-block), each
 * a chain of four multiply-adds started at its code bias. */
static inline __attribute__((always_inline)) __m256i KQ_VARIANT(q6k_column)(const uint8_t *col, const int8_t *xq,
                                                                            const int32_t *bias, int hf) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), top = _mm256_set1_epi8(0x30);
    __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m256i s[8]; /* sub-block 8h + i */
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) s[i] = _mm256_set1_epi32(bias[8 * h + i]);
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++) {
            const __m256i lo_a = _mm256_load_si256((const __m256i *)(col + 256 + 64 * (16 * h + v) + 32 * hf));
            const __m256i lo_b = _mm256_load_si256((const __m256i *)(col + 256 + 64 * (16 * h + 8 + v) + 32 * hf));
            const __m256i qh = _mm256_load_si256((const __m256i *)(col + 2304 + 64 * (8 * h + v) + 32 * hf));
            __m256i c[4]; /* c[k]: elements 4v..4v+3 of sub-block 8h + 2k + v / 4 */
            c[0] = _mm256_or_si256(_mm256_and_si256(lo_a, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), top));
            c[1] = _mm256_or_si256(_mm256_and_si256(lo_b, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), top));
            c[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo_a, 4), low4), _mm256_and_si256(qh, top));
            c[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo_b, 4), low4),
                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), top));
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
                s[2 * k + v / 4] = KQ_DPBUSD(s[2 * k + v / 4], c[k], x_quad8(xq + 128 * h + 32 * k + 4 * v));
        }
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            const __m256i sc = _mm256_load_si256((const __m256i *)(col + 64 * ((8 * h + i) / 4) + 32 * hf));
            const int k = (8 * h + i) % 4; /* the signed byte k of each lane */
            isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(s[i], _mm256_srai_epi32(_mm256_slli_epi32(sc, 24 - 8 * k), 24)));
        }
    }
    return isum;
}

/* Groups g0..g1 of W, of type t: y[16 (g - g0) + i] = row 16 g + i . x.
 * The columns touch each page ahead and ask for every line 6 KB ahead, as
 * the AVX-512 ones do. Inlined once per type: with the type a variable, the
 * Q4_K column ran at 350 cycles from cache instead of 200. */
static inline __attribute__((always_inline)) void KQ_VARIANT(groups_of)(const matrix *W, const q8_acts *a, float *y,
                                                                        int g0, int g1, dtype t) {
    const int nb = W->cols / QK_K, q6 = t == DT_Q6_K, five = t == DT_Q5_K;
    const size_t stride = row_group_stride(W->type, W->cols);
    const size_t cb = q6 ? ROW_GROUP_Q6K_PARTS : ROW_GROUP * dtype_block_bytes(t);
    const uint8_t *ahead = (const uint8_t *)W->groups + (size_t)g0 * stride;
    prefetch_start(ahead, (size_t)(g1 - g0) * stride);
    for (int g = g0; g < g1; g++) {
        const uint8_t *group = (const uint8_t *)W->groups + (size_t)g * stride;
        __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, accm[2] = {acc[0], acc[0]};
        for (int b = 0; b < nb; b++) {
            const uint8_t *col = group + cb * (size_t)b;
            ahead = prefetch_pages_ahead(ahead, col + cb);
            prefetch_lines(col + LINES_AHEAD_WITH_PAGES, cb);
#pragma GCC unroll 2
            for (int hf = 0; hf < 2; hf++) {
                if (q6) {
                    const __m256i isum = KQ_VARIANT(q6k_column)(col, a->q + QK_K * b, a->bias16 + QK_K / 16 * b, hf);
                    const uint8_t *d16 = group + (size_t)ROW_GROUP_Q6K_PARTS * nb + 32 * (size_t)b + 16 * hf;
                    const __m256 d = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)d16));
                    acc[hf] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, _mm256_set1_ps(a->dx[b])), acc[hf]);
                } else {
                    KQ_VARIANT(q45_column)(col, a, b, five, hf, &acc[hf], &accm[hf]);
                }
            }
        }
        for (int hf = 0; hf < 2; hf++)
            _mm256_storeu_ps(y + ROW_GROUP * (g - g0) + 8 * hf, q6 ? acc[hf] : _mm256_sub_ps(acc[hf], accm[hf]));
    }
}

void KQ_VARIANT(kquant_groups)(const matrix *W, const void *acts, float *y, int g0, int g1) {
    switch (W->type) {
    case DT_Q6_K: KQ_VARIANT(groups_of)(W, acts, y, g0, g1, DT_Q6_K); return;
    case DT_Q5_K: KQ_VARIANT(groups_of)(W, acts, y, g0, g1, DT_Q5_K); return;
    default: KQ_VARIANT(groups_of)(W, acts, y, g0, g1, DT_Q4_K); return;
    }
}
