/* Every CUDA kernel of src/cuda/ against the CPU reference of the same
 * operation (kernels/train_ops.h, kernels/wkv.h, train/adam.h) on fresh random
 * inputs, in float32 and in bfloat16 storage. Device outputs start as NaN.
 * In bf16 the inputs are rounded to bf16 on the host first, so the CPU sees
 * exactly what the device sees and the budget covers only the rounding of
 * the outputs (bf16 keeps 8 significant bits: half an ulp is 2^-9 ≈ 0.2%)
 * and the order of float32 sums. Budgets, as |got - want| <= atol + rtol·|want|
 * (atol scaled by the largest |want| where the outputs are sums):
 *   element-wise, embedding          fp32 exact to 1e-6      bf16 rtol 4e-3
 *   layer norm, token shift          fp32 1e-5               bf16 1e-2
 *   WKV forward/backward             fp32 2e-4 of the scale  bf16 2e-2
 *   cross-entropy + L2Wrap           fp32 1e-5               bf16 1e-2
 *   Adam, global norm                fp32 1e-6
 *   GEMM (cuBLASLt)                  fp32 1e-5 of the scale  bf16 1e-2 of the scale */
#include <math.h>

#include "cuda_test.h"
#include "kernels/train_ops.h"
#include "kernels/wkv.h"
#include "train/adam.h"

static const cuda_dtype DTYPES[2] = {CUDA_F32, CUDA_BF16};

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* tol_ratio with atol = a·max|want| (for outputs that are sums). */
static double scaled_ratio(const float *got, const float *want, size_t n, double a, double r) {
    return tol_ratio(got, want, n, a * max_abs(want, n) + 1e-30, r);
}

/* Random host floats, rounded to bf16 when the device stores bf16. */
static float *inputs(cuda_dtype t, size_t n, float lo, float hi) {
    float *x = random_floats(n, lo, hi);
    if (x && t == CUDA_BF16) round_bf16(x, n);
    return x;
}

#define COMPARE(got, want, n, atol, rtol, what)                                                    \
    do {                                                                                           \
        CHECK((got) != NULL, "%s %s: no device result", dtype_label(t), what);                     \
        double r_ = tol_ratio(got, want, n, atol, rtol);                                           \
        CHECK(r_ <= 1.0, "%s %s: worst error %.3g x the budget", dtype_label(t), what, r_);        \
    } while (0)

#define COMPARE_SCALED(got, want, n, a, rtol, what)                                                \
    do {                                                                                           \
        CHECK((got) != NULL, "%s %s: no device result", dtype_label(t), what);                     \
        double r_ = scaled_ratio(got, want, n, a, rtol);                                           \
        CHECK(r_ <= 1.0, "%s %s: worst error %.3g x the budget", dtype_label(t), what, r_);        \
    } while (0)

/* ---- embedding ------------------------------------------------------------ */

