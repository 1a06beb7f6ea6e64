/* The WKV operators of every RWKV version (kernels/wkv.h):
 *  - RWKV-4: every variant against the scalar reference, and the reference
 *    against the explicit O(T^2) softmax form in double, from a fresh and a
 *    used state, with |k| past float exp's range; the reference on channel
 *    ranges; the training backward on the one-channel vector of known values
 *    and against central differences in double;
 *  - RWKV-5/6 and RWKV-7: the reference against a double-precision
 *    transcription of the update rules, every variant's rows bit for bit
 *    against the reference, any thread count, token by token == all at once,
 *    and RWKV-5's shared decay vector (w_stride = 0);
 *  - RWKV-7 training: the batch forward == the inference kernel, the
 *    backward against a double-precision reverse sweep that is itself
 *    checked by central differences, any thread count. */
#include <stdint.h>

#include "kernels/kernels.h"
#include "kernels/wkv.h"
#include "test.h"

static uint64_t rng_state = 0x1234567ull;
static double urand(void) { /* [0, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}
static double nrand(void) { return sqrt(-2.0 * log(1.0 - urand())) * cos(6.283185307179586 * urand()); }
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)urand(); }
static float gauss(void) { return (float)nrand(); }
static void fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = uniform(lo, hi);
}

/* ---- RWKV-4 forward -------------------------------------------------------- */

/* The explicit form of kernels/wkv4.c, in double: y_t is the softmax-weighted mean of
 * v_0..v_t with logits (t-1-i)d + k_i (i < t) and u + k_t (i = t); a prior
 * state (a, b, p) joins with logit p + t d + ln b and value a / b. */
static void wkv_explicit(int T, int C, const float *d, const float *u, const float *k, const float *v,
                         const float *a0, const float *b0, const float *p0, double *y) {
    for (int c = 0; c < C; c++)
        for (int t = 0; t < T; t++) {
            double m = (double)u[c] + k[(size_t)t * C + c];
            for (int i = 0; i < t; i++) {
                double l = (double)(t - 1 - i) * d[c] + k[(size_t)i * C + c];
                if (l > m) m = l;
            }
            int prior = b0[c] > 0;
            double lp = prior ? (double)p0[c] + (double)t * d[c] + log((double)b0[c]) : 0;
            if (prior && lp > m) m = lp;
            double num = 0, den = 0, e;
            for (int i = 0; i < t; i++) {
                e = exp((double)(t - 1 - i) * d[c] + k[(size_t)i * C + c] - m);
                num += e * v[(size_t)i * C + c];
                den += e;
            }
            e = exp((double)u[c] + k[(size_t)t * C + c] - m);
            num += e * v[(size_t)t * C + c];
            den += e;
            if (prior) {
                e = exp(lp - m);
                num += e * a0[c] / b0[c];
                den += e;
            }
            y[(size_t)t * C + c] = num / den;
        }
}

static void test_wkv4_variants(void) {
    const int Cs[] = {1, 7, 8, 16, 23, 40};
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++) {
        int C = Cs[ci], T = 37;
        size_t n = (size_t)T * C;
        float *d = malloc(sizeof(float) * C), *u = malloc(sizeof(float) * C), *k = malloc(sizeof(float) * n),
              *v = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *yr = malloc(sizeof(float) * n);
        float *st = malloc(sizeof(float) * 6 * C);
        double *ye = malloc(sizeof(double) * n);
        for (int c = 0; c < C; c++) d[c] = -expf(uniform(-6, 2)), u[c] = uniform(-3, 3);
        for (size_t i = 0; i < n; i++) {
            /* a mix of ordinary keys and |k| > 100 (plain exp would overflow) */
            k[i] = i % 5 == 0 ? uniform(-150, 150) : gauss() * 3;
            v[i] = gauss();
        }
        for (int phase = 0; phase < 2; phase++) {
            /* phase 0: fresh state (p = -1e38); phase 1: continue from the state phase 0 left */
            float *a = st, *b = st + C, *p = st + 2 * C, *ar = st + 3 * C, *br = st + 4 * C, *pr = st + 5 * C;
            if (phase == 0)
                for (int c = 0; c < C; c++) a[c] = b[c] = 0, p[c] = -1e38f;
            memcpy(ar, a, sizeof(float) * 3 * C); /* reference copy of (a, b, p) */
            float a0[64], b0[64], p0[64];
            memcpy(a0, a, sizeof(float) * C), memcpy(b0, b, sizeof(float) * C), memcpy(p0, p, sizeof(float) * C);
            wkv4_forward_scalar(T, C, 0, C, d, u, k, v, ar, br, pr, yr);
            wkv_explicit(T, C, d, u, k, v, a0, b0, p0, ye);
            for (size_t i = 0; i < n; i++) {
                double e = fabs(yr[i] - ye[i]) / (1e-5 + 1e-4 * fabs(ye[i]));
                CHECK(e <= 1, "scalar wkv C=%d element %zu: %g vs explicit %g", C, i, (double)yr[i], ye[i]);
            }
            for (const kernel_ops *const *kv = kernels_all(); *kv; kv++) {
                if (!kernels_cpu_supports((*kv)->name)) continue;
                float s2[3 * 64];
                memcpy(s2, a0, sizeof(float) * C), memcpy(s2 + C, b0, sizeof(float) * C),
                    memcpy(s2 + 2 * C, p0, sizeof(float) * C);
                (*kv)->wkv4_forward(T, C, d, u, k, v, s2, s2 + C, s2 + 2 * C, y);
                double e1 = tol_ratio(y, yr, n, 1e-6, 1e-5), e2 = tol_ratio(s2, ar, 3 * (size_t)C, 1e-30, 1e-5);
                if (!(e1 <= 1) || !(e2 <= 1)) {
                    free(d), free(u), free(k), free(v), free(y), free(yr), free(st), free(ye);
                    CHECK(0, "%s wkv C=%d phase %d: y %.3g, state %.3g of tolerance", (*kv)->name, C, phase, e1, e2);
                }
            }
            memcpy(a, ar, sizeof(float) * 3 * C); /* carry the reference state into phase 1 */
        }
        free(d), free(u), free(k), free(v), free(y), free(yr), free(st), free(ye);
    }
}

