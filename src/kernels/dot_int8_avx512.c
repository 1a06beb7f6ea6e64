/* The integer block products on AVX-512 VNNI (kernels/dot_int8.h), two
 * blocks per 64-byte vector. For the 4/5-bit formats one masked load takes
 * both blocks' bytes; a byte permute (VBMI) places each block's 16 code
 * bytes twice, and a per-quadword shift (0 or 4) with a mask leaves the 32
 * codes of each block in element order, matching x's int8 layout; Q5's
 * fifth bits come in as a byte mask (another byte permute brings each
 * code's byte of fifth bits, a test against its bit makes the mask). vpdpbusd multiplies the unsigned codes
 * with the signed activations and sums 4 products per lane; the lanes start
 * from −offset·Σq (the format's offset, folded into the integer sum), go to
 * float once, and are scaled by d_w·d_x (a word permute of the same load
 * picks the two blocks' f16 scales). Q8_0 codes are signed: their absolute
 * values multiply x with the codes' signs (a masked negate). Chosen at run
 * time when CPUID reports AVX-512 VNNI and VBMI. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))

#ifdef __clang__
#pragma clang attribute push(                                                                                       \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,avx2,fma,f16c"))),             \
    apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,avx2,fma,f16c")
#endif

#include <immintrin.h>
#include <string.h>

#include "kernels/avx_common.h"
#include "kernels/dot_int8.h"
#include "kernels/row_groups.h"

static void quantize(const float *x, act_q8 *a) {
    for (int b = 0; b < a->n / 32; b++) {
        const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        const float d = amax / 127.0f, id = activation_scale_ok(d) ? 1.0f / d : 0.0f;
        const __m512 vid = _mm512_set1_ps(id), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
        /* clamp in float (as the reference), then round to nearest even; the
         * upper bound matters only for non-finite x (an infinity that the
         * maximum missed beside a NaN), whose code must not wrap */
        const __m512i q0 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x0, vid), lo), hi));
        const __m512i q1 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x1, vid), lo), hi));
        _mm_storeu_si128((__m128i *)(a->q + 32 * b), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(a->q + 32 * b + 16), _mm512_cvtsepi32_epi8(q1));
        const int qs = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        const float sum = _mm512_reduce_add_ps(_mm512_add_ps(x0, x1));
        _mm256_storeu_ps(a->d + 8 * b, _mm256_set1_ps(d));
        _mm256_storeu_si256((__m256i *)(a->qneg8 + 8 * b), _mm256_setr_epi32(-8 * qs, 0, 0, 0, 0, 0, 0, 0));
        _mm256_storeu_ps(a->xsum + 8 * b, _mm256_setr_ps(sum, 0, 0, 0, 0, 0, 0, 0));
    }
    act_q8_clear_pad(a);
}

/* Per-row constants: the byte permute and shifts that unpack a block pair,
 * the word permute that spreads the two scales (and minima) over the lanes. */
typedef struct nib_consts {
    __m512i perm, shifts, dwords, mwords, m4, sixteen, hperm, hbit;
} nib_consts;

static nib_consts nib_setup(const nib_format *f) {
    _Alignas(64) uint8_t perm[64], hperm[64], hbit[64];
    _Alignas(64) uint16_t dw[32], mw[32];
    for (int i = 0; i < 64; i++) {
        perm[i] = (uint8_t)((i / 32) * f->bb + f->qs + i % 16);
        hperm[i] = (uint8_t)((i / 32) * f->bb + (f->qh > 0 ? f->qh : 0) + (i % 32) / 8);
        hbit[i] = (uint8_t)(1u << (i % 8));
    }
    for (int i = 0; i < 32; i++) {
        dw[i] = (uint16_t)(((i / 8) % 2) * f->bb / 2); /* lanes 0-7: block 0, 8-15: block 1 */
        mw[i] = (uint16_t)(dw[i] + 1);
    }
    nib_consts c;
    c.perm = _mm512_load_si512(perm);
    c.shifts = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4); /* quadwords 2-3 of a block: its high nibbles */
    c.dwords = _mm512_load_si512(dw);
    c.mwords = _mm512_load_si512(mw);
    c.m4 = _mm512_set1_epi8(15);
    c.sixteen = _mm512_set1_epi8(16);
    c.hperm = _mm512_load_si512(hperm);
    c.hbit = _mm512_load_si512(hbit);
    return c;
}

