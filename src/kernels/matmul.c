/* Matrix-matrix product for sequence mode and training: Y = X Wᵀ.
 * Weight rows are converted to f32 a tile at a time and reused across a
 * block of X rows, so each weight byte is read once per block of tokens
 * instead of once per token. */
#include <stdint.h>
#include <stdlib.h>

#include "kernels/kernels.h"

enum { TILE_ROWS = 16, TILE_N = 64 };

void matmul(const matrix *W, const float *X, int N, float *Y, int n_threads) {
    if (N == 1) {
        matvec(W, X, Y, n_threads);
        return;
    }
    const int rows = W->rows, cols = W->cols;
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)cols);
    const uint8_t *base = W->data;
    const int row_tiles = (rows + TILE_ROWS - 1) / TILE_ROWS;
#pragma omp parallel num_threads(n_threads)
    {
        float *wt = malloc(sizeof(float) * TILE_ROWS * (size_t)cols);
#pragma omp for schedule(static)
        for (int rt = 0; rt < row_tiles; rt++) {
            int r0 = rt * TILE_ROWS, r1 = r0 + TILE_ROWS < rows ? r0 + TILE_ROWS : rows;
            const float *wrows;
            if (W->type == DT_F32) {
                wrows = (const float *)(base + (size_t)r0 * rb);
            } else {
                for (int r = r0; r < r1; r++)
                    dtype_to_f32(W->type, base + (size_t)r * rb, wt + (size_t)(r - r0) * cols, (size_t)cols);
                wrows = wt;
            }
            for (int n0 = 0; n0 < N; n0 += TILE_N) {
                int n1 = n0 + TILE_N < N ? n0 + TILE_N : N;
                for (int n = n0; n < n1; n++) {
                    const float *x = X + (size_t)n * cols;
                    float *y = Y + (size_t)n * rows;
                    for (int r = r0; r < r1; r++) {
                        const float *w = wrows + (size_t)(r - r0) * cols;
                        float acc = 0.0f;
                        for (int c = 0; c < cols; c++) acc += w[c] * x[c];
                        y[r] = acc;
                    }
                }
            }
        }
        free(wt);
    }
}
