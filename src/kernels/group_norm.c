/* GN_H (docs/model.md §0): a layer norm per head, with the
 * per-channel affine of ln_x. The epsilon is the caller's (the model's
 * origin decides it, see docs/rwkv-versions.md), never a constant here. */
#include "kernels/kernels.h"

void group_norm(const float *x, const float *w, const float *b, int H, int N, float eps, float *y) {
    for (int h = 0; h < H; h++) {
        size_t o = (size_t)h * (size_t)N;
        layernorm(x + o, w + o, b + o, N, eps, y + o);
    }
}
