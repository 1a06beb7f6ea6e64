/* rwkv_eval_batch_sample, the batched decode that draws its next tokens,
 * through the public API on the CPU:
 *  - every row's token equals rwkv_sampler_sample's on the same logits
 *    (rwkv_eval_batch of copies of the states) with a twin sampler, over
 *    several steps with rules from greedy to hot, nucleus and top-k cuts,
 *    bans and penalties, the draw among the first ids only, and the twins'
 *    generators stay in step;
 *  - a row with every token banned draws -1, the others still draw;
 *  - a rule out of range is refused before any row is fed; rules at the
 *    edges of their ranges draw an id in range (or -1 for a NaN logit);
 *  - the GPU test's exact check accepts every CPU draw, not other tokens,
 *    and every draw from rows of widely spread probabilities.
 * For RWKV-7 and RWKV-4 (the host path every CPU backend takes) and the GPT. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "rwkv.h"
#include "rwkv_sample.h"
#include "draw_rules.h"
#include "rwkv_train.h"
#include "test.h"
#include "batch_check.h"
#include "init_model.h"

enum { B = 8, STEPS = 6, VOCAB = 300 };

static rwkv_model *make_model(const char *arch, char *why, size_t size) {
    rwkv_init_options o = rwkv_init_options_default();
    o.arch = arch;
    o.n_layer = 2;
    o.n_embd = 32;
    o.n_vocab = VOCAB;
    o.n_head = 2;
    o.head_size = 16;
    o.n_ctx = 64;
    o.seed = 9;
    o.emb_scale = 2.0; /* peaked logits: the cuts keep few tokens, the draws differ by row */
    return init_model(&o, why, size);
}

/* Every fourth row draws among the first 120 ids only (a tokenizer smaller than the model). */
static int n_ids(int i) { return i % 4 == 3 ? 120 : 0; }

static void check_model(const char *arch) {
    char why[512] = "";
    rwkv_model *m = make_model(arch, why, sizeof why);
    CHECK(m, "%s", why);
    rwkv_error err;
    rwkv_state *a[B], *b[B];
    rwkv_sampler *sa[B], *sb[B];
    rwkv_draw d[B];
    int tok[B], next[B];
    float *logits = rwkv_logits_alloc(m, B, &err);
    CHECK(logits, "%s", err.message);
    for (int i = 0; i < B; i++) {
        a[i] = batch_state(m, i, &err);
        b[i] = batch_state(m, i, &err);
        CHECK(a[i] && b[i], "%s state %d: %s", arch, i, err.message);
        rwkv_sampler_params p;
        row_params(i, &p);
        CHECK(rwkv_sampler_new(&p, 100 + i, &sa[i], &err) == RWKV_OK && rwkv_sampler_new(&p, 100 + i, &sb[i], &err) == RWKV_OK,
              "sampler: %s", err.message);
        tok[i] = (7 * i + 1) % VOCAB;
    }
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < B; i++) {
            CHECK(rwkv_sampler_draw(sa[i], VOCAB, &d[i], &err) == RWKV_OK, "%s", err.message);
            d[i].n_ids = n_ids(i);
        }
        CHECK(rwkv_eval_batch_sample(m, a, tok, B, d, next, &err) == RWKV_OK, "%s: %s", arch, err.message);
        CHECK(rwkv_eval_batch(m, b, tok, B, logits, &err) == RWKV_OK, "%s: %s", arch, err.message);
        for (int i = 0; i < B; i++) {
            const int ref = rwkv_sampler_sample(sb[i], logits + (size_t)i * VOCAB, n_ids(i) ? n_ids(i) : VOCAB);
            CHECK(next[i] == ref, "%s step %d row %d: drew %d, the sampler %d", arch, step, i, next[i], ref);
            CHECK(rwkv_sampler_accept(sa[i], next[i], "x", 1, &err) == RWKV_OK &&
                      rwkv_sampler_accept(sb[i], ref, "x", 1, &err) == RWKV_OK,
                  "accept");
            tok[i] = next[i];
        }
    }
    for (int i = 0; i < B; i++) {
        CHECK(rwkv_sampler_uniform(sa[i]) == rwkv_sampler_uniform(sb[i]), "%s row %d: the generators drifted", arch, i);
        CHECK(rwkv_state_pos(a[i]) == rwkv_state_pos(b[i]), "%s row %d: positions", arch, i);
    }
    for (int i = 0; i < B; i++) {
        rwkv_state_free(a[i]), rwkv_state_free(b[i]);
        rwkv_sampler_free(sa[i]), rwkv_sampler_free(sb[i]);
    }
    rwkv_logits_free(m, logits);
    rwkv_model_free(m);
}

