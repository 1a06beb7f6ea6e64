/* The RWKV World tokenizer (rwkv_vocab_v20230424.txt, docs/model.md §5.2).
 *
 * File: one token per line, "<id> <literal> <nbytes>": id = the text before the
 * first space, nbytes = the integer after the last space, literal = what lies
 * between — a Python string literal ('..' / "..": the token is its UTF-8
 * encoding) or bytes literal (b'..': raw bytes). Ids must run 1, 2, 3, ...;
 * id 0 is the end-of-text token and decodes to nothing. Every single byte must
 * be a token, so encoding never fails.
 *
 * Encoding is greedy longest match over a byte trie. The trie is stored as a
 * direct table for the root's 256 children plus one hash table of edges
 * (parent node, byte) -> child for the deeper levels: the walk costs one probe
 * per byte and the whole structure is a few MB for 65k tokens. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

#define WORLD_MAX_ID (1 << 22)      /* far above any real vocabulary */
#define WORLD_MAX_TOKEN_BYTES 65536 /* real tokens are <= 128 bytes */

struct world_model {
    int32_t root[256]; /* node of each single byte */
    int32_t *token;    /* per node: the id ending there, or -1 */
    size_t n_nodes;
    uint32_t *ekey, *eval; /* edge hash: key = node << 8 | byte; empty = UINT32_MAX */
    uint32_t emask;
    int ebits;
    size_t max_len;
};

void tok_world_free(world_model *m) {
    if (!m) return;
    free(m->token);
    free(m->ekey);
    free(m->eval);
    free(m);
}

static inline uint32_t edge_slot(const world_model *m, uint32_t key) {
    return (uint32_t)((key * 0x9E3779B1u) >> (32 - m->ebits));
}

static inline int32_t edge_get(const world_model *m, uint32_t node, unsigned char b) {
    uint32_t key = node << 8 | b;
    uint32_t i = edge_slot(m, key);
    for (;;) {
        uint32_t k = m->ekey[i];
        if (k == key) return (int32_t)m->eval[i];
        if (k == UINT32_MAX) return -1;
        i = (i + 1) & m->emask;
    }
}

static void edge_put(world_model *m, uint32_t node, unsigned char b, uint32_t child) {
    uint32_t key = node << 8 | b;
    uint32_t i = edge_slot(m, key);
    while (m->ekey[i] != UINT32_MAX) i = (i + 1) & m->emask;
    m->ekey[i] = key;
    m->eval[i] = child;
}

/* ---- literal parsing ---------------------------------------------------- */

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses the Python literal lit[0..n) into out (which has room for 4*n
 * bytes). Returns the byte count, or -1 with a reason in *why. */
static long parse_literal(const char *lit, size_t n, unsigned char *out, char *why, size_t why_size) {
    size_t i = 0;
    int is_bytes = 0;
    if (i < n && (lit[i] == 'b' || lit[i] == 'B')) {
        is_bytes = 1;
        i++;
    }
    if (i >= n || (lit[i] != '\'' && lit[i] != '"')) {
        snprintf(why, why_size, "literal does not start with a quote");
        return -1;
    }
    char q = lit[i++];
    if (n < i + 1 || lit[n - 1] != q) {
        snprintf(why, why_size, "literal does not end with its opening quote %c", q);
        return -1;
    }
    size_t end = n - 1, o = 0;
    while (i < end) {
        unsigned char c = (unsigned char)lit[i];
        if (c == (unsigned char)q) {
            snprintf(why, why_size, "unescaped quote inside the literal at column %zu", i + 1);
            return -1;
        }
        if (c != '\\') {
            if (is_bytes && c >= 0x80) {
                snprintf(why, why_size, "non-ASCII character in a bytes literal");
                return -1;
            }
            out[o++] = c;
            i++;
            continue;
        }
        if (i + 1 >= end) {
            snprintf(why, why_size, "literal ends inside an escape");
            return -1;
        }
        char e = lit[i + 1];
        i += 2;
        long v = -1; /* a code point (text) or byte value (bytes) */
        switch (e) {
        case '\\': v = '\\'; break;
        case '\'': v = '\''; break;
        case '"': v = '"'; break;
        case 'a': v = 7; break;
        case 'b': v = 8; break;
        case 'f': v = 12; break;
        case 'n': v = 10; break;
        case 'r': v = 13; break;
        case 't': v = 9; break;
        case 'v': v = 11; break;
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
            v = e - '0';
            for (int k = 0; k < 2 && i < end && lit[i] >= '0' && lit[i] <= '7'; k++) v = v * 8 + (lit[i++] - '0');
            break;
        case 'x': case 'u': case 'U': {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            if (e != 'x' && is_bytes) {
                snprintf(why, why_size, "escape \\%c is not allowed in a bytes literal", e);
                return -1;
            }
            v = 0;
            for (int k = 0; k < digits; k++) {
                int h = i < end ? hexval((unsigned char)lit[i]) : -1;
                if (h < 0) {
                    snprintf(why, why_size, "escape \\%c needs %d hex digits", e, digits);
                    return -1;
                }
                v = v * 16 + h;
                i++;
            }
            break;
        }
        default:
            if ((unsigned char)e >= 0x20 && (unsigned char)e < 0x7F)
                snprintf(why, why_size, "bad escape \\%c", e);
            else
                snprintf(why, why_size, "bad escape \\ followed by byte 0x%02X", (unsigned char)e);
            return -1;
        }
        if (is_bytes) {
            if (v > 0xFF) {
                snprintf(why, why_size, "escape value %ld does not fit a byte", v);
                return -1;
            }
            out[o++] = (unsigned char)v;
        } else {
            if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
                snprintf(why, why_size, "escape names U+%04lX, which has no UTF-8 encoding", v);
                return -1;
            }
            o += (size_t)tok_utf8_encode((uint32_t)v, (char *)out + o);
        }
    }
    if (!is_bytes) {
        /* The unescaped characters were copied byte for byte: the file must be
         * UTF-8 (the escapes produced valid UTF-8 themselves). */
        if (tok_utf8_valid_prefix(out, o) != o) {
            snprintf(why, why_size, "text literal is not valid UTF-8");
            return -1;
        }
    }
    return (long)o;
}

