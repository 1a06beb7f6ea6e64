/* GPT-NeoX-20B byte-level BPE from a Hugging Face tokenizer.json (docs/model.md §5.1).
 *
 * Encode = the steps of Hugging Face `tokenizers` (add_special_tokens=False):
 *  1. split the raw text on the added tokens with normalized=false (here the
 *     special "<|endoftext|>", "<|padding|>"), leftmost-longest;
 *  2. NFC-normalise each remaining piece (utf8proc);
 *  3. split it on the added tokens with normalized=true (here runs of 2..24
 *     spaces), leftmost-longest;
 *  4. pre-tokenise each remaining piece with the GPT-2 scanner (pretokenize.c);
 *  5. map each byte to its byte-level character and run BPE: repeatedly merge
 *     the adjacent pair of smallest merge rank (leftmost on ties), with a heap
 *     over candidate pairs so long pre-tokens cost O(n log n), not O(n^2).
 *     Stale heap entries are recognised as Hugging Face does: the pair now at
 *     that position must still merge into the same token.
 * Decode table: added tokens and vocabulary strings are mapped back through
 * the inverse byte table; a string with a character outside that table is
 * taken as its own UTF-8 bytes (the ByteLevel decoder's rule). Special added
 * tokens decode to nothing (skip_special_tokens=True). */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tokenizer_internal.h"

#define NEOX_MAX_ID (1 << 24)

/* A byte trie of added tokens (a few dozen short strings). */
typedef struct added_node {
    int32_t child, sibling, id;
    unsigned char byte;
} added_node;
typedef struct added_trie {
    int32_t root[256]; /* node of each first byte, or -1 */
    added_node *node;
    size_t n, cap;
    size_t count; /* tokens inserted */
} added_trie;

struct neox_model {
    int byte_id[256]; /* id of each byte's one-character token, -1 if none */
    int unk;          /* -1 */
    int nfc;
    int add_prefix_space;
    /* merges: (left id, right id) -> (rank, merged id); key UINT64_MAX = empty */
    uint64_t *mkey;
    uint32_t *mrank;
    int32_t *mnew;
    int mbits;
    uint64_t mmask;
    added_trie raw, norm; /* normalized=false / normalized=true added tokens */
};

/* ---- byte-level map ----------------------------------------------------- */

/* Bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF map to the same code point; the other
 * 68 bytes, in increasing order, to U+0100, U+0101, ... */
static void byte_level_tables(uint32_t cp_of_byte[256], int16_t byte_of_cp[0x144]) {
    int next = 0;
    for (int i = 0; i < 0x144; i++) byte_of_cp[i] = -1;
    for (int b = 0; b < 256; b++) {
        int same = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp_of_byte[b] = same ? (uint32_t)b : (uint32_t)(0x100 + next++);
        byte_of_cp[cp_of_byte[b]] = (int16_t)b;
    }
}

/* ---- added-token trie --------------------------------------------------- */

static void added_init(added_trie *t) {
    memset(t, 0, sizeof *t);
    for (int b = 0; b < 256; b++) t->root[b] = -1;
}

static int32_t added_new_node(added_trie *t, unsigned char byte) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        added_node *p = realloc(t->node, cap * sizeof *p);
        if (!p) return -1;
        t->node = p;
        t->cap = cap;
    }
    added_node *nd = &t->node[t->n];
    nd->child = nd->sibling = nd->id = -1;
    nd->byte = byte;
    return (int32_t)t->n++;
}

static int added_insert(added_trie *t, const unsigned char *s, size_t n, int id) {
    int32_t cur = t->root[s[0]];
    if (cur < 0) {
        if ((cur = added_new_node(t, s[0])) < 0) return -1;
        t->root[s[0]] = cur;
    }
    for (size_t k = 1; k < n; k++) {
        int32_t c = t->node[cur].child;
        while (c >= 0 && t->node[c].byte != s[k]) c = t->node[c].sibling;
        if (c < 0) {
            if ((c = added_new_node(t, s[k])) < 0) return -1;
            t->node[c].sibling = t->node[cur].child;
            t->node[cur].child = c;
        }
        cur = c;
    }
    t->node[cur].id = id;
    t->count++;
    return 0;
}

