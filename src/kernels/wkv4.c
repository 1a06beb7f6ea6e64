/* RWKV-4's WKV: inference forward, training forward over a batch, and its
 * backward.
 *
 * Per channel (channels are independent), with d = -exp(time_decay) < 0 the
 * per-step log decay and u = time_first, the output at step t is the
 * softmax-weighted mean of the values seen so far:
 *
 *     y_t = (sum_{i<t} e^{(t-1-i)d + k_i} v_i + e^{u+k_t} v_t) / D_t,
 *     D_t =  sum_{i<t} e^{(t-1-i)d + k_i}     + e^{u+k_t}
 *
 * Forward, the stable recurrence: the state is (a, b, p) with true
 * numerator e^p·a and denominator e^p·b, so every exponent below is <= 0
 * and nothing overflows even when |k| > 88:
 *
 *     output: q = max(p, u+k);  y = (e^{p-q} a + e^{u+k-q} v) / (e^{p-q} b + e^{u+k-q})
 *     update: q = max(p+d, k);  a = e^{p+d-q} a + e^{k-q} v;  b = e^{p+d-q} b + e^{k-q};  p = q
 *
 * Backward of L = sum_t g_t y_t (g = dL/dy), two sweeps per channel:
 *
 *   sweep 1, t = 0..T-1: the forward again, with the derivatives of the
 *   numerator and denominator sums by d (a' = e^d (a + a'), b' likewise),
 *   giving
 *       dL/dd = sum_t g_t (a'_t - y_t b'_t) / D_t,
 *       dL/du = sum_t g_t e^{u+k_t} (v_t - y_t) / D_t;
 *   sweep 2, j = T-1..0: the sums over later steps
 *       P_j = sum_{t>j} e^{(t-1-j)d} g_t / D_t,   Q_j = sum_{t>j} e^{(t-1-j)d} g_t y_t / D_t
 *   (P_{j-1} = e^d P_j + g_j / D_j, Q likewise with g_j y_j), giving
 *       dL/dk_j = g_j e^{u+k_j} (v_j - y_j) / D_j + e^{k_j} (P_j v_j - Q_j),
 *       dL/dv_j = g_j e^{u+k_j} / D_j + e^{k_j} P_j.
 *   Both sweeps keep their sums scaled by a running maximum exponent, as the
 *   forward does. Since d = -e^θ, dL/dθ = d · dL/dd.
 *
 * The inference forward runs the active table's variant (kernel_ops.wkv4_forward);
 * the training pair is scalar only. */
#include "kernels/kernels.h"
#include "kernels/wkv.h"

void wkv4_forward_scalar(int T, int C, int c0, int c1, const float *d, const float *u, const float *k,
                         const float *v, float *aa, float *bb, float *pp, float *y) {
    for (int c = c0; c < c1; c++) {
        float a = aa[c], b = bb[c], p = pp[c];
        const float dc = d[c], uc = u[c];
        for (int t = 0; t < T; t++) {
            const float kt = k[(size_t)t * C + c], vt = v[(size_t)t * C + c];
            float ww = uc + kt;
            float q = p > ww ? p : ww;
            float e1 = expf(p - q), e2 = expf(ww - q);
            y[(size_t)t * C + c] = (e1 * a + e2 * vt) / (e1 * b + e2);
            ww = p + dc;
            q = ww > kt ? ww : kt;
            e1 = expf(ww - q);
            e2 = expf(kt - q);
            a = e1 * a + e2 * vt;
            b = e1 * b + e2;
            p = q;
        }
        aa[c] = a;
        bb[c] = b;
        pp[c] = p;
    }
}

void wkv4_forward(int T, int C, const float *d, const float *u, const float *k, const float *v,
                  float *aa, float *bb, float *pp, float *y) {
    kernels_active()->wkv4_forward(T, C, d, u, k, v, aa, bb, pp, y);
}

/* ---- training: a batch of rows from the zero state, and the backward ----
 *
 * Layout [B][T][C]. The backward splits the channels into blocks of CB
 * adjacent channels (one cache line of each time step); inside a block time
 * is the outer loop and the channels the inner one. The B rows of one
 * channel block are handled by one thread in order, so the sums over rows
 * (dθ, du) are the same whatever the thread count. */

#define EMPTY_P WKV4_EMPTY_P

enum { CB = WKV4_GRAD_CHANNELS };

/* The forward's operands: one row b per unit of work on the thread pool
 * (parallel_rows, kernels/pool.c). */
typedef struct wkv_args {
    const float *d, *u, *k, *v;
    float *state, *out;
    int B, T, C;
} wkv_args;

static void wkv_forward_row(void *p, int b) {
    const wkv_args *a = p;
    const int T = a->T, C = a->C;
    float *aa = a->state + (size_t)3 * b * C, *bb = aa + C, *pp = bb + C;
    for (int c = 0; c < C; c++) {
        aa[c] = bb[c] = 0.0f;
        pp[c] = EMPTY_P;
    }
    const size_t o = (size_t)b * T * C;
    wkv4_forward(T, C, a->d, a->u, a->k + o, a->v + o, aa, bb, pp, a->out + o);
}

void wkv4_forward_batch(int B, int T, int C, const float *d, const float *u, const float *k,
                       const float *v, float *state, float *y, int n_threads) {
    wkv_args a = {.d = d, .u = u, .k = k, .v = v, .state = state, .out = y, .B = B, .T = T, .C = C};
    /* k, v, y of a row, and a few exponentials per element */
    parallel_rows(n_threads, B, 6 * (size_t)T * C, wkv_forward_row, &a);
}

