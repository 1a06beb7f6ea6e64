/* rwkv_eval_batch_sample on the GPU: each row's next token drawn on the
 * device (cuda/draw.cu) against the CPU's sampler drawing from the same
 * logits (rwkv_eval_batch of twin states on the same GPU, rwkv_sampler_sample
 * of twin samplers), over rules from greedy to hot, nucleus and top-k cuts,
 * bans and penalties, the draw among the first ids only, for 12 streams
 * over several steps and for 300 streams
 * (more rows than one head pass: the chunked path). Greedy rows must agree
 * exactly; where a sampled row differs, the device's token must be one the
 * rules give in exact arithmetic with the nucleus ending anywhere its mass
 * is within 1e-5 of top_p and the number moved by 1e-5 (the CPU sums the
 * nucleus in float, the device in fixed point; this check accepts every
 * CPU draw and rejects other tokens). A row with every token banned draws
 * -1; rules at the edges of their ranges draw what they must; rows whose
 * biases spread their probabilities over dozens of binades pass the exact
 * check. */
#include "infer_check.h"
#include "rwkv_sample.h"
#include "draw_rules.h"

enum { V = 3001, STEPS = 4 };

/* Every fourth row draws among the first 1000 ids only. */
static int n_ids(int i) { return i % 4 == 3 ? 1000 : V; }

/* B streams, `steps` steps; *tolerated: the rows that differed at a boundary. */
static void draws_match(rwkv_model *gpu, int B, int steps, int *tolerated) {
    rwkv_error err;
    rwkv_state **a = calloc(B, sizeof *a), **b = calloc(B, sizeof *b);
    rwkv_sampler **sa = calloc(B, sizeof *sa), **sb = calloc(B, sizeof *sb);
    rwkv_draw *d = calloc(B, sizeof *d);
    int *tok = calloc(B, sizeof *tok), *next = calloc(B, sizeof *next), prefix[9];
    *tolerated = 0;
    float *logits = rwkv_logits_alloc(gpu, B, &err);
    CHECK(a && b && sa && sb && d && tok && next && logits, "memory");
    for (int i = 0; i < B; i++) {
        for (int t = 0; t < 9; t++) prefix[t] = (int)urand(0, V - 0.01f);
        CHECK(rwkv_state_new(gpu, &a[i], &err) == RWKV_OK && rwkv_state_new(gpu, &b[i], &err) == RWKV_OK, "states");
        CHECK(rwkv_eval_sequence(gpu, a[i], prefix, 1 + i % 9, NULL, 0, &err) == RWKV_OK, "warm-up: %s", err.message);
        CHECK(rwkv_state_copy(b[i], a[i], &err) == RWKV_OK, "copy");
        rwkv_sampler_params p;
        row_params(i, &p);
        CHECK(rwkv_sampler_new(&p, 500 + i, &sa[i], &err) == RWKV_OK && rwkv_sampler_new(&p, 500 + i, &sb[i], &err) == RWKV_OK,
              "sampler");
        tok[i] = (int)urand(0, V - 0.01f);
    }
    for (int step = 0; step < steps; step++) {
        for (int i = 0; i < B; i++) {
            CHECK(rwkv_sampler_draw(sa[i], V, &d[i], &err) == RWKV_OK, "draw rule");
            d[i].n_ids = n_ids(i);
        }
        CHECK(rwkv_eval_batch_sample(gpu, a, tok, B, d, next, &err) == RWKV_OK, "gpu draw: %s", err.message);
        CHECK(rwkv_eval_batch(gpu, b, tok, B, logits, &err) == RWKV_OK, "gpu batch: %s", err.message);
        for (int i = 0; i < B; i++) {
            const float *row = logits + (size_t)i * V;
            const int ref = rwkv_sampler_sample(sb[i], row, n_ids(i));
            if (next[i] != ref) {
                CHECK(next[i] >= 0 && next[i] < n_ids(i), "row %d drew %d", i, next[i]);
                CHECK(d[i].temperature > 0 && exact_accepts(&d[i], row, n_ids(i), next[i]),
                      "B %d step %d row %d (T %g, top_p %g, top_k %d): the device drew %d, the CPU %d", B, step, i,
                      d[i].temperature, d[i].top_p, d[i].top_k, next[i], ref);
                (*tolerated)++;
            }
            CHECK(rwkv_sampler_accept(sa[i], next[i], "x", 1, &err) == RWKV_OK &&
                      rwkv_sampler_accept(sb[i], next[i], "x", 1, &err) == RWKV_OK,
                  "accept");
            tok[i] = next[i];
        }
    }
    for (int i = 0; i < B; i++) {
        rwkv_state_free(a[i]), rwkv_state_free(b[i]);
        rwkv_sampler_free(sa[i]), rwkv_sampler_free(sb[i]);
    }
    rwkv_logits_free(gpu, logits);
    free(a), free(b), free(sa), free(sb), free(d), free(tok), free(next);
}