static int parse_uint(const char *s, size_t n, long max, long *out) {
    if (n == 0 || n > 9) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max) return -1;
    *out = v;
    return 0;
}

/* ---- loading ------------------------------------------------------------ */

/* Pass 2: the trie over ids 1 .. n_ids - 1 (id i = blob[off[i] .. off[i + 1])).
 * Takes ownership of blob and off (kept in tok on success) and of m. */
static rwkv_status world_build(rwkv_tokenizer *tok, world_model *m, char *blob, size_t blob_len, uint32_t *off,
                               int n_ids, const char *name, rwkv_error *err) {
    rwkv_status st;
    tok->world = m;
    /* nodes <= total bytes + 1 */
    size_t max_nodes = blob_len + 1;
    if (max_nodes >= (1u << 24) - 1) {
        st = rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: vocabulary too large (%zu bytes of tokens)", name, blob_len);
        goto fail;
    }
    m->token = malloc(max_nodes * sizeof *m->token);
    m->ebits = 4;
    while (((size_t)1 << m->ebits) < 2 * max_nodes) m->ebits++;
    m->emask = (1u << m->ebits) - 1;
    m->ekey = malloc(((size_t)m->emask + 1) * sizeof *m->ekey);
    m->eval = malloc(((size_t)m->emask + 1) * sizeof *m->eval);
    if (!m->token || !m->ekey || !m->eval) goto nomem;
    memset(m->ekey, 0xFF, ((size_t)m->emask + 1) * sizeof *m->ekey);
    for (int b = 0; b < 256; b++) m->root[b] = -1;
    m->token[0] = -1;
    m->n_nodes = 1;
    for (int id = 1; id < n_ids; id++) {
        const unsigned char *t = (const unsigned char *)blob + off[id];
        size_t tl = off[id + 1] - off[id];
        int32_t node = m->root[t[0]];
        if (node < 0) {
            node = (int32_t)m->n_nodes++;
            m->token[node] = -1;
            m->root[t[0]] = node;
        }
        for (size_t k = 1; k < tl; k++) {
            int32_t c = edge_get(m, (uint32_t)node, t[k]);
            if (c < 0) {
                c = (int32_t)m->n_nodes++;
                m->token[c] = -1;
                edge_put(m, (uint32_t)node, t[k], (uint32_t)c);
            }
            node = c;
        }
        if (m->token[node] >= 0) {
            st = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: id %d has the same bytes as id %d", name, id, m->token[node]);
            goto fail;
        }
        m->token[node] = id;
    }
    for (int b = 0; b < 256; b++) {
        if (m->root[b] < 0 || m->token[m->root[b]] < 0) {
            st = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: no token for the single byte 0x%02X (every byte needs one)", name, b);
            goto fail;
        }
    }
    tok->kind = TOK_WORLD;
    tok->vocab_size = n_ids;
    tok->eos = 0;
    tok->blob = blob;
    tok->off = off;
    return RWKV_OK;

nomem:
    st = rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory loading the vocabulary", name);
fail:
    free(blob);
    free(off);
    tok->world = NULL;
    tok_world_free(m);
    return st;
}