static void test_embedding(void) {
    NEED_GPU();
    const int V = 97, C = 70, N = 300;
    for (int k = 0; k < 2; k++) {
        const cuda_dtype t = DTYPES[k];
        int tok[300], order[300], seg[301], seg_tok[300], count[97];
        for (int n = 0; n < N; n++) tok[n] = (int)urand(0, 20); /* many repeats */
        float *E = inputs(t, (size_t)V * C, -1, 1), *dout = inputs(t, (size_t)N * C, -1, 1);
        float *dE = inputs(CUDA_F32, (size_t)V * C, -1, 1), *out = malloc(sizeof(float) * N * C);
        float *dE_dev_init = malloc(sizeof(float) * V * C);
        memcpy(dE_dev_init, dE, sizeof(float) * V * C);
        embedding_forward(E, tok, N, C, out, 1);
        embedding_backward(dout, tok, N, C, dE, 1);
        const int n_seg = cuda_embedding_plan(tok, N, V, order, seg, seg_tok, count);
        int *d_tok = NULL, *d_plan = NULL;
        CHECK(!cuda_alloc((void **)&d_tok, sizeof tok, "t", NULL) && !cuda_upload(d_tok, tok, sizeof tok, NULL),
              "upload");
        CHECK(!cuda_alloc((void **)&d_plan, 4 * (3 * N + 1), "t", NULL), "alloc");
        cuda_upload(d_plan, order, 4 * N, NULL);
        cuda_upload(d_plan + N, seg, 4 * (N + 1), NULL);
        cuda_upload(d_plan + 2 * N + 1, seg_tok, 4 * N, NULL);
        float *d_E = to_device(CUDA_F32, E, (size_t)V * C), *d_dE = to_device(CUDA_F32, dE_dev_init,
                (size_t)V * C);
        void *d_dout = to_device(t, dout, (size_t)N * C), *d_out = poisoned(t, (size_t)N * C);
        cuda_embedding_forward(t, d_E, d_tok, N, C, d_out, 0);
        cuda_embedding_backward(t, d_dout, d_plan, d_plan + N, d_plan + 2 * N + 1, n_seg, C, d_dE, 0);
        float *got = to_host(t, d_out, (size_t)N * C), *got_dE = to_host(CUDA_F32, d_dE, (size_t)V * C);
        COMPARE(got, out, (size_t)N * C, 1e-7, 4e-3 * k, "embedding forward");
        COMPARE(got_dE, dE, (size_t)V * C, 1e-6, 1e-6, "embedding backward");
        free(E), free(dout), free(dE), free(out), free(dE_dev_init), free(got), free(got_dE);
        cuda_free(d_tok), cuda_free(d_plan), cuda_free(d_E), cuda_free(d_dE), cuda_free(d_dout),
            cuda_free(d_out);
    }
}

/* ---- layer norm -------------------------------------------------------------- */

static void test_layernorm(void) {
    NEED_GPU();
    const int N = 203;
    for (int kc = 0; kc < 4; kc++) { /* rows of whole 16-byte packs, and rows without */
        const int k = kc & 1, C = kc < 2 ? 200 : 198;
        const size_t NC = (size_t)N * C;
        const cuda_dtype t = DTYPES[k];
        const double tol = k ? 1e-2 : 1e-5;
        float *x = inputs(t, NC, -2, 3), *dy = inputs(t, NC, -1, 1), *dx = inputs(t, NC, -1, 1);
        float *w = random_floats(C, 0.5f, 1.5f), *b = random_floats(C, -0.5f, 0.5f);
        float *dw = random_floats(C, -1, 1), *db = random_floats(C, -1, 1);
        float *y = malloc(NC * 4), *scratch = malloc(sizeof(float) * train_scratch_floats(C));
        void *d_x = to_device(t, x, NC), *d_dy = to_device(t, dy, NC), *d_dx = to_device(t, dx, NC);
        float *d_w = to_device(CUDA_F32, w, C), *d_b = to_device(CUDA_F32, b, C);
        float *d_dw = to_device(CUDA_F32, dw, C), *d_db = to_device(CUDA_F32, db, C);
        void *d_y = poisoned(t, NC);
        float *d_mean = poisoned(CUDA_F32, N), *d_rstd = poisoned(CUDA_F32, N),
              *d_part = poisoned(CUDA_F32, cuda_colsum_scratch(C, 2));
        layernorm_forward(x, w, b, N, C, y, 1);
        layernorm_backward(x, w, dy, N, C, dx, dw, db, scratch, 1);
        cuda_layernorm_forward(t, d_x, d_w, d_b, N, C, d_y, d_mean, d_rstd, 0);
        cuda_layernorm_backward(t, d_x, d_w, d_mean, d_rstd, d_dy, N, C, d_dx, 1, d_dw, d_db, d_part, 0);
        float *gy = to_host(t, d_y, NC), *gdx = to_host(t, d_dx, NC);
        float *gdw = to_host(CUDA_F32, d_dw, C), *gdb = to_host(CUDA_F32, d_db, C);
        COMPARE(gy, y, NC, tol, tol, "layernorm forward");
        COMPARE(gdx, dx, NC, tol, tol, "layernorm backward dx");
        COMPARE_SCALED(gdw, dw, C, 1e-5, 1e-5, "layernorm backward dw");
        COMPARE_SCALED(gdb, db, C, 1e-5, 1e-5, "layernorm backward db");
        free(x), free(dy), free(dx), free(w), free(b), free(dw), free(db), free(y), free(scratch);
        free(gy), free(gdx), free(gdw), free(gdb);
        cuda_free(d_x), cuda_free(d_dy), cuda_free(d_dx), cuda_free(d_w), cuda_free(d_b), cuda_free(d_dw),
            cuda_free(d_db), cuda_free(d_y), cuda_free(d_mean), cuda_free(d_rstd), cuda_free(d_part);
    }
}