static inline __m512 f16_lanes(__m512i words, __m512i raw) {
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(words, raw)));
}

/* Two blocks (the second may be the zero padding: load mask) at w, with the
 * activations of block b; returns acc + their float sum (minimum terms into *macc). */
static inline __attribute__((always_inline)) __m512 nib_pair(const nib_format *f, const nib_consts *c, const uint8_t *w,
                                                             __mmask64 load, const act_q8 *a, int b, __m512 acc,
                                                             __m512 *macc) {
    /* a full load where the 64 bytes lie inside the matrix: masked loads
     * that miss the cache ran at a third of the speed */
    const __m512i raw = load == ~(__mmask64)0 ? _mm512_loadu_si512(w) : _mm512_maskz_loadu_epi8(load, w);
    __m512i v = _mm512_and_si512(_mm512_srlv_epi64(_mm512_permutexvar_epi8(c->perm, raw), c->shifts), c->m4);
    if (f->qh >= 0) /* each code's byte of fifth bits, tested against its bit */
        v = _mm512_mask_add_epi8(v, _mm512_test_epi8_mask(_mm512_permutexvar_epi8(c->hperm, raw), c->hbit), v, c->sixteen);
    __m512i dot = f->offset ? _mm512_load_si512(a->qneg8 + 8 * b) : _mm512_setzero_si512();
    if (f->offset == 16) dot = _mm512_add_epi32(dot, dot);
    dot = _mm512_dpbusd_epi32(dot, v, _mm512_load_si512(a->q + 32 * b));
    const __m512 s = _mm512_mul_ps(f16_lanes(c->dwords, raw), _mm512_load_ps(a->d + 8 * b));
    if (f->has_min) *macc = _mm512_fmadd_ps(f16_lanes(c->mwords, raw), _mm512_load_ps(a->xsum + 8 * b), *macc);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc);
}

/* Row w against a; `last`: the matrix's last row, where reading past a
 * block pair could leave the mapped data. */
static inline __attribute__((always_inline)) float nib_row(const nib_format *f, const nib_consts *c,
                                                           const uint8_t *w, const act_q8 *a, int last) {
    const int nb = a->n / 32;
    const __mmask64 one = ((__mmask64)1 << f->bb) - 1, exact = ((__mmask64)1 << (2 * f->bb)) - 1;
    const __mmask64 two = last ? exact : ~(__mmask64)0;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, m0 = acc0, m1 = acc0;
    int b = 0;
    for (; b + 4 <= nb; b += 4, w += 4 * f->bb) {
        acc0 = nib_pair(f, c, w, two, a, b, acc0, &m0);
        acc1 = nib_pair(f, c, w + 2 * f->bb, two, a, b + 2, acc1, &m1);
    }
    for (; b < nb; b += 2, w += 2 * f->bb) acc0 = nib_pair(f, c, w, b + 1 < nb ? exact : one, a, b, acc0, &m0);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(m0, m1)));
}

static inline __attribute__((always_inline)) void nib_rows(const nib_format f, const matrix *W, const act_q8 *a,
                                                           float *y, int r0, int r1) {
    const nib_consts c = nib_setup(&f);
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)W->cols);
    const uint8_t *row = (const uint8_t *)W->data + (size_t)r0 * rb;
    prefetch_start(row, (size_t)(r1 - r0) * rb);
    for (int r = r0; r < r1; r++, row += rb) {
        prefetch_row_ahead(row, rb);
        y[r - r0] = nib_row(&f, &c, row, a, r == W->rows - 1);
    }
}

/* Q8_0: two 34-byte blocks, codes signed. */
static inline __m512 q8_pair(const uint8_t *w, int both, const act_q8 *a, int b, __m512i dwords, __m512 acc) {
    const __m512i raw = both ? _mm512_loadu_si512(w) : _mm512_maskz_loadu_epi8(((__mmask64)1 << 34) - 1, w);
    const __m256i hi = both ? _mm256_loadu_si256((const __m256i *)(w + 36)) : _mm256_setzero_si256();
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(w + 2))), hi, 1);
    const __m512i x = _mm512_load_si512(a->q + 32 * b);
    const __m512i xs = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(v), _mm512_setzero_si512(), x);
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(v), xs);
    const __m512 s = _mm512_mul_ps(f16_lanes(dwords, raw), _mm512_load_ps(a->d + 8 * b));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc);
}

