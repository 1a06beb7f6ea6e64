/* The AVX2 + FMA + F16C kernel variant (8 float lanes). The whole file is
 * compiled for that instruction set through a target pragma (the same as a
 * target attribute on each function), so the default build stays portable:
 * kernels/dispatch.c calls into this file only when CPUID/XGETBV allow it.
 * Every function here is tested against the scalar reference in
 * tests/test_kernels.c (the WKV in tests/test_wkv.c). */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))

#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/avx_common.h"
#include "kernels/kquant_q8.h"
#include "kernels/wkv.h"

/* Mask of the first n (0..8) lanes, for masked loads. */
static inline __m256i lane_mask(int n) {
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(m + 8 - n));
}

/* ---- element conversions ------------------------------------------------ */

static inline __m256 load_f16x8(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline __m256 load_bf16x8(const uint8_t *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
static inline __m256 i8x8_to_f32(__m128i q) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)); }

static void kquant_row_to_f32(dtype t, const uint8_t *s, float *dst, int n);
static void q5_row_to_f32(dtype t, const uint8_t *s, float *dst, int n);

static void row_to_f32(dtype t, const void *src, float *dst, int n) {
    const uint8_t *s = src;
    int i = 0;
    switch (t) {
    case DT_F32: memcpy(dst, src, sizeof(float) * (size_t)n); return;
    case DT_F16:
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16x8(s + 2 * i));
        for (; i < n; i++) dst[i] = f16_at(s + 2 * i);
        return;
    case DT_BF16:
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16x8(s + 2 * i));
        for (; i < n; i++) dst[i] = bf16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
        return;
    case DT_Q8_0:
        for (; i < n; i += 32, s += 34) {
            __m256 d = _mm256_set1_ps(f16_at(s));
            for (int j = 0; j < 4; j++)
                _mm256_storeu_ps(dst + i + 8 * j,
                                 _mm256_mul_ps(d, i8x8_to_f32(_mm_loadl_epi64((const __m128i *)(s + 2 + 8 * j)))));
        }
        return;
    case DT_Q4_0:
        for (; i < n; i += 32, s += 18) {
            __m256 d = _mm256_set1_ps(f16_at(s));
            __m128i lo, hi;
            q4_0_unpack(s + 2, &lo, &hi);
            _mm256_storeu_ps(dst + i, _mm256_mul_ps(d, i8x8_to_f32(lo)));
            _mm256_storeu_ps(dst + i + 8, _mm256_mul_ps(d, i8x8_to_f32(_mm_unpackhi_epi64(lo, lo))));
            _mm256_storeu_ps(dst + i + 16, _mm256_mul_ps(d, i8x8_to_f32(hi)));
            _mm256_storeu_ps(dst + i + 24, _mm256_mul_ps(d, i8x8_to_f32(_mm_unpackhi_epi64(hi, hi))));
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

/* Element i always meets lane i mod 8 of accumulator (i / 8) mod 4, wherever
 * w lies, so the sums never depend on the address (a head peeled up to the
 * next 32-byte boundary made them depend on it, and a model's results on the
 * heap's layout). Rows mapped from a file at an unaligned offset then pay
 * loads that straddle cache lines; the AVX-512 variant avoids that with a
 * permute of aligned lines. */
static float dot_f32(const float *w, const float *x, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    if (i < n) {
        __m256i m = lane_mask(n - i);
        a1 = _mm256_fmadd_ps(_mm256_maskload_ps(w + i, m), _mm256_maskload_ps(x + i, m), a1);
    }
    return hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static float dot_f16(const uint8_t *w, const float *x, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_f16x8(w + 2 * i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(load_f16x8(w + 2 * i + 16), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_f16x8(w + 2 * i + 32), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_f16x8(w + 2 * i + 48), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load_f16x8(w + 2 * i), _mm256_loadu_ps(x + i), a0);
    float acc = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) acc += f16_at(w + 2 * i) * x[i];
    return acc;
}

static float dot_bf16(const uint8_t *w, const float *x, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_bf16x8(w + 2 * i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(load_bf16x8(w + 2 * i + 16), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_bf16x8(w + 2 * i + 32), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_bf16x8(w + 2 * i + 48), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load_bf16x8(w + 2 * i), _mm256_loadu_ps(x + i), a0);
    float acc = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) acc += bf16_to_f32((uint16_t)(w[2 * i] | w[2 * i + 1] << 8)) * x[i];
    return acc;
}

/* One block's 32 products summed into 8 lanes, then scaled by the block's d. */
static inline __m256 q8_block(const uint8_t *b, const float *x, __m256 acc) {
    const uint8_t *q = b + 2;
    __m256 t = _mm256_mul_ps(i8x8_to_f32(_mm_loadl_epi64((const __m128i *)q)), _mm256_loadu_ps(x));
    t = _mm256_fmadd_ps(i8x8_to_f32(_mm_loadl_epi64((const __m128i *)(q + 8))), _mm256_loadu_ps(x + 8), t);
    t = _mm256_fmadd_ps(i8x8_to_f32(_mm_loadl_epi64((const __m128i *)(q + 16))), _mm256_loadu_ps(x + 16), t);
    t = _mm256_fmadd_ps(i8x8_to_f32(_mm_loadl_epi64((const __m128i *)(q + 24))), _mm256_loadu_ps(x + 24), t);
    return _mm256_fmadd_ps(_mm256_set1_ps(f16_at(b)), t, acc);
}

static float dot_q8_0(const uint8_t *w, const float *x, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int i = 0;
    for (; i + 64 <= n; i += 64, w += 68) {
        a0 = q8_block(w, x + i, a0);
        a1 = q8_block(w + 34, x + i + 32, a1);
    }
    if (i < n) a0 = q8_block(w, x + i, a0);
    return hsum8(_mm256_add_ps(a0, a1));
}

static inline __m256 q4_block(const uint8_t *b, const float *x, __m256 acc) {
    __m128i lo, hi;
    q4_0_unpack(b + 2, &lo, &hi);
    __m256 t = _mm256_mul_ps(i8x8_to_f32(lo), _mm256_loadu_ps(x));
    t = _mm256_fmadd_ps(i8x8_to_f32(_mm_unpackhi_epi64(lo, lo)), _mm256_loadu_ps(x + 8), t);
    t = _mm256_fmadd_ps(i8x8_to_f32(hi), _mm256_loadu_ps(x + 16), t);
    t = _mm256_fmadd_ps(i8x8_to_f32(_mm_unpackhi_epi64(hi, hi)), _mm256_loadu_ps(x + 24), t);
    return _mm256_fmadd_ps(_mm256_set1_ps(f16_at(b)), t, acc);
}

static float dot_q4_0(const uint8_t *w, const float *x, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int i = 0;
    for (; i + 64 <= n; i += 64, w += 36) {
        a0 = q4_block(w, x + i, a0);
        a1 = q4_block(w + 18, x + i + 32, a1);
    }
    if (i < n) a0 = q4_block(w, x + i, a0);
    return hsum8(_mm256_add_ps(a0, a1));
}

/* ---- k-quants (core/kquants.h): 8 codes per vector, converted from
 * unsigned bytes; each sub-block's dot is scaled once by d·sc, and the
 * offsets come from the sums of x (kquant_rows). */
static inline __m256i u8x8_epi32(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
static inline __m256i bits_at(__m256i v, int shift, int mask) {
    return _mm256_and_si256(_mm256_srl_epi32(v, _mm_cvtsi32_si128(shift)), _mm256_set1_epi32(mask));
}

/* Q4_1 / Q5_0 / Q5_1 (rwkv.cpp's own files), as the AVX-512 variant: codes
 * converted as unsigned, value = q d + m (m = min for the _1 types, -16 d for
 * Q5_0), so a block's sum is d (q . x) + m (sum x), the sums of x taken once
 * per product (kquant_rows' xs16, two per block). Eight lanes a vector: the
 * low nibbles of bytes 0..7 and 8..15 are weights 0..15, their high nibbles
 * 16..31; the fifth bit of weight j is bit j of qh. */
static inline __m256 q5_codes8(const uint8_t *qs, uint32_t qh, int high, int has_qh) {
    const __m256i v = u8x8_epi32(qs);
    __m256i c = high ? _mm256_srli_epi32(v, 4) : _mm256_and_si256(v, _mm256_set1_epi32(15));
    if (has_qh) {
        const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i bit = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)qh), iota), _mm256_set1_epi32(1));
        c = _mm256_or_si256(c, _mm256_slli_epi32(bit, 4));
    }
    return _mm256_cvtepi32_ps(c);
}

