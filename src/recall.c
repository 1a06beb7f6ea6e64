/* The synthetic recall probe's data (include/rwkv_recall.h). */
#include "rwkv_recall.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "formats/formats.h"
#include "rng.h"

static const char FILLER[] = "abcdefghijklmnopqrstuvwxyz ";
#define N_FILLER 27

rwkv_recall_spec rwkv_recall_spec_default(void) {
    rwkv_recall_spec s = {6, 1, 0};
    return s;
}

rwkv_status rwkv_recall_spec_check(rwkv_recall_spec *s, rwkv_error *err) {
    if (!s) return rwkv_fail(err, RWKV_ERR_ARG, "recall: no spec");
    if (s->n_pairs < 1 || s->n_pairs > RWKV_RECALL_MAX_PAIRS)
        return rwkv_fail(err, RWKV_ERR_ARG, "recall: pairs must be in [1, %d], got %d", RWKV_RECALL_MAX_PAIRS,
                         s->n_pairs);
    if (s->value_len < 1 || s->value_len > RWKV_RECALL_MAX_VALUE)
        return rwkv_fail(err, RWKV_ERR_ARG, "recall: value length must be in [1, %d], got %d", RWKV_RECALL_MAX_VALUE,
                         s->value_len);
    if (s->n_queries == 0) s->n_queries = s->n_pairs;
    if (s->n_queries < 1 || s->n_queries > s->n_pairs)
        return rwkv_fail(err, RWKV_ERR_ARG, "recall: queries must be in [1, pairs = %d], got %d", s->n_pairs,
                         s->n_queries);
    return RWKV_OK;
}

size_t rwkv_recall_example_len(const rwkv_recall_spec *s, int distance) {
    const int q = s->n_queries ? s->n_queries : s->n_pairs;
    /* pairs "Kvv" joined by spaces, '|', filler, '|', queries "Kvv" joined by spaces, '\n' */
    return (size_t)s->n_pairs * (size_t)(1 + s->value_len) + (size_t)(s->n_pairs - 1) + 1 +
           (size_t)(distance > 0 ? distance : 0) + 1 + (size_t)q * (size_t)(1 + s->value_len) + (size_t)(q - 1) + 1;
}

void rwkv_recall_seed(rwkv_recall_rng *rng, uint64_t seed) { rng->s = seed; }

static uint64_t next(rwkv_recall_rng *r) { return splitmix64(&r->s); }

/* uniform in [0, n), n > 0 (rejection: no modulo bias) */
static uint32_t below(rwkv_recall_rng *r, uint32_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next(r);
    while (x >= limit);
    return (uint32_t)(x % n);
}