static void q8_rows(const matrix *W, const act_q8 *a, float *y, int r0, int r1) {
    /* lanes 0-7: the scale of block 0 (word 0), 8-15: of block 1 (word 17) */
    const __m512i dwords = _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16(17), _mm_setzero_si128()));
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)W->cols);
    const int nb = a->n / 32;
    const uint8_t *row = (const uint8_t *)W->data + (size_t)r0 * rb;
    for (int r = r0; r < r1; r++, row += rb) {
        prefetch_row_ahead(row, rb);
        __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
        const uint8_t *w = row;
        int b = 0;
        for (; b + 4 <= nb; b += 4, w += 136) {
            acc0 = q8_pair(w, 1, a, b, dwords, acc0);
            acc1 = q8_pair(w + 68, 1, a, b + 2, dwords, acc1);
        }
        for (; b < nb; b += 2, w += 68) acc0 = q8_pair(w, b + 1 < nb, a, b, dwords, acc0);
        y[r - r0] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    }
}

static void rows(const matrix *W, const act_q8 *a, float *y, int r0, int r1) {
    switch (W->type) {
    case DT_Q8_0: q8_rows(W, a, y, r0, r1); return;
    case DT_Q4_0: nib_rows(Q4_0_FORMAT, W, a, y, r0, r1); return;
    case DT_Q4_1: nib_rows(Q4_1_FORMAT, W, a, y, r0, r1); return;
    case DT_Q5_0: nib_rows(Q5_0_FORMAT, W, a, y, r0, r1); return;
    case DT_Q5_1: nib_rows(Q5_1_FORMAT, W, a, y, r0, r1); return;
    default: int8_dot_scalar.rows(W, a, y, r0, r1); return;
    }
}

/* ---- 16 rows at a time (kernels/row_groups.h): lane r of every vector is
 * row r of the group, x's 4 activations of a code vector are broadcast, and
 * a block column ends in one conversion and multiply-add for 16 rows. */

/* x's int8 codes 4v..4v+3 of block b, in every lane */
static inline __m512i x_quad(const act_q8 *a, int b, int v) { return _mm512_set1_epi32(i32_at(a->q + 32 * b + 4 * v)); }

static inline __m512 column_scales(const uint8_t *scales, const act_q8 *a, int b) {
    return _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)scales)), _mm512_set1_ps(a->d[8 * b]));
}

/* Code vector h of a 4/5-bit block column (parts at base + c) as the two
 * operands of its products: the low codes (x's activations 4h..4h+3) and
 * the high ones (16 + 4h..), the latter 16 x the code without fifth bits. */
static inline __attribute__((always_inline)) void nib_codes(const nib_format *f, const uint8_t *base, group_column c,
                                                            int h, __m512i *lo, __m512i *hi) {
    const __m512i m4 = _mm512_set1_epi8(15), sixteen = _mm512_set1_epi8(16);
    const __m512i z = _mm512_loadu_si512(base + c.codes + 64 * h);
    if (f->qh < 0) {
        *lo = _mm512_and_si512(z, m4);
        *hi = _mm512_andnot_si512(m4, z);
    } else {
        uint64_t ml, mh;
        memcpy(&ml, base + c.fifth + 8 * h, 8);
        memcpy(&mh, base + c.fifth + 8 * (h + 4), 8);
        const __m512i l = _mm512_and_si512(z, m4), u = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
        *lo = _mm512_mask_add_epi8(l, _cvtu64_mask64(ml), l, sixteen);
        *hi = _mm512_mask_add_epi8(u, _cvtu64_mask64(mh), u, sixteen);
    }
}

/* A 4/5-bit block column (parts at base + c): acc + the 16 rows' products
 * with block b of x (minimum terms into *macc). Without fifth bits the high
 * nibbles are multiplied in place (16 x the code: the sum is 16 x exact,
 * shifted back once); with them both nibbles are shifted down and the fifth
 * bits added. */
