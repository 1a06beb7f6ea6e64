/* The RWKV-7 WKV for training: the forward over a batch of sequences, each
 * from the zero state, and its exact backward (equations in kernels/wkv.h
 * and docs/training-math.md).
 *
 * Sequential, not chunked. The chunked ("WY") form of the delta rule turns a
 * chunk of steps into matrix products, but it needs the cumulative product
 * of the decays inside a chunk and the inverse of a triangular matrix built
 * from a and b; both divide by products of decays that reach e^-(0.6·T) and
 * lose float32 precision (or overflow) exactly where the decay is fast. The
 * sequential recurrence only ever multiplies by w_j in (0, 1] and adds rank-1
 * terms, so every intermediate stays of the size of the state itself: it is
 * stable in float32 for any decay and any sequence length, and on a CPU a
 * step is a few passes of N multiply-adds over each state row, the same work
 * as a chunked product.
 *
 * Memory: the forward keeps the state at the start of every WKV7_CHUNK steps
 * (B·H·ceil(T/CHUNK)·N² floats); the backward, one (b, h) pair at a time,
 * recomputes the states of one chunk from its checkpoint and walks it
 * backwards. The forward's rows are those of the inference kernel
 * (kernel_ops.wkv7_row, or sixteen at a time kernel_ops.wkv7_block, which
 * gives the same bits), so training and inference compute the same y. */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/wkv.h"
#include "kernels/wkv_lanes.h"

size_t wkv7_checkpoint_floats(int B, int T, int H, int N) {
    const size_t chunks = ((size_t)T + WKV7_CHUNK - 1) / WKV7_CHUNK;
    return (size_t)B * (size_t)H * chunks * (size_t)N * (size_t)N;
}

size_t wkv7_scratch_floats(int N, int n_threads) {
    const size_t per_job = (WKV7_CHUNK + 2) * (size_t)N * (size_t)N + (size_t)N;
    return (size_t)(n_threads > 0 ? n_threads : 1) * per_job;
}

typedef struct wkv7_batch {
    wkv7_row_fn row_fn;
    wkv7_block_fn block_fn; /* the forward's rows 16 at a time (the same bits), or NULL */
    wkv7_pair_fn pair_fn;   /* the backward's recomputation two rows at a time (the same bits), or NULL */
    void (*chunk_fn)(const wkv7_chunk_grad *g);
    int B, T, H, N, jobs;
    const float *r, *w, *k, *v, *a, *b, *dy;
    float *ckpt, *y;
    float *dr, *dw, *dk, *dv, *da, *db;
    float *scratch;
} wkv7_batch;

/* The state checkpoint of chunk c of pair (b, h). */
static float *checkpoint_of(const wkv7_batch *j, int b, int h, int c) {
    const size_t chunks = ((size_t)j->T + WKV7_CHUNK - 1) / WKV7_CHUNK, NN = (size_t)j->N * j->N;
    return j->ckpt + (((size_t)b * j->H + h) * chunks + (size_t)c) * NN;
}

/* Pair p = (b, h): T steps from the zero state, saving the state before
 * every chunk. */
static void forward_pair(const wkv7_batch *j, int p, float *S) {
    const int b = p / j->H, h = p % j->H, N = j->N, A = j->H * j->N;
    memset(S, 0, sizeof(float) * (size_t)N * N);
    for (int t0 = 0, c = 0; t0 < j->T; t0 += WKV7_CHUNK, c++) {
        const int len = j->T - t0 < WKV7_CHUNK ? j->T - t0 : WKV7_CHUNK;
        memcpy(checkpoint_of(j, b, h, c), S, sizeof(float) * (size_t)N * N);
        const size_t o = ((size_t)b * j->T + (size_t)t0) * (size_t)A;
        /* a block and a row take the same arguments: rows i.. of the head */
        const int blocks = wkv7_block_fits(j->block_fn, len, N);
        const wkv7_row_fn fn = blocks ? j->block_fn : j->row_fn;
        for (int i = 0; i < N; i += blocks ? WKV7_BLOCK_ROWS : 1)
            fn(len, A, N, h, i, j->r + o, j->w + o, j->k + o, j->v + o, j->a + o, j->b + o, S + (size_t)i * N,
               j->y + o);
    }
}

/* x*y + z: one rounding (FMA) in the SIMD builds, two in the scalar one.
 * `fused` is a constant of each build, so the choice costs nothing. */
#define MADD(fused, x, y, z) ((fused) ? fmaf((x), (y), (z)) : (x) * (y) + (z))

/* One step's vectors (the inputs it reads, the gradients it writes), N each. */
typedef struct step_io {
    const float *r, *w, *k, *a, *b;
    float *dr, *dw, *dk, *da, *db;
} step_io;