static void test_rwkv7(void) { check_model("rwkv7"); }
static void test_rwkv4(void) { check_model("rwkv4"); }
static void test_gpt(void) { check_model("gpt"); }

/* Row 0 bans everything: -1; row 1 (greedy) still draws its argmax. */
static void test_all_banned(void) {
    char why[512] = "";
    rwkv_model *m = make_model("rwkv7", why, sizeof why);
    CHECK(m, "%s", why);
    rwkv_error err;
    static int ids[VOCAB];
    static float bias[VOCAB];
    for (int j = 0; j < VOCAB; j++) ids[j] = j, bias[j] = -INFINITY;
    rwkv_state *s[2] = {batch_state(m, 1, &err), batch_state(m, 2, &err)};
    rwkv_state *t = batch_state(m, 2, &err);
    CHECK(s[0] && s[1] && t, "states");
    const rwkv_draw d[2] = {{1.0, 1.0, 0, 0.5, ids, bias, VOCAB, 0}, {0, 1.0, 0, 0, NULL, NULL, 0, 0}};
    const int tok[2] = {4, 9};
    int next[2];
    float logits[VOCAB];
    CHECK(rwkv_eval_batch_sample(m, s, tok, 2, d, next, &err) == RWKV_OK, "%s", err.message);
    CHECK(rwkv_eval(m, t, 9, logits, &err) == RWKV_OK, "%s", err.message);
    int arg = 0;
    for (int j = 1; j < VOCAB; j++)
        if (logits[j] > logits[arg]) arg = j;
    CHECK(next[0] == -1, "everything banned drew %d", next[0]);
    CHECK(next[1] == arg, "greedy drew %d, the argmax is %d", next[1], arg);
    rwkv_state_free(s[0]), rwkv_state_free(s[1]), rwkv_state_free(t);
    rwkv_model_free(m);
}

/* Each bad rule: RWKV_ERR_ARG and no state moved. */
static void test_bad_rules(void) {
    char why[512] = "";
    rwkv_model *m = make_model("rwkv7", why, sizeof why);
    CHECK(m, "%s", why);
    rwkv_error err;
    rwkv_state *s[2] = {batch_state(m, 0, &err), batch_state(m, 3, &err)};
    CHECK(s[0] && s[1], "states");
    const size_t pos0 = rwkv_state_pos(s[0]), pos1 = rwkv_state_pos(s[1]);
    const rwkv_draw good = {1.0, 0.9, 0, 0.25, NULL, NULL, 0, 0};
    rwkv_draw bad[6] = {good, good, good, good, good, good};
    bad[0].temperature = NAN, bad[1].top_p = 1.5, bad[2].top_k = -1, bad[3].uniform = 1.0, bad[4].n_bias = 3;
    bad[5].n_ids = -2;
    const int tok[2] = {1, 2};
    int next[2];
    for (int k = 0; k < 6; k++) {
        const rwkv_draw d[2] = {good, bad[k]};
        CHECK(rwkv_eval_batch_sample(m, s, tok, 2, d, next, &err) == RWKV_ERR_ARG, "bad rule %d accepted", k);
        CHECK(strstr(err.message, "row 1"), "bad rule %d: the message names no row: %s", k, err.message);
    }
    CHECK(rwkv_state_pos(s[0]) == pos0 && rwkv_state_pos(s[1]) == pos1, "a refused batch moved a state");
    rwkv_state_free(s[0]), rwkv_state_free(s[1]);
    rwkv_model_free(m);
}