/* Length of the longest added token starting at s[i] (0: none), id in *id. */
static size_t added_match(const added_trie *t, const unsigned char *s, size_t n, size_t i, int *id) {
    int32_t cur = t->root[s[i]];
    size_t best = 0;
    for (size_t k = i; cur >= 0;) {
        if (t->node[cur].id >= 0) {
            best = k + 1 - i;
            *id = t->node[cur].id;
        }
        if (++k >= n) break;
        int32_t c = t->node[cur].child;
        while (c >= 0 && t->node[c].byte != s[k]) c = t->node[c].sibling;
        cur = c;
    }
    return best;
}

/* ---- merges hash -------------------------------------------------------- */

static inline uint64_t pair_key(int a, int b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }
static inline size_t pair_slot(const neox_model *m, uint64_t key) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - m->mbits));
}

static inline int merge_get(const neox_model *m, int a, int b, uint32_t *rank, int *new_id) {
    uint64_t key = pair_key(a, b);
    size_t i = pair_slot(m, key);
    for (;;) {
        uint64_t k = m->mkey[i];
        if (k == key) {
            *rank = m->mrank[i];
            *new_id = m->mnew[i];
            return 1;
        }
        if (k == UINT64_MAX) return 0;
        i = (i + 1) & m->mmask;
    }
}

/* Inserts or overwrites (a later duplicate merge wins, as in Hugging Face). */
static void merge_put(neox_model *m, int a, int b, uint32_t rank, int new_id) {
    uint64_t key = pair_key(a, b);
    size_t i = pair_slot(m, key);
    while (m->mkey[i] != UINT64_MAX && m->mkey[i] != key) i = (i + 1) & m->mmask;
    m->mkey[i] = key;
    m->mrank[i] = rank;
    m->mnew[i] = new_id;
}

void tok_neox_free(neox_model *m) {
    if (!m) return;
    free(m->mkey);
    free(m->mrank);
    free(m->mnew);
    free(m->raw.node);
    free(m->norm.node);
    free(m);
}

/* ---- NFC ---------------------------------------------------------------- */

/* Code points below U+0300 are NFC-stable starters (canonical combining
 * class 0, NFC_Quick_Check=Yes), so text whose bytes are all < 0xCC (the
 * lead byte of U+0300) is already in NFC. Returns 0 and sets *out to a
 * malloc'ed copy, or *out = NULL when s is unchanged; -1 on failure. */
static int nfc(const char *s, size_t n, char **out, size_t *out_n) {
    *out = NULL;
    *out_n = n;
    size_t i = 0;
    while (i < n && (unsigned char)s[i] < 0xCC) i++;
    if (i == n) return 0;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0) return -1;
    *out = (char *)dst;
    *out_n = (size_t)r;
    return 0;
}

/* ---- loading ------------------------------------------------------------ */

/* What a load reads and builds, shared by its steps. */
typedef struct loader {
    const char *name;
    rwkv_error *err;
    json_t *model, *vocab, *merges, *added; /* the JSON's sections; added may be NULL */
    size_t n_added;
    int n_ids;                  /* 1 + the largest id over the vocabulary and the added tokens */
    const char **id_str;        /* id -> string (borrowed from the JSON) */
    unsigned char *is_special;  /* id -> an added token marked special */
    strmap ids;                 /* the vocabulary: string -> id */
} loader;

