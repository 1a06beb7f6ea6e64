/* Evaluation (src/eval.c): perplexity over token ids against a direct
 * computation from rwkv_eval_sequence's logits, windows carrying the state,
 * the LAMBADA reader (JSON escapes, blank lines, the split at the last space)
 * and LAMBADA scoring against a direct computation; the same for the GPT
 * baseline (through the same calls) against its whole-sequence forward
 * (model_forward): one window, the sliding window
 * over a longer text (every token scored once), LAMBADA with left truncation. */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "model/model.h"
#include "rwkv.h"
#include "rwkv_eval.h"
#include "rwkv_tokenizer.h"
#include "rwkv_train.h"
#include "test.h"
#include "init_model.h"

#define TINY "testvectors/rwkv4/tiny/model.f32.safetensors"

static rwkv_model *load_tiny(char *why, size_t size) {
    char path[800];
    if (!shared_path(path, sizeof path, TINY)) {
        snprintf(why, size, "%s not found", path);
        return NULL;
    }
    rwkv_model *m;
    rwkv_error err;
    if (rwkv_model_load(path, &m, &err) != RWKV_OK) {
        snprintf(why, size, "load failed: %s", err.message);
        return NULL;
    }
    rwkv_model_set_threads(m, 2);
    return m;
}

static double logprob(const float *l, int V, int target, int *top) {
    double mx = l[0];
    int arg = 0;
    for (int i = 1; i < V; i++)
        if (l[i] > mx) mx = l[i], arg = i;
    double s = 0;
    for (int i = 0; i < V; i++) s += exp(l[i] - mx);
    if (top) *top = arg == target;
    return l[target] - mx - log(s);
}

enum { NTOK = 50 };
static void make_tokens(int *t, int V) {
    uint32_t x = 2463534242u;
    for (int i = 0; i < NTOK; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        t[i] = (int)(x % (uint32_t)V);
    }
}

static int progress_calls;
static int64_t progress_last;
static int count_progress(int64_t done, int64_t total, void *user) {
    (void)total;
    progress_calls++;
    progress_last = done;
    return user != NULL && done >= *(int64_t *)user;
}

static void test_perplexity_equals_direct(void) {
    char why[900];
    rwkv_model *m = load_tiny(why, sizeof why);
    if (!m) SKIP("%s", why);
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    const int V = info.n_vocab;
    int tok[NTOK];
    make_tokens(tok, V);
    /* direct: one sequence call, all logits */
    rwkv_state *st;
    rwkv_error err;
    CHECK(rwkv_state_new(m, &st, &err) == RWKV_OK, "%s", err.message);
    float *logits = malloc(sizeof(float) * NTOK * (size_t)V);
    rwkv_status s = rwkv_eval_sequence(m, st, tok, NTOK - 1, logits, 1, &err);
    double nll = 0;
    int top1 = 0;
    for (int i = 0; i < NTOK - 1; i++) {
        int top;
        nll -= logprob(logits + (size_t)i * V, V, tok[i + 1], &top);
        top1 += top;
    }
    free(logits);
    rwkv_state_free(st);
    rwkv_ppl_result r;
    rwkv_ppl_options o = {.window = 1000, .progress = count_progress};
    progress_calls = 0;
    rwkv_status s2 = rwkv_eval_perplexity(m, tok, NTOK, &o, &r, &err);
    rwkv_model_free(m);
    CHECK(s == RWKV_OK && s2 == RWKV_OK, "%s", err.message);
    CHECK(r.n_tokens == NTOK - 1 && r.n_bytes == NTOK - 1, "counted %lld tokens, %lld bytes", (long long)r.n_tokens,
          (long long)r.n_bytes);
    CHECK(fabs(r.nll - nll) <= 1e-9 * nll, "nll %.12g vs direct %.12g", r.nll, nll);
    CHECK(fabs(r.perplexity - exp(nll / (NTOK - 1))) <= 1e-9 * r.perplexity, "perplexity %.12g", r.perplexity);
    CHECK(fabs(r.bits_per_byte - nll / ((NTOK - 1) * log(2.0))) < 1e-12, "bits per byte %.12g", r.bits_per_byte);
    CHECK(r.n_top1 == top1, "top-1 hits %lld vs %d", (long long)r.n_top1, top1);
    CHECK(progress_calls == 1 && progress_last == NTOK - 1, "progress called %d times, last %lld", progress_calls,
          (long long)progress_last);
    printf("  tiny model, %d random tokens: loss %.6f nats/token, perplexity %.4f\n", NTOK, r.loss, r.perplexity);
}

