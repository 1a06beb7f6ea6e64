/* RWKV-4 training math: the backward matmul kernels, every gradient of the
 * shared test vectors, and the initialisation of §3.1-§3.2 (the WKV
 * backward is tested with the other WKV operators, tests/test_wkv.c). */
#include <dirent.h>
#include <stdint.h>

#include "formats/formats.h"
#include "kernels/kernels.h"
#include "kernels/kernels_train.h"
#include "test.h"
#include "train/rwkv4_grad.h"

static uint64_t rng_state = 0x1234567ull;
static double urand(void) { /* [0, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}
static double nrand(void) {
    return sqrt(-2.0 * log(1.0 - urand())) * cos(6.283185307179586 * urand());
}

/* ---- (a) training matmul kernels vs the scalar references ---------------- */

static void test_matmul_backward_kernels(void) {
    const int sizes[][3] = {{1, 1, 1}, {7, 13, 5}, {97, 33, 65}, {130, 257, 99},
                            {300, 17, 301}, {5, 400, 3}, {600, 96, 128}, {70, 1100, 37}};
    rng_state = 5;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int N = sizes[s][0], R = sizes[s][1], Cc = sizes[s][2];
        float *W = malloc(sizeof(float) * R * Cc), *dY = malloc(sizeof(float) * N * R);
        float *X = malloc(sizeof(float) * N * Cc), *dX_ref = malloc(sizeof(float) * N * Cc);
        float *dX = malloc(sizeof(float) * N * Cc), *dX1 = malloc(sizeof(float) * N * Cc);
        float *dW0 = malloc(sizeof(float) * R * Cc), *dW_ref = malloc(sizeof(float) * R * Cc);
        float *dW = malloc(sizeof(float) * R * Cc), *dW1 = malloc(sizeof(float) * R * Cc);
        for (int i = 0; i < R * Cc; i++) W[i] = (float)(2 * urand() - 1), dW0[i] = (float)(2 * urand() - 1);
        for (int i = 0; i < N * R; i++) dY[i] = (float)(2 * urand() - 1);
        for (int i = 0; i < N * Cc; i++) X[i] = (float)(2 * urand() - 1);
        matmul_backward_input_ref(W, R, Cc, dY, N, dX_ref);
        float *Y_ref = malloc(sizeof(float) * N * R), *Y = malloc(sizeof(float) * N * R);
        float *Y1 = malloc(sizeof(float) * N * R);
        const matrix Wm = {.type = DT_F32, .rows = R, .cols = Cc, .data = W};
        matmul_scalar(&Wm, X, N, Y_ref);
        memcpy(dW_ref, dW0, sizeof(float) * R * Cc);
        matmul_backward_weight_ref(dY, X, N, R, Cc, dW_ref);
        for (const kernel_ops *const *kv = kernels_all(); *kv; kv++) {
            if (!kernels_cpu_supports((*kv)->name)) continue;
            const kernel_ops *k = *kv;
            for (int nt = 1; nt <= 3; nt++) {
                memcpy(dW, dW0, sizeof(float) * R * Cc);
                matmul_forward_tiled_with(k, W, R, Cc, X, N, Y, nt);
                const double tf = tol_ratio(Y, Y_ref, (size_t)N * R, 2e-6 * Cc, 0);
                CHECK(tf <= 1, "%s forward N %d rows %d cols %d threads %d: ratio %g", k->name, N, R, Cc, nt, tf);
                if (nt == 1) memcpy(Y1, Y, sizeof(float) * N * R);
                else CHECK(memcmp(Y, Y1, sizeof(float) * N * R) == 0, "%s forward differs with %d threads", k->name, nt);
                matmul_backward_input_with(k, W, R, Cc, dY, N, dX, nt);
                matmul_backward_weight_with(k, dY, X, N, R, Cc, dW, nt);
                const double ti = tol_ratio(dX, dX_ref, (size_t)N * Cc, 2e-6 * R, 0);
                const double tw = tol_ratio(dW, dW_ref, (size_t)R * Cc, 2e-6 * N, 0);
                CHECK(ti <= 1, "%s input N %d rows %d cols %d threads %d: ratio %g", k->name, N,
                      R, Cc, nt, ti);
                CHECK(tw <= 1, "%s weight N %d rows %d cols %d threads %d: ratio %g", k->name,
                      N, R, Cc, nt, tw);
                if (nt == 1) {
                    memcpy(dX1, dX, sizeof(float) * N * Cc);
                    memcpy(dW1, dW, sizeof(float) * R * Cc);
                } else { /* bitwise the same whatever the thread count */
                    CHECK(memcmp(dX, dX1, sizeof(float) * N * Cc) == 0, "%s input differs with %d threads",
                          k->name, nt);
                    CHECK(memcmp(dW, dW1, sizeof(float) * R * Cc) == 0, "%s weight differs with %d threads",
                          k->name, nt);
                }
            }
        }
        free(W), free(dY), free(X), free(dX_ref), free(dX), free(dX1), free(Y_ref), free(Y), free(Y1);
        free(dW0), free(dW_ref), free(dW), free(dW1);
    }
}

