/* RWKV-5/6/7 inference: random small models built in memory, checked for
 *  - sequence mode == RNN mode within float32 rounding, for n = 1, 7, 16
 *    and 300 tokens (300 crosses the 256-token chunk boundary), from a
 *    fresh state and from a used one;
 *  - state continuation: sequence(a) then sequence(b) == sequence(a + b);
 *  - the group norm of ln_x against double precision (the WKV kernels are in
 *    tests/test_wkv.c);
 *  - the batched decode (tests/batch_check.h) of every version, f32 and f16;
 *  - version detection, the ln_x epsilon rule, info fields, a file round trip;
 *  - with ../shared present: the tiny vector cases' sequence-mode logits;
 *  - the random RWKV-5.2 / RWKV-6 models of `rwkv init --uniform`: their
 *    shapes, finite logits of a sensible size, and bf16 / f16 files within
 *    rounding of the f32 file of the same seed.
 *
 * `test_rwkv_versions --bench [5.2|6|7] [bf16|f16|f32] [threads]` instead
 * times a model of the 0.1B shape (V=65536, C=768, L=12, head size 64;
 * random weights): decode ms/token and prefill tokens/s. */
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "formats/formats.h"
#include "rwkv_train.h"
#include "kernels/kernels.h"
#include "model/load.h"
#include "rwkv.h"
#include "test.h"
#include "batch_check.h"
#include "init_model.h"

/* ------------------------------------------------------------------------ */
/* Random models                                                            */
/* ------------------------------------------------------------------------ */

typedef enum kind { K50, K51, K52, K6, K7 } kind;
static const char *const kind_version[] = {"5.0", "5.1", "5.2", "6", "7"};

typedef struct cfg {
    int V, C, A, L, F, N;     /* H = A / N */
    int Dm, Dd, Da, Dv, Dg;   /* v6: Dm, Dd; v7: Dd (= Dw), Da, Dv, Dg */
    uint64_t layer0_v;        /* v7: nonzero adds block 0's (unused) v0/v1/v2, drawn from this seed */
} cfg;

typedef struct builder {
    tensor_set *set;
    dtype big; /* storage type of matrices of 2+ dims */
    uint64_t rng;
    rwkv_error *err;
    int ok;
} builder;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float uniform(uint64_t *s, float lo, float hi) {
    return lo + (hi - lo) * (float)((splitmix(s) >> 40) * (1.0 / 16777216.0));
}

/* Adds a tensor of the given shape with values uniform in [lo, hi). */
static void add(builder *b, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, float lo, float hi) {
    if (!b->ok) return;
    int64_t shape[3] = {d0, d1, d2};
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    dtype t = ndim >= 2 ? b->big : DT_F32;
    float *v = malloc(n * sizeof(float));
    void *data = tensor_set_alloc(b->set, dtype_bytes_for(t, n));
    if (!v || !data) {
        free(v);
        b->ok = 0;
        return;
    }
    for (size_t i = 0; i < n; i++) v[i] = uniform(&b->rng, lo, hi);
    if (t == DT_F32) memcpy(data, v, n * sizeof(float));
    else dtype_from_f32(t, v, data, n);
    free(v);
    if (tensor_set_add(b->set, name, t, ndim, shape, data, dtype_bytes_for(t, n), b->err) != RWKV_OK) b->ok = 0;
}

#define ADD(ndim, d0, d1, d2, lo, hi, ...)                                                         \
    do {                                                                                           \
        snprintf(nm, sizeof nm, __VA_ARGS__);                                                      \
        add(b, nm, ndim, d0, d1, d2, lo, hi);                                                      \
    } while (0)