/* ---- token shift ----------------------------------------------------------------- */

static void test_token_shift(void) {
    NEED_GPU();
    const int B = 3, T = 41, N = B * T, M = 3;
    for (int kc = 0; kc < 4; kc++) { /* rows of whole 16-byte packs, and rows without */
        const int k = kc & 1, C = kc < 2 ? 72 : 70;
        const size_t NC = (size_t)N * C, MC = (size_t)M * C;
        const cuda_dtype t = DTYPES[k];
        const double tol = k ? 1e-2 : 1e-6;
        float *z = inputs(t, NC, -2, 2), *dout = inputs(t, M * NC, -1, 1);
        float *mu = random_floats(MC, 0, 1), *dmu = random_floats(MC, -1, 1);
        float *out = malloc(M * NC * 4), *dz = malloc(NC * 4), *zeros = calloc(C, 4);
        void *d_z = to_device(t, z, NC), *d_dout = to_device(t, dout, M * NC);
        float *d_mu = to_device(CUDA_F32, mu, MC), *d_dmu = to_device(CUDA_F32, dmu, MC);
        void *d_out = poisoned(t, M * NC), *d_dz = poisoned(t, NC);
        float *d_part = poisoned(CUDA_F32, cuda_colsum_scratch(C, M));
        for (int m = 0; m < M; m++) {
            token_shift_forward(z, mu + m * C, B, T, C, zeros, out + m * NC, 1);
            token_shift_backward(dout + m * NC, z, mu + m * C, B, T, C, dz, m > 0, dmu + m * C, 1);
        }
        cuda_token_shift_forward(t, d_z, d_mu, M, B, T, C, d_out, 0);
        cuda_token_shift_backward(t, d_dout, d_z, d_mu, M, B, T, C, d_dz, d_dmu, d_part, 0);
        float *gout = to_host(t, d_out, M * NC), *gdz = to_host(t, d_dz, NC);
        float *gdmu = to_host(CUDA_F32, d_dmu, MC);
        COMPARE(gout, out, M * NC, tol, tol, "token shift forward");
        COMPARE(gdz, dz, NC, tol, tol, "token shift backward dz");
        COMPARE_SCALED(gdmu, dmu, MC, 1e-5, 1e-5, "token shift backward dmu");
        free(z), free(dout), free(mu), free(dmu), free(out), free(dz), free(zeros), free(gout), free(gdz),
            free(gdmu);
        cuda_free(d_z), cuda_free(d_dout), cuda_free(d_mu), cuda_free(d_dmu), cuda_free(d_out),
            cuda_free(d_dz), cuda_free(d_part);
    }
}

/* ---- element-wise: relu², sigmoid gates --------------------------------------- */