static void test_windows_carry_state(void) {
    char why[900];
    rwkv_model *m = load_tiny(why, sizeof why);
    if (!m) SKIP("%s", why);
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    int tok[NTOK];
    make_tokens(tok, info.n_vocab);
    rwkv_error err;
    rwkv_ppl_result one, w;
    rwkv_ppl_options o = {0}; /* default window (512) covers it all */
    CHECK(rwkv_eval_perplexity(m, tok, NTOK, &o, &one, &err) == RWKV_OK, "%s", err.message);
    static const size_t windows[] = {1, 3, 7, 16, 48, 49};
    for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
        o.window = windows[i];
        o.progress = count_progress;
        progress_calls = 0;
        rwkv_status s = rwkv_eval_perplexity(m, tok, NTOK, &o, &w, &err);
        if (s != RWKV_OK) rwkv_model_free(m);
        CHECK(s == RWKV_OK, "%s", err.message);
        int want_calls = (int)((NTOK - 1 + windows[i] - 1) / windows[i]);
        if (fabs(w.nll - one.nll) > 1e-5 * one.nll || w.n_top1 != one.n_top1 || progress_calls != want_calls) {
            rwkv_model_free(m);
            CHECK(0, "window %zu: nll %.9g vs %.9g, top1 %lld vs %lld, %d progress calls", windows[i], w.nll, one.nll,
                  (long long)w.n_top1, (long long)one.n_top1, progress_calls);
        }
    }
    /* stopping early after >= 10 tokens, windows of 4: 12 tokens scored */
    int64_t stop_at = 10;
    o.window = 4;
    o.user = &stop_at;
    rwkv_status s = rwkv_eval_perplexity(m, tok, NTOK, &o, &w, &err);
    /* too few tokens, bad token */
    rwkv_status few = rwkv_eval_perplexity(m, tok, 1, NULL, &one, NULL);
    int bad[3] = {1, 2, 100000};
    rwkv_status oov = rwkv_eval_perplexity(m, bad, 3, NULL, &one, &err);
    rwkv_model_free(m);
    CHECK(s == RWKV_OK && w.stopped && w.n_tokens == 12, "stop: status %d, stopped %d, %lld tokens", s, w.stopped,
          (long long)w.n_tokens);
    CHECK(few == RWKV_ERR_ARG, "a single token was accepted");
    CHECK(oov == RWKV_ERR_ARG && strstr(err.message, "100000"), "out-of-vocabulary token: %s", err.message);
}

static void test_byte_count_with_tokenizer(void) {
    char why[900];
    rwkv_model *m = load_tiny(why, sizeof why);
    if (!m) SKIP("%s", why);
    rwkv_tokenizer *tok;
    rwkv_error err;
    rwkv_status s = rwkv_tokenizer_load("bytes", &tok, &err);
    if (s != RWKV_OK) rwkv_model_free(m);
    CHECK(s == RWKV_OK, "%s", err.message);
    const char *text = "0123 4567, 89:;<=>?"; /* bytes below the tiny model's 64 */
    int *ids;
    size_t n;
    s = rwkv_tokenize(tok, text, strlen(text), &ids, &n, &err);
    rwkv_ppl_result r;
    rwkv_ppl_options o = {.window = 5, .tokenizer = tok};
    if (s == RWKV_OK) s = rwkv_eval_perplexity(m, ids, n, &o, &r, &err);
    rwkv_free(ids);
    rwkv_tokenizer_free(tok);
    rwkv_model_free(m);
    CHECK(s == RWKV_OK, "%s", err.message);
    CHECK(r.n_bytes == (int64_t)strlen(text) - 1 && r.n_tokens == r.n_bytes, "%lld bytes, %lld tokens",
          (long long)r.n_bytes, (long long)r.n_tokens);
}

/* ---- LAMBADA ---- */

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

static void test_lambada_split_rule(void) {
    size_t k = 99;
    CHECK(rwkv_lambada_split("a b  c", 6, &k) && k == 4, "'a b  c' split at %zu", k);
    CHECK(rwkv_lambada_split("hello world", 11, &k) && k == 5, "split at %zu", k);
    CHECK(rwkv_lambada_split("ends with ", 10, &k) && k == 9, "trailing space: split at %zu", k);
    CHECK(rwkv_lambada_split(" x", 2, &k) && k == 0, "leading space: split at %zu", k);
    CHECK(!rwkv_lambada_split("nospace", 7, &k), "a text without a space was split");
    /* only U+0020 counts (Python rsplit(' ', 1)): tabs and newlines do not */
    CHECK(rwkv_lambada_split("a b\tc\nd", 7, &k) && k == 1, "split at %zu", k);
}