static rwkv_status bad(loader *L, rwkv_status code, const char *fmt, ...) RWKV_PRINTF(3, 4);
static rwkv_status bad(loader *L, rwkv_status code, const char *fmt, ...) {
    char msg[RWKV_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rwkv_fail(L->err, code, "%s: %s", L->name, msg);
}

static rwkv_status out_of_memory(loader *L) {
    return rwkv_fail(L->err, RWKV_ERR_NOMEM, "%s: out of memory loading the tokenizer", L->name);
}

/* Quotes s for an error message: at most 40 characters, C-style escapes. */
static const char *quote(const char *s, char *buf, size_t size) {
    size_t o = 0;
    buf[o++] = '\'';
    for (size_t i = 0; s[i] && o + 8 < size && i < 40; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F || c == '\'' || c == '\\') o += (size_t)snprintf(buf + o, size - o, "\\x%02X", c);
        else buf[o++] = (char)c;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

static int json_is_true_field(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return v && json_is_true(v);
}

/* Checks the tokenizer.json sections we do not implement beyond the NeoX
 * configuration and records what we do. */
static rwkv_status check_config(loader *L, json_t *root, json_t *model, neox_model *m) {
    json_t *type = json_object_get(model, "type");
    if (!json_is_string(type)) return bad(L, RWKV_ERR_FORMAT, "model.type is missing or not a string");
    if (strcmp(json_string_value(type), "BPE") != 0)
        return bad(L, RWKV_ERR_UNSUPPORTED, "model.type is '%s'; only BPE is supported", json_string_value(type));
    json_t *v;
    if ((v = json_object_get(model, "dropout")) && !json_is_null(v) && !(json_is_number(v) && json_number_value(v) == 0))
        return bad(L, RWKV_ERR_UNSUPPORTED, "model.dropout is set; BPE dropout is not supported");
    const char *affix[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++)
        if ((v = json_object_get(model, affix[k])) && !json_is_null(v) &&
            !(json_is_string(v) && json_string_length(v) == 0))
            return bad(L, RWKV_ERR_UNSUPPORTED, "model.%s is set; not supported", affix[k]);
    if (json_is_true_field(model, "byte_fallback"))
        return bad(L, RWKV_ERR_UNSUPPORTED, "model.byte_fallback is true; not supported");
    if (json_is_true_field(model, "ignore_merges"))
        return bad(L, RWKV_ERR_UNSUPPORTED, "model.ignore_merges is true; not supported");

    json_t *norm = json_object_get(root, "normalizer");
    if (!norm || json_is_null(norm)) {
        m->nfc = 0;
    } else {
        json_t *t = json_object_get(norm, "type");
        if (!json_is_string(t) || strcmp(json_string_value(t), "NFC") != 0)
            return bad(L, RWKV_ERR_UNSUPPORTED, "normalizer.type is %s; only NFC (or none) is supported",
                       json_is_string(t) ? json_string_value(t) : "missing");
        m->nfc = 1;
    }
    json_t *pre = json_object_get(root, "pre_tokenizer");
    json_t *pt = pre ? json_object_get(pre, "type") : NULL;
    if (!json_is_string(pt) || strcmp(json_string_value(pt), "ByteLevel") != 0)
        return bad(L, RWKV_ERR_UNSUPPORTED, "pre_tokenizer.type is %s; only ByteLevel is supported",
                   json_is_string(pt) ? json_string_value(pt) : "missing");
    if ((v = json_object_get(pre, "use_regex")) && json_is_false(v))
        return bad(L, RWKV_ERR_UNSUPPORTED, "pre_tokenizer.use_regex is false; not supported");
    m->add_prefix_space = json_is_true_field(pre, "add_prefix_space");
    return RWKV_OK;
}

/* The bytes a token string decodes to (ByteLevel decoder rule). */
static void decode_token(const char *s, size_t n, const int16_t byte_of_cp[0x144], tok_buf *blob) {
    size_t start = blob->n, i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (l <= 0 || cp >= 0x144 || byte_of_cp[cp] < 0) { /* not a byte-level string: its own bytes */
            blob->n = start;
            memcpy(blob->p + blob->n, s, n);
            blob->n += n;
            return;
        }
        blob->p[blob->n++] = (char)byte_of_cp[cp];
        i += (size_t)l;
    }
}

/* The sections a load needs, each of the right JSON type, and the
 * configuration (check_config) before the tables. */
static rwkv_status find_sections(loader *L, json_t *root, neox_model *m) {
    if (!json_is_object(root)) return bad(L, RWKV_ERR_FORMAT, "the JSON is not an object");
    L->model = json_object_get(root, "model");
    if (!json_is_object(L->model)) return bad(L, RWKV_ERR_FORMAT, "no \"model\" object");
    rwkv_status st = check_config(L, root, L->model, m);
    if (st) return st;
    L->vocab = json_object_get(L->model, "vocab");
    L->merges = json_object_get(L->model, "merges");
    L->added = json_object_get(root, "added_tokens");
    if (!json_is_object(L->vocab)) return bad(L, RWKV_ERR_FORMAT, "model.vocab is missing or not an object");
    if (!json_is_array(L->merges)) return bad(L, RWKV_ERR_FORMAT, "model.merges is missing or not an array");
    if (L->added && !json_is_null(L->added) && !json_is_array(L->added))
        return bad(L, RWKV_ERR_FORMAT, "added_tokens is not an array");
    if (json_object_size(L->vocab) == 0) return bad(L, RWKV_ERR_FORMAT, "model.vocab is empty");
    L->n_added = L->added && json_is_array(L->added) ? json_array_size(L->added) : 0;
    return RWKV_OK;
}

/* Every id checked, and n_ids: one past the largest over the vocabulary and
 * the added tokens (whose flags we do not implement are refused). */
static rwkv_status count_ids(loader *L) {
    char q[128];
    long max_id = -1;
    const char *key;
    json_t *val;
    json_object_foreach(L->vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= NEOX_MAX_ID)
            return bad(L, RWKV_ERR_FORMAT, "model.vocab[%s]: the id is not an integer in [0, 2^24)",
                       quote(key, q, sizeof q));
        if (json_integer_value(val) > max_id) max_id = (long)json_integer_value(val);
    }
    for (size_t i = 0; i < L->n_added; i++) {
        json_t *a = json_array_get(L->added, i);
        json_t *jid = json_object_get(a, "id");
        json_t *jc = json_object_get(a, "content");
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        if (!json_is_object(a) || !json_is_integer(jid) || json_integer_value(jid) < 0 ||
            json_integer_value(jid) >= NEOX_MAX_ID || !json_is_string(jc) || json_string_length(jc) == 0)
            return bad(L, RWKV_ERR_FORMAT, "%s: needs an integer \"id\" in [0, 2^24) and a non-empty string \"content\"",
                       where);
        const char *flags[3] = {"lstrip", "rstrip", "single_word"};
        for (int k = 0; k < 3; k++)
            if (json_is_true_field(a, flags[k]))
                return bad(L, RWKV_ERR_UNSUPPORTED, "%s: \"%s\" is true; not supported", where, flags[k]);
        if (json_integer_value(jid) > max_id) max_id = (long)json_integer_value(jid);
    }
    L->n_ids = (int)max_id + 1;
    return RWKV_OK;
}

