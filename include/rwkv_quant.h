/*
 * rwkv_quant.h — block quantization of RWKV checkpoints (same conventions
 * as rwkv.h). Formats: docs/quantization.md.
 *
 * RWKV-4 models are written as rwkv.cpp model files (ggmf container, file
 * version 101), so rwkv.cpp loads what we write; RWKV-5 too (rwkv.cpp's
 * value conventions). RWKV-6 and RWKV-7 models are written as GGUF files
 * laid out as llama.cpp's converter writes them (tensor names, fused and
 * transposed tensors, metadata and the World vocabulary), so llama.cpp
 * loads them. rwkv.c loads all of them back.
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
    RWKV_QUANT_Q4_K,     /* k-quant, 256-weight super-blocks: 4.5 bits/weight (GGUF only) */
    RWKV_QUANT_Q5_K,     /* k-quant: 5.5 bits/weight (GGUF only) */
    RWKV_QUANT_Q6_K,     /* k-quant: 6.5625 bits/weight (GGUF only) */
    RWKV_QUANT_F16,      /* no quantization: float16 matrices */
    RWKV_QUANT_F32,      /* no quantization: float32 matrices */
    RWKV_QUANT_DEFAULT,  /* (head only) the default policy, see rwkv_quantize */
    RWKV_QUANT_Q4_K_M    /* llama.cpp's "Q4_K_M" mix (GGUF only): Q4_K, with the value projections of
                          * the first and last eighth of the layers and of every third layer between
                          * them, and the head, in Q6_K (about 4.9 bits/weight) */
} rwkv_quant_type;

/* "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k", "f16", "f32", "q4_k_m" (case-insensitive);
 * returns 0, or -1 for an unknown name. */
RWKV_API int rwkv_quant_type_parse(const char *name, rwkv_quant_type *out);
RWKV_API const char *rwkv_quant_type_name(rwkv_quant_type t);

/* Reads any RWKV checkpoint rwkv.c loads and writes it atomically (as an
 * rwkv.cpp file for RWKV-4/5, as GGUF for RWKV-6/7) with its layer matrices
 * in `type`. emb.weight keeps its float type (rwkv.cpp files) or becomes f16
 * (GGUF; f32 for type f32): one row is read per token, so its size costs no
 * time. head.weight becomes Q8_0 for the 32-weight block types and Q6_K for
 * the k-quants (it is the largest single matrix and the most sensitive one),
 * else `type`. Vectors and LoRA matrices stay f32. A matrix whose rows are
 * not whole blocks of `type` falls back as llama.cpp does (Q4_K -> Q5_0,
 * Q5_K -> Q5_1, Q6_K -> Q8_0, others -> f16). The k-quants need GGUF. */
RWKV_API rwkv_status rwkv_quantize(const char *in_path, const char *out_path, rwkv_quant_type type, rwkv_error *err);

/* As rwkv_quantize with an explicit type for head.weight (RWKV_QUANT_DEFAULT:
 * the policy above). */
RWKV_API rwkv_status rwkv_quantize_ex(const char *in_path, const char *out_path, rwkv_quant_type type,
                             rwkv_quant_type head_type, rwkv_error *err);

typedef struct rwkv_quant_options {
    rwkv_quant_type type, head_type; /* head_type RWKV_QUANT_DEFAULT: the policy above */
    /* GGUF output: the World vocabulary stored in the file (a tokenizer file
     * rwkv_tokenizer_load reads); NULL: the one the input file carries
     * (rwkv_tokenizer_from_model), an error when it carries none. */
    const char *tokenizer;
} rwkv_quant_options;

/* The general form of rwkv_quantize. */
RWKV_API rwkv_status rwkv_quantize_opts(const char *in_path, const char *out_path, const rwkv_quant_options *opts,
                                        rwkv_error *err);

#ifdef __cplusplus
}
#endif
#endif /* RWKV_QUANT_H */