/* The sums over a state row (sa, dv_i, dsa_i) keep WKV_LANES partial sums
 * over elements [q, q + n), n <= WKV_LANES, added up in a fixed order at the
 * end (kernels/wkv_lanes.h): the compiler keeps them in a register, where a
 * reduction clause would spill them and add them one by one. */
WKV_INLINE void sa_lanes(int fused, int n, int q, const step_io *io, const float *sp, float *sa) {
#pragma omp simd
    for (int l = 0; l < n; l++) sa[l] = MADD(fused, sp[q + l], io->a[q + l], sa[l]);
}

/* Rows are handled ROWS at a time, so that the sums over the rows (dr, dk,
 * dw, db, da) stay in registers across a group instead of going through
 * memory once per row; within a group they still add the rows in order. */
enum { ROWS = 4 };

/* The first pass over elements [q, q + n) of R consecutive rows (sp, sc, ds
 * at the first, N apart): dS += dy r^T, and the sums it feeds (dv and dsa of
 * each row in lanes; dr, dk, dw, db over the rows). */
WKV_INLINE void first_pass(int fused, int R, int n, int q, int N, const step_io *io, const float *sp, const float *sc,
                           float *ds, const float *gy, const float *vi, const float *sa, float (*gv)[WKV_LANES],
                           float (*gsa)[WKV_LANES]) {
#pragma omp simd
    for (int l = 0; l < n; l++) {
        const int j = q + l;
        float dr = io->dr[j], dk = io->dk[j], dw = io->dw[j], db = io->db[j];
        const float rj = io->r[j], kj = io->k[j], bj = io->b[j];
#pragma GCC unroll 4
        for (int m = 0; m < R; m++) {
            const size_t e = (size_t)m * N + (size_t)j;
            dr = MADD(fused, sc[e], gy[m], dr);
            const float d = MADD(fused, gy[m], rj, ds[e]);
            gv[m][l] = MADD(fused, d, kj, gv[m][l]);
            gsa[m][l] = MADD(fused, d, bj, gsa[m][l]);
            dk = MADD(fused, d, vi[m], dk);
            dw = MADD(fused, d, sp[e], dw);
            db = MADD(fused, d, sa[m], db);
            ds[e] = d;
        }
        io->dr[j] = dr, io->dk[j] = dk, io->dw[j] = dw, io->db[j] = db;
    }
}

/* The second pass: da += dsa_i Sp_i, and each row of dS moves one step back. */
WKV_INLINE void second_pass(int fused, int R, int n, int q, int N, const step_io *io, const float *sp, float *ds,
                            const float *gsa) {
#pragma omp simd
    for (int l = 0; l < n; l++) {
        const int j = q + l;
        float da = io->da[j];
        const float aj = io->a[j], wj = io->w[j];
#pragma GCC unroll 4
        for (int m = 0; m < R; m++) {
            const size_t e = (size_t)m * N + (size_t)j;
            da = MADD(fused, gsa[m], sp[e], da);
            ds[e] = MADD(fused, gsa[m], aj, ds[e] * wj);
        }
        io->da[j] = da;
    }
}

/* Rows [i, i + R) of one step (R = ROWS, or 1 for the rows past the last
 * full group): both passes over the full lane groups, then over the
 * elements past the last one. */
WKV_INLINE void grad_rows(int fused, int R, int i, int N, const step_io *io, const float *Sp, const float *Sc,
                          float *dS, const float *v, const float *dy, float *dv) {
    const int nv = N - N % WKV_LANES;
    const size_t at = (size_t)i * N;
    const float *sp = Sp + at, *sc = Sc + at;
    float *ds = dS + at;
    float sa[ROWS], gsa[ROWS], gv_l[ROWS][WKV_LANES], gsa_l[ROWS][WKV_LANES];
    for (int m = 0; m < R; m++) {
        float lanes[WKV_LANES] = {0};
        const float *row = sp + (size_t)m * N;
        for (int q = 0; q < nv; q += WKV_LANES) sa_lanes(fused, WKV_LANES, q, io, row, lanes);
        sa[m] = lanes_sum(lanes);
        for (int q = nv; q < N; q++) sa[m] = MADD(fused, row[q], io->a[q], sa[m]);
        for (int l = 0; l < WKV_LANES; l++) gv_l[m][l] = gsa_l[m][l] = 0.0f;
    }
    for (int q = 0; q < nv; q += WKV_LANES)
        first_pass(fused, R, WKV_LANES, q, N, io, sp, sc, ds, dy + i, v + i, sa, gv_l, gsa_l);
    for (int m = 0; m < R; m++) dv[i + m] = lanes_sum(gv_l[m]), gsa[m] = lanes_sum(gsa_l[m]);
    if (nv < N) {
        float gv_t[ROWS][WKV_LANES] = {{0}}, gsa_t[ROWS][WKV_LANES] = {{0}};
        first_pass(fused, R, N - nv, nv, N, io, sp, sc, ds, dy + i, v + i, sa, gv_t, gsa_t);
        for (int m = 0; m < R; m++) dv[i + m] += lanes_sum(gv_t[m]), gsa[m] += lanes_sum(gsa_t[m]);
    }
    for (int q = 0; q < nv; q += WKV_LANES) second_pass(fused, R, WKV_LANES, q, N, io, sp, ds, gsa);
    second_pass(fused, R, N - nv, nv, N, io, sp, ds, gsa);
}

