/* The ggml "k-quant" super-block formats of GGUF files: 256 weights per
 * block, cut into sub-blocks that carry their own scale (and minimum),
 * which are themselves quantized against one f16 scale per super-block.
 * Byte layouts (docs/formats.md, "GGUF tensor types"):
 *
 *   Q4_K (144 bytes): f16 d, f16 dmin, u8 scales[12], u8 qs[128]
 *        8 sub-blocks of 32: x = d·sc_j·q − dmin·m_j, q in 0..15
 *   Q5_K (176 bytes): f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
 *        as Q4_K with a fifth bit per weight from qh, q in 0..31
 *   Q6_K (210 bytes): u8 ql[128], u8 qh[64], i8 scales[16], f16 d
 *        16 sub-blocks of 16: x = d·sc_j·(q − 32), q in 0..63
 *
 * Q4_K/Q5_K pack the eight 6-bit scales sc_j and minimums m_j in 12 bytes
 * (kquant_scale_min). Within a 64-weight group g (sub-blocks 2g and 2g+1),
 * weight l of sub-block 2g is the low nibble of qs[32g + l] and weight l of
 * sub-block 2g+1 its high nibble; the Q5_K fifth bits are bit 2g and 2g+1
 * of qh[l]. Q6_K: within each half h of 128 weights, weight l (l < 32) of
 * the four quarters comes from the low/high nibbles of ql[64h + l] and
 * ql[64h + 32 + l] and the bit pairs 0-1, 2-3, 4-5, 6-7 of qh[32h + l]. */
#ifndef RWKV_KQUANTS_H
#define RWKV_KQUANTS_H

#include <stdint.h>
#include <string.h>

#define QK_K 256

/* Scale and minimum of sub-block j (0..7) from the packed 12 bytes: j < 4
 * in the low 6 bits of bytes j and j + 4; j >= 4 split between the nibbles
 * of byte j + 4 and the top two bits of bytes j − 4 (scale) and j (minimum). */
static inline void kquant_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* All eight scales and minimums of a Q4_K/Q5_K block at once, as bytes
 * (kquant_scale_min for j = 0..7, four at a time in 32-bit words). */
static inline void kquant_unpack_scales(const uint8_t *packed, uint8_t sc[8], uint8_t m[8]) {
    uint32_t w[3], lo6 = 0x3f3f3f3f, lo4 = 0x0f0f0f0f, top2 = 0x03030303;
    memcpy(w, packed, 12);
    const uint32_t s_lo = w[0] & lo6, m_lo = w[1] & lo6;
    const uint32_t s_hi = (w[2] & lo4) | ((w[0] >> 6) & top2) << 4;
    const uint32_t m_hi = ((w[2] >> 4) & lo4) | ((w[1] >> 6) & top2) << 4;
    memcpy(sc, &s_lo, 4), memcpy(sc + 4, &s_hi, 4);
    memcpy(m, &m_lo, 4), memcpy(m + 4, &m_hi, 4);
}

/* The factors of group g (sub-blocks 2g and 2g + 1) of a Q4_K/Q5_K block
 * with scales `scales` (12 bytes) and super-block scales d, dmin: weight =
 * f[0]·q − f[1] in sub-block 2g, f[2]·q − f[3] in sub-block 2g + 1. */
static inline void kquant_group_factors(const uint8_t *scales, int g, float d, float dmin, float f[4]) {
    int sc0, m0, sc1, m1;
    kquant_scale_min(2 * g, scales, &sc0, &m0);
    kquant_scale_min(2 * g + 1, scales, &sc1, &m1);
    f[0] = d * (float)sc0;
    f[1] = dmin * (float)m0;
    f[2] = d * (float)sc1;
    f[3] = dmin * (float)m1;
}

/* One super-block of type DT_Q4_K, DT_Q5_K or DT_Q6_K to 256 floats. */
void kquant_dequant_q4_k(const uint8_t *b, float *out);
void kquant_dequant_q5_k(const uint8_t *b, float *out);
void kquant_dequant_q6_k(const uint8_t *b, float *out);

#endif