size_t rwkv_recall_example(const rwkv_recall_spec *spec_in, rwkv_recall_rng *rng, int distance, char *buf,
                           size_t cap, rwkv_recall_answers *answers) {
    if (!spec_in || !rng || !buf || distance < 0) return 0;
    rwkv_recall_spec s = *spec_in;
    if (rwkv_recall_spec_check(&s, NULL) != RWKV_OK) return 0;
    const size_t len = rwkv_recall_example_len(&s, distance);
    if (cap < len) return 0;
    /* distinct keys: a partial Fisher-Yates shuffle of A..Z */
    char keys[26];
    for (int i = 0; i < 26; i++) keys[i] = (char)('A' + i);
    for (int i = 0; i < s.n_pairs; i++) {
        int j = i + (int)below(rng, (uint32_t)(26 - i));
        char t = keys[i];
        keys[i] = keys[j];
        keys[j] = t;
    }
    char values[RWKV_RECALL_MAX_PAIRS][RWKV_RECALL_MAX_VALUE];
    size_t src[RWKV_RECALL_MAX_PAIRS];
    size_t p = 0;
    for (int i = 0; i < s.n_pairs; i++) {
        if (i) buf[p++] = ' ';
        buf[p++] = keys[i];
        src[i] = p;
        for (int d = 0; d < s.value_len; d++) buf[p++] = values[i][d] = (char)('0' + below(rng, 10));
    }
    buf[p++] = '|';
    for (int i = 0; i < distance; i++) buf[p++] = FILLER[below(rng, N_FILLER)];
    buf[p++] = '|';
    /* the queried pairs: a random order of the pairs, the first n_queries of it */
    int order[RWKV_RECALL_MAX_PAIRS];
    for (int i = 0; i < s.n_pairs; i++) order[i] = i;
    for (int i = 0; i < s.n_pairs - 1; i++) {
        int j = i + (int)below(rng, (uint32_t)(s.n_pairs - i));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    if (answers) answers->n = s.n_queries;
    for (int q = 0; q < s.n_queries; q++) {
        const int i = order[q];
        if (q) buf[p++] = ' ';
        buf[p++] = keys[i];
        if (answers) {
            answers->answer[q] = p;
            answers->source[q] = src[i];
        }
        for (int d = 0; d < s.value_len; d++) buf[p++] = values[i][d];
    }
    buf[p++] = '\n';
    return p; /* == len */
}

typedef struct corpus_writer {
    rwkv_recall_spec spec;
    size_t n_bytes;
    int dmin, dmax, log_uniform;
    uint64_t seed;
} corpus_writer;

static rwkv_status write_corpus(FILE *f, void *ctx, rwkv_error *err) {
    corpus_writer *w = ctx;
    rwkv_recall_rng rng;
    rwkv_recall_seed(&rng, w->seed);
    const size_t cap = rwkv_recall_example_len(&w->spec, w->dmax);
    char *buf = malloc(cap);
    if (!buf) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    rwkv_status s = RWKV_OK;
    for (size_t done = 0; done < w->n_bytes;) {
        int d;
        if (w->log_uniform) {
            const double u = (double)(next(&rng) >> 11) * 0x1.0p-53;
            d = w->dmin - 1 + (int)floor(pow((double)(w->dmax - w->dmin + 2), u));
            if (d < w->dmin) d = w->dmin;
            if (d > w->dmax) d = w->dmax;
        } else {
            d = w->dmin + (int)below(&rng, (uint32_t)(w->dmax - w->dmin + 1));
        }
        const size_t n = rwkv_recall_example(&w->spec, &rng, d, buf, cap, NULL);
        if (n == 0 || fwrite(buf, 1, n, f) != n) {
            s = rwkv_fail(err, RWKV_ERR_IO, "write failed");
            break;
        }
        done += n;
    }
    free(buf);
    return s;
}

rwkv_status rwkv_recall_write_corpus(const char *path, const rwkv_recall_spec *spec, size_t n_bytes, int dmin,
                                     int dmax, int log_uniform, uint64_t seed, rwkv_error *err) {
    if (!path || !spec) return rwkv_fail(err, RWKV_ERR_ARG, "recall: null argument");
    corpus_writer w = {*spec, n_bytes, dmin, dmax, log_uniform, seed};
    rwkv_status s = rwkv_recall_spec_check(&w.spec, err);
    if (s != RWKV_OK) return s;
    if (dmin < 0 || dmax < dmin || dmax > (1 << 24))
        return rwkv_fail(err, RWKV_ERR_ARG, "recall: distances must satisfy 0 <= min <= max <= 2^24, got %d..%d",
                         dmin, dmax);
    s = atomic_write_file(path, write_corpus, &w, err);
    if (s != RWKV_OK && err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
    return s;
}

int rwkv_recall_score(const rwkv_recall_spec *spec, const char *text, size_t len,
                      const rwkv_recall_answers *answers, const float *logits, int n_vocab) {
    int correct = 0;
    for (int q = 0; q < answers->n; q++) {
        int ok = 1;
        for (int d = 0; d < spec->value_len && ok; d++) {
            const size_t pos = answers->answer[q] + (size_t)d; /* the byte to predict */
            if (pos == 0 || pos >= len) {
                ok = 0;
                break;
            }
            const float *row = logits + (pos - 1) * (size_t)n_vocab;
            int best = 0;
            for (int v = 1; v < n_vocab; v++)
                if (row[v] > row[best]) best = v;
            ok = best == (unsigned char)text[pos];
        }
        correct += ok;
    }
    return correct;
}
