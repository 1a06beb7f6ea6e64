/* The AVX-512 kernel variant (16 float lanes; AVX-512 F/BW/VL/DQ plus the
 * AVX2/FMA/F16C base). Compiled for that instruction set through a target
 * pragma (the same as a target attribute on each function); kernels/dispatch.c
 * calls into it only when CPUID/XGETBV allow it. Tested against the scalar
 * reference in tests/test_kernels.c (the WKV in tests/test_wkv.c). */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))

#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#endif

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/avx512_tile.h"
#include "kernels/avx_common.h"
#include "kernels/kquant_q8.h"
#include "kernels/matmul_bf16.h"
#include "kernels/wkv.h"

static inline __mmask16 tail_mask(int n) { return (__mmask16)((1u << n) - 1u); } /* n < 16 */

static inline __m512 load_f16x16(const uint8_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline __m512 load_bf16x16(const uint8_t *p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
static inline __m512 i8x16_to_f32(__m128i q) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)); }

static void kquant_row_to_f32(dtype t, const uint8_t *s, float *dst, int n);
static void q5_row_to_f32(dtype t, const uint8_t *s, float *dst, int n);

static void row_to_f32(dtype t, const void *src, float *dst, int n) {
    const uint8_t *s = src;
    int i = 0;
    switch (t) {
    case DT_F32: memcpy(dst, src, sizeof(float) * (size_t)n); return;
    case DT_F16:
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load_f16x16(s + 2 * i));
        for (; i < n; i++) dst[i] = f16_at(s + 2 * i);
        return;
    case DT_BF16:
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load_bf16x16(s + 2 * i));
        for (; i < n; i++) dst[i] = bf16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
        return;
    case DT_Q8_0:
        for (; i < n; i += 32, s += 34) {
            __m512 d = _mm512_set1_ps(f16_at(s));
            _mm512_storeu_ps(dst + i, _mm512_mul_ps(d, i8x16_to_f32(_mm_loadu_si128((const __m128i *)(s + 2)))));
            _mm512_storeu_ps(dst + i + 16,
                             _mm512_mul_ps(d, i8x16_to_f32(_mm_loadu_si128((const __m128i *)(s + 18)))));
        }
        return;
    case DT_Q4_0:
        for (; i < n; i += 32, s += 18) {
            __m512 d = _mm512_set1_ps(f16_at(s));
            __m128i lo, hi;
            q4_0_unpack(s + 2, &lo, &hi);
            _mm512_storeu_ps(dst + i, _mm512_mul_ps(d, i8x16_to_f32(lo)));
            _mm512_storeu_ps(dst + i + 16, _mm512_mul_ps(d, i8x16_to_f32(hi)));
        }
        return;
    case DT_Q4_1:
    case DT_Q5_0:
    case DT_Q5_1: q5_row_to_f32(t, s, dst, n); return;
    case DT_Q4_K:
    case DT_Q5_K:
    case DT_Q6_K: kquant_row_to_f32(t, s, dst, n); return;
    default: dtype_to_f32(t, src, dst, (size_t)n); return;
    }
}

/* ---- matrix-vector rows ------------------------------------------------- */

/* Weights mapped from a file start wherever the file puts them (safetensors
 * offsets are only 8-byte aligned); a 64-byte load that straddles two cache
 * lines costs a second access, which cut f32 decode from ~42 to ~28 GB/s.
 * So w is read in whole aligned cache lines, and each 16 elements are put
 * back in their own lanes by a two-source permute of two aligned lines:
 * element i is always in lane i mod 16 of accumulator (i / 16) mod 4 (the
 * rest after the last group of 64 as written below), so the sums do not
 * depend on where w lies (they did, through a peeled head, and a model's
 * results then depended on the heap's layout). */