/* Rules at the edges of their ranges (tests/draw_rules.h). */
static void test_edge_rules(void) {
    char why[512] = "";
    rwkv_model *m = make_model("rwkv7", why, sizeof why);
    CHECK(m, "%s", why);
    rwkv_error err;
    rwkv_draw d[EDGE_DRAWS];
    edge_draws(VOCAB, d);
    rwkv_state *s[EDGE_DRAWS];
    int tok[EDGE_DRAWS], next[EDGE_DRAWS];
    for (int i = 0; i < EDGE_DRAWS; i++) {
        s[i] = batch_state(m, i, &err);
        CHECK(s[i], "state %d", i);
        tok[i] = i + 1;
    }
    CHECK(rwkv_eval_batch_sample(m, s, tok, EDGE_DRAWS, d, next, &err) == RWKV_OK, "%s", err.message);
    CHECK(edge_draws_ok(d, next, VOCAB, why, sizeof why), "%s", why);
    for (int i = 0; i < EDGE_DRAWS; i++) rwkv_state_free(s[i]);
    rwkv_model_free(m);
}

/* The GPU test's check (exact_accepts, tests/draw_rules.h) against the
 * CPU's draws: it must accept every one, and reject other tokens. */
static void test_exact_check(void) {
    char why[512] = "";
    rwkv_model *m = make_model("rwkv7", why, sizeof why);
    CHECK(m, "%s", why);
    rwkv_error err;
    static float logits[B * VOCAB];
    rwkv_state *s[B];
    rwkv_sampler *sa[B], *sb[B];
    rwkv_draw d[B];
    int tok[B], checked = 0, rejected = 0, other_accepted = 0;
    for (int i = 0; i < B; i++) {
        rwkv_sampler_params p;
        row_params(i, &p);
        s[i] = batch_state(m, i, &err);
        CHECK(s[i] && rwkv_sampler_new(&p, 40 + i, &sa[i], &err) == RWKV_OK &&
                  rwkv_sampler_new(&p, 40 + i, &sb[i], &err) == RWKV_OK,
              "setup");
        tok[i] = 3 * i + 1;
    }
    for (int step = 0; step < 20; step++) {
        CHECK(rwkv_eval_batch(m, s, tok, B, logits, &err) == RWKV_OK, "%s", err.message);
        for (int i = 0; i < B; i++) {
            CHECK(rwkv_sampler_draw(sa[i], VOCAB, &d[i], &err) == RWKV_OK, "draw rule");
            const float *row = logits + (size_t)i * VOCAB;
            const int t = rwkv_sampler_sample(sb[i], row, VOCAB), other = (7 * t + 13) % VOCAB;
            if (d[i].temperature > 0) {
                checked++;
                rejected += !exact_accepts(&d[i], row, VOCAB, t);
                other_accepted += other != t && exact_accepts(&d[i], row, VOCAB, other);
            }
            CHECK(rwkv_sampler_accept(sa[i], t, "x", 1, &err) == RWKV_OK &&
                      rwkv_sampler_accept(sb[i], t, "x", 1, &err) == RWKV_OK,
                  "accept");
            tok[i] = t;
        }
    }
    printf("  %d draws: %d rejected, %d other tokens accepted\n", checked, rejected, other_accepted);
    CHECK(rejected == 0, "the exact check rejected %d of %d CPU draws", rejected, checked);
    CHECK(other_accepted * 10 < checked, "the exact check accepted %d of %d other tokens", other_accepted, checked);
    for (int i = 0; i < B; i++) rwkv_state_free(s[i]), rwkv_sampler_free(sa[i]), rwkv_sampler_free(sb[i]);
    rwkv_model_free(m);
}

static void test_spread_rows(void) {
    char why[512] = "";
    rwkv_model *m = make_model("rwkv7", why, sizeof why);
    CHECK(m, "%s", why);
    CHECK(spread_draws_ok(m, VOCAB, why, sizeof why), "%s", why);
    rwkv_model_free(m);
}

int main(void) {
    RUN(test_rwkv7);
    RUN(test_rwkv4);
    RUN(test_gpt);
    RUN(test_all_banned);
    RUN(test_bad_rules);
    RUN(test_edge_rules);
    RUN(test_exact_check);
    RUN(test_spread_rows);
    return test_summary();
}
