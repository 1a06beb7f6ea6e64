/* Forward/backward pairs of the RWKV-4 layers (docs/training-math.md).
 * Row-wise work is split over rows; sums over rows (parameter gradients of
 * vectors) are split over stripes of CS columns, each stripe summing its
 * rows in order in double, so results never depend on the thread count. */
#include "train/layers.h"

#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_train.h"

#define LN_EPS 1e-5f

enum { CS = 16 }; /* columns per stripe: one cache line per row */
static const float zero_row[CS];

#define NT(nt) num_threads((nt) > 0 ? (nt) : 1)

/* ---- embedding (§1.2: x = E[tok]) ------------------------------------- */

void embedding_forward(const float *E, const int *tok, int N, int C, float *out, int nt) {
#pragma omp parallel for NT(nt) schedule(static)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, E + (size_t)tok[n] * C, sizeof(float) * (size_t)C);
}

void embedding_backward(const float *dout, const int *tok, int N, int C, float *dE, int nt) {
    const int stripes = (C + CS - 1) / CS;
#pragma omp parallel for NT(nt) schedule(static)
    for (int s = 0; s < stripes; s++) {
        const int c0 = s * CS, w = C - c0 < CS ? C - c0 : CS;
        for (int n = 0; n < N; n++) {
            const float *g = dout + (size_t)n * C + c0;
            float *e = dE + (size_t)tok[n] * C + c0;
#pragma omp simd
            for (int j = 0; j < w; j++) e[j] += g[j];
        }
    }
}

/* ---- layernorm (§0) ----------------------------------------------------- */

void layernorm_forward(const float *x, const float *w, const float *b, int N, int C, float *y,
                       int nt) {
#pragma omp parallel for NT(nt) schedule(static)
    for (int n = 0; n < N; n++) layernorm(x + (size_t)n * C, w, b, C, LN_EPS, y + (size_t)n * C);
}

/* With x̂ = (x - mean)·rstd and g = dy ⊙ w:
 *   dx = rstd·(g - mean(g) - x̂·mean(g ⊙ x̂)),  dw = Σ_n dy ⊙ x̂,  db = Σ_n dy. */
void layernorm_backward(const float *x, const float *w, const float *dy, int N, int C, float *dx,
                        float *dw, float *db, float *stats, int nt) {
#pragma omp parallel for NT(nt) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C, *g = dy + (size_t)n * C;
        double sum = 0, sq = 0;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < C; i++) sum += xr[i];
        const double mean = sum / C;
#pragma omp simd reduction(+ : sq)
        for (int i = 0; i < C; i++) sq += (xr[i] - mean) * (xr[i] - mean);
        const double rstd = 1.0 / sqrt(sq / C + LN_EPS);
        double m1 = 0, m2 = 0;
#pragma omp simd reduction(+ : m1, m2)
        for (int i = 0; i < C; i++) {
            const double gi = (double)g[i] * w[i];
            m1 += gi;
            m2 += gi * (xr[i] - mean) * rstd;
        }
        m1 /= C;
        m2 /= C;
        float *d = dx + (size_t)n * C;
#pragma omp simd
        for (int i = 0; i < C; i++) {
            const double xh = (xr[i] - mean) * rstd;
            d[i] += (float)(rstd * ((double)g[i] * w[i] - m1 - xh * m2));
        }
        stats[2 * (size_t)n] = (float)mean;
        stats[2 * (size_t)n + 1] = (float)rstd;
    }
    const int stripes = (C + CS - 1) / CS;
#pragma omp parallel for NT(nt) schedule(static)
    for (int s = 0; s < stripes; s++) {
        const int c0 = s * CS, wd = C - c0 < CS ? C - c0 : CS;
        double aw[CS] = {0}, ab[CS] = {0};
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * C + c0, *g = dy + (size_t)n * C + c0;
            const float mean = stats[2 * (size_t)n], rstd = stats[2 * (size_t)n + 1];
#pragma omp simd
            for (int j = 0; j < wd; j++) {
                aw[j] += (double)g[j] * ((xr[j] - mean) * rstd);
                ab[j] += g[j];
            }
        }
        for (int j = 0; j < wd; j++) {
            dw[c0 + j] += (float)aw[j];
            db[c0 + j] += (float)ab[j];
        }
    }
}

/* ---- token shift + mix (§1.2) ------------------------------------------- */

void token_shift_forward(const float *z, const float *mu, int B, int T, int C, const float *zeros,
                         float *out, int nt) {
#pragma omp parallel for NT(nt) schedule(static)
    for (int n = 0; n < B * T; n++) {
        const float *prev = n % T ? z + (size_t)(n - 1) * C : zeros;
        token_mix(z + (size_t)n * C, prev, mu, C, out + (size_t)n * C);
    }
}