/* The reference on a channel range is the same computation as on all
 * channels (the SIMD variants run it on their leftover channels). */
static void test_wkv4_channel_ranges(void) {
    enum { T = 11, C = 13 };
    float d[C], u[C], k[T * C], v[T * C], s_all[3 * C], s_parts[3 * C], y_all[T * C], y_parts[T * C];
    rng_state = 3;
    for (int c = 0; c < C; c++) d[c] = -expf(uniform(-6, 2)), u[c] = uniform(-3, 3);
    for (int i = 0; i < T * C; i++) k[i] = gauss() * 3, v[i] = gauss();
    for (int c = 0; c < C; c++) s_all[c] = s_all[C + c] = 0, s_all[2 * C + c] = -1e38f;
    memcpy(s_parts, s_all, sizeof s_all);
    wkv4_forward_scalar(T, C, 0, C, d, u, k, v, s_all, s_all + C, s_all + 2 * C, y_all);
    const int cuts[] = {0, 5, 8, 13};
    for (int i = 0; i < 3; i++)
        wkv4_forward_scalar(T, C, cuts[i], cuts[i + 1], d, u, k, v, s_parts, s_parts + C, s_parts + 2 * C, y_parts);
    CHECK(memcmp(y_all, y_parts, sizeof y_all) == 0 && memcmp(s_all, s_parts, sizeof s_all) == 0,
          "wkv4 reference on channel ranges differs from all channels at once");
}

/* ---- RWKV-4 training backward: the one-channel vector --------------------- */

static void test_wkv4_vector(void) {
    const float theta = -0.5f, u = 0.3f, d = -expf(theta);
    const float k[4] = {0.1f, -1.2f, 2.0f, 0.5f}, v[4] = {1.0f, -0.5f, 0.25f, 2.0f};
    const float g[4] = {0.3f, -0.2f, 0.5f, 1.0f};
    const double want_y[4] = {1.0, 0.596588, 0.270780, 0.647526};
    const double want_k[4] = {-0.027329, 0.029668, -0.300140, 0.297801};
    const double want_v[4] = {0.213992, -0.023696, 1.189514, 0.220190};
    float y[4], state[3], gk[4], gv[4], gth = 0, gu = 0;
    CHECK(fabs(d - -0.606531) < 5e-7, "d = %.7f", d);
    wkv4_forward_batch(1, 4, 1, &d, &u, k, v, state, y, 1);
    wkv4_backward(1, 4, 1, &d, &u, k, v, y, g, gk, gv, &gth, &gu, 1);
    const double tol = 5e-7 + 2.5e-7; /* half a unit of the 6th printed decimal + float rounding */
    for (int t = 0; t < 4; t++) {
        CHECK(fabs(y[t] - want_y[t]) <= tol, "y[%d] = %.7f, want %.6f", t, y[t], want_y[t]);
        CHECK(fabs(gk[t] - want_k[t]) <= tol, "dk[%d] = %.7f, want %.6f", t, gk[t], want_k[t]);
        CHECK(fabs(gv[t] - want_v[t]) <= tol, "dv[%d] = %.7f, want %.6f", t, gv[t], want_v[t]);
    }
    CHECK(fabs(gth - -0.014840) <= tol, "dθ = %.7f, want -0.014840", gth);
    CHECK(fabs(gu - 0.347258) <= tol, "du = %.7f, want 0.347258", gu);
}

/* ---- RWKV-4 training backward: every variant against the scalar one ------ */

/* 37 channels (two full blocks of 16 and a block of 5 lanes), k up to past
 * float exp()'s overflow, 3 rows of 29 steps; the variants differ from the
 * reference only by their exponentials (about 1 ulp), and the one-ulp
 * differences only grow through the 29-step recurrences. */
