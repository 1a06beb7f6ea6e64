/* The GPT baseline (src/model/gpt*.c, src/train/gpt_grad.c): every parameter tensor's gradient
 * against central finite differences of a double-precision forward written
 * here from the formulas (independent of the library code), the KV-cache
 * decode path against the full-sequence forward, thread-count determinism,
 * checkpoint round trip and the GPT-2 initialisation. */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "model/gpt.h"
#include "train/gpt_grad.h"
#include "test.h"

/* ---- a small deterministic generator for test weights ---- */
static uint64_t lcg_state = 12345;
static double urand(void) { /* [0, 1) */
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) * 0x1.0p-53;
}

static size_t off_of(const param_layout *lay, const char *name) {
    for (int i = 0; i < lay->count; i++)
        if (strcmp(lay->params[i].name, name) == 0) return lay->params[i].offset;
    fprintf(stderr, "no parameter %s\n", name);
    abort();
}
static size_t loff(const param_layout *lay, int l, const char *what) {
    char name[96];
    snprintf(name, sizeof name, "transformer.h.%d.%s", l, what);
    return off_of(lay, name);
}

/* Random weights that make every path matter: matrices U(-0.5, 0.5),
 * LayerNorm weights 1 ± 0.3, biases ± 0.2. */
static void random_params(const param_layout *lay, float *p) {
    for (int i = 0; i < lay->count; i++) {
        const param_info *pi = &lay->params[i];
        const char *n = pi->name;
        size_t len = strlen(n);
        int ln_w = pi->ndim == 1 && strcmp(n + len - 7, ".weight") == 0;
        for (size_t j = 0; j < pi->numel; j++) {
            double u = urand() - 0.5;
            p[pi->offset + j] = (float)(pi->ndim == 2 ? u : ln_w ? 1.0 + 0.6 * u : 0.4 * u);
        }
    }
}

/* ---- reference forward in double ---- */

