/* Shared parts of `rwkv quantize` (tools/quantize.c: the API, the rwkv.cpp
 * output; tools/quantize_gguf.c: the GGUF output). */
#ifndef RWKV_TOOLS_QUANTIZE_H
#define RWKV_TOOLS_QUANTIZE_H

#include "model/model.h"
#include "rwkv_quant.h"

/* Converts (and quantizes) one tensor into buffers the caller frees
 * (out->name, out->data), with the name `name`. */
rwkv_status quantize_tensor(const tensor *in, const char *name, dtype to, tensor *out, rwkv_error *err);

/* The type a matrix of `cols` columns is stored in when `to` is asked for:
 * `to` when its rows are whole blocks, else llama.cpp's fallback (Q4_K ->
 * Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, or f16). */
dtype quantize_fit(dtype to, int64_t cols);

/* Writes model m (read from in_path) as a GGUF file of llama.cpp's layout;
 * mix: llama.cpp's "_M" mix over `mat` (RWKV_QUANT_Q4_K_M). */
rwkv_status quantize_gguf(const rwkv_model *m, const char *in_path, const char *out_path, dtype mat, dtype head,
                          int mix, const char *tokenizer, rwkv_error *err);

#endif
