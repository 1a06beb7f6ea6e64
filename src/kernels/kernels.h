/* The math kernels. Each operation is written once as a plain scalar
 * reference; faster variants of the same signature live in one table per
 * instruction set (kernel_ops below), chosen once at start (kernels/dispatch.c),
 * and tests compare every variant with the reference. Model code says *what*
 * is computed; kernels say *how*. The WKV operators of every RWKV version are
 * declared in kernels/wkv.h.
 *
 * Matrices are PyTorch nn.Linear weights: `rows` (out) x `cols` (in),
 * row-major, in any float dtype (f32/f16/bf16) or ggml block type; the
 * arithmetic is always float32. */
#ifndef RWKV_KERNELS_H
#define RWKV_KERNELS_H

#include <stddef.h>

#include <float.h>
#include <math.h>

#include "core/dtype.h"

typedef struct matrix {
    dtype type;
    int rows, cols;
    const void *data;
    /* NULL, or the same weights packed once as the matrix-matrix panels of
     * the kernel variant whose mm.nr is panel_nr (matmul_pack_panels), read
     * by matmul instead of packing on every call. */
    const void *panels;
    int panel_nr;
    /* NULL, or the first rows / 16 · 16 rows interleaved 16 at a time
     * (kernels/row_groups.h), read by the integer decode products instead
     * of data (the block formats; model/load.c builds it). */
    const void *groups;
} matrix;

/* y[r] = sum_c W[r][c] * x[c]  (decode: one token) */
void matvec(const matrix *W, const float *x, float *y, int n_threads);

/* Y[n][r] = sum_c W[r][c] * X[n][c] for n < N; X is [N][cols], Y is [N][rows]
 * (sequence mode / training: many tokens against one weight read) */
void matmul(const matrix *W, const float *X, int N, float *Y, int n_threads);

/* Y[i] = X[i] W[i]ᵀ for i < n (each as matmul, N tokens) in ONE parallel
 * job: the products of a layer that share no data dependency (key, value,
 * receptance) are cut into chunks together, so the threads meet once
 * instead of n times. At decode each meeting costs a join plus the time the
 * faster thread waits for the other's last chunk. n <= MATMUL_GROUP_MAX. */
#define MATMUL_GROUP_MAX 8
void matmul_group(int n, const matrix *const *W, const float *const *X, int N, float *const *Y, int n_threads);

/* matmul and matmul_group for the rows of a batched step (one row per
 * stream): one row too goes through the matrix-matrix kernels, where
 * matmul hands it to decode's matrix-vector ones, so that a stream's row
 * has the same bits in a batch of one as in a batch of any size (a row's
 * sums there do not depend on the other rows). */
void matmul_batch(const matrix *W, const float *X, int N, float *Y, int n_threads);
void matmul_group_batch(int n, const matrix *const *W, const float *const *X, int N, float *const *Y, int n_threads);

/* How a threaded decode product of W is cut into row chunks for the pool:
 * n_big long chunks of `big` rows first, then chunks of `small` rows (the
 * last one shorter) up to `rows`; one chunk when W is not worth sharing
 * between threads. Every chunk but the last starts and ends on a multiple
 * of 16 rows (the grouped copies' groups, kernels/row_groups.h). */
typedef struct matvec_split {
    int rows, big, n_big, small, n_chunks;
} matvec_split;
matvec_split matvec_split_for(const matrix *W, int n_threads);
/* The same rows as one equal chunk per thread, without the short chunks
 * that let threads finish a job together: for the products of a group job
 * before its last, whose ends are not the job's end. Each short chunk
 * restarts a stream; the three 768 x 768 products of a 169M attention job
 * ran at the pace of a lone small product, about two thirds of a large
 * one's (docs/perf.md, change 54). */
matvec_split matvec_split_even(const matrix *W, int n_threads);
/* Rows [*r0, *r1) of chunk c < s->n_chunks. */
static inline void matvec_split_range(const matvec_split *s, int c, int *r0, int *r1) {
    *r0 = c < s->n_big ? c * s->big : s->n_big * s->big + (c - s->n_big) * s->small;
    *r1 = *r0 + (c < s->n_big ? s->big : s->small);
    if (*r1 > s->rows) *r1 = s->rows;
}

/* Row r of W converted to float32 (embedding lookup). */
void matrix_row_f32(const matrix *W, int r, float *out);

/* LN(x; w, b) = w * (x - mean) / sqrt(var + eps) + b, biased variance
 * (docs/model.md §0). x and y may alias. */
void layernorm(const float *x, const float *w, const float *b, int n, float eps, float *y);