/* Channels [c0, c0 + CB) over all B rows, in row order. */
void wkv4_backward_block_scalar(const wkv4_grad *g, int c0) {
    const int B = g->B, T = g->T, C = g->C;
    const float *d = g->d, *u = g->u, *k = g->k, *v = g->v, *y = g->y, *gy = g->gy;
    float *gk = g->gk, *gv = g->gv, *gtheta = g->gtheta, *gu = g->gu;
    const int nc = C - c0 < CB ? C - c0 : CB;
    double sum_gd[CB] = {0}, sum_gu[CB] = {0}; /* Σ over rows of Gd, Gu */
    for (int b = 0; b < B; b++) {
        const size_t o = (size_t)b * T * C + (size_t)c0;
        /* Sweep 1, t = 0..T-1: the forward recurrence again, with the
         * derivative sums a', b' (true α' = e^p a', β' = e^p b'). Stores
         * s_t = g_t e^q / D_t in gk and q_t in gv (q_t gives sweep 2 the
         * exact exponent -q_t of g_t / D_t). */
        float a[CB], bs[CB], ad[CB], bd[CB], p[CB];
        double gd_row[CB], gu_row[CB];
        for (int i = 0; i < nc; i++) {
            a[i] = bs[i] = ad[i] = bd[i] = 0.0f;
            p[i] = EMPTY_P;
            gd_row[i] = gu_row[i] = 0.0;
        }
        for (int t = 0; t < T; t++) {
            const size_t r = o + (size_t)t * C;
            for (int i = 0; i < nc; i++) {
                const float kt = k[r + i], vt = v[r + i], yt = y[r + i];
                /* of each pair of exponentials below one is e^0 = 1 (max) */
                const float uk = u[c0 + i] + kt;
                float q, e1, e2;
                if (p[i] > uk) q = p[i], e1 = 1.0f, e2 = expf(uk - p[i]);
                else q = uk, e1 = expf(p[i] - uk), e2 = 1.0f;
                const float s = gy[r + i] / (e1 * bs[i] + e2);
                gd_row[i] += (double)((ad[i] - yt * bd[i]) * e1 * s);
                gu_row[i] += (double)((vt - yt) * e2 * s);
                gk[r + i] = s;
                gv[r + i] = q;
                const float pd = p[i] + d[c0 + i];
                float q2, f1, f2;
                if (pd > kt) q2 = pd, f1 = 1.0f, f2 = expf(kt - pd);
                else q2 = kt, f1 = expf(pd - kt), f2 = 1.0f;
                ad[i] = f1 * (a[i] + ad[i]);
                bd[i] = f1 * (bs[i] + bd[i]);
                a[i] = f1 * a[i] + f2 * vt;
                bs[i] = f1 * bs[i] + f2;
                p[i] = q2;
            }
        }
        for (int i = 0; i < nc; i++) {
            sum_gd[i] += gd_row[i];
            sum_gu[i] += gu_row[i];
        }
        /* Sweep 2, j = T-1..0: P_j, Q_j held as (P~, Q~) sharing the
         * exponent P (p[] reused); true P = e^P P~. */
        float *Pt = a, *Qt = bs;
        for (int i = 0; i < nc; i++) {
            Pt[i] = Qt[i] = 0.0f;
            p[i] = EMPTY_P;
        }
        for (int j = T - 1; j >= 0; j--) {
            const size_t r = o + (size_t)j * C;
            for (int i = 0; i < nc; i++) {
                const float kj = k[r + i], vj = v[r + i], yj = y[r + i];
                const float s = gk[r + i], q = gv[r + i];
                const float c1 = s * expf(u[c0 + i] + kj - q); /* g_j e^{u+k_j} / D_j */
                const float c2 = expf(kj + p[i]);
                gk[r + i] = c1 * (vj - yj) + c2 * (Pt[i] * vj - Qt[i]);
                gv[r + i] = c1 + c2 * Pt[i];
                const float E = -q; /* g_j / D_j = s_j e^E */
                const float pd = p[i] + d[c0 + i];
                float M, f1, f2;
                if (pd > E) M = pd, f1 = 1.0f, f2 = s * expf(E - pd);
                else M = E, f1 = expf(pd - E), f2 = s;
                Pt[i] = f1 * Pt[i] + f2;
                Qt[i] = f1 * Qt[i] + f2 * yj;
                p[i] = M;
            }
        }
    }
    for (int i = 0; i < nc; i++) {
        gtheta[c0 + i] += (float)((double)d[c0 + i] * sum_gd[i]); /* ∂θ = d·∂d */
        gu[c0 + i] += (float)sum_gu[i];
    }
}

typedef struct wkv_grad_job {
    wkv4_grad g;
    void (*block)(const wkv4_grad *g, int c0);
} wkv_grad_job;

static void wkv_backward_block(void *ctx, int blk) {
    const wkv_grad_job *j = ctx;
    j->block(&j->g, blk * CB);
}

void wkv4_backward_with(const kernel_ops *ops, int B, int T, int C, const float *d, const float *u, const float *k,
                        const float *v, const float *y, const float *gy, float *gk, float *gv, float *gtheta,
                        float *gu, int n_threads) {
    wkv_grad_job j = {{B, T, C, d, u, k, v, y, gy, gk, gv, gtheta, gu}, ops->wkv4_backward_block};
    /* two sweeps over k, v, y, gy, gk, gv, with several exponentials each */
    parallel_rows(n_threads, (C + CB - 1) / CB, 16 * (size_t)B * T * CB, wkv_backward_block, &j);
}

void wkv4_backward(int B, int T, int C, const float *d, const float *u, const float *k,
                  const float *v, const float *y, const float *gy, float *gk, float *gv,
                  float *gtheta, float *gu, int n_threads) {
    wkv4_backward_with(kernels_active(), B, T, C, d, u, k, v, y, gy, gk, gv, gtheta, gu, n_threads);
}