/* The vocabulary into the id tables and the string map; one id per string. */
static rwkv_status index_vocab(loader *L) {
    char q1[128], q2[128];
    L->id_str = calloc((size_t)L->n_ids, sizeof *L->id_str);
    L->is_special = calloc((size_t)L->n_ids, 1);
    if (!L->id_str || !L->is_special || strmap_init(&L->ids, json_object_size(L->vocab))) return out_of_memory(L);
    const char *key;
    json_t *val;
    json_object_foreach(L->vocab, key, val) {
        int id = (int)json_integer_value(val);
        if (L->id_str[id])
            return bad(L, RWKV_ERR_FORMAT, "model.vocab: %s and %s have the same id",
                       quote(L->id_str[id], q1, sizeof q1), quote(key, q2, sizeof q2));
        L->id_str[id] = key;
        if (strmap_put(&L->ids, key, strlen(key), id, NULL)) return out_of_memory(L);
    }
    return RWKV_OK;
}

/* Each byte's token (the byte-level alphabet's character of it) and the
 * unknown token, if any. */
static rwkv_status byte_ids_and_unk(loader *L, const uint32_t cp_of_byte[256], neox_model *m) {
    for (int b = 0; b < 256; b++) {
        char u[4];
        int l = tok_utf8_encode(cp_of_byte[b], u);
        m->byte_id[b] = strmap_get(&L->ids, u, (size_t)l);
    }
    json_t *unk = json_object_get(L->model, "unk_token");
    if (!unk || json_is_null(unk)) return RWKV_OK;
    if (!json_is_string(unk) || (m->unk = strmap_get(&L->ids, json_string_value(unk), json_string_length(unk))) < 0)
        return bad(L, RWKV_ERR_FORMAT, "model.unk_token is not a string in model.vocab");
    if (json_is_true_field(L->model, "fuse_unk"))
        return bad(L, RWKV_ERR_UNSUPPORTED, "model.fuse_unk is true; not supported");
    return RWKV_OK;
}