/* A random RWKV-7 of V tokens and `layers` layers on the GPU (fp32), its file removed. */
static rwkv_model *random_gpu_model(int layers, int seed) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/rwkv_draw_%d_%d.safetensors", (int)getpid(), seed);
    rwkv_model *gpu = write_random_arch(path, "rwkv7", V, 128, layers, 256, 64, seed) ? load_on(path, "cuda", "fp32") : NULL;
    unlink(path);
    return gpu;
}

static void test_draws(void) {
    NEED_GPU();
    rwkv_model *gpu = random_gpu_model(2, 17);
    CHECK(gpu, "model");
    int t12 = 0, t300 = 0;
    draws_match(gpu, 12, STEPS, &t12);
    draws_match(gpu, 300, 1, &t300);
    printf("  %d + %d rows drawn, %d + %d at a rounding boundary\n", 12 * STEPS, 300, t12, t300);
    rwkv_model_free(gpu);
}

static void test_all_banned(void) {
    NEED_GPU();
    rwkv_model *gpu = random_gpu_model(1, 18);
    CHECK(gpu, "model");
    rwkv_error err;
    static int ids[V];
    static float bias[V];
    for (int j = 0; j < V; j++) ids[j] = j, bias[j] = -INFINITY;
    rwkv_state *s[2];
    CHECK(rwkv_state_new(gpu, &s[0], &err) == RWKV_OK && rwkv_state_new(gpu, &s[1], &err) == RWKV_OK, "states");
    const rwkv_draw d[2] = {{1.0, 0.85, 0, 0.5, ids, bias, V, 0}, {1.0, 0.85, 0, 0.5, ids, bias, V - 1, 0}};
    const int tok[2] = {4, 9};
    int next[2];
    CHECK(rwkv_eval_batch_sample(gpu, s, tok, 2, d, next, &err) == RWKV_OK, "%s", err.message);
    CHECK(next[0] == -1, "everything banned drew %d", next[0]);
    CHECK(next[1] == V - 1, "everything but %d banned drew %d", V - 1, next[1]);
    rwkv_state_free(s[0]), rwkv_state_free(s[1]);
    rwkv_model_free(gpu);
}

/* Rules at the edges of their ranges (tests/draw_rules.h) on the device. */
static void test_edge_rules(void) {
    NEED_GPU();
    rwkv_model *gpu = random_gpu_model(1, 19);
    CHECK(gpu, "model");
    rwkv_error err;
    char why[256];
    rwkv_draw d[EDGE_DRAWS];
    edge_draws(V, d);
    rwkv_state *s[EDGE_DRAWS];
    int tok[EDGE_DRAWS], next[EDGE_DRAWS];
    for (int i = 0; i < EDGE_DRAWS; i++) {
        CHECK(rwkv_state_new(gpu, &s[i], &err) == RWKV_OK, "state");
        tok[i] = 11 * i + 1;
    }
    CHECK(rwkv_eval_batch_sample(gpu, s, tok, EDGE_DRAWS, d, next, &err) == RWKV_OK, "%s", err.message);
    CHECK(edge_draws_ok(d, next, V, why, sizeof why), "%s", why);
    for (int i = 0; i < EDGE_DRAWS; i++) rwkv_state_free(s[i]);
    rwkv_model_free(gpu);
}

static void test_spread_rows(void) {
    NEED_GPU();
    rwkv_model *gpu = random_gpu_model(1, 20);
    CHECK(gpu, "model");
    char why[256] = "";
    CHECK(spread_draws_ok(gpu, V, why, sizeof why), "%s", why);
    rwkv_model_free(gpu);
}

int main(void) {
    RUN(test_draws);
    RUN(test_all_banned);
    RUN(test_edge_rules);
    RUN(test_spread_rows);
    return test_summary();
}
