/* Sampler (penalties, occurrences, nucleus/top-k/temperature, greedy, seeds)
 * and state files (round trip, continuation, mismatches, truncation). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "rwkv.h"
#include "rwkv_sample.h"
#include "test.h"

/* A sampler with the given settings and no penalties unless asked. */
static rwkv_sampler *mk(double temp, double top_p, int top_k, double presence, double frequency) {
    rwkv_sampler_params p;
    rwkv_sampler_params_default(&p);
    p.temperature = temp;
    p.top_p = top_p;
    p.top_k = top_k;
    p.alpha_presence = presence;
    p.alpha_frequency = frequency;
    rwkv_sampler *s = NULL;
    if (rwkv_sampler_new(&p, 42, &s, NULL) != RWKV_OK) return NULL;
    return s;
}

static void test_defaults(void) {
    rwkv_sampler_params p;
    rwkv_sampler_params_default(&p);
    CHECK(p.temperature == 1.0 && p.top_p == 0.85 && p.top_k == 0, "temperature/top_p/top_k defaults");
    CHECK(p.alpha_frequency == 0.2 && p.alpha_presence == 0.2 && p.alpha_decay == 0.996, "penalty defaults");
    CHECK(p.n_token_ban == 0 && p.whitespace_exempt == 1, "ban/exempt defaults");
}