/* The two tokens of merge e: a string "A B" or a pair ["A", "B"]. */
static rwkv_status merge_tokens(loader *L, json_t *e, const char *where, const char **a, size_t *al, const char **b,
                                size_t *bl) {
    char q[128];
    if (json_is_string(e)) {
        *a = json_string_value(e);
        const char *sp = strchr(*a, ' ');
        if (!sp || strchr(sp + 1, ' ') || sp == *a || !sp[1])
            return bad(L, RWKV_ERR_FORMAT, "%s: %s is not two tokens separated by one space", where,
                       quote(*a, q, sizeof q));
        *al = (size_t)(sp - *a), *b = sp + 1, *bl = strlen(*b);
        return RWKV_OK;
    }
    if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
        json_is_string(json_array_get(e, 1))) {
        *a = json_string_value(json_array_get(e, 0)), *al = json_string_length(json_array_get(e, 0));
        *b = json_string_value(json_array_get(e, 1)), *bl = json_string_length(json_array_get(e, 1));
        return RWKV_OK;
    }
    return bad(L, RWKV_ERR_FORMAT, "%s: not a string \"A B\" nor a pair [\"A\", \"B\"]", where);
}

/* Merge r (a, b) into the table: the two tokens and their concatenation
 * (built in cat) must all be in the vocabulary. */
static rwkv_status add_merge(loader *L, neox_model *m, size_t r, const char *where, tok_buf *cat) {
    char q[128];
    const char *a = NULL, *b = NULL;
    size_t al = 0, bl = 0;
    rwkv_status st = merge_tokens(L, json_array_get(L->merges, r), where, &a, &al, &b, &bl);
    if (st) return st;
    int ia = strmap_get(&L->ids, a, al), ib = strmap_get(&L->ids, b, bl);
    cat->n = 0;
    if (tok_buf_append(cat, a, al) || tok_buf_append(cat, b, bl) || tok_buf_append(cat, "", 1))
        return out_of_memory(L);
    int inew = strmap_get(&L->ids, cat->p, al + bl);
    if (ia < 0 || ib < 0 || inew < 0) {
        const char *what = ia < 0 ? "left token" : ib < 0 ? "right token" : "merged token";
        const char *src = ia < 0 ? a : ib < 0 ? b : cat->p;
        size_t sl = ia < 0 ? al : ib < 0 ? bl : al + bl;
        char t[64];
        snprintf(t, sizeof t, "%.*s", (int)(sl < 40 ? sl : 40), src);
        return bad(L, RWKV_ERR_FORMAT, "%s: the %s %s is not in model.vocab", where, what, quote(t, q, sizeof q));
    }
    merge_put(m, ia, ib, (uint32_t)r, inew);
    return RWKV_OK;
}

