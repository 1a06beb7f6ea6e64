/* Number formats: the element types a tensor can be stored in, and exact
 * conversions between float32 and the 16-bit formats. */
#ifndef RWKV_DTYPE_H
#define RWKV_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum dtype {
    DT_F32 = 0,
    DT_F16,
    DT_BF16,
    DT_F64,
    DT_I64,
    DT_I32,
    DT_I16,
    DT_I8,
    DT_U8,
    DT_BOOL,
    /* ggml block formats (rwkv.cpp files): 32 elements per block */
    DT_Q4_0,
    DT_Q4_1,
    DT_Q5_0,
    DT_Q5_1,
    DT_Q8_0,
    DT_COUNT
} dtype;

const char *dtype_name(dtype t);           /* "f32", "bf16", "q5_0", ... */
int dtype_is_float(dtype t);               /* f32/f16/bf16/f64 */
int dtype_is_block(dtype t);               /* quantized block format */
size_t dtype_block_elems(dtype t);         /* 1, or 32 for block formats */
size_t dtype_block_bytes(dtype t);         /* bytes of one element or block */

/* Bytes needed for n elements (n must be a multiple of the block size);
 * returns 0 on overflow or when n is not a whole number of blocks. */
size_t dtype_bytes_for(dtype t, uint64_t n);

/* bf16 is the upper half of a float32; the conversion rounds to nearest even. */
static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
uint16_t f32_to_bf16(float f);
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

/* Converts n elements of any float or block type at src to float32. */
void dtype_to_f32(dtype t, const void *src, float *dst, size_t n);
/* Converts n float32 values to t (f32, f16 or bf16 only). */
void dtype_from_f32(dtype t, const float *src, void *dst, size_t n);

#endif
