/* The RWKV-7 WKV backward of one chunk (wkv7_chunk_grad, kernels/wkv.h)
 * written for AVX-512: kernel_ops.wkv7_backward_chunk of the AVX-512 table.
 *
 * The reference (wkv7_backward_chunk_scalar, kernels/wkv7_train.c) keeps a
 * row's sums in WKV_LANES = 8 lanes so that one source compiles to the
 * scalar and AVX2 builds; compiled for AVX-512 it still ran half-width
 * vectors and summed every row's three dot products (sa, dv, dsa) one at a
 * time. The backward need not match any other kernel bit for bit (only the
 * forward and the backward's recomputation of the states must equal the
 * inference rows), so here a vector holds 16 elements of a row, and the
 * three dot products of four rows are summed together, four vectors folded
 * into four sums at once; each step's second pass runs inside the next
 * step's first (first_pass below). Results agree with the reference within
 * rounding and do not depend on the thread count (each chunk's sums run in a
 * fixed order). Heads whose size is not a multiple of 16 take the AVX2 build. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))

#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
#endif

#include <immintrin.h>
#include <string.h>

#include "kernels/wkv.h"

/* Rows handled together: their column sums (dr, dk, dw, db, da) stay in
 * registers across the group and their dot products are folded together. */
enum { ROWS = 4, LANES = 16 };

/* The sums of the lanes of a, b, c and d, in that order. */
static inline __m128 sums4(__m512 a, __m512 b, __m512 c, __m512 d) {
    /* 256-bit halves of a and b side by side, then of c and d: 8 lanes each */
    const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee));
    const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xee));
    /* one 128-bit lane each of a, b, c, d */
    __m512 s = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xdd));
    s = _mm512_add_ps(s, _mm512_permute_ps(s, 0x4e));
    s = _mm512_add_ps(s, _mm512_permute_ps(s, 0xb1)); /* every element of lane q: its vector's sum */
    const __m512i firsts = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(firsts, s));
}

/* out[i] = S[i] · x for the N rows of S (N floats each). */
static void row_dots(int N, const float *S, const float *x, float *out) {
    for (int i = 0; i < N; i += ROWS) {
        __m512 acc[ROWS];
#pragma GCC unroll 4
        for (int m = 0; m < ROWS; m++) acc[m] = _mm512_setzero_ps();
        for (int q = 0; q < N; q += LANES) {
            const __m512 xq = _mm512_loadu_ps(x + q);
#pragma GCC unroll 4
            for (int m = 0; m < ROWS; m++)
                acc[m] = _mm512_fmadd_ps(_mm512_loadu_ps(S + (size_t)(i + m) * N + q), xq, acc[m]);
        }
        _mm_storeu_ps(out + i, sums4(acc[0], acc[1], acc[2], acc[3]));
    }
}

/* One step's vectors at the step's token and the head's first channel;
 * dsa: the rows' d(S a), written by the step's first pass. */
typedef struct step {
    const float *r, *w, *k, *v, *a, *b, *dy, *Sp, *Sc, *sa;
    float *dr, *dw, *dk, *dv, *da, *db, *dsa, *dS;
    int N;
} step;

/* Rows [i, i + ROWS) of step t, first pass: dS += dy r^T, the column sums
 * dr, dk, dw, db, the rows' dv = dS k and dsa = dS b.
 *
 * With `later` (the step after t, whose own first pass ran last), the same
 * pass first finishes that step's second pass: dS, still that step's, moves
 * one step back (dS_ij w_j + dsa_i a_j), and its da gains dsa_i S_ij, S
 * being the state before that step, which is t's Sc, read here anyway for dr.
 * So each step reads its two states and dS once, not twice. */
