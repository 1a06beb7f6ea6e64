/* The AVX2 integer block rows (kernels/dot_int8_avx2.c), one block per
 * 32-byte vector, written once for two instruction sets: the file includes
 * it with INT8_VARIANT(name) naming the functions and DPBUSD(acc, u, s)
 * (acc + sums of 4 products of unsigned u and signed s bytes per lane)
 * as vpmaddubsw + vpmaddwd (AVX2) or vpdpbusd (AVX-VNNI). */

/* Block b of a 4/5-bit format at w against the activations; returns acc plus
 * its float sum (the minimum term into *macc). */
static inline __attribute__((always_inline)) __m256 INT8_VARIANT(nib_block)(const nib_format *f, const uint8_t *w,
                                                                            const act_q8 *a, int b, __m256 acc,
                                                                            __m256 *macc) {
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m128i qs = _mm_loadu_si128((const __m128i *)(w + f->qs));
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(qs, 4), qs);
    v = _mm256_and_si256(v, m4);
    if (f->qh >= 0) v = _mm256_or_si256(v, _mm256_and_si256(bits_to_bytes(w + f->qh), _mm256_set1_epi8(16)));
    __m256i dot = f->offset ? _mm256_load_si256((const __m256i *)(a->qneg8 + 8 * b)) : _mm256_setzero_si256();
    if (f->offset == 16) dot = _mm256_add_epi32(dot, dot);
    dot = DPBUSD(dot, v, _mm256_load_si256((const __m256i *)(a->q + 32 * b)));
    const __m256 s = _mm256_mul_ps(_mm256_set1_ps(f16_at(w)), _mm256_load_ps(a->d + 8 * b));
    if (f->has_min) *macc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(w + 2)), _mm256_load_ps(a->xsum + 8 * b), *macc);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, acc);
}

static inline __attribute__((always_inline)) void INT8_VARIANT(nib_rows)(const nib_format f, const matrix *W,
                                                                        const act_q8 *a, float *y, int r0, int r1) {
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)W->cols);
    const int nb = a->n / 32;
    const uint8_t *row = (const uint8_t *)W->data + (size_t)r0 * rb;
    const uint8_t *ahead = row;
    for (int r = r0; r < r1; r++, row += rb) {
        ahead = prefetch_pages_ahead(ahead, row + rb);
        prefetch_lines(row + LINES_AHEAD_WITH_PAGES, rb);
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, m0 = acc0, m1 = acc0;
        const uint8_t *w = row;
        int b = 0;
        for (; b + 2 <= nb; b += 2, w += 2 * f.bb) {
            acc0 = INT8_VARIANT(nib_block)(&f, w, a, b, acc0, &m0);
            acc1 = INT8_VARIANT(nib_block)(&f, w + f.bb, a, b + 1, acc1, &m1);
        }
        if (b < nb) acc0 = INT8_VARIANT(nib_block)(&f, w, a, b, acc0, &m0);
        y[r - r0] = hsum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(m0, m1)));
    }
}

/* Q8_0: signed codes; their absolute values meet x with the codes' signs. */
static inline __m256 INT8_VARIANT(q8_block)(const uint8_t *w, const act_q8 *a, int b, __m256 acc) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)(w + 2));
    const __m256i xs = _mm256_sign_epi8(_mm256_load_si256((const __m256i *)(a->q + 32 * b)), v);
    const __m256i dot = DPBUSD(_mm256_setzero_si256(), _mm256_abs_epi8(v), xs);
    const __m256 s = _mm256_mul_ps(_mm256_set1_ps(f16_at(w)), _mm256_load_ps(a->d + 8 * b));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, acc);
}

static void INT8_VARIANT(rows)(const matrix *W, const act_q8 *a, float *y, int r0, int r1) {
    switch (W->type) {
    case DT_Q4_0: INT8_VARIANT(nib_rows)(Q4_0_FORMAT, W, a, y, r0, r1); return;
    case DT_Q4_1: INT8_VARIANT(nib_rows)(Q4_1_FORMAT, W, a, y, r0, r1); return;
    case DT_Q5_0: INT8_VARIANT(nib_rows)(Q5_0_FORMAT, W, a, y, r0, r1); return;
    case DT_Q5_1: INT8_VARIANT(nib_rows)(Q5_1_FORMAT, W, a, y, r0, r1); return;
    case DT_Q8_0: break;
    default: int8_dot_scalar.rows(W, a, y, r0, r1); return;
    }
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)W->cols);
    const int nb = a->n / 32;
    const uint8_t *row = (const uint8_t *)W->data + (size_t)r0 * rb;
    const uint8_t *ahead = row;
    for (int r = r0; r < r1; r++, row += rb) {
        ahead = prefetch_pages_ahead(ahead, row + rb);
        prefetch_lines(row + LINES_AHEAD_WITH_PAGES, rb);
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
        const uint8_t *w = row;
        int b = 0;
        for (; b + 2 <= nb; b += 2, w += 68) {
            acc0 = INT8_VARIANT(q8_block)(w, a, b, acc0);
            acc1 = INT8_VARIANT(q8_block)(w + 34, a, b + 1, acc1);
        }
        if (b < nb) acc0 = INT8_VARIANT(q8_block)(w, a, b, acc0);
        y[r - r0] = hsum8(_mm256_add_ps(acc0, acc1));
    }
}
