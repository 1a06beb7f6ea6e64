/* The synthetic recall probe's data (include/rwkv_recall.h). */
#include "rwkv_recall.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "train/data.h"

rwkv_recall_spec rwkv_recall_spec_default(void) {
    rwkv_recall_spec s = {8, 256, 10, 0, 1, 0};
    return s;
}

rwkv_status rwkv_recall_spec_check(const rwkv_recall_spec *s, rwkv_error *err) {
    if (!s) return rwkv_fail(err, RWKV_ERR_ARG, "recall: no spec");
    if (s->n_keys < 1 || s->n_keys > RWKV_RECALL_MAX_KEYS)
        return rwkv_fail(err, RWKV_ERR_ARG, "recall: keys must be in [1, %d], got %d", RWKV_RECALL_MAX_KEYS,
                         s->n_keys);
    if (s->n_values < 2 || s->n_values > RWKV_RECALL_MAX_VALUES)
        return rwkv_fail(err, RWKV_ERR_ARG, "recall: values must be in [2, %d], got %d", RWKV_RECALL_MAX_VALUES,
                         s->n_values);
    if (s->n_pairs < 1 || s->n_pairs > s->n_keys)
        return rwkv_fail(err, RWKV_ERR_ARG, "recall: pairs must be in [1, keys = %d], got %d", s->n_keys,
                         s->n_pairs);
    if (s->n_queries < 0 || s->n_queries > s->n_pairs)
        return rwkv_fail(err, RWKV_ERR_ARG, "recall: queries must be in [1, pairs = %d] (0: all), got %d",
                         s->n_pairs, s->n_queries);
    if (s->echo != 0 && s->echo != 1) return rwkv_fail(err, RWKV_ERR_ARG, "recall: echo must be 0 or 1, got %d", s->echo);
    if (s->question_first != 0 && s->question_first != 1)
        return rwkv_fail(err, RWKV_ERR_ARG, "recall: question_first must be 0 or 1, got %d", s->question_first);
    return RWKV_OK;
}

int rwkv_recall_vocab(const rwkv_recall_spec *s) { return 2 + s->n_values + s->n_keys; }
int rwkv_recall_value_token(const rwkv_recall_spec *s, int v) {
    (void)s;
    return 2 + v;
}
int rwkv_recall_key_token(const rwkv_recall_spec *s, int k) { return 2 + s->n_values + k; }

static int queries_of(const rwkv_recall_spec *s) { return s->n_queries ? s->n_queries : s->n_pairs; }

/* tokens before the first pair: ASK and the queried keys, question-first */
static size_t preface_len(const rwkv_recall_spec *s) { return s->question_first ? 1 + (size_t)queries_of(s) : 0; }

