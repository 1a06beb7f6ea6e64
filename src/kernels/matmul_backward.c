/* Backward products of a linear layer Y = X Wᵀ (docs/training-math.md):
 *   dX = dY · W      [N][rows]·[rows][cols]
 *   dW += dYᵀ · X    [rows][N]·[N][cols]
 * Both are C (+)= op(A) · B with B row-major and op(A) = A or Aᵀ, computed
 * by one blocked GEMM on the register-tiled micro-kernel of the active
 * kernel variant (kernel_ops.mm, the one matmul uses): C is cut into MC×NC
 * tiles, each owned by one thread, so every element's sum over k runs in the
 * same order whatever the thread count. Per KC slice of k, B is packed into
 * [kc][nr] panels (the micro-kernel's weight panel) and the micro-kernel
 * sweeps the tile's rows of op(A) mr at a time; op(A) = Aᵀ is read in
 * place (kernel_ops.mm.run_xt broadcasts mr adjacent floats of one row of A
 * per k): a transposed copy cost a quarter of the weight gradient's time. */
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_train.h"

enum {
    KC = 256,      /* k slice: a B panel of KC×nr floats stays in L1 */
    MC = 512,      /* tile rows: the tile's MC×KC block of op(A) stays in L2 */
    NC = 256,      /* tile columns */
    NR_MAX = 32,   /* widest micro-kernel panel of any variant */
};

/* Bp[k][j] = B[k0 + k][n0 + j] for j < nv, zero up to nr. */
static void pack_b(const float *B, int ldb, int n0, int nv, int k0, int kc, int nr, float *Bp) {
    if (nv == NR_MAX && nr == NR_MAX) { /* the usual case: a constant size, copied inline (no libc call a row) */
        for (int k = 0; k < kc; k++)
            memcpy(Bp + (size_t)k * NR_MAX, B + (size_t)(k0 + k) * ldb + n0, sizeof(float) * NR_MAX);
        return;
    }
    for (int k = 0; k < kc; k++) {
        float *d = Bp + (size_t)k * nr;
        memcpy(d, B + (size_t)(k0 + k) * ldb + n0, sizeof(float) * (size_t)nv);
        for (int j = nv; j < nr; j++) d[j] = 0.0f;
    }
}

/* One product's operands and tiling, shared by the threads (gemm below). */
typedef struct gemm_job {
    const kernel_ops *k;
    const float *A, *B;
    float *C;
    int M, Nn, K, lda, ldb, ldc, a_trans, b_trans, accumulate;
    int mcs, ncs, nt; /* tile size; tiles per row of tiles */
} gemm_job;

/* One MC×NC tile of C, all of k: the unit of work threads claim. */
static void gemm_tile(void *p, int tile) {
    /* per-thread packing buffers, kept across calls (the pool keeps its threads) */
    static _Thread_local float Bp[KC * NR_MAX] __attribute__((aligned(64)));
    static _Thread_local float tmp[KC * NR_MAX] __attribute__((aligned(64)));
    const gemm_job *j = p;
    const matmul_ukernel *uk = &j->k->mm;
    /* B = Wᵀ of a weight matrix W [Nn][K]: its panels packed as matmul packs them */
    const matrix Bt = {.type = DT_F32, .rows = j->Nn, .cols = j->K, .data = j->B};
    const int mr = uk->mr, nr = uk->nr;
    const int m0 = (tile / j->nt) * j->mcs, n0 = (tile % j->nt) * j->ncs;
    const int mc = j->M - m0 < j->mcs ? j->M - m0 : j->mcs, nc = j->Nn - n0 < j->ncs ? j->Nn - n0 : j->ncs;
    for (int k0 = 0; k0 < j->K; k0 += KC) {
        const int kc = j->K - k0 < KC ? j->K - k0 : KC;
        /* op(A)[m0 + i][k0 + c]: A[m0 + i][k0 + c], or A[k0 + c][m0 + i] read in place by run_xt */
        const float *X = j->a_trans ? j->A + (size_t)k0 * j->lda + m0 : j->A + (size_t)m0 * j->lda + k0;
        const size_t step = j->a_trans ? 1 : (size_t)j->lda; /* from one row of op(A) to the next */
        for (int j0 = 0; j0 < nc; j0 += nr) {
            const int nv = nc - j0 < nr ? nc - j0 : nr;
            if (j->b_trans) j->k->pack(&Bt, n0 + j0, nv, k0, kc, Bp, tmp);
            else pack_b(j->B, j->ldb, n0 + j0, nv, k0, kc, nr, Bp);
            for (int i0 = 0; i0 < mc; i0 += mr) {
                const int mv = mc - i0 < mr ? mc - i0 : mr;
                float *C = j->C + (size_t)(m0 + i0) * j->ldc + n0 + j0;
                const int acc = j->accumulate || k0 > 0;
                if (j->a_trans) uk->run_xt(kc, Bp, X + (size_t)i0 * step, (size_t)j->lda, C, (size_t)j->ldc, mv, nv, acc);
                else uk->run(kc, Bp, X + (size_t)i0 * step, (size_t)j->lda, C, (size_t)j->ldc, mv, nv, acc);
            }
        }
    }
}