static void test_lambada_reader(void) {
    char path[] = "/tmp/rwkv-lambada-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp failed");
    close(fd);
    const char *jsonl =
        "{\"text\": \"He said \\\"stop\\\" and\\nleft the room\"}\n"
        "\n"
        "{\"text\": \"caf\\u00e9 au lait\", \"extra\": 1}\r\n"
        "   \n"
        "{\"text\": \"tab\\tin the last word\\there\"}\n"
        "{\"text\": \"third one\"}";
    CHECK(write_file(path, jsonl), "cannot write %s", path);
    rwkv_lambada_set *set;
    rwkv_error err;
    rwkv_status s = rwkv_lambada_read(path, 0, &set, &err);
    if (s != RWKV_OK) unlink(path);
    CHECK(s == RWKV_OK, "%s", err.message);
    int ok = set->count == 4;
    const char *want0 = "He said \"stop\" and\nleft the room";
    ok = ok && strcmp(set->items[0].text, want0) == 0 && set->items[0].len == strlen(want0) &&
         strcmp(set->items[0].text + set->items[0].split, " room") == 0;
    ok = ok && strcmp(set->items[1].text, "caf\xc3\xa9 au lait") == 0 &&
         strcmp(set->items[1].text + set->items[1].split, " lait") == 0;
    ok = ok && strcmp(set->items[2].text + set->items[2].split, " word\there") == 0;
    ok = ok && set->items[3].split == 5;
    size_t count = set->count;
    rwkv_lambada_free(set);
    /* limit */
    s = rwkv_lambada_read(path, 2, &set, &err);
    size_t limited = s == RWKV_OK ? set->count : 0;
    if (s == RWKV_OK) rwkv_lambada_free(set);
    /* errors name the line */
    write_file(path, "{\"text\": \"fine text\"}\n{\"text\": \"oneword\"}\n");
    rwkv_status nospace = rwkv_lambada_read(path, 0, &set, &err);
    int names_line = strstr(err.message, "line 2") != NULL;
    write_file(path, "{\"text\": \"fine text\"}\n\n{\"text\": 5}\n");
    rwkv_status notstr = rwkv_lambada_read(path, 0, &set, &err);
    int names_line3 = strstr(err.message, "line 3") != NULL;
    write_file(path, "{\"text\": \"broken\n");
    rwkv_status broken = rwkv_lambada_read(path, 0, &set, &err);
    unlink(path);
    rwkv_status missing = rwkv_lambada_read("/nonexistent/lambada.jsonl", 0, &set, &err);
    CHECK(ok, "parsed wrongly (%zu examples)", count);
    CHECK(limited == 2, "limit 2 gave %zu", limited);
    CHECK(nospace == RWKV_ERR_FORMAT && names_line, "no-space line: %d", nospace);
    CHECK(notstr == RWKV_ERR_FORMAT && names_line3, "non-string text: %d", notstr);
    CHECK(broken == RWKV_ERR_FORMAT, "broken JSON: %d", broken);
    CHECK(missing == RWKV_ERR_IO && strstr(err.message, "/nonexistent"), "missing file: %s", err.message);
}

static int lambada_steps;
static int count_steps(const rwkv_lambada_step *st, void *user) {
    (void)user;
    lambada_steps++;
    return st->index + 1 >= 100; /* never stops these small sets */
}

/* Byte-level passages (bytes below 64, the test models' vocabulary). */
static const char *const byte_texts[] = {"12 34 56 78", "0000 0000 0000 0000", "9:;< =>? 7", "1 2", "3333 33333333"};
enum { N_BYTE_TEXTS = sizeof byte_texts / sizeof byte_texts[0] };

/* byte_texts as a LAMBADA set (free set.items). */
static rwkv_lambada_set byte_set(void) {
    rwkv_lambada_set set = {calloc(N_BYTE_TEXTS, sizeof(rwkv_lambada_example)), N_BYTE_TEXTS};
    for (size_t i = 0; set.items && i < set.count; i++) {
        set.items[i].text = (char *)byte_texts[i];
        set.items[i].len = strlen(byte_texts[i]);
        rwkv_lambada_split(byte_texts[i], set.items[i].len, &set.items[i].split);
    }
    return set;
}