static void add_weights(builder *b, kind k, const cfg *c) {
    char nm[128];
    const int C = c->C, A = c->A, F = c->F, N = c->N, H = c->A / c->N;
    const float sc = 1.0f / sqrtf((float)C), sa = 1.0f / sqrtf((float)A), sf = 1.0f / sqrtf((float)F);
    ADD(2, c->V, C, 0, -1.0f, 1.0f, "emb.weight");
    ADD(2, c->V, C, 0, -sc, sc, "head.weight");
    ADD(1, C, 0, 0, 0.8f, 1.2f, "blocks.0.ln0.weight");
    ADD(1, C, 0, 0, -0.1f, 0.1f, "blocks.0.ln0.bias");
    ADD(1, C, 0, 0, 0.8f, 1.2f, "ln_out.weight");
    ADD(1, C, 0, 0, -0.1f, 0.1f, "ln_out.bias");
    for (int l = 0; l < c->L; l++) {
        ADD(1, C, 0, 0, 0.8f, 1.2f, "blocks.%d.ln1.weight", l);
        ADD(1, C, 0, 0, -0.1f, 0.1f, "blocks.%d.ln1.bias", l);
        ADD(1, C, 0, 0, 0.8f, 1.2f, "blocks.%d.ln2.weight", l);
        ADD(1, C, 0, 0, -0.1f, 0.1f, "blocks.%d.ln2.bias", l);
        ADD(2, A, C, 0, -sc, sc, "blocks.%d.att.receptance.weight", l);
        ADD(2, A, C, 0, -sc, sc, "blocks.%d.att.key.weight", l);
        ADD(2, A, C, 0, -sc, sc, "blocks.%d.att.value.weight", l);
        ADD(2, C, A, 0, -sa, sa, "blocks.%d.att.output.weight", l);
        ADD(1, A, 0, 0, 0.5f, 1.5f, "blocks.%d.att.ln_x.weight", l);
        ADD(1, A, 0, 0, -0.1f, 0.1f, "blocks.%d.att.ln_x.bias", l);
        ADD(2, F, C, 0, -sc, sc, "blocks.%d.ffn.key.weight", l);
        ADD(2, C, F, 0, -sf, sf, "blocks.%d.ffn.value.weight", l);
        if (k != K7) ADD(2, C, C, 0, -sc, sc, "blocks.%d.ffn.receptance.weight", l);
        if (k != K7 && k != K50) ADD(2, A, C, 0, -sc, sc, "blocks.%d.att.gate.weight", l);
        if (k <= K52) {
            ADD(3, 1, 1, C, 0.0f, 1.0f, "blocks.%d.att.time_mix_k", l);
            ADD(3, 1, 1, C, 0.0f, 1.0f, "blocks.%d.att.time_mix_v", l);
            ADD(3, 1, 1, C, 0.0f, 1.0f, "blocks.%d.att.time_mix_r", l);
            ADD(3, 1, 1, C, 0.0f, 1.0f, "blocks.%d.ffn.time_mix_k", l);
            ADD(3, 1, 1, C, 0.0f, 1.0f, "blocks.%d.ffn.time_mix_r", l);
            if (k != K50) ADD(3, 1, 1, C, 0.0f, 1.0f, "blocks.%d.att.time_mix_g", l);
            if (k == K52) {
                ADD(2, H, N, 0, -5.0f, 0.5f, "blocks.%d.att.time_decay", l);
                ADD(2, H, N, 0, -0.5f, 0.5f, "blocks.%d.att.time_faaaa", l);
            } else {
                ADD(1, H, 0, 0, -5.0f, 0.5f, "blocks.%d.att.time_decay", l);
                if (k == K51) ADD(1, H, 0, 0, -0.5f, 0.5f, "blocks.%d.att.time_faaaa", l);
                else ADD(1, H, 0, 0, -1.0f, 0.5f, "blocks.%d.att.time_first", l);
            }
        } else if (k == K6) {
            const char *mx[] = {"x", "w", "k", "v", "r", "g"};
            for (int i = 0; i < 6; i++) ADD(3, 1, 1, C, 0.0f, 1.0f, "blocks.%d.att.time_maa_%s", l, mx[i]);
            ADD(2, C, 5 * c->Dm, 0, -0.2f, 0.2f, "blocks.%d.att.time_maa_w1", l);
            ADD(3, 5, c->Dm, C, -0.2f, 0.2f, "blocks.%d.att.time_maa_w2", l);
            ADD(3, 1, 1, A, -5.0f, 0.5f, "blocks.%d.att.time_decay", l);
            ADD(2, C, c->Dd, 0, -0.2f, 0.2f, "blocks.%d.att.time_decay_w1", l);
            ADD(2, c->Dd, A, 0, -0.2f, 0.2f, "blocks.%d.att.time_decay_w2", l);
            ADD(2, H, N, 0, -0.5f, 0.5f, "blocks.%d.att.time_faaaa", l);
            ADD(3, 1, 1, C, 0.0f, 1.0f, "blocks.%d.ffn.time_maa_k", l);
            ADD(3, 1, 1, C, 0.0f, 1.0f, "blocks.%d.ffn.time_maa_r", l);
        } else {
            const char *mx[] = {"r", "w", "k", "v", "a", "g"};
            for (int i = 0; i < 6; i++) ADD(3, 1, 1, C, 0.0f, 1.0f, "blocks.%d.att.x_%s", l, mx[i]);
            ADD(3, 1, 1, C, -3.0f, 1.0f, "blocks.%d.att.w0", l);
            ADD(2, C, c->Dd, 0, -0.3f, 0.3f, "blocks.%d.att.w1", l);
            ADD(2, c->Dd, C, 0, -0.3f, 0.3f, "blocks.%d.att.w2", l);
            ADD(3, 1, 1, C, -1.0f, 1.0f, "blocks.%d.att.a0", l);
            ADD(2, C, c->Da, 0, -0.3f, 0.3f, "blocks.%d.att.a1", l);
            ADD(2, c->Da, C, 0, -0.3f, 0.3f, "blocks.%d.att.a2", l);
            if (l > 0) {
                ADD(3, 1, 1, C, -1.0f, 1.0f, "blocks.%d.att.v0", l);
                ADD(2, C, c->Dv, 0, -0.3f, 0.3f, "blocks.%d.att.v1", l);
                ADD(2, c->Dv, C, 0, -0.3f, 0.3f, "blocks.%d.att.v2", l);
            }
            ADD(2, C, c->Dg, 0, -0.3f, 0.3f, "blocks.%d.att.g1", l);
            ADD(2, c->Dg, C, 0, -0.3f, 0.3f, "blocks.%d.att.g2", l);
            ADD(3, 1, 1, C, 0.5f, 1.5f, "blocks.%d.att.k_k", l);
            ADD(3, 1, 1, C, 0.0f, 1.0f, "blocks.%d.att.k_a", l);
            ADD(2, H, N, 0, -0.5f, 0.5f, "blocks.%d.att.r_k", l);
            ADD(3, 1, 1, C, 0.0f, 1.0f, "blocks.%d.ffn.x_k", l);
        }
    }
    if (k == K7 && c->layer0_v) { /* from their own stream: the other weights stay the same */
        uint64_t keep = b->rng;
        b->rng = c->layer0_v;
        ADD(3, 1, 1, C, -1.0f, 1.0f, "blocks.0.att.v0");
        ADD(2, C, c->Dv, 0, -0.3f, 0.3f, "blocks.0.att.v1");
        ADD(2, c->Dv, C, 0, -0.3f, 0.3f, "blocks.0.att.v2");
        b->rng = keep;
    }
}