static void test_wkv4_backward_variants(void) {
    enum { B = 3, T = 29, C = 37, X = B * T * C };
    static float d[C], u[C], k[X], v[X], g[X], y[X], state[3 * B * C], gk[2][X], gv[2][X], gth[2][C], gu[2][C];
    rng_state = 5;
    for (int c = 0; c < C; c++) d[c] = -expf((float)(-6.0 + 9.0 * urand())), u[c] = (float)(2.0 * nrand());
    for (int i = 0; i < X; i++) k[i] = (float)(nrand() * (i % 7 == 0 ? 30.0 : 1.5)), v[i] = (float)nrand(), g[i] = (float)nrand();
    k[5 * C + 20] = 110.0f, k[40 * C + 36] = -95.0f;
    wkv4_forward_batch(B, T, C, d, u, k, v, state, y, 2);
    memset(gth, 0, sizeof gth), memset(gu, 0, sizeof gu);
    wkv4_backward_with(&kernels_scalar, B, T, C, d, u, k, v, y, g, gk[0], gv[0], gth[0], gu[0], 2);
    for (const kernel_ops *const *kv = kernels_all(); *kv; kv++) {
        if (!kernels_cpu_supports((*kv)->name)) continue;
        memset(gth[1], 0, sizeof gth[1]), memset(gu[1], 0, sizeof gu[1]);
        wkv4_backward_with(*kv, B, T, C, d, u, k, v, y, g, gk[1], gv[1], gth[1], gu[1], 1);
        const float *const want[4] = {gk[0], gv[0], gth[0], gu[0]}, *const got[4] = {gk[1], gv[1], gth[1], gu[1]};
        const size_t n[4] = {X, X, C, C};
        for (int q = 0; q < 4; q++) {
            float scale = 0;
            for (size_t i = 0; i < n[q]; i++) scale = fmaxf(scale, fabsf(want[q][i]));
            const double ratio = tol_ratio(got[q], want[q], n[q], 1e-5 * scale, 1e-4);
            CHECK(ratio <= 1, "wkv4 backward %s, output %d: ratio %.3g to the scalar reference", (*kv)->name, q, ratio);
        }
    }
}

/* ---- RWKV-4 backward vs central differences in double ------------------- */

/* L = Σ_t g_t y_t for one channel, y from the explicit softmax form
 * (past logits (t-1-i)d + k_i, current u + k_t), max-subtracted. */
static double wkv_loss_ref(int T, double theta, double u, const double *k, const double *v,
                           const double *g) {
    const double d = -exp(theta);
    double L = 0;
    for (int t = 0; t < T; t++) {
        double mx = u + k[t];
        for (int i = 0; i < t; i++) mx = fmax(mx, (t - 1 - i) * d + k[i]);
        double num = exp(u + k[t] - mx) * v[t], den = exp(u + k[t] - mx);
        for (int i = 0; i < t; i++) {
            const double w = exp((t - 1 - i) * d + k[i] - mx);
            num += w * v[i];
            den += w;
        }
        L += g[t] * num / den;
    }
    return L;
}

static void test_wkv4_finite_differences(void) {
    enum { B = 2, T = 24, C = 5 };
    float th[C], u[C], d[C], k[B * T * C], v[B * T * C], g[B * T * C], y[B * T * C];
    float state[3 * B * C], gk[B * T * C], gv[B * T * C], gth[C] = {0}, gu[C] = {0};
    rng_state = 77;
    for (int c = 0; c < C; c++) {
        th[c] = (float)(-6.0 + 9.0 * urand()); /* θ in [-6, 3] */
        u[c] = (float)(2.0 * nrand());
        d[c] = -expf(th[c]);
    }
    for (int i = 0; i < B * T * C; i++) {
        const int c = i % C;
        k[i] = (float)(nrand() * (c < 2 ? 1.0 : c == 2 ? 10.0 : 40.0));
        v[i] = (float)nrand();
        g[i] = (float)nrand();
    }
    k[(0 * T + 3) * C + 3] = 118.0f; /* past exp() overflow in float */
    k[(1 * T + 7) * C + 4] = -95.0f;
    k[(1 * T + 8) * C + 4] = 64.0f;
    wkv4_forward_batch(B, T, C, d, u, k, v, state, y, 2);
    wkv4_backward(B, T, C, d, u, k, v, y, g, gk, gv, gth, gu, 2);

    double worst = 0;
    const char *worst_what = "";
    double kk[T], vv[T], gg[T];
    for (int c = 0; c < C; c++) {
        double fd_th = 0, fd_u = 0;
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                const int i = (b * T + t) * C + c;
                kk[t] = k[i], vv[t] = v[i], gg[t] = g[i];
            }
            const double h = 1e-6;
            fd_th += (wkv_loss_ref(T, th[c] + h, u[c], kk, vv, gg) -
                      wkv_loss_ref(T, th[c] - h, u[c], kk, vv, gg)) / (2 * h);
            fd_u += (wkv_loss_ref(T, th[c], u[c] + h, kk, vv, gg) -
                     wkv_loss_ref(T, th[c], u[c] - h, kk, vv, gg)) / (2 * h);
            for (int t = 0; t < T; t++) {
                const int i = (b * T + t) * C + c;
                double fd[2];
                for (int which = 0; which < 2; which++) {
                    double *x = which ? vv : kk, save = x[t];
                    x[t] = save + h;
                    const double lp = wkv_loss_ref(T, th[c], u[c], kk, vv, gg);
                    x[t] = save - h;
                    const double lm = wkv_loss_ref(T, th[c], u[c], kk, vv, gg);
                    x[t] = save;
                    fd[which] = (lp - lm) / (2 * h);
                }
                const double ek = fabs(gk[i] - fd[0]) / (1e-5 + 1e-4 * fabs(fd[0]));
                const double ev = fabs(gv[i] - fd[1]) / (1e-5 + 1e-4 * fabs(fd[1]));
                if (!(ek <= worst)) worst = ek, worst_what = "dk";
                if (!(ev <= worst)) worst = ev, worst_what = "dv";
                CHECK(ek <= 1 && ev <= 1, "b %d t %d c %d (k %g): dk %.8g vs fd %.8g, dv %.8g vs fd %.8g",
                      b, t, c, k[i], gk[i], fd[0], gv[i], fd[1]);
            }
        }
        CHECK(fabs(gth[c] - fd_th) <= 1e-5 + 1e-4 * fabs(fd_th), "c %d: dθ %.8g vs fd %.8g", c,
              gth[c], fd_th);
        CHECK(fabs(gu[c] - fd_u) <= 1e-5 + 1e-4 * fabs(fd_u), "c %d: du %.8g vs fd %.8g", c, gu[c],
              fd_u);
    }
    printf("# wkv vs finite differences: worst ratio %.3f (%s; 1 = atol 1e-5 + rtol 1e-4)\n", worst,
           worst_what);
}