/* ids = [0] + the bytes of t; returns strlen(t). */
static size_t byte_ids(const char *t, int *ids) {
    size_t len = strlen(t);
    ids[0] = 0;
    for (size_t j = 0; j < len; j++) ids[1 + j] = (unsigned char)t[j];
    return len;
}

/* LAMBADA scores on the tiny model equal a direct computation: feed
 * [0] + context + target in one call and read the target positions. */
static void test_lambada_scoring(void) {
    char why[900];
    rwkv_model *m = load_tiny(why, sizeof why);
    if (!m) SKIP("%s", why);
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    const int V = info.n_vocab;
    rwkv_tokenizer *tok;
    rwkv_error err;
    CHECK(rwkv_tokenizer_load("bytes", &tok, &err) == RWKV_OK, "%s", err.message);
    const size_t N = N_BYTE_TEXTS;
    rwkv_lambada_set set = byte_set();
    rwkv_lambada_result r;
    lambada_steps = 0;
    rwkv_status s = rwkv_eval_lambada(m, tok, &set, count_steps, NULL, &r, &err);
    /* direct */
    double sum = 0;
    int correct = 0, ntgt = 0;
    rwkv_state *st = NULL;
    if (s == RWKV_OK) s = rwkv_state_new(m, &st, &err);
    for (size_t i = 0; i < N && s == RWKV_OK; i++) {
        int ids[64];
        size_t len = byte_ids(byte_texts[i], ids), split = set.items[i].split;
        float *lg = malloc(sizeof(float) * (len + 1) * (size_t)V);
        rwkv_state_reset(st);
        s = rwkv_eval_sequence(m, st, ids, len, lg, 1, &err);
        int all = 1;
        for (size_t j = split; j < len; j++) { /* target byte j is ids[j+1], predicted at row j */
            int top;
            sum += logprob(lg + j * (size_t)V, V, ids[j + 1], &top);
            all &= top;
            ntgt++;
        }
        correct += all;
        free(lg);
    }
    rwkv_state_free(st);
    rwkv_tokenizer_free(tok);
    rwkv_model_free(m);
    free(set.items);
    CHECK(s == RWKV_OK, "%s", err.message);
    CHECK(r.n_examples == (int64_t)N && lambada_steps == (int)N, "%lld examples, %d callbacks",
          (long long)r.n_examples, lambada_steps);
    CHECK(r.n_target_tokens == ntgt, "%lld target tokens vs %d", (long long)r.n_target_tokens, ntgt);
    CHECK(fabs(r.sum_logprob - sum) < 1e-4 * fabs(sum), "sum log-prob %.9g vs direct %.9g", r.sum_logprob, sum);
    CHECK(r.n_correct == correct, "%lld correct vs %d", (long long)r.n_correct, correct);
    CHECK(fabs(r.perplexity - exp(-sum / (double)N)) < 1e-4 * r.perplexity, "perplexity %.9g", r.perplexity);
    CHECK(fabs(r.accuracy - (double)correct / (double)N) < 1e-12, "accuracy %.9g", r.accuracy);
    printf("  tiny model, %zu byte-level passages: accuracy %.3f, perplexity %.4f\n", N, r.accuracy, r.perplexity);
}

/* The real file: the first passages parse, and with rwkv.cpp's byte-level
 * 660K model the scoring runs end to end. */