static void test_elementwise(void) {
    NEED_GPU();
    const size_t n = 10007;
    for (int k = 0; k < 2; k++) {
        const cuda_dtype t = DTYPES[k];
        const double tol = k ? 4e-3 : 1e-6;
        float *a = inputs(t, n, -4, 4), *b = inputs(t, n, -2, 2), *x = inputs(t, n, -2, 2),
              *g = inputs(t, n, -1, 1);
        float *h = malloc(n * 4), *dk = malloc(n * 4), *r = malloc(n * 4), *gated = malloc(n * 4),
              *res = malloc(n * 4), *dval = malloc(n * 4), *dpre = malloc(n * 4);
        relu2_forward(a, h, n, 1);
        relu2_backward(a, g, dk, n, 1);
        memcpy(r, a, n * 4);
        sigmoid_forward(r, n, 1);
        gate_forward(r, b, gated, n, 1);
        residual_forward(x, gated, res, n, 1);
        sigmoid_gate_backward(r, b, g, dval, dpre, n, 1);
        void *d_a = to_device(t, a, n), *d_b = to_device(t, b, n), *d_x = to_device(t, x, n),
             *d_g = to_device(t, g, n);
        void *d_h = poisoned(t, n), *d_dk = poisoned(t, n), *d_gated = poisoned(t, n),
             *d_res = poisoned(t, n), *d_dval = poisoned(t, n), *d_dpre = poisoned(t, n);
        cuda_relu2_forward(t, d_a, d_h, n, 0);
        cuda_relu2_backward(t, d_a, d_g, d_dk, n, 0);
        cuda_gate_forward(t, d_a, d_b, d_gated, n, 0);
        cuda_gate_residual_forward(t, d_x, d_a, d_b, d_res, n, 0);
        cuda_gate_backward(t, d_a, d_b, d_g, d_dval, d_dpre, n, 0);
        float *gh = to_host(t, d_h, n), *gdk = to_host(t, d_dk, n), *ggated = to_host(t, d_gated, n),
              *gres = to_host(t, d_res, n), *gdval = to_host(t, d_dval, n), *gdpre = to_host(t, d_dpre, n);
        COMPARE(gh, h, n, tol, tol, "relu2 forward");
        COMPARE(gdk, dk, n, tol, tol, "relu2 backward");
        COMPARE(ggated, gated, n, tol, tol, "gate forward");
        COMPARE(gres, res, n, tol, tol, "gate + residual forward");
        COMPARE(gdval, dval, n, tol, tol, "gate backward dval");
        COMPARE(gdpre, dpre, n, tol, tol, "gate backward dpre");
        free(a), free(b), free(x), free(g), free(h), free(dk), free(r), free(gated), free(res), free(dval),
            free(dpre), free(gh), free(gdk), free(ggated), free(gres), free(gdval), free(gdpre);
        cuda_free(d_a), cuda_free(d_b), cuda_free(d_x), cuda_free(d_g), cuda_free(d_h), cuda_free(d_dk),
            cuda_free(d_gated), cuda_free(d_res), cuda_free(d_dval), cuda_free(d_dpre);
    }
}

/* ---- WKV ---------------------------------------------------------------------------- */

/* Decays from e^{-e^2} to within 1e-6 of 1 (θ = -14), bonuses of both
 * signs, and keys up to ±30 in some channels (the exponents the stable
 * recurrence exists for). */
static void wkv_inputs(cuda_dtype t, int B, int T, int C, float **theta, float **u, float **kk,
                       float **v, float **r, float **g) {
    const size_t n = (size_t)B * T * C;
    *theta = random_floats(C, -6, 2);
    *u = random_floats(C, -2, 2);
    (*theta)[0] = -14.0f;
    (*theta)[1] = -10.0f;
    *kk = inputs(t, n, -3, 3);
    *v = inputs(t, n, -2, 2);
    *r = inputs(t, n, -3, 3);
    *g = inputs(t, n, -1, 1);
    for (size_t i = 0; i < n; i++)
        if (i % C % 5 == 2) (*kk)[i] *= 10.0f; /* bf16-exact: a power of two times 1.25 */
}