static inline __attribute__((always_inline)) __m512 nib_column(const nib_format *f, const uint8_t *base,
                                                               group_column c, const act_q8 *a, int b, __m512 acc,
                                                               __m512 *macc) {
    __m512i lo = _mm512_set1_epi32(f->offset / 8 * a->qneg8[8 * b]), hi = _mm512_setzero_si512();
    /* unrolled: GCC 12 kept the loop, with two register copies per
     * accumulator each round (a cache-resident product 15-25% slower) */
#pragma GCC unroll 4
    for (int h = 0; h < 4; h++) {
        __m512i l, u;
        nib_codes(f, base, c, h, &l, &u);
        lo = _mm512_dpbusd_epi32(lo, l, x_quad(a, b, h));
        hi = _mm512_dpbusd_epi32(hi, u, x_quad(a, b, h + 4));
    }
    const __m512i dot = _mm512_add_epi32(lo, f->qh < 0 ? _mm512_srai_epi32(hi, 4) : hi);
    if (f->has_min)
        *macc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(base + c.min))),
                                _mm512_set1_ps(a->xsum[8 * b]), *macc);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), column_scales(base + c.scale, a, b), acc);
}

/* A Q8_0 block column: codes stored + 128, so the sums start from -128 Σq. */
static inline __m512 q8_column(const uint8_t *base, group_column c, const act_q8 *a, int b, __m512 acc) {
    __m512i s0 = _mm512_set1_epi32(16 * a->qneg8[8 * b]), s1 = _mm512_setzero_si512();
    for (int v = 0; v < 8; v += 2) {
        s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(base + c.codes + 64 * v), x_quad(a, b, v));
        s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(base + c.codes + 64 * (v + 1)), x_quad(a, b, v + 1));
    }
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), column_scales(base + c.scale, a, b), acc);
}

/* f: the 4/5-bit format of type t, or NULL for Q8_0 */
static inline __attribute__((always_inline)) void group_rows(const nib_format *f, dtype t, const matrix *W,
                                                             const act_q8 *a, float *y, int g0, int g1) {
    const group_walk wk = row_group_walk(t, W->cols);
    const int nb = wk.nb;
    const size_t cb = wk.cb;
    const group_column c0 = wk.c0, c1 = wk.c1, lone = wk.lone;
    const uint8_t *ahead = (const uint8_t *)W->groups + (size_t)g0 * nb * cb;
    if (wk.every_line) prefetch_start(ahead, (size_t)(g1 - g0) * nb * cb);
    for (int g = g0; g < g1; g++) {
        const uint8_t *pair = (const uint8_t *)W->groups + (size_t)g * nb * cb;
        __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, m0 = acc0, m1 = acc0;
        int b = 0;
        for (; b + 2 <= nb; b += 2, pair += 2 * cb) {
            ahead = prefetch_pages_ahead(ahead, pair + 2 * cb);
            if (wk.every_line) prefetch_lines(pair + LINES_AHEAD_WITH_PAGES, 2 * cb);
            acc0 = f ? nib_column(f, pair, c0, a, b, acc0, &m0) : q8_column(pair, c0, a, b, acc0);
            acc1 = f ? nib_column(f, pair, c1, a, b + 1, acc1, &m1) : q8_column(pair, c1, a, b + 1, acc1);
        }
        if (b < nb) acc0 = f ? nib_column(f, pair, lone, a, b, acc0, &m0) : q8_column(pair, lone, a, b, acc0);
        _mm512_storeu_ps(y + ROW_GROUP * (g - g0), _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(m0, m1)));
    }
}

static void groups(const matrix *W, const act_q8 *a, float *y, int g0, int g1) {
    switch (W->type) {
    case DT_Q8_0: group_rows(NULL, DT_Q8_0, W, a, y, g0, g1); return;
    case DT_Q4_0: group_rows(&Q4_0_FORMAT, DT_Q4_0, W, a, y, g0, g1); return;
    case DT_Q4_1: group_rows(&Q4_1_FORMAT, DT_Q4_1, W, a, y, g0, g1); return;
    case DT_Q5_0: group_rows(&Q5_0_FORMAT, DT_Q5_0, W, a, y, g0, g1); return;
    case DT_Q5_1: group_rows(&Q5_1_FORMAT, DT_Q5_1, W, a, y, g0, g1); return;
    default: rows(W, a, y, ROW_GROUP * g0, ROW_GROUP * g1); return;
    }
}

/* ---- 16 rows against several tokens (a prompt, a batched step) ----
 * The same block columns as group_rows, each unpacked once and multiplied
 * with every token of a tile: the codes stay in registers while the
 * tokens' activations go by. Per token the float work is group_rows' own —
 * the same integer sums (exact in any order), converted, scaled and added
 * into the same accumulators in the same order — so every row of every
 * token is bit for bit its decode step. */
/* Tokens a pass over the weights: every tile reads the weights again, and
 * on the 1.5B shape (rows of 2,048 and 8,192) tiles of 16 left prompts slower
 * than the bf16 panels; 64 were faster everywhere (docs/perf.md, change 36). */