static void ln_d(const double *x, const double *w, const double *b, int C, double *y) {
    double mean = 0, var = 0;
    for (int i = 0; i < C; i++) mean += x[i];
    mean /= C;
    for (int i = 0; i < C; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= C;
    double r = 1.0 / sqrt(var + 1e-5);
    for (int i = 0; i < C; i++) y[i] = (x[i] - mean) * r * w[i] + b[i];
}

/* y[o] = Σ_i W[o][i] x[i] + b[o] */
static void lin_d(const double *W, const double *b, int out, int in, const double *x, double *y) {
    for (int o = 0; o < out; o++) {
        double s = b ? b[o] : 0.0;
        for (int i = 0; i < in; i++) s += W[(size_t)o * in + i] * x[i];
        y[o] = s;
    }
}

static double gelu_d(double x) { return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }

static double ref_loss(const gpt_shape *s, const param_layout *lay, const double *p, const int *in, const int *tg,
                       int B, int T, double *logits_out) {
    const int C = s->n_embd, H = s->n_head, D = C / H, F = s->n_ffn, V = s->n_vocab, L = s->n_layer;
    double *x = calloc((size_t)T * C, sizeof(double)), *a = calloc((size_t)T * C, sizeof(double));
    double *qkv = calloc((size_t)T * 3 * C, sizeof(double)), *y = calloc((size_t)T * C, sizeof(double));
    double *h = calloc((size_t)F, sizeof(double)), *o = calloc((size_t)C, sizeof(double));
    double *sc = calloc((size_t)T, sizeof(double)), *lg = calloc((size_t)V, sizeof(double));
    const double *wte = p + off_of(lay, "transformer.wte.weight"), *wpe = p + off_of(lay, "transformer.wpe.weight");
    static const char *const names[12] = {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                                          "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                                          "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};
    const double *lw[8][12];
    for (int l = 0; l < L && l < 8; l++)
        for (int k = 0; k < 12; k++) lw[l][k] = p + loff(lay, l, names[k]);
    const double *lnf_w = p + off_of(lay, "transformer.ln_f.weight"), *lnf_b = p + off_of(lay, "transformer.ln_f.bias");
    const double *head = p + off_of(lay, "lm_head.weight");
    double loss = 0;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) x[t * C + c] = wte[in[b * T + t] * C + c] + wpe[t * C + c];
        for (int l = 0; l < L; l++) {
            for (int t = 0; t < T; t++) {
                ln_d(x + t * C, lw[l][0], lw[l][1], C, a + t * C);
                lin_d(lw[l][2], lw[l][3], 3 * C, C,
                      a + t * C, qkv + t * 3 * C);
            }
            for (int hd = 0; hd < H; hd++)
                for (int t = 0; t < T; t++) {
                    double mx = -1e300, sum = 0;
                    for (int u = 0; u <= t; u++) {
                        double d = 0;
                        for (int k = 0; k < D; k++) d += qkv[t * 3 * C + hd * D + k] * qkv[u * 3 * C + C + hd * D + k];
                        sc[u] = d / sqrt((double)D);
                        if (sc[u] > mx) mx = sc[u];
                    }
                    for (int u = 0; u <= t; u++) sum += (sc[u] = exp(sc[u] - mx));
                    for (int k = 0; k < D; k++) {
                        double acc = 0;
                        for (int u = 0; u <= t; u++) acc += sc[u] / sum * qkv[u * 3 * C + 2 * C + hd * D + k];
                        y[t * C + hd * D + k] = acc;
                    }
                }
            for (int t = 0; t < T; t++) {
                lin_d(lw[l][4], lw[l][5], C, C, y + t * C, o);
                for (int c = 0; c < C; c++) x[t * C + c] += o[c];
                ln_d(x + t * C, lw[l][6], lw[l][7], C, a + t * C);
                lin_d(lw[l][8], lw[l][9], F, C, a + t * C, h);
                for (int f = 0; f < F; f++) h[f] = gelu_d(h[f]);
                lin_d(lw[l][10], lw[l][11], C, F, h, o);
                for (int c = 0; c < C; c++) x[t * C + c] += o[c];
            }
        }
        for (int t = 0; t < T; t++) {
            ln_d(x + t * C, lnf_w, lnf_b, C, a + t * C);
            lin_d(head, NULL, V, C, a + t * C, lg);
            if (logits_out)
                for (int v = 0; v < V; v++) logits_out[((size_t)b * T + t) * V + v] = lg[v];
            double mx = lg[0], sum = 0;
            for (int v = 1; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
            for (int v = 0; v < V; v++) sum += exp(lg[v] - mx);
            loss += mx + log(sum) - lg[tg[b * T + t]];
        }
    }
    free(x), free(a), free(qkv), free(y), free(h), free(o), free(sc), free(lg);
    return loss / (B * T);
}

/* ---- tests ---- */

static const gpt_shape tiny = {11, 8, 2, 2, 7, 32};
enum { TB = 2, TT = 5 };