static void test_wkv(void) {
    NEED_GPU();
    const int B = 3, C = 40;
    for (int kc = 0; kc < 4; kc++) { /* several time chunks with a partial last one; less than one chunk */
        const int k = kc & 1, T = kc < 2 ? 200 : 45;
        const size_t n = (size_t)B * T * C;
        const cuda_dtype t = DTYPES[k];
        const double tol = k ? 2e-2 : 2e-4;
        float *theta, *u, *kk, *v, *r, *g;
        wkv_inputs(t, B, T, C, &theta, &u, &kk, &v, &r, &g);
        if (k) round_bf16(kk, n); /* the x10 above may leave bf16 */
        float *d = malloc(C * 4), *state = malloc(3 * (size_t)B * C * 4), *y = malloc(n * 4),
              *ry = malloc(n * 4), *sg = malloc(n * 4), *gy = malloc(n * 4), *gr = malloc(n * 4),
              *gk = malloc(n * 4), *gv = malloc(n * 4), *gth = calloc(C, 4), *gu = calloc(C, 4);
        for (int c = 0; c < C; c++) d[c] = -expf(theta[c]);
        wkv4_forward_batch(B, T, C, d, u, kk, v, state, y, 1);
        memcpy(sg, r, n * 4);
        sigmoid_forward(sg, n, 1);
        gate_forward(sg, y, ry, n, 1);
        if (k) round_bf16(y, n); /* the backward reads the stored y */
        sigmoid_gate_backward(sg, y, g, gy, gr, n, 1);
        wkv4_backward(B, T, C, d, u, kk, v, y, gy, gk, gv, gth, gu, 1);
        float *d_theta = to_device(CUDA_F32, theta, C), *d_u = to_device(CUDA_F32, u, C);
        void *d_k = to_device(t, kk, n), *d_v = to_device(t, v, n), *d_r = to_device(t, r, n),
             *d_g = to_device(t, g, n);
        void *d_y = poisoned(t, n), *d_ry = poisoned(t, n), *d_gk = poisoned(t, n), *d_gv = poisoned(t, n),
             *d_gr = poisoned(t, n);
        float *d_gth = poisoned(CUDA_F32, C), *d_gu = poisoned(CUDA_F32, C), *d_s = poisoned(CUDA_F32, n),
              *d_q = poisoned(CUDA_F32, n);
        size_t n_chunk, n_sums;
        cuda_wkv_scratch(B, T, C, &n_chunk, &n_sums);
        float *d_chunk = poisoned(CUDA_F32, n_chunk);
        double *d_sums = NULL;
        CHECK(d_chunk && !cuda_alloc((void **)&d_sums, n_sums * 8, "t", NULL), "alloc");
        cuda_fill(CUDA_F32, d_gth, 0, C, 0);
        cuda_fill(CUDA_F32, d_gu, 0, C, 0);
        cuda_wkv_forward(t, B, T, C, d_theta, d_u, d_k, d_v, d_r, d_y, d_ry, d_chunk, 0);
        float *got_y = to_host(t, d_y, n), *got_ry = to_host(t, d_ry, n);
        if (k) { /* the backward must see the same y as the reference */
            void *tmp = to_device(t, y, n);
            cuda_free(d_y);
            d_y = tmp;
        }
        cuda_wkv_backward(t, B, T, C, d_theta, d_u, d_k, d_v, d_r, d_y, d_g, d_gk, d_gv, d_gr, d_gth, d_gu,
                          d_s, d_q, d_chunk, d_sums, 0);
        float *got_gk = to_host(t, d_gk, n), *got_gv = to_host(t, d_gv, n), *got_gr = to_host(t, d_gr, n);
        float *got_gth = to_host(CUDA_F32, d_gth, C), *got_gu = to_host(CUDA_F32, d_gu, C);
        COMPARE_SCALED(got_y, y, n, tol, tol, "wkv forward y");
        COMPARE_SCALED(got_ry, ry, n, tol, tol, "wkv forward σ(r)·y");
        COMPARE_SCALED(got_gk, gk, n, tol, tol, "wkv backward gk");
        COMPARE_SCALED(got_gv, gv, n, tol, tol, "wkv backward gv");
        COMPARE_SCALED(got_gr, gr, n, tol, tol, "wkv backward gr");
        COMPARE_SCALED(got_gth, gth, C, tol, tol, "wkv backward gθ");
        COMPARE_SCALED(got_gu, gu, C, tol, tol, "wkv backward gu");
        free(theta), free(u), free(kk), free(v), free(r), free(g), free(d), free(state), free(y), free(ry),
            free(sg), free(gy), free(gr), free(gk), free(gv), free(gth), free(gu);
        free(got_y), free(got_ry), free(got_gk), free(got_gv), free(got_gr), free(got_gth), free(got_gu);
        cuda_free(d_theta), cuda_free(d_u), cuda_free(d_k), cuda_free(d_v), cuda_free(d_r), cuda_free(d_g),
            cuda_free(d_y), cuda_free(d_ry), cuda_free(d_gk), cuda_free(d_gv), cuda_free(d_gr),
            cuda_free(d_gth), cuda_free(d_gu), cuda_free(d_s), cuda_free(d_q), cuda_free(d_chunk), cuda_free(d_sums);
    }
}