/* Q4_1 / Q5_0 / Q5_1 rows to floats (the panels of a prompt's products):
 * value = q d + m, or (q - 16) d for Q5_0, rounded as the scalar reference
 * rounds them (a product, then a sum: no fused multiply-add). */
static void q5_row_to_f32(dtype t, const uint8_t *s, float *dst, int n) {
    const int has_m = t == DT_Q4_1 || t == DT_Q5_1, has_qh = t == DT_Q5_0 || t == DT_Q5_1;
    const size_t bb = dtype_block_bytes(t);
    const int qh_off = 2 + (has_m ? 2 : 0), qs_off = qh_off + (has_qh ? 4 : 0);
    for (int i = 0; i < n; i += 32, s += bb) {
        const uint8_t *qs = s + qs_off;
        uint32_t qh = 0;
        if (has_qh) memcpy(&qh, s + qh_off, 4);
        const __m256 codes[4] = {q5_codes8(qs, qh, 0, has_qh), q5_codes8(qs + 8, qh >> 8, 0, has_qh),
                                 q5_codes8(qs, qh >> 16, 1, has_qh), q5_codes8(qs + 8, qh >> 24, 1, has_qh)};
        const __m256 d = _mm256_set1_ps(f16_at(s)), m = _mm256_set1_ps(has_m ? f16_at(s + 2) : 0.0f);
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(dst + i + 8 * j, has_m ? _mm256_add_ps(_mm256_mul_ps(codes[j], d), m)
                                                    : _mm256_mul_ps(_mm256_sub_ps(codes[j], _mm256_set1_ps(16.0f)), d));
    }
}

