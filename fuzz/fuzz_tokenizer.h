/* Shared body of the tokenizer fuzz targets: load a tokenizer from the input
 * bytes with one reader, then encode and decode a fixed text with it. */
#ifndef RWKV_FUZZ_TOKENIZER_H
#define RWKV_FUZZ_TOKENIZER_H

#include "fuzz_file.h"
#include "tokenizer/tokenizer_internal.h"

typedef rwkv_status (*fuzz_tok_loader)(rwkv_tokenizer *tok, const char *data, size_t len, const char *name,
                                       rwkv_error *err);

/* Encodes a text that touches every pre-tokenizer class and decodes the ids
 * back; any failure must keep the error contract. */
static inline void fuzz_use_tokenizer(const rwkv_tokenizer *tok) {
    static const char text[] = "Hello, world! It's 2024:\n\n  indented\ttab <|endoftext|> caf\xc3\xa9 \xe4\xb8\xad 123";
    int *ids = NULL;
    size_t n = 0;
    rwkv_error err;
    rwkv_status s = rwkv_tokenize(tok, text, sizeof text - 1, &ids, &n, &err);
    fuzz_check_error(s, &err, NULL);
    if (s == RWKV_OK) {
        char *back = NULL;
        size_t len = 0;
        s = rwkv_detokenize(tok, ids, n, &back, &len, &err);
        fuzz_check_error(s, &err, NULL);
        if (s == RWKV_OK) fuzz_sink += (unsigned)len;
        rwkv_free(back);
    }
    rwkv_free(ids);
}

static inline int fuzz_tokenizer(fuzz_tok_loader load, const uint8_t *data, size_t size) {
    char *text = fuzz_text(data, size);
    rwkv_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) abort();
    rwkv_error err;
    rwkv_status s = load(tok, text, size, "fuzz-input", &err);
    fuzz_check_error(s, &err, "fuzz-input");
    if (s == RWKV_OK) fuzz_use_tokenizer(tok);
    rwkv_tokenizer_free(tok);
    free(text);
    return 0;
}

#endif