static void test_gradients_vs_finite_differences(void) {
    gpt_shape s = tiny;
    param_layout lay;
    rwkv_error err;
    CHECK(gpt_layout_init(&s, &lay, &err) == RWKV_OK, "%s", err.message);
    CHECK(lay.total == gpt_param_count(&s), "layout total %zu vs count %zu", lay.total, gpt_param_count(&s));
    float *p = malloc(lay.total * sizeof(float)), *g = calloc(lay.total, sizeof(float));
    double *pd = malloc(lay.total * sizeof(double)), *gref = malloc(lay.total * sizeof(double));
    lcg_state = 7;
    random_params(&lay, p);
    for (size_t i = 0; i < lay.total; i++) pd[i] = p[i];
    int in[TB * TT], tg[TB * TT];
    for (int i = 0; i < TB * TT; i++) {
        in[i] = (int)(urand() * s.n_vocab);
        tg[i] = (int)(urand() * s.n_vocab);
    }
    gpt_train_ctx *ctx;
    CHECK(gpt_train_ctx_new(&s, TB, TT, 1, &ctx, &err) == RWKV_OK, "%s", err.message);
    float loss;
    rwkv_status st = gpt_forward_backward(ctx, p, in, tg, g, &loss, &err);
    gpt_train_ctx_free(ctx);
    CHECK(st == RWKV_OK, "%s", err.message);
    double l0 = ref_loss(&s, &lay, pd, in, tg, TB, TT, NULL);
    int loss_ok = fabs(loss - l0) < 1e-5 * (1 + fabs(l0));
    /* central differences in double */
    const double h = 1e-5;
    for (size_t i = 0; i < lay.total; i++) {
        double keep = pd[i];
        pd[i] = keep + h;
        double lp = ref_loss(&s, &lay, pd, in, tg, TB, TT, NULL);
        pd[i] = keep - h;
        double lm = ref_loss(&s, &lay, pd, in, tg, TB, TT, NULL);
        pd[i] = keep;
        gref[i] = (lp - lm) / (2 * h);
    }
    /* per tensor: |g - gref| <= 1e-6 + 1e-4 |gref|, and the tensor's gradient is not all zero */
    char bad[256] = "";
    double worst = 0;
    const char *worst_name = "";
    for (int k = 0; k < lay.count && !bad[0]; k++) {
        const param_info *pi = &lay.params[k];
        double mx = 0;
        for (size_t j = 0; j < pi->numel; j++) {
            size_t i = pi->offset + j;
            double r = fabs(g[i] - gref[i]) / (1e-6 + 1e-4 * fabs(gref[i]));
            if (!(r <= worst)) {
                worst = r;
                worst_name = pi->name;
            }
            if (!(r <= 1.0))
                snprintf(bad, sizeof bad, "%s[%zu]: got %.8g, finite differences %.8g", pi->name, j, g[i], gref[i]);
            if (fabs(gref[i]) > mx) mx = fabs(gref[i]);
        }
        if (!bad[0] && mx < 1e-6) snprintf(bad, sizeof bad, "%s: the gradient is all zero", pi->name);
    }
    printf("  gpt gradcheck: %d tensors, %zu parameters, loss %.9f (double %.9f), worst ratio %.3f (%s)\n", lay.count,
           lay.total, loss, l0, worst, worst_name);
    free(p), free(g), free(pd), free(gref), free(lay.params);
    CHECK(loss_ok, "float loss %.9g vs double %.9g", loss, l0);
    CHECK(!bad[0], "%s", bad);
}

static void test_forward_logits_vs_double(void) {
    gpt_shape s = tiny;
    param_layout lay;
    rwkv_error err;
    CHECK(gpt_layout_init(&s, &lay, &err) == RWKV_OK, "%s", err.message);
    float *p = malloc(lay.total * sizeof(float));
    double *pd = malloc(lay.total * sizeof(double));
    lcg_state = 99;
    random_params(&lay, p);
    for (size_t i = 0; i < lay.total; i++) pd[i] = p[i];
    int in[TB * TT], tg[TB * TT];
    for (int i = 0; i < TB * TT; i++) in[i] = tg[i] = (int)(urand() * s.n_vocab);
    float lf[TB * TT * 11];
    double ld[TB * TT * 11];
    float lossf;
    gpt_train_ctx *ctx;
    CHECK(gpt_train_ctx_new(&s, TB, TT, 2, &ctx, &err) == RWKV_OK, "%s", err.message);
    rwkv_status st = gpt_forward_loss(ctx, p, in, tg, lf, &lossf, &err);
    gpt_train_ctx_free(ctx);
    double lossd = ref_loss(&s, &lay, pd, in, tg, TB, TT, ld);
    double worst = 0;
    for (int i = 0; i < TB * TT * 11; i++) worst = fmax(worst, fabs(lf[i] - ld[i]) / (1e-5 + 1e-5 * fabs(ld[i])));
    free(p), free(pd), free(lay.params);
    CHECK(st == RWKV_OK, "%s", err.message);
    CHECK(worst <= 1.0, "logits differ from the double forward (ratio %.3g)", worst);
    CHECK(fabs(lossf - lossd) < 1e-5, "loss %.9g vs %.9g", lossf, lossd);
}