/* ---- cross-entropy + L2Wrap ---------------------------------------------------------- */

static void test_cross_entropy(void) {
    NEED_GPU();
    const int N = 37, V = 1001, ld = 1024;
    const float l2wrap = 0.05f; /* large, so the L2Wrap term is visible in the budget */
    for (int k = 0; k < 2; k++) {
        const cuda_dtype t = DTYPES[k];
        const double tol = k ? 1e-2 : 1e-5;
        int targets[37];
        for (int n = 0; n < N; n++) targets[n] = (int)urand(0, (float)V);
        float *logits = inputs(t, (size_t)N * V, -6, 6), *padded = malloc((size_t)N * ld * 4);
        for (int n = 0; n < N; n++) {
            memcpy(padded + (size_t)n * ld, logits + (size_t)n * V, (size_t)V * 4);
            for (int j = V; j < ld; j++) padded[(size_t)n * ld + j] = NAN; /* never read */
        }
        float *loss = malloc(N * 4), *lse = malloc(N * 4);
        cross_entropy_forward(logits, targets, N, V, loss, lse, 1);
        cross_entropy_backward(logits, targets, lse, N, V, l2wrap, 1);
        int *d_t = NULL;
        CHECK(!cuda_alloc((void **)&d_t, sizeof targets, "t", NULL) &&
                  !cuda_upload(d_t, targets, sizeof targets, NULL), "upload");
        void *d_l = to_device(t, padded, (size_t)N * ld);
        float *d_loss = poisoned(CUDA_F32, N), *d_mean = poisoned(CUDA_F32, 1);
        cuda_cross_entropy(t, d_l, ld, d_t, N, V, l2wrap, 1, d_loss, 0);
        cuda_mean(d_loss, N, d_mean, 0);
        float *got = to_host(t, d_l, (size_t)N * ld), *got_loss = to_host(CUDA_F32, d_loss, N),
              *got_mean = to_host(CUDA_F32, d_mean, 1);
        CHECK(got != NULL, "no result");
        for (int n = 0; n < N; n++) memmove(got + (size_t)n * V, got + (size_t)n * ld, (size_t)V * 4);
        double mean = 0;
        for (int n = 0; n < N; n++) mean += loss[n];
        float want_mean = (float)(mean / N);
        COMPARE(got_loss, loss, N, 1e-5, 1e-5, "cross-entropy row loss");
        COMPARE(got_mean, &want_mean, 1, 1e-6, 1e-6, "cross-entropy mean loss");
        COMPARE_SCALED(got, logits, (size_t)N * V, tol, tol, "cross-entropy dlogits (L2Wrap)");
        free(logits), free(padded), free(loss), free(lse), free(got), free(got_loss), free(got_mean);
        cuda_free(d_t), cuda_free(d_l), cuda_free(d_loss), cuda_free(d_mean);
    }
}

