/* Random initialisation shared by the architectures (train/init_random.h). */
#include "train/init_random.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/machine.h"
#include "core/rng.h"
#include "kernels/kernels.h"

uint64_t init_stream(uint64_t seed, int index) {
    uint64_t rng = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(index + 1));
    splitmix64(&rng);
    return rng;
}

int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static double init_uniform01(uint64_t *s) { return rng_unit(splitmix64(s)); }

/* Blocks of 64K values: big enough to keep a thread busy, small enough to
 * balance the largest matrices over many cores. */
#define FILL_BLOCK ((size_t)1 << 16)

/* w[i] := (2u_i - 1)·a when symmetric, else a + b·u_i: each form as the
 * serial code it replaces wrote it, so the floats are the same bits. */
static void fill(float *w, size_t n, double a, double b, int symmetric, uint64_t stream) {
    const long blocks = (long)((n + FILL_BLOCK - 1) / FILL_BLOCK);
#pragma omp parallel for schedule(static) num_threads(machine_cores()) if (blocks > 1)
    for (long k = 0; k < blocks; k++) {
        const size_t end = (size_t)(k + 1) * FILL_BLOCK < n ? (size_t)(k + 1) * FILL_BLOCK : n;
        for (size_t i = (size_t)k * FILL_BLOCK; i < end; i++) {
            const double u = rng_unit(splitmix64_at(stream, i));
            w[i] = (float)(symmetric ? (2.0 * u - 1.0) * a : a + b * u);
        }
    }
}

void init_uniform_fill(float *w, size_t n, double half, uint64_t stream) { fill(w, n, half, 0.0, 1, stream); }

void init_uniform_range_fill(float *w, size_t n, double lo, double width, uint64_t stream) {
    fill(w, n, lo, width, 0, stream);
}

static double gaussian(uint64_t *s) { /* Box-Muller */
    const double u1 = 1.0 - init_uniform01(s), u2 = init_uniform01(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

typedef struct gs_args {
    double *Q;
    const double *q;
    int m, j;
} gs_args;

/* Removes the component along q from vector j + 1 + r (each vector is
 * projected by one thread, in the same order whatever the thread count). */
static void gs_project(void *ctx, int r) {
    const gs_args *a = ctx;
    const double *q = a->q;
    double *w = a->Q + (size_t)(a->j + 1 + r) * a->m, dot = 0;
    for (int i = 0; i < a->m; i++) dot += q[i] * w[i];
    for (int i = 0; i < a->m; i++) w[i] -= dot * q[i];
}

/* Modified Gram-Schmidt on the n vectors of length m stored one after
 * another in Q: afterwards they are orthonormal and Q = G·R⁻¹ with R upper
 * triangular, positive diagonal. Runs on all cores (initialisation has no
 * thread-count setting). */
static void gram_schmidt(double *Q, int m, int n) {
    const int nt = machine_cores();
    for (int j = 0; j < n; j++) {
        double *q = Q + (size_t)j * m, norm = 0;
        for (int i = 0; i < m; i++) norm += q[i] * q[i];
        norm = 1.0 / sqrt(norm);
        for (int i = 0; i < m; i++) q[i] *= norm;
        gs_args a = {Q, q, m, j};
        parallel_rows(nt, n - j - 1, 8 * (size_t)m, gs_project, &a); /* w and q read twice, doubles */
    }
}

/* PyTorch-style orthogonal init (§3.2): QR of a Gaussian matrix with the
 * signs fixed by diag(R) > 0, i.e. orthonormal columns of the long side,
 * times gain. Gram-Schmidt runs twice ("twice is enough") in double. */
rwkv_status orthogonal_init(float *W, int rows, int cols, double gain, uint64_t *rng) {
    const int tall = rows >= cols;
    const int m = tall ? rows : cols, n = tall ? cols : rows;
    double *Q = malloc(sizeof(double) * (size_t)m * n);
    if (!Q) return RWKV_ERR_NOMEM;
    for (size_t i = 0; i < (size_t)m * n; i++) Q[i] = gaussian(rng);
    gram_schmidt(Q, m, n);
    gram_schmidt(Q, m, n);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            W[(size_t)r * cols + c] =
                (float)(gain * (tall ? Q[(size_t)c * m + r] : Q[(size_t)r * m + c]));
    free(Q);
    return RWKV_OK;
}

