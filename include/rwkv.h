/*
 * rwkv.h — the public API of rwkv.c.
 *
 * Conventions (the same everywhere in this header):
 *  - Handles are opaque. Whatever a function returns through an `out`
 *    pointer is owned by the caller and released with the matching _free().
 *  - Every fallible call returns an rwkv_status and, when `err` is not NULL,
 *    fills it with the same code and a one-line, human-readable message that
 *    names the file, field or offset at fault. `err` may always be NULL.
 *  - The library never prints and never exits the process.
 *  - Logits and states are float32.
 *
 * Companion headers, each self-contained: rwkv_tokenizer.h (byte-level,
 * GPT-NeoX BPE, World), rwkv_sample.h (ChatRWKV sampling), rwkv_train.h
 * (training and init), rwkv_eval.h (perplexity, LAMBADA), rwkv_quant.h,
 * rwkv_bench.h, rwkv_gpt.h (the transformer baseline), rwkv_recall.h (the
 * synthetic recall probe).
 */
#ifndef RWKV_H
#define RWKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rwkv_status {
    RWKV_OK = 0,
    RWKV_ERR_IO,          /* open/read/write/mmap failed */
    RWKV_ERR_FORMAT,      /* the bytes are not what the format says they must be */
    RWKV_ERR_UNSUPPORTED, /* a valid file of a kind we do not handle (yet) */
    RWKV_ERR_SHAPE,       /* tensors missing or of the wrong shape/dtype */
    RWKV_ERR_NOMEM,       /* an allocation failed or would be absurdly large */
    RWKV_ERR_ARG,         /* a bad argument from the caller */
    RWKV_ERR_NUMERIC      /* a non-finite value where a finite one is required */
} rwkv_status;

#define RWKV_ERROR_MESSAGE_MAX 512
typedef struct rwkv_error {
    rwkv_status code;
    char message[RWKV_ERROR_MESSAGE_MAX];
} rwkv_error;

/* A short constant name for a status ("format error", ...). */
const char *rwkv_status_name(rwkv_status status);

/* ------------------------------------------------------------------------ */
/* Models                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct rwkv_model rwkv_model;
typedef struct rwkv_state rwkv_state;

typedef struct rwkv_model_info {
    const char *format;      /* "safetensors", "pth" or "rwkv.cpp" */
    const char *version;     /* RWKV version, e.g. "4" */
    const char *dtype;       /* weight storage type: "f32", "f16", "bf16" or "mixed" */
    int n_vocab, n_embd, n_layer, n_ffn, dim_att;
    int head_size, n_head;   /* 0 for RWKV-4 */
    int64_t n_params;        /* elements over all tensors */
    int64_t file_bytes;
    int64_t weight_bytes;    /* bytes of the weights as held in memory */
    size_t state_floats;     /* floats in one rwkv_state */
    /* RWKV-5/6/7 additions (0 where a version has none): */
    int d_mix_lora;          /* v6: token-shift LoRA rank (time_maa_w1 is [C, 5*d_mix_lora]) */
    int d_decay_lora;        /* v6: time_decay_w1 columns; v7: w1 columns */
    int d_aaa_lora, d_mv_lora, d_gate_lora; /* v7: a1, v1, g1 columns */
    float gn_eps;            /* epsilon of the per-head GroupNorm ln_x, set by the file's origin */
} rwkv_model_info;

/* Loads a checkpoint; the format is detected from the file's bytes:
 * safetensors, PyTorch .pth (zip) or rwkv.cpp's ggmf files. Weights stay in
 * the file's dtype (mapped from the file where the layout allows). */
rwkv_status rwkv_model_load(const char *path, rwkv_model **out, rwkv_error *err);
void rwkv_model_free(rwkv_model *model);
void rwkv_model_get_info(const rwkv_model *model, rwkv_model_info *info);

/* Which architecture a checkpoint holds, read from its tensor names (the file
 * is opened and its format parsed, but no model is built): an RWKV model
 * (rwkv_model_load) or the GPT baseline written by `rwkv train --arch gpt`
 * (rwkv_gpt_load, rwkv_gpt.h). A file that cannot be read is the same error
 * rwkv_model_load would give. */