void token_shift_backward(const float *dout, const float *z, const float *mu, int B, int T, int C,
                          float *dz, int accumulate, float *dmu, int nt) {
    const int stripes = (C + CS - 1) / CS;
#pragma omp parallel for NT(nt) schedule(static)
    for (int s = 0; s < stripes; s++) {
        const int c0 = s * CS, w = C - c0 < CS ? C - c0 : CS;
        double am[CS] = {0};
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const size_t r = ((size_t)b * T + t) * C + c0;
                const float *g = dout + r, *gnext = t + 1 < T ? g + C : zero_row;
                const float *zc = z + r, *zprev = t > 0 ? zc - C : zero_row;
                float *d = dz + r;
#pragma omp simd
                for (int j = 0; j < w; j++) am[j] += (double)g[j] * (zc[j] - zprev[j]);
                if (accumulate) {
#pragma omp simd
                    for (int j = 0; j < w; j++) d[j] += mu[c0 + j] * g[j] + (1.0f - mu[c0 + j]) * gnext[j];
                } else {
#pragma omp simd
                    for (int j = 0; j < w; j++) d[j] = mu[c0 + j] * g[j] + (1.0f - mu[c0 + j]) * gnext[j];
                }
            }
        for (int j = 0; j < w; j++) dmu[c0 + j] += (float)am[j];
    }
}

/* ---- linear (no bias) ----------------------------------------------------- */

void linear_forward(const float *W, int out, int in, const float *X, int N, float *Y, int nt) {
    const matrix m = {DT_F32, out, in, W};
    matmul(&m, X, N, Y, nt);
}

void linear_backward(const float *W, int out, int in, const float *X, const float *dY, int N,
                     float *dX, float *dW, int nt) {
    matmul_backward_weight(dY, X, N, out, in, dW, nt); /* before dX: dX may overwrite X */
    if (dX) matmul_backward_input(W, out, in, dY, N, dX, nt);
}

/* ---- elementwise ----------------------------------------------------------- */

void sigmoid_forward(float *x, size_t n, int nt) {
#pragma omp parallel for NT(nt) schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = sigmoidf(x[i]);
}

void gate_forward(const float *r, const float *val, float *out, size_t n, int nt) {
#pragma omp parallel for simd NT(nt) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = r[i] * val[i];
}

void sigmoid_gate_backward(const float *r, const float *val, const float *dout, float *dval,
                           float *dpre, size_t n, int nt) {
#pragma omp parallel for simd NT(nt) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float g = dout[i];
        dval[i] = g * r[i];
        dpre[i] = g * val[i] * r[i] * (1.0f - r[i]);
    }
}

/* Branch-free (the sign of k is random, a branch mispredicts half the time):
 * k + |k| is exactly 2·max(k, 0). */
void relu2_forward(const float *k, float *h, size_t n, int nt) {
#pragma omp parallel for simd NT(nt) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float a = 0.5f * (k[i] + fabsf(k[i]));
        h[i] = a * a;
    }
}

void relu2_backward(const float *k, const float *dh, float *dk, size_t n, int nt) {
#pragma omp parallel for simd NT(nt) schedule(static)
    for (size_t i = 0; i < n; i++) dk[i] = (k[i] + fabsf(k[i])) * dh[i];
}

void residual_forward(const float *x, const float *a, float *y, size_t n, int nt) {
#pragma omp parallel for simd NT(nt) schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = x[i] + a[i];
}

/* ---- softmax cross-entropy and L2Wrap (§1.2, §3.3) --------------------------- */

void cross_entropy_forward(const float *logits, const int *targets, int N, int V, float *row_loss,
                           float *lse, int nt) {
#pragma omp parallel for NT(nt) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float mx = l[0];
        for (int j = 1; j < V; j++) mx = l[j] > mx ? l[j] : mx;
        double sum = 0;
        for (int j = 0; j < V; j++) sum += expf(l[j] - mx);
        const double s = (double)mx + log(sum);
        lse[n] = (float)s;
        row_loss[n] = (float)(s - l[targets[n]]);
    }
}

void cross_entropy_backward(float *logits, const int *targets, const float *lse, int N, int V,
                            float l2wrap, int nt) {
    const float inv_n = 1.0f / (float)N;
#pragma omp parallel for NT(nt) schedule(static)
    for (int n = 0; n < N; n++) {
        float *l = logits + (size_t)n * V;
        int jmax = 0;
        for (int j = 1; j < V; j++)
            if (l[j] > l[jmax]) jmax = j;
        const float top = l[jmax];
        for (int j = 0; j < V; j++) l[j] = expf(l[j] - lse[n]) * inv_n;
        l[targets[n]] -= inv_n;
        l[jmax] += l2wrap * top * inv_n; /* L2Wrap: d/dy of (l2wrap/2N)·max(y)² */
    }
}