/* A model built in memory, as rwkv_model_load would build it from a file. */
static rwkv_model *new_model(kind k, const cfg *c, dtype big, uint64_t seed, rwkv_error *err) {
    rwkv_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    tensor_set_init(&m->weights);
    m->weights.format = "safetensors";
    m->n_threads = 2;
    builder b = {&m->weights, big, seed, err, 1};
    add_weights(&b, k, c);
    rwkv_status s = b.ok ? RWKV_OK : RWKV_ERR_NOMEM;
    if (s == RWKV_OK) {
        const char *v = model_detect_version(&m->weights);
        m->gn_eps = model_group_norm_eps(m->weights.format, v);
        s = v[0] == '5' ? rwkv5_build(m, err) : v[0] == '6' ? rwkv6_build(m, err) : rwkv7_build(m, err);
    }
    if (s != RWKV_OK) {
        if (!b.ok && err) snprintf(err->message, sizeof err->message, "building the test model failed");
        rwkv_model_free(m);
        return NULL;
    }
    m->info.format = m->weights.format;
    return m;
}

static const cfg cfg_small = {.V = 50, .C = 48, .A = 48, .L = 3, .F = 112, .N = 16, .Dm = 8, .Dd = 12, .Da = 12,
                              .Dv = 4, .Dg = 16};
/* dim_att != n_embd (allowed by v5/v6 training code), head size 8 */
static const cfg cfg_wide_att = {.V = 37, .C = 40, .A = 56, .L = 2, .F = 96, .N = 8, .Dm = 4, .Dd = 8};

/* ------------------------------------------------------------------------ */
/* Sequence mode vs RNN mode                                                */
/* ------------------------------------------------------------------------ */

/* Both modes do the WKV arithmetic in the same order; what differs is the
 * summation order of matmul vs matvec, so the two agree to a few float32
 * ulps of the logits' scale. */
#define MODE_ATOL 2e-5
#define MODE_RTOL 2e-5

static void random_tokens(int *t, int n, int V, uint64_t seed) {
    for (int i = 0; i < n; i++) t[i] = (int)(splitmix(&seed) % (uint64_t)V);
}

/* From `start` (or a fresh state), feeds n tokens in sequence mode and in RNN
 * mode; returns the worst tolerance ratio over all logits and the final state. */
static double seq_vs_rnn(rwkv_model *m, const float *start, int n, uint64_t seed, char *why, size_t wsz) {
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    const size_t V = (size_t)info.n_vocab, S = info.state_floats;
    int *tok = malloc(sizeof(int) * (size_t)n);
    float *seq = malloc(sizeof(float) * n * V), *rnn = malloc(sizeof(float) * n * V);
    rwkv_state *a = NULL, *b = NULL;
    rwkv_error err;
    double worst = INFINITY;
    random_tokens(tok, n, (int)V, seed);
    if (rwkv_state_new(m, &a, &err) != RWKV_OK || rwkv_state_new(m, &b, &err) != RWKV_OK) goto out;
    if (start) {
        memcpy(rwkv_state_data(a), start, S * sizeof(float));
        memcpy(rwkv_state_data(b), start, S * sizeof(float));
    }
    if (rwkv_eval_sequence(m, a, tok, (size_t)n, seq, 1, &err) != RWKV_OK) goto out;
    for (int t = 0; t < n; t++)
        if (rwkv_eval(m, b, tok[t], rnn + (size_t)t * V, &err) != RWKV_OK) goto out;
    double rl = tol_ratio(seq, rnn, (size_t)n * V, MODE_ATOL, MODE_RTOL);
    double rs = tol_ratio(rwkv_state_data(a), rwkv_state_data(b), S, MODE_ATOL, MODE_RTOL);
    worst = rl > rs ? rl : rs;
    snprintf(why, wsz, "n=%d: logits ratio %.3g, state ratio %.3g", n, rl, rs);
out:
    if (worst == INFINITY) snprintf(why, wsz, "n=%d: %s", n, err.message);
    rwkv_state_free(a);
    rwkv_state_free(b);
    free(tok);
    free(seq);
    free(rnn);
    return worst;
}

static void check_modes(kind k, const cfg *c) {
    rwkv_error err;
    rwkv_model *m = new_model(k, c, DT_F32, 1000 + k, &err);
    CHECK(m, "RWKV-%s: %s", kind_version[k], err.message);
    char why[768];
    static const int lens[] = {1, 7, 16, 300};
    /* a used state to start from: 40 tokens in RNN mode */
    rwkv_state *st;
    int warm[40];
    int ok = rwkv_state_new(m, &st, &err) == RWKV_OK;
    random_tokens(warm, 40, m->info.n_vocab, 77);
    for (int t = 0; ok && t < 40; t++) ok = rwkv_eval(m, st, warm[t], NULL, &err) == RWKV_OK;
    for (size_t i = 0; ok && i < sizeof lens / sizeof lens[0]; i++) {
        for (int from_used = 0; from_used < 2; from_used++) {
            double r = seq_vs_rnn(m, from_used ? rwkv_state_data(st) : NULL, lens[i], 5 + i, why, sizeof why);
            if (getenv("RWKV_TEST_VERBOSE")) printf("  RWKV-%s %s: %s\n", kind_version[k], from_used ? "used" : "fresh", why);
            if (!(r <= 1.0)) {
                rwkv_state_free(st);
                rwkv_model_free(m);
                CHECK(0, "RWKV-%s, %s state: %s", kind_version[k], from_used ? "used" : "fresh", why);
            }
        }
    }
    rwkv_state_free(st);
    rwkv_model_free(m);
    CHECK(ok, "%s", err.message);
}

/* `rwkv init --arch rwkv5|rwkv6 --uniform`: the benchmark models load as their
 * version, and sequence and RNN modes agree over 300 tokens (finite logits). */