/* The decode path, one token at a time with the cache, gives the logits of
 * the full-sequence forward at every position; the cache grows past its
 * first capacity (16) up to n_ctx and refuses one more token. */
static void kv_case(gpt_shape s, int T, uint64_t seed, int random) {
    param_layout lay;
    rwkv_error err;
    CHECK(gpt_layout_init(&s, &lay, &err) == RWKV_OK, "%s", err.message);
    float *p = malloc(lay.total * sizeof(float));
    if (random) {
        lcg_state = seed;
        random_params(&lay, p);
    } else {
        gpt_init_params(&s, p, seed);
    }
    free(lay.params);
    const int V = s.n_vocab;
    int *in = malloc(sizeof(int) * (size_t)T);
    for (int t = 0; t < T; t++) in[t] = (int)(urand() * V);
    float *full = malloc(sizeof(float) * (size_t)T * V), *one = malloc(sizeof(float) * (size_t)V);
    gpt_train_ctx *ctx;
    CHECK(gpt_train_ctx_new(&s, 1, T, 2, &ctx, &err) == RWKV_OK, "%s", err.message);
    rwkv_status st = gpt_forward_loss(ctx, p, in, NULL, full, NULL, &err);
    gpt_train_ctx_free(ctx);
    CHECK(st == RWKV_OK, "%s", err.message);
    gpt_kv_cache *kv;
    CHECK(gpt_kv_cache_new(&s, &kv, &err) == RWKV_OK, "%s", err.message);
    double worst = 0;
    for (int t = 0; t < T && st == RWKV_OK; t++) {
        st = gpt_decode(kv, p, in[t], one, 1, &err);
        worst = fmax(worst, tol_ratio(one, full + (size_t)t * V, (size_t)V, 1e-5, 1e-4));
    }
    int pos = gpt_kv_cache_pos(kv);
    rwkv_status full_st = T == s.n_ctx ? gpt_decode(kv, p, 0, one, 1, NULL) : RWKV_ERR_ARG;
    gpt_kv_cache_reset(kv);
    rwkv_status again = gpt_decode(kv, p, in[0], one, 2, NULL);
    double first = tol_ratio(one, full, (size_t)V, 1e-5, 1e-4);
    gpt_kv_cache_free(kv);
    free(p), free(in), free(full), free(one);
    CHECK(st == RWKV_OK, "%s", err.message);
    CHECK(pos == T, "cache position %d after %d tokens", pos, T);
    CHECK(worst <= 1.0, "decode logits differ from the full forward (ratio %.3g)", worst);
    CHECK(full_st == RWKV_ERR_ARG, "a token past n_ctx was accepted");
    CHECK(again == RWKV_OK && first <= 1.0, "after reset the first logits differ (%.3g)", first);
}

static void test_kv_cache_decode_tiny(void) { kv_case(tiny, tiny.n_ctx, 5, 1); }
static void test_kv_cache_decode_grows(void) {
    gpt_shape s = {37, 64, 2, 4, 40, 0};
    kv_case(s, 40, 17, 0);
}

