/* Reference dequantization of the k-quant super-blocks (core/kquants.h),
 * bit-exact with ggml: every product is d·sc as a float, times the code,
 * minus dmin·m. */
#include "core/kquants.h"

#include "core/dtype.h"

static float half_at(const uint8_t *p) { return f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* Q4_K and Q5_K differ only in the fifth bit (qh NULL: none). */
static void dequant_qx_k(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *out) {
    const float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t *scales = b + 4;
    for (int g = 0; g < 4; g++) {
        float f[4];
        kquant_group_factors(scales, g, d, dmin, f);
        const float d0 = f[0], mm0 = f[1], d1 = f[2], mm1 = f[3];
        const uint8_t *q = qs + 32 * g;
        for (int l = 0; l < 32; l++) {
            int lo = q[l] & 0xF, hi = q[l] >> 4;
            if (qh) {
                lo += ((qh[l] >> (2 * g)) & 1) << 4;
                hi += ((qh[l] >> (2 * g + 1)) & 1) << 4;
            }
            out[64 * g + l] = d0 * (float)lo - mm0;
            out[64 * g + 32 + l] = d1 * (float)hi - mm1;
        }
    }
}

void kquant_dequant_q4_k(const uint8_t *b, float *out) { dequant_qx_k(b, NULL, b + 16, out); }

void kquant_dequant_q5_k(const uint8_t *b, float *out) { dequant_qx_k(b, b + 16, b + 48, out); }

void kquant_dequant_q6_k(const uint8_t *b, float *out) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = half_at(b + 208);
    for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, out += 128)
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            out[l] = d * (float)sc[is] * (float)q1;
            out[l + 32] = d * (float)sc[is + 2] * (float)q2;
            out[l + 64] = d * (float)sc[is + 4] * (float)q3;
            out[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
}