static void test_init_bench_models(void) {
    static const char *const arch[] = {"rwkv5", "rwkv6"}, *const version[] = {"5.2", "6"};
    for (int v = 0; v < 2; v++) {
        char path[64], why[768];
        snprintf(path, sizeof path, "/tmp/rwkv_init_bench_%d_%d.safetensors", (int)getpid(), v);
        rwkv_init_options o = rwkv_init_options_default();
        o.arch = arch[v], o.n_layer = 2, o.n_embd = 128, o.n_vocab = 97, o.uniform = 1;
        rwkv_error err;
        CHECK(rwkv_init_checkpoint(&o, path, &err) == RWKV_OK, "%s: %s", arch[v], err.message);
        rwkv_model *m;
        CHECK(rwkv_model_load(path, &m, &err) == RWKV_OK, "%s: %s", arch[v], err.message);
        unlink(path);
        const int same = strcmp(m->info.version, version[v]) == 0;
        const double r = seq_vs_rnn(m, NULL, 300, 9, why, sizeof why);
        rwkv_model_free(m);
        CHECK(same, "%s loads as RWKV-%s", arch[v], version[v]);
        CHECK(r <= 1.0, "%s: %s", arch[v], why);
        o.uniform = 0;
        CHECK(rwkv_init_checkpoint(&o, path, &err) == RWKV_ERR_ARG && strstr(err.message, "--uniform"),
              "%s without --uniform: %s", arch[v], err.message);
    }
}

/* rwkv_eval_batch: the checks of tests/batch_check.h on a random model. */
static void check_batch(kind k, dtype big) {
    rwkv_error err;
    rwkv_model *m = new_model(k, &cfg_small, big, 2000 + k, &err);
    CHECK(m, "RWKV-%s: %s", kind_version[k], err.message);
    char why[512] = "";
    int ok = batch_check(m, why, sizeof why);
    rwkv_model_free(m);
    CHECK(ok, "RWKV-%s %s: %s", kind_version[k], dtype_name(big), why);
}

static void test_batch_v5(void) {
    check_batch(K50, DT_F32);
    check_batch(K51, DT_F32);
    check_batch(K52, DT_F16);
}
static void test_batch_v6(void) { check_batch(K6, DT_F16); }
static void test_batch_v7(void) {
    check_batch(K7, DT_F32);
    check_batch(K7, DT_F16);
}

static void test_modes_v5_2(void) { check_modes(K52, &cfg_small); }
static void test_modes_v5_1(void) { check_modes(K51, &cfg_small); }
static void test_modes_v5_0(void) { check_modes(K50, &cfg_small); }
static void test_modes_v6(void) { check_modes(K6, &cfg_small); }
static void test_modes_v7(void) { check_modes(K7, &cfg_small); }
static void test_modes_v5_2_wide_att(void) { check_modes(K52, &cfg_wide_att); }
static void test_modes_v6_wide_att(void) { check_modes(K6, &cfg_wide_att); }

/* sequence(a) then sequence(b) from the state it left == sequence(a + b);
 * also: only-last-row logits equal the last row of all_logits. */
static void check_continuation(kind k) {
    rwkv_error err;
    rwkv_model *m = new_model(k, &cfg_small, DT_F32, 2000 + k, &err);
    CHECK(m, "%s", err.message);
    const int n = 290, split = 263; /* both parts and the whole cross chunk boundaries differently */
    const size_t V = (size_t)m->info.n_vocab, S = m->info.state_floats;
    int tok[290];
    random_tokens(tok, n, (int)V, 99);
    float *whole = malloc(sizeof(float) * n * V), *parts = malloc(sizeof(float) * n * V), last[64];
    rwkv_state *a, *b;
    int ok = rwkv_state_new(m, &a, &err) == RWKV_OK && rwkv_state_new(m, &b, &err) == RWKV_OK;
    ok = ok && rwkv_eval_sequence(m, a, tok, (size_t)n, whole, 1, &err) == RWKV_OK;
    ok = ok && rwkv_eval_sequence(m, b, tok, (size_t)split, parts, 1, &err) == RWKV_OK;
    ok = ok && rwkv_eval_sequence(m, b, tok + split, (size_t)(n - split), parts + split * V, 1, &err) == RWKV_OK;
    double rl = ok ? tol_ratio(parts, whole, n * V, MODE_ATOL, MODE_RTOL) : INFINITY;
    double rs = ok ? tol_ratio(rwkv_state_data(b), rwkv_state_data(a), S, MODE_ATOL, MODE_RTOL) : INFINITY;
    /* last-row logits only, and logits == NULL */
    rwkv_state_reset(b);
    ok = ok && rwkv_eval_sequence(m, b, tok, (size_t)n, last, 0, &err) == RWKV_OK;
    double rlast = ok ? tol_ratio(last, whole + (n - 1) * V, V, MODE_ATOL, MODE_RTOL) : INFINITY;
    rwkv_state_reset(b);
    ok = ok && rwkv_eval_sequence(m, b, tok, (size_t)n, NULL, 0, &err) == RWKV_OK;
    int null_same = ok && memcmp(rwkv_state_data(b), rwkv_state_data(a), S * sizeof(float)) == 0;
    rwkv_state_free(a);
    rwkv_state_free(b);
    rwkv_model_free(m);
    free(whole);
    free(parts);
    CHECK(ok, "%s", err.message);
    CHECK(rl <= 1 && rs <= 1, "continued logits ratio %.3g, state ratio %.3g", rl, rs);
    CHECK(rlast <= 1, "last-row-only logits vs the last row of all logits: ratio %.3g", rlast);
    CHECK(null_same, "the state after a run without logits differs");
}
static void test_continuation_v5_2(void) { check_continuation(K52); }
static void test_continuation_v6(void) { check_continuation(K6); }
static void test_continuation_v7(void) { check_continuation(K7); }