/* ---- RWKV-5/6 and RWKV-7 ----------------------------------------------------- */

static void test_wkv5_wkv7(void) {
    enum { T = 9, H = 3, N = 12, A = H * N };
    rng_state = 42;
    static float r[T * A], k[T * A], v[T * A], w[T * A], u[A], a[T * A], bb[T * A];
    static float S0[H * N * N], S1[H * N * N], S4[H * N * N], y1[T * A], y4[T * A];
    static double Sd[H * N * N], yd[T * A];
    fill(r, T * A, -1, 1);
    fill(k, T * A, -1, 1);
    fill(v, T * A, -1, 1);
    fill(w, T * A, 0.2f, 1);
    fill(u, A, -0.5f, 0.5f);
    fill(S0, H * N * N, -1, 1);
    for (int v7 = 0; v7 < 2; v7++) {
        if (v7) { /* a = -kappa, b = kappa * alpha with a unit-norm kappa per head */
            for (int t = 0; t < T; t++)
                for (int h = 0; h < H; h++) {
                    float kap[N], ss = 0;
                    for (int j = 0; j < N; j++) kap[j] = uniform(-1, 1), ss += kap[j] * kap[j];
                    for (int j = 0; j < N; j++) {
                        float al = uniform(0, 1);
                        a[t * A + h * N + j] = -kap[j] / sqrtf(ss);
                        bb[t * A + h * N + j] = kap[j] / sqrtf(ss) * al;
                    }
                }
        }
        for (int i = 0; i < H * N * N; i++) Sd[i] = S0[i];
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < N; i++) {
                    double *row = Sd + ((size_t)h * N + i) * N;
                    const size_t o = (size_t)t * A + (size_t)h * N;
                    double vi = v[o + i], acc = 0, sa = 0;
                    if (!v7) {
                        for (int j = 0; j < N; j++) acc += (double)r[o + j] * (row[j] + (double)u[h * N + j] * k[o + j] * vi);
                        for (int j = 0; j < N; j++) row[j] = w[o + j] * row[j] + (double)k[o + j] * vi;
                    } else {
                        for (int j = 0; j < N; j++) sa += row[j] * a[o + j];
                        for (int j = 0; j < N; j++) row[j] = row[j] * w[o + j] + sa * bb[o + j] + vi * k[o + j];
                        for (int j = 0; j < N; j++) acc += row[j] * r[o + j];
                    }
                    yd[o + i] = acc;
                }
        memcpy(S1, S0, sizeof S0);
        memcpy(S4, S0, sizeof S0);
        if (!v7) {
            wkv5_forward(T, H, N, r, k, v, w, A, u, S1, y1, 1);
            wkv5_forward(T, H, N, r, k, v, w, A, u, S4, y4, 4);
        } else {
            wkv7_forward(T, H, N, r, w, k, v, a, bb, S1, y1, 1);
            wkv7_forward(T, H, N, r, w, k, v, a, bb, S4, y4, 4);
        }
        float yf[T * A], Sf[H * N * N];
        for (int i = 0; i < T * A; i++) yf[i] = (float)yd[i];
        for (int i = 0; i < H * N * N; i++) Sf[i] = (float)Sd[i];
        double ry = tol_ratio(y1, yf, T * A, 1e-5, 1e-5), rs = tol_ratio(S1, Sf, H * N * N, 1e-5, 1e-5);
        CHECK(ry <= 1 && rs <= 1, "wkv%s vs double: y ratio %.3g, S ratio %.3g", v7 ? "7" : "5", ry, rs);
        CHECK(memcmp(y1, y4, sizeof y1) == 0 && memcmp(S1, S4, sizeof S1) == 0,
              "wkv%s: the thread count changed the result", v7 ? "7" : "5");
        /* token by token == all at once, bit for bit */
        float St[H * N * N], yt[T * A];
        memcpy(St, S0, sizeof S0);
        for (int t = 0; t < T; t++) {
            const size_t o = (size_t)t * A;
            if (!v7) wkv5_forward(1, H, N, r + o, k + o, v + o, w + o, 0, u, St, yt + o, 2);
            else wkv7_forward(1, H, N, r + o, w + o, k + o, v + o, a + o, bb + o, St, yt + o, 2);
        }
        CHECK(memcmp(yt, y1, sizeof yt) == 0 && memcmp(St, S1, sizeof St) == 0,
              "wkv%s: one token at a time differs from the whole sequence", v7 ? "7" : "5");
    }
    /* every variant's rows give the scalar reference's bits */
    for (const kernel_ops *const *kv = kernels_all(); *kv; kv++) {
        if (!kernels_cpu_supports((*kv)->name)) continue;
        float Ss[H * N * N], ys[T * A], Sv[H * N * N], yv[T * A];
        for (int v7 = 0; v7 < 2; v7++) {
            memcpy(Ss, S0, sizeof S0);
            memcpy(Sv, S0, sizeof S0);
            if (!v7) {
                wkv5_forward_with(&kernels_scalar, T, H, N, r, k, v, w, A, u, Ss, ys, 1);
                wkv5_forward_with(*kv, T, H, N, r, k, v, w, A, u, Sv, yv, 2);
            } else {
                wkv7_forward_with(&kernels_scalar, T, H, N, r, w, k, v, a, bb, Ss, ys, 1);
                wkv7_forward_with(*kv, T, H, N, r, w, k, v, a, bb, Sv, yv, 2);
            }
            CHECK(memcmp(yv, ys, sizeof ys) == 0 && memcmp(Sv, Ss, sizeof Ss) == 0,
                  "wkv%s: %s rows differ from the scalar reference", v7 ? "7" : "5", (*kv)->name);
        }
    }
    /* w_stride = 0 (one decay vector for every token) == the vector repeated */
    float wrep[T * A];
    for (int t = 0; t < T; t++) memcpy(wrep + t * A, w, sizeof(float) * A);
    memcpy(S1, S0, sizeof S0);
    memcpy(S4, S0, sizeof S0);
    wkv5_forward(T, H, N, r, k, v, w, 0, u, S1, y1, 1);
    wkv5_forward(T, H, N, r, k, v, wrep, A, u, S4, y4, 1);
    CHECK(memcmp(y1, y4, sizeof y1) == 0 && memcmp(S1, S4, sizeof S1) == 0, "wkv5: w_stride 0 differs");
}

