/*
 * rwkv_gpt.h — the GPT baseline (a GPT-2-style transformer, src/model/gpt.h)
 * for inference: load a checkpoint written by `rwkv train --arch gpt` (or
 * rwkv_init_checkpoint with arch "gpt"), decode one token at a time with a
 * KV cache, or run the whole-sequence forward. It exists so that RWKV can
 * be compared with a transformer by the same code base (docs/results.md).
 *
 * Same conventions as rwkv.h: opaque handle, every fallible call returns an
 * rwkv_status and fills `err` (may be NULL); the library never prints.
 * A handle holds the weights and ONE sequence's KV cache: decode calls
 * advance that sequence; rwkv_gpt_reset starts a new one.
 */
#ifndef RWKV_GPT_H
#define RWKV_GPT_H

#include <stddef.h>
#include <stdint.h>

#include "rwkv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rwkv_gpt rwkv_gpt;

typedef struct rwkv_gpt_info {
    int n_vocab, n_embd, n_layer, n_head, n_ffn;
    int n_ctx;          /* positions of the position table: the longest sequence */
    int64_t n_params;   /* all weights, the position table included */
    int64_t n_params_pos; /* of which the position table (n_ctx x n_embd) */
} rwkv_gpt_info;

/* Loads a GPT checkpoint (safetensors or any format rwkv_model_load reads,
 * with the tensor names of src/model/gpt.h and "config.n_head"); the
 * weights are converted to float32. */
rwkv_status rwkv_gpt_load(const char *path, rwkv_gpt **out, rwkv_error *err);
void rwkv_gpt_free(rwkv_gpt *gpt);
void rwkv_gpt_get_info(const rwkv_gpt *gpt, rwkv_gpt_info *info);

/* Worker threads of the matrix-vector products and the attention heads
 * (default: all cores; <= 0: all cores). Results do not depend on it. */
void rwkv_gpt_set_threads(rwkv_gpt *gpt, int n_threads);

/* Feeds one token at position rwkv_gpt_pos(), appends its keys and values
 * to the cache and writes n_vocab logits (logits may be NULL).
 * RWKV_ERR_ARG when the sequence already holds n_ctx tokens or the token is
 * outside [0, n_vocab). */
rwkv_status rwkv_gpt_eval(rwkv_gpt *gpt, int token, float *logits, rwkv_error *err);

/* Starts a new sequence (position 0); the cache memory is kept. */
void rwkv_gpt_reset(rwkv_gpt *gpt);
/* Tokens in the current sequence. */
int rwkv_gpt_pos(const rwkv_gpt *gpt);

/* KV-cache memory: *used = bytes of keys and values of the tokens fed so far
 * (2 x n_layer x pos x n_embd floats), *allocated = bytes reserved (the
 * cache grows by doubling up to n_ctx). Either pointer may be NULL. */
void rwkv_gpt_cache_bytes(const rwkv_gpt *gpt, size_t *used, size_t *allocated);

/* The whole-sequence forward of tokens[0..n-1] from position 0 (the
 * training code's forward; it neither reads nor changes the KV cache):
 * logits receives n x n_vocab floats, position-major. 1 <= n <= n_ctx.
 * The activation memory of the last call is kept for the next call of the
 * same length (windows of a text; released by rwkv_gpt_free).
 * Perplexity and LAMBADA over it: rwkv_eval.h. */
rwkv_status rwkv_gpt_forward(rwkv_gpt *gpt, const int *tokens, size_t n, float *logits, rwkv_error *err);

#ifdef __cplusplus
}
#endif
#endif /* RWKV_GPT_H */
