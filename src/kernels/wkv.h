/* The WKV operators of every RWKV version, side by side. Each lives in its
 * own file with its equations, its scalar reference and (where it has one)
 * its backward:
 *
 *   kernels/wkv4.c  RWKV-4: a per-channel weighted average with a scalar
 *                   state (a, b, p); forward for inference, forward over a
 *                   training batch, and the backward of the batch forward.
 *   kernels/wkv5.c  RWKV-5.2 / RWKV-6: a matrix-valued state per head,
 *                   decayed and fed by k v^T.
 *   kernels/wkv7.c  RWKV-7: the same state updated by the generalised delta rule.
 *
 * The variants of each (kernel_ops.wkv4_forward, .wkv5_row, .wkv7_row) are
 * compared with the scalar references in tests/test_wkv.c. */
#ifndef RWKV_KERNELS_WKV_H
#define RWKV_KERNELS_WKV_H

#include "kernels/kernels.h"

/* ---- RWKV-4 (kernels/wkv4.c) ------------------------------------------- */

/* WKV over T steps for C channels, the stable recurrence of kernels/wkv4.c.
 * d = -exp(time_decay) (per-step log decay), u = time_first; k, v, y are
 * [T][C]; (aa, bb, pp) is the state [C] each, read and updated in place.
 * Runs the active table's variant on the calling thread. */
void wkv4_forward(int T, int C, const float *d, const float *u, const float *k, const float *v,
                  float *aa, float *bb, float *pp, float *y);

/* The scalar reference of wkv4_forward on channels [c0, c1) of C (arrays
 * keep their full [T][C] / [C] layout): the whole operator with c0 = 0,
 * c1 = C, and the channels a SIMD variant leaves over past its last full
 * vector. */
void wkv4_forward_scalar(int T, int C, int c0, int c1, const float *d, const float *u, const float *k,
                         const float *v, float *aa, float *bb, float *pp, float *y);

/* WKV forward over B independent rows of T steps, each from the zero state
 * (a = b = 0, p = -1e38), with wkv4_forward (training). d = -exp(time_decay)
 * and u are [C]; k, v, y are [B][T][C]. `state` is scratch of 3·B·C floats.
 * The backward needs only y (besides d, u, k, v). */
void wkv4_forward_batch(int B, int T, int C, const float *d, const float *u, const float *k,
                       const float *v, float *state, float *y, int n_threads);

/* The backward of wkv4_forward_batch (the two sweeps of kernels/wkv4.c).
 * Given gy = dL/dy [B][T][C], writes gk, gv [B][T][C] and ADDS dL/dθ
 * (θ = time_decay, via gθ = d·Gd) and dL/du into gtheta, gu [C], summed
 * over the B rows in order. gk and gv serve as the scratch of the first
 * sweep; one of them (not both) may be gy itself. */
void wkv4_backward(int B, int T, int C, const float *d, const float *u, const float *k,
                  const float *v, const float *y, const float *gy, float *gk, float *gv,
                  float *gtheta, float *gu, int n_threads);
/* wkv4_backward on an explicit variant (tests). */
void wkv4_backward_with(const kernel_ops *ops, int B, int T, int C, const float *d, const float *u, const float *k,
                        const float *v, const float *y, const float *gy, float *gk, float *gv, float *gtheta,
                        float *gu, int n_threads);

/* The backward's unit of work: WKV4_GRAD_CHANNELS adjacent channels (a
 * cache line of each step; one AVX-512 vector) over all B rows in order, so
 * the sums over rows are the same whatever the thread count. The variants
 * (kernel_ops.wkv4_backward_block): the scalar reference, and AVX-512 with
 * the channels in the lanes of one vector and its own exponential (about 1
 * ulp, against libm's 0.5). */