/* The merges' hash table (open addressing, at most half full), rank = position. */
static rwkv_status read_merges(loader *L, neox_model *m) {
    size_t n_merges = json_array_size(L->merges);
    if (n_merges >= UINT32_MAX / 4) return out_of_memory(L);
    m->mbits = 4;
    while (((size_t)1 << m->mbits) < 2 * n_merges + 2) m->mbits++;
    m->mmask = ((uint64_t)1 << m->mbits) - 1;
    m->mkey = malloc(((size_t)m->mmask + 1) * sizeof *m->mkey);
    m->mrank = malloc(((size_t)m->mmask + 1) * sizeof *m->mrank);
    m->mnew = malloc(((size_t)m->mmask + 1) * sizeof *m->mnew);
    if (!m->mkey || !m->mrank || !m->mnew) return out_of_memory(L);
    memset(m->mkey, 0xFF, ((size_t)m->mmask + 1) * sizeof *m->mkey);
    tok_buf cat = {0};
    rwkv_status st = RWKV_OK;
    for (size_t r = 0; r < n_merges && st == RWKV_OK; r++) {
        char where[64];
        snprintf(where, sizeof where, "model.merges[%zu]", r);
        st = add_merge(L, m, r, where, &cat);
    }
    free(cat.p);
    return st;
}

/* The added tokens into their tries (normalized ones in NFC form when the
 * normalizer is NFC) and the id tables. */
static rwkv_status add_tokens(loader *L, neox_model *m) {
    for (size_t i = 0; i < L->n_added; i++) {
        json_t *a = json_array_get(L->added, i);
        int id = (int)json_integer_value(json_object_get(a, "id"));
        json_t *jc = json_object_get(a, "content");
        json_t *jsp = json_object_get(a, "special");
        json_t *jn = json_object_get(a, "normalized");
        int special = jsp && json_is_true(jsp);
        int normalized = jn ? json_is_true(jn) : !special;
        const char *c = json_string_value(jc);
        size_t cl = json_string_length(jc);
        char *cn = NULL;
        size_t cnl = cl;
        if (normalized && m->nfc && nfc(c, cl, &cn, &cnl)) return out_of_memory(L);
        int bad_insert = added_insert(normalized ? &m->norm : &m->raw, (const unsigned char *)(cn ? cn : c), cnl, id);
        free(cn);
        if (bad_insert) return out_of_memory(L);
        L->id_str[id] = c;
        L->is_special[id] = (unsigned char)special;
    }
    return RWKV_OK;
}

/* The decode table: each id's bytes in one blob, off[id] .. off[id + 1]
 * (special added tokens decode to nothing). */
static rwkv_status decode_table(loader *L, const int16_t byte_of_cp[0x144], rwkv_tokenizer *tok) {
    tok_buf blob = {0};
    uint32_t *off = malloc(((size_t)L->n_ids + 1) * sizeof *off);
    int ok = off != NULL;
    for (int id = 0; ok && id < L->n_ids; id++) {
        off[id] = (uint32_t)blob.n;
        if (!L->id_str[id] || L->is_special[id]) continue;
        size_t l = strlen(L->id_str[id]);
        ok = blob.n + l <= UINT32_MAX / 2 && !tok_buf_reserve(&blob, l);
        if (ok) decode_token(L->id_str[id], l, byte_of_cp, &blob);
    }
    if (ok) off[L->n_ids] = (uint32_t)blob.n;
    if (!ok || tok_buf_reserve(&blob, 1)) {
        free(off), free(blob.p);
        return out_of_memory(L);
    }
    tok->blob = blob.p;
    tok->off = off;
    return RWKV_OK;
}