static void test_threads_deterministic(void) {
    gpt_shape s = {37, 64, 2, 4, 16, 0};
    param_layout lay;
    rwkv_error err;
    CHECK(gpt_layout_init(&s, &lay, &err) == RWKV_OK, "%s", err.message);
    const size_t n = lay.total;
    free(lay.params);
    float *p = malloc(n * sizeof(float)), *g1 = calloc(n, sizeof(float)), *g2 = calloc(n, sizeof(float));
    gpt_init_params(&s, p, 3);
    const int B = 2, T = 16;
    int in[2 * 16], tg[2 * 16];
    for (int i = 0; i < B * T; i++) in[i] = tg[(i + 1) % (B * T)] = (int)(urand() * 37);
    float l1 = 0, l2 = 0;
    gpt_train_ctx *c1, *c2;
    CHECK(gpt_train_ctx_new(&s, B, T, 1, &c1, &err) == RWKV_OK, "%s", err.message);
    CHECK(gpt_train_ctx_new(&s, B, T, 2, &c2, &err) == RWKV_OK, "%s", err.message);
    rwkv_status a = gpt_forward_backward(c1, p, in, tg, g1, &l1, &err);
    rwkv_status b = gpt_forward_backward(c2, p, in, tg, g2, &l2, &err);
    gpt_train_ctx_free(c1);
    gpt_train_ctx_free(c2);
    int same = memcmp(g1, g2, n * sizeof(float)) == 0 && l1 == l2;
    /* a second call ADDS: the gradient doubles (up to rounding) */
    int adds = 1;
    if (a == RWKV_OK && gpt_train_ctx_new(&s, B, T, 2, &c2, &err) == RWKV_OK) {
        gpt_forward_backward(c2, p, in, tg, g2, &l2, &err);
        gpt_train_ctx_free(c2);
        for (size_t i = 0; i < n && adds; i++) adds = fabsf(g2[i] - 2.0f * g1[i]) <= 1e-6f * fabsf(g1[i]) + 1e-9f;
    }
    free(p), free(g1), free(g2);
    CHECK(a == RWKV_OK && b == RWKV_OK, "%s", err.message);
    CHECK(fabsf(l1 - logf(37.0f)) < 0.15f, "initial loss %.4f is not near ln(V) = %.4f", l1, log(37.0));
    CHECK(same, "gradients differ between 1 and 2 threads");
    CHECK(adds, "a second forward_backward did not add the same gradient");
}

static void test_save_load_roundtrip(void) {
    gpt_shape s = {37, 16, 3, 4, 12, 0};
    rwkv_error err;
    CHECK(gpt_shape_check(&s, &err) == RWKV_OK, "%s", err.message);
    size_t n = gpt_param_count(&s);
    float *p = malloc(n * sizeof(float));
    gpt_init_params(&s, p, 11);
    char path[] = "/tmp/rwkv-gpt-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp failed");
    close(fd);
    rwkv_status st = gpt_save_model(path, &s, p, &err);
    gpt_shape s2;
    param_layout lay;
    float *q = NULL;
    if (st == RWKV_OK) st = gpt_load_model(path, 0, &s2, &lay, &q, &err);
    unlink(path);
    int same = st == RWKV_OK && memcmp(&s, &s2, sizeof s) == 0 && lay.total == n && memcmp(p, q, n * 4) == 0;
    int named = st == RWKV_OK && strcmp(lay.params[2].name, "transformer.h.0.ln_1.weight") == 0 &&
                strcmp(lay.params[lay.count - 1].name, "lm_head.weight") == 0;
    if (st == RWKV_OK) free(lay.params);
    free(p);
    free(q);
    CHECK(st == RWKV_OK, "%s", err.message);
    CHECK(same, "the loaded model differs (n_head %d, F %d)", s2.n_head, s2.n_ffn);
    CHECK(named, "unexpected parameter names");
    CHECK(gpt_load_model("/nonexistent/gpt.safetensors", 0, &s2, NULL, &q, &err) != RWKV_OK, "missing file loaded");
}

static void test_init_gpt2(void) {
    gpt_shape s = {50, 64, 4, 4, 32, 0};
    param_layout lay;
    rwkv_error err;
    CHECK(gpt_layout_init(&s, &lay, &err) == RWKV_OK, "%s", err.message);
    float *p = malloc(lay.total * sizeof(float)), *p2 = malloc(lay.total * sizeof(float));
    gpt_init_params(&s, p, 1);
    gpt_init_params(&s, p2, 1);
    int repeat = memcmp(p, p2, lay.total * 4) == 0;
    char bad[200] = "";
    for (int i = 0; i < lay.count && !bad[0]; i++) {
        const param_info *pi = &lay.params[i];
        double m = 0, v = 0;
        for (size_t j = 0; j < pi->numel; j++) m += p[pi->offset + j];
        m /= (double)pi->numel;
        for (size_t j = 0; j < pi->numel; j++) v += (p[pi->offset + j] - m) * (p[pi->offset + j] - m);
        double sd = sqrt(v / (double)pi->numel);
        if (pi->ndim == 2) {
            double want = strstr(pi->name, "c_proj.weight") ? 0.02 / sqrt(8.0) : 0.02;
            if (fabs(sd - want) > 0.1 * want || fabs(m) > 0.2 * want)
                snprintf(bad, sizeof bad, "%s: mean %.4g std %.4g, want std %.4g", pi->name, m, sd, want);
        } else {
            double want = strstr(pi->name, "weight") ? 1.0 : 0.0;
            if (m != want || sd != 0) snprintf(bad, sizeof bad, "%s: not all %g", pi->name, want);
        }
    }
    free(p), free(p2), free(lay.params);
    CHECK(repeat, "init is not deterministic for a seed");
    CHECK(!bad[0], "%s", bad);
}