/* A fresh state is all zeros, with the layout [L][att_xx C, S H*N*N, ffn_xx C]. */
static void test_state_layout(void) {
    rwkv_error err;
    for (int k = K52; k <= K7; k++) {
        const cfg *c = k == K7 ? &cfg_small : &cfg_wide_att;
        rwkv_model *m = new_model((kind)k, c, DT_F32, 3000 + k, &err);
        CHECK(m, "%s", err.message);
        rwkv_model_info info;
        rwkv_model_get_info(m, &info);
        size_t want = (size_t)c->L * (2 * (size_t)c->C + (size_t)c->A * c->N);
        int fields_ok = info.n_head == c->A / c->N && info.head_size == c->N && info.dim_att == c->A &&
                        info.state_floats == want && strcmp(info.version, kind_version[k]) == 0 &&
                        fabsf(info.gn_eps - 64e-5f) < 1e-9f;
        rwkv_state *st = NULL;
        int zeros = rwkv_state_new(m, &st, &err) == RWKV_OK;
        for (size_t i = 0; zeros && i < rwkv_state_size(st); i++) zeros = rwkv_state_data(st)[i] == 0.0f;
        /* the token shift slots hold the last ln1 / ln2 outputs: nonzero after a token */
        int tok = 3, shift_ok = zeros && rwkv_eval(m, st, tok, NULL, &err) == RWKV_OK;
        const float *d = rwkv_state_data(st);
        size_t per = 2 * (size_t)c->C + (size_t)c->A * c->N;
        shift_ok = shift_ok && d[0] != 0.0f && d[per - 1] != 0.0f && d[c->C] != 0.0f;
        rwkv_state_free(st);
        rwkv_model_free(m);
        CHECK(fields_ok, "RWKV-%s: info n_head %d head_size %d dim_att %d state %zu (want %zu) version %s eps %g",
              kind_version[k], info.n_head, info.head_size, info.dim_att, info.state_floats, want, info.version,
              (double)info.gn_eps);
        CHECK(zeros, "RWKV-%s: a fresh state must be all zeros", kind_version[k]);
        CHECK(shift_ok, "RWKV-%s: state slots not where expected after one token", kind_version[k]);
    }
}

static void test_lora_info(void) {
    rwkv_error err;
    rwkv_model *m6 = new_model(K6, &cfg_small, DT_F32, 1, &err);
    CHECK(m6, "%s", err.message);
    rwkv_model_info i6 = m6->info;
    rwkv_model_free(m6);
    rwkv_model *m7 = new_model(K7, &cfg_small, DT_F32, 1, &err);
    CHECK(m7, "%s", err.message);
    rwkv_model_info i7 = m7->info;
    rwkv_model_free(m7);
    CHECK(i6.d_mix_lora == cfg_small.Dm && i6.d_decay_lora == cfg_small.Dd && i6.d_aaa_lora == 0,
          "v6 LoRA sizes %d %d", i6.d_mix_lora, i6.d_decay_lora);
    CHECK(i7.d_decay_lora == cfg_small.Dd && i7.d_aaa_lora == cfg_small.Da && i7.d_mv_lora == cfg_small.Dv &&
              i7.d_gate_lora == cfg_small.Dg && i7.d_mix_lora == 0,
          "v7 LoRA sizes %d %d %d %d", i7.d_decay_lora, i7.d_aaa_lora, i7.d_mv_lora, i7.d_gate_lora);
}

/* RWKV-7 training checkpoints carry v0/v1/v2 in block 0 too (layer0_has_v);
 * they are unused: any values give the same logits as none. */
static void test_v7_layer0_v_unused(void) {
    float out[3][50];
    for (int variant = 0; variant < 3; variant++) {
        cfg c = cfg_small;
        c.layer0_v = (uint64_t)variant * 1000; /* 0: absent */
        rwkv_error err;
        rwkv_model *m = new_model(K7, &c, DT_F32, 6000, &err);
        CHECK(m, "%s", err.message);
        rwkv_state *st = NULL;
        int tok[4] = {3, 1, 4, 1};
        int ok = rwkv_state_new(m, &st, &err) == RWKV_OK &&
                 rwkv_eval_sequence(m, st, tok, 4, out[variant], 0, &err) == RWKV_OK;
        int dv = m->info.d_mv_lora;
        rwkv_state_free(st);
        rwkv_model_free(m);
        CHECK(ok, "%s", err.message);
        CHECK(dv == cfg_small.Dv, "d_mv_lora %d", dv);
    }
    /* Equal up to rounding: the three models' weights sit at different
     * addresses, and the decode row kernels start each row's sum at its
     * cache-line boundary, so the head's sums may round differently (one
     * ulp); reading v0/v1/v2 in block 0 would move the logits by far more. */
    double worst = 0;
    for (int v = 1; v < 3; v++)
        for (int i = 0; i < 50; i++) worst = fmax(worst, fabs((double)out[v][i] - out[0][i]));
    CHECK(worst <= 1e-5, "block 0's v0/v1/v2 changed the logits by %g", worst);
}

/* Missing tensors are reported by name, not crashed on. */
static void test_missing_tensor(void) {
    rwkv_error err;
    rwkv_model *m = calloc(1, sizeof *m);
    CHECK(m, "out of memory");
    tensor_set_init(&m->weights);
    m->weights.format = "safetensors";
    m->n_threads = 1;
    m->gn_eps = 64e-5f;
    builder b = {&m->weights, DT_F32, 5, &err, 1};
    cfg c = cfg_small;
    c.L = 2;
    add_weights(&b, K7, &c);
    /* hide one tensor by renaming it */
    for (int i = 0; i < m->weights.count; i++)
        if (strcmp(m->weights.tensors[i].name, "blocks.1.att.v2") == 0) m->weights.tensors[i].name[10] = 'X';
    rwkv_status s = rwkv7_build(m, &err);
    rwkv_model_free(m);
    CHECK(s == RWKV_ERR_SHAPE && strstr(err.message, "blocks.1.att.v2"), "status %d: %s", (int)s, err.message);
}

/* ------------------------------------------------------------------------ */
/* The group norm of ln_x against double precision                         */
/* ------------------------------------------------------------------------ */

static void fill(float *a, size_t n, uint64_t *s, float lo, float hi) {
    for (size_t i = 0; i < n; i++) a[i] = uniform(s, lo, hi);
}

