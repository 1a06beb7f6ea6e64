/* Writer of rwkv.cpp model files (ggmf container, file version 101; layout
 * in docs/formats.md and docs/quantization.md). */
#ifndef RWKV_RWKVCPP_WRITE_H
#define RWKV_RWKVCPP_WRITE_H

#include "core/tensor.h"

/* Writes the header and then every tensor as given (types f32, f16 or a
 * ggml block type; shapes in PyTorch order, written reversed as ggml dims;
 * 1 to 3 dims), atomically. The caller applies rwkv.cpp's value conventions
 * (squeezed time_* vectors, RWKV-4 time_decay as -exp(θ)). */
rwkv_status rwkvcpp_write(const char *path, const tensor *tensors, int count, int n_vocab, int n_embd,
                          int n_layer, dtype file_type, rwkv_error *err);

#endif