enum { WKV4_GRAD_CHANNELS = 16 };
#define WKV4_EMPTY_P (-1e38f) /* p of the empty state: "no past terms yet" */
typedef struct wkv4_grad {
    int B, T, C;
    const float *d, *u, *k, *v, *y, *gy;
    float *gk, *gv, *gtheta, *gu;
} wkv4_grad;
void wkv4_backward_block_scalar(const wkv4_grad *g, int c0);
void wkv4_backward_block_avx512(const wkv4_grad *g, int c0);

/* ---- RWKV-5/6/7: the matrix-valued state --------------------------------
 *
 * Layout everywhere: a token's attention vector of A = H*N floats is H
 * contiguous heads of N channels; the state of one layer's heads is
 * S[h][i][j] (H*N*N floats, row-major), i = value channel, j = key channel —
 * the layout of the public rwkv_state. Every row S[h][i][.] evolves
 * independently of the others, which is how the kernels split the work
 * across threads (a variant's slot computes one row); within a row, time is
 * the outer loop, so RNN mode (T = 1) and sequence mode (T > 1) do the same
 * arithmetic in the same order and agree bit for bit. The state is always
 * float32. */

/* RWKV-5.2 / RWKV-6 WKV over T tokens (r, k, v, y: [T][H*N]):
 *     y_i  = sum_j r_j (S_ij + u_j k_j v_i)      (y from the state before the token)
 *     S_ij = w_j S_ij + k_j v_i
 * w holds per-step decay multipliers in (0, 1): one [H*N] vector per token
 * w_stride floats apart (RWKV-6: w_stride = H*N), or the same vector for
 * every token (RWKV-5: w_stride = 0). u: the bonus [H*N]. S is updated in
 * place. */
void wkv5_forward(int T, int H, int N, const float *r, const float *k, const float *v, const float *w,
                  size_t w_stride, const float *u, float *S, float *y, int n_threads);

/* RWKV-7 WKV over T tokens (every argument but S is [T][H*N]), the
 * generalised delta rule with a = -kappa, b = kappa * alpha:
 *     S_ij = S_ij w_j + (sum_l S_il a_l) b_j + v_i k_j     (old S in every term)
 *     y_i  = sum_j S_ij r_j                                 (new S) */
void wkv7_forward(int T, int H, int N, const float *r, const float *w, const float *k, const float *v,
                  const float *a, const float *b, float *S, float *y, int n_threads);
/* Heads h0 .. h1 - 1 of wkv7_forward on the calling thread (the same bits:
 * a caller runs its own split of the heads over its threads). */
void wkv7_forward_heads(int T, int H, int N, int h0, int h1, const float *r, const float *w, const float *k,
                        const float *v, const float *a, const float *b, float *S, float *y);

/* RWKV-7's preparation of one token's WKV inputs (A channels, heads of N)
 * from its products' outputs, for inference (model/rwkv7.c) and training
 * (train/rwkv7_grad.c) alike, so that both take the same operations in the
 * same order:
 *     decay = exp(-e^-1/2 σ(w0 + dw)),   alpha = σ(a0 + da),
 *     v = v + (v_first - v) σ(v0 + dv)    (blocks after the first: v0 given),
 *     kappa = k k_k / |k k_k| per head,  k' = k (1 + (alpha - 1) k_a),
 *     a = -kappa,  b = kappa alpha.
 * Outputs may alias the inputs named beside them; kappa and knorm (the
 * heads' norms |k k_k|, A / N of them) are written only when given. */
/* e^-1/2; ChatRWKV and rwkv.cpp write 0.606531, which the reference vectors
 * show is far inside their tolerance either way */