rwkv_status tok_neox_load(rwkv_tokenizer *tok, const char *data, size_t len,
                          const char *name, rwkv_error *err) {
    loader L = {.name = name, .err = err};
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: line %d, column %d: invalid JSON: %s", name, jerr.line,
                         jerr.column, jerr.text);
    neox_model *m = calloc(1, sizeof *m);
    rwkv_status st = m ? RWKV_OK : out_of_memory(&L);
    if (m) {
        m->unk = -1;
        added_init(&m->raw);
        added_init(&m->norm);
    }
    uint32_t cp_of_byte[256];
    int16_t byte_of_cp[0x144];
    byte_level_tables(cp_of_byte, byte_of_cp);
    if (st == RWKV_OK) st = find_sections(&L, root, m);
    if (st == RWKV_OK) st = count_ids(&L);
    if (st == RWKV_OK) st = index_vocab(&L);
    if (st == RWKV_OK) st = byte_ids_and_unk(&L, cp_of_byte, m);
    if (st == RWKV_OK) st = read_merges(&L, m);
    if (st == RWKV_OK) st = add_tokens(&L, m);
    if (st == RWKV_OK) st = decode_table(&L, byte_of_cp, tok);
    if (st == RWKV_OK) {
        tok->neox = m;
        tok->kind = TOK_NEOX;
        tok->vocab_size = L.n_ids;
        tok->eos = 0;
    } else {
        tok->neox = NULL;
        tok_neox_free(m);
    }
    strmap_free(&L.ids);
    free(L.id_str);
    free(L.is_special);
    json_decref(root);
    return st;
}

/* ---- encoding ----------------------------------------------------------- */

typedef struct heap_item {
    uint32_t rank, pos;
    int32_t new_id;
} heap_item;

typedef struct bpe_work {
    int32_t *id, *prev, *next;
    heap_item *heap;
    size_t cap, hn;
} bpe_work;

static int work_reserve(bpe_work *w, size_t n) {
    if (n <= w->cap) return 0;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n) cap *= 2;
    int32_t *id = realloc(w->id, cap * sizeof *id);
    if (id) w->id = id;
    int32_t *pv = realloc(w->prev, cap * sizeof *pv);
    if (pv) w->prev = pv;
    int32_t *nx = realloc(w->next, cap * sizeof *nx);
    if (nx) w->next = nx;
    heap_item *h = realloc(w->heap, 3 * cap * sizeof *h);
    if (h) w->heap = h;
    if (!id || !pv || !nx || !h) return -1;
    w->cap = cap;
    return 0;
}

static inline int heap_less(const heap_item *a, const heap_item *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_work *w, heap_item it) {
    size_t i = w->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&it, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = it;
}

static heap_item heap_pop(bpe_work *w) {
    heap_item top = w->heap[0], last = w->heap[--w->hn];
    size_t i = 0, n = w->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!heap_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* BPE of one pre-token (bytes s[0..n)); appends the ids to out. */
static int bpe_word(const neox_model *m, const unsigned char *s, size_t n, bpe_work *w, tok_ids *out) {
    if (n == 1) {
        int id = m->byte_id[s[0]] >= 0 ? m->byte_id[s[0]] : m->unk;
        return id >= 0 ? tok_ids_push(out, id) : 0;
    }
    if (work_reserve(w, n)) return -1;
    /* Symbols: one per byte with an id (bytes without one are dropped, or
     * become unk when the model has one — Hugging Face's rule). */
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        int id = m->byte_id[s[i]] >= 0 ? m->byte_id[s[i]] : m->unk;
        if (id < 0) continue;
        w->id[ns] = id;
        w->prev[ns] = (int32_t)ns - 1;
        w->next[ns] = (int32_t)ns + 1;
        ns++;
    }
    if (ns == 0) return 0;
    w->next[ns - 1] = -1;
    w->hn = 0;
    uint32_t rank;
    int nid;
    for (size_t i = 0; i + 1 < ns; i++)
        if (merge_get(m, w->id[i], w->id[i + 1], &rank, &nid)) heap_push(w, (heap_item){rank, (uint32_t)i, nid});
    while (w->hn) {
        heap_item t = heap_pop(w);
        int32_t p = (int32_t)t.pos;
        if (w->id[p] < 0) continue; /* merged into its left neighbour */
        int32_t r = w->next[p];
        if (r < 0) continue;
        if (!merge_get(m, w->id[p], w->id[r], &rank, &nid) || nid != t.new_id) continue; /* stale */
        w->id[p] = t.new_id;
        w->id[r] = -1;
        int32_t rn = w->next[r];
        w->next[p] = rn;
        if (rn >= 0) w->prev[rn] = p;
        int32_t lp = w->prev[p];
        if (lp >= 0 && merge_get(m, w->id[lp], w->id[p], &rank, &nid))
            heap_push(w, (heap_item){rank, (uint32_t)lp, nid});
        if (rn >= 0 && merge_get(m, w->id[p], w->id[rn], &rank, &nid))
            heap_push(w, (heap_item){rank, (uint32_t)p, nid});
    }
    for (int32_t i = 0; i >= 0; i = w->next[i])
        if (tok_ids_push(out, w->id[i])) return -1;
    return 0;
}