/* The chunk's steps backwards (wkv7_chunk_grad in kernels/wkv.h). Step s,
 * Sp = S before it, Sc = S after it, dS = dL/dS after it:
 *   dS   += dy r^T                 dr_j = sum_i Sc[i][j] dy_i
 *   dv_i  = sum_j dS_ij k_j        dk_j = sum_i dS_ij v_i
 *   dw_j  = sum_i dS_ij Sp[i][j]
 *   db_j  = sum_i dS_ij sa_i       (sa = Sp a)
 *   dsa_i = sum_j dS_ij b_j        da_j = sum_i dsa_i Sp[i][j]
 *   dS_before[i][j] = dS_ij w_j + dsa_i a_j
 * Row i of dS_before needs only row i of dS and dsa_i, so a group of rows
 * is finished before the next one starts and stays in L1 between its two
 * passes. The sums over i run in row order. */
WKV_INLINE void backward_chunk_body(const wkv7_chunk_grad *g, int fused) {
    const int N = g->N, nr = N - N % ROWS;
    const size_t NN = (size_t)N * N;
    for (int s = g->len - 1; s >= 0; s--) {
        const size_t o = (size_t)s * (size_t)g->A;
        const step_io io = {g->r + o,  g->w + o,  g->k + o,  g->a + o,  g->b + o,
                            g->dr + o, g->dw + o, g->dk + o, g->da + o, g->db + o};
        const float *Sp = g->states + (size_t)s * NN, *Sc = Sp + NN;
        for (int q = 0; q < N; q++) io.dr[q] = io.dw[q] = io.dk[q] = io.da[q] = io.db[q] = 0.0f;
        for (int i = 0; i < nr; i += ROWS)
            grad_rows(fused, ROWS, i, N, &io, Sp, Sc, g->dS, g->v + o, g->dy + o, g->dv + o);
        for (int i = nr; i < N; i++) grad_rows(fused, 1, i, N, &io, Sp, Sc, g->dS, g->v + o, g->dy + o, g->dv + o);
    }
}

void wkv7_backward_chunk_scalar(const wkv7_chunk_grad *g) { backward_chunk_body(g, 0); }

#ifdef WKV_X86
__attribute__((target("avx2,fma"))) void wkv7_backward_chunk_avx2(const wkv7_chunk_grad *g) {
    backward_chunk_body(g, 1);
}
#endif

/* states[s + 1] = the state after step s of a chunk of len steps from
 * states[0], with the forward's own rows (so the forward's states, bit for
 * bit): two rows a call where the variant has the pair kernel, which writes
 * them straight into the next state; else row by row in place on a copy. */
static void recompute_chunk(const wkv7_batch *j, size_t o0, int len, float *states, float *ytmp) {
    const int N = j->N, A = j->H * j->N;
    const size_t NN = (size_t)N * N;
    const int pairs = wkv7_pair_fits(j->pair_fn, 1, N);
    for (int s = 0; s < len; s++) {
        const size_t o = o0 + (size_t)s * A;
        const float *prev = states + (size_t)s * NN;
        float *next = states + (size_t)(s + 1) * NN;
        if (pairs) {
            for (int i = 0; i < N; i += 2)
                j->pair_fn(A, N, 0, i, j->r + o, j->w + o, j->k + o, j->v + o, j->a + o, j->b + o,
                           prev + (size_t)i * N, next + (size_t)i * N, NULL);
            continue;
        }
        memcpy(next, prev, sizeof(float) * NN);
        for (int i = 0; i < N; i++)
            j->row_fn(1, A, N, 0, i, j->r + o, j->w + o, j->k + o, j->v + o, j->a + o, j->b + o,
                      next + (size_t)i * N, ytmp);
    }
}

/* Pair p = (b, h) backwards, chunk by chunk from the last: the chunk's
 * states are recomputed from its checkpoint, then the variant's chunk
 * backward walks them. */