static inline __attribute__((always_inline)) void first_pass(const step *t, const step *later, int i) {
    const int N = t->N;
    __m512 gv[ROWS], gsa[ROWS];
#pragma GCC unroll 4
    for (int m = 0; m < ROWS; m++) gv[m] = gsa[m] = _mm512_setzero_ps();
    for (int q = 0; q < N; q += LANES) {
        const __m512 rq = _mm512_loadu_ps(t->r + q), kq = _mm512_loadu_ps(t->k + q), bq = _mm512_loadu_ps(t->b + q);
        __m512 dr = _mm512_loadu_ps(t->dr + q), dk = _mm512_loadu_ps(t->dk + q);
        __m512 dw = _mm512_loadu_ps(t->dw + q), db = _mm512_loadu_ps(t->db + q);
        __m512 wl = _mm512_setzero_ps(), al = wl, dal = wl;
        if (later) {
            wl = _mm512_loadu_ps(later->w + q), al = _mm512_loadu_ps(later->a + q);
            dal = _mm512_loadu_ps(later->da + q);
        }
#pragma GCC unroll 4
        for (int m = 0; m < ROWS; m++) {
            const size_t e = (size_t)(i + m) * N + (size_t)q;
            const __m512 dyi = _mm512_set1_ps(t->dy[i + m]), sc = _mm512_loadu_ps(t->Sc + e);
            __m512 ds = _mm512_loadu_ps(t->dS + e);
            if (later) {
                const __m512 dsa = _mm512_set1_ps(later->dsa[i + m]);
                dal = _mm512_fmadd_ps(dsa, sc, dal);
                ds = _mm512_fmadd_ps(dsa, al, _mm512_mul_ps(ds, wl));
            }
            const __m512 d = _mm512_fmadd_ps(dyi, rq, ds);
            dr = _mm512_fmadd_ps(sc, dyi, dr);
            gv[m] = _mm512_fmadd_ps(d, kq, gv[m]);
            gsa[m] = _mm512_fmadd_ps(d, bq, gsa[m]);
            dk = _mm512_fmadd_ps(d, _mm512_set1_ps(t->v[i + m]), dk);
            dw = _mm512_fmadd_ps(d, _mm512_loadu_ps(t->Sp + e), dw);
            db = _mm512_fmadd_ps(d, _mm512_set1_ps(t->sa[i + m]), db);
            _mm512_storeu_ps(t->dS + e, d);
        }
        _mm512_storeu_ps(t->dr + q, dr), _mm512_storeu_ps(t->dk + q, dk);
        _mm512_storeu_ps(t->dw + q, dw), _mm512_storeu_ps(t->db + q, db);
        if (later) _mm512_storeu_ps(later->da + q, dal);
    }
    _mm_storeu_ps(t->dv + i, sums4(gv[0], gv[1], gv[2], gv[3]));
    _mm_storeu_ps(t->dsa + i, sums4(gsa[0], gsa[1], gsa[2], gsa[3]));
}

/* Rows [i, i + ROWS), the second pass of the chunk's first step, which no
 * step before it finishes: dS moves one step back, da += dsa_i Sp_i. */
static void last_second_pass(const step *t, int i) {
    const int N = t->N;
    for (int q = 0; q < N; q += LANES) {
        const __m512 aq = _mm512_loadu_ps(t->a + q), wq = _mm512_loadu_ps(t->w + q);
        __m512 da = _mm512_loadu_ps(t->da + q);
#pragma GCC unroll 4
        for (int m = 0; m < ROWS; m++) {
            const size_t e = (size_t)(i + m) * N + (size_t)q;
            const __m512 dsa = _mm512_set1_ps(t->dsa[i + m]);
            da = _mm512_fmadd_ps(dsa, _mm512_loadu_ps(t->Sp + e), da);
            _mm512_storeu_ps(t->dS + e, _mm512_fmadd_ps(dsa, aq, _mm512_mul_ps(_mm512_loadu_ps(t->dS + e), wq)));
        }
        _mm512_storeu_ps(t->da + q, da);
    }
}

static step step_at(const wkv7_chunk_grad *g, int s, float *sa, float *dsa) {
    const size_t o = (size_t)s * (size_t)g->A, NN = (size_t)g->N * (size_t)g->N;
    const float *Sp = g->states + (size_t)s * NN;
    const step t = {g->r + o,  g->w + o,  g->k + o,  g->v + o,  g->a + o,  g->b + o,  g->dy + o,
                    Sp,        Sp + NN,   sa,        g->dr + o, g->dw + o, g->dk + o, g->dv + o,
                    g->da + o, g->db + o, dsa,       g->dS,     g->N};
    return t;
}

void wkv7_backward_chunk_avx512(const wkv7_chunk_grad *g) {
    const int N = g->N;
    if (N % LANES != 0 || N > WKV7_BLOCK_MAX_N) {
        wkv7_backward_chunk_avx2(g);
        return;
    }
    float sa[WKV7_BLOCK_MAX_N], dsa[2][WKV7_BLOCK_MAX_N];
    step later = {0};
    for (int s = g->len - 1; s >= 0; s--) {
        const step t = step_at(g, s, sa, dsa[s & 1]);
        row_dots(N, t.Sp, t.a, sa);
        float *const sums[] = {t.dr, t.dw, t.dk, t.da, t.db}; /* over the rows: start from zero */
        for (int c = 0; c < 5; c++) memset(sums[c], 0, sizeof(float) * (size_t)N);
        if (s == g->len - 1)
            for (int i = 0; i < N; i += ROWS) first_pass(&t, NULL, i);
        else
            for (int i = 0; i < N; i += ROWS) first_pass(&t, &later, i);
        later = t;
    }
    for (int i = 0; i < N; i += ROWS) last_second_pass(&later, i);
}

#ifdef __clang__
#pragma clang attribute pop
#endif

#endif