#define TILE_TOKENS 64

/* Per token of a tile: acc0, acc1 (even / odd block columns), m0, m1 (their minimum terms). */
typedef struct tile_acc {
    __m512 v[TILE_TOKENS][4];
} tile_acc;

/* Block b of a tile's activations side by side (act_q8 spreads a block's
 * values over 8 lanes, one token's blocks after another): codes, d, the
 * offset term and Σx of each token, so that a column reads them from a few
 * lines. */
typedef struct tile_block {
    int32_t q[TILE_TOKENS][8]; /* a token's 32 codes as 8 quads, each broadcast whole */
    float d[TILE_TOKENS];
    int32_t qneg8[TILE_TOKENS];
    float xsum[TILE_TOKENS];
} tile_block;

/* The tokens of a product as tiles of TILE_TOKENS, each tile's blocks one
 * after another (nb tile_blocks a tile). */
static size_t tokens_bytes(int cols, int N) {
    return sizeof(tile_block) * (size_t)(cols / 32) * (size_t)((N + TILE_TOKENS - 1) / TILE_TOKENS);
}

static void tokens_gather(const act_q8 *a, int N, void *tokens) {
    const int nb = a[0].n / 32;
    tile_block *x = tokens;
    for (int n0 = 0; n0 < N; n0 += TILE_TOKENS, x += nb) {
        const int nt = N - n0 < TILE_TOKENS ? N - n0 : TILE_TOKENS;
        for (int b = 0; b < nb; b++)
            for (int i = 0; i < nt; i++) {
                const act_q8 *t = &a[n0 + i];
                memcpy(x[b].q[i], t->q + 32 * b, 32);
                x[b].d[i] = t->d[8 * b];
                x[b].qneg8[i] = t->qneg8[8 * b];
                x[b].xsum[i] = t->xsum[8 * b];
            }
    }
}

static inline __m512i tile_quad(const tile_block *x, int i, int v) { return _mm512_set1_epi32(x->q[i][v]); }

static inline __attribute__((always_inline)) void nib_column_tokens(const nib_format *f, const uint8_t *base,
                                                                    group_column c, const tile_block *x, int nt,
                                                                    tile_acc *t, int odd) {
    __m512i lo_codes[4], hi_codes[4];
#pragma GCC unroll 4
    for (int h = 0; h < 4; h++) nib_codes(f, base, c, h, &lo_codes[h], &hi_codes[h]); /* once for the tile */
    const __m512 scales = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(base + c.scale)));
    const __m512 mins = f->has_min ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(base + c.min))) : scales;
    for (int i = 0; i < nt; i++) {
        __m512i lo = _mm512_set1_epi32(f->offset / 8 * x->qneg8[i]), hi = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++) {
            lo = _mm512_dpbusd_epi32(lo, lo_codes[h], tile_quad(x, i, h));
            hi = _mm512_dpbusd_epi32(hi, hi_codes[h], tile_quad(x, i, h + 4));
        }
        const __m512i dot = _mm512_add_epi32(lo, f->qh < 0 ? _mm512_srai_epi32(hi, 4) : hi);
        if (f->has_min) t->v[i][2 + odd] = _mm512_fmadd_ps(mins, _mm512_set1_ps(x->xsum[i]), t->v[i][2 + odd]);
        t->v[i][odd] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(scales, _mm512_set1_ps(x->d[i])),
                                       t->v[i][odd]);
    }
}

static inline __attribute__((always_inline)) void q8_column_tokens(const uint8_t *base, group_column c,
                                                                   const tile_block *x, int nt, tile_acc *t, int odd) {
    __m512i codes[8];
#pragma GCC unroll 8
    for (int v = 0; v < 8; v++) codes[v] = _mm512_loadu_si512(base + c.codes + 64 * v);
    const __m512 scales = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(base + c.scale)));
    for (int i = 0; i < nt; i++) {
        __m512i s0 = _mm512_set1_epi32(16 * x->qneg8[i]), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int v = 0; v < 8; v += 2) {
            s0 = _mm512_dpbusd_epi32(s0, codes[v], tile_quad(x, i, v));
            s1 = _mm512_dpbusd_epi32(s1, codes[v + 1], tile_quad(x, i, v + 1));
        }
        t->v[i][odd] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)),
                                       _mm512_mul_ps(scales, _mm512_set1_ps(x->d[i])), t->v[i][odd]);
    }
}

