/* The byte-level tokenizer: id b is the byte b (0..255); no end-of-text id. */
#include <stdlib.h>

#include "tokenizer/tokenizer_internal.h"

rwkv_status tok_bytes_init(rwkv_tokenizer *tok, rwkv_error *err) {
    tok->kind = TOK_BYTES;
    tok->vocab_size = 256;
    tok->eos = -1;
    tok->blob = malloc(256);
    tok->off = malloc(257 * sizeof *tok->off);
    if (!tok->blob || !tok->off) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory creating the byte tokenizer");
    for (int i = 0; i < 256; i++) {
        tok->blob[i] = (char)(unsigned char)i;
        tok->off[i] = (uint32_t)i;
    }
    tok->off[256] = 256;
    return RWKV_OK;
}

rwkv_status tok_bytes_encode(const rwkv_tokenizer *tok, const char *text, size_t len,
                             tok_ids *out, rwkv_error *err) {
    (void)tok;
    if (tok_ids_reserve(out, len)) return rwkv_fail(err, RWKV_ERR_NOMEM, "tokenize: out of memory for %zu ids", len);
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len; i++) out->v[out->n++] = s[i];
    return RWKV_OK;
}
