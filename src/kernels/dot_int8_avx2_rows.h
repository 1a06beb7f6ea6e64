/* The AVX2 integer block rows (kernels/dot_int8_avx2.c), one block per
 * 32-byte vector, written once for two instruction sets: the file includes
 * it with INT8_VARIANT(name) naming the functions and DPBUSD(acc, u, s)
 * (acc + sums of 4 products of unsigned u and signed s bytes per lane)
 * as vpmaddubsw + vpmaddwd (AVX2) or vpdpbusd (AVX-VNNI). DPBUSD_WIDE is 1
 * where u may take any byte (vpdpbusd sums in 32 bits), 0 where two
 * products must fit vpmaddubsw's 16-bit pairs (u <= 128). */

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

/* ---- the 16-row groups (kernels/row_groups.h) as two halves of 8 rows:
 * the first 32 bytes of each 64-byte part are rows 0-7, the others rows
 * 8-15, and lane r of a half is row 8 hf + r, summed as
 * dot_int8_avx512.c's columns sum all 16 (x's 4 activations of a code vector
 * broadcast; one conversion and multiply-add for 8 rows a block). Read row by
 * row, these products had run at 40-60% of the memory's pace (docs/perf.md,
 * change 62). */

/* x's int8 codes 4v..4v+3 of block b, in every lane */
static inline __m256i INT8_VARIANT(x_quad)(const act_q8 *a, int b, int v) {
    return _mm256_set1_epi32(i32_at(a->q + 32 * b + 4 * v));
}

/* Half hf of a 4/5-bit block column (parts at base + c): acc + its 8 rows'
 * products with block b of x (minimum terms into *macc). The high nibbles
 * are multiplied in place (16 x the code, shifted back once) where DPBUSD
 * takes any byte and there are no fifth bits, else shifted down first. */
static inline __attribute__((always_inline)) __m256 INT8_VARIANT(nib_half)(const nib_format *f, const uint8_t *base,
                                                                           group_column c, const act_q8 *a, int b,
                                                                           int hf, __m256 acc, __m256 *macc) {
    const __m256i m4 = _mm256_set1_epi8(15), sixteen = _mm256_set1_epi8(16);
    const int in_place = DPBUSD_WIDE && f->qh < 0;
    __m256i lo = _mm256_set1_epi32(f->offset / 8 * a->qneg8[8 * b]), hi = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int h = 0; h < 4; h++) {
        const __m256i z = _mm256_loadu_si256((const __m256i *)(base + c.codes + 64 * h + 32 * hf));
        __m256i l = _mm256_and_si256(z, m4);
        __m256i u = in_place ? _mm256_andnot_si256(m4, z) : _mm256_and_si256(_mm256_srli_epi16(z, 4), m4);
        if (f->qh >= 0) { /* mask h, bit 4r + k: element 4h + k of row r (mask h + 4: 16 + 4h + k) */
            l = _mm256_or_si256(l, _mm256_and_si256(bits_to_bytes(base + c.fifth + 8 * h + 4 * hf), sixteen));
            u = _mm256_or_si256(u, _mm256_and_si256(bits_to_bytes(base + c.fifth + 8 * (h + 4) + 4 * hf), sixteen));
        }
        lo = DPBUSD(lo, l, INT8_VARIANT(x_quad)(a, b, h));
        hi = DPBUSD(hi, u, INT8_VARIANT(x_quad)(a, b, h + 4));
    }
    const __m256i dot = _mm256_add_epi32(lo, in_place ? _mm256_srai_epi32(hi, 4) : hi);
    if (f->has_min)
        *macc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(base + c.min + 16 * hf))),
                                _mm256_set1_ps(a->xsum[8 * b]), *macc);
    const __m256 s = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(base + c.scale + 16 * hf))),
                                   _mm256_set1_ps(a->d[8 * b]));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, acc);
}

/* Half hf of a Q8_0 block column: codes stored + 128, so the sums start
 * from -128 Σq. For vpmaddubsw a code is taken as its low 7 bits plus its
 * top bit (two products of either fit 16 bits; of the whole byte they would not). */
