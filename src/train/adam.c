#include "train/adam.h"

#include <math.h>
#include <stdlib.h>

#define NORM_BLOCK 16384

void adam_update(float *params, const float *grads, float *m, float *v, const adam_group *groups,
                 int n_groups, float lr, float grad_scale, long t, const adam_hparams *h,
                 int n_threads) {
    const float b1 = h->beta1, b2 = h->beta2, eps = h->eps;
    const float c1 = (float)(1.0 / (1.0 - pow((double)b1, (double)t)));
    const float c2 = (float)(1.0 / (1.0 - pow((double)b2, (double)t)));
    if (n_threads < 1) n_threads = 1;
#pragma omp parallel num_threads(n_threads)
    for (int gi = 0; gi < n_groups; gi++) {
        const adam_group *g = &groups[gi];
        const float lr_g = lr * g->lr_scale;
        const float wd = g->decay ? h->weight_decay : 0.0f;
        float *p = params + g->offset, *mm = m + g->offset, *vv = v + g->offset;
        const float *gr = grads + g->offset;
        const long n = (long)g->count;
#pragma omp for schedule(static) nowait
        for (long i = 0; i < n; i++) {
            float gg = gr[i] * grad_scale;
            float mi = b1 * mm[i] + (1.0f - b1) * gg;
            float vi = b2 * vv[i] + (1.0f - b2) * (gg * gg);
            mm[i] = mi;
            vv[i] = vi;
            float step = (mi * c1) / (sqrtf(vi * c2) + eps);
            if (wd > 0.0f) step += wd * p[i];
            p[i] -= lr_g * step;
        }
    }
}

double grad_global_norm(const float *grads, size_t n, int n_threads) {
    size_t nblocks = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    if (nblocks == 0) return 0.0;
    if (n_threads < 1) n_threads = 1;
    double total = 0.0;
    /* partial sums of fixed blocks, added in block order: the same result for
     * every thread count */
    double small[64];
    double *part = nblocks <= 64 ? small : malloc(nblocks * sizeof *part);
    int heap = part != small;
    if (!part) { /* no memory for the partials: one sequential pass, same blocks */
        for (size_t b = 0; b < nblocks; b++) {
            size_t lo = b * NORM_BLOCK, hi = lo + NORM_BLOCK < n ? lo + NORM_BLOCK : n;
            double s = 0.0;
            for (size_t i = lo; i < hi; i++) s += (double)grads[i] * (double)grads[i];
            total += s;
        }
        return sqrt(total);
    }
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (long b = 0; b < (long)nblocks; b++) {
        size_t lo = (size_t)b * NORM_BLOCK, hi = lo + NORM_BLOCK < n ? lo + NORM_BLOCK : n;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) s += (double)grads[i] * (double)grads[i];
        part[b] = s;
    }
    for (size_t b = 0; b < nblocks; b++) total += part[b];
    if (heap) free(part);
    return sqrt(total);
}

float grad_clip_scale(double norm, double max_norm) {
    if (!(max_norm > 0.0) || !isfinite(norm)) return 1.0f;
    double c = max_norm / (norm + 1e-6);
    return c < 1.0 ? (float)c : 1.0f;
}