/* Token shift mix: out = mu * cur + (1 - mu) * prev  (docs/model.md §1.2). */
void token_mix(const float *cur, const float *prev, const float *mu, int n, float *out);

/* GN_H(x; w, b, eps) for one token of H groups of N channels (RWKV-5/6/7's
 * ln_x): each group is normalised by its own mean and biased variance (eps
 * inside the sqrt), then y = w * xhat + b per channel (w, b: [H*N]). x and y
 * may alias. */
void group_norm(const float *x, const float *w, const float *b, int H, int N, float eps, float *y);

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Whether an 8-bit activation block's scale d (x ≈ d q, d = max|x| / 127)
 * takes the codes x / d: not when d is below the smallest normal float,
 * where 1 / d overflows to infinity (the codes would saturate, some with the
 * wrong sign) — such a block (|x| < 1.5e-36) is quantized as zeros —, nor
 * when d is NaN. */
static inline int activation_scale_ok(float d) { return d >= FLT_MIN; }

/* ------------------------------------------------------------------------ */
/* The kernel table and its selection (kernels/dispatch.c)                    */
/* ------------------------------------------------------------------------ */

/* Blocked matrix-matrix product of one instruction set: a register tile of
 * mr tokens x nr weight rows, fed from weight panels packed as [kc][nr]. */
typedef struct matmul_ukernel {
    int mr, nr;
    /* Y[i][j] (+)= sum_{c<kc} X[i][c] * Wp[c][j] for i < mr_valid, j < nr_valid;
     * X rows are ldx floats apart, Y rows ldy floats apart; accumulate = 0
     * overwrites Y. Wp holds nr floats per c (zero beyond nr_valid). */
    void (*run)(int kc, const float *Wp, const float *X, size_t ldx, float *Y, size_t ldy,
                int mr_valid, int nr_valid, int accumulate);
    /* The same from a panel of f16 values (converted exactly as loaded). */
    void (*run_f16)(int kc, const uint16_t *Wp, const float *X, size_t ldx, float *Y, size_t ldy,
                    int mr_valid, int nr_valid, int accumulate);
    /* As run, with X stored transposed: X[i][c] is X[c * ldx + i] (the
     * weight gradient's dYᵀ read in place: no transposed copy). */
    void (*run_xt)(int kc, const float *Wp, const float *X, size_t ldx, float *Y, size_t ldy,
                   int mr_valid, int nr_valid, int accumulate);
    /* Block-quantized weights in sequence mode with bf16 operands
     * (kernels/matmul_bf16.h): the same tile and panel sizes, NULL where the
     * variant has none; run only where kernels_cpu_supports("avx512bf16"). */
    void (*run_bf16)(int kc, const uint16_t *Wp, const uint16_t *X, size_t ldx, float *Y, size_t ldy,
                     int mr_valid, int nr_valid, int accumulate);
    void (*pack_bf16)(const matrix *W, int r0, int nr_valid, int c0, int kc, uint16_t *Wp, float *tmp,
                      void (*row_to_f32)(dtype, const void *, float *, int));
    void (*to_bf16)(const float *x, size_t n, uint16_t *out);
    /* As run_f16 from a panel of bf16 values (exact as loaded: the 16 bits
     * above 16 zero bits), for bf16 matrices packed once (matmul_pack_panels). */
    void (*run_bf16_panel)(int kc, const uint16_t *Wp, const float *X, size_t ldx, float *Y, size_t ldy,
                           int mr_valid, int nr_valid, int accumulate);
} matmul_ukernel;

struct wkv7_chunk_grad; /* kernels/wkv.h */
struct wkv4_grad;       /* kernels/wkv.h */

/* One table per variant: "scalar" (kernels/kernels_scalar.c, the portable
 * references), "avx2" (kernels/kernels_avx2.c) and "avx512"
 * (kernels/kernels_avx512.c). It holds every op that has more than one
 * implementation; the public entry points (matvec, layernorm, wkv4_forward,
 * ...) do the threading and call the active table's slot, so a variant only
 * writes single-threaded work on a slice of the data. One table is chosen
 * once, at the first call (CPU features, RWKV_KERNELS); nothing else in the
 * library compares variant names (kernels/dot_int8.c ranks them once, to pair
 * each table with its integer dot-product variant).
 *
 * Backends: all of today's tables run on the CPU and take host pointers. A
 * GPU backend is another table of this shape whose slots take device
 * pointers: it is registered next to the CPU ones in kernels/dispatch.c and
 * chosen by the model that owns the device memory, not by CPUID; the model
 * code above the table stays the same. */
