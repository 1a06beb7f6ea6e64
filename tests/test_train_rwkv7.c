/* RWKV-7 training math (train/rwkv7_grad.h): the layout and its optimizer
 * flags, the official initialisation, central differences of the loss
 * against the backward for entries of every parameter, bitwise the same
 * gradients for any thread count, and a saved model that the inference
 * loader reads as RWKV-7 with the training forward's logits. (The reference
 * gradients of the shared vectors are checked by tests/check_vectors; the
 * WKV-7 backward alone in tests/test_wkv.c.) */
#include <stdint.h>

#include "rwkv.h"
#include "test.h"
#include "train/arch.h"
#include "train/rwkv7_grad.h"

static uint64_t rng_state = 0x7777ull;
static double urand(void) { /* [0, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}

/* A small model crossing the WKV's chunk boundary (T > 16), with ranks that
 * all differ, odd vocabulary, two layers (so the value residual is used). */
static const rwkv7_shape small = {11, 16, 2, 24, 4, 3, 4, 5, 6, 0};
enum { B = 2, T = 19 };

typedef struct model {
    param_layout lay;
    float *p;
} model;

/* The official init, then every parameter moved by noise so that no path
 * (zero output projections, zero LoRA factors) hides a gradient. */
static int make_model(model *m, double noise) {
    rwkv_error err;
    if (rwkv7_layout_init(&small, &m->lay, &err) != RWKV_OK) return 0;
    m->p = malloc(m->lay.total * sizeof(float));
    if (!m->p || rwkv7_init_params(&small, &m->lay, m->p, 5) != RWKV_OK) return 0;
    for (size_t i = 0; i < m->lay.total; i++) m->p[i] += (float)(noise * (2 * urand() - 1));
    return 1;
}

static void tokens(int *in, int *tg) {
    for (int i = 0; i < B * T; i++) in[i] = (int)(urand() * small.n_vocab), tg[i] = (int)(urand() * small.n_vocab);
}

static void test_layout(void) {
    rwkv7_shape s = {256, 768, 12, 0, 0, 0, 0, 0, 0, 0};
    rwkv_error err;
    CHECK(rwkv7_shape_complete(&s, &err) == RWKV_OK, "%s", err.message);
    /* the official suggestions reproduce the released 0.1B model's ranks */
    CHECK(s.n_ffn == 3072 && s.head_size == 64 && s.d_decay == 64 && s.d_aaa == 64 && s.d_mv == 32 && s.d_gate == 128,
          "defaults %d %d %d %d %d %d", s.n_ffn, s.head_size, s.d_decay, s.d_aaa, s.d_mv, s.d_gate);
    rwkv7_shape bad = {16, 24, 1, 0, 5, 0, 0, 0, 0, 0};
    CHECK(rwkv7_shape_complete(&bad, &err) == RWKV_ERR_ARG && strstr(err.message, "--head-size"), "head size 5 of 24");
    param_layout lay;
    CHECK(rwkv7_layout_init(&small, &lay, &err) == RWKV_OK, "%s", err.message);
    CHECK(!param_layout_find(&lay, "blocks.0.att.v0") && param_layout_find(&lay, "blocks.1.att.v1"),
          "block 0 must have no value-residual LoRA, block 1 must");
    const param_info *w0 = param_layout_find(&lay, "blocks.1.att.w0"), *w1 = param_layout_find(&lay, "blocks.1.att.w1");
    const param_info *key = param_layout_find(&lay, "blocks.0.att.key.weight"), *rk = param_layout_find(&lay, "blocks.0.att.r_k");
    const param_info *emb = param_layout_find(&lay, "emb.weight");
    CHECK(w0 && w1 && key && rk && emb, "missing tensors");
    CHECK(w0->lr_scale == 2.0f && w1->lr_scale == 1.0f && key->lr_scale == 1.0f, "LR scales");
    CHECK(key->decay && emb->decay && !w1->decay && !w0->decay && !rk->decay, "weight-decay flags");
    CHECK(rk->shape[0] == 4 && rk->shape[1] == 4, "r_k is [H, N]");
    param_layout_free(&lay);
}

static void test_init(void) {
    model a, b;
    CHECK(make_model(&a, 0) && make_model(&b, 0), "init failed");
    CHECK(memcmp(a.p, b.p, a.lay.total * sizeof(float)) == 0, "init is not deterministic");
    const int C = small.n_embd;
#define AT(name) (a.p + param_layout_find(&a.lay, name)->offset)
    const float *emb = AT("emb.weight"), *out = AT("blocks.1.att.output.weight"), *w1 = AT("blocks.0.att.w1");
    for (int i = 0; i < small.n_vocab * C; i++) CHECK(fabsf(emb[i]) <= 1e-4f, "emb.weight[%d] = %g", i, emb[i]);
    for (int i = 0; i < C * C; i++) CHECK(out[i] == 0.0f, "att.output must start at zero");
    for (int i = 0; i < C * small.d_decay; i++) CHECK(w1[i] == 0.0f, "att.w1 must start at zero");
    /* w2 [Dw, C] is 0.1 x orthonormal rows */
    const float *w2 = AT("blocks.0.att.w2");
    for (int r = 0; r < small.d_decay; r++)
        for (int q = 0; q < small.d_decay; q++) {
            double dot = 0;
            for (int i = 0; i < C; i++) dot += (double)w2[r * C + i] * w2[q * C + i];
            CHECK(fabs(dot - (r == q ? 0.01 : 0.0)) < 1e-6, "w2 rows %d, %d: dot %g", r, q, dot);
        }
    /* spot values of the per-channel profiles (layer 1 of 2: r01 = 1, r10 = 0.5) */
    const float *w0 = AT("blocks.1.att.w0"), *lnx = AT("blocks.0.att.ln_x.weight"), *xr = AT("blocks.1.att.x_r");
    const double zz0 = -1.0; /* channel 0 is the first of its head: zigzag -1 */
    CHECK(fabs(w0[0] - (-6.0 + 0.5 + 2.5 * zz0)) < 1e-5, "w0[0] = %g", w0[0]);
    CHECK(fabs(lnx[0] - pow(0.5, 0.7)) < 1e-6, "ln_x.weight of block 0 = %g", lnx[0]);
    CHECK(fabs(xr[8] - (1.0 - pow(0.5, 0.2 * 0.5))) < 1e-6, "x_r[8] = %g", xr[8]);
    CHECK(*AT("blocks.0.att.k_a") == 1.02f && *AT("blocks.1.att.r_k") == -0.04f, "k_a, r_k constants");
#undef AT
    free(a.p), free(b.p);
    param_layout_free(&a.lay), param_layout_free(&b.lay);
}

static double loss_of(rwkv7_train_ctx *ctx, const float *p, const int *in, const int *tg) {
    float loss = NAN;
    rwkv_error err;
    rwkv7_forward_loss(ctx, p, in, tg, NULL, &loss, &err);
    return loss;
}

/* For each parameter, the entry with the largest gradient and one random
 * entry: central differences of the float32 loss against the backward. */
static void test_finite_differences(void) {
    rng_state = 11;
    model m;
    CHECK(make_model(&m, 0.3), "init failed");
    int in[B * T], tg[B * T];
    tokens(in, tg);
    rwkv7_train_ctx *ctx = NULL;
    rwkv_error err;
    CHECK(rwkv7_train_ctx_new(&small, &m.lay, B, T, 2, &ctx, &err) == RWKV_OK, "%s", err.message);
    float *g = calloc(m.lay.total, sizeof(float)), loss;
    CHECK(rwkv7_forward_backward(ctx, m.p, in, tg, 0.0f, g, &loss, &err) == RWKV_OK, "%s", err.message);
    double worst = 0;
    const char *worst_name = "";
    for (int pi = 0; pi < m.lay.count; pi++) {
        const param_info *p = &m.lay.params[pi];
        size_t big = 0;
        for (size_t i = 1; i < p->numel; i++)
            if (fabsf(g[p->offset + i]) > fabsf(g[p->offset + big])) big = i;
        const size_t probes[2] = {big, (size_t)(urand() * p->numel)};
        for (int k = 0; k < 2; k++) {
            float *x = m.p + p->offset + probes[k];
            const float keep = *x, h = 2e-3f;
            *x = keep + h;
            const double lp = loss_of(ctx, m.p, in, tg);
            *x = keep - h;
            const double lm = loss_of(ctx, m.p, in, tg);
            *x = keep;
            const double fd = (lp - lm) / (2.0 * h), an = g[p->offset + probes[k]];
            const double r = fabs(fd - an) / (2e-4 + 0.03 * fabs(an));
            if (r > worst) worst = r, worst_name = p->name;
        }
    }
    printf("# rwkv7 loss vs central differences: worst ratio %.3g (%s; 1 = 2e-4 + 3%%)\n", worst, worst_name);
    rwkv7_train_ctx_free(ctx);
    free(g), free(m.p);
    param_layout_free(&m.lay);
    CHECK(worst <= 1, "gradient of %s disagrees with central differences (ratio %.3g)", worst_name, worst);
}

static void test_threads_and_l2wrap(void) {
    rng_state = 12;
    model m;
    CHECK(make_model(&m, 0.2), "init failed");
    int in[B * T], tg[B * T];
    tokens(in, tg);
    float *g[3], loss[3];
    const int threads[3] = {1, 3, 3};
    for (int i = 0; i < 3; i++) {
        rwkv7_train_ctx *ctx = NULL;
        rwkv_error err;
        g[i] = calloc(m.lay.total, sizeof(float));
        CHECK(rwkv7_train_ctx_new(&small, &m.lay, B, T, threads[i], &ctx, &err) == RWKV_OK, "%s", err.message);
        rwkv_status s = rwkv7_forward_backward(ctx, m.p, in, tg, i == 2 ? 1e-4f : 0.0f, g[i], &loss[i], &err);
        rwkv7_train_ctx_free(ctx);
        CHECK(s == RWKV_OK, "%s", err.message);
    }
    const size_t head = param_layout_find(&m.lay, "head.weight")->offset;
    CHECK(memcmp(g[0], g[1], m.lay.total * sizeof(float)) == 0 && loss[0] == loss[1],
          "gradients differ between 1 and 3 threads");
    CHECK(loss[2] == loss[0] && memcmp(g[0] + head, g[2] + head, (m.lay.total - head) * sizeof(float)) != 0,
          "L2Wrap must change the head's gradient, not the loss");
    int bad_token[B * T];
    memcpy(bad_token, in, sizeof in);
    bad_token[3] = small.n_vocab;
    rwkv7_train_ctx *ctx = NULL;
    rwkv_error err;
    CHECK(rwkv7_train_ctx_new(&small, &m.lay, B, T, 1, &ctx, &err) == RWKV_OK, "%s", err.message);
    float l;
    const int rc = rwkv7_forward_backward(ctx, m.p, bad_token, tg, 0.0f, g[0], &l, &err);
    rwkv7_train_ctx_free(ctx);
    for (int i = 0; i < 3; i++) free(g[i]);
    free(m.p);
    param_layout_free(&m.lay);
    CHECK(rc == RWKV_ERR_ARG && strstr(err.message, "inputs[0][3]"), "token outside the vocabulary: %s",
          err.message);
}

/* A trained model's file is an RWKV-7 checkpoint for every other command:
 * the inference loader reads it and gives the training forward's logits. */
static void test_saved_model_loads(void) {
    rng_state = 13;
    model m;
    CHECK(make_model(&m, 0.2), "init failed");
    const train_arch *arch = train_arch_find("rwkv7");
    CHECK(arch, "rwkv7 is not a training architecture");
    char path[] = "/tmp/rwkv7_trainXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    arch_shape sh = {.n_vocab = small.n_vocab, .n_embd = small.n_embd, .n_layer = small.n_layer,
                     .n_ffn = small.n_ffn, .head_size = small.head_size, .d_decay = small.d_decay,
                     .d_aaa = small.d_aaa, .d_mv = small.d_mv, .d_gate = small.d_gate};
    rwkv_error err;
    CHECK(arch->save(path, &sh, &m.lay, m.p, &err) == RWKV_OK, "%s", err.message);
    int in[B * T], tg[B * T];
    tokens(in, tg);
    float *want = malloc(sizeof(float) * B * T * small.n_vocab), *got = malloc(sizeof(float) * T * small.n_vocab);
    rwkv7_train_ctx *ctx = NULL;
    float loss;
    CHECK(rwkv7_train_ctx_new(&small, &m.lay, B, T, 1, &ctx, &err) == RWKV_OK, "%s", err.message);
    CHECK(rwkv7_forward_loss(ctx, m.p, in, tg, want, &loss, &err) == RWKV_OK, "%s", err.message);
    rwkv7_train_ctx_free(ctx);
    rwkv_model *model = NULL;
    rwkv_status s = rwkv_model_load(path, &model, &err);
    unlink(path);
    CHECK(s == RWKV_OK, "inference load: %s", err.message);
    rwkv_model_info info;
    rwkv_model_get_info(model, &info);
    double worst = 0;
    for (int b = 0; b < B && s == RWKV_OK; b++) {
        rwkv_state *st = NULL;
        s = rwkv_state_new(model, &st, &err);
        if (s == RWKV_OK) s = rwkv_eval_sequence(model, st, in + b * T, T, got, 1, &err);
        rwkv_state_free(st);
        for (int i = 0; s == RWKV_OK && i < T * small.n_vocab; i++) {
            const double w = want[(size_t)b * T * small.n_vocab + i];
            const double r = fabs(got[i] - w) / (1e-4 + 1e-4 * fabs(w));
            worst = r > worst ? r : worst;
        }
    }
    const int version7 = strcmp(info.version, "7") == 0 && info.head_size == small.head_size &&
                         info.d_mv_lora == small.d_mv;
    rwkv_model_free(model);
    free(want), free(got), free(m.p);
    param_layout_free(&m.lay);
    CHECK(s == RWKV_OK, "inference: %s", err.message);
    CHECK(version7, "the saved model is not read as RWKV-7 of the trained shape (version %s)", info.version);
    CHECK(worst <= 1, "inference logits differ from the training forward: ratio %.3g", worst);
}

int main(void) {
    RUN(test_layout);
    RUN(test_init);
    RUN(test_finite_differences);
    RUN(test_threads_and_l2wrap);
    RUN(test_saved_model_loads);
    return test_summary();
}