/* C[m][n] (+)= sum_k op(A)[m][k] · op(B)[k][n] for m < M, n < Nn, k < K;
 * op(A)[m][k] = a_trans ? A[k·lda + m] : A[m·lda + k];
 * op(B)[k][n] = b_trans ? B[n·K + k] : B[k·ldb + n]. */
static void gemm(const kernel_ops *kops, int M, int Nn, int K, const float *A, int a_trans, int lda,
                 const float *B, int b_trans, int ldb, float *C, int ldc, int accumulate, int n_threads) {
    if (M <= 0 || Nn <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int m = 0; m < M; m++) memset(C + (size_t)m * ldc, 0, sizeof(float) * (size_t)Nn);
        return;
    }
    const matmul_ukernel *uk = &kops->mm;
    const int mr = uk->mr, nr = uk->nr;
    /* Tiles of at most MC × NC, split evenly; when there are few,
     * as many as a multiple of the thread count. Each element's sum runs
     * over the same k slices in the same order whatever the tiling. */
    const int nthr = n_threads > 0 ? n_threads : 1;
    int mt = (M + MC - 1) / MC, nt = (Nn + NC - 1) / NC;
    while (mt * nt < 4 * nthr && (mt * nt) % nthr != 0) {
        if (M / (mt + 1) >= mr && (M / mt >= Nn / nt || Nn / (nt + 1) < nr)) mt++;
        else if (Nn / (nt + 1) >= nr) nt++;
        else break;
    }
    const int mcs = ((M + mt - 1) / mt + mr - 1) / mr * mr, ncs = ((Nn + nt - 1) / nt + nr - 1) / nr * nr;
    mt = (M + mcs - 1) / mcs;
    nt = (Nn + ncs - 1) / ncs;
    gemm_job j = {kops, A, B, C, M, Nn, K, lda, ldb, ldc, a_trans, b_trans, accumulate, mcs, ncs, nt};
    /* Tiles are independent and claimed dynamically: the results are exact
     * whichever thread computes a tile. */
    parallel_for(nthr, mt * nt, gemm_tile, &j);
}

void matmul_backward_input_with(const kernel_ops *k, const float *W, int rows, int cols,
                                const float *dY, int N, float *dX, int n_threads) {
    if (k->mm.nr > NR_MAX) {
        matmul_backward_input_ref(W, rows, cols, dY, N, dX);
        return;
    }
    /* M = N tokens, K = rows, op(A) = dY, B = W */
    gemm(k, N, cols, rows, dY, 0, rows, W, 0, cols, dX, cols, 0, n_threads);
}

void matmul_backward_weight_with(const kernel_ops *k, const float *dY, const float *X, int N,
                                 int rows, int cols, float *dW, int n_threads) {
    if (k->mm.nr > NR_MAX) {
        matmul_backward_weight_ref(dY, X, N, rows, cols, dW);
        return;
    }
    /* M = rows, K = N tokens, op(A) = dYᵀ, B = X */
    gemm(k, rows, cols, N, dY, 1, rows, X, 0, cols, dW, cols, 1, n_threads);
}

void matmul_forward_tiled_with(const kernel_ops *k, const float *W, int rows, int cols, const float *X, int N,
                               float *Y, int n_threads) {
    if (k->mm.nr > NR_MAX) {
        const matrix m = {.type = DT_F32, .rows = rows, .cols = cols, .data = W};
        matmul_with(k, &m, X, N, Y, n_threads);
        return;
    }
    /* M = N tokens, K = cols, op(A) = X, op(B) = Wᵀ */
    gemm(k, N, rows, cols, X, 0, cols, W, 1, cols, Y, rows, 0, n_threads);
}

void matmul_forward_tiled(const float *W, int rows, int cols, const float *X, int N, float *Y, int n_threads) {
    matmul_forward_tiled_with(kernels_active(), W, rows, cols, X, N, Y, n_threads);
}

void matmul_backward_input(const float *W, int rows, int cols, const float *dY, int N, float *dX,
                           int n_threads) {
    matmul_backward_input_with(kernels_active(), W, rows, cols, dY, N, dX, n_threads);
}

void matmul_backward_weight(const float *dY, const float *X, int N, int rows, int cols, float *dW,
                            int n_threads) {
    matmul_backward_weight_with(kernels_active(), dY, X, N, rows, cols, dW, n_threads);
}

/* ---- scalar references ------------------------------------------------- */

void matmul_backward_input_ref(const float *W, int rows, int cols, const float *dY, int N,
                               float *dX) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < cols; c++) {
            float acc = 0.0f;
            for (int r = 0; r < rows; r++) acc += dY[(size_t)n * rows + r] * W[(size_t)r * cols + c];
            dX[(size_t)n * cols + c] = acc;
        }
}

void matmul_backward_weight_ref(const float *dY, const float *X, int N, int rows, int cols,
                                float *dW) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float acc = 0.0f;
            for (int n = 0; n < N; n++) acc += dY[(size_t)n * rows + r] * X[(size_t)n * cols + c];
            dW[(size_t)r * cols + c] += acc;
        }
}
