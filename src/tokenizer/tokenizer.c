/* Public tokenizer functions: loading (kind detected from the content),
 * encode dispatch, decoding through the per-id byte table. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "tokenizer/tokenizer_internal.h"

/* Tokenizer files are a few MB (a 256k-token tokenizer.json about 35 MB);
 * refuse anything absurd before reading it. */
#define TOK_MAX_FILE_BYTES ((size_t)256 << 20)

void rwkv_free(void *p) { free(p); }

static rwkv_status read_file(const char *path, char **data, size_t *len, rwkv_error *err) {
    /* a FIFO is allowed: a tokenizer may come from a pipe (bash's <(...)) */
    return read_file_or_fifo(path, TOK_MAX_FILE_BYTES, "tokenizer file", data, len, err);
}

void rwkv_tokenizer_free(rwkv_tokenizer *tok) {
    if (!tok) return;
    tok_neox_free(tok->neox);
    tok_world_free(tok->world);
    free(tok->blob);
    free(tok->off);
    free(tok);
}

rwkv_status rwkv_tokenizer_new_bytes(rwkv_tokenizer **out, rwkv_error *err) {
    if (!out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_tokenizer_new_bytes: out is NULL");
    *out = NULL;
    rwkv_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory creating the byte tokenizer");
    rwkv_status st = tok_bytes_init(tok, err);
    if (st) {
        rwkv_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return rwkv_ok(err);
}

rwkv_status rwkv_tokenizer_load(const char *path, rwkv_tokenizer **out, rwkv_error *err) {
    if (!out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_tokenizer_load: out is NULL");
    *out = NULL;
    if (!path || !*path) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_tokenizer_load: no path given");
    if (strcmp(path, "bytes") == 0) return rwkv_tokenizer_new_bytes(out, err);

    char *data = NULL;
    size_t len = 0;
    rwkv_status st = read_file(path, &data, &len, err);
    if (st) return st;
    rwkv_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        free(data);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t i = 0;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) i = 3; /* UTF-8 BOM */
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n')) i++;
    if (i < len && data[i] == '{') {
        st = tok_neox_load(tok, data, len, path, err);
    } else if (i < len && data[i] >= '0' && data[i] <= '9') {
        st = tok_world_load(tok, data, len, path, err);
    } else {
        st = rwkv_fail(err, RWKV_ERR_FORMAT,
                       "%s: not a tokenizer: expected a tokenizer.json object or World vocabulary "
                       "lines '<id> <literal> <nbytes>'", path);
    }
    free(data);
    if (st) {
        rwkv_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return rwkv_ok(err);
}

const char *rwkv_tokenizer_kind(const rwkv_tokenizer *tok) {
    if (!tok) return "none";
    switch (tok->kind) {
    case TOK_BYTES: return "bytes";
    case TOK_NEOX: return "neox";
    case TOK_WORLD: return "world";
    }
    return "unknown";
}

int rwkv_tokenizer_vocab_size(const rwkv_tokenizer *tok) { return tok ? tok->vocab_size : 0; }

const char *rwkv_tokenizer_token(const rwkv_tokenizer *tok, int id, size_t *len) {
    if (!tok || id < 0 || id >= tok->vocab_size) return NULL;
    *len = tok->off[id + 1] - tok->off[id];
    return tok->blob + tok->off[id];
}
int rwkv_tokenizer_eos(const rwkv_tokenizer *tok) { return tok ? tok->eos : -1; }

rwkv_status rwkv_tokenize(const rwkv_tokenizer *tok, const char *text, size_t len,
                          int **ids, size_t *n_ids, rwkv_error *err) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!tok || !ids || !n_ids || (!text && len))
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_tokenize: NULL argument");
    tok_ids out = {0};
    rwkv_status st;
    switch (tok->kind) {
    case TOK_NEOX: st = tok_neox_encode(tok, text, len, &out, err); break;
    case TOK_WORLD: st = tok_world_encode(tok, text, len, &out, err); break;
    default: st = tok_bytes_encode(tok, text, len, &out, err); break;
    }
    if (st) {
        free(out.v);
        return st;
    }
    *ids = out.v;
    *n_ids = out.n;
    return rwkv_ok(err);
}

rwkv_status rwkv_detokenize(const rwkv_tokenizer *tok, const int *ids, size_t n,
                            char **text, size_t *len, rwkv_error *err) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!tok || !text || !len || (!ids && n))
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_detokenize: NULL argument");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->vocab_size)
            return rwkv_fail(err, RWKV_ERR_ARG, "detokenize: id %d at position %zu is outside the %s vocabulary [0, %d)",
                             ids[i], i, rwkv_tokenizer_kind(tok), tok->vocab_size);
        size_t k = tok->off[ids[i] + 1] - tok->off[ids[i]];
        if (total > SIZE_MAX - 1 - k) return rwkv_fail(err, RWKV_ERR_NOMEM, "detokenize: output too large");
        total += k;
    }
    char *s = malloc(total + 1);
    if (!s) return rwkv_fail(err, RWKV_ERR_NOMEM, "detokenize: out of memory for %zu bytes", total);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t a = tok->off[ids[i]], k = tok->off[ids[i] + 1] - a;
        memcpy(s + o, tok->blob + a, k);
        o += k;
    }
    s[o] = '\0';
    *text = s;
    *len = o;
    return rwkv_ok(err);
}
