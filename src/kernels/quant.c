/* Quantization of float32 rows into the ggml block formats (layouts in
 * src/core/dtype.c and docs/quantization.md), bit-compatible with what ggml /
 * rwkv.cpp read. One block = 32 consecutive values of a row.
 *
 *   Q8_0: d = max|x| / 127,           q = round(x / d)            in [-127, 127]
 *   Q4_0: d = m / -8 (m: the value of largest magnitude, signed),
 *         q = min(15, floor(x / d + 8.5))                          value (q - 8) d
 *   Q5_0: as Q4_0 with 16 / 31 / 16.5
 *   Q4_1: d = (max - min) / 15, m = min, q = round((x - min) / d)  value q d + m
 *   Q5_1: as Q4_1 with 31
 *
 * The scale is rounded to f16 *before* the values are divided by it, so the
 * stored d is the one the codes were chosen for (slightly lower error than
 * dividing by the unrounded scale).
 *
 * The k-quants (layouts in core/kquants.h) quantize every sub-block's scale
 * (and minimum) against one f16 scale per 256 weights:
 *   Q4_K / Q5_K: sub-blocks of 32, x ≈ d·ls·q − dmin·lm, 6-bit ls, lm;
 *                lm and ls are rounded *up*, so the sub-block's range
 *                [min(0, min x), max x] is always covered (no clipping)
 *   Q6_K:        sub-blocks of 16, x ≈ d·sc·(q − 32), 8-bit signed sc, the
 *                value of largest magnitude on code 0 (as Q4_0). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/kquants.h"
#include "kernels/kernels.h"

static void put_f16(uint8_t *p, float f) {
    uint16_t h = f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void q8_0_block(const float *x, uint8_t *out) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = f16_to_f32(f32_to_f16(amax / 127.0f));
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    for (int j = 0; j < 32; j++) {
        float v = roundf(x[j] * id);
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        out[2 + j] = (uint8_t)(int8_t)v;
    }
}

/* Stores 32 codes of 4 or 5 bits: the low nibbles two per byte (element j
 * and j + 16 share byte j), and, when qh is given, the fifth bits as one
 * little-endian u32 (bit j of element j). */
static void pack_codes(const int q[32], uint8_t *qs, uint8_t *qh) {
    uint32_t hi = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        hi |= (uint32_t)((q[j] >> 4) & 1) << j | (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    if (qh) {
        qh[0] = (uint8_t)hi;
        qh[1] = (uint8_t)(hi >> 8);
        qh[2] = (uint8_t)(hi >> 16);
        qh[3] = (uint8_t)(hi >> 24);
    }
}

/* Symmetric 4/5-bit: bits = 4 or 5; qh receives the 5th bits (Q5_0). */
static void qx_0_block(const float *x, uint8_t *out, int bits) {
    const int half = 1 << (bits - 1), top = (1 << bits) - 1;
    float amax = 0, m = 0;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), m = x[j];
    float d = f16_to_f32(f32_to_f16(m / (float)-half));
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    uint8_t *qs = out + (bits == 5 ? 6 : 2);
    int q[32];
    for (int j = 0; j < 32; j++) {
        float v = x[j] * id + (float)half + 0.5f;
        int qi = v <= 0.0f ? 0 : (int)v;
        q[j] = qi > top ? top : qi;
    }
    pack_codes(q, qs, bits == 5 ? out + 2 : NULL);
}

/* Affine 4/5-bit with a minimum (Q4_1 / Q5_1). */
static void qx_1_block(const float *x, uint8_t *out, int bits) {
    const int top = (1 << bits) - 1;
    float mn = x[0], mx = x[0];
    for (int j = 1; j < 32; j++) mn = fminf(mn, x[j]), mx = fmaxf(mx, x[j]);
    float d = f16_to_f32(f32_to_f16((mx - mn) / (float)top));
    float m = f16_to_f32(f32_to_f16(mn));
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(out, d);
    put_f16(out + 2, m);
    uint8_t *qs = out + (bits == 5 ? 8 : 4);
    int q[32];
    for (int j = 0; j < 32; j++) {
        float v = roundf((x[j] - m) * id);
        int qi = v <= 0.0f ? 0 : (int)v;
        q[j] = qi > top ? top : qi;
    }
    pack_codes(q, qs, bits == 5 ? out + 4 : NULL);
}

/* The smallest f16 value >= v (v >= 0, finite). */
static float f16_ceil(float v) {
    uint16_t h = f32_to_f16(v);
    if (f16_to_f32(h) < v) h++;
    return f16_to_f32(h);
}

static int clamp_int(float v, int lo, int hi) {
    int i = (int)v;
    return i < lo ? lo : i > hi ? hi : i;
}

