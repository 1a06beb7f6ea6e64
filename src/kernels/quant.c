/* Quantization of float32 rows into the ggml block formats (layouts in
 * src/dtype.c and docs/quantization.md), bit-compatible with what ggml /
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
 * dividing by the unrounded scale). */
#include <math.h>
#include <stdint.h>
#include <string.h>

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

int quantize_row(dtype t, const float *src, void *dst, size_t n) {
    if (!dtype_is_block(t) || n % 32) return -1;
    uint8_t *o = dst;
    const size_t bb = dtype_block_bytes(t);
    for (size_t i = 0; i < n; i += 32, o += bb) {
        switch (t) {
        case DT_Q8_0: q8_0_block(src + i, o); break;
        case DT_Q4_0: qx_0_block(src + i, o, 4); break;
        case DT_Q5_0: qx_0_block(src + i, o, 5); break;
        case DT_Q4_1: qx_1_block(src + i, o, 4); break;
        case DT_Q5_1: qx_1_block(src + i, o, 5); break;
        default: return -1;
        }
    }
    return 0;
}