/* f: the 4/5-bit format of type t, or NULL for Q8_0. Groups g0..g1 against
 * the nt tokens of tile x, token i's results at Y + i ldy (16 per group). */
static inline __attribute__((always_inline)) void group_rows_tile(const nib_format *f, dtype t, const matrix *W,
                                                                  const tile_block *x, int nt, float *Y, size_t ldy,
                                                                  int g0, int g1) {
    const int nb = W->cols / 32;
    const size_t cb = ROW_GROUP * dtype_block_bytes(t);
    const group_column c0 = row_group_column(t, 1, 0), c1 = row_group_column(t, 1, 1), lone = row_group_column(t, 0, 0);
    tile_acc acc;
    for (int g = g0; g < g1; g++) {
        const uint8_t *pair = (const uint8_t *)W->groups + (size_t)g * nb * cb;
        for (int i = 0; i < nt; i++) acc.v[i][0] = acc.v[i][1] = acc.v[i][2] = acc.v[i][3] = _mm512_setzero_ps();
        int b = 0;
        for (; b + 2 <= nb; b += 2, pair += 2 * cb) {
            /* a tile of a few tokens reads its columns as decode does, but
             * spends longer on each: the software prefetch of the 4/5-bit
             * decode (group_rows), here for Q8_0 too, whose decode is left to
             * the hardware prefetcher (docs/perf.md, changes 24 and 45) */
            if (nt <= PREFETCH_MAX_TOKENS) prefetch_row_ahead(pair, 2 * cb);
            if (f) {
                nib_column_tokens(f, pair, c0, &x[b], nt, &acc, 0);
                nib_column_tokens(f, pair, c1, &x[b + 1], nt, &acc, 1);
            } else {
                q8_column_tokens(pair, c0, &x[b], nt, &acc, 0);
                q8_column_tokens(pair, c1, &x[b + 1], nt, &acc, 1);
            }
        }
        if (b < nb) {
            if (f) nib_column_tokens(f, pair, lone, &x[b], nt, &acc, 0);
            else q8_column_tokens(pair, lone, &x[b], nt, &acc, 0);
        }
        for (int i = 0; i < nt; i++)
            _mm512_storeu_ps(Y + (size_t)i * ldy + ROW_GROUP * (g - g0),
                             _mm512_add_ps(_mm512_add_ps(acc.v[i][0], acc.v[i][1]),
                                           _mm512_add_ps(acc.v[i][2], acc.v[i][3])));
    }
}

/* One tile against groups g0..g1. */
static __attribute__((noinline)) void tile_rows(const matrix *W, const tile_block *x, int nt, float *Y, size_t ldy,
                                                int g0, int g1) {
    switch (W->type) {
    case DT_Q8_0: group_rows_tile(NULL, DT_Q8_0, W, x, nt, Y, ldy, g0, g1); return;
    case DT_Q4_0: group_rows_tile(&Q4_0_FORMAT, DT_Q4_0, W, x, nt, Y, ldy, g0, g1); return;
    case DT_Q4_1: group_rows_tile(&Q4_1_FORMAT, DT_Q4_1, W, x, nt, Y, ldy, g0, g1); return;
    case DT_Q5_0: group_rows_tile(&Q5_0_FORMAT, DT_Q5_0, W, x, nt, Y, ldy, g0, g1); return;
    default: group_rows_tile(&Q5_1_FORMAT, DT_Q5_1, W, x, nt, Y, ldy, g0, g1); return;
    }
}

static void groups_tokens(const matrix *W, const void *tokens, int N, float *Y, size_t ldy, int g0, int g1) {
    const int nb = W->cols / 32;
    const tile_block *x = tokens;
    /* a tile of tokens over all the groups: the tile's activations stay in
     * the cache while the groups go by */
    for (int n0 = 0; n0 < N; n0 += TILE_TOKENS, x += nb) {
        const int nt = N - n0 < TILE_TOKENS ? N - n0 : TILE_TOKENS;
        tile_rows(W, x, nt, Y + (size_t)n0 * ldy, ldy, g0, g1);
    }
}

const int8_dot_ops int8_dot_avx512vnni = {"avx512vnni", "avx512", quantize, rows, groups,
                                          tokens_bytes, tokens_gather, groups_tokens};

#ifdef __clang__
#pragma clang attribute pop
#endif

#endif