/* Pre-tokenise and BPE one piece that holds no added token. */
static int encode_plain(const neox_model *m, const unsigned char *s, size_t n, bpe_work *w, tok_buf *tmp,
                        tok_ids *out) {
    if (n == 0) return 0;
    if (m->add_prefix_space && s[0] != ' ') {
        tmp->n = 0;
        if (tok_buf_append(tmp, " ", 1) || tok_buf_append(tmp, s, n)) return -1;
        s = (const unsigned char *)tmp->p;
        n = tmp->n;
    }
    for (size_t i = 0; i < n;) {
        size_t j = tok_gpt2_pretoken_end(s, n, i);
        if (bpe_word(m, s + i, j - i, w, out)) return -1;
        i = j;
    }
    return 0;
}

/* Splits s on the trie's tokens (leftmost-longest); the pieces between go to
 * encode_plain (level 1) or are normalised and split again (level 0). */
static int encode_level(const neox_model *m, int level, const unsigned char *s, size_t n, bpe_work *w,
                        tok_buf *tmp, tok_ids *out) {
    const added_trie *t = level == 0 ? &m->raw : &m->norm;
    char *normed = NULL;
    if (level == 1 && m->nfc) {
        size_t nn;
        if (nfc((const char *)s, n, &normed, &nn)) return -1;
        if (normed) {
            s = (const unsigned char *)normed;
            n = nn;
        }
    }
    int rc = 0;
    size_t piece = 0, i = 0;
    while (i < n && !rc) {
        int id = -1;
        size_t l = t->count && t->root[s[i]] >= 0 ? added_match(t, s, n, i, &id) : 0;
        if (!l) {
            i++;
            continue;
        }
        if (piece < i)
            rc = level == 0 ? encode_level(m, 1, s + piece, i - piece, w, tmp, out)
                            : encode_plain(m, s + piece, i - piece, w, tmp, out);
        if (!rc) rc = tok_ids_push(out, id);
        i += l;
        piece = i;
    }
    if (!rc && piece < n)
        rc = level == 0 ? encode_level(m, 1, s + piece, n - piece, w, tmp, out)
                        : encode_plain(m, s + piece, n - piece, w, tmp, out);
    free(normed);
    return rc;
}

rwkv_status tok_neox_encode(const rwkv_tokenizer *tok, const char *text, size_t len,
                            tok_ids *out, rwkv_error *err) {
    const unsigned char *s = (const unsigned char *)text;
    size_t ok = tok_utf8_valid_prefix(s, len);
    if (ok != len)
        return rwkv_fail(err, RWKV_ERR_ARG, "tokenize: the text is not valid UTF-8 at byte offset %zu (the neox tokenizer needs UTF-8)", ok);
    bpe_work w = {0};
    tok_buf tmp = {0};
    int rc = tok_ids_reserve(out, len / 3 + 16) ? -1 : encode_level(tok->neox, 0, s, len, &w, &tmp, out);
    free(w.id);
    free(w.prev);
    free(w.next);
    free(w.heap);
    free(tmp.p);
    if (rc) return rwkv_fail(err, RWKV_ERR_NOMEM, "tokenize: out of memory");
    return RWKV_OK;
}