static float dot_f32(const float *w, const float *x, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const unsigned mis = (unsigned)((uintptr_t)w & 63);
    const int m = mis && (mis & 3) == 0 && n >= 32 ? (int)mis / 4 : 0; /* w's floats before its first aligned line */
    int i = 0;
    if (m) {
        /* w[i + 16k ..] from two aligned lines: lanes m..15 of one, 0..m-1 of the next */
        const __m512i idx = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(m));
        const float *wa = w - m;
        __m512 l0 = _mm512_maskz_load_ps((__mmask16)(0xffffu << m), wa); /* lanes before w masked off */
        for (; i + 80 - m <= n; i += 64) { /* the last line read (wa + i + 64) lies inside w */
            const __m512 l1 = _mm512_load_ps(wa + i + 16), l2 = _mm512_load_ps(wa + i + 32);
            const __m512 l3 = _mm512_load_ps(wa + i + 48), l4 = _mm512_load_ps(wa + i + 64);
            a0 = _mm512_fmadd_ps(_mm512_permutex2var_ps(l0, idx, l1), _mm512_loadu_ps(x + i), a0);
            a1 = _mm512_fmadd_ps(_mm512_permutex2var_ps(l1, idx, l2), _mm512_loadu_ps(x + i + 16), a1);
            a2 = _mm512_fmadd_ps(_mm512_permutex2var_ps(l2, idx, l3), _mm512_loadu_ps(x + i + 32), a2);
            a3 = _mm512_fmadd_ps(_mm512_permutex2var_ps(l3, idx, l4), _mm512_loadu_ps(x + i + 48), a3);
            l0 = l4;
        }
    }
    for (; i + 64 <= n; i += 64) { /* the same vectors by unaligned loads: w aligned, or the last lines */
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
    if (i < n) {
        __mmask16 t = tail_mask(n - i);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(t, w + i), _mm512_maskz_loadu_ps(t, x + i), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static float dot_f16(const uint8_t *w, const float *x, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(load_f16x16(w + 2 * i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(load_f16x16(w + 2 * i + 32), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(load_f16x16(w + 2 * i + 64), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(load_f16x16(w + 2 * i + 96), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(load_f16x16(w + 2 * i), _mm512_loadu_ps(x + i), a0);
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512 wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + 2 * i));
        a1 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + i), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static float dot_bf16(const uint8_t *w, const float *x, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(load_bf16x16(w + 2 * i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(load_bf16x16(w + 2 * i + 32), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(load_bf16x16(w + 2 * i + 64), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(load_bf16x16(w + 2 * i + 96), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(load_bf16x16(w + 2 * i), _mm512_loadu_ps(x + i), a0);
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512i wi = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, w + 2 * i));
        __m512 wv = _mm512_castsi512_ps(_mm512_slli_epi32(wi, 16));
        a1 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + i), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* The block scale d (f16) broadcast to all lanes: one broadcast load + one convert. */
static inline __m512 scale16(const uint8_t *b) {
    uint16_t h;
    memcpy(&h, b, 2);
    return _mm512_cvtph_ps(_mm256_set1_epi16((short)h));
}

static inline __m512 q8_block(const uint8_t *b, const float *x, __m512 acc) {
    __m512 t = _mm512_mul_ps(i8x16_to_f32(_mm_loadu_si128((const __m128i *)(b + 2))), _mm512_loadu_ps(x));
    t = _mm512_fmadd_ps(i8x16_to_f32(_mm_loadu_si128((const __m128i *)(b + 18))), _mm512_loadu_ps(x + 16), t);
    return _mm512_fmadd_ps(scale16(b), t, acc);
}

static float dot_q8_0(const uint8_t *w, const float *x, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int i = 0;
    for (; i + 64 <= n; i += 64, w += 68) {
        a0 = q8_block(w, x + i, a0);
        a1 = q8_block(w + 34, x + i + 32, a1);
    }
    if (i < n) a0 = q8_block(w, x + i, a0);
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

/* Q4_0: each byte is zero-extended to a 32-bit lane; vpermps looks the low
 * nibble (and, after a shift, the high one) up in a table of the 16 values
 * n - 8 as floats, which replaces int->float conversions. */
static inline __m512 q4_block(const uint8_t *b, const float *x, __m512 acc, __m512 table) {
    __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)));
    __m512 lo = _mm512_permutexvar_ps(v, table), hi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table);
    __m512 t = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + 16), _mm512_mul_ps(lo, _mm512_loadu_ps(x)));
    return _mm512_fmadd_ps(scale16(b), t, acc);
}

static float dot_q4_0(const uint8_t *w, const float *x, int n) {
    const __m512 table = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int i = 0;
    for (; i + 64 <= n; i += 64, w += 36) {
        a0 = q4_block(w, x + i, a0, table);
        a1 = q4_block(w + 18, x + i + 32, a1, table);
    }
    if (i < n) a0 = q4_block(w, x + i, a0, table);
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

/* Q4_1 / Q5_0 / Q5_1 (rwkv.cpp's own files). The 4 low bits come from the
 * nibbles as for Q4_0; the 5th bit of lane j is bit j (low half) or j + 16
 * (high half) of qh, spread over the lanes with a variable shift. Codes are
 * converted as unsigned and the offset is applied per block: value = q d + m
 * (m = min for the _1 types, -16 d for Q5_0), so sum = d (q . x) + m (sum x),
 * with the block sums of x computed once per matvec. */
static inline void q5_codes(const uint8_t *qs, const uint8_t *qhp, int has_qh, __m512 *lo, __m512 *hi) {
    __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qs));
    __m512i l = _mm512_and_si512(v, _mm512_set1_epi32(15)), h = _mm512_srli_epi32(v, 4);
    if (has_qh) {
        uint32_t qh;
        memcpy(&qh, qhp, 4);
        const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const __m512i one = _mm512_set1_epi32(1);
        __m512i bl = _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32((int)qh), iota), one);
        __m512i bh = _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32((int)(qh >> 16)), iota), one);
        l = _mm512_or_si512(l, _mm512_slli_epi32(bl, 4));
        h = _mm512_or_si512(h, _mm512_slli_epi32(bh, 4));
    }
    *lo = _mm512_cvtepi32_ps(l);
    *hi = _mm512_cvtepi32_ps(h);
}

/* Q4_1 / Q5_0 / Q5_1 rows to floats (the panels of a prompt's products):
 * value = q d + m, or (q - 16) d for Q5_0, rounded as the scalar reference
 * rounds them (a product, then a sum: no fused multiply-add), so the panels
 * hold exactly the reference's weights. */
static void q5_row_to_f32(dtype t, const uint8_t *s, float *dst, int n) {
    const int has_m = t == DT_Q4_1 || t == DT_Q5_1, has_qh = t == DT_Q5_0 || t == DT_Q5_1;
    const size_t bb = dtype_block_bytes(t);
    const int qh_off = 2 + (has_m ? 2 : 0), qs_off = qh_off + (has_qh ? 4 : 0);
    for (int i = 0; i < n; i += 32, s += bb) {
        __m512 lo, hi;
        q5_codes(s + qs_off, s + qh_off, has_qh, &lo, &hi);
        const __m512 d = scale16(s);
        if (has_m) {
            const __m512 m = scale16(s + 2);
            lo = _mm512_add_ps(_mm512_mul_ps(lo, d), m), hi = _mm512_add_ps(_mm512_mul_ps(hi, d), m);
        } else {
            const __m512 sixteen = _mm512_set1_ps(16.0f);
            lo = _mm512_mul_ps(_mm512_sub_ps(lo, sixteen), d), hi = _mm512_mul_ps(_mm512_sub_ps(hi, sixteen), d);
        }
        _mm512_storeu_ps(dst + i, lo);
        _mm512_storeu_ps(dst + i + 16, hi);
    }
}

static float dot_qx(dtype t, const uint8_t *w, const float *x, const float *xs, int n) {
    const int has_m = t == DT_Q4_1 || t == DT_Q5_1, has_qh = t == DT_Q5_0 || t == DT_Q5_1;
    const size_t bb = dtype_block_bytes(t);
    const int qs_off = 2 + (has_m ? 2 : 0) + (has_qh ? 4 : 0), qh_off = 2 + (has_m ? 2 : 0);
    __m512 acc = _mm512_setzero_ps();
    float off = 0;
    for (int i = 0; i < n; i += 32, w += bb) {
        __m512 lo, hi;
        q5_codes(w + qs_off, w + qh_off, has_qh, &lo, &hi);
        __m512 tv = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + i + 16), _mm512_mul_ps(lo, _mm512_loadu_ps(x + i)));
        __m512 d = scale16(w);
        acc = _mm512_fmadd_ps(d, tv, acc);
        float m;
        if (has_m) {
            uint16_t hm;
            memcpy(&hm, w + 2, 2);
            m = _cvtsh_ss(hm);
        } else {
            m = -16.0f * _mm512_cvtss_f32(d);
        }
        off += m * xs[i / 32];
    }
    return _mm512_reduce_add_ps(acc) + off;
}

