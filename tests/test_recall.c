/* The recall probe's data generator (include/rwkv_recall.h): the layout of
 * an example, the answers' offsets, determinism, the token file, the
 * scoring of predictions and the unbound baseline. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rwkv_recall.h"
#include "test.h"
#include "train/data.h"

static int is_key(const rwkv_recall_spec *s, int t) { return t >= 2 + s->n_values && t < 2 + s->n_values + s->n_keys; }
static int is_value(const rwkv_recall_spec *s, int t) { return t >= 2 && t < 2 + s->n_values; }

/* Checks one example against the documented layout; returns NULL or why. */
static const char *check_layout(const rwkv_recall_spec *s, const int *t, size_t len, const rwkv_recall_answers *a) {
    const int N = s->n_pairs, Q = s->n_queries ? s->n_queries : s->n_pairs;
    if (len != rwkv_recall_example_len(s)) return "length";
    const size_t preface = s->question_first ? 1 + (size_t)Q : 0;
    if (len != preface + (size_t)(2 + s->echo) * N + 3 * (size_t)Q + 1) return "documented length";
    if (t[len - 1] != RWKV_RECALL_END) return "no END at the end";
    if (preface && t[0] != RWKV_RECALL_ASK) return "question-first example without ASK first";
    size_t p = preface;
    int keys[RWKV_RECALL_MAX_KEYS], values[RWKV_RECALL_MAX_KEYS];
    for (int i = 0; i < N; i++) {
        if (s->echo) {
            if (!is_value(s, t[p]) || !is_key(s, t[p + 1]) || t[p + 2] != t[p]) return "pair is not value key value";
            values[i] = t[p], keys[i] = t[p + 1];
            p += 3;
        } else {
            if (!is_key(s, t[p]) || !is_value(s, t[p + 1])) return "pair is not key value";
            keys[i] = t[p], values[i] = t[p + 1];
            p += 2;
        }
        for (int j = 0; j < i; j++)
            if (keys[j] == keys[i]) return "repeated key";
    }
    if (a->n != Q) return "answer count";
    int asked[RWKV_RECALL_MAX_KEYS] = {0};
    for (int q = 0; q < Q; q++) {
        if (t[p++] != RWKV_RECALL_ASK) return "query without ASK";
        const int key = t[p++];
        int i = 0;
        while (i < N && keys[i] != key) i++;
        if (i == N) return "queried key not among the pairs";
        if (asked[i]++) return "key queried twice";
        if (preface && t[1 + q] != key) return "announced key is not the queried one";
        if (a->answer[q] != p) return "answer offset";
        if (t[p] != values[i]) return "answer is not the key's value";
        /* the source is the (first) value token of the same pair */
        if (t[a->source[q]] != values[i]) return "source is not the value";
        if (s->echo ? t[a->source[q] + 1] != key : t[a->source[q] - 1] != key) return "source is not beside its key";
        p++;
    }
    if (p != len - 1) return "trailing tokens";
    return NULL;
}

static void test_layout_and_answers(void) {
    rwkv_recall_spec specs[] = {{1, 1, 2, 0, 1, 0},   {6, 26, 10, 0, 1, 0}, {6, 26, 10, 0, 0, 0}, {4, 8, 3, 2, 1, 0},
                                {20, 256, 10, 0, 1, 0}, {64, 64, 64, 0, 0, 0}, {7, 1024, 2, 7, 1, 0},
                                {1, 1, 2, 0, 1, 1},  {6, 26, 10, 0, 1, 1}, {6, 26, 10, 2, 0, 1}, {20, 256, 10, 4, 1, 1}};
    static int buf[4096];
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        rwkv_recall_spec s = specs[k];
        rwkv_error err;
        CHECK(rwkv_recall_spec_check(&s, &err) == RWKV_OK, "spec %zu: %s", k, err.message);
        CHECK(rwkv_recall_vocab(&s) == 2 + s.n_values + s.n_keys, "vocab");
        CHECK(rwkv_recall_value_token(&s, 0) == 2 && rwkv_recall_key_token(&s, 0) == 2 + s.n_values, "token ids");
        rwkv_recall_rng rng;
        rwkv_recall_seed(&rng, 7 + k);
        for (int e = 0; e < 20; e++) {
            rwkv_recall_answers a;
            size_t n = rwkv_recall_example(&s, &rng, buf, sizeof buf / sizeof buf[0], &a);
            const char *why = check_layout(&s, buf, n, &a);
            char text[512];
            rwkv_recall_render(&s, buf, n, text, sizeof text);
            CHECK(!why, "spec %zu, example %d: %s in '%s'", k, e, why, text);
        }
    }
    rwkv_recall_spec d = rwkv_recall_spec_default();
    CHECK(d.n_pairs == 8 && d.n_keys == 256 && d.n_values == 10 && d.n_queries == 0 && d.echo == 1 &&
              d.question_first == 0,
          "defaults %d %d %d %d %d %d", d.n_pairs, d.n_keys, d.n_values, d.n_queries, d.echo, d.question_first);
}