/* The RWKV-7 rows in blocks (kernel_ops.wkv7_block: rows in the lanes of a
 * vector, from WKV7_BLOCK_MIN_T tokens on) give the scalar rows' bits, and
 * so does the token-at-a-time path (kernel_ops.wkv7_pair: two rows a
 * vector, with y or the states alone), at the heads of the released models
 * (64), of 32 and of 40 (pairs but no blocks). */
static void test_wkv7_blocks(void) {
    enum { T = 21, H = 2, NMAX = 64 };
    rng_state = 7;
    static float r[T * H * NMAX], w[T * H * NMAX], k[T * H * NMAX], v[T * H * NMAX], a[T * H * NMAX],
        b[T * H * NMAX];
    static float S0[H * NMAX * NMAX], Ss[H * NMAX * NMAX], Sv[H * NMAX * NMAX], ys[T * H * NMAX],
        yv[T * H * NMAX];
    int ran = 0; /* a variant with blocks or pairs ran here */
    for (const kernel_ops *const *kv = kernels_all(); *kv; kv++)
        ran |= ((*kv)->wkv7_block || (*kv)->wkv7_pair) && kernels_cpu_supports((*kv)->name);
    static const int heads[] = {32, 40, NMAX};
    for (size_t n = 0; n < sizeof heads / sizeof heads[0]; n++) {
        const int N = heads[n], A = H * N;
        fill(r, T * A, -1, 1), fill(k, T * A, -1, 1), fill(v, T * A, -1, 1), fill(w, T * A, 0.5f, 1);
        fill(a, T * A, -0.2f, 0.2f), fill(b, T * A, -0.2f, 0.2f), fill(S0, H * N * N, -1, 1);
        memcpy(Ss, S0, sizeof(float) * H * N * N);
        wkv7_forward_with(&kernels_scalar, T, H, N, r, w, k, v, a, b, Ss, ys, 1);
        for (const kernel_ops *const *kv = kernels_all(); *kv; kv++) {
            if (!kernels_cpu_supports((*kv)->name)) continue;
            memcpy(Sv, S0, sizeof(float) * H * N * N);
            wkv7_forward_with(*kv, T, H, N, r, w, k, v, a, b, Sv, yv, 2);
            CHECK(memcmp(yv, ys, sizeof(float) * T * A) == 0 && memcmp(Sv, Ss, sizeof(float) * H * N * N) == 0,
                  "N %d: %s differs from the scalar rows", N, (*kv)->name);
            memcpy(Sv, S0, sizeof(float) * H * N * N);
            for (int t = 0; t < T; t++) {
                const size_t o = (size_t)t * A;
                wkv7_forward_with(*kv, 1, H, N, r + o, w + o, k + o, v + o, a + o, b + o, Sv, yv + o, 1);
            }
            CHECK(memcmp(yv, ys, sizeof(float) * T * A) == 0 && memcmp(Sv, Ss, sizeof(float) * H * N * N) == 0,
                  "N %d: %s token by token differs from the sequence", N, (*kv)->name);
            if (!wkv7_pair_fits((*kv)->wkv7_pair, 1, N)) continue;
            /* the states alone (no y), as the training's recomputation asks */
            memcpy(Sv, S0, sizeof(float) * H * N * N);
            for (int t = 0; t < T; t++)
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < N; i += 2) {
                        const size_t o = (size_t)t * A;
                        float *s = Sv + ((size_t)h * N + i) * N;
                        (*kv)->wkv7_pair(A, N, h, i, r + o, w + o, k + o, v + o, a + o, b + o, s, s, NULL);
                    }
            CHECK(memcmp(Sv, Ss, sizeof(float) * H * N * N) == 0, "N %d: %s pairs without y differ", N, (*kv)->name);
        }
    }
    if (!ran) SKIP("no variant with row blocks or pairs runs on this CPU");
}