/* Q4_K (bits 4) / Q5_K (bits 5): one super-block of 256 weights. */
static void qx_k_block(const float *x, uint8_t *out, int bits) {
    const int top = (1 << bits) - 1;
    float mins[8], highs[8], max_min = 0;
    for (int j = 0; j < 8; j++) {
        float mn = 0, mx = 0; /* the range always holds 0, as ggml's */
        for (int l = 0; l < 32; l++) mn = fminf(mn, x[32 * j + l]), mx = fmaxf(mx, x[32 * j + l]);
        mins[j] = -mn;
        highs[j] = mx;
        max_min = fmaxf(max_min, mins[j]);
    }
    const float dmin = f16_ceil(max_min / 63.0f);
    int lm[8], ls[8], q[256];
    float need[8], max_need = 0;
    for (int j = 0; j < 8; j++) {
        lm[j] = dmin > 0 ? clamp_int(ceilf(mins[j] / dmin), 0, 63) : 0;
        need[j] = (highs[j] + dmin * (float)lm[j]) / (float)top;
        max_need = fmaxf(max_need, need[j]);
    }
    const float d = f16_ceil(max_need / 63.0f);
    memset(out, 0, dtype_block_bytes(bits == 4 ? DT_Q4_K : DT_Q5_K));
    put_f16(out, d);
    put_f16(out + 2, dmin);
    uint8_t *scales = out + 4, *qh = out + 16, *qs = out + (bits == 5 ? 48 : 16);
    for (int j = 0; j < 8; j++) {
        ls[j] = d > 0 ? clamp_int(ceilf(need[j] / d), 0, 63) : 0;
        const float dd = d * (float)ls[j], dm = dmin * (float)lm[j], id = dd > 0 ? 1.0f / dd : 0.0f;
        for (int l = 0; l < 32; l++) q[32 * j + l] = clamp_int(roundf((x[32 * j + l] + dm) * id), 0, top);
        if (j < 4) {
            scales[j] = (uint8_t)ls[j];
            scales[j + 4] = (uint8_t)lm[j];
        } else {
            scales[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
            scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) {
            const int a = q[64 * g + l], b = q[64 * g + 32 + l];
            qs[32 * g + l] = (uint8_t)((a & 0xF) | (b & 0xF) << 4);
            if (bits == 5) qh[l] |= (uint8_t)((a >> 4) << (2 * g) | (b >> 4) << (2 * g + 1));
        }
}

static void q6_k_block(const float *x, uint8_t *out) {
    float scale[16], max_scale = 0;
    for (int j = 0; j < 16; j++) {
        float amax = 0, v = 0;
        for (int l = 0; l < 16; l++)
            if (fabsf(x[16 * j + l]) > amax) amax = fabsf(x[16 * j + l]), v = x[16 * j + l];
        scale[j] = v / -32.0f;
        if (fabsf(scale[j]) > fabsf(max_scale)) max_scale = scale[j];
    }
    /* |d| rounded up, so the largest sub-scale gets sc = -128 without clamping */
    const float d = -copysignf(f16_ceil(fabsf(max_scale) / 128.0f), max_scale);
    int q[256];
    int8_t *sc = (int8_t *)(out + 192);
    for (int j = 0; j < 16; j++) {
        sc[j] = (int8_t)(d != 0.0f ? clamp_int(roundf(scale[j] / d), -128, 127) : 0);
        const float dd = d * (float)sc[j], id = dd != 0.0f ? 1.0f / dd : 0.0f;
        for (int l = 0; l < 16; l++) q[16 * j + l] = clamp_int(roundf(x[16 * j + l] * id), -32, 31) + 32;
    }
    put_f16(out + 208, d);
    uint8_t *ql = out, *qh = out + 128;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int *b = q + 128 * h + l;
            ql[64 * h + l] = (uint8_t)((b[0] & 0xF) | (b[64] & 0xF) << 4);
            ql[64 * h + l + 32] = (uint8_t)((b[32] & 0xF) | (b[96] & 0xF) << 4);
            qh[32 * h + l] = (uint8_t)((b[0] >> 4) | (b[32] >> 4) << 2 | (b[64] >> 4) << 4 | (b[96] >> 4) << 6);
        }
}

int quantize_row(dtype t, const float *src, void *dst, size_t n) {
    if (!dtype_is_block(t) || n % dtype_block_elems(t)) return -1;
    uint8_t *o = dst;
    const size_t bb = dtype_block_bytes(t), be = dtype_block_elems(t);
    for (size_t i = 0; i < n; i += be, o += bb) {
        switch (t) {
        case DT_Q8_0: q8_0_block(src + i, o); break;
        case DT_Q4_0: qx_0_block(src + i, o, 4); break;
        case DT_Q5_0: qx_0_block(src + i, o, 5); break;
        case DT_Q4_1: qx_1_block(src + i, o, 4); break;
        case DT_Q5_1: qx_1_block(src + i, o, 5); break;
        case DT_Q4_K: qx_k_block(src + i, o, 4); break;
        case DT_Q5_K: qx_k_block(src + i, o, 5); break;
        case DT_Q6_K: q6_k_block(src + i, o); break;
        default: return -1;
        }
    }
    return 0;
}
