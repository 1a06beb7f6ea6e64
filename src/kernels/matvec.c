/* Matrix-vector product for decode: every weight is read once per token, so
 * this is bound by memory bandwidth. Rows are cut into a few chunks per
 * thread that the threads of the kernel pool claim (kernels/pool.c); each
 * chunk runs the active table's row kernel (kernel_ops.matvec_rows), or for
 * the block formats and k-quants with int8 activations the integer path
 * (kernels/dot_int8.h, int8_product: x quantized once per product by each
 * thread that runs rows of it). The scalar row kernel here is the reference
 * every variant is tested against. */
#include <stdint.h>

#include "kernels/dot_int8.h"
#include "kernels/kquant_q8.h"
#include "kernels/row_groups.h"
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
        const uint8_t *w = row;
        for (int i = 0; i < n; i++) acc += f16_to_f32((uint16_t)(w[2 * i] | w[2 * i + 1] << 8)) * x[i];
        return acc;
    }
    case DT_BF16: {
        const uint8_t *w = row;
        for (int i = 0; i < n; i++) acc += bf16_to_f32((uint16_t)(w[2 * i] | w[2 * i + 1] << 8)) * x[i];
        return acc;
    }
    default: { /* block formats: dequantise one block (32 or 256 weights) at a time */
        const uint8_t *b = row;
        const size_t bb = dtype_block_bytes(t);
        const int be = (int)dtype_block_elems(t);
        float tmp[256];
        for (int i = 0; i < n; i += be, b += bb) {
            dtype_to_f32(t, b, tmp, (size_t)be);
            for (int j = 0; j < be; j++) acc += tmp[j] * x[i + j];
        }
        return acc;
    }
    }
}

static size_t row_bytes(const matrix *W) { return dtype_bytes_for(W->type, (uint64_t)W->cols); }

/* The scalar variant's row kernel (kernel_ops.matvec_rows). */
void matvec_rows_scalar(const matrix *W, const float *x, float *y, int r0, int r1) {
    const uint8_t *base = W->data;
    size_t rb = row_bytes(W);
    for (int r = r0; r < r1; r++) y[r - r0] = row_dot(W->type, base + (size_t)r * rb, x, W->cols);
}

void matvec_scalar(const matrix *W, const float *x, float *y) { matvec_rows_scalar(W, x, y, 0, W->rows); }

/* Below this many weights a second thread costs more than it saves. */
#define MATVEC_PARALLEL_MIN 49152L
#define MATVEC_MIN_CHUNK_ROWS 64

typedef struct matvec_job {
    const matrix *W;
    float *y;
    matvec_split split;
    int8_product q;
    int quantized; /* 0: the float path, q.k->matvec_rows on q.x */
} matvec_job;

static void matvec_chunk(void *p, int chunk) {
    const matvec_job *j = p;
    int r0, r1;
    matvec_split_range(&j->split, chunk, &r0, &r1);
    if (j->quantized) int8_product_rows(&j->q, j->W, j->y + r0, r0, r1);
    else j->q.k->matvec_rows(j->W, j->q.x, j->y + r0, r0, r1);
}

static int round16(int rows) { return (rows + 15) / 16 * 16; }

matvec_split matvec_split_for(const matrix *W, int n_threads) {
    const int rows = W->rows;
    matvec_split s = {rows, rows, 1, rows, 1};
    if (n_threads <= 1 || (long)rows * W->cols < MATVEC_PARALLEL_MIN || rows < 2 * MATVEC_MIN_CHUNK_ROWS) return s;
    /* one long chunk per thread over three quarters of the rows: each an
     * unbroken stream for the prefetchers (at two threads four equal chunks
     * each were 3-25% slower than two, docs/perf.md, change 17); the last
     * quarter in two short chunks per thread, so that the threads finish
     * within one short chunk of each other at the join */
    s.big = round16(rows * 3 / (4 * n_threads));
    if (s.big < MATVEC_MIN_CHUNK_ROWS) s.big = MATVEC_MIN_CHUNK_ROWS;
    s.n_big = rows / s.big < n_threads ? rows / s.big : n_threads;
    const int rest = rows - s.n_big * s.big;
    s.small = round16((rest + 2 * n_threads - 1) / (2 * n_threads));
    if (s.small < ROW_GROUP) s.small = ROW_GROUP;
    s.n_chunks = s.n_big + (rest + s.small - 1) / s.small;
    return s;
}

matvec_split matvec_split_even(const matrix *W, int n_threads) {
    matvec_split s = matvec_split_for(W, n_threads);
    if (s.n_chunks == 1) return s;
    s.big = s.small = round16((W->rows + n_threads - 1) / n_threads);
    s.n_big = s.n_chunks = (W->rows + s.big - 1) / s.big;
    return s;
}

void matvec_with(const kernel_ops *k, const matrix *W, const float *x, float *y, int n_threads) {
    matvec_job j = {.W = W, .y = y, .split = matvec_split_for(W, n_threads)};
    j.quantized = int8_product_prepare(k, W, x, &j.q);
    parallel_for(n_threads, j.split.n_chunks, matvec_chunk, &j);
}

void matvec(const matrix *W, const float *x, float *y, int n_threads) {
    matvec_with(kernels_active(), W, x, y, n_threads);
}

int matvec_reads_groups(const kernel_ops *k, const matrix *W) {
    if (!row_groups_apply(W) || !kernels_int8_activations()) return 0;
    if (W->type == DT_Q4_K || W->type == DT_Q5_K || W->type == DT_Q6_K)
        return k->kquant_groups && (!*k->kquant_groups || kernels_cpu_supports(k->kquant_groups)) &&
               W->cols <= KQ8_MAX_COLS;
    return int8_dot_for(k)->groups != NULL;
}

void matrix_row_f32(const matrix *W, int r, float *out) {
    kernels_active()->row_to_f32(W->type, (const uint8_t *)W->data + (size_t)r * row_bytes(W), out, W->cols);
}