static void test_group_norm(void) {
    enum { H = 4, N = 16, A = H * N };
    uint64_t s = 7;
    float x[A], w[A], b[A], y[A], want[A];
    fill(x, A, &s, -3, 5);
    fill(w, A, &s, 0.5f, 1.5f);
    fill(b, A, &s, -0.2f, 0.2f);
    for (int i = 0; i < N; i++) x[i] = 0.01f * x[i] + 2.0f; /* a quiet head: eps matters */
    const float eps = 64e-5f;
    for (int h = 0; h < H; h++) {
        double mean = 0, var = 0;
        for (int j = 0; j < N; j++) mean += x[h * N + j];
        mean /= N;
        for (int j = 0; j < N; j++) var += (x[h * N + j] - mean) * (x[h * N + j] - mean);
        var /= N;
        for (int j = 0; j < N; j++)
            want[h * N + j] = (float)((x[h * N + j] - mean) / sqrt(var + eps) * w[h * N + j] + b[h * N + j]);
    }
    group_norm(x, w, b, H, N, eps, y);
    double r = tol_ratio(y, want, A, 1e-5, 1e-5);
    CHECK(r <= 1, "group_norm vs double: ratio %.3g", r);
    group_norm(x, w, b, H, N, eps, x); /* in place */
    CHECK(memcmp(x, y, sizeof y) == 0, "group_norm in place differs");
}

/* ------------------------------------------------------------------------ */
/* Version detection, epsilon rule, file round trip                         */
/* ------------------------------------------------------------------------ */

static void test_version_detection(void) {
    for (int k = K50; k <= K7; k++) {
        tensor_set set;
        tensor_set_init(&set);
        rwkv_error err;
        builder b = {&set, DT_F32, 1, &err, 1};
        cfg c = cfg_small;
        c.L = 1;
        add_weights(&b, (kind)k, &c);
        const char *v = model_detect_version(&set);
        tensor_set_free(&set);
        CHECK(b.ok, "%s", err.message);
        CHECK(strcmp(v, kind_version[k]) == 0, "detected %s, want %s", v, kind_version[k]);
    }
}

static void test_group_norm_eps_rule(void) {
    CHECK(model_group_norm_eps("safetensors", "5.2") == 64e-5f, "official v5.2");
    CHECK(model_group_norm_eps("pth", "5.2") == 64e-5f, "official .pth v5.2");
    CHECK(model_group_norm_eps("pth", "6") == 64e-5f && model_group_norm_eps("pth", "7") == 64e-5f, "official v6/v7");
    CHECK(model_group_norm_eps("rwkv.cpp", "5.2") == 1e-5f && model_group_norm_eps("rwkv.cpp", "5.1") == 1e-5f,
          "rwkv.cpp v5");
    CHECK(model_group_norm_eps("rwkv.cpp", "6") == 64e-5f && model_group_norm_eps("rwkv.cpp", "7") == 64e-5f,
          "rwkv.cpp v6/v7");
}

/* Written as safetensors (bf16) and loaded through the public API: version
 * detected, same logits as the model built in memory. */
static void test_file_round_trip(void) {
    rwkv_error err;
    char path[] = "/tmp/rwkv_versions_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp failed");
    close(fd);
    for (int k = K52; k <= K7; k++) {
        rwkv_model *a = new_model((kind)k, &cfg_small, DT_BF16, 4000 + k, &err);
        CHECK(a, "%s", err.message);
        rwkv_status s = safetensors_write(path, a->weights.tensors, a->weights.count, DT_COUNT, &err);
        rwkv_model *b = NULL;
        if (s == RWKV_OK) s = rwkv_model_load(path, &b, &err);
        int tok[5] = {1, 4, 9, 16, 25};
        float la[5 * 50], lb[5 * 50];
        rwkv_state *sa = NULL, *sb = NULL;
        if (s == RWKV_OK) s = rwkv_state_new(a, &sa, &err);
        if (s == RWKV_OK) s = rwkv_state_new(b, &sb, &err);
        if (s == RWKV_OK) s = rwkv_eval_sequence(a, sa, tok, 5, la, 1, &err);
        if (s == RWKV_OK) s = rwkv_eval_sequence(b, sb, tok, 5, lb, 1, &err);
        rwkv_model_info ib = {0};
        if (b) rwkv_model_get_info(b, &ib);
        rwkv_state_free(sa);
        rwkv_state_free(sb);
        rwkv_model_free(a);
        rwkv_model_free(b);
        if (s != RWKV_OK) unlink(path);
        CHECK(s == RWKV_OK, "%s", err.message);
        CHECK(strcmp(ib.version, kind_version[k]) == 0 && strcmp(ib.format, "safetensors") == 0,
              "loaded version %s format %s", ib.version, ib.format);
        CHECK(memcmp(la, lb, sizeof la) == 0, "RWKV-%s: loaded model gives other logits", kind_version[k]);
    }
    unlink(path);
}

/* ------------------------------------------------------------------------ */
/* The tiny reference vector cases (sequence mode, row 0)                    */
/* ------------------------------------------------------------------------ */