/* ---- Adam, global norm, clipping ---------------------------------------------------- */

static void test_adam(void) {
    NEED_GPU();
    const size_t n = 50000;
    const adam_group groups[3] = {{0, 1000, 2.0f, 0}, {1000, 9000, 1.0f, 1}, {10000, 40000, 3.0f, 0}};
    cuda_adam_span spans[3];
    for (int i = 0; i < 3; i++)
        spans[i] = (cuda_adam_span){groups[i].offset, groups[i].count, groups[i].lr_scale, groups[i].decay};
    const adam_hparams h = {0.9f, 0.99f, 1e-8f, 0.1f};
    float *p = random_floats(n, -1, 1), *g = random_floats(n, -0.3f, 0.3f), *m = random_floats(n, -0.1f,
            0.1f),
          *v = random_floats(n, 0, 0.01f);
    const int nb = cuda_adam_blocks(spans, 3, NULL);
    int *table = malloc(sizeof(int) * 2 * nb);
    cuda_adam_blocks(spans, 3, table);
    float *d_p = to_device(CUDA_F32, p, n), *d_g = to_device(CUDA_F32, g, n), *d_m = to_device(CUDA_F32, m,
            n),
          *d_v = to_device(CUDA_F32, v, n);
    void *d_spans = NULL, *d_table = NULL, *d_p16 = poisoned(CUDA_BF16, n);
    double *d_part = NULL, *d_norm = NULL;
    CHECK(!cuda_alloc(&d_spans, sizeof spans, "t", NULL) && !cuda_upload(d_spans, spans, sizeof spans, NULL) &&
              !cuda_alloc(&d_table, sizeof(int) * 2 * nb, "t", NULL) &&
              !cuda_upload(d_table, table, sizeof(int) * 2 * nb, NULL) &&
              !cuda_alloc((void **)&d_part, cuda_norm_scratch(n) * 8, "t", NULL) &&
              !cuda_alloc((void **)&d_norm, 8, "t", NULL),
          "device setup");
    const float gscale = 0.5f, max_norm = 1.0f, lr = 1e-3f;
    const double norm = grad_global_norm(g, n, 1);
    adam_update(p, g, m, v, groups, 3, lr, gscale * grad_clip_scale(norm * gscale, max_norm), 7, &h, 1);
    cuda_global_norm(d_g, n, d_part, d_norm, 0);
    cuda_adam_update(d_p, d_g, d_m, d_v, d_p16, d_spans, d_table, nb, lr, gscale, max_norm, d_norm, h.beta1,
                     h.beta2, h.eps, h.weight_decay, 7, 0);
    double got_norm = 0;
    CHECK(!cuda_sync(0, "t", NULL) && !cuda_download(&got_norm, d_norm, 8, NULL), "norm download");
    CHECK(fabs(got_norm - norm) <= 1e-9 * norm, "global norm %.12g, want %.12g", got_norm, norm);
    const cuda_dtype t = CUDA_F32;
    float *gp = to_host(CUDA_F32, d_p, n), *gm = to_host(CUDA_F32, d_m, n), *gv = to_host(CUDA_F32, d_v, n),
          *gp16 = to_host(CUDA_BF16, d_p16, n);
    COMPARE(gp, p, n, 1e-6, 1e-6, "adam parameters");
    COMPARE(gm, m, n, 1e-7, 1e-6, "adam first moment");
    COMPARE(gv, v, n, 1e-9, 1e-6, "adam second moment");
    round_bf16(p, n);
    COMPARE(gp16, p, n, 1e-6, 4e-3, "adam bf16 copy");
    free(p), free(g), free(m), free(v), free(table), free(gp), free(gm), free(gv), free(gp16);
    cuda_free(d_p), cuda_free(d_g), cuda_free(d_m), cuda_free(d_v), cuda_free(d_spans), cuda_free(d_table),
        cuda_free(d_p16), cuda_free(d_part), cuda_free(d_norm);
}