static void test_lambada_real_file(void) {
    char data[900], model[900];
    if (!shared_path(data, sizeof data, "data/lambada/lambada_test.jsonl")) SKIP("%s not found", data);
    rwkv_lambada_set *set;
    rwkv_error err;
    CHECK(rwkv_lambada_read(data, 3, &set, &err) == RWKV_OK, "%s", err.message);
    int ok = set->count == 3;
    for (size_t i = 0; ok && i < set->count; i++) {
        const rwkv_lambada_example *e = &set->items[i];
        ok = e->text[e->split] == ' ' && !memchr(e->text + e->split + 1, ' ', e->len - e->split - 1) &&
             e->len > e->split + 1;
    }
    if (!ok) rwkv_lambada_free(set);
    CHECK(ok, "unexpected passages");
    if (!shared_path(model, sizeof model, "reference/rwkv-cpp/tiny-rwkv-4v0-660K-FP32.bin")) {
        rwkv_lambada_free(set);
        SKIP("%s not found", model);
    }
    rwkv_model *m;
    rwkv_tokenizer *tok;
    rwkv_lambada_result r;
    rwkv_status s = rwkv_model_load(model, &m, &err);
    if (s == RWKV_OK) {
        rwkv_model_set_threads(m, 2);
        s = rwkv_tokenizer_load("bytes", &tok, &err);
        if (s == RWKV_OK) {
            s = rwkv_eval_lambada(m, tok, set, NULL, NULL, &r, &err);
            rwkv_tokenizer_free(tok);
        }
        rwkv_model_free(m);
    }
    rwkv_lambada_free(set);
    CHECK(s == RWKV_OK, "%s", err.message);
    CHECK(r.n_examples == 3 && isfinite(r.perplexity) && r.perplexity > 1, "%lld examples, perplexity %g",
          (long long)r.n_examples, r.perplexity);
}

/* ---- the GPT baseline ---- */

/* A fresh GPT (GPT-2 init, a fixed seed) written to a temporary file and
 * loaded; vocabulary 64 so the byte texts above fit. NULL with *why set. */
static rwkv_model *make_gpt(int n_ctx, char *why, size_t size) {
    rwkv_init_options o = rwkv_init_options_default();
    o.arch = "gpt";
    o.n_layer = 2;
    o.n_embd = 32;
    o.n_head = 2;
    o.n_vocab = 64;
    o.n_ctx = n_ctx;
    o.seed = 11;
    return init_model(&o, why, size);
}

/* Shorter than the context: one window, the same numbers as one forward
 * over tokens[0 .. n-2]. */
static void test_gpt_perplexity_one_window(void) {
    char why[600];
    rwkv_model *g = make_gpt(64, why, sizeof why);
    CHECK(g, "%s", why);
    const int V = 64;
    int tok[NTOK];
    make_tokens(tok, V);
    float *logits = malloc(sizeof(float) * NTOK * (size_t)V);
    rwkv_error err;
    rwkv_status s = model_forward(g, tok, NTOK - 1, logits, &err);
    double nll = 0;
    int top1 = 0;
    for (int i = 0; s == RWKV_OK && i < NTOK - 1; i++) {
        int top;
        nll -= logprob(logits + (size_t)i * V, V, tok[i + 1], &top);
        top1 += top;
    }
    free(logits);
    rwkv_ppl_result r;
    rwkv_ppl_options o = {.progress = count_progress};
    progress_calls = 0;
    rwkv_status s2 = s == RWKV_OK ? rwkv_eval_perplexity(g, tok, NTOK, &o, &r, &err) : s;
    rwkv_model_free(g);
    CHECK(s == RWKV_OK && s2 == RWKV_OK, "%s", err.message);
    CHECK(r.n_tokens == NTOK - 1 && r.n_bytes == NTOK - 1 && r.n_windows == 1, "%lld tokens, %lld bytes, %lld windows",
          (long long)r.n_tokens, (long long)r.n_bytes, (long long)r.n_windows);
    CHECK(fabs(r.nll - nll) <= 1e-12 * nll, "nll %.15g vs direct %.15g", r.nll, nll);
    CHECK(fabs(r.perplexity - exp(nll / (NTOK - 1))) <= 1e-12 * r.perplexity, "perplexity %.15g", r.perplexity);
    CHECK(r.n_top1 == top1, "top-1 hits %lld vs %d", (long long)r.n_top1, top1);
    CHECK(r.context == NTOK - 1 && r.window == NTOK - 1, "context %lld, window %lld", (long long)r.context,
          (long long)r.window);
    CHECK(progress_calls == 1 && progress_last == NTOK - 1, "progress called %d times", progress_calls);
    printf("  fresh GPT 2x32 ctx 64, %d random tokens: loss %.6f nats/token\n", NTOK, r.loss);
}

/* Longer than the context: the windows of the documented rule, computed here
 * block by block from model_forward; every token is scored exactly once
 * and, past the first window, from at least W - S + 1 tokens. */