static void check_vector_case(const char *set_name, const char *version, int H, int N, int l1, int l2, int l3,
                              int l4) {
    char dir[1024], path[1200], rel[64];
    snprintf(rel, sizeof rel, "testvectors/%s/tiny", set_name);
    if (!shared_path(path, sizeof path, rel)) SKIP("../shared/%s not present", rel);
    snprintf(dir, sizeof dir, "%s/testvectors/%s/tiny", shared_dir(), set_name);
    /* inputs row 0 from case.txt */
    snprintf(path, sizeof path, "%s/case.txt", dir);
    FILE *f = fopen(path, "r");
    CHECK(f, "cannot open %s", path);
    static char line[1 << 16];
    int B = 0, T = 0, tok[4096];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "inputs ", 7) != 0) continue;
        char *p = line + 7, *e;
        B = (int)strtol(p, &e, 10);
        T = (int)strtol(e, &p, 10);
        for (int i = 0; i < T && i < 4096; i++) tok[i] = (int)strtol(p, &p, 10);
    }
    fclose(f);
    CHECK(B > 0 && T > 0 && T <= 4096, "%s: no inputs line", path);
    snprintf(path, sizeof path, "%s/model.f32.safetensors", dir);
    rwkv_error err;
    rwkv_model *m;
    CHECK(rwkv_model_load(path, &m, &err) == RWKV_OK, "%s", err.message);
    rwkv_model_info i;
    rwkv_model_get_info(m, &i);
    int V = i.n_vocab;
    float *got = malloc(sizeof(float) * (size_t)T * V), *want = malloc(sizeof(float) * (size_t)T * V);
    rwkv_state *st = NULL;
    int ok = rwkv_state_new(m, &st, &err) == RWKV_OK && rwkv_eval_sequence(m, st, tok, (size_t)T, got, 1, &err) == RWKV_OK;
    rwkv_state_free(st);
    rwkv_model_free(m);
    snprintf(path, sizeof path, "%s/logits_parallel.f32", dir);
    f = fopen(path, "rb");
    size_t rd = f ? fread(want, sizeof(float), (size_t)T * V, f) : 0;
    if (f) fclose(f);
    double r = ok && rd == (size_t)T * V ? tol_ratio(got, want, (size_t)T * V, 1e-4, 1e-4) : INFINITY;
    free(got);
    free(want);
    CHECK(ok, "%s", err.message);
    CHECK(strcmp(i.version, version) == 0 && i.n_head == H && i.head_size == N, "version %s, heads %d x %d",
          i.version, i.n_head, i.head_size);
    CHECK(i.d_mix_lora == l1 && i.d_decay_lora == l2 && i.d_aaa_lora == l3 && i.d_mv_lora == l4,
          "LoRA sizes %d %d %d %d", i.d_mix_lora, i.d_decay_lora, i.d_aaa_lora, i.d_mv_lora);
    CHECK(i.state_floats == (size_t)i.n_layer * (N + 2) * i.n_embd, "state floats %zu", i.state_floats);
    CHECK(r <= 1, "logits vs logits_parallel.f32 row 0: worst ratio %.3g", r);
}
static void test_vectors_v5(void) { check_vector_case("rwkv5", "5.2", 4, 8, 0, 0, 0, 0); }
static void test_vectors_v6(void) { check_vector_case("rwkv6", "6", 4, 8, 8, 16, 0, 0); }
static void test_vectors_v7(void) { check_vector_case("rwkv7", "7", 4, 8, 0, 8, 12, 4); }

/* ------------------------------------------------------------------------ */
/* Random models of rwkv init --arch rwkv5|rwkv6 --uniform                  */
/* ------------------------------------------------------------------------ */

enum { INIT_V = 300, INIT_TOKENS = 40 };

/* The logits after INIT_TOKENS tokens (fed as one sequence) of the model
 * rwkv_init_checkpoint writes for arch, seed and dtype; 0 with *why set. */
static int init_logits(const char *arch, uint64_t seed, rwkv_dtype dt, float *logits, rwkv_model_info *info,
                       char *why, size_t size) {
    rwkv_init_options o = rwkv_init_options_default();
    o.arch = arch, o.uniform = 1, o.n_layer = 3, o.n_embd = 128, o.n_vocab = INIT_V, o.seed = seed, o.dtype = dt;
    rwkv_model *m = init_model(&o, why, size);
    if (!m) return 0;
    rwkv_error err;
    rwkv_state *st = NULL;
    int tok[INIT_TOKENS];
    random_tokens(tok, INIT_TOKENS, INIT_V, 5);
    int ok = rwkv_state_new(m, &st, &err) == RWKV_OK &&
             rwkv_eval_sequence(m, st, tok, INIT_TOKENS, logits, 0, &err) == RWKV_OK;
    if (!ok) snprintf(why, size, "%s", err.message);
    rwkv_model_get_info(m, info); /* its strings are static: valid after the model is freed */
    rwkv_state_free(st);
    rwkv_model_free(m);
    return ok;
}