static void block_sums(const float *x, int n, float *xs) {
    for (int i = 0; i < n; i += 32)
        xs[i / 32] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(x + i + 16)));
}

/* ---- k-quants (core/kquants.h): 16 codes per vector, converted from
 * unsigned bytes; each sub-block's dot is scaled once by d·sc, and the
 * offsets come from the sums of x (kquant_rows). */
static inline __m512i u8x16_epi32(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }
static inline __m512i bits_at(__m512i v, int shift, int mask) {
    return _mm512_and_si512(_mm512_srl_epi32(v, _mm_cvtsi32_si128(shift)), _mm512_set1_epi32(mask));
}

/* Codes of lanes 16k.. of group g (64 weights) of a Q4_K / Q5_K super-block:
 * sub-block 2g from the low nibbles, 2g+1 from the high ones, Q5_K's fifth
 * bits from qh. */
static inline void q45k_codes(const uint8_t *w, int has_qh, int g, int k, __m512i *lo, __m512i *hi) {
    __m512i v = u8x16_epi32(w + (has_qh ? 48 : 16) + 32 * g + 16 * k);
    *lo = bits_at(v, 0, 15);
    *hi = bits_at(v, 4, 15);
    if (has_qh) {
        __m512i h = u8x16_epi32(w + 16 + 16 * k);
        *lo = _mm512_or_si512(*lo, _mm512_slli_epi32(bits_at(h, 2 * g, 1), 4));
        *hi = _mm512_or_si512(*hi, _mm512_slli_epi32(bits_at(h, 2 * g + 1, 1), 4));
    }
}

/* Codes (0..63) of lanes 16k.. of the four quarters of half h of a Q6_K super-block. */
static inline void q6k_codes(const uint8_t *w, int h, int k, __m512i q[4]) {
    const uint8_t *ql = w + 64 * h + 16 * k;
    __m512i a = u8x16_epi32(ql), b = u8x16_epi32(ql + 32), hb = u8x16_epi32(w + 128 + 32 * h + 16 * k);
    const __m512i low[4] = {bits_at(a, 0, 15), bits_at(b, 0, 15), bits_at(a, 4, 15), bits_at(b, 4, 15)};
    for (int s = 0; s < 4; s++) q[s] = _mm512_or_si512(low[s], _mm512_slli_epi32(bits_at(hb, 2 * s, 3), 4));
}

/* Q4_K / Q5_K: each sub-block's code . x scaled once by d·sc. */
static float dot_q45_k(dtype t, const uint8_t *w, const float *x, const float *xs16, int n) {
    const int has_qh = t == DT_Q5_K;
    const size_t bb = dtype_block_bytes(t);
    __m512 acc = _mm512_setzero_ps();
    float off = 0;
    for (int i = 0; i < n; i += QK_K, w += bb, x += QK_K, xs16 += QK_K / 16) {
        const float d = f16_at(w), dmin = f16_at(w + 2);
        for (int g = 0; g < 4; g++) {
            float f[4];
            kquant_group_factors(w + 4, g, d, dmin, f);
            __m512 dot0 = _mm512_setzero_ps(), dot1 = dot0;
            for (int k = 0; k < 2; k++) {
                __m512i lo, hi;
                q45k_codes(w, has_qh, g, k, &lo, &hi);
                dot0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), _mm512_loadu_ps(x + 64 * g + 16 * k), dot0);
                dot1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_loadu_ps(x + 64 * g + 32 + 16 * k), dot1);
            }
            acc = _mm512_fmadd_ps(_mm512_set1_ps(f[0]), dot0, acc);
            acc = _mm512_fmadd_ps(_mm512_set1_ps(f[2]), dot1, acc);
            off += f[1] * (xs16[4 * g] + xs16[4 * g + 1]) + f[3] * (xs16[4 * g + 2] + xs16[4 * g + 3]);
        }
    }
    return _mm512_reduce_add_ps(acc) - off;
}

/* Q6_K: each quarter's code . x scaled once by d·sc; the bias 32 through the sums of x. */
static float dot_q6_k(const uint8_t *w, const float *x, const float *xs16, int n) {
    __m512 acc = _mm512_setzero_ps();
    float off = 0;
    for (int i = 0; i < n; i += QK_K, w += 210, x += QK_K, xs16 += QK_K / 16) {
        const float d = f16_at(w + 208);
        const int8_t *sc = (const int8_t *)(w + 192);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 2; k++) {
                __m512i q[4];
                q6k_codes(w, h, k, q);
                for (int s = 0; s < 4; s++) {
                    const int pos = 128 * h + 32 * s + 16 * k;
                    const float ds = d * (float)sc[8 * h + (16 * k) / 16 + 2 * s];
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(ds), _mm512_mul_ps(_mm512_cvtepi32_ps(q[s]), _mm512_loadu_ps(x + pos)), acc);
                    if ((16 * k) % 16 == 0) off += 32.0f * ds * xs16[pos / 16];
                }
            }
    }
    return _mm512_reduce_add_ps(acc) - off;
}

static float dot_k(dtype t, const uint8_t *w, const float *x, const float *xs16, int n) {
    return t == DT_Q6_K ? dot_q6_k(w, x, xs16, n) : dot_q45_k(t, w, x, xs16, n);
}

/* k-quant rows to f32 (prefill's weight panels), the same products as the
 * reference (d·sc·q − dmin·m, or (d·sc)·(q − 32)), so the values are equal. */