static void test_gpt_perplexity_sliding_window(void) {
    enum { N = 157, CTX = 16 };
    char why[600];
    rwkv_model *g = make_gpt(CTX, why, sizeof why);
    CHECK(g, "%s", why);
    const int V = 64;
    int tok[N];
    uint32_t x = 99u;
    for (int i = 0; i < N; i++) {
        x = x * 1664525u + 1013904223u;
        tok[i] = (int)((x >> 8) % (uint32_t)V);
    }
    static const size_t cases[][2] = {{0, 0}, {CTX, 1}, {CTX, 5}, {CTX, CTX}, {10, 3}, {2, 0}, {1, 1}};
    float *logits = malloc(sizeof(float) * CTX * (size_t)V);
    rwkv_error err;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const size_t W = cases[c][0] ? cases[c][0] : CTX;
        const size_t S = cases[c][1] ? cases[c][1] : W - W / 2;
        int count[N] = {0};
        double nll = 0;
        int64_t top1 = 0, windows = 0;
        int ctx_ok = 1;
        rwkv_status s = RWKV_OK;
        for (size_t next = 1; next < N && s == RWKV_OK; windows++) {
            size_t end = next == 1 ? W + 1 : next + S; /* this window scores tokens [next, end) */
            if (end > N) end = N;
            size_t lo = end - 1 > W ? end - 1 - W : 0; /* and is fed tokens [lo, end - 1) */
            s = model_forward(g, tok + lo, end - 1 - lo, logits, &err);
            for (size_t p = next; p < end && s == RWKV_OK; p++) {
                int top;
                nll -= logprob(logits + (p - 1 - lo) * (size_t)V, V, tok[p], &top);
                top1 += top;
                count[p]++;
                if (p > W && p - lo < W - S + 1) ctx_ok = 0;
            }
            next = end;
        }
        int once = 1;
        for (int p = 1; p < N; p++) once &= count[p] == 1;
        rwkv_ppl_result r;
        rwkv_ppl_options o = {.window = cases[c][0], .stride = cases[c][1], .progress = count_progress};
        progress_calls = 0;
        rwkv_status s2 = s == RWKV_OK ? rwkv_eval_perplexity(g, tok, N, &o, &r, &err) : s;
        int same = s2 == RWKV_OK && r.n_tokens == N - 1 && r.n_windows == windows && progress_calls == windows &&
                   fabs(r.nll - nll) <= 1e-12 * nll && r.n_top1 == top1 && r.window == (int64_t)W &&
                   r.stride == (int64_t)S && r.context == (int64_t)W;
        if (!same || !once || !ctx_ok) {
            free(logits);
            rwkv_model_free(g);
        }
        CHECK(s == RWKV_OK && s2 == RWKV_OK, "%s", err.message);
        CHECK(once && ctx_ok, "window %zu stride %zu: the direct computation is wrong", W, S);
        CHECK(same,
              "window %zu stride %zu: %lld tokens, %lld windows (want %lld, %d progress calls), nll %.15g vs "
              "%.15g, top-1 %lld vs %lld, reported window %lld stride %lld context %lld",
              W, S, (long long)r.n_tokens, (long long)r.n_windows, (long long)windows, progress_calls, r.nll, nll,
              (long long)r.n_top1, (long long)top1, (long long)r.window, (long long)r.stride, (long long)r.context);
    }
    free(logits);
    /* bad windows; a stride is for the GPT only */
    int few[1] = {1};
    rwkv_ppl_result r;
    rwkv_status wide = rwkv_eval_perplexity(g, tok, N, &(rwkv_ppl_options){.window = CTX + 1}, &r, &err);
    int names_ctx = strstr(err.message, "16") != NULL;
    rwkv_status stride = rwkv_eval_perplexity(g, tok, N, &(rwkv_ppl_options){.window = 8, .stride = 9}, &r, NULL);
    rwkv_status one = rwkv_eval_perplexity(g, few, 1, NULL, &r, NULL);
    int bad[3] = {1, 2, 64};
    rwkv_status oov = rwkv_eval_perplexity(g, bad, 3, NULL, &r, &err);
    int names_tok = strstr(err.message, "64") != NULL;
    rwkv_model_free(g);
    CHECK(wide == RWKV_ERR_ARG && names_ctx, "a window wider than n_ctx: %d", wide);
    CHECK(stride == RWKV_ERR_ARG, "a stride wider than the window: %d", stride);
    CHECK(one == RWKV_ERR_ARG, "a single token was accepted");
    CHECK(oov == RWKV_ERR_ARG && names_tok, "out-of-vocabulary token: %d", oov);
    char mwhy[900];
    rwkv_model *m = load_tiny(mwhy, sizeof mwhy);
    if (!m) SKIP("%s", mwhy);
    rwkv_status rs = rwkv_eval_perplexity(m, tok, 20, &(rwkv_ppl_options){.stride = 4}, &r, NULL);
    rwkv_model_free(m);
    CHECK(rs == RWKV_ERR_ARG, "RWKV accepted a stride");
}