/* What a load of the vocabulary file builds as it reads the lines. */
typedef struct world_reader {
    const char *name;
    rwkv_error *err;
    tok_buf blob;       /* every token's bytes in id order */
    uint32_t *off;      /* id -> start in blob; off[n_off - 1]: the end of the last */
    size_t n_off, cap_off;
    unsigned char *lit; /* a line's literal, decoded */
    size_t lit_cap;
    long prev_id;       /* the id of the line before */
    size_t max_len;     /* the longest token's bytes */
} world_reader;

static rwkv_status reader_nomem(world_reader *r) {
    return rwkv_fail(r->err, RWKV_ERR_NOMEM, "%s: out of memory loading the vocabulary", r->name);
}

/* A line's fields: the id (the next one in order), the literal between the
 * first and the last space (trimmed), the byte count after the last. */
static rwkv_status split_line(world_reader *r, const char *ls, size_t ll, size_t line_no, long *id, long *nbytes,
                              const char **lit, size_t *lit_n) {
    const char *name = r->name;
    const char *sp1 = memchr(ls, ' ', ll);
    const char *sp2 = sp1;
    if (sp1) { /* the last space */
        sp2 = ls + ll - 1;
        while (*sp2 != ' ') sp2--;
    }
    if (!sp1 || sp2 <= sp1)
        return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: line %zu: expected '<id> <literal> <nbytes>'", name, line_no);
    if (parse_uint(ls, (size_t)(sp1 - ls), WORLD_MAX_ID, id))
        return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: line %zu: bad id '%.*s'", name, line_no,
                         (int)((sp1 - ls) > 40 ? 40 : (sp1 - ls)), ls);
    const char *ns = sp2 + 1;
    size_t nn = (size_t)(ls + ll - ns);
    if (parse_uint(ns, nn, WORLD_MAX_TOKEN_BYTES, nbytes))
        return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: line %zu: bad byte count '%.*s'", name, line_no,
                         (int)(nn > 40 ? 40 : nn), ns);
    if (*id == r->prev_id)
        return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: line %zu: duplicate id %ld", name, line_no, *id);
    if (*id != r->prev_id + 1)
        return rwkv_fail(r->err, RWKV_ERR_FORMAT,
                         "%s: line %zu: id %ld out of order (expected %ld: ids must run 1, 2, 3, ...)", name, line_no,
                         *id, r->prev_id + 1);
    const char *lb = sp1 + 1, *le = sp2;
    while (lb < le && (*lb == ' ' || *lb == '\t')) lb++;
    while (le > lb && (le[-1] == ' ' || le[-1] == '\t')) le--;
    *lit = lb, *lit_n = (size_t)(le - lb);
    return RWKV_OK;
}

/* The token of a line: its literal decoded, checked against the byte count
 * and appended to the blob. */
static rwkv_status add_token(world_reader *r, const char *lb, size_t ln, long id, long nbytes, size_t line_no) {
    char why[200];
    if (r->lit_cap < 4 * ln + 4) {
        free(r->lit);
        r->lit_cap = 4 * ln + 4;
        r->lit = malloc(r->lit_cap);
        if (!r->lit) return reader_nomem(r);
    }
    long got = parse_literal(lb, ln, r->lit, why, sizeof why);
    if (got < 0) return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: line %zu (id %ld): %s", r->name, line_no, id, why);
    if (got != nbytes)
        return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: line %zu (id %ld): literal is %ld bytes but the line says %ld",
                         r->name, line_no, id, got, nbytes);
    if (got == 0) return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: line %zu (id %ld): empty token", r->name, line_no, id);
    if (r->blob.n + (size_t)got > UINT32_MAX || tok_buf_append(&r->blob, r->lit, (size_t)got)) return reader_nomem(r);
    if (r->n_off == r->cap_off) {
        uint32_t *o2 = realloc(r->off, 2 * r->cap_off * sizeof *r->off);
        if (!o2) return reader_nomem(r);
        r->off = o2, r->cap_off *= 2;
    }
    r->off[r->n_off++] = (uint32_t)r->blob.n;
    if ((size_t)got > r->max_len) r->max_len = (size_t)got;
    return RWKV_OK;
}