static void kquant_row_to_f32(dtype t, const uint8_t *w, float *dst, int n) {
    const size_t bb = dtype_block_bytes(t);
    for (int i = 0; i < n; i += QK_K, w += bb, dst += QK_K) {
        if (t == DT_Q6_K) {
            const float d = f16_at(w + 208);
            const int8_t *sc = (const int8_t *)(w + 192);
            for (int h = 0; h < 2; h++)
                for (int k = 0; k < 2; k++) {
                    __m512i q[4];
                    q6k_codes(w, h, k, q);
                    for (int s = 0; s < 4; s++) {
                        const float ds = d * (float)sc[8 * h + (16 * k) / 16 + 2 * s];
                        __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(q[s], _mm512_set1_epi32(32)));
                        _mm512_storeu_ps(dst + 128 * h + 32 * s + 16 * k, _mm512_mul_ps(_mm512_set1_ps(ds), v));
                    }
                }
            continue;
        }
        const float d = f16_at(w), dmin = f16_at(w + 2);
        for (int g = 0; g < 4; g++) {
            float f[4];
            kquant_group_factors(w + 4, g, d, dmin, f);
            const __m512 d0 = _mm512_set1_ps(f[0]), mm0 = _mm512_set1_ps(f[1]), d1 = _mm512_set1_ps(f[2]), mm1 = _mm512_set1_ps(f[3]);
            for (int k = 0; k < 2; k++) {
                __m512i lo, hi;
                q45k_codes(w, t == DT_Q5_K, g, k, &lo, &hi);
                _mm512_storeu_ps(dst + 64 * g + 16 * k, _mm512_sub_ps(_mm512_mul_ps(d0, _mm512_cvtepi32_ps(lo)), mm0));
                _mm512_storeu_ps(dst + 64 * g + 32 + 16 * k, _mm512_sub_ps(_mm512_mul_ps(d1, _mm512_cvtepi32_ps(hi)), mm1));
            }
        }
    }
}

static void matvec_rows(const matrix *W, const float *x, float *y, int r0, int r1) {
    const int n = W->cols;
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)n);
    const uint8_t *row = (const uint8_t *)W->data + (size_t)r0 * rb;
    switch (W->type) {
    case DT_F32: {
        /* rows of a whole number of cache lines share one misalignment: give x
         * the same one (a shifted copy), so that both streams load whole lines */
        unsigned mis = (unsigned)((uintptr_t)row & 63);
        float xbuf[4096 + 16] __attribute__((aligned(64)));
        const float *xs = x;
        if (mis && (mis & 3) == 0 && rb % 64 == 0 && n <= 4096) {
            memcpy(xbuf + mis / 4, x, sizeof(float) * (size_t)n);
            xs = xbuf + mis / 4;
        }
        /* a small matrix (RWKV-7's LoRAs) is too short a stream for the
         * hardware prefetcher to get going (docs/gguf.md) */
        const int small = (size_t)W->rows * rb <= (1u << 20);
        if (small) prefetch_start(row, (size_t)(r1 - r0) * rb);
        const uint8_t *ahead = row;
        for (int r = r0; r < r1; r++, row += rb) {
            if (small) prefetch_row_ahead(row, rb);
            else ahead = prefetch_pages_ahead(ahead, row + rb);
            y[r - r0] = dot_f32((const float *)row, xs, n);
        }
        return;
    }
    case DT_F16:
    case DT_BF16: {
        const uint8_t *ahead = row;
        for (int r = r0; r < r1; r++, row += rb) {
            ahead = prefetch_pages_ahead(ahead, row + rb);
            y[r - r0] = W->type == DT_F16 ? dot_f16(row, x, n) : dot_bf16(row, x, n);
        }
        return;
    }
    case DT_Q8_0:
        for (int r = r0; r < r1; r++, row += rb) {
            prefetch_row_ahead(row, rb);
            y[r - r0] = dot_q8_0(row, x, n);
        }
        return;
    case DT_Q4_0:
        for (int r = r0; r < r1; r++, row += rb) {
            prefetch_row_ahead(row, rb);
            y[r - r0] = dot_q4_0(row, x, n);
        }
        return;
    case DT_Q4_1:
    case DT_Q5_0:
    case DT_Q5_1: {
        float xs_small[512], *xs = n / 32 <= 512 ? xs_small : malloc(sizeof(float) * (size_t)(n / 32));
        if (!xs) break;
        block_sums(x, n, xs);
        for (int r = r0; r < r1; r++, row += rb) {
            prefetch_row_ahead(row, rb);
            y[r - r0] = dot_qx(W->type, row, x, xs, n);
        }
        if (xs != xs_small) free(xs);
        return;
    }
    case DT_Q4_K:
    case DT_Q5_K:
    case DT_Q6_K:
        if (kernels_int8_activations() &&
            kquant_q8_rows(kquant_bytes_avx512, kquant_prepare_avx512, kquant_rows_avx512, W, x, y, r0, r1) == 0)
            return;
        kquant_rows(W, x, y, r0, r1, dot_k);
        return;
    default: break;
    }
    matvec_rows_scalar(W, x, y, r0, r1);
}

/* ---- matrix-matrix micro-kernel: 8 tokens x 32 rows --------------------- */

#define MR 8
#define NR 32

/* 16 bf16 values as floats, exactly: each one's bits above 16 zero bits. */
static inline __m512 bf16x16_to_ps(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

/* From an f32 panel (Wp) or a half-precision one (Wh, converted exactly as
 * loaded: bf16 where reads is UKERNEL_BF16_PANEL, else f16); X's rows, or X
 * stored transposed where reads is UKERNEL_X_TRANSPOSED. */
static inline __attribute__((always_inline)) void ukernel_fixed(int kc, const float *Wp, const uint16_t *Wh,
                                                                 const float *X, size_t ldx, int reads,
                                                                 float *Y, size_t ldy, const int mr, int nr,
                                                                 int accumulate) {
    __m512 acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    const float *xr[MR];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) xr[i] = X + (size_t)i * ldx;
    for (int c = 0; c < kc; c++) {
        __m512 w0, w1;
        /* a packed panel is one stream, but the hardware prefetcher alone kept a step of 1-16
         * rows from a server's f16 model well below decode's pace (docs/perf.md, change 41) */
        const void *here = Wh ? (const void *)(Wh + (size_t)c * NR) : (const void *)(Wp + (size_t)c * NR);
        __builtin_prefetch((const char *)here + PREFETCH_AHEAD, 0, 3);
        if (Wh && reads == UKERNEL_BF16_PANEL) {
            w0 = bf16x16_to_ps(Wh + (size_t)c * NR);
            w1 = bf16x16_to_ps(Wh + (size_t)c * NR + 16);
        } else if (Wh) {
            w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(Wh + (size_t)c * NR)));
            w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(Wh + (size_t)c * NR + 16)));
        } else {
            w0 = _mm512_load_ps(Wp + (size_t)c * NR);
            w1 = _mm512_load_ps(Wp + (size_t)c * NR + 16);
        }
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m512 xb = _mm512_set1_ps(reads == UKERNEL_X_TRANSPOSED ? X[(size_t)c * ldx + i] : xr[i][c]);
            acc[i][0] = _mm512_fmadd_ps(xb, w0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(xb, w1, acc[i][1]);
        }
    }
    store_tile_x32(acc, mr, nr, Y, ldy, accumulate);
}