static double max_abs_diff(const float *a, const float *b, int n) {
    double d = 0;
    for (int i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* The f32 file's logits are finite, of the head's scale (rms ~1: variance
 * 1/C over ln_out's unit outputs), and the blocks matter: another seed moves
 * them by several rms. A bf16 or f16 file of the same seed stays within its
 * rounding: every weight moves by up to half an epsilon (bf16 2^-7, f16
 * 2^-10), and the products of the blocks (r·k·v, the gates, relu²) add such
 * relative errors up; the largest logit difference measures 2-3 epsilons of
 * the rms for both types, the bound is 16. */
static void check_init_arch(const char *arch, const char *version) {
    char why[600];
    float ref[INIT_V], other[INIT_V], low[INIT_V];
    rwkv_model_info info;
    CHECK(init_logits(arch, 1, RWKV_DTYPE_F32, ref, &info, why, sizeof why), "%s: %s", arch, why);
    CHECK(strcmp(info.version, version) == 0 && info.n_head == 2 && info.head_size == 64 && info.n_ffn == 448 &&
              info.dim_att == 128 && strcmp(info.dtype, "f32") == 0,
          "%s: version %s, %d x %d heads, n_ffn %d, dtype %s", arch, info.version, info.n_head, info.head_size,
          info.n_ffn, info.dtype);
    double sum2 = 0;
    for (int i = 0; i < INIT_V; i++) {
        CHECK(isfinite(ref[i]), "%s: logit %d is %g", arch, i, ref[i]);
        sum2 += (double)ref[i] * ref[i];
    }
    const double rms = sqrt(sum2 / INIT_V);
    CHECK(rms > 0.1 && rms < 5.0, "%s: logits' rms %g", arch, rms);
    CHECK(init_logits(arch, 2, RWKV_DTYPE_F32, other, &info, why, sizeof why), "%s: %s", arch, why);
    const double seed_diff = max_abs_diff(ref, other, INIT_V);
    CHECK(seed_diff > 0.5, "%s: another seed moves the logits by %g only", arch, seed_diff);
    static const struct { rwkv_dtype dt; const char *name; double tol; } low_types[] = {
        {RWKV_DTYPE_BF16, "bf16", 16 * 0x1p-7}, {RWKV_DTYPE_F16, "f16", 16 * 0x1p-10}};
    double d[2];
    for (size_t t = 0; t < 2; t++) {
        CHECK(init_logits(arch, 1, low_types[t].dt, low, &info, why, sizeof why), "%s: %s", arch, why);
        d[t] = max_abs_diff(ref, low, INIT_V);
        CHECK(strcmp(info.dtype, low_types[t].name) == 0, "%s: dtype %s", arch, info.dtype);
        CHECK(d[t] <= low_types[t].tol * rms, "%s %s: logits differ from f32 by %g (rms %g, seed effect %g)", arch,
              low_types[t].name, d[t], rms, seed_diff);
    }
    printf("  %s: logits rms %.3f; another seed moves them by %.3f, bf16 by %.2g, f16 by %.2g\n", arch, rms,
           seed_diff, d[0], d[1]);
}

static void test_init_rwkv5(void) { check_init_arch("rwkv5", "5.2"); }
static void test_init_rwkv6(void) { check_init_arch("rwkv6", "6"); }

/* ------------------------------------------------------------------------ */
/* Benchmark: the 0.1B shape                                                */
/* ------------------------------------------------------------------------ */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench(int argc, char **argv) {
    const char *ver = argc > 2 ? argv[2] : "7", *dt = argc > 3 ? argv[3] : "bf16";
    int threads = argc > 4 ? atoi(argv[4]) : 0;
    kind k = strcmp(ver, "5.2") == 0 ? K52 : strcmp(ver, "6") == 0 ? K6 : K7;
    dtype big = strcmp(dt, "f32") == 0 ? DT_F32 : strcmp(dt, "f16") == 0 ? DT_F16 : DT_BF16;
    /* RWKV-7 0.1B (rwkv7-g1 0.1b): V 65536, C 768, L 12, N 64, F 4C, LoRA 64/64/32/128;
     * v5/v6 at the same width with F = 3.5C, v6 LoRA 32/64 */
    cfg c = {.V = 65536, .C = 768, .A = 768, .L = 12, .F = k == K7 ? 3072 : 2688, .N = 64};
    if (k == K7) c.Dd = 64, c.Da = 64, c.Dv = 32, c.Dg = 128;
    else c.Dm = 32, c.Dd = 64;
    rwkv_error err;
    double t0 = now();
    rwkv_model *m = new_model(k, &c, big, 1, &err);
    if (!m) {
        fprintf(stderr, "bench: %s\n", err.message);
        return 1;
    }
    rwkv_model_set_threads(m, threads);
    printf("RWKV-%s, V=%d C=%d L=%d N=%d F=%d, %s weights, %d threads (built in %.1f s)\n", kind_version[k], c.V,
           c.C, c.L, c.N, c.F, dt, m->n_threads, now() - t0);
    rwkv_state *st;
    if (rwkv_state_new(m, &st, &err) != RWKV_OK) return 1;
    float *logits = malloc(sizeof(float) * (size_t)c.V);
    enum { PROMPT = 512, DECODE = 64 };
    int *tok = malloc(sizeof(int) * PROMPT);
    random_tokens(tok, PROMPT, c.V, 3);
    for (int i = 0; i < 4; i++) rwkv_eval(m, st, tok[i], logits, &err); /* warm up */
    double best_dec = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        t0 = now();
        for (int i = 0; i < DECODE; i++) rwkv_eval(m, st, tok[i], logits, &err);
        double ms = (now() - t0) * 1e3 / DECODE;
        best_dec = ms < best_dec ? ms : best_dec;
    }
    printf("decode (RNN mode, logits every token): %.2f ms/token = %.1f tokens/s\n", best_dec, 1e3 / best_dec);
    static const int plen[] = {64, 256, PROMPT};
    for (size_t p = 0; p < sizeof plen / sizeof plen[0]; p++) {
        double best = 1e9;
        for (int rep = 0; rep < 2; rep++) {
            rwkv_state_reset(st);
            t0 = now();
            rwkv_eval_sequence(m, st, tok, (size_t)plen[p], logits, 0, &err);
            double s = now() - t0;
            best = s < best ? s : best;
        }
        printf("prefill %3d tokens (sequence mode): %.1f ms = %.0f tokens/s (%.1fx one-token steps)\n", plen[p],
               best * 1e3, plen[p] / best, (plen[p] / best) / (1e3 / best_dec));
    }
    free(tok);
    free(logits);
    rwkv_state_free(st);
    rwkv_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) return bench(argc, argv);
    RUN(test_group_norm);
    RUN(test_version_detection);
    RUN(test_init_bench_models);
    RUN(test_group_norm_eps_rule);
    RUN(test_modes_v5_2);
    RUN(test_modes_v5_1);
    RUN(test_modes_v5_0);
    RUN(test_modes_v6);
    RUN(test_modes_v7);
    RUN(test_modes_v5_2_wide_att);
    RUN(test_modes_v6_wide_att);
    RUN(test_continuation_v5_2);
    RUN(test_continuation_v6);
    RUN(test_continuation_v7);
    RUN(test_batch_v5);
    RUN(test_batch_v6);
    RUN(test_batch_v7);
    RUN(test_state_layout);
    RUN(test_lora_info);
    RUN(test_v7_layer0_v_unused);
    RUN(test_missing_tensor);
    RUN(test_file_round_trip);
    RUN(test_vectors_v5);
    RUN(test_vectors_v6);
    RUN(test_vectors_v7);
    RUN(test_init_rwkv5);
    RUN(test_init_rwkv6);
    return test_summary();
}
