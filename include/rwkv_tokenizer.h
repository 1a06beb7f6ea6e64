/*
 * rwkv_tokenizer.h — tokenizers of rwkv.c (text <-> token ids).
 *
 * Three kinds, picked from the content of the file given to
 * rwkv_tokenizer_load():
 *   "neox"  — GPT-NeoX-20B byte-level BPE, a Hugging Face tokenizer.json with
 *             model.type "BPE" (RWKV-4 Pile and Raven models);
 *   "world" — the RWKV World vocabulary, lines "<id> <python literal> <nbytes>"
 *             (World RWKV-4 and all RWKV-5/6/7 models);
 *   "bytes" — ids 0..255 are the bytes themselves (small test models).
 *
 * Same conventions as rwkv.h: opaque handles, an rwkv_error out-parameter that
 * may be NULL, one-line messages naming the file and line/field at fault; the
 * library never prints. A loaded tokenizer is read-only: one handle may be used
 * from several threads at once.
 */
#ifndef RWKV_TOKENIZER_H
#define RWKV_TOKENIZER_H

#include <stddef.h>

#include "rwkv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rwkv_tokenizer rwkv_tokenizer;

/* Loads a tokenizer; the kind is detected from the file's content (a JSON
 * object -> tokenizer.json, else the World vocabulary format). The path
 * "bytes" (exactly) selects the byte-level tokenizer without opening a file. */
RWKV_API rwkv_status rwkv_tokenizer_load(const char *path, rwkv_tokenizer **out, rwkv_error *err);
/* The byte-level tokenizer: vocabulary 256, no end-of-text token. */
RWKV_API rwkv_status rwkv_tokenizer_new_bytes(rwkv_tokenizer **out, rwkv_error *err);
RWKV_API void rwkv_tokenizer_free(rwkv_tokenizer *tok);

RWKV_API const char *rwkv_tokenizer_kind(const rwkv_tokenizer *tok); /* "bytes", "neox" or "world" */
/* One more than the largest id the tokenizer knows (neox 50277, world 65530,
 * bytes 256). Model embedding tables may be larger (World models: 65536). */
RWKV_API int rwkv_tokenizer_vocab_size(const rwkv_tokenizer *tok);
/* The end-of-text id: 0 for neox ("<|endoftext|>") and world; -1 for bytes. */
RWKV_API int rwkv_tokenizer_eos(const rwkv_tokenizer *tok);

/* Encodes len bytes of text. *ids is allocated (release it with rwkv_free;
 * it may be NULL when *n_ids is 0).
 *  - neox: the text must be valid UTF-8 (RWKV_ERR_ARG naming the byte offset
 *    otherwise). Special tokens ("<|endoftext|>", "<|padding|>") written in
 *    the text are recognised; the text is NFC-normalised; no BOS/EOS is added
 *    (Hugging Face `encode(text, add_special_tokens=False)`).
 *  - world: greedy longest match on the raw bytes; any bytes are accepted.
 *  - bytes: one id per byte. */
RWKV_API rwkv_status rwkv_tokenize(const rwkv_tokenizer *tok, const char *text, size_t len,
                          int **ids, size_t *n_ids, rwkv_error *err);

/* Decodes ids into bytes (*text is allocated, NUL-terminated for convenience,
 * *len excludes the NUL; release with rwkv_free). The bytes are the tokens'
 * bytes concatenated, so they may be invalid UTF-8 when the ids split a
 * character (any kind) or were not produced by rwkv_tokenize (world, bytes).
 * The end-of-text/special tokens (neox ids 0 and 1, world id 0) decode to
 * nothing, as Hugging Face `decode(ids, skip_special_tokens=True)` and the
 * RWKV World tokenizer do. An id outside [0, vocab_size) is RWKV_ERR_ARG. */
RWKV_API rwkv_status rwkv_detokenize(const rwkv_tokenizer *tok, const int *ids, size_t n,
                            char **text, size_t *len, rwkv_error *err);

/* Releases memory returned by rwkv_tokenize / rwkv_detokenize. */
RWKV_API void rwkv_free(void *p);

/* ------------------------------------------------------------------------ */
/* Streaming decoder (generation: one id at a time -> printable text)        */
/* ------------------------------------------------------------------------ */

typedef struct rwkv_token_stream rwkv_token_stream;

/* Flags of rwkv_token_stream_new. */
#define RWKV_STREAM_REPLACE 0 /* default: an ill-formed sequence becomes U+FFFD */
#define RWKV_STREAM_RAW     1 /* pass ill-formed bytes through unchanged */

/* A decoder bound to tok (which must outlive it). After each pushed id it
 * returns the bytes that now form complete UTF-8 characters and holds back an
 * incomplete tail (at most 3 bytes) until a later token completes it.
 * A sequence that can never complete is replaced by one U+FFFD (EF BF BD) per
 * maximal ill-formed subpart — the rule of Python's errors="replace" and
 * Rust's from_utf8_lossy — or, with RWKV_STREAM_RAW, emitted as its raw bytes,
 * so that the concatenated output equals rwkv_detokenize's bytes exactly.
 * In REPLACE mode every output is valid UTF-8. */
RWKV_API rwkv_status rwkv_token_stream_new(const rwkv_tokenizer *tok, int flags,
                                  rwkv_token_stream **out, rwkv_error *err);
/* Feeds one id. *text and *len receive the newly completed bytes (possibly none);
 * the pointer stays valid until the next call on this stream. An id outside
 * [0, vocab_size) is RWKV_ERR_ARG and leaves the stream unchanged. */
RWKV_API rwkv_status rwkv_token_stream_push(rwkv_token_stream *s, int id, const char **text,
                                   size_t *len, rwkv_error *err);
/* Ends the stream: the held-back tail, if any, comes out as U+FFFD (REPLACE)
 * or its raw bytes (RAW); the stream is then empty and may be reused. */
RWKV_API void rwkv_token_stream_flush(rwkv_token_stream *s, const char **text, size_t *len);
/* Bytes currently held back (0..3). */
RWKV_API size_t rwkv_token_stream_pending(const rwkv_token_stream *s);
RWKV_API void rwkv_token_stream_free(rwkv_token_stream *s);

#ifdef __cplusplus
}
#endif
#endif /* RWKV_TOKENIZER_H */