static void pack(const matrix *W, int r0, int nr_valid, int c0, int kc, float *Wp, float *tmp) {
    pack_panel_avx(W, r0, nr_valid, c0, kc, Wp, tmp, NR, row_to_f32);
}

/* The fixed-mr kernels by mr; xt says what they read (UKERNEL_*). */
static inline __attribute__((always_inline)) void ukernel_mr(int kc, const float *Wp, const uint16_t *Wh, const float *X,
                                                              size_t ldx, int xt, float *Y, size_t ldy, int mr,
                                                              int nr, int accumulate) {
    switch (mr) {
    case 8: ukernel_fixed(kc, Wp, Wh, X, ldx, xt, Y, ldy, 8, nr, accumulate); break;
    case 7: ukernel_fixed(kc, Wp, Wh, X, ldx, xt, Y, ldy, 7, nr, accumulate); break;
    case 6: ukernel_fixed(kc, Wp, Wh, X, ldx, xt, Y, ldy, 6, nr, accumulate); break;
    case 5: ukernel_fixed(kc, Wp, Wh, X, ldx, xt, Y, ldy, 5, nr, accumulate); break;
    case 4: ukernel_fixed(kc, Wp, Wh, X, ldx, xt, Y, ldy, 4, nr, accumulate); break;
    case 3: ukernel_fixed(kc, Wp, Wh, X, ldx, xt, Y, ldy, 3, nr, accumulate); break;
    case 2: ukernel_fixed(kc, Wp, Wh, X, ldx, xt, Y, ldy, 2, nr, accumulate); break;
    default: ukernel_fixed(kc, Wp, Wh, X, ldx, xt, Y, ldy, 1, nr, accumulate); break;
    }
}

UKERNEL_ENTRY_POINTS

/* ---- exp, layer norm, WKV, token mix ------------------------------------ */

/* e^x to about 1 ulp: x = n ln2 + r, degree-6 minimax polynomial for e^r,
 * then scalef (p * 2^n, exact, with subnormal and overflow results). */
static inline __m512 exp16(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.7228394f), lo = _mm512_set1_ps(-104.0f);
    __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
    __m512 xc = _mm512_max_ps(_mm512_min_ps(x, hi), lo);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512 y = _mm512_scalef_ps(p, n);
    y = _mm512_mask_mov_ps(y, under, _mm512_setzero_ps());
    return _mm512_mask_mov_ps(y, over, _mm512_set1_ps(__builtin_inff()));
}

static void layernorm_v(const float *x, const float *w, const float *b, int n, float eps, float *y) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + i));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(x + i + 16));
    }
    for (; i < n; i += 16) s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(n - i >= 16 ? 0xffff : tail_mask(n - i), x + i));
    float mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / (float)n;
    __m512 m = _mm512_set1_ps(mean);
    s0 = s1 = _mm512_setzero_ps();
    for (i = 0; i + 32 <= n; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), m), d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), m);
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
    }
    for (; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? 0xffff : tail_mask(n - i);
        __m512 d0 = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i), m);
        s0 = _mm512_fmadd_ps(d0, d0, s0);
    }
    float var = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / (float)n;
    float inv = 1.0f / sqrtf(var + eps);
    __m512 iv = _mm512_set1_ps(inv);
    for (i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? 0xffff : tail_mask(n - i);
        __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m), iv);
        _mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(k, w + i), _mm512_maskz_loadu_ps(k, b + i)));
    }
}

static void token_mix_v(const float *cur, const float *prev, const float *mu, int n, float *out) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? 0xffff : tail_mask(n - i);
        __m512 m = _mm512_maskz_loadu_ps(k, mu + i);
        __m512 t = _mm512_mul_ps(_mm512_sub_ps(one, m), _mm512_maskz_loadu_ps(k, prev + i));
        _mm512_mask_storeu_ps(out + i, k, _mm512_fmadd_ps(m, _mm512_maskz_loadu_ps(k, cur + i), t));
    }
}

/* The stable RWKV-4 WKV recurrence on 16 channels at a time (masked at the end);
 * one exp per half-step, as in the AVX2 variant. */
