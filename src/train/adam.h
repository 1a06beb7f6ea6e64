/* Adam with bias correction (docs/model.md §3.3), the global
 * gradient norm and its clipping, over flat float32 buffers. Every result is
 * independent of the thread count: updates are elementwise and the norm is
 * summed in fixed-size blocks whose partial sums are added in order. */
#ifndef RWKV_TRAIN_ADAM_H
#define RWKV_TRAIN_ADAM_H

#include <stddef.h>

typedef struct adam_hparams {
    float beta1, beta2, eps;
    float weight_decay; /* decoupled (AdamW-style) when > 0 */
} adam_hparams;

/* One group of parameters sharing an LR scale. */
typedef struct adam_group {
    size_t offset, count; /* in floats, into the flat buffers */
    float lr_scale;
    int decay;            /* 1: weight decay applies to this group */
} adam_group;

/* One Adam step number `t` (1-based) over every group:
 *   g = grad_scale * grads
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr_g * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)  [+ lr_g * wd * p]
 * with lr_g = lr * group.lr_scale. */
void adam_update(float *params, const float *grads, float *m, float *v, const adam_group *groups,
                 int n_groups, float lr, float grad_scale, long t, const adam_hparams *h,
                 int n_threads);

/* sqrt(sum g^2) over n floats, accumulated in double over fixed blocks; NaN or
 * Inf when any element is not finite. */
double grad_global_norm(const float *grads, size_t n, int n_threads);

/* The clipping factor of PyTorch's clip_grad_norm_: max_norm / (norm + 1e-6)
 * when that is below 1, else 1 (and 1 when max_norm <= 0). */
float grad_clip_scale(double norm, double max_norm);

#endif