/* LAMBADA with the GPT equals a direct computation: one forward over the
 * last n_ctx tokens of [0] + context + target (all but its last token). */
static void test_gpt_lambada_scoring(void) {
    enum { CTX = 12 };
    char why[600];
    rwkv_model *g = make_gpt(CTX, why, sizeof why);
    CHECK(g, "%s", why);
    const int V = 64;
    rwkv_tokenizer *tok;
    rwkv_error err;
    if (rwkv_tokenizer_load("bytes", &tok, &err) != RWKV_OK) rwkv_model_free(g);
    CHECK(tok, "%s", err.message);
    /* fed lengths 11, 19, 10, 3, 13: the second and the last are truncated */
    const size_t N = N_BYTE_TEXTS;
    rwkv_lambada_set set = byte_set();
    rwkv_lambada_result r;
    lambada_steps = 0;
    rwkv_status s = rwkv_eval_lambada(g, tok, &set, count_steps, NULL, &r, &err);
    double sum = 0;
    int correct = 0, ntgt = 0, truncated = 0;
    float *lg = malloc(sizeof(float) * CTX * (size_t)V);
    for (size_t i = 0; i < N && s == RWKV_OK; i++) {
        int ids[64];
        size_t len = byte_ids(byte_texts[i], ids), split = set.items[i].split;
        size_t lo = len > CTX ? len - CTX : 0; /* feed ids[lo .. len-1] */
        truncated += lo > 0;
        s = model_forward(g, ids + lo, len - lo, lg, &err);
        int all = 1;
        for (size_t j = split; j < len && s == RWKV_OK; j++) { /* ids[j+1] is predicted at row j - lo */
            int top;
            sum += logprob(lg + (j - lo) * (size_t)V, V, ids[j + 1], &top);
            all &= top;
            ntgt++;
        }
        correct += all;
    }
    free(lg);
    /* a target longer than the context is an error naming the passage */
    rwkv_lambada_example longer = {(char *)"12 3456789:;<=>?", 16, 2};
    rwkv_lambada_set one = {&longer, 1};
    rwkv_lambada_result r2;
    rwkv_status too_long = rwkv_eval_lambada(g, tok, &one, NULL, NULL, &r2, &err);
    rwkv_tokenizer_free(tok);
    rwkv_model_free(g);
    free(set.items);
    CHECK(s == RWKV_OK, "%s", err.message);
    CHECK(r.n_examples == (int64_t)N && lambada_steps == (int)N, "%lld examples, %d callbacks",
          (long long)r.n_examples, lambada_steps);
    CHECK(r.n_target_tokens == ntgt && r.n_truncated == truncated && truncated == 2,
          "%lld target tokens vs %d, %lld truncated vs %d", (long long)r.n_target_tokens, ntgt,
          (long long)r.n_truncated, truncated);
    CHECK(fabs(r.sum_logprob - sum) <= 1e-12 * fabs(sum), "sum log-prob %.15g vs direct %.15g", r.sum_logprob, sum);
    CHECK(r.n_correct == correct, "%lld correct vs %d", (long long)r.n_correct, correct);
    CHECK(fabs(r.perplexity - exp(-sum / (double)N)) < 1e-12 * r.perplexity, "perplexity %.15g", r.perplexity);
    CHECK(too_long == RWKV_ERR_ARG && strstr(err.message, "passage 1") && strstr(err.message, "context"),
          "a 14-token target with n_ctx 12: %d %s", too_long, err.message);
}

/* ppl_stream_matches: tokens pushed to a stream in pieces of the sizes in
 * `pieces` (cycled) score exactly as rwkv_eval_perplexity on all of them. */