static inline __attribute__((always_inline)) float dot_qx_with(const uint8_t *w, const float *x, const float *xs16,
                                                                int n, const int has_m, const int has_qh) {
    const size_t bb = 18 + (has_m ? 2 : 0) + (has_qh ? 4 : 0);
    const int qh_off = 2 + (has_m ? 2 : 0), qs_off = qh_off + (has_qh ? 4 : 0);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int i = 0; i < n; i += 32, w += bb) {
        const uint8_t *qs = w + qs_off;
        uint32_t qh = 0;
        if (has_qh) memcpy(&qh, w + qh_off, 4);
        __m256 tv = _mm256_mul_ps(q5_codes8(qs, qh, 0, has_qh), _mm256_loadu_ps(x + i));
        tv = _mm256_fmadd_ps(q5_codes8(qs + 8, qh >> 8, 0, has_qh), _mm256_loadu_ps(x + i + 8), tv);
        tv = _mm256_fmadd_ps(q5_codes8(qs, qh >> 16, 1, has_qh), _mm256_loadu_ps(x + i + 16), tv);
        tv = _mm256_fmadd_ps(q5_codes8(qs + 8, qh >> 24, 1, has_qh), _mm256_loadu_ps(x + i + 24), tv);
        const float d = f16_at(w), m = has_m ? f16_at(w + 2) : -16.0f * d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), tv, acc);
        off += m * (xs16[i / 16] + xs16[i / 16 + 1]);
    }
    return hsum8(acc) + off;
}

