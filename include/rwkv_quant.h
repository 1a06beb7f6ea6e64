/*
 * rwkv_quant.h — block quantization of RWKV-4 checkpoints (same conventions
 * as rwkv.h). Formats: docs/quantization.md.
 *
 * The output is an rwkv.cpp model file (ggmf container, file version 101),
 * so rwkv.cpp loads what we write and rwkv.c loads rwkv.cpp's files.
 */
#ifndef RWKV_QUANT_H
#define RWKV_QUANT_H

#include "rwkv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rwkv_quant_type {
    RWKV_QUANT_Q8_0 = 0, /* 8-bit, one f16 scale per 32 weights: 8.5 bits/weight */
    RWKV_QUANT_Q4_0,     /* 4-bit symmetric: 4.5 bits/weight */
    RWKV_QUANT_Q4_1,     /* 4-bit with a minimum: 5 bits/weight */
    RWKV_QUANT_Q5_0,     /* 5-bit symmetric: 5.5 bits/weight */
    RWKV_QUANT_Q5_1,     /* 5-bit with a minimum: 6 bits/weight */
    RWKV_QUANT_F16,      /* no quantization: float16 matrices */
    RWKV_QUANT_F32,      /* no quantization: float32 matrices */
    RWKV_QUANT_DEFAULT   /* (head only) the default policy, see rwkv_quantize */
} rwkv_quant_type;

/* "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "f16", "f32" (case-insensitive);
 * returns 0, or -1 for an unknown name. */
RWKV_API int rwkv_quant_type_parse(const char *name, rwkv_quant_type *out);
RWKV_API const char *rwkv_quant_type_name(rwkv_quant_type t);

/* Reads any RWKV-4 checkpoint rwkv.c loads and writes it atomically as an
 * rwkv.cpp file whose layer matrices are of `type`. emb.weight keeps its
 * float type (one row is read per token, so its size costs no time);
 * head.weight becomes Q8_0 when `type` is a block format (it is the largest
 * single matrix and the most sensitive one), else `type`. Vectors stay f32. */
RWKV_API rwkv_status rwkv_quantize(const char *in_path, const char *out_path, rwkv_quant_type type, rwkv_error *err);

/* As rwkv_quantize with an explicit type for head.weight (RWKV_QUANT_DEFAULT:
 * the policy above). */
RWKV_API rwkv_status rwkv_quantize_ex(const char *in_path, const char *out_path, rwkv_quant_type type,
                             rwkv_quant_type head_type, rwkv_error *err);

#ifdef __cplusplus
}
#endif
#endif /* RWKV_QUANT_H */