/* ---- (b) the shared RWKV-4 test vectors ----------------------------------- */

typedef struct vcase {
    int V, C, L, F, B, T;
    int *inputs, *targets;
    double loss;
    char ckpt[256];
    double loss_atol, loss_rtol, grad_atol, grad_rtol;
    int n_grads;
    char (*grad_name)[64];
    char (*grad_file)[128];
    int64_t *grad_numel;
} vcase;

static void vcase_free(vcase *c) {
    free(c->inputs), free(c->targets), free(c->grad_name), free(c->grad_file), free(c->grad_numel);
    memset(c, 0, sizeof *c);
}

static int read_ints(FILE *f, int *out, int n) {
    for (int i = 0; i < n; i++)
        if (fscanf(f, "%d", &out[i]) != 1) return 0;
    return 1;
}

/* Reads case.txt (format in the vectors' README); 0 on a malformed file. */
static int vcase_read(const char *path, vcase *c) {
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char key[64];
    int ok = 1;
    while (ok && fscanf(f, "%63s", key) == 1) {
        if (!strcmp(key, "config")) {
            char k2[32];
            double val;
            for (int i = 0; i < 7 && ok; i++) {
                ok = fscanf(f, "%31s %lf", k2, &val) == 2;
                if (!strcmp(k2, "n_vocab")) c->V = (int)val;
                else if (!strcmp(k2, "n_embd")) c->C = (int)val;
                else if (!strcmp(k2, "n_layer")) c->L = (int)val;
                else if (!strcmp(k2, "n_ffn")) c->F = (int)val;
                else if (!strcmp(k2, "batch")) c->B = (int)val;
                else if (!strcmp(k2, "seq_len")) c->T = (int)val;
            }
        } else if (!strcmp(key, "inputs") || !strcmp(key, "targets")) {
            int b, t;
            ok = fscanf(f, "%d %d", &b, &t) == 2 && b > 0 && t > 0;
            int *buf = ok ? malloc(sizeof(int) * b * t) : NULL;
            ok = ok && buf && read_ints(f, buf, b * t);
            if (!strcmp(key, "inputs")) c->inputs = buf;
            else c->targets = buf;
        } else if (!strcmp(key, "loss")) {
            ok = fscanf(f, "%lf", &c->loss) == 1;
        } else if (!strcmp(key, "checkpoint")) {
            char file[200], fmt[32], dt[16];
            ok = fscanf(f, "%199s %31s %15s", file, fmt, dt) == 3;
            if (ok && !c->ckpt[0] && !strcmp(fmt, "safetensors"))
                snprintf(c->ckpt, sizeof c->ckpt, "%s", file);
        } else if (!strcmp(key, "grad")) {
            c->grad_name = realloc(c->grad_name, sizeof *c->grad_name * (c->n_grads + 1));
            c->grad_file = realloc(c->grad_file, sizeof *c->grad_file * (c->n_grads + 1));
            c->grad_numel = realloc(c->grad_numel, sizeof *c->grad_numel * (c->n_grads + 1));
            int nd;
            ok = c->grad_name && c->grad_file && c->grad_numel &&
                 fscanf(f, "%63s %127s %d", c->grad_name[c->n_grads], c->grad_file[c->n_grads], &nd) == 3;
            int64_t numel = 1;
            for (int i = 0; ok && i < nd; i++) {
                long long dim;
                ok = fscanf(f, "%lld", &dim) == 1;
                numel *= dim;
            }
            if (ok) c->grad_numel[c->n_grads++] = numel;
        } else if (!strcmp(key, "tolerance")) {
            char kind[32];
            double atol, rtol;
            ok = fscanf(f, "%31s %lf %lf", kind, &atol, &rtol) == 3;
            if (!strcmp(kind, "loss")) c->loss_atol = atol, c->loss_rtol = rtol;
            if (!strcmp(kind, "grads")) c->grad_atol = atol, c->grad_rtol = rtol;
        }
        int ch; /* skip the rest of the line */
        while (ok && (ch = fgetc(f)) != '\n' && ch != EOF) {}
    }
    fclose(f);
    return ok && c->V && c->C && c->L && c->B && c->T && c->inputs && c->targets && c->ckpt[0] &&
           c->n_grads && c->grad_rtol > 0;
}