static float dot_qx(dtype t, const uint8_t *w, const float *x, const float *xs16, int n) {
    switch (t) { /* the flags as constants: each type's loop compiled on its own */
    case DT_Q4_1: return dot_qx_with(w, x, xs16, n, 1, 0);
    case DT_Q5_0: return dot_qx_with(w, x, xs16, n, 0, 1);
    default: return dot_qx_with(w, x, xs16, n, 1, 1);
    }
}

/* Codes of lanes 8k.. of group g (64 weights) of a Q4_K / Q5_K super-block:
 * sub-block 2g from the low nibbles, 2g+1 from the high ones, Q5_K's fifth
 * bits from qh. */
static inline void q45k_codes(const uint8_t *w, int has_qh, int g, int k, __m256i *lo, __m256i *hi) {
    __m256i v = u8x8_epi32(w + (has_qh ? 48 : 16) + 32 * g + 8 * k);
    *lo = bits_at(v, 0, 15);
    *hi = bits_at(v, 4, 15);
    if (has_qh) {
        __m256i h = u8x8_epi32(w + 16 + 8 * k);
        *lo = _mm256_or_si256(*lo, _mm256_slli_epi32(bits_at(h, 2 * g, 1), 4));
        *hi = _mm256_or_si256(*hi, _mm256_slli_epi32(bits_at(h, 2 * g + 1, 1), 4));
    }
}

/* Codes (0..63) of lanes 8k.. of the four quarters of half h of a Q6_K super-block. */
static inline void q6k_codes(const uint8_t *w, int h, int k, __m256i q[4]) {
    const uint8_t *ql = w + 64 * h + 8 * k;
    __m256i a = u8x8_epi32(ql), b = u8x8_epi32(ql + 32), hb = u8x8_epi32(w + 128 + 32 * h + 8 * k);
    const __m256i low[4] = {bits_at(a, 0, 15), bits_at(b, 0, 15), bits_at(a, 4, 15), bits_at(b, 4, 15)};
    for (int s = 0; s < 4; s++) q[s] = _mm256_or_si256(low[s], _mm256_slli_epi32(bits_at(hb, 2 * s, 3), 4));
}

/* Q4_K / Q5_K: each sub-block's code . x scaled once by d·sc. */
static float dot_q45_k(dtype t, const uint8_t *w, const float *x, const float *xs16, int n) {
    const int has_qh = t == DT_Q5_K;
    const size_t bb = dtype_block_bytes(t);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int i = 0; i < n; i += QK_K, w += bb, x += QK_K, xs16 += QK_K / 16) {
        const float d = f16_at(w), dmin = f16_at(w + 2);
        for (int g = 0; g < 4; g++) {
            float f[4];
            kquant_group_factors(w + 4, g, d, dmin, f);
            __m256 dot0 = _mm256_setzero_ps(), dot1 = dot0;
            for (int k = 0; k < 4; k++) {
                __m256i lo, hi;
                q45k_codes(w, has_qh, g, k, &lo, &hi);
                dot0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo), _mm256_loadu_ps(x + 64 * g + 8 * k), dot0);
                dot1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi), _mm256_loadu_ps(x + 64 * g + 32 + 8 * k), dot1);
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f[0]), dot0, acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f[2]), dot1, acc);
            off += f[1] * (xs16[4 * g] + xs16[4 * g + 1]) + f[3] * (xs16[4 * g + 2] + xs16[4 * g + 3]);
        }
    }
    return hsum8(acc) - off;
}