static int ppl_stream_matches(rwkv_model *m, const int *tok, size_t n, const rwkv_ppl_options *o, size_t piece,
                              char *why, size_t size) {
    rwkv_error err;
    rwkv_ppl_result whole, part;
    rwkv_ppl_stream *ps = NULL;
    rwkv_status s = rwkv_eval_perplexity(m, tok, n, o, &whole, &err);
    if (s == RWKV_OK) s = rwkv_ppl_stream_new(m, o, &ps, &err);
    for (size_t i = 0; s == RWKV_OK && i < n; i += piece)
        s = rwkv_ppl_stream_push(ps, tok + i, n - i < piece ? n - i : piece, &err);
    if (s == RWKV_OK) s = rwkv_ppl_stream_finish(ps, &part, &err);
    rwkv_ppl_stream_free(ps);
    if (s != RWKV_OK) return snprintf(why, size, "%s", err.message), 0;
    if (part.nll != whole.nll || part.n_tokens != whole.n_tokens || part.n_windows != whole.n_windows ||
        part.n_top1 != whole.n_top1 || part.n_bytes != whole.n_bytes || part.window != whole.window ||
        part.stride != whole.stride || part.context != whole.context)
        return snprintf(why, size,
                        "pieces of %zu: nll %.17g vs %.17g, %lld vs %lld tokens, %lld vs %lld windows, context %lld "
                        "vs %lld",
                        piece, part.nll, whole.nll, (long long)part.n_tokens, (long long)whole.n_tokens,
                        (long long)part.n_windows, (long long)whole.n_windows, (long long)part.context,
                        (long long)whole.context),
               0;
    return 1;
}

/* A stream, fed in pieces of any size, gives the whole sequence's numbers
 * bit for bit (RWKV and the GPT's sliding window) and holds only the tokens
 * a later window needs. */
static void test_perplexity_stream(void) {
    enum { N = 157, CTX = 16 };
    char why[900];
    rwkv_model *g = make_gpt(CTX, why, sizeof why);
    CHECK(g, "%s", why);
    int tok[N];
    for (int i = 0; i < N; i++) tok[i] = (i * 37 + i / 5) % 64;
    static const size_t pieces[] = {1, 2, 5, 16, 17, 100, N};
    static const rwkv_ppl_options gopts[] = {{0}, {.window = 10, .stride = 3}, {.window = 16, .stride = 16}};
    int ok = 1;
    for (size_t i = 0; ok && i < sizeof pieces / sizeof pieces[0]; i++)
        for (size_t k = 0; ok && k < sizeof gopts / sizeof gopts[0]; k++)
            ok = ppl_stream_matches(g, tok, N, &gopts[k], pieces[i], why, sizeof why);
    rwkv_model_free(g);
    CHECK(ok, "GPT: %s", why);
    rwkv_model *m = load_tiny(why, sizeof why);
    if (!m) SKIP("%s", why);
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    int rt[NTOK];
    make_tokens(rt, info.n_vocab);
    static const rwkv_ppl_options ropts[] = {{0}, {.window = 7}, {.window = 1}};
    for (size_t i = 0; ok && i < sizeof pieces / sizeof pieces[0]; i++)
        for (size_t k = 0; ok && k < sizeof ropts / sizeof ropts[0]; k++)
            ok = ppl_stream_matches(m, rt, NTOK, &ropts[k], pieces[i], why, sizeof why);
    /* too few tokens in all; a bad token is named by its place in the whole sequence */
    rwkv_ppl_stream *ps;
    rwkv_ppl_result r;
    rwkv_error err;
    int bad[2] = {1, 100000};
    rwkv_status few = RWKV_OK, oov = RWKV_OK;
    if (rwkv_ppl_stream_new(m, NULL, &ps, &err) == RWKV_OK) {
        rwkv_ppl_stream_push(ps, rt, 1, &err);
        few = rwkv_ppl_stream_finish(ps, &r, NULL);
        oov = rwkv_ppl_stream_push(ps, bad, 2, &err);
        rwkv_ppl_stream_free(ps);
    }
    rwkv_model_free(m);
    CHECK(ok, "RWKV: %s", why);
    CHECK(few == RWKV_ERR_ARG, "one token was scored");
    CHECK(oov == RWKV_ERR_ARG && strstr(err.message, "position 2"), "bad token: %s", err.message);
}

int main(void) {
    RUN(test_perplexity_equals_direct);
    RUN(test_windows_carry_state);
    RUN(test_byte_count_with_tokenizer);
    RUN(test_lambada_split_rule);
    RUN(test_lambada_reader);
    RUN(test_lambada_scoring);
    RUN(test_lambada_real_file);
    RUN(test_gpt_perplexity_one_window);
    RUN(test_gpt_perplexity_sliding_window);
    RUN(test_gpt_lambada_scoring);
    RUN(test_perplexity_stream);
    return test_summary();
}
