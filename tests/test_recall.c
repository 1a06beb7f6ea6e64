/* The recall probe's data generator (include/rwkv_recall.h): the layout of
 * an example, the answers' offsets, determinism, the corpus file and the
 * scoring of predictions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rwkv_recall.h"
#include "test.h"

static int is_filler(char c) { return (c >= 'a' && c <= 'z') || c == ' '; }

/* Checks one example against the documented layout; returns NULL or why. */
static const char *check_layout(const rwkv_recall_spec *s, const char *t, size_t len, int D,
                                const rwkv_recall_answers *a) {
    const int P = s->n_pairs, K = s->value_len, Q = s->n_queries;
    if (len != rwkv_recall_example_len(s, D)) return "length";
    if (t[len - 1] != '\n') return "no newline at the end";
    size_t p = 0;
    char keys[RWKV_RECALL_MAX_PAIRS];
    for (int i = 0; i < P; i++) {
        if (i && t[p++] != ' ') return "pairs not separated by spaces";
        if (t[p] < 'A' || t[p] > 'Z') return "key not a capital letter";
        keys[i] = t[p++];
        for (int j = 0; j < i; j++)
            if (keys[j] == keys[i]) return "repeated key";
        for (int d = 0; d < K; d++, p++)
            if (t[p] < '0' || t[p] > '9') return "value not digits";
    }
    if (t[p++] != '|') return "no '|' after the pairs";
    for (int i = 0; i < D; i++, p++)
        if (!is_filler(t[p])) return "filler outside [a-z ]";
    if (t[p++] != '|') return "no '|' after the filler";
    if (a->n != Q) return "answer count";
    for (int q = 0; q < Q; q++) {
        if (q && t[p++] != ' ') return "queries not separated by spaces";
        const char key = t[p++];
        if (a->answer[q] != p) return "answer offset";
        /* the source is the value of the same key in the pair list */
        if (a->source[q] < 1 || t[a->source[q] - 1] != key) return "source is not after the same key";
        if (memcmp(t + a->answer[q], t + a->source[q], (size_t)K) != 0) return "answer differs from its value";
        p += (size_t)K;
    }
    if (p != len - 1) return "trailing bytes";
    return NULL;
}

static void test_layout_and_answers(void) {
    rwkv_recall_spec specs[] = {{6, 1, 0}, {1, 1, 1}, {4, 2, 3}, {26, 3, 26}};
    char buf[4096];
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        rwkv_recall_spec s = specs[k];
        rwkv_error err;
        CHECK(rwkv_recall_spec_check(&s, &err) == RWKV_OK, "%s", err.message);
        rwkv_recall_rng rng;
        rwkv_recall_seed(&rng, 7 + k);
        for (int D = 0; D < 300; D += 37) {
            rwkv_recall_answers a;
            size_t n = rwkv_recall_example(&s, &rng, D, buf, sizeof buf, &a);
            const char *why = check_layout(&s, buf, n, D, &a);
            CHECK(!why, "spec %zu, distance %d: %s in '%.*s'", k, D, why, (int)n, buf);
        }
    }
    rwkv_recall_spec d = rwkv_recall_spec_default();
    CHECK(d.n_pairs == 6 && d.value_len == 1, "defaults %d %d", d.n_pairs, d.value_len);
}

static void test_deterministic_and_varied(void) {
    rwkv_recall_spec s = rwkv_recall_spec_default();
    rwkv_recall_rng r1, r2, r3;
    rwkv_recall_seed(&r1, 42);
    rwkv_recall_seed(&r2, 42);
    rwkv_recall_seed(&r3, 43);
    char a[256], b[256], c[256];
    size_t na = rwkv_recall_example(&s, &r1, 50, a, sizeof a, NULL);
    size_t nb = rwkv_recall_example(&s, &r2, 50, b, sizeof b, NULL);
    size_t nc = rwkv_recall_example(&s, &r3, 50, c, sizeof c, NULL);
    CHECK(na == nb && memcmp(a, b, na) == 0, "the same seed gave different examples");
    CHECK(na == nc && memcmp(a, c, na) != 0, "another seed gave the same example");
    /* every filler symbol and every digit value turns up over many examples */
    int seen[256] = {0};
    for (int i = 0; i < 200; i++) {
        size_t n = rwkv_recall_example(&s, &r1, 30, a, sizeof a, NULL);
        for (size_t j = 0; j < n; j++) seen[(unsigned char)a[j]]++;
    }
    for (const char *p = "abcdefghijklmnopqrstuvwxyz 0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"; *p; p++)
        CHECK(seen[(unsigned char)*p] > 0, "'%c' never generated", *p);
}