/* Q6_K: each quarter's code . x scaled once by d·sc; the bias 32 through the sums of x. */
static float dot_q6_k(const uint8_t *w, const float *x, const float *xs16, int n) {
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int i = 0; i < n; i += QK_K, w += 210, x += QK_K, xs16 += QK_K / 16) {
        const float d = f16_at(w + 208);
        const int8_t *sc = (const int8_t *)(w + 192);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++) {
                __m256i q[4];
                q6k_codes(w, h, k, q);
                for (int s = 0; s < 4; s++) {
                    const int pos = 128 * h + 32 * s + 8 * k;
                    const float ds = d * (float)sc[8 * h + (8 * k) / 16 + 2 * s];
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(ds), _mm256_mul_ps(_mm256_cvtepi32_ps(q[s]), _mm256_loadu_ps(x + pos)), acc);
                    if ((8 * k) % 16 == 0) off += 32.0f * ds * xs16[pos / 16];
                }
            }
    }
    return hsum8(acc) - off;
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
                for (int k = 0; k < 4; k++) {
                    __m256i q[4];
                    q6k_codes(w, h, k, q);
                    for (int s = 0; s < 4; s++) {
                        const float ds = d * (float)sc[8 * h + (8 * k) / 16 + 2 * s];
                        __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(q[s], _mm256_set1_epi32(32)));
                        _mm256_storeu_ps(dst + 128 * h + 32 * s + 8 * k, _mm256_mul_ps(_mm256_set1_ps(ds), v));
                    }
                }
            continue;
        }
        const float d = f16_at(w), dmin = f16_at(w + 2);
        for (int g = 0; g < 4; g++) {
            float f[4];
            kquant_group_factors(w + 4, g, d, dmin, f);
            const __m256 d0 = _mm256_set1_ps(f[0]), mm0 = _mm256_set1_ps(f[1]), d1 = _mm256_set1_ps(f[2]), mm1 = _mm256_set1_ps(f[3]);
            for (int k = 0; k < 4; k++) {
                __m256i lo, hi;
                q45k_codes(w, t == DT_Q5_K, g, k, &lo, &hi);
                _mm256_storeu_ps(dst + 64 * g + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d0, _mm256_cvtepi32_ps(lo)), mm0));
                _mm256_storeu_ps(dst + 64 * g + 32 + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d1, _mm256_cvtepi32_ps(hi)), mm1));
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
        const uint8_t *ahead = row;
        for (int r = r0; r < r1; r++, row += rb) {
            ahead = prefetch_pages_ahead(ahead, row + rb);
            y[r - r0] = dot_f32((const float *)row, x, n);
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
    case DT_Q5_1: kquant_rows(W, x, y, r0, r1, dot_qx); return;
    case DT_Q4_K:
    case DT_Q5_K:
    case DT_Q6_K:
        if (kernels_int8_activations() &&
            kquant_q8_rows(kquant_bytes_avx2, kquant_prepare_avx2, kquant_rows_avx2, W, x, y, r0, r1) == 0)
            return;
        kquant_rows(W, x, y, r0, r1, dot_k);
        return;
    default: matvec_rows_scalar(W, x, y, r0, r1); return;
    }
}

/* ---- matrix-matrix micro-kernel: 6 tokens x 16 rows --------------------- */

#define MR 6
#define NR 16

/* 8 bf16 values as floats, exactly: each one's bits above 16 zero bits. */
static inline __m256 bf16x8_to_ps(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* From an f32 panel (Wp) or a half-precision one (Wh, converted exactly as
 * loaded: bf16 where reads is UKERNEL_BF16_PANEL, else f16); X's rows, or X
 * stored transposed where reads is UKERNEL_X_TRANSPOSED. */
static inline __attribute__((always_inline)) void ukernel_fixed(int kc, const float *Wp, const uint16_t *Wh,
                                                                 const float *X, size_t ldx, int reads,
                                                                 float *Y, size_t ldy, const int mr, int nr,
                                                                 int accumulate) {
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    const float *xr[MR];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) xr[i] = X + (size_t)i * ldx;
    for (int c = 0; c < kc; c++) {
        __m256 w0, w1;
        /* the panel 12 KB ahead, a line at a time, as the AVX-512 kernel does (docs/perf.md,
         * change 41): an f16 column is half a line */
        const size_t at = (size_t)c * NR * (Wh ? sizeof *Wh : sizeof *Wp);
        const char *panel = Wh ? (const char *)Wh : (const char *)Wp;
        if (at % 64 == 0) __builtin_prefetch(panel + at + PREFETCH_AHEAD, 0, 3);
        if (Wh && reads == UKERNEL_BF16_PANEL) {
            w0 = bf16x8_to_ps(Wh + (size_t)c * NR);
            w1 = bf16x8_to_ps(Wh + (size_t)c * NR + 8);
        } else if (Wh) {
            w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(Wh + (size_t)c * NR)));
            w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(Wh + (size_t)c * NR + 8)));
        } else {
            w0 = _mm256_load_ps(Wp + (size_t)c * NR);
            w1 = _mm256_load_ps(Wp + (size_t)c * NR + 8);
        }
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 xb = _mm256_broadcast_ss(reads == UKERNEL_X_TRANSPOSED ? X + (size_t)c * ldx + i : xr[i] + c);
            acc[i][0] = _mm256_fmadd_ps(xb, w0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(xb, w1, acc[i][1]);
        }
    }
    /* masked stores for a partial panel (nr < NR); no temporary, so the
     * accumulators stay in registers */
    const __m256i m0 = lane_mask(nr >= 8 ? 8 : nr), m1 = lane_mask(nr >= 16 ? 8 : nr <= 8 ? 0 : nr - 8);
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        float *y = Y + (size_t)i * ldy;
        if (accumulate) {
            acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_maskload_ps(y, m0));
            acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_maskload_ps(y + 8, m1));
        }
        _mm256_maskstore_ps(y, m0, acc[i][0]);
        _mm256_maskstore_ps(y + 8, m1, acc[i][1]);
    }
}