static inline __attribute__((always_inline)) __m256 INT8_VARIANT(q8_half)(const uint8_t *base, group_column c,
                                                                          const act_q8 *a, int b, int hf, __m256 acc) {
    __m256i s0 = _mm256_set1_epi32(16 * a->qneg8[8 * b]), s1 = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int v = 0; v < 8; v++) {
        const __m256i z = _mm256_loadu_si256((const __m256i *)(base + c.codes + 64 * v + 32 * hf));
        const __m256i x = INT8_VARIANT(x_quad)(a, b, v);
        __m256i *s = v % 2 ? &s1 : &s0;
        if (DPBUSD_WIDE) {
            *s = DPBUSD(*s, z, x);
        } else {
            const __m256i top = _mm256_set1_epi8((char)0x80);
            *s = DPBUSD(DPBUSD(*s, _mm256_andnot_si256(top, z), x), _mm256_and_si256(z, top), x);
        }
    }
    const __m256 s = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(base + c.scale + 16 * hf))),
                                   _mm256_set1_ps(a->d[8 * b]));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)), s, acc);
}

/* f: the 4/5-bit format of type t, or NULL for Q8_0; prefetched as the
 * AVX-512 columns are (row_group_walk) */
static inline __attribute__((always_inline)) void INT8_VARIANT(group_rows)(const nib_format *f, dtype t,
                                                                          const matrix *W, const act_q8 *a,
                                                                          float *y, int g0, int g1) {
    const group_walk wk = row_group_walk(t, W->cols);
    const uint8_t *ahead = (const uint8_t *)W->groups + (size_t)g0 * wk.nb * wk.cb;
    if (wk.every_line) prefetch_start(ahead, (size_t)(g1 - g0) * wk.nb * wk.cb);
    for (int g = g0; g < g1; g++) {
        const uint8_t *pair = (const uint8_t *)W->groups + (size_t)g * wk.nb * wk.cb;
        __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, m[2] = {acc[0], acc[0]};
        int b = 0;
        for (; b + 2 <= wk.nb; b += 2, pair += 2 * wk.cb) {
            ahead = prefetch_pages_ahead(ahead, pair + 2 * wk.cb);
            if (wk.every_line) prefetch_lines(pair + LINES_AHEAD_WITH_PAGES, 2 * wk.cb);
#pragma GCC unroll 2
            for (int hf = 0; hf < 2; hf++) {
                acc[hf] = f ? INT8_VARIANT(nib_half)(f, pair, wk.c0, a, b, hf, acc[hf], &m[hf])
                            : INT8_VARIANT(q8_half)(pair, wk.c0, a, b, hf, acc[hf]);
                acc[hf] = f ? INT8_VARIANT(nib_half)(f, pair, wk.c1, a, b + 1, hf, acc[hf], &m[hf])
                            : INT8_VARIANT(q8_half)(pair, wk.c1, a, b + 1, hf, acc[hf]);
            }
        }
        if (b < wk.nb)
            for (int hf = 0; hf < 2; hf++)
                acc[hf] = f ? INT8_VARIANT(nib_half)(f, pair, wk.lone, a, b, hf, acc[hf], &m[hf])
                            : INT8_VARIANT(q8_half)(pair, wk.lone, a, b, hf, acc[hf]);
        for (int hf = 0; hf < 2; hf++) _mm256_storeu_ps(y + ROW_GROUP * (g - g0) + 8 * hf, _mm256_add_ps(acc[hf], m[hf]));
    }
}

static void INT8_VARIANT(groups)(const matrix *W, const act_q8 *a, float *y, int g0, int g1) {
    switch (W->type) {
    case DT_Q8_0: INT8_VARIANT(group_rows)(NULL, DT_Q8_0, W, a, y, g0, g1); return;
    case DT_Q4_0: INT8_VARIANT(group_rows)(&Q4_0_FORMAT, DT_Q4_0, W, a, y, g0, g1); return;
    case DT_Q4_1: INT8_VARIANT(group_rows)(&Q4_1_FORMAT, DT_Q4_1, W, a, y, g0, g1); return;
    case DT_Q5_0: INT8_VARIANT(group_rows)(&Q5_0_FORMAT, DT_Q5_0, W, a, y, g0, g1); return;
    case DT_Q5_1: INT8_VARIANT(group_rows)(&Q5_1_FORMAT, DT_Q5_1, W, a, y, g0, g1); return;
    default: INT8_VARIANT(rows)(W, a, y, ROW_GROUP * g0, ROW_GROUP * g1); return;
    }
}