#define WKV7_DECAY_SCALE 0.60653065971263342f
#define WKV7_KK_EPS 1e-12f                    /* the clamp of kappa's per-head norm */
typedef struct wkv7_prep {
    const float *w0, *a0, *v0, *k_k, *k_a; /* the block's vectors [A]; v0 NULL: no value residual */
    float *sigw;                           /* in: dw; out: σ(w0 + dw) */
    float *decay;                          /* out (may be sigw) */
    float *alpha;                          /* in: da; out: σ(a0 + da) (unless b is alpha) */
    float *vgate;                          /* in: dv; out: σ(v0 + dv) (v0 given) */
    const float *v_raw, *v_first;          /* the token's values, block 0's */
    float *v;                              /* out (may be v_raw) */
    const float *k_raw;                    /* the key product's output */
    float *k;                              /* out: k' (may be k_raw) */
    float *kappa, *knorm;                  /* out when given */
    float *a, *b;                          /* out: -kappa, kappa alpha (b may be alpha) */
} wkv7_prep;
void wkv7_prepare(const wkv7_prep *p, int A, int N);

/* ---- RWKV-7 training (kernels/wkv7_train.c) ------------------------------
 *
 * B independent sequences of T tokens, each from the zero state; every
 * per-token array is [B][T][H*N]. The forward saves the state before every
 * WKV7_CHUNK tokens in ckpt (wkv7_checkpoint_floats); the backward needs
 * those and the inputs, not y. scratch holds wkv7_scratch_floats(N,
 * n_threads) floats. Results do not depend on the thread count. */
enum { WKV7_CHUNK = 16 };
size_t wkv7_checkpoint_floats(int B, int T, int H, int N);
size_t wkv7_scratch_floats(int N, int n_threads);
void wkv7_forward_batch(int B, int T, int H, int N, const float *r, const float *w, const float *k, const float *v,
                        const float *a, const float *b, float *ckpt, float *y, float *scratch, int n_threads);
/* Given dy = dL/dy, writes dr, dw, dk, dv, da, db (dL/d of each input, same
 * layout; dw is with respect to the decay multiplier w itself). */
void wkv7_backward(int B, int T, int H, int N, const float *r, const float *w, const float *k, const float *v,
                   const float *a, const float *b, const float *ckpt, const float *dy, float *dr, float *dw,
                   float *dk, float *dv, float *da, float *db, float *scratch, int n_threads);

/* One chunk of one (sequence, head) pair of the backward: len steps; every
 * input and gradient pointer is at the chunk's first token and the head's
 * first channel, token s at offset s*A. states holds the state before each
 * step and after the last ((len + 1) N² floats); dS is dL/dS after the last
 * step on entry and dL/dS before the first on return. Writes dr, dw, dk, dv,
 * da, db of the chunk's tokens. The variants (kernel_ops.wkv7_backward_chunk):
 * the scalar reference and its AVX2 build with fused multiply-adds (the same
 * sums, rounded once instead of twice) in kernels/wkv7_train.c, and an
 * AVX-512 kernel of full-width vectors in kernels/wkv7_train_avx512.c (the
 * same sums in another order). */
typedef struct wkv7_chunk_grad {
    int len, A, N;
    const float *r, *w, *k, *v, *a, *b, *dy, *states;
    float *dr, *dw, *dk, *dv, *da, *db, *dS;
} wkv7_chunk_grad;
void wkv7_backward_chunk_scalar(const wkv7_chunk_grad *g);
void wkv7_backward_chunk_avx2(const wkv7_chunk_grad *g);
void wkv7_backward_chunk_avx512(const wkv7_chunk_grad *g);
/* wkv7_backward on an explicit variant (tests). */
void wkv7_backward_with(const kernel_ops *ops, int B, int T, int H, int N, const float *r, const float *w,
                        const float *k, const float *v, const float *a, const float *b, const float *ckpt,
                        const float *dy, float *dr, float *dw, float *dk, float *dv, float *da, float *db,
                        float *scratch, int n_threads);

/* The same with an explicit variant's rows (tests); the two above use kernels_active(). */
void wkv5_forward_with(const kernel_ops *ops, int T, int H, int N, const float *r, const float *k, const float *v,
                       const float *w, size_t w_stride, const float *u, float *S, float *y, int n_threads);