static void pack(const matrix *W, int r0, int nr_valid, int c0, int kc, float *Wp, float *tmp) {
    pack_panel_avx(W, r0, nr_valid, c0, kc, Wp, tmp, NR, row_to_f32);
}

/* The fixed-mr kernels by mr; xt says what they read (UKERNEL_*). */
static inline __attribute__((always_inline)) void ukernel_mr(int kc, const float *Wp, const uint16_t *Wh, const float *X,
                                                              size_t ldx, int xt, float *Y, size_t ldy, int mr,
                                                              int nr, int accumulate) {
    switch (mr) {
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

/* e^x to about 1 ulp over the whole float range: 0 below -104 (where e^x
 * rounds to zero), +inf above ln(FLT_MAX). Range reduction x = n ln2 + r,
 * |r| <= ln2/2, a degree-6 minimax polynomial for e^r, and 2^n applied as
 * two factors so that subnormal results and n = 128 stay exact. */
static inline __m256 exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.7228394f), lo = _mm256_set1_ps(-104.0f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ), over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
    __m256 xc = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    y = _mm256_andnot_ps(under, y);
    return _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), over);
}

static void layernorm_v(const float *x, const float *w, const float *b, int n, float eps, float *y) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + i + 8));
    }
    float mean = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) mean += x[i];
    mean /= (float)n;
    __m256 m = _mm256_set1_ps(mean);
    s0 = s1 = _mm256_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), m), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m);
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    float var = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= (float)n;
    float inv = 1.0f / sqrtf(var + eps);
    __m256 iv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), iv);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(t, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * inv * w[i] + b[i];
}

static void token_mix_v(const float *cur, const float *prev, const float *mu, int n, float *out) {
    int i = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 m = _mm256_loadu_ps(mu + i);
        __m256 t = _mm256_mul_ps(_mm256_sub_ps(one, m), _mm256_loadu_ps(prev + i));
        _mm256_storeu_ps(out + i, _mm256_fmadd_ps(m, _mm256_loadu_ps(cur + i), t));
    }
    token_mix_scalar(cur + i, prev + i, mu + i, n - i, out + i);
}

/* The stable RWKV-4 WKV recurrence (kernels/wkv4.c) on 8 channels at a
 * time. Of the two exponentials of each step one is e^0 = 1, so one exp per
 * step suffices: e^{lo - max(a, b)} where lo is the smaller argument. */
