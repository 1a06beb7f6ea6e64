/* Matrix-vector product for decode: every weight is read once per token, so
 * this is bound by memory bandwidth; rows are split across threads. */
#include <stdint.h>

#include "kernels/kernels.h"

/* Dot product of one stored row with x, converting on the fly. */
static float row_dot(dtype t, const void *row, const float *x, int n) {
    float acc = 0.0f;
    switch (t) {
    case DT_F32: {
        const float *w = row;
        for (int i = 0; i < n; i++) acc += w[i] * x[i];
        return acc;
    }
    case DT_F16: {
        const uint16_t *w = row;
        for (int i = 0; i < n; i++) acc += f16_to_f32(w[i]) * x[i];
        return acc;
    }
    case DT_BF16: {
        const uint16_t *w = row;
        for (int i = 0; i < n; i++) acc += bf16_to_f32(w[i]) * x[i];
        return acc;
    }
    default: { /* block formats: dequantise 32 at a time */
        const uint8_t *b = row;
        size_t bb = dtype_block_bytes(t);
        float tmp[32];
        for (int i = 0; i < n; i += 32, b += bb) {
            dtype_to_f32(t, b, tmp, 32);
            for (int j = 0; j < 32; j++) acc += tmp[j] * x[i + j];
        }
        return acc;
    }
    }
}

static size_t row_bytes(const matrix *W) { return dtype_bytes_for(W->type, (uint64_t)W->cols); }

void matvec(const matrix *W, const float *x, float *y, int n_threads) {
    const uint8_t *base = W->data;
    size_t rb = row_bytes(W);
#pragma omp parallel for schedule(static) num_threads(n_threads) if (W->rows * (long)W->cols > 32768)
    for (int r = 0; r < W->rows; r++) y[r] = row_dot(W->type, base + (size_t)r * rb, x, W->cols);
}

void matrix_row_f32(const matrix *W, int r, float *out) {
    dtype_to_f32(W->type, (const uint8_t *)W->data + (size_t)r * row_bytes(W), out, (size_t)W->cols);
}
