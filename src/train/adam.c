#include "train/adam.h"

#include <math.h>
#include <stdlib.h>

#include "kernels/kernels.h"
#include "kernels/simd_clones.h"
#include "kernels/train_ops.h"

#define NORM_BLOCK 16384

/* One group's step over elements [i0, i1) (elementwise: any split of the
 * elements over threads gives the same result). */
typedef struct adam_args {
    float *p, *m, *v;
    const float *g;
    float lr, wd, grad_scale, b1, b2, c1, c2, eps;
} adam_args;

/* One element's update, over a range: every operand in a local (a store
 * into p may not be assumed to spare *a), the four arrays distinct and the
 * decay decided outside the loop, so the loop vectorizes (sqrtf too, the
 * build having no math errno) with each element's arithmetic unchanged. */
static inline __attribute__((always_inline)) void adam_elements(const adam_args *a, size_t i0, size_t i1,
                                                                 int decay) {
    float *restrict p = a->p, *restrict mm = a->m, *restrict vv = a->v;
    const float *restrict gr = a->g;
    const float b1 = a->b1, b2 = a->b2, scale = a->grad_scale, c1 = a->c1, c2 = a->c2, eps = a->eps;
    const float wd = a->wd, lr = a->lr;
#pragma omp simd
    for (size_t i = i0; i < i1; i++) {
        float gg = gr[i] * scale;
        float mi = b1 * mm[i] + (1.0f - b1) * gg;
        float vi = b2 * vv[i] + (1.0f - b2) * (gg * gg);
        mm[i] = mi;
        vv[i] = vi;
        float step = (mi * c1) / (sqrtf(vi * c2) + eps);
        if (decay) step += wd * p[i];
        p[i] -= lr * step;
    }
}

SIMD_CLONES
static void adam_range(void *ctx, size_t i0, size_t i1) {
    const adam_args *a = ctx;
    if (a->wd > 0.0f) adam_elements(a, i0, i1, 1);
    else adam_elements(a, i0, i1, 0);
}

void adam_update(float *params, const float *grads, float *m, float *v, const adam_group *groups,
                 int n_groups, float lr, float grad_scale, long t, const adam_hparams *h,
                 int n_threads) {
    const float b1 = h->beta1, b2 = h->beta2;
    const float c1 = (float)(1.0 / (1.0 - pow((double)b1, (double)t)));
    const float c2 = (float)(1.0 / (1.0 - pow((double)b2, (double)t)));
    /* a loop per group: the small ones (vectors) stay on the caller */
    for (int gi = 0; gi < n_groups; gi++) {
        const adam_group *g = &groups[gi];
        adam_args a = {params + g->offset, m + g->offset, v + g->offset, grads + g->offset,
                       lr * g->lr_scale, g->decay ? h->weight_decay : 0.0f, grad_scale, b1, b2, c1, c2, h->eps};
        parallel_range(n_threads, g->count, 4, adam_range, &a); /* p, m, v, g */
    }
}

typedef struct norm_args {
    const float *grads;
    size_t n;
    double *part;
} norm_args;

/* A block's sum of squares, in the lanes of the widest vector this CPU has
 * (the order of the additions follows the variant, the blocks do not). */
SIMD_CLONES
static double block_sumsq(const float *grads, size_t n, size_t b) {
    size_t lo = b * NORM_BLOCK, hi = lo + NORM_BLOCK < n ? lo + NORM_BLOCK : n;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (size_t i = lo; i < hi; i++) s += (double)grads[i] * (double)grads[i];
    return s;
}

static void norm_block(void *ctx, int b) {
    const norm_args *a = ctx;
    a->part[b] = block_sumsq(a->grads, a->n, (size_t)b);
}

double grad_global_norm(const float *grads, size_t n, int n_threads) {
    size_t nblocks = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    if (nblocks == 0) return 0.0;
    double total = 0.0;
    /* partial sums of fixed blocks, added in block order: the same result for
     * every thread count */
    double small[64];
    double *part = nblocks <= 64 ? small : malloc(nblocks * sizeof *part);
    if (!part) { /* no memory for the partials: one sequential pass, same blocks */
        for (size_t b = 0; b < nblocks; b++) total += block_sumsq(grads, n, b);
        return sqrt(total);
    }
    norm_args a = {grads, n, part};
    parallel_rows(n_threads, (int)nblocks, NORM_BLOCK, norm_block, &a);
    for (size_t b = 0; b < nblocks; b++) total += part[b];
    if (part != small) free(part);
    return sqrt(total);
}

float grad_clip_scale(double norm, double max_norm) {
    if (!(max_norm > 0.0) || !isfinite(norm)) return 1.0f;
    double c = max_norm / (norm + 1e-6);
    return c < 1.0 ? (float)c : 1.0f;
}