/* The training forward with heads of 32 (the row blocks where the active
 * variant has them, for chunks of 4 tokens or more; rows for a last chunk of
 * 3): its outputs and its chunk checkpoints are the scalar rows' bits. */
static void test_wkv7_training_blocks(void) {
    enum { B = 2, TMAX = 37, H = 2, N = 32, A = H * N, CH = WKV7_CHUNK };
    rng_state = 11;
    static float r[B * TMAX * A], w[B * TMAX * A], k[B * TMAX * A], v[B * TMAX * A], a[B * TMAX * A],
        b[B * TMAX * A], y[B * TMAX * A], ys[B * TMAX * A], S[H * N * N];
    for (int T = 35; T <= TMAX; T += 2) {
        const int n = B * T * A, chunks = (T + CH - 1) / CH;
        fill(r, n, -1, 1), fill(k, n, -1, 1), fill(v, n, -1, 1), fill(w, n, 0.55f, 1);
        fill(a, n, -0.2f, 0.2f), fill(b, n, -0.2f, 0.2f);
        float *ckpt = malloc(sizeof(float) * wkv7_checkpoint_floats(B, T, H, N));
        float *scratch = malloc(sizeof(float) * wkv7_scratch_floats(N, 2));
        CHECK(ckpt && scratch, "out of memory");
        wkv7_forward_batch(B, T, H, N, r, w, k, v, a, b, ckpt, y, scratch, 2);
        for (int bi = 0; bi < B; bi++) {
            memset(S, 0, sizeof S);
            for (int c = 0; c < chunks; c++) {
                const size_t o = ((size_t)bi * T + (size_t)c * CH) * A;
                for (int h = 0; h < H; h++) {
                    const float *saved = ckpt + (((size_t)bi * H + h) * chunks + c) * N * N;
                    CHECK(memcmp(saved, S + (size_t)h * N * N, sizeof(float) * N * N) == 0,
                          "T %d: sequence %d head %d, the checkpoint of chunk %d differs", T, bi, h, c);
                }
                const int len = T - c * CH < CH ? T - c * CH : CH;
                wkv7_forward_with(&kernels_scalar, len, H, N, r + o, w + o, k + o, v + o, a + o, b + o, S, ys + o, 1);
            }
        }
        CHECK(memcmp(y, ys, sizeof(float) * n) == 0, "T %d: the training forward differs from the scalar rows", T);
        free(ckpt), free(scratch);
    }
}

/* ---- RWKV-7 training: batch forward and backward ---------------------------- */

enum { W7B = 2, W7T = 37, W7H = 2, W7N = 5, W7A = W7H * W7N, W7X = W7B * W7T * W7A };

/* The six inputs of the operator, [B][T][A] each: r, w, k, v, a, b. */
static void wkv7_inputs(double *in[6]) {
    for (int i = 0; i < W7X; i++) {
        in[0][i] = uniform(-1, 1);
        in[1][i] = uniform(0.55f, 1.0f); /* the range of RWKV-7's decay */
        in[2][i] = uniform(-1, 1);
        in[3][i] = uniform(-1, 1);
    }
    for (int n = 0; n < W7B * W7T; n++)
        for (int h = 0; h < W7H; h++) { /* a = -kappa, b = kappa * alpha, unit-norm kappa */
            double kap[W7N], ss = 0;
            for (int j = 0; j < W7N; j++) kap[j] = uniform(-1, 1), ss += kap[j] * kap[j];
            for (int j = 0; j < W7N; j++) {
                const size_t o = (size_t)n * W7A + (size_t)h * W7N + j;
                in[4][o] = -kap[j] / sqrt(ss);
                in[5][o] = kap[j] / sqrt(ss) * uniform(0, 1);
            }
        }
}

/* The reference in double, every state kept: L = sum y * g, and (when grad
 * is not NULL) dL/d of each input by the plain reverse sweep. */
