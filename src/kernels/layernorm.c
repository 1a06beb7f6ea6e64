/* Layer norm, token-shift mix and the element-wise parts: the scalar
 * references, and the public entry points that run the active table's
 * variant (kernel_ops). */
#include "kernels/kernels.h"

/* docs/model.md §0: biased variance, eps inside the sqrt. Two
 * passes in float (mean first) so large offsets do not cancel. */
void layernorm_scalar(const float *x, const float *w, const float *b, int n, float eps, float *y) {
    float mean = 0.0f;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= (float)n;
    float var = 0.0f;
    for (int i = 0; i < n; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    var /= (float)n;
    float inv = 1.0f / sqrtf(var + eps);
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * w[i] + b[i];
}

void token_mix_scalar(const float *cur, const float *prev, const float *mu, int n, float *out) {
    for (int i = 0; i < n; i++) out[i] = mu[i] * cur[i] + (1.0f - mu[i]) * prev[i];
}

void relu_square_scalar(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float h = x[i] > 0.0f ? x[i] : 0.0f;
        x[i] = h * h;
    }
}

void sigmoid_mul_scalar(float *y, const float *r, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] *= sigmoidf(r[i]);
}

void sigmoid_scalar(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = sigmoidf(x[i]);
}

void exp_scalar(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = expf(x[i]);
}

void add_sigmoid_mul_scalar(float *x, const float *r, const float *v, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += sigmoidf(r[i]) * v[i];
}

void relu_square(float *x, size_t n) { kernels_active()->relu_square(x, n); }
void sigmoid_mul(float *y, const float *r, size_t n) { kernels_active()->sigmoid_mul(y, r, n); }
void add_sigmoid_mul(float *x, const float *r, const float *v, size_t n) {
    kernels_active()->add_sigmoid_mul(x, r, v, n);
}
void sigmoid_inplace(float *x, size_t n) { kernels_active()->sigmoid(x, n); }
void exp_inplace(float *x, size_t n) { kernels_active()->exp(x, n); }

void layernorm(const float *x, const float *w, const float *b, int n, float eps, float *y) {
    kernels_active()->layernorm(x, w, b, n, eps, y);
}

void token_mix(const float *cur, const float *prev, const float *mu, int n, float *out) {
    kernels_active()->token_mix(cur, prev, mu, n, out);
}