static void wkv4_v(int T, int C, const float *d, const float *u, const float *k, const float *v, float *aa,
                   float *bb, float *pp, float *y) {
    int c = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; c + 8 <= C; c += 8) {
        __m256 a = _mm256_loadu_ps(aa + c), b = _mm256_loadu_ps(bb + c), p = _mm256_loadu_ps(pp + c);
        const __m256 dc = _mm256_loadu_ps(d + c), uc = _mm256_loadu_ps(u + c);
        for (int t = 0; t < T; t++) {
            const size_t o = (size_t)t * C + c;
            const __m256 kt = _mm256_loadu_ps(k + o), vt = _mm256_loadu_ps(v + o);
            __m256 ww = _mm256_add_ps(uc, kt);
            __m256 pbig = _mm256_cmp_ps(p, ww, _CMP_GT_OQ); /* q = p > ww ? p : ww */
            __m256 q = _mm256_blendv_ps(ww, p, pbig), small = _mm256_blendv_ps(p, ww, pbig);
            __m256 e = exp8(_mm256_sub_ps(small, q));
            __m256 e1 = _mm256_blendv_ps(e, one, pbig), e2 = _mm256_blendv_ps(one, e, pbig);
            __m256 num = _mm256_fmadd_ps(e2, vt, _mm256_mul_ps(e1, a));
            __m256 den = _mm256_add_ps(_mm256_mul_ps(e1, b), e2);
            _mm256_storeu_ps(y + o, _mm256_div_ps(num, den));
            ww = _mm256_add_ps(p, dc);
            __m256 wbig = _mm256_cmp_ps(ww, kt, _CMP_GT_OQ); /* q = ww > kt ? ww : kt */
            q = _mm256_blendv_ps(kt, ww, wbig);
            small = _mm256_blendv_ps(ww, kt, wbig);
            e = exp8(_mm256_sub_ps(small, q));
            e1 = _mm256_blendv_ps(e, one, wbig);
            e2 = _mm256_blendv_ps(one, e, wbig);
            a = _mm256_fmadd_ps(e2, vt, _mm256_mul_ps(e1, a));
            b = _mm256_add_ps(_mm256_mul_ps(e1, b), e2);
            p = q;
        }
        _mm256_storeu_ps(aa + c, a);
        _mm256_storeu_ps(bb + c, b);
        _mm256_storeu_ps(pp + c, p);
    }
    wkv4_forward_scalar(T, C, c, C, d, u, k, v, aa, bb, pp, y); /* leftover channels */
}

/* ---- element-wise ------------------------------------------------------- */

/* sigmoid(r) = 1 / (1 + e^-r), with the vector exp (division exact). */
static inline __m256 sigmoid_v(__m256 r) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), r))));
}

static void relu_square_v(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 h = _mm256_max_ps(_mm256_loadu_ps(x + i), _mm256_setzero_ps());
        _mm256_storeu_ps(x + i, _mm256_mul_ps(h, h));
    }
    relu_square_scalar(x + i, n - i);
}

static void sigmoid_mul_v(float *y, const float *r, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), sigmoid_v(_mm256_loadu_ps(r + i))));
    sigmoid_mul_scalar(y + i, r + i, n - i);
}

static void sigmoid_in_place_v(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, sigmoid_v(_mm256_loadu_ps(x + i)));
    sigmoid_scalar(x + i, n - i);
}

static void exp_in_place_v(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp8(_mm256_loadu_ps(x + i)));
    exp_scalar(x + i, n - i);
}

static void add_sigmoid_mul_v(float *x, const float *r, const float *v, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_mul_ps(sigmoid_v(_mm256_loadu_ps(r + i)), _mm256_loadu_ps(v + i));
        _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), g));
    }
    add_sigmoid_mul_scalar(x + i, r + i, v + i, n - i);
}

/* ---- RWKV-7 WKV of one token, two state rows at a time (wkv7_pair_fn) ----
 * Each row's eight partial sums in a vector of its own, as wkv7_row keeps
 * them; the two rows' chains of additions run side by side and the head's
 * vectors (a, w, b, k, r) are loaded once for both. The horizontal sums
 * pair the lanes as lanes_sum does. */