static double wkv7_reference(double *const in[6], const double *g, double *const grad[6]) {
    const double *r = in[0], *w = in[1], *k = in[2], *v = in[3], *a = in[4], *b = in[5];
    static double S[W7T + 1][W7N][W7N], dS[W7N][W7N];
    double L = 0;
    for (int bi = 0; bi < W7B; bi++)
        for (int h = 0; h < W7H; h++) {
            memset(S[0], 0, sizeof S[0]);
            for (int t = 0; t < W7T; t++) {
                const size_t o = ((size_t)bi * W7T + t) * W7A + (size_t)h * W7N;
                for (int i = 0; i < W7N; i++) {
                    double sa = 0, y = 0;
                    for (int j = 0; j < W7N; j++) sa += S[t][i][j] * a[o + j];
                    for (int j = 0; j < W7N; j++) {
                        S[t + 1][i][j] = S[t][i][j] * w[o + j] + sa * b[o + j] + v[o + i] * k[o + j];
                        y += S[t + 1][i][j] * r[o + j];
                    }
                    L += y * g[o + i];
                }
            }
            if (!grad) continue;
            memset(dS, 0, sizeof dS);
            for (int t = W7T - 1; t >= 0; t--) {
                const size_t o = ((size_t)bi * W7T + t) * W7A + (size_t)h * W7N;
                for (int q = 0; q < 6; q++)
                    for (int j = 0; j < W7N; j++) grad[q][o + j] = 0;
                for (int i = 0; i < W7N; i++) {
                    double sa = 0, dsa = 0;
                    for (int j = 0; j < W7N; j++) {
                        sa += S[t][i][j] * a[o + j];
                        grad[0][o + j] += S[t + 1][i][j] * g[o + i];
                        dS[i][j] += g[o + i] * r[o + j];
                    }
                    for (int j = 0; j < W7N; j++) {
                        grad[1][o + j] += dS[i][j] * S[t][i][j];
                        grad[2][o + j] += dS[i][j] * v[o + i];
                        grad[3][o + i] += dS[i][j] * k[o + j];
                        grad[5][o + j] += dS[i][j] * sa;
                        dsa += dS[i][j] * b[o + j];
                    }
                    for (int j = 0; j < W7N; j++) {
                        grad[4][o + j] += dsa * S[t][i][j];
                        dS[i][j] = dS[i][j] * w[o + j] + dsa * a[o + j];
                    }
                }
            }
        }
    return L;
}

static void test_wkv7_training(void) {
    rng_state = 7;
    static double ind[6][W7X], gd[W7X], gradd[6][W7X];
    static float inf[6][W7X], dy[W7X], y[W7X], y_inf[W7X], gf[6][W7X], gf4[6][W7X];
    double *in[6], *grad[6];
    for (int q = 0; q < 6; q++) in[q] = ind[q], grad[q] = gradd[q];
    wkv7_inputs(in);
    for (int i = 0; i < W7X; i++) gd[i] = uniform(-1, 1);
    for (int q = 0; q < 6; q++)
        for (int i = 0; i < W7X; i++) inf[q][i] = (float)ind[q][i], ind[q][i] = inf[q][i];
    for (int i = 0; i < W7X; i++) dy[i] = (float)gd[i];
    wkv7_reference(in, gd, grad);

    float *ckpt = malloc(sizeof(float) * wkv7_checkpoint_floats(W7B, W7T, W7H, W7N));
    float *scratch = malloc(sizeof(float) * wkv7_scratch_floats(W7N, 4));
    CHECK(ckpt && scratch, "out of memory");
    /* the batch forward gives the inference kernel's bits, sequence by sequence */
    wkv7_forward_batch(W7B, W7T, W7H, W7N, inf[0], inf[1], inf[2], inf[3], inf[4], inf[5], ckpt, y, scratch, 3);
    for (int bi = 0; bi < W7B; bi++) {
        float S[W7H * W7N * W7N] = {0};
        const size_t o = (size_t)bi * W7T * W7A;
        wkv7_forward(W7T, W7H, W7N, inf[0] + o, inf[1] + o, inf[2] + o, inf[3] + o, inf[4] + o, inf[5] + o, S,
                     y_inf + o, 1);
    }
    int same = memcmp(y, y_inf, sizeof y) == 0;
    free(ckpt), free(scratch);
    CHECK(same, "wkv7_forward_batch differs from wkv7_forward");

    for (int nt = 1; nt <= 4; nt += 3) {
        ckpt = malloc(sizeof(float) * wkv7_checkpoint_floats(W7B, W7T, W7H, W7N));
        scratch = malloc(sizeof(float) * wkv7_scratch_floats(W7N, nt));
        CHECK(ckpt && scratch, "out of memory");
        float(*out)[W7X] = nt == 1 ? gf : gf4;
        wkv7_forward_batch(W7B, W7T, W7H, W7N, inf[0], inf[1], inf[2], inf[3], inf[4], inf[5], ckpt, y, scratch,
                           nt);
        wkv7_backward(W7B, W7T, W7H, W7N, inf[0], inf[1], inf[2], inf[3], inf[4], inf[5], ckpt, dy, out[0], out[1],
                      out[2], out[3], out[4], out[5], scratch, nt);
        free(ckpt), free(scratch);
    }
    CHECK(memcmp(gf, gf4, sizeof gf) == 0, "wkv7_backward: the thread count changed the result");
    static const char *const names[6] = {"r", "w", "k", "v", "a", "b"};
    for (int q = 0; q < 6; q++) {
        float want[W7X];
        for (int i = 0; i < W7X; i++) want[i] = (float)gradd[q][i];
        double ratio = tol_ratio(gf[q], want, W7X, 1e-5, 1e-4);
        CHECK(ratio <= 1, "wkv7_backward d%s vs the double reference: ratio %.3g", names[q], ratio);
    }
    /* the double reverse sweep against central differences of the double forward */
    for (int q = 0; q < 6; q++)
        for (int probe = 0; probe < 8; probe++) {
            const int i = (int)(urand() * W7X);
            const double keep = ind[q][i], hstep = 1e-6;
            ind[q][i] = keep + hstep;
            const double lp = wkv7_reference(in, gd, NULL);
            ind[q][i] = keep - hstep;
            const double lm = wkv7_reference(in, gd, NULL);
            ind[q][i] = keep;
            const double fd = (lp - lm) / (2 * hstep);
            CHECK(fabs(fd - gradd[q][i]) <= 1e-6 + 1e-6 * fabs(fd), "d%s[%d]: reverse sweep %.9g, differences %.9g",
                  names[q], i, gradd[q][i], fd);
        }
}