static void test_bad_params(void) {
    rwkv_sampler_params p;
    rwkv_sampler *s = NULL;
    rwkv_error err;
    struct {
        double temp, top_p, decay;
        int top_k;
    } bad[] = {{-1, 0.5, 0.9, 0}, {1, 1.5, 0.9, 0}, {1, -0.1, 0.9, 0}, {1, 0.5, 1.5, 0}, {1, 0.5, 0.9, -2},
               {NAN, 0.5, 0.9, 0}, {INFINITY, 0.5, 0.9, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rwkv_sampler_params_default(&p);
        p.temperature = bad[i].temp;
        p.top_p = bad[i].top_p;
        p.alpha_decay = bad[i].decay;
        p.top_k = bad[i].top_k;
        CHECK(rwkv_sampler_new(&p, 1, &s, &err) == RWKV_ERR_ARG, "case %zu accepted", i);
        CHECK(s == NULL && err.message[0] && !strchr(err.message, '\n'), "case %zu: message/out", i);
    }
    rwkv_sampler_params_default(&p);
    int ban = -3;
    p.token_ban = &ban;
    p.n_token_ban = 1;
    CHECK(rwkv_sampler_new(&p, 1, &s, &err) == RWKV_ERR_ARG, "negative ban accepted");
}

/* Occurrence updates by hand: decay of every entry, then += 1 or 0. */
static void test_occurrences(void) {
    rwkv_sampler_params p;
    rwkv_sampler_params_default(&p);
    rwkv_sampler *s;
    CHECK(rwkv_sampler_new(&p, 1, &s, NULL) == RWKV_OK, "new");
    int present;
    CHECK(rwkv_sampler_accept(s, 5, "a", 1, NULL) == RWKV_OK, "accept");
    double w5 = 1.0;
    CHECK(rwkv_sampler_occurrence(s, 5, &present) == w5 && present, "occ[5] after one 'a'");
    CHECK(rwkv_sampler_accept(s, 7, " ", 1, NULL) == RWKV_OK, "accept");
    w5 *= 0.996;
    CHECK(rwkv_sampler_occurrence(s, 5, NULL) == w5, "occ[5] decayed");
    CHECK(rwkv_sampler_occurrence(s, 7, &present) == 0.0 && present, "space: entry created with 0");
    CHECK(rwkv_sampler_accept(s, 5, "a", 1, NULL) == RWKV_OK, "accept");
    w5 = w5 * 0.996 + 1.0;
    CHECK(rwkv_sampler_occurrence(s, 5, NULL) == w5, "occ[5] = %.17g, want %.17g", rwkv_sampler_occurrence(s, 5, NULL), w5);
    CHECK(rwkv_sampler_occurrence(s, 7, NULL) == 0.0, "occ[7] stays 0");
    CHECK(rwkv_sampler_occurrence(s, 6, &present) == 0.0 && !present, "occ[6] absent");
    CHECK(rwkv_sampler_occurrence(s, 100000, &present) == 0.0 && !present, "far id absent");
    CHECK(rwkv_sampler_accept(s, -1, "", 0, NULL) == RWKV_ERR_ARG, "negative token accepted");

    /* penalties: logit -= presence + occ * frequency, in float after a double sum */
    float lg[10] = {0};
    rwkv_sampler_penalize(s, lg, 10);
    float want5 = -(float)(0.2 + w5 * 0.2), want7 = -(float)(0.2 + 0.0 * 0.2);
    CHECK(lg[5] == want5, "logit[5] = %.9g, want %.9g", lg[5], want5);
    CHECK(lg[7] == want7, "logit[7] = %.9g, want %.9g (presence only)", lg[7], want7);
    for (int i = 0; i < 10; i++)
        if (i != 5 && i != 7) CHECK(lg[i] == 0, "logit[%d] changed", i);

    /* a token id beyond the logits is ignored by penalize */
    CHECK(rwkv_sampler_accept(s, 300, "b", 1, NULL) == RWKV_OK, "accept 300");
    rwkv_sampler_penalize(s, lg, 10);

    rwkv_sampler_reset(s);
    CHECK(rwkv_sampler_occurrence(s, 5, &present) == 0 && !present, "reset clears");
    float lz[10] = {0};
    rwkv_sampler_penalize(s, lz, 10);
    for (int i = 0; i < 10; i++) CHECK(lz[i] == 0, "logit[%d] penalised after reset", i);
    rwkv_sampler_free(s);
}

static void test_exemption_rule(void) {
    struct {
        const char *text;
        int exempt;
    } cases[] = {{"", 1},     {" ", 1},    {"\t", 1},  {"0", 1},   {"9", 1},     {"0123", 1}, {" \t0", 1},
                 {"789", 1},  {" \t", 1},  {"00", 0},  {"  ", 0},  {"9 ", 0},    {"a", 0},    {"\n", 0},
                 {" a", 0},   {"10", 0},   {"\t ", 0}, {" \t0123456789", 1}, {" \t01234567890", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int rule = 0; rule < 2; rule++) {
            rwkv_sampler_params p;
            rwkv_sampler_params_default(&p);
            p.whitespace_exempt = rule;
            rwkv_sampler *s;
            CHECK(rwkv_sampler_new(&p, 1, &s, NULL) == RWKV_OK, "new");
            CHECK(rwkv_sampler_accept(s, 3, cases[i].text, strlen(cases[i].text), NULL) == RWKV_OK, "accept");
            int present;
            double w = rwkv_sampler_occurrence(s, 3, &present);
            double want = (rule && cases[i].exempt) ? 0.0 : 1.0;
            rwkv_sampler_free(s);
            CHECK(present && w == want, "'%s' rule %d: occ %g, want %g", cases[i].text, rule, w, want);
        }
    }
}

static void test_bans(void) {
    rwkv_sampler_params p;
    rwkv_sampler_params_default(&p);
    int ban[] = {1, 2, 50};
    p.token_ban = ban;
    p.n_token_ban = 3;
    p.temperature = 0;
    rwkv_sampler *s;
    CHECK(rwkv_sampler_new(&p, 1, &s, NULL) == RWKV_OK, "new");
    ban[0] = 0; /* the sampler keeps its own copy */
    float lg[4] = {0.f, 5.f, 4.f, 1.f};
    CHECK(rwkv_sampler_sample(s, lg, 4) == 3, "banned ids must not win");
    CHECK(lg[1] == 5.f, "logits modified");
    float two[3] = {9.f, 9.f, 9.f};
    int ban2[] = {0, 1, 2};
    p.token_ban = ban2;
    rwkv_sampler *s2;
    CHECK(rwkv_sampler_new(&p, 1, &s2, NULL) == RWKV_OK, "new");
    CHECK(rwkv_sampler_sample(s2, two, 3) == -1, "everything banned must fail");
    rwkv_sampler_free(s2);
    rwkv_sampler_free(s);
}

static void test_greedy(void) {
    rwkv_sampler *s = mk(0, 0.85, 0, 0.2, 0.2);
    CHECK(s, "new");
    float lg[2] = {1.0f, 1.1f};
    CHECK(rwkv_sampler_sample(s, lg, 2) == 1, "argmax");
    CHECK(rwkv_sampler_accept(s, 1, "x", 1, NULL) == RWKV_OK, "accept");
    /* 1.1 - (0.2 + 1 * 0.2) = 0.7 < 1.0 */
    CHECK(rwkv_sampler_sample(s, lg, 2) == 0, "penalties apply under temperature 0");
    rwkv_sampler_free(s);
    s = mk(0, 0.85, 0, 0, 0);
    float tie[4] = {0.f, 3.f, 3.f, -1.f};
    for (int i = 0; i < 20; i++) CHECK(rwkv_sampler_sample(s, tie, 4) == 1, "ties: the lowest id");
    float probs[4];
    CHECK(rwkv_sampler_distribution(s, tie, 4, probs) == 0, "distribution");
    CHECK(probs[0] == 0 && probs[1] == 1 && probs[2] == 0 && probs[3] == 0, "one-hot");
    float bad[3] = {0.f, NAN, 1.f};
    CHECK(rwkv_sampler_sample(s, bad, 3) == -1, "NaN logit must fail");
    float inf[3] = {0.f, INFINITY, 1.f};
    CHECK(rwkv_sampler_sample(s, inf, 3) == -1, "+inf logit must fail");
    float minf[2] = {-INFINITY, -INFINITY};
    CHECK(rwkv_sampler_sample(s, minf, 2) == -1, "all -inf must fail");
    CHECK(rwkv_sampler_sample(s, tie, 0) == -1, "n_vocab 0 must fail");
    rwkv_sampler_free(s);
}

static void logits_of(const double *p, int n, float *lg) {
    for (int i = 0; i < n; i++) lg[i] = p[i] > 0 ? (float)log(p[i]) : -INFINITY;
}

/* top-p keeps the tokens down to the first whose cumulative sum reaches
 * top_p, plus every token tied with it. */
static void test_top_p_ties(void) {
    rwkv_sampler *s = mk(1, 0.5, 0, 0, 0);
    CHECK(s, "new");
    double p[5] = {0.4, 0.2, 0.2, 0.1, 0.1};
    float lg[8], pr[8];
    logits_of(p, 5, lg);
    CHECK(rwkv_sampler_distribution(s, lg, 5, pr) == 0, "distribution");
    CHECK(fabsf(pr[0] - 0.5f) < 1e-5 && fabsf(pr[1] - 0.25f) < 1e-5 && fabsf(pr[2] - 0.25f) < 1e-5,
          "kept 0.4/0.2/0.2 -> %g %g %g", pr[0], pr[1], pr[2]);
    CHECK(pr[3] == 0 && pr[4] == 0, "tail kept");
    rwkv_sampler_free(s);

    /* top_p 0: only the maximum (and its ties) */
    s = mk(1, 0, 0, 0, 0);
    double q[4] = {0.3, 0.3, 0.2, 0.2};
    logits_of(q, 4, lg);
    CHECK(rwkv_sampler_distribution(s, lg, 4, pr) == 0, "distribution");
    CHECK(fabsf(pr[0] - 0.5f) < 1e-6 && fabsf(pr[1] - 0.5f) < 1e-6 && pr[2] == 0 && pr[3] == 0,
          "top_p 0 keeps the tied maxima: %g %g %g %g", pr[0], pr[1], pr[2], pr[3]);
    for (int i = 0; i < 50; i++) {
        int t = rwkv_sampler_sample(s, lg, 4);
        CHECK(t == 0 || t == 1, "drew %d", t);
    }
    rwkv_sampler_free(s);

    /* top_p 1 keeps everything, even tokens of tiny probability */
    s = mk(1, 1.0, 0, 0, 0);
    float wide[6] = {10.f, 0.f, -5.f, -20.f, -30.f, -60.f};
    CHECK(rwkv_sampler_distribution(s, wide, 6, pr) == 0, "distribution");
    for (int i = 0; i < 6; i++) CHECK(pr[i] > 0, "top_p 1 dropped id %d", i);
    rwkv_sampler_free(s);
}

static void test_top_k(void) {
    rwkv_sampler *s = mk(1, 1.0, 2, 0, 0);
    CHECK(s, "new");
    double p[4] = {0.1, 0.4, 0.2, 0.3};
    float lg[4], pr[4];
    logits_of(p, 4, lg);
    CHECK(rwkv_sampler_distribution(s, lg, 4, pr) == 0, "distribution");
    CHECK(pr[0] == 0 && pr[2] == 0, "top_k 2 kept extra ids");
    CHECK(fabsf(pr[1] - 4.f / 7) < 1e-5 && fabsf(pr[3] - 3.f / 7) < 1e-5, "renormalised: %g %g", pr[1], pr[3]);
    rwkv_sampler_free(s);
    /* ties: lower ids rank first */
    s = mk(1, 1.0, 2, 0, 0);
    float tie[4] = {1.f, 1.f, 1.f, 0.f};
    CHECK(rwkv_sampler_distribution(s, tie, 4, pr) == 0, "distribution");
    CHECK(pr[0] > 0 && pr[1] > 0 && pr[2] == 0 && pr[3] == 0, "top_k ties: %g %g %g %g", pr[0], pr[1], pr[2], pr[3]);
    rwkv_sampler_free(s);
    /* top_k >= n_vocab is off; top_k with top_p: both cuts apply */
    s = mk(1, 0.5, 1, 0, 0);
    double q[3] = {0.3, 0.35, 0.35};
    logits_of(q, 3, lg);
    CHECK(rwkv_sampler_distribution(s, lg, 3, pr) == 0, "distribution");
    CHECK(pr[0] == 0 && pr[1] == 1 && pr[2] == 0, "top_p 0.5 + top_k 1: %g %g %g", pr[0], pr[1], pr[2]);
    rwkv_sampler_free(s);
}

/* The temperature is applied after the nucleus cut. */
static void test_temperature_after_nucleus(void) {
    double p[3] = {0.6, 0.25, 0.15};
    float lg[3], pr[3];
    logits_of(p, 3, lg);
    /* cut first: {0.6} alone reaches 0.55 -> one-hot whatever the temperature.
     * (temperature first would flatten to .42/.31/.26 and keep two.) */
    rwkv_sampler *s = mk(3.0, 0.55, 0, 0, 0);
    CHECK(s, "new");
    CHECK(rwkv_sampler_distribution(s, lg, 3, pr) == 0, "distribution");
    CHECK(pr[0] == 1 && pr[1] == 0 && pr[2] == 0, "got %g %g %g", pr[0], pr[1], pr[2]);
    rwkv_sampler_free(s);
    /* p^(1/T) on the survivors: top_p 0.8 keeps {0.6, 0.25}; T = 2 -> sqrt */
    s = mk(2.0, 0.8, 0, 0, 0);
    CHECK(rwkv_sampler_distribution(s, lg, 3, pr) == 0, "distribution");
    double a = sqrt(0.6), b = sqrt(0.25);
    CHECK(fabs(pr[0] - a / (a + b)) < 1e-5 && fabs(pr[1] - b / (a + b)) < 1e-5 && pr[2] == 0,
          "got %g %g %g, want %g %g 0", pr[0], pr[1], pr[2], a / (a + b), b / (a + b));
    rwkv_sampler_free(s);
    /* T < 1 sharpens */
    s = mk(0.5, 1.0, 0, 0, 0);
    CHECK(rwkv_sampler_distribution(s, lg, 3, pr) == 0, "distribution");
    double z = 0.36 + 0.0625 + 0.0225;
    CHECK(fabs(pr[0] - 0.36 / z) < 1e-5 && fabs(pr[2] - 0.0225 / z) < 1e-5, "T 0.5: %g %g %g", pr[0], pr[1], pr[2]);
    rwkv_sampler_free(s);
}

/* Reference nucleus over a full sort, to check the partial-sort fast path. */
static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static void test_top_p_large_vocab(void) {
    enum { N = 5000 };
    static float lg[N], pr[N], ref[N], sorted[N];
    uint64_t x = 12345;
    for (int trial = 0; trial < 6; trial++) {
        double scale = trial < 3 ? 1.0 : 6.0;
        for (int i = 0; i < N; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            lg[i] = (float)(scale * ((double)(x >> 11) * 0x1.0p-53 * 8.0 - 4.0));
        }
        double top_p = trial % 3 == 0 ? 0.85 : trial % 3 == 1 ? 0.3 : 0.99;
        rwkv_sampler *s = mk(1, top_p, 0, 0, 0);
        CHECK(s, "new");
        CHECK(rwkv_sampler_distribution(s, lg, N, pr) == 0, "distribution");
        rwkv_sampler_free(s);
        /* reference: softmax (double, rounded), full sort, float cumsum */
        float mx = lg[0];
        for (int i = 1; i < N; i++) mx = lg[i] > mx ? lg[i] : mx;
        double sum = 0;
        for (int i = 0; i < N; i++) sum += expf(lg[i] - mx);
        for (int i = 0; i < N; i++) ref[i] = sorted[i] = (float)((double)expf(lg[i] - mx) / sum);
        qsort(sorted, N, sizeof(float), cmp_desc);
        float c = 0, cutoff = 0;
        for (int i = 0; i < N; i++) {
            c += sorted[i];
            if (c >= (float)top_p) {
                cutoff = sorted[i];
                break;
            }
        }
        double tot = 0;
        for (int i = 0; i < N; i++) {
            if (ref[i] < cutoff) ref[i] = 0;
            tot += ref[i];
        }
        int kept = 0;
        for (int i = 0; i < N; i++) {
            float want = (float)(ref[i] / tot);
            CHECK(pr[i] == want, "trial %d id %d: %g vs %g", trial, i, pr[i], want);
            kept += want > 0;
        }
        CHECK(kept > 0 && kept < N, "trial %d kept %d", trial, kept);
    }
}

static void test_seed_determinism(void) {
    enum { N = 300, DRAWS = 400 };
    static float lg[N];
    for (int i = 0; i < N; i++) lg[i] = (float)sin(i * 0.37) * 3.0f;
    int a[DRAWS], b[DRAWS], c[DRAWS];
    uint64_t seeds[3] = {7, 7, 8};
    int *outs[3] = {a, b, c};
    for (int k = 0; k < 3; k++) {
        rwkv_sampler_params p;
        rwkv_sampler_params_default(&p); /* penalties on: the occurrence table evolves too */
        p.top_p = 0.95;
        p.temperature = 1.3;
        rwkv_sampler *s;
        CHECK(rwkv_sampler_new(&p, seeds[k], &s, NULL) == RWKV_OK, "new");
        for (int i = 0; i < DRAWS; i++) {
            outs[k][i] = rwkv_sampler_sample(s, lg, N);
            CHECK(outs[k][i] >= 0 && outs[k][i] < N, "draw %d", outs[k][i]);
            CHECK(rwkv_sampler_accept(s, outs[k][i], "x", 1, NULL) == RWKV_OK, "accept");
        }
        rwkv_sampler_free(s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed, different tokens");
    CHECK(memcmp(a, c, sizeof a) != 0, "different seeds, same tokens");
    /* re-seeding restarts the stream */
    rwkv_sampler *s = mk(1, 1, 0, 0, 0);
    CHECK(s, "new");
    rwkv_sampler_seed(s, 99);
    double u1 = rwkv_sampler_uniform(s), u2 = rwkv_sampler_uniform(s);
    rwkv_sampler_seed(s, 99);
    CHECK(rwkv_sampler_uniform(s) == u1 && rwkv_sampler_uniform(s) == u2, "reseed");
    CHECK(u1 >= 0 && u1 < 1 && u1 != u2, "uniform range");
    rwkv_sampler_free(s);
}

/* Draw frequencies match the distribution. */
static void test_draw_frequencies(void) {
    double p[4] = {0.5, 0.3, 0.15, 0.05};
    float lg[4];
    logits_of(p, 4, lg);
    rwkv_sampler *s = mk(1, 1.0, 0, 0, 0);
    CHECK(s, "new");
    int count[4] = {0};
    const int n = 40000;
    for (int i = 0; i < n; i++) {
        int t = rwkv_sampler_sample(s, lg, 4);
        CHECK(t >= 0 && t < 4, "draw %d", t);
        count[t]++;
    }
    for (int i = 0; i < 4; i++) {
        double f = (double)count[i] / n, sd = sqrt(p[i] * (1 - p[i]) / n);
        CHECK(fabs(f - p[i]) < 5 * sd, "id %d: frequency %g, want %g", i, f, p[i]);
    }
    rwkv_sampler_free(s);
}

/* ---- state files --------------------------------------------------------- */

static int load_model(const char *rel, rwkv_model **m) {
    char path[1024];
    if (!shared_path(path, sizeof path, rel)) return 0;
    rwkv_error err;
    if (rwkv_model_load(path, m, &err) != RWKV_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    rwkv_model_set_threads(*m, 2);
    return 1;
}

static void tmp_path(char *buf, size_t n, const char *name) {
    const char *d = getenv("TMPDIR");
    snprintf(buf, n, "%s/rwkv_test_sample_%ld_%s", d && *d ? d : "/tmp", (long)getpid(), name);
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int copy_prefix(const char *from, const char *to, long n, long flip_at) {
    FILE *f = fopen(from, "rb"), *g = fopen(to, "wb");
    if (!f || !g) {
        if (f) fclose(f);
        if (g) fclose(g);
        return -1;
    }
    for (long i = 0; i < n; i++) {
        int c = fgetc(f);
        if (c == EOF) break;
        if (i == flip_at) c ^= 0x01;
        fputc(c, g);
    }
    fclose(f);
    fclose(g);
    return 0;
}

static void test_state_round_trip(void) {
    rwkv_model *m;
    int r = load_model("testvectors/rwkv4/tiny/model.f32.safetensors", &m);
    if (r == 0) SKIP("../shared/testvectors/rwkv4/tiny not found");
    CHECK(r == 1, "model load failed");
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    const int toks[6] = {3, 17, 42, 0, 63, 8};
    float *want = malloc(sizeof(float) * (size_t)info.n_vocab);
    float *got = malloc(sizeof(float) * (size_t)info.n_vocab);
    rwkv_state *a, *b;
    CHECK(rwkv_state_new(m, &a, NULL) == RWKV_OK && rwkv_state_new(m, &b, NULL) == RWKV_OK, "state_new");
    char path[512];
    tmp_path(path, sizeof path, "rt.state");
    rwkv_error err;
    /* uninterrupted */
    for (int i = 0; i < 6; i++) CHECK(rwkv_eval(m, a, toks[i], want, NULL) == RWKV_OK, "eval");
    /* interrupted after 3 tokens, saved, restored into a fresh state */
    rwkv_state_reset(a);
    for (int i = 0; i < 3; i++) CHECK(rwkv_eval(m, a, toks[i], NULL, NULL) == RWKV_OK, "eval");
    CHECK(rwkv_state_save(a, path, &err) == RWKV_OK, "save: %s", err.message);
    CHECK(file_size(path) == 96 + 4 * (long)info.state_floats, "file size %ld", file_size(path));
    CHECK(rwkv_state_load(b, path, &err) == RWKV_OK, "load: %s", err.message);
    CHECK(memcmp(rwkv_state_data(a), rwkv_state_data(b), info.state_floats * sizeof(float)) == 0,
          "restored state differs");
    for (int i = 3; i < 6; i++) CHECK(rwkv_eval(m, b, toks[i], got, NULL) == RWKV_OK, "eval");
    CHECK(memcmp(got, want, sizeof(float) * (size_t)info.n_vocab) == 0, "continued logits differ");
    /* the same in sequence mode from the restored state */
    CHECK(rwkv_state_load(b, path, &err) == RWKV_OK, "load: %s", err.message);
    CHECK(rwkv_eval_sequence(m, b, toks + 3, 3, got, 0, NULL) == RWKV_OK, "eval_sequence");
    CHECK(tol_ratio(got, want, (size_t)info.n_vocab, 1e-5, 1e-4) <= 1, "sequence continuation differs");
    /* fresh state round trip (att_pp = -1e38 survives) */
    rwkv_state_reset(a);
    CHECK(rwkv_state_save(a, path, &err) == RWKV_OK, "save: %s", err.message);
    CHECK(rwkv_state_load(b, path, &err) == RWKV_OK, "load: %s", err.message);
    CHECK(memcmp(rwkv_state_data(a), rwkv_state_data(b), info.state_floats * sizeof(float)) == 0, "fresh");
    /* the fingerprint is stable and independent of the container's tensor order */
    uint64_t f1 = rwkv_model_fingerprint(m);
    CHECK(f1 == rwkv_model_fingerprint(m) && f1 != 0, "fingerprint unstable");
    rwkv_model *pth;
    if (load_model("testvectors/rwkv4/tiny/model.f32.pth", &pth) == 1) {
        uint64_t f2 = rwkv_model_fingerprint(pth);
        rwkv_state *c;
        CHECK(rwkv_state_new(pth, &c, NULL) == RWKV_OK, "state_new");
        rwkv_status ls = rwkv_state_load(c, path, &err);
        rwkv_state_free(c);
        rwkv_model_free(pth);
        CHECK(f2 == f1, "pth and safetensors of the same f32 weights: %016llx vs %016llx", (unsigned long long)f2,
              (unsigned long long)f1);
        CHECK(ls == RWKV_OK, "state of the safetensors model refused by the pth one: %s", err.message);
    }
    unlink(path);
    rwkv_state_free(a);
    rwkv_state_free(b);
    free(want);
    free(got);
    rwkv_model_free(m);
}

static void test_state_mismatch(void) {
    rwkv_model *tiny, *tiny16, *small;
    int r1 = load_model("testvectors/rwkv4/tiny/model.f32.safetensors", &tiny);
    if (r1 == 0) SKIP("../shared/testvectors/rwkv4 not found");
    CHECK(r1 == 1, "load tiny");
    int r2 = load_model("testvectors/rwkv4/tiny/model.bf16.safetensors", &tiny16);
    CHECK(r2 == 1, "load tiny bf16");
    int r3 = load_model("testvectors/rwkv4/small/model.bf16.safetensors", &small);
    CHECK(r3 == 1, "load small");
    rwkv_state *st, *s16, *ssm;
    CHECK(rwkv_state_new(tiny, &st, NULL) == RWKV_OK && rwkv_state_new(tiny16, &s16, NULL) == RWKV_OK &&
              rwkv_state_new(small, &ssm, NULL) == RWKV_OK,
          "state_new");
    rwkv_eval(tiny, st, 5, NULL, NULL);
    char path[512], bad[512];
    tmp_path(path, sizeof path, "mm.state");
    tmp_path(bad, sizeof bad, "bad.state");
    rwkv_error err;
    CHECK(rwkv_state_save(st, path, &err) == RWKV_OK, "save: %s", err.message);
    float keep = rwkv_state_data(ssm)[0];

    /* another shape */
    CHECK(rwkv_state_load(ssm, path, &err) == RWKV_ERR_SHAPE, "shape mismatch: %s", err.message);
    CHECK(strstr(err.message, path) && strstr(err.message, "V=64") && !strchr(err.message, '\n'), "message: %s",
          err.message);
    CHECK(rwkv_state_data(ssm)[0] == keep, "state changed by a failed load");
    /* same shape, other weights (bf16 copy of the same values) */
    CHECK(rwkv_model_fingerprint(tiny) != rwkv_model_fingerprint(tiny16), "fingerprints of f32 and bf16 equal");
    CHECK(rwkv_state_load(s16, path, &err) == RWKV_ERR_ARG, "fingerprint mismatch: %s", err.message);
    CHECK(strstr(err.message, "other weights") != NULL, "message: %s", err.message);

    long size = file_size(path);
    /* truncated data */
    CHECK(copy_prefix(path, bad, size - 4, -1) == 0, "copy");
    CHECK(rwkv_state_load(st, bad, &err) == RWKV_ERR_FORMAT && strstr(err.message, "truncated"), "truncated: %s",
          err.message);
    /* truncated header */
    CHECK(copy_prefix(path, bad, 40, -1) == 0, "copy");
    CHECK(rwkv_state_load(st, bad, &err) == RWKV_ERR_FORMAT && strstr(err.message, "truncated"),
          "truncated header: %s", err.message);
    /* empty file */
    CHECK(copy_prefix(path, bad, 0, -1) == 0, "copy");
    CHECK(rwkv_state_load(st, bad, &err) == RWKV_ERR_FORMAT, "empty: %s", err.message);
    /* a flipped data bit */
    CHECK(copy_prefix(path, bad, size, size - 3) == 0, "copy");
    CHECK(rwkv_state_load(st, bad, &err) == RWKV_ERR_FORMAT && strstr(err.message, "checksum"), "corrupt: %s",
          err.message);
    /* bad magic */
    CHECK(copy_prefix(path, bad, size, 0) == 0, "copy");
    CHECK(rwkv_state_load(st, bad, &err) == RWKV_ERR_FORMAT && strstr(err.message, "magic"), "magic: %s",
          err.message);
    /* a flipped fingerprint bit */
    CHECK(copy_prefix(path, bad, size, 64) == 0, "copy");
    CHECK(rwkv_state_load(st, bad, &err) == RWKV_ERR_ARG, "fingerprint bit: %s", err.message);
    /* trailing bytes */
    {
        CHECK(copy_prefix(path, bad, size, -1) == 0, "copy");
        FILE *f = fopen(bad, "ab");
        CHECK(f, "open");
        fputc(0, f);
        fclose(f);
        CHECK(rwkv_state_load(st, bad, &err) == RWKV_ERR_FORMAT && strstr(err.message, "trailing"), "trailing: %s",
              err.message);
    }
    /* missing file, unwritable path */
    CHECK(rwkv_state_load(st, "/nonexistent/dir/x.state", &err) == RWKV_ERR_IO, "missing: %s", err.message);
    CHECK(rwkv_state_save(st, "/nonexistent/dir/x.state", &err) == RWKV_ERR_IO, "unwritable: %s", err.message);
    CHECK(!strchr(err.message, '\n'), "multi-line message");
    /* the good file still loads */
    CHECK(rwkv_state_load(st, path, &err) == RWKV_OK, "load: %s", err.message);
    unlink(path);
    unlink(bad);
    rwkv_state_free(st);
    rwkv_state_free(s16);
    rwkv_state_free(ssm);
    rwkv_model_free(tiny);
    rwkv_model_free(tiny16);
    rwkv_model_free(small);
}

int main(void) {
    RUN(test_defaults);
    RUN(test_bad_params);
    RUN(test_occurrences);
    RUN(test_exemption_rule);
    RUN(test_bans);
    RUN(test_greedy);
    RUN(test_top_p_ties);
    RUN(test_top_k);
    RUN(test_temperature_after_nucleus);
    RUN(test_top_p_large_vocab);
    RUN(test_seed_determinism);
    RUN(test_draw_frequencies);
    RUN(test_state_round_trip);
    RUN(test_state_mismatch);
    return test_summary();
}