static void test_bad_arguments(void) {
    rwkv_recall_spec s = {0, 1, 0};
    rwkv_error err;
    CHECK(rwkv_recall_spec_check(&s, &err) == RWKV_ERR_ARG, "0 pairs accepted");
    s = (rwkv_recall_spec){27, 1, 0};
    CHECK(rwkv_recall_spec_check(&s, &err) == RWKV_ERR_ARG, "27 pairs accepted (26 keys)");
    s = (rwkv_recall_spec){3, 9, 0};
    CHECK(rwkv_recall_spec_check(&s, &err) == RWKV_ERR_ARG, "value length 9 accepted");
    s = (rwkv_recall_spec){3, 1, 4};
    CHECK(rwkv_recall_spec_check(&s, &err) == RWKV_ERR_ARG, "more queries than pairs accepted");
    s = rwkv_recall_spec_default();
    rwkv_recall_rng rng;
    rwkv_recall_seed(&rng, 1);
    char small[10];
    CHECK(rwkv_recall_example(&s, &rng, 5, small, sizeof small, NULL) == 0, "a too small buffer was written");
    CHECK(rwkv_recall_example(&s, &rng, -1, small, sizeof small, NULL) == 0, "a negative distance was accepted");
    CHECK(rwkv_recall_write_corpus("/tmp/x", &s, 100, 10, 5, 0, 1, &err) == RWKV_ERR_ARG, "dmax < dmin accepted");
}

static void test_corpus_file(void) {
    char path[] = "/tmp/rwkv_test_recall_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    rwkv_recall_spec s = {3, 2, 0};
    rwkv_error err;
    for (int log_uniform = 0; log_uniform <= 1; log_uniform++) {
        CHECK(rwkv_recall_write_corpus(path, &s, 20000, 5, 60, log_uniform, 9, &err) == RWKV_OK, "%s", err.message);
        FILE *f = fopen(path, "rb");
        CHECK(f, "cannot open %s", path);
        static char text[40000];
        size_t n = fread(text, 1, sizeof text, f);
        fclose(f);
        CHECK(n >= 20000 && n < 20000 + rwkv_recall_example_len(&s, 60) && text[n - 1] == '\n',
              "corpus of %zu bytes", n);
        /* every line is a well-formed example with a distance in [5, 60] */
        int lines = 0, short_ones = 0;
        for (size_t p = 0; p < n;) {
            const char *nl = memchr(text + p, '\n', n - p);
            CHECK(nl, "unterminated line");
            size_t len = (size_t)(nl - (text + p)) + 1;
            int D = (int)len - (int)rwkv_recall_example_len(&s, 0);
            CHECK(D >= 5 && D <= 60, "line %d: distance %d", lines, D);
            short_ones += D <= 7;
            lines++;
            p += len;
        }
        /* log-uniform puts about 1/log2(56)*... many more examples at the short end than uniform (3/56) */
        if (log_uniform) CHECK(short_ones * 5 > lines, "log-uniform: %d of %d lines at distance <= 7", short_ones, lines);
        else CHECK(short_ones * 5 < lines, "uniform: %d of %d lines at distance <= 7", short_ones, lines);
    }
    unlink(path);
}

static void test_score(void) {
    rwkv_recall_spec s = {3, 2, 0};
    rwkv_recall_rng rng;
    rwkv_recall_seed(&rng, 5);
    char t[256];
    rwkv_recall_answers a;
    size_t len = rwkv_recall_example(&s, &rng, 12, t, sizeof t, &a);
    const int V = 256;
    float *logits = calloc((len - 1) * V, sizeof(float));
    CHECK(logits, "oom");
    /* a perfect predictor: every row puts its maximum on the next byte */
    for (size_t p = 0; p + 1 < len; p++) logits[p * V + (unsigned char)t[p + 1]] = 1.0f;
    int all = rwkv_recall_score(&s, t, len, &a, logits, V);
    /* spoil the second digit of query 1: that query fails, the others stand */
    size_t row = a.answer[1] + 1 - 1;
    logits[row * V + (unsigned char)t[row + 1]] = 0.0f;
    logits[row * V + 'x'] = 2.0f;
    int two = rwkv_recall_score(&s, t, len, &a, logits, V);
    free(logits);
    CHECK(all == 3, "a perfect predictor scored %d of 3", all);
    CHECK(two == 2, "one wrong digit: scored %d, want 2", two);
}

int main(void) {
    RUN(test_layout_and_answers);
    RUN(test_deterministic_and_varied);
    RUN(test_bad_arguments);
    RUN(test_corpus_file);
    RUN(test_score);
    return test_summary();
}