/* Every variant's backward against the scalar reference, at head sizes with
 * and without SIMD tails and T across chunk boundaries. The SIMD builds fuse
 * multiply-adds, so they agree within rounding, not bit for bit. */
static void test_wkv7_backward_variants(void) {
    enum { B = 2, T = 37, H = 2 };
    static const int sizes[] = {5, 16, 64};
    rng_state = 11;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int N = sizes[si];
        const size_t X = (size_t)B * T * H * N;
        float *buf = malloc(sizeof(float) * X * 20);
        float *ckpt = malloc(sizeof(float) * wkv7_checkpoint_floats(B, T, H, N));
        float *scratch = malloc(sizeof(float) * wkv7_scratch_floats(N, 2));
        CHECK(buf && ckpt && scratch, "out of memory");
        float *in[6], *dy = buf + 6 * X, *y = buf + 7 * X, *ref[6], *got[6];
        for (int q = 0; q < 6; q++) in[q] = buf + (size_t)q * X, ref[q] = buf + (8 + (size_t)q) * X,
                                     got[q] = buf + (14 + (size_t)q) * X;
        for (size_t i = 0; i < X; i++) {
            in[0][i] = uniform(-1, 1), in[1][i] = uniform(0.55f, 1.0f), in[2][i] = uniform(-1, 1);
            in[3][i] = uniform(-1, 1), dy[i] = uniform(-1, 1);
        }
        for (size_t n = 0; n < X / N; n++) { /* a = -kappa, b = kappa * alpha, unit-norm kappa */
            float ss = 0;
            for (int j = 0; j < N; j++) in[4][n * N + j] = uniform(-1, 1), ss += in[4][n * N + j] * in[4][n * N + j];
            for (int j = 0; j < N; j++) {
                in[4][n * N + j] /= -sqrtf(ss);
                in[5][n * N + j] = -in[4][n * N + j] * uniform(0, 1);
            }
        }
        wkv7_forward_batch(B, T, H, N, in[0], in[1], in[2], in[3], in[4], in[5], ckpt, y, scratch, 2);
        wkv7_backward_with(&kernels_scalar, B, T, H, N, in[0], in[1], in[2], in[3], in[4], in[5], ckpt, dy, ref[0],
                           ref[1], ref[2], ref[3], ref[4], ref[5], scratch, 2);
        for (const kernel_ops *const *kv = kernels_all(); *kv; kv++) {
            if (!kernels_cpu_supports((*kv)->name)) continue;
            wkv7_backward_with(*kv, B, T, H, N, in[0], in[1], in[2], in[3], in[4], in[5], ckpt, dy, got[0], got[1],
                               got[2], got[3], got[4], got[5], scratch, 2);
            for (int q = 0; q < 6; q++) {
                float scale = 0;
                for (size_t i = 0; i < X; i++) scale = fmaxf(scale, fabsf(ref[q][i]));
                const double ratio = tol_ratio(got[q], ref[q], X, 1e-5 * scale, 1e-4);
                CHECK(ratio <= 1, "wkv7 backward %s, N %d, input %d: ratio %.3g to the scalar reference",
                      (*kv)->name, N, q, ratio);
            }
        }
        free(buf), free(ckpt), free(scratch);
    }
}

int main(void) {
    RUN(test_wkv4_variants);
    RUN(test_wkv4_channel_ranges);
    RUN(test_wkv4_vector);
    RUN(test_wkv4_finite_differences);
    RUN(test_wkv4_backward_variants);
    RUN(test_wkv5_wkv7);
    RUN(test_wkv7_blocks);
    RUN(test_wkv7_training_blocks);
    RUN(test_wkv7_training);
    RUN(test_wkv7_backward_variants);
    return test_summary();
}
