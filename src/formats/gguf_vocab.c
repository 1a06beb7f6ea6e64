/* The World vocabulary inside llama.cpp's RWKV GGUF files
 * (formats/gguf_rwkv.h). The converter stores each token as the text of
 * Python's repr() of its bytes without the b'' around it, so a token is
 * unescaped here as llama.cpp's tokenizer does: \t \n \r, \xNN, and a
 * backslash before any other character stands for that character. */
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/gguf_rwkv.h"

enum { TOKEN_NORMAL = 1, TOKEN_CONTROL = 3 }; /* llama.cpp's token types */

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Unescapes s[0..n) into out (room for n bytes); -1 on a broken \x escape. */
static long unescape(const char *s, uint64_t n, char *out) {
    long o = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 == n) {
            out[o++] = s[i];
            continue;
        }
        char e = s[++i];
        if (e == 'x') {
            int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1, lo = i + 2 < n ? hex_digit(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) return -1;
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : e;
        }
    }
    return o;
}

size_t gguf_escape_token(const unsigned char *t, size_t n, char *out) {
    int has_single = memchr(t, '\'', n) != NULL, has_double = memchr(t, '"', n) != NULL;
    const char quote = has_single && !has_double ? '"' : '\''; /* repr's choice of delimiter */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = t[i];
        if (b == '\\' || b == (unsigned char)quote) out[o++] = '\\', out[o++] = (char)b;
        else if (b == '\t') out[o++] = '\\', out[o++] = 't';
        else if (b == '\n') out[o++] = '\\', out[o++] = 'n';
        else if (b == '\r') out[o++] = '\\', out[o++] = 'r';
        else if (b < 0x20 || b >= 0x7f) out[o++] = '\\', out[o++] = 'x', out[o++] = hex[b >> 4], out[o++] = hex[b & 15];
        else out[o++] = (char)b;
    }
    out[o] = '\0';
    return o;
}

static rwkv_status vocab_arrays(const char *path, const gguf_file *g, const gguf_kv **tokens, const gguf_kv **types,
                                rwkv_error *err) {
    const gguf_kv *model = gguf_find(g, "tokenizer.ggml.model");
    if (!model || model->type != GGUF_STRING || model->len != 4 || memcmp(model->str, "rwkv", 4) != 0)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: the GGUF file carries no RWKV World vocabulary "
                         "(tokenizer.ggml.model is not \"rwkv\"); give a tokenizer file", path);
    *tokens = gguf_find(g, "tokenizer.ggml.tokens");
    *types = gguf_find(g, "tokenizer.ggml.token_type");
    if (!*tokens || (*tokens)->type != GGUF_ARRAY || (*tokens)->elem != GGUF_STRING || (*tokens)->count < 2 ||
        (*tokens)->count > (1u << 22))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: GGUF tokenizer.ggml.tokens must be an array of strings", path);
    if (!*types || (*types)->type != GGUF_ARRAY || (*types)->elem != GGUF_I32 || (*types)->count != (*tokens)->count)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: GGUF tokenizer.ggml.token_type must be an i32 array as long as "
                         "the token list", path);
    return RWKV_OK;
}

rwkv_status gguf_world_vocab(const char *path, const uint8_t *p, uint64_t size, char **bytes, uint32_t **offsets,
                             int *n_ids, rwkv_error *err) {
    gguf_file g;
    rwkv_status s = gguf_parse(path, p, size, &g, err);
    if (s != RWKV_OK) return s;
    const gguf_kv *tokens = NULL, *types = NULL;
    s = vocab_arrays(path, &g, &tokens, &types, err);
    const uint8_t *type_at = s == RWKV_OK ? p + types->at + 12 : NULL;
    if (s == RWKV_OK && (int32_t)rd_u32(type_at) != TOKEN_CONTROL)
        s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: GGUF World vocabulary: token 0 must be the control token <s>", path);
    int n = 1; /* ids 1 .. n - 1: the NORMAL tokens after <s> */
    while (s == RWKV_OK && (uint64_t)n < tokens->count && (int32_t)rd_u32(type_at + 4 * (uint64_t)n) == TOKEN_NORMAL) n++;
    char *b = NULL;
    uint32_t *off = NULL;
    if (s == RWKV_OK) {
        uint64_t text_bytes = 0;
        gguf_string_iter it;
        gguf_strings_begin(p, tokens, &it);
        for (int i = 0; i < n; i++) {
            const char *str;
            uint64_t len;
            gguf_strings_next(&it, &str, &len);
            text_bytes += len;
        }
        b = malloc(text_bytes + 1);
        off = malloc(sizeof *off * ((size_t)n + 1));
        if (!b || !off || text_bytes > UINT32_MAX) s = rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    }
    if (s == RWKV_OK) {
        gguf_string_iter it;
        gguf_strings_begin(p, tokens, &it);
        off[0] = off[1] = 0;
        for (int i = 0; i < n && s == RWKV_OK; i++) {
            const char *str;
            uint64_t len;
            gguf_strings_next(&it, &str, &len);
            if (i == 0) continue; /* <s>: end of text, decodes to nothing */
            long got = unescape(str, len, b + off[i]);
            if (got <= 0)
                s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: GGUF World token %d is empty or has a broken \\x escape "
                              "(offset %llu)", path, i, (unsigned long long)((const uint8_t *)str - p));
            else
                off[i + 1] = off[i] + (uint32_t)got;
        }
    }
    gguf_free(&g);
    if (s != RWKV_OK) {
        free(b);
        free(off);
        return s;
    }
    *bytes = b;
    *offsets = off;
    *n_ids = n;
    return RWKV_OK;
}