typedef enum rwkv_arch {
    RWKV_ARCH_RWKV = 0,
    RWKV_ARCH_GPT = 1
} rwkv_arch;
rwkv_status rwkv_checkpoint_arch(const char *path, rwkv_arch *arch, rwkv_error *err);

/* Worker threads used by this model's evaluation (default: all cores). */
void rwkv_model_set_threads(rwkv_model *model, int n_threads);

/* A fresh recurrent state for `model`. Layout of the float32 data, RWKV-4:
 * per layer l, five vectors att_xx[C], att_aa[A], att_bb[A], att_pp[A],
 * ffn_xx[C] (docs/rwkv-architecture.md §1.4); fresh: att_pp = -1e38, rest 0.
 * RWKV-5/6/7: per layer att_xx[C], S[H][N][N] (S[h][value i][key j]),
 * ffn_xx[C], i.e. (N+2)*C floats when A = C; fresh: all zeros. */
rwkv_status rwkv_state_new(const rwkv_model *model, rwkv_state **out, rwkv_error *err);
void rwkv_state_free(rwkv_state *state);
void rwkv_state_reset(rwkv_state *state);
rwkv_status rwkv_state_copy(rwkv_state *dst, const rwkv_state *src, rwkv_error *err);
size_t rwkv_state_size(const rwkv_state *state);   /* in floats */
float *rwkv_state_data(rwkv_state *state);          /* read/write view */

/* RNN mode: feed one token, update the state, write n_vocab logits
 * (logits may be NULL when they are not needed). */
rwkv_status rwkv_eval(rwkv_model *model, rwkv_state *state, int token,
                      float *logits, rwkv_error *err);

/* Sequence mode: feed n tokens at once from the given state (matrix-matrix
 * products). With all_logits, logits receives n*n_vocab floats (position-major);
 * otherwise only the last position's n_vocab logits. logits may be NULL. */
rwkv_status rwkv_eval_sequence(rwkv_model *model, rwkv_state *state,
                               const int *tokens, size_t n, float *logits,
                               int all_logits, rwkv_error *err);

/* ------------------------------------------------------------------------ */
/* Checkpoint conversion                                                    */
/* ------------------------------------------------------------------------ */

typedef enum rwkv_dtype {
    RWKV_DTYPE_KEEP = 0,  /* keep every tensor's dtype */
    RWKV_DTYPE_F32,
    RWKV_DTYPE_F16,
    RWKV_DTYPE_BF16
} rwkv_dtype;

/* Writes any loadable checkpoint as safetensors with the official RWKV key
 * names and raw parameter values, atomically (temp file + rename). */
rwkv_status rwkv_convert_to_safetensors(const char *in_path, const char *out_path,
                                        rwkv_dtype dtype, rwkv_error *err);

/* ------------------------------------------------------------------------ */
/* State files (src/model/state_file.c; format in docs/generation.md)       */
/* ------------------------------------------------------------------------ */

/* A 64-bit fingerprint of the model's weights: every tensor's name, dtype and
 * shape, and a fixed sample of its bytes (all of a small tensor; the first
 * and last 4 KiB and 16 strided 1 KiB blocks of a large one). Independent of
 * the order in which the file lists the tensors. Cheap even for big models,
 * but computed on every call: cache it if you need it often. */
uint64_t rwkv_model_fingerprint(const rwkv_model *model);

/* Writes the state to `path` atomically (temp file + fsync + rename): a
 * header binding it to the model (RWKV version, V/C/L/F/A, state size, the
 * weight fingerprint, a checksum of the data), then the floats. */
rwkv_status rwkv_state_save(const rwkv_state *state, const char *path, rwkv_error *err);

/* Reads a state written by rwkv_state_save into `state`. A file of another
 * model (version, shape or fingerprint), a truncated or corrupted file is an
 * error with a one-line message, and `state` is then left unchanged. */
rwkv_status rwkv_state_load(rwkv_state *state, const char *path, rwkv_error *err);

#ifdef __cplusplus
}
#endif
#endif /* RWKV_H */