/* Every line into the reader (id 0 is the empty token). */
static rwkv_status read_lines(world_reader *r, const char *data, size_t len) {
    r->cap_off = 1024;
    r->off = malloc(r->cap_off * sizeof *r->off);
    if (!r->off || tok_buf_reserve(&r->blob, 1)) return reader_nomem(r); /* blob.p is never NULL */
    r->off[r->n_off++] = 0; /* start of id 0 */
    r->off[r->n_off++] = 0; /* end of id 0 = start of id 1 */
    size_t pos = 0, line_no = 0;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    while (pos < len) {
        line_no++;
        const char *ls = data + pos;
        const char *nl = memchr(ls, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - ls) : len - pos;
        pos += ll + (nl ? 1 : 0);
        if (ll && ls[ll - 1] == '\r') ll--;
        if (ll == 0) {
            if (pos >= len) break; /* the file's final newline */
            return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: line %zu: empty line", r->name, line_no);
        }
        long id = 0, nbytes = 0;
        const char *lit = NULL;
        size_t lit_n = 0;
        rwkv_status st = split_line(r, ls, ll, line_no, &id, &nbytes, &lit, &lit_n);
        if (st == RWKV_OK) st = add_token(r, lit, lit_n, id, nbytes, line_no);
        if (st != RWKV_OK) return st;
        r->prev_id = id;
    }
    if (r->prev_id == 0) return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: no tokens", r->name);
    return RWKV_OK;
}

rwkv_status tok_world_load(rwkv_tokenizer *tok, const char *data, size_t len,
                           const char *name, rwkv_error *err) {
    world_model *m = calloc(1, sizeof *m);
    if (!m) return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", name);
    tok->world = m;
    world_reader r = {.name = name, .err = err};
    rwkv_status st = read_lines(&r, data, len);
    free(r.lit);
    if (st != RWKV_OK) {
        free(r.blob.p);
        free(r.off);
        tok->world = NULL;
        tok_world_free(m);
        return st;
    }
    m->max_len = r.max_len;
    return world_build(tok, m, r.blob.p, r.blob.n, r.off, (int)r.prev_id + 1, name, err);
}

rwkv_status rwkv_tokenizer_new_world(const char *bytes, const uint32_t *offsets, int n_ids, rwkv_tokenizer **out,
                                     rwkv_error *err) {
    const char *name = "World vocabulary";
    if (!out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_tokenizer_new_world: out is NULL");
    *out = NULL;
    if (!bytes || !offsets || n_ids < 2 || n_ids > WORLD_MAX_ID || offsets[0] != 0 || offsets[1] != 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: needs ids 0 (empty, end of text) to n_ids - 1 >= 1", name);
    for (int i = 1; i < n_ids; i++)
        if (offsets[i + 1] <= offsets[i] || offsets[i + 1] - offsets[i] > WORLD_MAX_TOKEN_BYTES)
            return rwkv_fail(err, RWKV_ERR_ARG, "%s: id %d is empty or longer than %d bytes", name, i,
                             WORLD_MAX_TOKEN_BYTES);
    rwkv_tokenizer *tok = calloc(1, sizeof *tok);
    world_model *m = calloc(1, sizeof *m);
    char *blob = malloc(offsets[n_ids] + 1u);
    uint32_t *off = malloc(sizeof *off * ((size_t)n_ids + 1));
    if (!tok || !m || !blob || !off) {
        free(tok), free(m), free(blob), free(off);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", name);
    }
    memcpy(blob, bytes, offsets[n_ids]);
    memcpy(off, offsets, sizeof *off * ((size_t)n_ids + 1));
    tok->world = m;
    for (int i = 1; i < n_ids; i++)
        if (offsets[i + 1] - offsets[i] > m->max_len) m->max_len = offsets[i + 1] - offsets[i];
    rwkv_status st = world_build(tok, m, blob, offsets[n_ids], off, n_ids, name, err);
    if (st != RWKV_OK) {
        rwkv_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return rwkv_ok(err);
}

rwkv_status tok_world_encode(const rwkv_tokenizer *tok, const char *text, size_t len,
                             tok_ids *out, rwkv_error *err) {
    const world_model *m = tok->world;
    const unsigned char *s = (const unsigned char *)text;
    size_t p = 0;
    while (p < len) {
        int32_t node = m->root[s[p]];
        int best = m->token[node];
        size_t best_len = 1;
        size_t lim = len - p < m->max_len ? len : p + m->max_len;
        for (size_t q = p + 1; q < lim; q++) {
            node = edge_get(m, (uint32_t)node, s[q]);
            if (node < 0) break;
            if (m->token[node] >= 0) {
                best = m->token[node];
                best_len = q - p + 1;
            }
        }
        if (tok_ids_push(out, best)) return rwkv_fail(err, RWKV_ERR_NOMEM, "tokenize: out of memory");
        p += best_len;
    }
    return RWKV_OK;
}
