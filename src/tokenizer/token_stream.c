/* The streaming decoder (rwkv_token_stream): token bytes in, complete
 * characters out, an incomplete tail held back. A "maximal subpart" is the
 * longest prefix of a well-formed sequence (src/tokenizer/utf8.h) found
 * before the offending byte; REPLACE mode turns each into one U+FFFD and
 * resumes at the offending byte. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

struct rwkv_token_stream {
    const rwkv_tokenizer *tok;
    int raw;
    unsigned char seq[4]; /* the incomplete sequence held back */
    int nseq;             /* its length (0 = none) */
    int need;             /* continuation bytes still expected */
    unsigned lo, hi;      /* range allowed for the next continuation byte */
    tok_buf out;
};

static const char replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Emits an ill-formed subpart (as U+FFFD or raw). The buffer has room. */
static void emit_bad(rwkv_token_stream *s, const unsigned char *b, size_t n) {
    if (s->raw) {
        memcpy(s->out.p + s->out.n, b, n);
        s->out.n += n;
    } else {
        memcpy(s->out.p + s->out.n, replacement, 3);
        s->out.n += 3;
    }
}

static void feed(rwkv_token_stream *s, const unsigned char *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned c = b[i];
        if (s->need) {
            if (c >= s->lo && c <= s->hi) {
                s->seq[s->nseq++] = (unsigned char)c;
                s->lo = 0x80;
                s->hi = 0xBF;
                if (--s->need == 0) {
                    memcpy(s->out.p + s->out.n, s->seq, (size_t)s->nseq);
                    s->out.n += (size_t)s->nseq;
                    s->nseq = 0;
                }
                continue;
            }
            /* The held sequence can never complete; c starts afresh. */
            emit_bad(s, s->seq, (size_t)s->nseq);
            s->nseq = 0;
            s->need = 0;
        }
        int k = tok_utf8_lead(c, &s->lo, &s->hi);
        if (k == 0) {
            s->out.p[s->out.n++] = (char)c;
        } else if (k < 0) {
            unsigned char one = (unsigned char)c;
            emit_bad(s, &one, 1);
        } else {
            s->seq[0] = (unsigned char)c;
            s->nseq = 1;
            s->need = k;
        }
    }
}

rwkv_status rwkv_token_stream_new(const rwkv_tokenizer *tok, int flags,
                                  rwkv_token_stream **out, rwkv_error *err) {
    if (!out || !tok) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_token_stream_new: NULL argument");
    *out = NULL;
    if (flags & ~RWKV_STREAM_RAW) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_token_stream_new: unknown flags 0x%x", (unsigned)flags);
    rwkv_token_stream *s = calloc(1, sizeof *s);
    if (!s) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory creating a token stream");
    s->tok = tok;
    s->raw = (flags & RWKV_STREAM_RAW) != 0;
    s->lo = 0x80;
    s->hi = 0xBF;
    *out = s;
    return rwkv_ok(err);
}

rwkv_status rwkv_token_stream_push(rwkv_token_stream *s, int id, const char **text,
                                   size_t *len, rwkv_error *err) {
    if (text) *text = "";
    if (len) *len = 0;
    if (!s || !text || !len) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_token_stream_push: NULL argument");
    const rwkv_tokenizer *tok = s->tok;
    if (id < 0 || id >= tok->vocab_size)
        return rwkv_fail(err, RWKV_ERR_ARG, "token stream: id %d is outside the %s vocabulary [0, %d)", id,
                         rwkv_tokenizer_kind(tok), tok->vocab_size);
    size_t a = tok->off[id], n = tok->off[id + 1] - a;
    /* Worst case: every byte (and the held ones) becomes a 3-byte U+FFFD. */
    s->out.n = 0;
    if (tok_buf_reserve(&s->out, 3 * (n + 4)))
        return rwkv_fail(err, RWKV_ERR_NOMEM, "token stream: out of memory");
    feed(s, (const unsigned char *)tok->blob + a, n);
    *text = s->out.p;
    *len = s->out.n;
    return rwkv_ok(err);
}

void rwkv_token_stream_flush(rwkv_token_stream *s, const char **text, size_t *len) {
    if (text) *text = "";
    if (len) *len = 0;
    if (!s) return;
    s->out.n = 0;
    if (s->nseq) {
        /* out has room: push always reserved at least 12 bytes; a stream with
         * a held sequence has been pushed to. */
        emit_bad(s, s->seq, (size_t)s->nseq);
        s->nseq = 0;
        s->need = 0;
    }
    if (text && s->out.p) *text = s->out.p;
    if (len) *len = s->out.n;
}

size_t rwkv_token_stream_pending(const rwkv_token_stream *s) { return s ? (size_t)s->nseq : 0; }

void rwkv_token_stream_free(rwkv_token_stream *s) {
    if (!s) return;
    free(s->out.p);
    free(s);
}