static float *read_f32(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *buf = malloc(sizeof(float) * n);
    int ok = buf && fread(buf, sizeof(float), n, f) == n && fgetc(f) == EOF;
    fclose(f);
    if (!ok) free(buf);
    return ok ? buf : NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Runs one case folder, recording the first failure. */
static void run_vector_case(const char *dir, const char *name) {
    char path[2048];
    vcase c;
    snprintf(path, sizeof path, "%s/%s/case.txt", dir, name);
    if (!vcase_read(path, &c)) {
        vcase_free(&c);
        test_fail_at(__FILE__, __LINE__, "%s: unreadable case.txt", name);
        return;
    }
    tensor_set set;
    param_layout lay = {0};
    float *params = NULL, *grads = NULL, *grads1 = NULL, *want = NULL;
    rwkv4_train_ctx *ctx = NULL, *ctx1 = NULL;
    rwkv_error err;
    snprintf(path, sizeof path, "%s/%s/%s", dir, name, c.ckpt);
    if (checkpoint_read(path, &set, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", name, err.message);
        vcase_free(&c);
        return;
    }
    do {
        if (params_from_tensors(&set, &lay, &params, &err)) {
            test_fail_at(__FILE__, __LINE__, "%s: %s", name, err.message);
            break;
        }
        const rwkv4_shape *s = &lay.shape;
        if (s->n_vocab != c.V || s->n_embd != c.C || s->n_layer != c.L || s->n_ffn != c.F) {
            test_fail_at(__FILE__, __LINE__, "%s: checkpoint shape differs from case.txt", name);
            break;
        }
        if (c.n_grads != lay.count) {
            test_fail_at(__FILE__, __LINE__, "%s: %d gradients listed, layout has %d parameters", name,
                         c.n_grads, lay.count);
            break;
        }
        grads = calloc(lay.total, sizeof(float));
        grads1 = calloc(lay.total, sizeof(float));
        if (!grads || !grads1 || rwkv4_train_ctx_new(&lay, c.B, c.T, 2, &ctx, &err) ||
            rwkv4_train_ctx_new(&lay, c.B, c.T, 1, &ctx1, &err)) {
            test_fail_at(__FILE__, __LINE__, "%s: context: %s", name, err.message);
            break;
        }
        const rwkv4_fb_options opt = {0.0f}; /* the vectors' grads exclude L2Wrap */
        float loss, loss1, loss_fwd;
        if (rwkv4_forward_backward(ctx, params, c.inputs, c.targets, &opt, grads, &loss, &err) ||
            rwkv4_forward_backward(ctx1, params, c.inputs, c.targets, &opt, grads1, &loss1, &err) ||
            rwkv4_forward_loss(ctx, params, c.inputs, c.targets, NULL, &loss_fwd, &err)) {
            test_fail_at(__FILE__, __LINE__, "%s: %s", name, err.message);
            break;
        }
        const float want_loss = (float)c.loss;
        const double loss_ratio = tol_ratio(&loss, &want_loss, 1, c.loss_atol, c.loss_rtol);
        double worst = 0;
        const char *worst_name = "";
        char bad[600] = "";
        size_t used = 0;
        int ok = 1;
        for (int i = 0; i < c.n_grads; i++) {
            const param_info *p = param_layout_find(&lay, c.grad_name[i]);
            if (!p || p != &lay.params[i] || (int64_t)p->numel != c.grad_numel[i]) {
                test_fail_at(__FILE__, __LINE__,
                             "%s: gradient %s: not at position %d of the layout, or another size",
                             name, c.grad_name[i], i);
                ok = 0;
                break;
            }
            snprintf(path, sizeof path, "%s/%s/%s", dir, name, c.grad_file[i]);
            want = read_f32(path, p->numel);
            if (!want) {
                test_fail_at(__FILE__, __LINE__, "%s: cannot read %s", name, path);
                ok = 0;
                break;
            }
            const double r = tol_ratio(grads + p->offset, want, p->numel, c.grad_atol, c.grad_rtol);
            free(want);
            want = NULL;
            if (!(r <= worst)) worst = r, worst_name = p->name;
            if (!(r <= 1)) {
                ok = 0;
                if (used < sizeof bad - 80)
                    used += (size_t)snprintf(bad + used, sizeof bad - used, " %s %.3g", p->name, r);
            }
        }
        if (!ok && !bad[0]) break;
        printf("# %s: loss %.7f (want %.7f, ratio %.3g), worst grad ratio %.3g (%s)\n", name, loss,
               c.loss, loss_ratio, worst, worst_name);
        if (!ok) {
            test_fail_at(__FILE__, __LINE__, "%s: gradients beyond tolerance (ratio per parameter):%s",
                         name, bad);
            break;
        }
        if (!(loss_ratio <= 1)) {
            test_fail_at(__FILE__, __LINE__, "%s: loss %.8f, want %.8f", name, loss, c.loss);
            break;
        }
        if (loss_fwd != loss || loss1 != loss || memcmp(grads, grads1, lay.total * sizeof(float))) {
            test_fail_at(__FILE__, __LINE__, "%s: results differ between 1 and 2 threads or forward-only",
                         name);
            break;
        }
    } while (0);
    rwkv4_train_ctx_free(ctx), rwkv4_train_ctx_free(ctx1);
    free(params), free(grads), free(grads1);
    param_layout_free(&lay);
    tensor_set_free(&set);
    vcase_free(&c);
}

static void test_rwkv4_vectors(void) {
    char dir[512];
    if (!shared_path(dir, sizeof dir, "testvectors/rwkv4")) SKIP("%s not found", dir);
    DIR *d = opendir(dir);
    CHECK(d, "cannot open %s", dir);
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        char p[1024];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s/case.txt", dir, e->d_name);
        if (e->d_name[0] != '.' && stat(p, &st) == 0) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) { /* every case runs; the first failure is reported */
        run_vector_case(dir, names[i]);
        free(names[i]);
    }
    CHECK(n > 0, "no case folders in %s", dir);
}

/* ---- L2Wrap: its extra gradient is that of (l2wrap/2N) Σ_n max_j logit² ---- */

static double l2wrap_penalty(rwkv4_train_ctx *ctx, const float *params, const int *in,
                             const int *tg, float *logits, int N, int V) {
    float loss;
    rwkv4_forward_loss(ctx, params, in, tg, logits, &loss, NULL);
    double s = 0;
    for (int n = 0; n < N; n++) {
        float mx = logits[(size_t)n * V];
        for (int j = 1; j < V; j++) mx = fmaxf(mx, logits[(size_t)n * V + j]);
        s += (double)mx * mx;
    }
    return s / (2.0 * N);
}

static void test_l2wrap(void) {
    const rwkv4_shape shape = {13, 16, 2, 32, 16};
    enum { B = 2, T = 5, N = B * T };
    param_layout lay;
    rwkv_error err;
    CHECK(rwkv4_layout_init(&shape, &lay, &err) == RWKV_OK, "%s", err.message);
    float *p = malloc(sizeof(float) * lay.total), *g0 = calloc(lay.total, sizeof(float));
    float *g1 = calloc(lay.total, sizeof(float)), *logits = malloc(sizeof(float) * N * 13);
    rng_state = 99;
    for (size_t i = 0; i < lay.total; i++) p[i] = (float)(0.5 * nrand());
    int in[N], tg[N];
    for (int i = 0; i < N; i++) in[i] = (int)(urand() * 13), tg[i] = (int)(urand() * 13);
    rwkv4_train_ctx *ctx;
    CHECK(rwkv4_train_ctx_new(&lay, B, T, 2, &ctx, &err) == RWKV_OK, "%s", err.message);
    float loss0, loss1;
    const rwkv4_fb_options off = {0.0f}, on = {1.0f};
    rwkv4_forward_backward(ctx, p, in, tg, &off, g0, &loss0, NULL);
    rwkv4_forward_backward(ctx, p, in, tg, &on, g1, &loss1, NULL);
    int failed = loss0 != loss1; /* the reported loss excludes the penalty */
    /* probe a few parameters along the path head <- ln_out <- blocks */
    const char *names[] = {"head.weight", "ln_out.bias", "blocks.1.ffn.value.weight", "emb.weight"};
    double worst = 0;
    for (int i = 0; i < 4 && !failed; i++) {
        const param_info *pi = param_layout_find(&lay, names[i]);
        for (int probe = 0; probe < 3; probe++) {
            const size_t at = pi->offset + (size_t)(urand() * pi->numel);
            const float save = p[at], h = 1e-2f;
            p[at] = save + h;
            const double rp = l2wrap_penalty(ctx, p, in, tg, logits, N, 13);
            p[at] = save - h;
            const double rm = l2wrap_penalty(ctx, p, in, tg, logits, N, 13);
            p[at] = save;
            const double fd = (rp - rm) / (2.0 * h), got = (double)g1[at] - g0[at];
            const double r = fabs(got - fd) / (1e-4 + 2e-2 * fabs(fd));
            if (r > worst) worst = r;
        }
    }
    rwkv4_train_ctx_free(ctx);
    free(p), free(g0), free(g1), free(logits);
    param_layout_free(&lay);
    CHECK(!failed, "loss changed with L2Wrap on: %.8f vs %.8f", loss0, loss1);
    CHECK(worst <= 1, "L2Wrap gradient vs finite differences: ratio %.3f", worst);
}

/* ---- (c) initialisation statistics (§3.1-§3.2) ------------------------------- */

static double max_gram_error(const float *W, int rows, int cols, double gain) {
    /* WᵀW for a tall matrix, WWᵀ for a wide one, against gain²·I */
    const int tall = rows >= cols, n = tall ? cols : rows, m = tall ? rows : cols;
    double worst = 0;
    for (int a = 0; a < n; a++)
        for (int b = 0; b <= a; b++) {
            double s = 0;
            for (int i = 0; i < m; i++) {
                const double x = tall ? W[(size_t)i * cols + a] : W[(size_t)a * cols + i];
                const double y = tall ? W[(size_t)i * cols + b] : W[(size_t)b * cols + i];
                s += x * y;
            }
            worst = fmax(worst, fabs(s - (a == b ? gain * gain : 0.0)));
        }
    return worst;
}

static void test_init(void) {
    const rwkv4_shape shapes[2] = {{97, 64, 4, 256, 64}, {40, 64, 3, 128, 48}};
    for (int si = 0; si < 2; si++) {
        const rwkv4_shape s = shapes[si];
        const int C = s.n_embd, A = s.dim_att, L = s.n_layer;
        param_layout lay;
        rwkv_error err;
        CHECK(rwkv4_layout_init(&s, &lay, &err) == RWKV_OK, "%s", err.message);
        const size_t matrices = (size_t)L * (3 * A * C + C * A + 2 * s.n_ffn * C + C * C);
        const size_t vectors = (size_t)L * (9 * C + 2 * A) + 4 * (size_t)C;
        CHECK(lay.total == (size_t)2 * s.n_vocab * C + matrices + vectors, "total %zu", lay.total);
        float *p = malloc(sizeof(float) * lay.total), *q = malloc(sizeof(float) * lay.total);
        const float emb_scale = 1e-3f;
        CHECK(rwkv4_init_params(&lay, p, 42, emb_scale) == RWKV_OK, "init failed");
        CHECK(rwkv4_init_params(&lay, q, 42, emb_scale) == RWKV_OK, "init failed");
        CHECK(memcmp(p, q, sizeof(float) * lay.total) == 0, "same seed, different parameters");
        CHECK(rwkv4_init_params(&lay, q, 43, emb_scale) == RWKV_OK, "init failed");
        const param_info *emb = param_layout_find(&lay, "emb.weight");
        const param_info *head = param_layout_find(&lay, "head.weight");
        CHECK(memcmp(p + emb->offset, q + emb->offset, emb->numel * sizeof(float)) != 0 &&
                  memcmp(p + head->offset, q + head->offset, head->numel * sizeof(float)) != 0,
              "another seed gives the same emb/head");
        double emb_sq = 0;
        for (size_t i = 0; i < emb->numel; i++) {
            const float x = p[emb->offset + i];
            CHECK(fabsf(x) <= emb_scale, "emb %g outside ±%g", x, emb_scale);
            emb_sq += (double)x * x;
        }
        const double emb_rms = sqrt(emb_sq / emb->numel); /* uniform: half-width / sqrt(3) */
        CHECK(fabs(emb_rms - emb_scale / sqrt(3.0)) < 0.05 * emb_scale, "emb rms %g", emb_rms);
        for (int i = 0; i < lay.count; i++) {
            const param_info *pi = &lay.params[i];
            const float *w = p + pi->offset;
            const char *nm = pi->name;
            int l = 0;
            sscanf(nm, "blocks.%d.", &l);
            const double r01 = L > 1 ? (double)l / (L - 1) : 0, r10 = 1.0 - (double)l / L;
            const size_t nl = strlen(nm);
#define ENDS(sfx) (nl >= strlen(sfx) && !strcmp(nm + nl - strlen(sfx), sfx))
            for (size_t j = 0; j < pi->numel; j++) {
                double want = NAN, tol = 1e-6;
                const double x = (double)j / C;
                if (ENDS(".weight") && (ENDS("ln0.weight") || ENDS("ln1.weight") || ENDS("ln2.weight") ||
                                        ENDS("ln_out.weight")))
                    want = 1;
                else if (ENDS(".bias")) want = 0;
                else if (ENDS("time_mix_k") || ENDS("ffn.time_mix_r")) want = pow(x, r10);
                else if (ENDS("att.time_mix_v")) want = pow(x, r10) + 0.3 * r01;
                else if (ENDS("att.time_mix_r")) want = pow(x, 0.5 * r10);
                else if (ENDS("time_decay")) want = -5 + 8 * pow((double)j / (A - 1), 0.7 + 1.3 * r01);
                else if (ENDS("time_first")) want = log(0.3) + 0.5 * ((double)((j + 1) % 3) - 1);
                else if (ENDS("att.key.weight") || ENDS("att.receptance.weight") ||
                         ENDS("att.output.weight") || ENDS("ffn.value.weight") ||
                         ENDS("ffn.receptance.weight"))
                    want = 0, tol = 0;
                if (isnan(want)) break; /* emb and orthogonal matrices: checked below */
                CHECK(fabs(w[j] - want) <= tol * (1 + fabs(want)), "%s[%zu] = %.8g, want %.8g", nm, j,
                      w[j], want);
            }
            if (ENDS("att.value.weight") || ENDS("ffn.key.weight") || !strcmp(nm, "head.weight")) {
                const int rows = (int)pi->shape[0], cols = (int)pi->shape[1];
                double gain = rows > cols ? sqrt((double)rows / cols) : 1.0;
                if (!strcmp(nm, "head.weight")) gain *= 0.5;
                const double e = max_gram_error(w, rows, cols, gain);
                CHECK(e <= 1e-4 * gain * gain, "%s [%d, %d]: max |WᵀW - gain²I| = %g", nm, rows, cols, e);
            }
#undef ENDS
        }
        /* the §3.1 values named in the spec */
        const param_info *tf = param_layout_find(&lay, "blocks.0.att.time_first");
        CHECK(fabsf(p[tf->offset] - -1.2039728f) < 1e-6f && fabsf(p[tf->offset + 1] - -0.7039728f) < 1e-6f &&
                  fabsf(p[tf->offset + 2] - -1.7039728f) < 1e-6f,
              "time_first starts %g %g %g", p[tf->offset], p[tf->offset + 1], p[tf->offset + 2]);
        free(p), free(q);
        param_layout_free(&lay);
    }
}

/* ---- layout and checkpoint loading --------------------------------------- */

static void test_layout_and_loading(void) {
    const rwkv4_shape s = {11, 8, 2, 24, 8};
    param_layout lay;
    rwkv_error err;
    CHECK(rwkv4_layout_init(&s, &lay, &err) == RWKV_OK, "%s", err.message);
    CHECK(lay.count == 4 + 18 * 2 + 2, "count %d", lay.count);
    CHECK(!strcmp(lay.params[0].name, "emb.weight") && !strcmp(lay.params[5].name, "blocks.0.ln0.weight") &&
              !strcmp(lay.params[lay.count - 1].name, "head.weight"),
          "order");
    const param_info *td = param_layout_find(&lay, "blocks.1.att.time_decay");
    const param_info *tf = param_layout_find(&lay, "blocks.1.att.time_first");
    const param_info *mk = param_layout_find(&lay, "blocks.1.att.time_mix_k");
    CHECK(td && tf && mk && td->lr_scale == 2.0f && tf->lr_scale == 3.0f && mk->lr_scale == 1.0f,
          "lr scales");
    CHECK(mk->ndim == 3 && mk->shape[2] == 8, "time_mix shape");
    /* a checkpoint built from the layout loads back; one missing tensor fails */
    float *p = malloc(sizeof(float) * lay.total), *back = NULL;
    for (size_t i = 0; i < lay.total; i++) p[i] = (float)i;
    tensor_set set;
    tensor_set_init(&set);
    for (int i = 0; i < lay.count; i++) {
        const param_info *pi = &lay.params[i];
        if (!strcmp(pi->name, "blocks.1.ffn.key.weight")) continue;
        CHECK(tensor_set_add(&set, pi->name, DT_F32, pi->ndim, pi->shape, p + pi->offset,
                             pi->numel * sizeof(float), &err) == RWKV_OK,
              "%s", err.message);
    }
    param_layout lay2;
    CHECK(params_from_tensors(&set, &lay2, &back, &err) == RWKV_ERR_SHAPE && !back &&
              strstr(err.message, "blocks.1.ffn.key.weight"),
          "missing tensor accepted: %s", err.message);
    const param_info *fk = param_layout_find(&lay, "blocks.1.ffn.key.weight");
    CHECK(tensor_set_add(&set, fk->name, DT_F32, 2, fk->shape, p + fk->offset, fk->numel * sizeof(float),
                         &err) == RWKV_OK,
          "%s", err.message);
    CHECK(params_from_tensors(&set, &lay2, &back, &err) == RWKV_OK, "%s", err.message);
    CHECK(lay2.total == lay.total && lay2.shape.n_ffn == 24 && !memcmp(back, p, lay.total * sizeof(float)),
          "reloaded parameters differ");
    free(back), free(p);
    param_layout_free(&lay2);
    tensor_set_free(&set);
    param_layout_free(&lay);
}

int main(void) {
    RUN(test_matmul_backward_kernels);
    RUN(test_layout_and_loading);
    RUN(test_rwkv4_vectors);
    RUN(test_l2wrap);
    RUN(test_init);
    return test_summary();
}