size_t rwkv_recall_example_len(const rwkv_recall_spec *s) {
    return preface_len(s) + (size_t)(2 + s->echo) * (size_t)s->n_pairs + 3 * (size_t)queries_of(s) + 1;
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

/* a[0..k-1]: the first k entries of a uniform random permutation of 0..n-1 */
static void partial_shuffle(rwkv_recall_rng *r, int *a, int n, int k) {
    for (int i = 0; i < n; i++) a[i] = i;
    for (int i = 0; i < k && i < n - 1; i++) {
        const int j = i + (int)below(r, (uint32_t)(n - i));
        const int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

size_t rwkv_recall_example(const rwkv_recall_spec *s, rwkv_recall_rng *rng, int *tokens, size_t cap,
                           rwkv_recall_answers *answers) {
    if (!s || !rng || !tokens || rwkv_recall_spec_check(s, NULL) != RWKV_OK) return 0;
    const size_t len = rwkv_recall_example_len(s);
    if (cap < len) return 0;
    /* everything is drawn before anything is written, in one order for both
     * orders of the example: the keys, the values, then the queries (the
     * first n_queries of a random order of the pairs) */
    int keys[RWKV_RECALL_MAX_KEYS], order[RWKV_RECALL_MAX_KEYS], values[RWKV_RECALL_MAX_KEYS];
    partial_shuffle(rng, keys, s->n_keys, s->n_pairs);
    for (int i = 0; i < s->n_pairs; i++) values[i] = (int)below(rng, (uint32_t)s->n_values);
    const int nq = queries_of(s);
    partial_shuffle(rng, order, s->n_pairs, nq);
    size_t p = 0;
    if (s->question_first) { /* ASK and the queried keys */
        tokens[p++] = RWKV_RECALL_ASK;
        for (int q = 0; q < nq; q++) tokens[p++] = rwkv_recall_key_token(s, keys[order[q]]);
    }
    size_t src[RWKV_RECALL_MAX_KEYS];
    for (int i = 0; i < s->n_pairs; i++) {
        if (s->echo) { /* value key value */
            src[i] = p;
            tokens[p++] = rwkv_recall_value_token(s, values[i]);
            tokens[p++] = rwkv_recall_key_token(s, keys[i]);
            tokens[p++] = rwkv_recall_value_token(s, values[i]);
        } else { /* key value */
            tokens[p++] = rwkv_recall_key_token(s, keys[i]);
            src[i] = p;
            tokens[p++] = rwkv_recall_value_token(s, values[i]);
        }
    }
    /* the queries, each ASK key value */
    if (answers) answers->n = nq;
    for (int q = 0; q < nq; q++) {
        const int i = order[q];
        tokens[p++] = RWKV_RECALL_ASK;
        tokens[p++] = rwkv_recall_key_token(s, keys[i]);
        if (answers) {
            answers->answer[q] = p;
            answers->source[q] = src[i];
        }
        tokens[p++] = rwkv_recall_value_token(s, values[i]);
    }
    tokens[p++] = RWKV_RECALL_END;
    return p; /* == len */
}

/* appends to buf like snprintf at offset *n (which counts the full length) */
static void put(char *buf, size_t cap, size_t *n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int w = vsnprintf(*n < cap ? buf + *n : NULL, *n < cap ? cap - *n : 0, fmt, ap);
    va_end(ap);
    if (w > 0) *n += (size_t)w;
}

size_t rwkv_recall_render(const rwkv_recall_spec *s, const int *tokens, size_t count, char *buf, size_t cap) {
    size_t n = 0;
    if (cap) buf[0] = 0;
    const int V = s->n_values, K = s->n_keys;
    for (size_t i = 0; i < count; i++) {
        const int t = tokens[i];
        const char *sp = i ? " " : "";
        if (t == RWKV_RECALL_END) put(buf, cap, &n, "%sEND", sp);
        else if (t == RWKV_RECALL_ASK) put(buf, cap, &n, "%sASK", sp);
        else if (t >= 2 && t < 2 + V) put(buf, cap, &n, "%s%d", sp, t - 2);
        else if (t >= 2 + V && t < 2 + V + K) put(buf, cap, &n, "%sk%d", sp, t - 2 - V);
        else put(buf, cap, &n, "%s?", sp);
    }
    return n;
}

rwkv_status rwkv_recall_write_corpus(const char *path, const rwkv_recall_spec *spec, int pairs_min, int pairs_max,
                                     size_t n_tokens, uint64_t seed, rwkv_error *err) {
    if (!path || !spec) return rwkv_fail(err, RWKV_ERR_ARG, "recall: null argument");
    if (pairs_min < 1 || pairs_max < pairs_min)
        return rwkv_fail(err, RWKV_ERR_ARG, "recall: pairs must satisfy 1 <= min <= max, got %d..%d", pairs_min,
                         pairs_max);
    if (n_tokens > ((size_t)1 << 32))
        return rwkv_fail(err, RWKV_ERR_ARG, "recall: at most 2^32 tokens, got %zu", n_tokens);
    /* the largest example must be valid; queries are capped per example */
    rwkv_recall_spec big = *spec;
    big.n_pairs = pairs_max;
    if (big.n_queries > pairs_max) big.n_queries = pairs_max;
    rwkv_status s = rwkv_recall_spec_check(&big, err);
    if (s != RWKV_OK) return s;
    if (spec->n_queries < 0) return rwkv_fail(err, RWKV_ERR_ARG, "recall: negative query count");
    big.n_queries = 0;
    const size_t most = rwkv_recall_example_len(&big);
    const size_t cap = n_tokens + most;
    int *ids = malloc(sizeof(int) * cap);
    if (!ids) return rwkv_fail(err, RWKV_ERR_NOMEM, "recall: out of memory for %zu tokens", cap);
    rwkv_recall_rng rng;
    rwkv_recall_seed(&rng, seed);
    size_t n = 0;
    while (n < n_tokens) {
        rwkv_recall_spec e = *spec;
        e.n_pairs = pairs_min + (int)below(&rng, (uint32_t)(pairs_max - pairs_min + 1));
        if (e.n_queries > e.n_pairs) e.n_queries = e.n_pairs;
        n += rwkv_recall_example(&e, &rng, ids + n, cap - n, NULL);
    }
    s = token_file_write(path, ids, n, rwkv_recall_vocab(spec), err);
    free(ids);
    return s;
}

int rwkv_recall_score(const int *tokens, size_t len, const rwkv_recall_answers *answers, const float *logits,
                      int n_vocab) {
    int correct = 0;
    for (int q = 0; q < answers->n; q++) {
        const size_t pos = answers->answer[q]; /* the token to predict */
        if (pos == 0 || pos >= len) continue;
        const float *row = logits + (pos - 1) * (size_t)n_vocab;
        int best = 0;
        for (int v = 1; v < n_vocab; v++)
            if (row[v] > row[best]) best = v;
        correct += best == tokens[pos];
    }
    return correct;
}

double rwkv_recall_unbound_score(const rwkv_recall_spec *s, const int *tokens, size_t len,
                                 const rwkv_recall_answers *answers) {
    int count[RWKV_RECALL_MAX_VALUES] = {0};
    const size_t stride = (size_t)(2 + s->echo), first = preface_len(s) + (s->echo ? 0 : 1);
    int left = 0;
    for (int i = 0; i < s->n_pairs; i++) {
        const size_t at = first + stride * (size_t)i;
        const int v = at < len ? tokens[at] - 2 : -1;
        if (v >= 0 && v < s->n_values) count[v]++, left++;
    }
    double expected = 0;
    for (int q = 0; q < answers->n && left > 0; q++) {
        int most = 0;
        for (int v = 0; v < s->n_values; v++)
            if (count[v] > most) most = count[v];
        expected += (double)most / left;
        /* the true answer is given before the next query */
        const size_t at = answers->answer[q];
        const int v = at < len ? tokens[at] - 2 : -1;
        if (v >= 0 && v < s->n_values && count[v] > 0) count[v]--, left--;
    }
    return expected;
}