typedef struct kernel_ops {
    const char *name; /* "scalar", "avx2", "avx512" */
    /* y[r - r0] = row r of W . x for r0 <= r < r1 (one thread's share). */
    void (*matvec_rows)(const matrix *W, const float *x, float *y, int r0, int r1);
    /* With int8 activations matvec_rows reads a Q4_K, Q5_K or Q6_K matrix's
     * grouped copy (matrix.groups) where it has one, on CPUs with this
     * feature ("" for any that runs the table); NULL: never */
    const char *kquant_groups;
    /* The k-quants' 8-bit path in two steps, so that the chunks of one
     * product share one quantization of x (kernels/kquant_q8.h): prepare
     * quantizes x into mem (kquant_bytes(W->cols) bytes, a multiple of 64,
     * 64-byte aligned)
     * for kquant_rows and returns mem, or NULL where the path does not
     * apply (matvec_rows then decides); NULL slots where the variant has no
     * such path. */
    size_t (*kquant_bytes)(int cols);
    void *(*kquant_prepare)(const matrix *W, const float *x, void *mem);
    void (*kquant_rows)(const matrix *W, const void *acts, float *y, int r0, int r1);
    /* kquant_rows for N tokens at once (acts[n] prepared for token n; token
     * n's rows at Y + n ldy), each row bit for bit its token's kquant_rows
     * (kernels/matmul.c: prompts and batched steps of Q4_K, Q5_K and Q6_K) */
    void (*kquant_tokens)(const matrix *W, const void *const *acts, int N, float *Y, size_t ldy, int r0, int r1);
    /* n elements of a row of any float/block type to f32 (n multiple of 32 for blocks). */
    void (*row_to_f32)(dtype t, const void *src, float *dst, int n);
    matmul_ukernel mm;
    /* Packs rows [r0, r0+nr_valid) x columns [c0, c0+kc) of W as Wp[c][mm.nr]
     * (zero rows past nr_valid); tmp holds mm.nr * kc floats. */
    void (*pack)(const matrix *W, int r0, int nr_valid, int c0, int kc, float *Wp, float *tmp);
    void (*layernorm)(const float *x, const float *w, const float *b, int n, float eps, float *y);
    void (*token_mix)(const float *cur, const float *prev, const float *mu, int n, float *out);
    void (*relu_square)(float *x, size_t n);
    void (*sigmoid_mul)(float *y, const float *r, size_t n);
    void (*sigmoid)(float *x, size_t n);
    void (*exp)(float *x, size_t n);
    void (*add_sigmoid_mul)(float *x, const float *r, const float *v, size_t n);
    /* RWKV-4 WKV on all C channels (kernels/wkv4.c, signature of wkv4_forward). */
    void (*wkv4_forward)(int T, int C, const float *d, const float *u, const float *k, const float *v,
                         float *aa, float *bb, float *pp, float *y);
    /* One state row S[h][i][.] of the RWKV-5/6 and RWKV-7 WKV over T tokens
     * (kernels/wkv5.c, kernels/wkv7.c: wkv5_row_fn, wkv7_row_fn). */
    void (*wkv5_row)(int T, int A, int N, int h, int i, const float *r, const float *k, const float *v,
                     const float *w, size_t w_stride, const float *u, float *s, float *y);
    void (*wkv7_row)(int T, int A, int N, int h, int i, const float *r, const float *w, const float *k,
                     const float *v, const float *a, const float *b, float *s, float *y);
    /* WKV7_BLOCK_ROWS rows i0.. of head h at once, the rows in the lanes of
     * a vector (kernels/wkv7.c, wkv7_block_fn): the same operations in the
     * same order per row as wkv7_row, so the same bits; NULL where the
     * variant has none. */
    void (*wkv7_block)(int T, int A, int N, int h, int i0, const float *r, const float *w, const float *k,
                       const float *v, const float *a, const float *b, float *S, float *y);
    /* Two rows of one token at once (kernels/wkv.h, wkv7_pair_fn), the same
     * bits as wkv7_row; NULL where the variant has none. */
    void (*wkv7_pair)(int A, int N, int h, int i, const float *r, const float *w, const float *k, const float *v,
                      const float *a, const float *b, const float *s, float *s_out, float *y);
    /* The backward of one chunk of one (sequence, head) pair of the RWKV-7
     * training WKV (kernels/wkv7_train.c, wkv7_chunk_grad in kernels/wkv.h). */
    void (*wkv7_backward_chunk)(const struct wkv7_chunk_grad *g);
    /* The RWKV-4 training backward of channels [c0, c0 + WKV4_GRAD_CHANNELS)
     * over all rows (kernels/wkv4.c, wkv4_grad in kernels/wkv.h). */
    void (*wkv4_backward_block)(const struct wkv4_grad *g, int c0);
} kernel_ops;

