#include "core/dtype.h"

#include <math.h>

static const struct {
    const char *name;
    size_t block_elems, block_bytes;
} dtype_table[DT_COUNT] = {
    [DT_F32] = {"f32", 1, 4},   [DT_F16] = {"f16", 1, 2},    [DT_BF16] = {"bf16", 1, 2},
    [DT_F64] = {"f64", 1, 8},   [DT_I64] = {"i64", 1, 8},    [DT_I32] = {"i32", 1, 4},
    [DT_I16] = {"i16", 1, 2},   [DT_I8] = {"i8", 1, 1},      [DT_U8] = {"u8", 1, 1},
    [DT_BOOL] = {"bool", 1, 1}, [DT_Q4_0] = {"q4_0", 32, 18}, [DT_Q4_1] = {"q4_1", 32, 20},
    [DT_Q5_0] = {"q5_0", 32, 22}, [DT_Q5_1] = {"q5_1", 32, 24}, [DT_Q8_0] = {"q8_0", 32, 34},
};

const char *dtype_name(dtype t) { return (unsigned)t < DT_COUNT ? dtype_table[t].name : "?"; }
int dtype_is_float(dtype t) { return t == DT_F32 || t == DT_F16 || t == DT_BF16 || t == DT_F64; }
int dtype_is_block(dtype t) { return t >= DT_Q4_0 && t < DT_COUNT; }
size_t dtype_block_elems(dtype t) { return dtype_table[t].block_elems; }
size_t dtype_block_bytes(dtype t) { return dtype_table[t].block_bytes; }

size_t dtype_bytes_for(dtype t, uint64_t n) {
    uint64_t be = dtype_table[t].block_elems, bb = dtype_table[t].block_bytes;
    if (n % be) return 0;
    uint64_t blocks = n / be;
    if (blocks > SIZE_MAX / bb) return 0;
    return (size_t)(blocks * bb);
}

uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: value = man * 2^-24 */
            float f = (float)man * 5.9604644775390625e-8f;
            memcpy(&u, &f, 4);
            u |= sign;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00u;         /* NaN */
    if (abs >= 0x477ff000u) return sign | 0x7c00u;        /* rounds to >= 65520: inf */
    if (abs < 0x38800000u) {                              /* below 2^-14: subnormal or zero */
        float a;
        memcpy(&a, &abs, 4);
        /* a * 2^24 rounded to nearest even gives the subnormal mantissa */
        return sign | (uint16_t)lrintf(a * 16777216.0f);
    }
    uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
    return sign | (uint16_t)((rounded - 0x38000000u) >> 13);
}

/* ggml block layouts (docs/formats.md): d (f16) [m (f16)] [qh u32] qs[16] or qs[32]. */
static void dequant_block(dtype t, const uint8_t *b, float *out) {
    float d = f16_to_f32((uint16_t)(b[0] | b[1] << 8)), m = 0;
    const uint8_t *p = b + 2;
    if (t == DT_Q4_1 || t == DT_Q5_1) {
        m = f16_to_f32((uint16_t)(p[0] | p[1] << 8));
        p += 2;
    }
    if (t == DT_Q8_0) {
        for (int j = 0; j < 32; j++) out[j] = (float)(int8_t)p[j] * d;
        return;
    }
    uint32_t qh = 0;
    if (t == DT_Q5_0 || t == DT_Q5_1) {
        qh = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        p += 4;
    }
    for (int j = 0; j < 16; j++) {
        int lo = p[j] & 0x0f, hi = p[j] >> 4;
        if (t == DT_Q5_0 || t == DT_Q5_1) {
            lo |= (int)((qh >> j) & 1u) << 4;
            hi |= (int)((qh >> (j + 16)) & 1u) << 4;
        }
        switch (t) {
        case DT_Q4_0: out[j] = (float)(lo - 8) * d; out[j + 16] = (float)(hi - 8) * d; break;
        case DT_Q5_0: out[j] = (float)(lo - 16) * d; out[j + 16] = (float)(hi - 16) * d; break;
        default: out[j] = (float)lo * d + m; out[j + 16] = (float)hi * d + m; break;
        }
    }
}

void dtype_to_f32(dtype t, const void *src, float *dst, size_t n) {
    const uint8_t *s = src;
    switch (t) {
    case DT_F32: memcpy(dst, src, n * 4); return;
    case DT_F16:
        for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
        return;
    case DT_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
        return;
    case DT_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, s + 8 * i, 8);
            dst[i] = (float)d;
        }
        return;
    default:
        if (dtype_is_block(t)) {
            size_t bb = dtype_block_bytes(t);
            for (size_t i = 0; i < n / 32; i++) dequant_block(t, s + i * bb, dst + i * 32);
            return;
        }
        for (size_t i = 0; i < n; i++) dst[i] = 0; /* integer tensors never reach here */
    }
}

void dtype_from_f32(dtype t, const float *src, void *dst, size_t n) {
    uint8_t *d = dst;
    switch (t) {
    case DT_F32: memcpy(dst, src, n * 4); return;
    case DT_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = f32_to_f16(src[i]);
            d[2 * i] = (uint8_t)h;
            d[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return;
    case DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = f32_to_bf16(src[i]);
            d[2 * i] = (uint8_t)h;
            d[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return;
    default: return;
    }
}