static void wkv4_v(int T, int C, const float *d, const float *u, const float *k, const float *v, float *aa,
                   float *bb, float *pp, float *y) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int c = 0; c < C; c += 16) {
        const __mmask16 km = C - c >= 16 ? 0xffff : tail_mask(C - c);
        __m512 a = _mm512_maskz_loadu_ps(km, aa + c), b = _mm512_maskz_loadu_ps(km, bb + c);
        __m512 p = _mm512_maskz_loadu_ps(km, pp + c);
        const __m512 dc = _mm512_maskz_loadu_ps(km, d + c), uc = _mm512_maskz_loadu_ps(km, u + c);
        for (int t = 0; t < T; t++) {
            const size_t o = (size_t)t * C + c;
            const __m512 kt = _mm512_maskz_loadu_ps(km, k + o), vt = _mm512_maskz_loadu_ps(km, v + o);
            __m512 ww = _mm512_add_ps(uc, kt);
            __mmask16 pbig = _mm512_cmp_ps_mask(p, ww, _CMP_GT_OQ);
            __m512 q = _mm512_mask_blend_ps(pbig, ww, p), small = _mm512_mask_blend_ps(pbig, p, ww);
            __m512 e = exp16(_mm512_sub_ps(small, q));
            __m512 e1 = _mm512_mask_blend_ps(pbig, e, one), e2 = _mm512_mask_blend_ps(pbig, one, e);
            __m512 num = _mm512_fmadd_ps(e2, vt, _mm512_mul_ps(e1, a));
            __m512 den = _mm512_add_ps(_mm512_mul_ps(e1, b), e2);
            _mm512_mask_storeu_ps(y + o, km, _mm512_div_ps(num, den));
            ww = _mm512_add_ps(p, dc);
            __mmask16 wbig = _mm512_cmp_ps_mask(ww, kt, _CMP_GT_OQ);
            q = _mm512_mask_blend_ps(wbig, kt, ww);
            small = _mm512_mask_blend_ps(wbig, ww, kt);
            e = exp16(_mm512_sub_ps(small, q));
            e1 = _mm512_mask_blend_ps(wbig, e, one);
            e2 = _mm512_mask_blend_ps(wbig, one, e);
            a = _mm512_fmadd_ps(e2, vt, _mm512_mul_ps(e1, a));
            b = _mm512_add_ps(_mm512_mul_ps(e1, b), e2);
            p = q;
        }
        _mm512_mask_storeu_ps(aa + c, km, a);
        _mm512_mask_storeu_ps(bb + c, km, b);
        _mm512_mask_storeu_ps(pp + c, km, p);
    }
}

/* ---- RWKV-7 WKV, 16 state rows at a time (kernels/wkv.h, wkv7_block_fn) ----
 * Lane l is row i0 + l. Every row runs wkv7_row's arithmetic in its order:
 * the dot products keep 8 partial sums (p[q] over j = q mod 8) combined as
 * lanes_sum does (N is a multiple of 16: no tail); products and sums are separate
 * instructions (the row source is ISO C: no fused multiply-add), so the bits
 * are the reference's. The block's state is held transposed in st[j][lane]. */
static inline __m512 lanes_sum_v(const __m512 p[8]) {
    return _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(p[0], p[1]), _mm512_add_ps(p[2], p[3])),
                         _mm512_add_ps(_mm512_add_ps(p[4], p[5]), _mm512_add_ps(p[6], p[7])));
}

/* sum_j st[j] * x[j] per lane, as wkv7_row sums it (N a multiple of 16: no tail) */
static inline __m512 wkv7_block_dot(const float *st, const float *x, int N) {
    __m512 p[8];
#pragma GCC unroll 8
    for (int q = 0; q < 8; q++) p[q] = _mm512_setzero_ps();
    for (int j = 0; j < N; j += 8)
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++)
            p[q] = _mm512_add_ps(p[q], _mm512_mul_ps(_mm512_load_ps(st + 16 * (j + q)), _mm512_set1_ps(x[j + q])));
    return lanes_sum_v(p);
}

/* s_j = s_j w_j + sa b_j + v k_j for every j, and sum_j s_j r_j as wkv7_row sums it */
static inline __m512 wkv7_block_update(float *st, const float *w, const float *b, const float *k, const float *r,
                                       __m512 sa, __m512 vi, int N) {
    __m512 p[8];
#pragma GCC unroll 8
    for (int q = 0; q < 8; q++) p[q] = _mm512_setzero_ps();
    for (int j = 0; j < N; j += 8)
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) {
            float *sp = st + 16 * (j + q);
            const __m512 sj = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_load_ps(sp), _mm512_set1_ps(w[j + q])),
                                                          _mm512_mul_ps(sa, _mm512_set1_ps(b[j + q]))),
                                            _mm512_mul_ps(vi, _mm512_set1_ps(k[j + q])));
            _mm512_store_ps(sp, sj);
            p[q] = _mm512_add_ps(p[q], _mm512_mul_ps(sj, _mm512_set1_ps(r[j + q])));
        }
    return lanes_sum_v(p);
}

static void wkv7_block_v(int T, int A, int N, int h, int i0, const float *r, const float *w, const float *k,
                         const float *v, const float *a, const float *b, float *S, float *y) {
    float st[WKV7_BLOCK_MAX_N * 16] __attribute__((aligned(64)));
    const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(N));
    for (int j = 0; j < N; j++) _mm512_store_ps(st + 16 * j, _mm512_i32gather_ps(rows, S + j, 4));
    const size_t base = (size_t)h * (size_t)N;
    for (int t = 0; t < T; t++) {
        const size_t o = (size_t)t * (size_t)A + base;
        const __m512 sa = wkv7_block_dot(st, a + o, N);
        const __m512 acc = wkv7_block_update(st, w + o, b + o, k + o, r + o, sa, _mm512_loadu_ps(v + o + i0), N);
        _mm512_storeu_ps(y + o + i0, acc);
    }
    for (int j = 0; j < N; j++) _mm512_i32scatter_ps(S + j, rows, _mm512_load_ps(st + 16 * j), 4);
}

/* ---- RWKV-7 WKV of one token, two state rows at a time (wkv7_pair_fn) ----
 * Lanes 0-7 hold row i's eight partial sums (p[q] over j = q mod 8, as
 * wkv7_row keeps them), lanes 8-15 row i + 1's; the vectors of the head
 * (a, w, b, k, r) are read once for both. The horizontal sums pair the
 * lanes as lanes_sum does, within each half. */
static inline __m512 pair_load(const float *s, int N) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(s)), _mm256_loadu_ps(s + N), 1);
}

static inline __m512 head_load(const float *x) { return _mm512_broadcast_f32x8(_mm256_loadu_ps(x)); }

/* lanes_sum of each half, in every lane of that half */
static inline __m512 pair_sums(__m512 p) {
    const __m512 t = _mm512_add_ps(p, _mm512_permute_ps(p, 0xB1)); /* (0+1), (2+3), ... */
    const __m512 u = _mm512_add_ps(t, _mm512_permute_ps(t, 0x4E)); /* (0+1)+(2+3), ... */
    const __m512 v = _mm512_add_ps(u, _mm512_shuffle_f32x4(u, u, 0xB1)); /* + the other 128 bits of the half */
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8), v);
}

