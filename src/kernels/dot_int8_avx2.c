/* The integer block products on AVX2 (kernels/dot_int8.h), one block per
 * 32-byte vector, in two builds of the same rows (kernels/dot_int8_avx2_rows.h):
 * "avx2" sums the byte products with vpmaddubsw + vpmaddwd, "avxvnni" with
 * the single vpdpbusd of AVX-VNNI (chosen at run time when CPUID reports
 * it). The products of 4/5-bit codes (<= 31) or |Q8_0 codes| (<= 128) with
 * int8 activations (|q| <= 127) never saturate vpmaddubsw's 16-bit pairs. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))

#include <immintrin.h>
#include <string.h>

#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#include "kernels/avx_common.h"
#include "kernels/dot_int8.h"
#include "kernels/row_groups.h"

/* The 32 bits at p (little-endian) as 32 bytes: 0xff where the bit is set. */
static inline __m256i bits_to_bytes(const uint8_t *p) {
    uint32_t bits;
    memcpy(&bits, p, 4);
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    return _mm256_cmpeq_epi8(_mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)), _mm256_set1_epi64x(-1));
}

static void quantize(const float *x, act_q8 *a) {
    const __m256 sign = _mm256_set1_ps(-0.0f), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int b = 0; b < a->n / 32; b++) {
        __m256 v[4], mx = _mm256_setzero_ps(), sum = mx;
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 32 * b + 8 * k);
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[k]));
            sum = _mm256_add_ps(sum, v[k]);
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        const float amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        const float d = amax / 127.0f, id = activation_scale_ok(d) ? 1.0f / d : 0.0f;
        __m256i q[4], qs = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            /* clamp in float (as the reference), then round to nearest even
             * (the upper bound: for non-finite x, as in the AVX-512 variant) */
            q[k] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[k], _mm256_set1_ps(id)), lo), hi));
            qs = _mm256_add_epi32(qs, q[k]);
        }
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(a->q + 32 * b), _mm256_permutevar8x32_epi32(p, order));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(qs), _mm256_extracti128_si256(qs, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        _mm256_storeu_ps(a->d + 8 * b, _mm256_set1_ps(d));
        _mm256_storeu_si256((__m256i *)(a->qneg8 + 8 * b), _mm256_setr_epi32(-8 * _mm_cvtsi128_si32(s4), 0, 0, 0, 0, 0, 0, 0));
        _mm256_storeu_ps(a->xsum + 8 * b, _mm256_setr_ps(hsum8(sum), 0, 0, 0, 0, 0, 0, 0));
    }
    act_q8_clear_pad(a);
}

#define INT8_VARIANT(name) name##_avx2
#define DPBUSD(acc, u, s) _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#define DPBUSD_WIDE 0
#include "kernels/dot_int8_avx2_rows.h"
#undef INT8_VARIANT
#undef DPBUSD
#undef DPBUSD_WIDE

#ifdef __clang__
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avxvnni"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avxvnni")
#endif

#define INT8_VARIANT(name) name##_avxvnni
#define DPBUSD(acc, u, s) _mm256_dpbusd_avx_epi32((acc), (u), (s))
#define DPBUSD_WIDE 1
#include "kernels/dot_int8_avx2_rows.h"
#undef INT8_VARIANT
#undef DPBUSD
#undef DPBUSD_WIDE

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

const int8_dot_ops int8_dot_avx2 = {"avx2", "avx2", quantize, rows_avx2, groups_avx2, NULL, NULL, NULL};
const int8_dot_ops int8_dot_avxvnni = {"avxvnni", "avx2", quantize, rows_avxvnni, groups_avxvnni, NULL, NULL, NULL};

#endif