static inline float row_sum(__m256 p) {
    const __m256 t = _mm256_add_ps(p, _mm256_permute_ps(p, 0xB1)); /* (0+1), (2+3), ... */
    const __m256 u = _mm256_add_ps(t, _mm256_permute_ps(t, 0x4E)); /* (0+1)+(2+3), ... */
    return _mm256_cvtss_f32(_mm256_add_ps(u, _mm256_permute2f128_ps(u, u, 0x01)));
}

/* with_y 0: the state alone (y NULL), the r dot products skipped */
static inline __attribute__((always_inline)) void pair_body(int N, int h, int i, const float *r, const float *w,
                                                            const float *k, const float *v, const float *a,
                                                            const float *b, const float *s, float *s_out, float *y,
                                                            const int with_y) {
    const size_t o = (size_t)h * (size_t)N;
    r += o, w += o, k += o, a += o, b += o;
    const float *s1 = s + N;
    __m256 p0 = _mm256_setzero_ps(), p1 = p0;
    for (int j = 0; j < N; j += WKV7_PAIR_STEP) {
        const __m256 aj = _mm256_loadu_ps(a + j);
        p0 = _mm256_add_ps(p0, _mm256_mul_ps(_mm256_loadu_ps(s + j), aj));
        p1 = _mm256_add_ps(p1, _mm256_mul_ps(_mm256_loadu_ps(s1 + j), aj));
    }
    const __m256 sa0 = _mm256_set1_ps(row_sum(p0)), sa1 = _mm256_set1_ps(row_sum(p1));
    const __m256 v0 = _mm256_set1_ps(v[o + i]), v1 = _mm256_set1_ps(v[o + i + 1]);
    p0 = p1 = _mm256_setzero_ps();
    for (int j = 0; j < N; j += WKV7_PAIR_STEP) {
        const __m256 wj = _mm256_loadu_ps(w + j), bj = _mm256_loadu_ps(b + j), kj = _mm256_loadu_ps(k + j);
        const __m256 n0 = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(s + j), wj), _mm256_mul_ps(sa0, bj)),
                                        _mm256_mul_ps(v0, kj));
        const __m256 n1 = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(s1 + j), wj), _mm256_mul_ps(sa1, bj)),
                                        _mm256_mul_ps(v1, kj));
        _mm256_storeu_ps(s_out + j, n0);
        _mm256_storeu_ps(s_out + N + j, n1);
        if (with_y) {
            const __m256 rj = _mm256_loadu_ps(r + j);
            p0 = _mm256_add_ps(p0, _mm256_mul_ps(n0, rj));
            p1 = _mm256_add_ps(p1, _mm256_mul_ps(n1, rj));
        }
    }
    if (!with_y) return;
    y[o + i] = row_sum(p0);
    y[o + i + 1] = row_sum(p1);
}

static void wkv7_pair_v(int A, int N, int h, int i, const float *r, const float *w, const float *k, const float *v,
                        const float *a, const float *b, const float *s, float *s_out, float *y) {
    (void)A;
    if (y) pair_body(N, h, i, r, w, k, v, a, b, s, s_out, y, 1);
    else pair_body(N, h, i, r, w, k, v, a, b, s, s_out, NULL, 0);
}

const kernel_ops kernels_avx2 = {
    .name = "avx2",
    .matvec_rows = matvec_rows,
    .kquant_groups = "", /* AVX-VNNI where the CPU has it (kquant_q8_avx2.c) */
    .kquant_bytes = kquant_bytes_avx2,
    .kquant_prepare = kquant_prepare_avx2,
    .kquant_rows = kquant_rows_avx2,
    .row_to_f32 = row_to_f32,
    .mm = {MR, NR, ukernel, ukernel_f16, ukernel_xt, NULL, NULL, NULL, ukernel_bf16_panel},
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
    .wkv7_pair = wkv7_pair_v,
    .wkv7_backward_chunk = wkv7_backward_chunk_avx2,
    .wkv4_backward_block = wkv4_backward_block_scalar, /* no AVX2 build of it yet */
};

#ifdef __clang__
#pragma clang attribute pop
#endif

#endif
