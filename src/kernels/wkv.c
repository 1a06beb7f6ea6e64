#include "kernels/kernels.h"

/* The stable WKV recurrence (docs/rwkv-architecture.md §1.3): the state is
 * (a, b, p) with true numerator e^p·a and denominator e^p·b, so every
 * exponent below is <= 0 and nothing overflows even when |k| > 88.
 *   output: q = max(p, u+k);  y = (e^{p-q} a + e^{u+k-q} v) / (e^{p-q} b + e^{u+k-q})
 *   update: q = max(p+d, k);  a = e^{p+d-q} a + e^{k-q} v;  b = e^{p+d-q} b + e^{k-q};  p = q
 * Channels are independent; time is the inner loop per channel. */
void wkv_forward_scalar(int T, int C, const float *d, const float *u, const float *k, const float *v,
                 float *aa, float *bb, float *pp, float *y) {
    for (int c = 0; c < C; c++) {
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

void wkv_forward(int T, int C, const float *d, const float *u, const float *k, const float *v,
                 float *aa, float *bb, float *pp, float *y) {
    kernels_active()->wkv_forward(T, C, d, u, k, v, aa, bb, pp, y);
}