static void test_render(void) {
    rwkv_recall_spec s = {2, 50, 10, 0, 1, 0};
    const int t[] = {2 + 7, 12 + 12, 2 + 7, 2 + 3, 12 + 40, 2 + 3, RWKV_RECALL_ASK, 12 + 40, 2 + 3, RWKV_RECALL_END, 999};
    char buf[128];
    size_t n = rwkv_recall_render(&s, t, sizeof t / sizeof t[0], buf, sizeof buf);
    const char *want = "7 k12 7 3 k40 3 ASK k40 3 END ?";
    CHECK(!strcmp(buf, want) && n == strlen(want), "rendered '%s' (%zu), want '%s'", buf, n, want);
    char small[8];
    n = rwkv_recall_render(&s, t, sizeof t / sizeof t[0], small, sizeof small);
    CHECK(n == strlen(want) && !strcmp(small, "7 k12 7"), "truncated: '%s', %zu", small, n);
}

static void test_deterministic_and_varied(void) {
    rwkv_recall_spec s = rwkv_recall_spec_default();
    rwkv_recall_rng r1, r2, r3;
    rwkv_recall_seed(&r1, 42);
    rwkv_recall_seed(&r2, 42);
    rwkv_recall_seed(&r3, 43);
    int a[256], b[256], c[256];
    size_t na = rwkv_recall_example(&s, &r1, a, 256, NULL);
    size_t nb = rwkv_recall_example(&s, &r2, b, 256, NULL);
    size_t nc = rwkv_recall_example(&s, &r3, c, 256, NULL);
    CHECK(na == nb && memcmp(a, b, na * sizeof(int)) == 0, "the same seed gave different examples");
    CHECK(na == nc && memcmp(a, c, na * sizeof(int)) != 0, "another seed gave the same example");
    /* every key and every value turns up over many examples; the queries come in varied orders */
    static int seen[2 + 10 + 256];
    int first_query_is_first_pair = 0;
    for (int i = 0; i < 400; i++) {
        rwkv_recall_answers ans;
        size_t n = rwkv_recall_example(&s, &r1, a, 256, &ans);
        for (size_t j = 0; j < n; j++) seen[a[j]]++;
        first_query_is_first_pair += ans.source[0] == 0;
    }
    for (int t = 0; t < rwkv_recall_vocab(&s); t++) CHECK(seen[t] > 0, "token %d never generated", t);
    CHECK(first_query_is_first_pair > 20 && first_query_is_first_pair < 100,
          "the first query asked for the first pair %d times in 400 (expected about 50)", first_query_is_first_pair);
}

/* One seed gives the same pairs and the same queries in both orders: the
 * question-first example is the announcement followed by the other one. */
static void test_orders_share_examples(void) {
    rwkv_recall_spec after = {12, 256, 10, 4, 1, 0}, first = after;
    first.question_first = 1;
    rwkv_recall_rng ra, rf;
    rwkv_recall_seed(&ra, 11);
    rwkv_recall_seed(&rf, 11);
    for (int e = 0; e < 50; e++) {
        int ta[128], tf[128];
        rwkv_recall_answers aa, af;
        const size_t na = rwkv_recall_example(&after, &ra, ta, 128, &aa);
        const size_t nf = rwkv_recall_example(&first, &rf, tf, 128, &af);
        const size_t pre = 1 + 4;
        CHECK(na && nf == na + pre, "lengths %zu and %zu", na, nf);
        CHECK(memcmp(ta, tf + pre, na * sizeof(int)) == 0, "example %d: the orders hold different pairs or queries", e);
        for (int q = 0; q < 4; q++)
            CHECK(af.answer[q] == aa.answer[q] + pre && af.source[q] == aa.source[q] + pre &&
                      tf[1 + q] == ta[aa.answer[q] - 1],
                  "example %d, query %d: answers or announcement", e, q);
        /* the unbound baseline does not depend on the order */
        CHECK(fabs(rwkv_recall_unbound_score(&after, ta, na, &aa) - rwkv_recall_unbound_score(&first, tf, nf, &af)) <
                  1e-12,
              "unbound scores differ between the orders");
    }
}