/* with_y 0: the state alone (y NULL), the r dot products skipped */
static inline __attribute__((always_inline)) void pair_body(int N, int h, int i, const float *r, const float *w,
                                                            const float *k, const float *v, const float *a,
                                                            const float *b, const float *s, float *s_out, float *y,
                                                            const int with_y) {
    const size_t o = (size_t)h * (size_t)N;
    r += o, w += o, k += o, a += o, b += o;
    __m512 p = _mm512_setzero_ps();
    for (int j = 0; j < N; j += WKV7_PAIR_STEP) p = _mm512_add_ps(p, _mm512_mul_ps(pair_load(s + j, N), head_load(a + j)));
    const __m512 sa = pair_sums(p);
    const __m512 vi = _mm512_insertf32x8(_mm512_set1_ps(v[o + i]), _mm256_set1_ps(v[o + i + 1]), 1);
    p = _mm512_setzero_ps();
    for (int j = 0; j < N; j += WKV7_PAIR_STEP) {
        const __m512 sj = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(pair_load(s + j, N), head_load(w + j)),
                                                      _mm512_mul_ps(sa, head_load(b + j))),
                                        _mm512_mul_ps(vi, head_load(k + j)));
        _mm256_storeu_ps(s_out + j, _mm512_castps512_ps256(sj));
        _mm256_storeu_ps(s_out + N + j, _mm512_extractf32x8_ps(sj, 1));
        if (with_y) p = _mm512_add_ps(p, _mm512_mul_ps(sj, head_load(r + j)));
    }
    if (!with_y) return;
    const __m512 acc = pair_sums(p);
    y[o + i] = _mm512_cvtss_f32(acc);
    y[o + i + 1] = _mm512_cvtss_f32(_mm512_castps256_ps512(_mm512_extractf32x8_ps(acc, 1)));
}

static void wkv7_pair_v(int A, int N, int h, int i, const float *r, const float *w, const float *k, const float *v,
                        const float *a, const float *b, const float *s, float *s_out, float *y) {
    (void)A;
    if (y) pair_body(N, h, i, r, w, k, v, a, b, s, s_out, y, 1);
    else pair_body(N, h, i, r, w, k, v, a, b, s, s_out, NULL, 0);
}

/* ---- element-wise ------------------------------------------------------- */

/* sigmoid(r) = 1 / (1 + e^-r), with the vector exp (division exact). */
static inline __m512 sigmoid_v(__m512 r) {
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), r))));
}

static void relu_square_v(float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 h = _mm512_max_ps(_mm512_loadu_ps(x + i), _mm512_setzero_ps());
        _mm512_storeu_ps(x + i, _mm512_mul_ps(h, h));
    }
    relu_square_scalar(x + i, n - i);
}

static void sigmoid_mul_v(float *y, const float *r, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), sigmoid_v(_mm512_loadu_ps(r + i))));
    sigmoid_mul_scalar(y + i, r + i, n - i);
}

static void sigmoid_in_place_v(float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, sigmoid_v(_mm512_loadu_ps(x + i)));
    sigmoid_scalar(x + i, n - i);
}

static void exp_in_place_v(float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, exp16(_mm512_loadu_ps(x + i)));
    exp_scalar(x + i, n - i);
}

static void add_sigmoid_mul_v(float *x, const float *r, const float *v, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_mul_ps(sigmoid_v(_mm512_loadu_ps(r + i)), _mm512_loadu_ps(v + i));
        _mm512_storeu_ps(x + i, _mm512_add_ps(_mm512_loadu_ps(x + i), g));
    }
    add_sigmoid_mul_scalar(x + i, r + i, v + i, n - i);
}

/* ---- the RWKV-4 training backward (kernels/wkv4.c's two sweeps) ----------
 * The block's 16 channels are the lanes of one vector; a channel past C is
 * a lane of zeros, whose sums stay finite and are not stored. Of each pair
 * of exponentials against their maximum one is e^0 = 1 exactly, so, as the
 * reference does, only the other is computed (exp_pair). Sums over time
 * into dθ and du in double, as the reference does, eight lanes per vector. */
typedef struct wkv4_lanes {
    __mmask16 m;
    __m512 d, u;
} wkv4_lanes;

/* e^{a - m} and e^{b - m} with m = max(a, b) (returned): one of the two is
 * e^0 = 1 exactly, so one exponential serves both. */
static inline __m512 exp_pair(__m512 a, __m512 b, __m512 *ea, __m512 *eb) {
    const __m512 m = _mm512_max_ps(a, b), e = exp16(_mm512_sub_ps(_mm512_min_ps(a, b), m));
    const __mmask16 a_larger = _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ);
    const __m512 one = _mm512_set1_ps(1.0f);
    *ea = _mm512_mask_mov_ps(e, a_larger, one);
    *eb = _mm512_mask_mov_ps(one, a_larger, e);
    return m;
}

static inline void add_pd16(__m512d acc[2], __m512 x) {
    acc[0] = _mm512_add_pd(acc[0], _mm512_cvtps_pd(_mm512_castps512_ps256(x)));
    acc[1] = _mm512_add_pd(acc[1], _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))));
}

/* Sweep 1 over one row (t = 0..T-1): the forward again with the derivative
 * sums; stores s_t in gk and q_t in gv, adds Gd and Gu into gd, gu. */
static void wkv4_grad_sweep1(const wkv4_grad *g, const wkv4_lanes *l, size_t o, __m512d gd[2], __m512d gu[2]) {
    __m512 a = _mm512_setzero_ps(), bs = a, ad = a, bd = a, p = _mm512_set1_ps(WKV4_EMPTY_P);
    for (int t = 0; t < g->T; t++) {
        const size_t r = o + (size_t)t * g->C;
        const __m512 kt = _mm512_maskz_loadu_ps(l->m, g->k + r), vt = _mm512_maskz_loadu_ps(l->m, g->v + r);
        const __m512 yt = _mm512_maskz_loadu_ps(l->m, g->y + r), gyt = _mm512_maskz_loadu_ps(l->m, g->gy + r);
        __m512 e1, e2, f1, f2;
        const __m512 q = exp_pair(p, _mm512_add_ps(l->u, kt), &e1, &e2);
        const __m512 s = _mm512_div_ps(gyt, _mm512_add_ps(_mm512_mul_ps(e1, bs), e2));
        add_pd16(gd, _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(ad, _mm512_mul_ps(yt, bd)), e1), s));
        add_pd16(gu, _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(vt, yt), e2), s));
        _mm512_mask_storeu_ps(g->gk + r, l->m, s);
        _mm512_mask_storeu_ps(g->gv + r, l->m, q);
        const __m512 q2 = exp_pair(_mm512_add_ps(p, l->d), kt, &f1, &f2);
        ad = _mm512_mul_ps(f1, _mm512_add_ps(a, ad));
        bd = _mm512_mul_ps(f1, _mm512_add_ps(bs, bd));
        a = _mm512_add_ps(_mm512_mul_ps(f1, a), _mm512_mul_ps(f2, vt));
        bs = _mm512_add_ps(_mm512_mul_ps(f1, bs), f2);
        p = q2;
    }
}