/* A few plain gradient steps on one batch lower its loss (the gradient
 * points downhill in practice, not only in the limit). */
static void test_sgd_lowers_loss(void) {
    gpt_shape s = {23, 32, 2, 4, 16, 0};
    rwkv_error err;
    CHECK(gpt_shape_check(&s, &err) == RWKV_OK, "%s", err.message);
    size_t n = gpt_param_count(&s);
    float *p = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    gpt_init_params(&s, p, 2);
    int in[2 * 16], tg[2 * 16];
    for (int i = 0; i < 32; i++) {
        in[i] = (i * 7) % 23;
        tg[i] = (i * 7 + 7) % 23;
    }
    gpt_train_ctx *ctx;
    CHECK(gpt_train_ctx_new(&s, 2, 16, 1, &ctx, &err) == RWKV_OK, "%s", err.message);
    float first = 0, loss = 0;
    for (int step = 0; step < 25; step++) {
        memset(g, 0, n * sizeof(float));
        if (gpt_forward_backward(ctx, p, in, tg, g, &loss, &err) != RWKV_OK) break;
        if (step == 0) first = loss;
        for (size_t i = 0; i < n; i++) p[i] -= 0.5f * g[i];
    }
    gpt_train_ctx_free(ctx);
    free(p), free(g);
    printf("  SGD on one batch: loss %.4f -> %.4f in 25 steps\n", first, loss);
    CHECK(loss < 0.5f * first, "loss %.4f -> %.4f after 25 steps", first, loss);
}

static void test_bad_arguments(void) {
    gpt_shape s = {11, 9, 1, 2, 8, 0};
    rwkv_error err;
    gpt_train_ctx *ctx;
    CHECK(gpt_shape_check(&s, &err) == RWKV_ERR_ARG, "n_embd 9 with 2 heads accepted");
    s.n_embd = 8;
    CHECK(gpt_train_ctx_new(&s, 1, 9, 1, &ctx, &err) == RWKV_ERR_ARG, "T > n_ctx accepted");
    CHECK(gpt_train_ctx_new(&s, 1, 4, 1, &ctx, &err) == RWKV_OK, "%s", err.message);
    size_t n = gpt_param_count(&s);
    float *p = calloc(n, sizeof(float)), *g = calloc(n, sizeof(float)), loss;
    int in[4] = {1, 2, 11, 3}, tg[4] = {0, 0, 0, 0};
    rwkv_status st = gpt_forward_backward(ctx, p, in, tg, g, &loss, &err);
    gpt_train_ctx_free(ctx);
    free(p), free(g);
    CHECK(st == RWKV_ERR_ARG && strstr(err.message, "11"), "out-of-vocabulary token: %s", err.message);
}

int main(void) {
    RUN(test_gradients_vs_finite_differences);
    RUN(test_forward_logits_vs_double);
    RUN(test_kv_cache_decode_tiny);
    RUN(test_kv_cache_decode_grows);
    RUN(test_threads_deterministic);
    RUN(test_save_load_roundtrip);
    RUN(test_init_gpt2);
    RUN(test_sgd_lowers_loss);
    RUN(test_bad_arguments);
    return test_summary();
}