/* Whether decode products of W with table k read W's grouped copy
 * (matrix.groups, kernels/row_groups.h): worth making one at load. */
int matvec_reads_groups(const kernel_ops *k, const matrix *W);

/* The tables compiled in (x86 only for the SIMD ones). */
extern const kernel_ops kernels_scalar, kernels_avx2, kernels_avx512;

/* The variant in use: the best one this CPU runs, unless the environment
 * variable RWKV_KERNELS=scalar|avx2|avx512 names another (an unknown or
 * unsupported name falls back to the best). */
const kernel_ops *kernels_active(void);
/* A named variant if this CPU can run it, else NULL ("scalar" always works). */
const kernel_ops *kernels_get(const char *name);
/* Selects the variant used from now on (tests, benchmarks); returns 0 on
 * success, -1 when this CPU cannot run it. Not thread-safe against running kernels. */
int kernels_select(const char *name);
/* Every variant compiled in, in order scalar, avx2, avx512 (NULL-terminated). */
const kernel_ops *const *kernels_all(void);
/* 1 if this CPU (and OS) supports the variant; also answers for the
 * features "avxvnni" and "avx512vnni" (with VBMI) of kernels/dot_int8.h, and
 * "avx512bf16" of kernels/matmul_bf16.h. */
int kernels_cpu_supports(const char *name);

/* Element-wise parts of the forward pass, vectorised (selected variant):
 *   relu_square:      x = max(x, 0)^2                 (channel-mix key, docs/model.md §1.2)
 *   sigmoid_mul:      y = y * sigmoid(r)              (time-mix output gate)
 *   sigmoid_inplace:  x = sigmoid(x)                  (training keeps the gate itself; RWKV-7's gates)
 *   exp_inplace:      x = e^x                         (RWKV-7's decay)
 *   add_sigmoid_mul:  x = x + sigmoid(r) * v          (channel-mix residual) */
void relu_square(float *x, size_t n);
void sigmoid_mul(float *y, const float *r, size_t n);
void add_sigmoid_mul(float *x, const float *r, const float *v, size_t n);
void sigmoid_inplace(float *x, size_t n);
void exp_inplace(float *x, size_t n);

/* Runs fn(ctx, c) for every chunk c < n_chunks on up to n_threads threads
 * (the caller's included) of a small pool (kernels/pool.c). Chunks are
 * claimed dynamically, and the caller waits only for chunks already claimed,
 * so a busy machine never stalls a loop on a thread that got no CPU.
 * RWKV_THREADING=openmp runs the loops as OpenMP loops instead (comparisons). */
typedef void (*parallel_fn)(void *ctx, int chunk);
void parallel_for(int n_threads, int n_chunks, parallel_fn fn, void *ctx);

/* parallel_for for loops whose chunks touch data that should stay in one
 * core's caches from call to call (the WKV states of a decode step): thread
 * i of n (the caller is 0) runs chunks i n_chunks / n .. (i + 1) n_chunks / n
 * - 1 on every call while it keeps its core, and takes the others' chunks
 * only when they are still unclaimed after its own (a late thread holds
 * nothing up, as above). More than PARALLEL_PINNED_MAX chunks run on the
 * caller alone. */
#define PARALLEL_PINNED_MAX 32
void parallel_for_pinned(int n_threads, int n_chunks, parallel_fn fn, void *ctx);

/* Row loops (layer norm, token shift, gates over [T][C] activations):
 * fn(ctx, r) for every r < n_rows, the rows grouped into a few contiguous
 * ranges per thread on the same pool. Runs on the caller alone when the
 * whole loop is smaller than PARALLEL_MIN_WORK (row_work = floats touched
 * per row), where waking a thread costs more than it saves. Every row is
 * computed by one thread with the same code, so results do not depend on
 * n_threads. */
#define PARALLEL_MIN_WORK 16384
typedef void (*parallel_row_fn)(void *ctx, int row);
void parallel_rows(int n_threads, int n_rows, size_t row_work, parallel_row_fn fn, void *ctx);
/* The same as a pinned loop (parallel_for_pinned): each thread the same
 * ranges of rows on every call while it keeps its core. */
void parallel_rows_pinned(int n_threads, int n_rows, size_t row_work, parallel_row_fn fn, void *ctx);

