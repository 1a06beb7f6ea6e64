/* Internal pieces shared by the tokenizer files (src/tokenizer/).
 *
 * Every tokenizer keeps, besides its encoder, one table of the bytes each id
 * decodes to (blob + offsets); rwkv_detokenize and the streaming decoder use
 * only that table, so they are the same code for every kind. */
#ifndef RWKV_TOKENIZER_INTERNAL_H
#define RWKV_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/strmap.h"
#include "rwkv_tokenizer.h"
#include "tokenizer/buffers.h"
#include "tokenizer/utf8.h"

typedef enum tok_kind { TOK_BYTES = 0, TOK_NEOX, TOK_WORLD } tok_kind;

typedef struct neox_model neox_model;   /* bpe_neox.c */
typedef struct world_model world_model; /* world.c */

struct rwkv_tokenizer {
    tok_kind kind;
    int vocab_size; /* ids are 0..vocab_size-1 */
    int eos;        /* -1: none */
    /* Decode table: id i decodes to blob[off[i] .. off[i+1]). */
    char *blob;
    uint32_t *off;  /* vocab_size + 1 entries */
    neox_model *neox;
    world_model *world;
};

/* ---- pretokenize.c: the GPT-2 pre-tokenizer. s[0..n) is valid UTF-8 and
 * i < n the start of a pre-token; returns the end of that pre-token. */
size_t tok_gpt2_pretoken_end(const unsigned char *s, size_t n, size_t i);

/* ---- loaders: take ownership of nothing; fill tok on success. `name` is the
 * file name used in error messages. */
rwkv_status tok_neox_load(rwkv_tokenizer *tok, const char *data, size_t len,
                          const char *name, rwkv_error *err);
rwkv_status tok_world_load(rwkv_tokenizer *tok, const char *data, size_t len,
                           const char *name, rwkv_error *err);
rwkv_status tok_bytes_init(rwkv_tokenizer *tok, rwkv_error *err);
void tok_neox_free(neox_model *m);
void tok_world_free(world_model *m);

/* ---- encoders: append ids to out. */
rwkv_status tok_neox_encode(const rwkv_tokenizer *tok, const char *text, size_t len,
                            tok_ids *out, rwkv_error *err);
rwkv_status tok_world_encode(const rwkv_tokenizer *tok, const char *text, size_t len,
                             tok_ids *out, rwkv_error *err);
rwkv_status tok_bytes_encode(const rwkv_tokenizer *tok, const char *text, size_t len,
                             tok_ids *out, rwkv_error *err);

#endif
