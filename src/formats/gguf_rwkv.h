/* llama.cpp's RWKV-6 and RWKV-7 GGUF files <-> official RWKV checkpoints
 * (docs/formats.md "GGUF"). llama.cpp's converter renames every tensor,
 * stacks the token-shift mixes into one `time_mix_lerp_fused`, transposes
 * the LoRA matrices, squeezes [1, 1, C] vectors, flattens v7's r_k, gives
 * v7's block 0 dummy v0/v1/v2 and (v6) may divide att.output/ffn.value by
 * 2^(block / rescale_every). One table per version lists these, read in one
 * direction by the reader (gguf_read) and in the other by the writer
 * (tools/quantize.c through gguf_rwkv_name). */
#ifndef RWKV_GGUF_RWKV_H
#define RWKV_GGUF_RWKV_H

#include <stddef.h>

#include "core/tensor.h"

typedef enum gguf_rwkv_op {
    GR_KEEP,      /* same values, same shape */
    GR_VEC3,      /* official [1, 1, C], stored squeezed to [C] */
    GR_TRANSPOSE, /* last two axes swapped */
    GR_HEADS,     /* official [H, N], stored flat [H*N] (v7 r_k) */
    GR_PER_HEAD,  /* [H, N] in both (v6 time_faaaa; other sources may shape it otherwise) */
    GR_MIXES,     /* time_mix_lerp_fused: the version's token-shift mixes stacked */
    GR_RESCALED,  /* v6 att.output / ffn.value: divided by 2^(block / rescale_every) */
} gguf_rwkv_op;

typedef struct gguf_rwkv_name {
    const char *gguf;     /* after "blk.N." for layer tensors */
    const char *official; /* after "blocks.N." for layer tensors; for GR_MIXES the prefix of the parts */
    gguf_rwkv_op op;
} gguf_rwkv_name;

/* The layer tensors of `arch` ("rwkv6" or "rwkv7"), with their count; NULL for another architecture. */
const gguf_rwkv_name *gguf_rwkv_layer_names(const char *arch, size_t *count);
/* The whole-model tensors (embedding, ln0, ln_out, head), the same for both. */
const gguf_rwkv_name *gguf_rwkv_global_names(size_t *count);
/* The token-shift mix suffixes stacked in time_mix_lerp_fused, in order (v7: r w k v a g ->
 * att.x_r ...; v6: w k v r g -> att.time_maa_w ...), with their count. */
const char *const *gguf_rwkv_mix_parts(const char *arch, int *count);

/* The World vocabulary of a GGUF file (tokenizer.ggml.model "rwkv",
 * formats/gguf_vocab.c): the token texts unescaped as llama.cpp does; id 0 is
 * the control token <s> (end of text, no bytes), ids 1 .. *n_ids - 1 the
 * NORMAL tokens after it; the [PAD] tokens after those are dropped. *bytes
 * and *offsets (n_ids + 1 entries, as rwkv_tokenizer_new_world takes them)
 * are malloc'd. */
rwkv_status gguf_world_vocab(const char *path, const uint8_t *p, uint64_t size, char **bytes, uint32_t **offsets,
                             int *n_ids, rwkv_error *err);

/* Writes token bytes t[0..n) as llama.cpp's converter stores a World token:
 * the text of Python's repr(bytes) without b'' (\\, \t, \n, \r, \xNN,
 * the quote escaped). out needs 4 n + 1 bytes; returns the length. */
size_t gguf_escape_token(const unsigned char *t, size_t n, char *out);

#endif
