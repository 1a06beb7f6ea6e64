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

/* The 6-bit sub-block scales and minimums of Q4_K/Q5_K, packed as kquant_scale_min reads them. */
static void pack_scale_min(const int ls[8], const int lm[8], uint8_t *scales) {
    for (int j = 0; j < 8; j++)
        if (j < 4) {
            scales[j] = (uint8_t)ls[j];
            scales[j + 4] = (uint8_t)lm[j];
        } else {
            scales[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
            scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
}

/* Q4_K/Q5_K codes (256, 0..top) into qs (and Q5_K's fifth bits into qh). */
static void pack_qx_k_codes(const int q[256], int bits, uint8_t *qs, uint8_t *qh) {
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) {
            const int a = q[64 * g + l], b = q[64 * g + 32 + l];
            qs[32 * g + l] = (uint8_t)((a & 0xF) | (b & 0xF) << 4);
            if (bits == 5) qh[l] |= (uint8_t)((a >> 4) << (2 * g) | (b >> 4) << (2 * g + 1));
        }
}

/* Weighted squared error of x ≈ scale·L − mn over one sub-block of 32. */
static float affine_error(const float *x, const float *w, const int *L, float scale, float mn) {
    float e = 0;
    for (int l = 0; l < 32; l++) {
        const float diff = scale * (float)L[l] - mn - x[l];
        e += w[l] * diff * diff;
    }
    return e;
}

/* The best affine fit x ≈ scale·L − mn (mn >= 0, L in 0..top) of a
 * sub-block of 32 under weights w, as ggml's k-quant search does it: the
 * codes of the plain max-scale grid, then of 20 slightly stretched or
 * shrunk grids, each followed by the least-squares scale and minimum for
 * those codes; the fit of lowest weighted error wins (the plain grid is the
 * first candidate, so the search never does worse before the scales are
 * themselves rounded to 6 bits). Returns the scale; *mn_out the minimum. */
static float search_affine(const float *x, const float *w, int top, float *mn_out) {
    float lo = 0, hi = x[0];
    for (int l = 0; l < 32; l++) lo = fminf(lo, x[l]), hi = fmaxf(hi, x[l]);
    if (hi <= lo) {
        *mn_out = -lo;
        return 0;
    }
    float best_scale = (hi - lo) / (float)top, best_mn = -lo, best_err;
    int L[32];
    for (int l = 0; l < 32; l++) L[l] = clamp_int(roundf((x[l] - lo) / best_scale), 0, top);
    best_err = affine_error(x, w, L, best_scale, best_mn);
    for (int step = 0; step <= 20; step++) {
        const float iscale = ((float)top - 1.0f + 0.1f * (float)step) / (hi - lo);
        float sw = 0, sl = 0, sl2 = 0, sx = 0, sxl = 0;
        for (int l = 0; l < 32; l++) {
            L[l] = clamp_int(roundf(iscale * (x[l] - lo)), 0, top);
            sw += w[l], sl += w[l] * (float)L[l], sl2 += w[l] * (float)(L[l] * L[l]);
            sx += w[l] * x[l], sxl += w[l] * x[l] * (float)L[l];
        }
        const float det = sw * sl2 - sl * sl;
        if (det <= 0) continue;
        float scale = (sw * sxl - sx * sl) / det, mn = -(sl2 * sx - sl * sxl) / det;
        if (mn < 0) mn = 0, scale = sl2 > 0 ? sxl / sl2 : 0; /* the range must hold 0: fit the scale alone */
        if (scale <= 0) continue;
        const float e = affine_error(x, w, L, scale, mn);
        if (e < best_err) best_err = e, best_scale = scale, best_mn = mn;
    }
    *mn_out = best_mn;
    return best_scale;
}

/* Q4_K (bits 4) / Q5_K (bits 5), max-scale: one super-block of 256 weights. */
static void qx_k_block_max(const float *x, uint8_t *out, int bits) {
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
    for (int j = 0; j < 8; j++) {
        ls[j] = d > 0 ? clamp_int(ceilf(need[j] / d), 0, 63) : 0;
        const float dd = d * (float)ls[j], dm = dmin * (float)lm[j], id = dd > 0 ? 1.0f / dd : 0.0f;
        for (int l = 0; l < 32; l++) q[32 * j + l] = clamp_int(roundf((x[32 * j + l] + dm) * id), 0, top);
    }
    pack_scale_min(ls, lm, out + 4);
    pack_qx_k_codes(q, bits, out + (bits == 5 ? 48 : 16), out + 16);
}

/* Q4_K / Q5_K with searched sub-block scales (search_affine, weights
 * rms(x) + |x| as ggml's, so large weights are fitted more closely); the
 * eight scales and minimums then rounded to 6 bits against the largest. */
static void qx_k_block_search(const float *x, uint8_t *out, int bits) {
    const int top = (1 << bits) - 1;
    float sum_x2 = 0;
    for (int l = 0; l < 256; l++) sum_x2 += x[l] * x[l];
    const float rms = sqrtf(sum_x2 / 256.0f);
    float w[256], scale[8], mins[8], max_scale = 0, max_min = 0;
    for (int l = 0; l < 256; l++) w[l] = rms + fabsf(x[l]);
    for (int j = 0; j < 8; j++) {
        scale[j] = search_affine(x + 32 * j, w + 32 * j, top, &mins[j]);
        max_scale = fmaxf(max_scale, scale[j]);
        max_min = fmaxf(max_min, mins[j]);
    }
    const float d = f16_to_f32(f32_to_f16(max_scale / 63.0f)), dmin = f16_to_f32(f32_to_f16(max_min / 63.0f));
    int ls[8], lm[8], q[256];
    memset(out, 0, dtype_block_bytes(bits == 4 ? DT_Q4_K : DT_Q5_K));
    put_f16(out, d);
    put_f16(out + 2, dmin);
    for (int j = 0; j < 8; j++) {
        ls[j] = d > 0 ? clamp_int(roundf(scale[j] / d), 0, 63) : 0;
        lm[j] = dmin > 0 ? clamp_int(roundf(mins[j] / dmin), 0, 63) : 0;
        const float dd = d * (float)ls[j], dm = dmin * (float)lm[j], id = dd > 0 ? 1.0f / dd : 0.0f;
        for (int l = 0; l < 32; l++) q[32 * j + l] = clamp_int(roundf((x[32 * j + l] + dm) * id), 0, top);
    }
    pack_scale_min(ls, lm, out + 4);
    pack_qx_k_codes(q, bits, out + (bits == 5 ? 48 : 16), out + 16);
}

/* Q6_K sub-block scales: the plain scale puts the value of largest
 * magnitude on code 0; the search also tries 18 slightly different grids,
 * each with its least-squares scale (weights x², ggml's choice for Q6_K),
 * and keeps the fit of lowest weighted error. */
static float q6_k_sub_scale(const float *x, int search) {
    float amax = 0, v = 0;
    for (int l = 0; l < 16; l++)
        if (fabsf(x[l]) > amax) amax = fabsf(x[l]), v = x[l];
    if (!search || amax == 0) return v / -32.0f;
    float best = v / -32.0f, best_err = 0;
    for (int l = 0; l < 16; l++) {
        const float e = best * (float)clamp_int(roundf(x[l] / best), -32, 31) - x[l];
        best_err += x[l] * x[l] * e * e;
    }
    for (int step = -9; step <= 9; step++) {
        if (step == 0) continue;
        const float iscale = -(32.0f + 0.1f * (float)step) / v;
        float sxl = 0, sl2 = 0;
        int L[16];
        for (int l = 0; l < 16; l++) {
            L[l] = clamp_int(roundf(iscale * x[l]), -32, 31);
            sxl += x[l] * x[l] * x[l] * (float)L[l], sl2 += x[l] * x[l] * (float)(L[l] * L[l]);
        }
        if (sl2 <= 0) continue;
        const float s = sxl / sl2;
        float e = 0;
        for (int l = 0; l < 16; l++) {
            const float diff = s * (float)L[l] - x[l];
            e += x[l] * x[l] * diff * diff;
        }
        if (e < best_err) best_err = e, best = s;
    }
    return best;
}

static void q6_k_block(const float *x, uint8_t *out, int search) {
    float scale[16], max_scale = 0;
    for (int j = 0; j < 16; j++) {
        scale[j] = q6_k_sub_scale(x + 16 * j, search);
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

int quantize_row_scales(dtype t, const float *src, void *dst, size_t n, kquant_scales how) {
    if (!dtype_is_block(t) || n % dtype_block_elems(t)) return -1;
    uint8_t *o = dst;
    const size_t bb = dtype_block_bytes(t), be = dtype_block_elems(t);
    const int search = how == KQUANT_SEARCH;
    for (size_t i = 0; i < n; i += be, o += bb) {
        switch (t) {
        case DT_Q8_0: q8_0_block(src + i, o); break;
        case DT_Q4_0: qx_0_block(src + i, o, 4); break;
        case DT_Q5_0: qx_0_block(src + i, o, 5); break;
        case DT_Q4_1: qx_1_block(src + i, o, 4); break;
        case DT_Q5_1: qx_1_block(src + i, o, 5); break;
        case DT_Q4_K: (search ? qx_k_block_search : qx_k_block_max)(src + i, o, 4); break;
        case DT_Q5_K: (search ? qx_k_block_search : qx_k_block_max)(src + i, o, 5); break;
        case DT_Q6_K: q6_k_block(src + i, o, search); break;
        default: return -1;
        }
    }
    return 0;
}

int quantize_row(dtype t, const float *src, void *dst, size_t n) {
    return quantize_row_scales(t, src, dst, n, KQUANT_SEARCH);
}