/* Scalar references (single thread), the oracle every variant is tested against. */
void relu_square_scalar(float *x, size_t n);
void sigmoid_mul_scalar(float *y, const float *r, size_t n);
void sigmoid_scalar(float *x, size_t n);
void exp_scalar(float *x, size_t n);
void add_sigmoid_mul_scalar(float *x, const float *r, const float *v, size_t n);
void matvec_scalar(const matrix *W, const float *x, float *y);
void matvec_rows_scalar(const matrix *W, const float *x, float *y, int r0, int r1);
void matmul_scalar(const matrix *W, const float *X, int N, float *Y);
void layernorm_scalar(const float *x, const float *w, const float *b, int n, float eps, float *y);
void token_mix_scalar(const float *cur, const float *prev, const float *mu, int n, float *out);
/* The scalar table's matmul micro-kernel (4 tokens x 8 rows) and packing. */
void matmul_ukernel_scalar(int kc, const float *Wp, const float *X, size_t ldx, float *Y, size_t ldy, int mr,
                           int nr, int accumulate);
void matmul_ukernel_scalar_f16(int kc, const uint16_t *Wp, const float *X, size_t ldx, float *Y, size_t ldy, int mr,
                               int nr, int accumulate);
void matmul_ukernel_scalar_bf16(int kc, const uint16_t *Wp, const float *X, size_t ldx, float *Y, size_t ldy, int mr,
                               int nr, int accumulate);
void matmul_ukernel_scalar_xt(int kc, const float *Wp, const float *X, size_t ldx, float *Y, size_t ldy, int mr,
                              int nr, int accumulate);
void matmul_pack_scalar(const matrix *W, int r0, int nr_valid, int c0, int kc, float *Wp, float *tmp);

/* Packing once (matrix.panels): whether W's dtype has panels of its own
 * dtype for variant k (f32, f16, and bf16 where k reads bf16 panels), the
 * bytes they take, and the packing into dst (64-byte aligned; layout in
 * kernels/matmul.c). */
int matmul_packs(const kernel_ops *k, const matrix *W);
size_t matmul_panel_bytes(const kernel_ops *k, const matrix *W);
void matmul_pack_panels(const kernel_ops *k, const matrix *W, void *dst);

/* Activations of the block-quantized weights' products (kernels/dot_int8.h,
 * the k-quants' kernels/kquant_q8.h, and in sequence mode kernels/matmul_bf16.h):
 * 1 (the default) quantizes x to int8 blocks and multiplies in integers in
 * decode, and in products of several tokens (prompts, batched steps) of the
 * 32-weight formats and the k-quants where the variant has the tiled
 * kernels (kernels/matmul.c); those products on other CPUs round x and the
 * weights to bf16 where the CPU has AVX-512 BF16; 0 keeps x in float32
 * (closer to the float model, slower). The environment
 * variable RWKV_ACTIVATIONS=f32|int8 sets it at start; the setter changes it
 * for the whole process (not thread-safe against running kernels). */
int kernels_int8_activations(void);
void kernels_set_int8_activations(int on);

/* Products with an explicit variant (tests/benchmarks); matvec/matmul use kernels_active(). */
void matvec_with(const kernel_ops *k, const matrix *W, const float *x, float *y, int n_threads);
void matmul_with(const kernel_ops *k, const matrix *W, const float *X, int N, float *Y, int n_threads);

/* ------------------------------------------------------------------------ */
/* Quantization (kernels/quant.c): ggml-compatible Q8_0 / Q4_0 / Q4_1 / Q5_0 /
 * Q5_1 and the k-quants Q4_K / Q5_K / Q6_K */
/* ------------------------------------------------------------------------ */

/* Quantizes n float32 values (n a multiple of the block size) into blocks of type t at dst
 * (dtype_bytes_for(t, n) bytes). Returns 0, or -1 for a non-block type. */
int quantize_row(dtype t, const float *src, void *dst, size_t n);

/* How the k-quants choose their sub-block scales: KQUANT_MAX_SCALE covers
 * each sub-block's whole range (bounded worst-case error, docs/quantization.md);
 * KQUANT_SEARCH (what quantize_row uses) searches the scale of lowest
 * weighted squared error, as ggml does, and may clip an outlier to do so.
 * The 32-weight types ignore it. */
typedef enum kquant_scales { KQUANT_MAX_SCALE, KQUANT_SEARCH } kquant_scales;
int quantize_row_scales(dtype t, const float *src, void *dst, size_t n, kquant_scales how);

#endif