static void test_bad_arguments(void) {
    rwkv_error err;
    const rwkv_recall_spec bad[] = {{0, 26, 10, 0, 1, 0},  {27, 26, 10, 0, 1, 0}, {3, 26, 1, 0, 1, 0},  {3, 26, 65, 0, 1, 0},
                                    {3, 0, 10, 0, 1, 0},   {3, 1025, 10, 0, 1, 0}, {3, 26, 10, 4, 1, 0}, {3, 26, 10, -1, 1, 0},
                                    {3, 26, 10, 0, 2, 0}, {3, 26, 10, 0, 1, 2}, {3, 26, 10, 0, 1, -1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(rwkv_recall_spec_check(&bad[i], &err) == RWKV_ERR_ARG, "bad spec %zu accepted", i);
    rwkv_recall_spec s = rwkv_recall_spec_default();
    rwkv_recall_rng rng;
    rwkv_recall_seed(&rng, 1);
    int small[10];
    CHECK(rwkv_recall_example(&s, &rng, small, 10, NULL) == 0, "a too small buffer was written");
    CHECK(rwkv_recall_example(&bad[0], &rng, small, 10, NULL) == 0, "a bad spec was written");
    CHECK(rwkv_recall_write_corpus("/tmp/x", &s, 5, 4, 100, 1, &err) == RWKV_ERR_ARG, "pairs max < min accepted");
    CHECK(rwkv_recall_write_corpus("/tmp/x", &s, 0, 4, 100, 1, &err) == RWKV_ERR_ARG, "pairs min 0 accepted");
    CHECK(rwkv_recall_write_corpus("/tmp/x", &s, 1, 257, 100, 1, &err) == RWKV_ERR_ARG, "more pairs than keys accepted");
}

static void test_corpus_file(void) {
    char path[] = "/tmp/rwkv_test_recall_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    rwkv_recall_spec s = {0, 40, 5, 0, 1, 0};
    rwkv_error err;
    CHECK(rwkv_recall_write_corpus(path, &s, 2, 9, 20000, 9, &err) == RWKV_OK, "%s", err.message);
    token_data d;
    CHECK(token_data_open(path, &d, &err) == RWKV_OK, "%s", err.message);
    const uint64_t n = d.n_tokens;
    const int vocab = d.n_vocab;
    int *t = malloc(sizeof(int) * n);
    for (uint64_t i = 0; t && i < n; i++) t[i] = token_at(&d, i);
    token_data_close(&d);
    CHECK(t, "oom");
    CHECK(vocab == rwkv_recall_vocab(&s), "vocabulary %d, want %d", vocab, rwkv_recall_vocab(&s));
    s.n_pairs = 9;
    const size_t longest = rwkv_recall_example_len(&s);
    int ok = n >= 20000 && n < 20000 + longest && t[n - 1] == RWKV_RECALL_END;
    /* every example is well-formed with 2..9 pairs; all of those sizes occur */
    int sizes[10] = {0}, examples = 0;
    const char *why = NULL;
    for (uint64_t p = 0; ok && !why && p < n;) {
        uint64_t e = p;
        while (e < n && t[e] != RWKV_RECALL_END) e++;
        const uint64_t len = e - p + 1;
        int N = 0;
        while ((uint64_t)(6 * (N + 1) + 1) <= len) N++;
        if (N < 2 || N > 9 || len != (uint64_t)(6 * N + 1)) {
            why = "example size";
            break;
        }
        /* the answers: the value after each queried key */
        rwkv_recall_spec es = s;
        es.n_pairs = N;
        rwkv_recall_answers a;
        a.n = N;
        for (int q = 0; q < N; q++) {
            a.answer[q] = (size_t)(3 * N + 3 * q + 2);
            int i = 0;
            while (i < N && t[p + 3 * (size_t)i + 1] != t[p + a.answer[q] - 1]) i++;
            a.source[q] = 3 * (size_t)(i < N ? i : 0);
        }
        why = check_layout(&es, t + p, (size_t)len, &a);
        sizes[N]++;
        examples++;
        p = e + 1;
    }
    free(t);
    unlink(path);
    CHECK(ok, "corpus of %llu tokens", (unsigned long long)n);
    CHECK(!why, "example %d: %s", examples, why);
    for (int N = 2; N <= 9; N++) CHECK(sizes[N] > examples / 20, "%d examples with %d pairs of %d", sizes[N], N, examples);
}

static void test_score(void) {
    rwkv_recall_spec s = {5, 30, 10, 0, 1, 0};
    rwkv_recall_rng rng;
    rwkv_recall_seed(&rng, 5);
    /* the scored example follows another one, as with recall_probe eval --lead 1 */
    int t[128];
    rwkv_recall_answers a;
    const size_t one = rwkv_recall_example(&s, &rng, t, 64, NULL);
    const size_t len = one + rwkv_recall_example(&s, &rng, t + one, 64, &a);
    const int V = rwkv_recall_vocab(&s);
    float *logits = calloc((len - 1) * (size_t)V, sizeof(float));
    CHECK(logits, "oom");
    /* a perfect predictor: every row puts its maximum on the next token */
    for (size_t p = 0; p + 1 < len; p++) logits[p * V + t[p + 1]] = 1.0f;
    const float *lo = logits + one * (size_t)V;
    int all = rwkv_recall_score(t + one, len - one, &a, lo, V);
    /* spoil query 2: its row prefers another value */
    const size_t row = one + a.answer[2] - 1;
    const int wrong = t[row + 1] == 2 ? 3 : 2;
    logits[row * V + wrong] = 2.0f;
    int four = rwkv_recall_score(t + one, len - one, &a, lo, V);
    /* a row of equal logits names token 0 (END), never a value */
    memset(logits + row * V, 0, sizeof(float) * (size_t)V);
    int tie = rwkv_recall_score(t + one, len - one, &a, lo, V);
    free(logits);
    CHECK(all == 5, "a perfect predictor scored %d of 5", all);
    CHECK(four == 4, "one wrong answer: scored %d, want 4", four);
    CHECK(tie == 4, "a flat row: scored %d, want 4", tie);
}

static void test_unbound_baseline(void) {
    /* no echo, N = 3 with values 4, 4, 7; the queries are answered 4, 7, 4:
     * 2/3 (two 4s of three), then 1/2 (a 4 and a 7 left), then 1 */
    rwkv_recall_spec s = {3, 10, 10, 0, 0, 0};
    const int K = 2 + 10, v4 = 2 + 4, v7 = 2 + 7;
    const int t[] = {K + 1, v4, K + 2, v4, K + 3, v7, RWKV_RECALL_ASK, K + 2, v4, RWKV_RECALL_ASK, K + 3, v7,
                     RWKV_RECALL_ASK, K + 1, v4, RWKV_RECALL_END};
    rwkv_recall_answers a = {3, {8, 11, 14}, {3, 5, 1}};
    CHECK(check_layout(&s, t, sizeof t / sizeof t[0], &a) == NULL, "the hand-made example is malformed");
    double u = rwkv_recall_unbound_score(&s, t, sizeof t / sizeof t[0], &a);
    CHECK(fabs(u - (2.0 / 3 + 0.5 + 1)) < 1e-12, "unbound score %.6f, want %.6f", u, 2.0 / 3 + 0.5 + 1);
    /* distinct values: 1/N, 1/(N-1), ..., 1; the same with echo */
    rwkv_recall_spec e = {4, 10, 10, 0, 1, 0};
    const int te[] = {2, K, 2, 3, K + 1, 3, 4, K + 2, 4, 5, K + 3, 5,
                      RWKV_RECALL_ASK, K + 3, 5, RWKV_RECALL_ASK, K, 2, RWKV_RECALL_ASK, K + 2, 4,
                      RWKV_RECALL_ASK, K + 1, 3, RWKV_RECALL_END};
    rwkv_recall_answers ae = {4, {14, 17, 20, 23}, {9, 0, 6, 3}};
    CHECK(check_layout(&e, te, sizeof te / sizeof te[0], &ae) == NULL, "the hand-made echo example is malformed");
    u = rwkv_recall_unbound_score(&e, te, sizeof te / sizeof te[0], &ae);
    CHECK(fabs(u - (0.25 + 1.0 / 3 + 0.5 + 1)) < 1e-12, "unbound score %.6f, want %.6f", u, 0.25 + 1.0 / 3 + 0.5 + 1);
    /* it never beats a perfect model and is 1 per query with a single pair */
    rwkv_recall_spec one = {1, 10, 10, 0, 1, 0};
    rwkv_recall_rng rng;
    rwkv_recall_seed(&rng, 3);
    int t1[8];
    rwkv_recall_example(&one, &rng, t1, 8, &a);
    CHECK(rwkv_recall_unbound_score(&one, t1, 8, &a) == 1.0, "one pair: unbound score not 1");
}

int main(void) {
    RUN(test_layout_and_answers);
    RUN(test_render);
    RUN(test_deterministic_and_varied);
    RUN(test_orders_share_examples);
    RUN(test_bad_arguments);
    RUN(test_corpus_file);
    RUN(test_score);
    RUN(test_unbound_baseline);
    return test_summary();
}
