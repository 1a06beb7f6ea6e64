/* Loading helpers the RWKV version files (model/rwkv4.c ... rwkv7.c) build
 * their weights with, and the version detection that picks the file. */
#ifndef RWKV_MODEL_LOAD_H
#define RWKV_MODEL_LOAD_H

#include "model/model.h"

/* Version detection from the tensor names and shapes (docs §4.6). Returns
 * "4", "5.0", "5.1", "5.2", "6" or "7". */
const char *model_detect_version(const tensor_set *set);

/* The GroupNorm epsilon of ln_x for a file of `format` ("safetensors", "pth",
 * "rwkv.cpp") holding an RWKV-`version` model: 64e-5 for the official
 * checkpoints (training computes GroupNorm(y/8) with eps 1e-5, which is
 * GN(y) with eps 64e-5), 1e-5 for rwkv.cpp's v5 files (rwkv.cpp computes them
 * so); rwkv.cpp's v6/v7 use 64e-5 too. See docs/rwkv-versions.md. */
float model_group_norm_eps(const char *format, const char *version);

const tensor *model_tensor(const tensor_set *set, const char *name, rwkv_error *err);
/* A float vector of exactly n elements (any stored shape with n elements),
 * converted to an owned f32 buffer. NULL + err on mismatch. */
float *model_vector(tensor_set *set, const char *name, int64_t n, rwkv_error *err);
/* A 2-D matrix [rows, cols] kept in its stored dtype. */
rwkv_status model_matrix(const tensor_set *set, const char *name, int64_t rows, int64_t cols,
                         matrix *out, rwkv_error *err);
/* When set->pack_panels and m is f32, f16 or bf16 (where the active kernels
 * read bf16 panels): m's weights also packed once
 * as the matrix-matrix kernels' panels (matrix.panels, owned by the set),
 * so that sequence mode and the batched decode stop repacking them on
 * every call. Otherwise nothing. */
rwkv_status model_pack_panels(tensor_set *set, matrix *m, rwkv_error *err);
/* When set->group_rows (decode on the CPU), m is f32 with rows of whole
 * 64-byte lines and its data is not on a line (a mapped safetensors file
 * does not pad its tensors): m's rows copied to lines owned by the set. The
 * f32 decode kernels read aligned lines and put every element back in its
 * place with a permute (the sums must not depend on where a row lies), which
 * costs a tenth of the time when the rows start mid-line (docs/perf.md,
 * changes 23 and 32). Otherwise nothing. */
rwkv_status model_align_rows(tensor_set *set, matrix *m, rwkv_error *err);
/* When set->group_rows and the active kernels' decode reads m 16 rows at a
 * time (matvec_reads_groups, kernels/row_groups.h): m's
 * rows also kept in that layout (matrix.groups, owned by the set).
 * Otherwise nothing. */
rwkv_status model_group_rows(tensor_set *set, matrix *m, rwkv_error *err);
/* 1 + the largest N of the blocks.N.* tensors (0 when there are none). */
int model_layer_count(const tensor_set *set);
/* `count` low-rank matrices stored [in, out] (count == 1) or [count, in, out]
 * and applied as x @ M (docs §0), as nn.Linear-style matrices out[c] = [out
 * rows, in cols] for matmul/matvec: the file's own rows where its reader kept
 * them (model_lora_reads_stored), f16 and bf16 transposed in their type,
 * anything else as owned float32. */
rwkv_status model_lora(tensor_set *set, const char *name, int count, int64_t in, int64_t out, matrix *outm,
                       rwkv_error *err);
/* Whether model_lora takes LoRA t from its file's rows (t->stored_rows, of
 * whole blocks along the input). */
int model_lora_reads_stored(const tensor *t);

#endif