static void backward_pair(const wkv7_batch *j, int p, float *mem) {
    const int b = p / j->H, h = p % j->H, N = j->N, A = j->H * j->N;
    const size_t NN = (size_t)N * N;
    float *dS = mem, *states = mem + NN, *ytmp = states + (WKV7_CHUNK + 1) * NN;
    memset(dS, 0, sizeof(float) * NN);
    const int chunks = (j->T + WKV7_CHUNK - 1) / WKV7_CHUNK;
    for (int c = chunks - 1; c >= 0; c--) {
        const int t0 = c * WKV7_CHUNK, len = j->T - t0 < WKV7_CHUNK ? j->T - t0 : WKV7_CHUNK;
        const size_t o0 = ((size_t)b * j->T + (size_t)t0) * (size_t)A + (size_t)h * N;
        memcpy(states, checkpoint_of(j, b, h, c), sizeof(float) * NN);
        recompute_chunk(j, o0, len, states, ytmp);
        const wkv7_chunk_grad g = {len,        A,          N,          j->r + o0,  j->w + o0,  j->k + o0,
                                   j->v + o0,  j->a + o0,  j->b + o0,  j->dy + o0, states,     j->dr + o0,
                                   j->dw + o0, j->dk + o0, j->dv + o0, j->da + o0, j->db + o0, dS};
        j->chunk_fn(&g);
    }
}

static void forward_job(void *ctx, int job) {
    const wkv7_batch *j = ctx;
    float *S = j->scratch + (size_t)job * wkv7_scratch_floats(j->N, 1);
    const int P = j->B * j->H;
    for (int p = job * P / j->jobs; p < (job + 1) * P / j->jobs; p++) forward_pair(j, p, S);
}

static void backward_job(void *ctx, int job) {
    const wkv7_batch *j = ctx;
    float *mem = j->scratch + (size_t)job * wkv7_scratch_floats(j->N, 1);
    const int P = j->B * j->H;
    for (int p = job * P / j->jobs; p < (job + 1) * P / j->jobs; p++) backward_pair(j, p, mem);
}

/* Each job handles a contiguous range of pairs, so whole sequences; a pair's
 * results do not depend on which job ran it, so any thread count gives the
 * same bits. The jobs run pinned (each thread the same jobs every call, as
 * the training's per-token rows do, `run_rows` in train/rwkv7_grad.c): a
 * thread then reads the rows it wrote, and the forward's checkpoints are in
 * its own cache in the backward. Two threads, RWKV-7 6 x 256, ctx 128, batch
 * 8: 4-5% more tokens/s than pairs dealt round-robin and claimed as they came. */
static int jobs_for(int B, int H, int n_threads) {
    const int pairs = B * H, nt = n_threads > 0 ? n_threads : 1;
    return pairs < nt ? pairs : nt;
}

static void run_jobs(wkv7_batch *j, parallel_fn fn) {
    if (j->jobs <= PARALLEL_PINNED_MAX) parallel_for_pinned(j->jobs, j->jobs, fn, j);
    else parallel_for(j->jobs, j->jobs, fn, j);
}

void wkv7_forward_batch(int B, int T, int H, int N, const float *r, const float *w, const float *k, const float *v,
                        const float *a, const float *b, float *ckpt, float *y, float *scratch, int n_threads) {
    const kernel_ops *ops = kernels_active();
    wkv7_batch j = {ops->wkv7_row, ops->wkv7_block, NULL, NULL, B, T, H, N, jobs_for(B, H, n_threads), r, w, k, v,
                    a, b, NULL, ckpt, y, NULL, NULL, NULL, NULL, NULL, NULL, scratch};
    run_jobs(&j, forward_job);
}

void wkv7_backward_with(const kernel_ops *ops, int B, int T, int H, int N, const float *r, const float *w,
                        const float *k, const float *v, const float *a, const float *b, const float *ckpt,
                        const float *dy, float *dr, float *dw, float *dk, float *dv, float *da, float *db,
                        float *scratch, int n_threads) {
    /* the states are recomputed with the active rows, those of the forward */
    const kernel_ops *active = kernels_active();
    wkv7_batch j = {active->wkv7_row, NULL, active->wkv7_pair, ops->wkv7_backward_chunk, B, T, H, N,
                    jobs_for(B, H, n_threads), r, w, k, v, a, b, dy, (float *)ckpt, NULL, dr, dw, dk, dv, da, db,
                    scratch};
    run_jobs(&j, backward_job);
}

void wkv7_backward(int B, int T, int H, int N, const float *r, const float *w, const float *k, const float *v,
                   const float *a, const float *b, const float *ckpt, const float *dy, float *dr, float *dw,
                   float *dk, float *dv, float *da, float *db, float *scratch, int n_threads) {
    wkv7_backward_with(kernels_active(), B, T, H, N, r, w, k, v, a, b, ckpt, dy, dr, dw, dk, dv, da, db, scratch,
                       n_threads);
}