void wkv7_forward_with(const kernel_ops *ops, int T, int H, int N, const float *r, const float *w, const float *k,
                       const float *v, const float *a, const float *b, float *S, float *y, int n_threads);

/* Row i of head h: s = S[h][i][.] (N floats), A = H*N the stride of a token.
 * The scalar builds are the references (kernels_scalar's slots); the AVX2
 * builds of the same source are the SIMD tables' slots (x86 only). */
typedef void (*wkv5_row_fn)(int T, int A, int N, int h, int i, const float *r, const float *k, const float *v,
                            const float *w, size_t w_stride, const float *u, float *s, float *y);
typedef void (*wkv7_row_fn)(int T, int A, int N, int h, int i, const float *r, const float *w, const float *k,
                            const float *v, const float *a, const float *b, float *s, float *y);
void wkv5_row_scalar(int T, int A, int N, int h, int i, const float *r, const float *k, const float *v,
                     const float *w, size_t w_stride, const float *u, float *s, float *y);
void wkv5_row_avx2(int T, int A, int N, int h, int i, const float *r, const float *k, const float *v,
                   const float *w, size_t w_stride, const float *u, float *s, float *y);
void wkv7_row_scalar(int T, int A, int N, int h, int i, const float *r, const float *w, const float *k,
                     const float *v, const float *a, const float *b, float *s, float *y);
void wkv7_row_avx2(int T, int A, int N, int h, int i, const float *r, const float *w, const float *k,
                   const float *v, const float *a, const float *b, float *s, float *y);

/* Rows i0 .. i0 + WKV7_BLOCK_ROWS - 1 of head h (S: their rows, N floats
 * apart) over T tokens: each row's arithmetic is wkv7_row's, in the same
 * order, with the rows in the lanes of one vector and the state block held
 * transposed (column j of the block in one vector) while the tokens run, so
 * no dot product needs a horizontal sum. For N a multiple of
 * WKV7_BLOCK_ROWS, N <= WKV7_BLOCK_MAX_N; worth its two transposes from
 * WKV7_BLOCK_MIN_T tokens on. */
enum { WKV7_BLOCK_ROWS = 16, WKV7_BLOCK_MAX_N = 256, WKV7_BLOCK_MIN_T = 4 };
typedef void (*wkv7_block_fn)(int T, int A, int N, int h, int i0, const float *r, const float *w, const float *k,
                              const float *v, const float *a, const float *b, float *S, float *y);
/* Rows i and i + 1 of head h (s: row i's state, row i + 1's N floats
 * after it; s_out: where their states after the token go, s itself or two
 * rows elsewhere, so that the training's recomputation of a chunk's states
 * needs no copy) for one token: wkv7_row's arithmetic in its order for each, the
 * two rows' partial sums side by side in one vector, so the same bits. A
 * decode step of one token, where the blocks' transposes would cost more
 * than the rows: row by row, each row's dot products are chains of
 * dependent additions and half a vector wide. For N a multiple of
 * WKV7_PAIR_STEP. y NULL: the states alone (the training's recomputation,
 * which needs no outputs), the same bits. */
enum { WKV7_PAIR_STEP = 8 };
typedef void (*wkv7_pair_fn)(int A, int N, int h, int i, const float *r, const float *w, const float *k,
                             const float *v, const float *a, const float *b, const float *s, float *s_out, float *y);
static inline int wkv7_pair_fits(wkv7_pair_fn fn, int T, int N) { return fn && T == 1 && N % WKV7_PAIR_STEP == 0; }

/* Whether fn (a variant's wkv7_block, or NULL) takes T tokens of heads of N;
 * else the rows run. */
static inline int wkv7_block_fits(wkv7_block_fn fn, int T, int N) {
    return fn && T >= WKV7_BLOCK_MIN_T && N % WKV7_BLOCK_ROWS == 0 && N <= WKV7_BLOCK_MAX_N;
}

#endif