/* ---- GEMM ------------------------------------------------------------------------------ */

/* Y = X Wᵀ and the two backward products of a linear layer, as the training
 * context calls them, against the CPU's linear_forward / linear_backward. */
static void test_gemm(void) {
    NEED_GPU();
    const int N = 96, in = 72, out = 136;
    cuda_blas *h = NULL;
    rwkv_error err;
    CHECK(cuda_blas_new(&h, &err) == RWKV_OK, "%s", err.message);
    for (int k = 0; k < 2; k++) {
        const cuda_dtype t = DTYPES[k];
        const double tol = k ? 1e-2 : 1e-5;
        float *W = inputs(t, (size_t)out * in, -1, 1), *X = inputs(t, (size_t)N * in, -1, 1),
              *dY = inputs(t, (size_t)N * out, -1, 1), *dW = random_floats((size_t)out * in, -1, 1);
        float *Y = malloc((size_t)N * out * 4), *dX = malloc((size_t)N * in * 4);
        void *d_W = to_device(t, W, (size_t)out * in), *d_X = to_device(t, X, (size_t)N * in),
             *d_dY = to_device(t, dY, (size_t)N * out);
        float *d_dW = to_device(CUDA_F32, dW, (size_t)out * in);
        void *d_Y = poisoned(t, (size_t)N * out), *d_dX = poisoned(t, (size_t)N * in);
        linear_forward(W, out, in, X, N, Y, 1);
        linear_backward(W, out, in, X, dY, N, dX, dW, 1);
        cuda_gemm fwd = {t, t, 1, 0, out, N, in, d_W, d_X, NULL, d_Y, in, in, out, 0, 0, 0, 1, 1.0f, 0.0f};
        cuda_gemm bw = {t, CUDA_F32, 0, 1, in, out, N, d_X, d_dY, NULL, d_dW, in, out, in, 0, 0, 0, 1, 1.0f, 1.0f};
        cuda_gemm bx = {t, t, 0, 0, in, N, out, d_W, d_dY, NULL, d_dX, in, out, in, 0, 0, 0, 1, 1.0f, 0.0f};
        CHECK(cuda_matmul(h, &fwd, 0, &err) == RWKV_OK && cuda_matmul(h, &bw, 0, &err) == RWKV_OK &&
                  cuda_matmul(h, &bx, 0, &err) == RWKV_OK,
              "%s", err.message);
        float *gY = to_host(t, d_Y, (size_t)N * out), *gdX = to_host(t, d_dX, (size_t)N * in),
              *gdW = to_host(CUDA_F32, d_dW, (size_t)out * in);
        COMPARE_SCALED(gY, Y, (size_t)N * out, tol, tol, "linear forward");
        COMPARE_SCALED(gdX, dX, (size_t)N * in, tol, tol, "linear backward dX");
        COMPARE_SCALED(gdW, dW, (size_t)out * in, k ? 1e-4 : 1e-5, 1e-5, "linear backward dW");
        free(W), free(X), free(dY), free(dW), free(Y), free(dX), free(gY), free(gdX), free(gdW);
        cuda_free(d_W), cuda_free(d_X), cuda_free(d_dY), cuda_free(d_dW), cuda_free(d_Y), cuda_free(d_dX);
    }
    cuda_blas_free(h);
}

int main(void) {
    RUN(test_embedding);
    RUN(test_layernorm);
    RUN(test_token_shift);
    RUN(test_elementwise);
    RUN(test_wkv);
    RUN(test_cross_entropy);
    RUN(test_adam);
    RUN(test_gemm);
    return test_summary();
}
