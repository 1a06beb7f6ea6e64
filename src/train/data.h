/* Training data: token files, the train/validation split, the seeded random
 * windows of ctx+1 tokens and the fixed validation windows.
 *
 * Token file (little-endian): 32-byte header
 *   0  "RWKVTOK\0"   8  u32 version (1)   12 u32 bytes per token (2 or 4)
 *   16 u32 vocabulary size (every token is below it)   20 u32 0
 *   24 u64 token count
 * then the tokens. The byte-level tokenizer maps each byte of a text to the
 * token of the same value (vocabulary 256, stored as uint16). */
#ifndef RWKV_TRAIN_DATA_H
#define RWKV_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/rng.h"

#define TOKEN_FILE_MAGIC "RWKVTOK"
#define TOKEN_FILE_HEADER 32

/* The data order's random numbers (rng.h); the whole state is saved. */
typedef rng train_rng;

/* 1 when the mapped bytes start like a token file. */
int token_file_detect(const uint8_t *p, size_t size);

/* Writes a text file as byte-level tokens (atomically). */
rwkv_status tokenize_bytes_file(const char *text_path, const char *token_path, rwkv_error *err);

/* Writes a text file as the tokens of a tokenizer (rwkv_tokenizer_load path,
 * or "bytes"/NULL for the byte level), atomically; the header's vocabulary is
 * the tokenizer's. n_tokens and n_vocab may be NULL. */
rwkv_status tokenize_text_file(const char *text_path, const char *tokenizer, const char *token_path,
                               uint64_t *n_tokens, int *n_vocab, rwkv_error *err);

/* Writes n token ids below n_vocab as a token file (atomically): uint16 when
 * n_vocab <= 65536, else uint32. */
rwkv_status token_file_write(const char *path, const int *ids, size_t n, int n_vocab, rwkv_error *err);

typedef struct token_data {
    mapped_file file;
    const uint8_t *tokens; /* start of the token array in the mapping */
    int token_bytes;       /* 2 or 4 */
    int n_vocab;
    uint64_t n_tokens;
    /* split: train = [0, n_train), validation = [n_train, n_tokens) */
    uint64_t n_train, n_val;
} token_data;

/* Opens a token file and checks every token against its vocabulary. */
rwkv_status token_data_open(const char *path, token_data *d, rwkv_error *err);
void token_data_close(token_data *d);

static inline int token_at(const token_data *d, uint64_t i) {
    const uint8_t *p = d->tokens + i * (uint64_t)d->token_bytes;
    return d->token_bytes == 2 ? (int)rd_u16(p) : (int)rd_u32(p);
}

/* Sets the split: the last round(n * val_fraction) tokens are held out.
 * Fails unless the training part holds a window of ctx+1 tokens and (with a
 * non-zero fraction) the validation part does too. */
rwkv_status token_data_split(token_data *d, double val_fraction, int ctx, const char *path,
                             rwkv_error *err);

/* Draws B random training windows of T+1 tokens: inputs[b][t] = tok[s_b + t],
 * targets[b][t] = tok[s_b + t + 1], with s_b uniform over the training part. */
void data_random_batch(const token_data *d, train_rng *rng, int B, int T, int *inputs, int *targets);

/* The fixed validation windows: non-overlapping windows of T+1 tokens that
 * tile the validation part, `want` of them evenly spread (0 or too many: all).
 * Returns the count written into starts (allocated; NULL when 0). */
int64_t data_val_windows(const token_data *d, int T, int64_t want, uint64_t **starts);

/* Copies window starting at `start` into inputs/targets [T]. */
void data_window(const token_data *d, uint64_t start, int T, int *inputs, int *targets);

#endif