/* Sweep 2 over one row (j = T-1..0): P, Q as (P~, Q~) sharing the exponent p. */
static void wkv4_grad_sweep2(const wkv4_grad *g, const wkv4_lanes *l, size_t o) {
    __m512 Pt = _mm512_setzero_ps(), Qt = Pt, p = _mm512_set1_ps(WKV4_EMPTY_P);
    for (int j = g->T - 1; j >= 0; j--) {
        const size_t r = o + (size_t)j * g->C;
        const __m512 kj = _mm512_maskz_loadu_ps(l->m, g->k + r), vj = _mm512_maskz_loadu_ps(l->m, g->v + r);
        const __m512 yj = _mm512_maskz_loadu_ps(l->m, g->y + r);
        const __m512 s = _mm512_maskz_loadu_ps(l->m, g->gk + r), q = _mm512_maskz_loadu_ps(l->m, g->gv + r);
        const __m512 c1 = _mm512_mul_ps(s, exp16(_mm512_sub_ps(_mm512_add_ps(l->u, kj), q)));
        const __m512 c2 = exp16(_mm512_add_ps(kj, p));
        const __m512 gkj = _mm512_add_ps(_mm512_mul_ps(c1, _mm512_sub_ps(vj, yj)),
                                         _mm512_mul_ps(c2, _mm512_sub_ps(_mm512_mul_ps(Pt, vj), Qt)));
        _mm512_mask_storeu_ps(g->gk + r, l->m, gkj);
        _mm512_mask_storeu_ps(g->gv + r, l->m, _mm512_add_ps(c1, _mm512_mul_ps(c2, Pt)));
        __m512 f1, eE;
        const __m512 M = exp_pair(_mm512_add_ps(p, l->d), _mm512_sub_ps(_mm512_setzero_ps(), q), &f1, &eE); /* E = -q */
        const __m512 f2 = _mm512_mul_ps(s, eE);
        Pt = _mm512_add_ps(_mm512_mul_ps(f1, Pt), f2);
        Qt = _mm512_add_ps(_mm512_mul_ps(f1, Qt), _mm512_mul_ps(f2, yj));
        p = M;
    }
}

void wkv4_backward_block_avx512(const wkv4_grad *g, int c0) {
    const int nc = g->C - c0 < WKV4_GRAD_CHANNELS ? g->C - c0 : WKV4_GRAD_CHANNELS;
    wkv4_lanes l;
    l.m = nc == 16 ? (__mmask16)0xffff : tail_mask(nc);
    l.d = _mm512_maskz_loadu_ps(l.m, g->d + c0), l.u = _mm512_maskz_loadu_ps(l.m, g->u + c0);
    __m512d sum_gd[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()}, sum_gu[2] = {sum_gd[0], sum_gd[0]};
    for (int b = 0; b < g->B; b++) {
        const size_t o = (size_t)b * g->T * g->C + (size_t)c0;
        __m512d gd[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()}, gu[2] = {gd[0], gd[0]};
        wkv4_grad_sweep1(g, &l, o, gd, gu);
        for (int h = 0; h < 2; h++) sum_gd[h] = _mm512_add_pd(sum_gd[h], gd[h]), sum_gu[h] = _mm512_add_pd(sum_gu[h], gu[h]);
        wkv4_grad_sweep2(g, &l, o);
    }
    double gd_all[16], gu_all[16];
    for (int h = 0; h < 2; h++) _mm512_storeu_pd(gd_all + 8 * h, sum_gd[h]), _mm512_storeu_pd(gu_all + 8 * h, sum_gu[h]);
    for (int i = 0; i < nc; i++) {
        g->gtheta[c0 + i] += (float)((double)g->d[c0 + i] * gd_all[i]); /* ∂θ = d·∂d */
        g->gu[c0 + i] += (float)gu_all[i];
    }
}

const kernel_ops kernels_avx512 = {
    .name = "avx512",
    .matvec_rows = matvec_rows,
    .kquant_groups = "avx512vnni",
    .kquant_bytes = kquant_bytes_avx512,
    .kquant_prepare = kquant_prepare_avx512,
    .kquant_rows = kquant_rows_avx512,
    .kquant_tokens = kquant_tokens_avx512,
    .row_to_f32 = row_to_f32,
    .mm = {MR, NR, ukernel, ukernel_f16, ukernel_xt, matmul_bf16_ukernel, matmul_bf16_pack, matmul_bf16_convert,
           ukernel_bf16_panel},
    .pack = pack,
    .layernorm = layernorm_v,
    .token_mix = token_mix_v,
    .relu_square = relu_square_v,
    .sigmoid_mul = sigmoid_mul_v,
    .sigmoid = sigmoid_in_place_v,
    .exp = exp_in_place_v,
    .add_sigmoid_mul = add_sigmoid_mul_v,
    .wkv4_forward = wkv4_v,
    /* the AVX2 builds of the RWKV-5/6/7 rows (kernels/wkv5.c, wkv7.c) */
    .wkv5_row = wkv5_row_avx2,
    .wkv7_row = wkv7_row_avx2,
    .wkv7_block = wkv7_block_v,
    .wkv7_pair = wkv7_pair_v,
    .wkv7_backward_chunk = wkv7_backward_chunk_avx512,
    .wkv4_backward_block = wkv4_backward_block_avx512,
};

#ifdef __clang__
#pragma clang attribute pop
#endif

#endif
