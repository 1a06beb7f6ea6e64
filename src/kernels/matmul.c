/* Matrix-matrix product for sequence mode and training: Y = X Wᵀ.
 *
 * Cache blocking (the usual GEMM structure): the reduction dimension is cut
 * into KC-column slices; for each slice, NR weight rows are converted to f32
 * and packed as a [kc][NR] panel (about 24-48 KB, stays in L1), then the
 * variant's register-tiled micro-kernel (kernel_ops.mm) sweeps all N tokens
 * MR at a time over that panel, reading the X slice (N x kc, kept in L2).
 * Every weight byte is read and converted once per call. A panel is the
 * unit of work threads claim (parallel_for, kernels/pool.c), so no two
 * threads write the same output.
 *
 * With few tokens (the batched decode: one row per stream) packing costs
 * more than the products, so a model may pack its f32/f16 matrices once,
 * at load (matrix.panels, matmul_pack_panels): the panels then come from
 * memory as they are, f16 converted exactly by the micro-kernel as it
 * loads them, and every result keeps its bits.
 *
 * matmul_scalar is the plain reference (one thread, sums in index order). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot_int8.h"
#include "kernels/kernels.h"
#include "kernels/row_groups.h"

#define KC 384 /* multiple of 32 (block formats); divides 768 and 3072 */
#define MATMUL_MAX_NR 32 /* widest panel of any variant */

/* Columns per slice: a slice must hold whole blocks (k-quant super-blocks are 256 wide). */
static int slice_cols(const matrix *W) { return dtype_block_elems(W->type) > 32 ? 256 : KC; }

void matmul_scalar(const matrix *W, const float *X, int N, float *Y) {
    enum { CHUNK = 256 }; /* a multiple of 32 (block formats) */
    const int rows = W->rows, cols = W->cols;
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)cols);
    float w[CHUNK];
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)r * rb;
        for (int n = 0; n < N; n++) Y[(size_t)n * rows + r] = 0.0f;
        /* Y carries each sum across chunks, so every sum still runs over c in order */
        for (int c0 = 0; c0 < cols; c0 += CHUNK) {
            int len = cols - c0 < CHUNK ? cols - c0 : CHUNK;
            dtype_to_f32(W->type, row + dtype_bytes_for(W->type, (uint64_t)c0), w, (size_t)len);
            for (int n = 0; n < N; n++) {
                const float *x = X + (size_t)n * cols + c0;
                float acc = Y[(size_t)n * rows + r];
                for (int c = 0; c < len; c++) acc += w[c] * x[c];
                Y[(size_t)n * rows + r] = acc;
            }
        }
    }
}

/* A half-precision panel element as a float: f16, or bf16 where brain. */
static inline float half_to_f32(uint16_t h, int brain) { return brain ? bf16_to_f32(h) : f16_to_f32(h); }

/* The scalar variant's micro-kernel: 4 tokens x 8 rows, from an f32 panel
 * (Wp) or a half-precision one (Wh: f16, or bf16 where brain); X[i][c] is
 * X[i * xi + c * xc]. */
static inline void ukernel_scalar(int kc, const float *Wp, const uint16_t *Wh, int brain, const float *X, size_t xi,
                                  size_t xc, float *Y, size_t ldy, int mr, int nr, int accumulate) {
    float acc[4][8];
    memset(acc, 0, sizeof acc);
    for (int c = 0; c < kc; c++)
        for (int i = 0; i < mr; i++) {
            float xv = X[(size_t)i * xi + (size_t)c * xc];
            for (int j = 0; j < 8; j++) acc[i][j] += xv * (Wh ? half_to_f32(Wh[c * 8 + j], brain) : Wp[c * 8 + j]);
        }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) Y[(size_t)i * ldy + j] = accumulate ? Y[(size_t)i * ldy + j] + acc[i][j] : acc[i][j];
}

void matmul_ukernel_scalar(int kc, const float *Wp, const float *X, size_t ldx, float *Y, size_t ldy, int mr,
                           int nr, int accumulate) {
    ukernel_scalar(kc, Wp, NULL, 0, X, ldx, 1, Y, ldy, mr, nr, accumulate);
}

void matmul_ukernel_scalar_f16(int kc, const uint16_t *Wp, const float *X, size_t ldx, float *Y, size_t ldy, int mr,
                               int nr, int accumulate) {
    ukernel_scalar(kc, NULL, Wp, 0, X, ldx, 1, Y, ldy, mr, nr, accumulate);
}

void matmul_ukernel_scalar_bf16(int kc, const uint16_t *Wp, const float *X, size_t ldx, float *Y, size_t ldy, int mr,
                                int nr, int accumulate) {
    ukernel_scalar(kc, NULL, Wp, 1, X, ldx, 1, Y, ldy, mr, nr, accumulate);
}

void matmul_ukernel_scalar_xt(int kc, const float *Wp, const float *X, size_t ldx, float *Y, size_t ldy, int mr,
                              int nr, int accumulate) {
    ukernel_scalar(kc, Wp, NULL, 0, X, 1, ldx, Y, ldy, mr, nr, accumulate);
}

/* The scalar variant's packing: rows converted one at a time (tmp holds
 * kc floats), then written transposed into Wp[c][8]. */
void matmul_pack_scalar(const matrix *W, int r0, int nr_valid, int c0, int kc, float *Wp, float *tmp) {
    const int NR = 8;
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)W->cols);
    const uint8_t *base = W->data;
    for (int j = 0; j < NR; j++) {
        if (j >= nr_valid) {
            for (int c = 0; c < kc; c++) Wp[(size_t)c * NR + j] = 0.0f;
            continue;
        }
        const uint8_t *row = base + (size_t)(r0 + j) * rb;
        const float *src;
        if (W->type == DT_F32) {
            src = (const float *)row + c0;
        } else {
            dtype_to_f32(W->type, row + dtype_bytes_for(W->type, (uint64_t)c0), tmp, (size_t)kc);
            src = tmp;
        }
        for (int c = 0; c < kc; c++) Wp[(size_t)c * NR + j] = src[c];
    }
}

typedef struct matmul_job {
    const kernel_ops *k;
    const matrix *W;
    const float *X;
    const uint16_t *Xh; /* X rounded to bf16 when the bf16 products run (bf16_operand), else NULL */
    float *Y;
    int N;
} matmul_job;

typedef struct bf16_rows_job {
    const kernel_ops *k;
    const float *X;
    uint16_t *Xh;
    int cols;
} bf16_rows_job;

static void bf16_row(void *p, int n) {
    const bf16_rows_job *j = p;
    const size_t o = (size_t)n * (size_t)j->cols;
    j->k->mm.to_bf16(j->X + o, (size_t)j->cols, j->Xh + o);
}

/* The bf16 products (kernels/matmul_bf16.h) take block-quantized weights in
 * sequence mode when the variant has them, the CPU runs them and the
 * reduced-precision activations are on; X is then rounded to bf16 once per
 * product. NULL: the float path (also when there is no memory for it).
 * Rows of whole blocks (32 or 256) give the bf16 pairs an even width. */
static uint16_t *bf16_operand(const kernel_ops *k, const matrix *W, const float *X, int N, int n_threads) {
    if (!dtype_is_block(W->type) || !k->mm.run_bf16 || !kernels_int8_activations() ||
        !kernels_cpu_supports("avx512bf16"))
        return NULL;
    uint16_t *Xh = malloc((size_t)N * (size_t)W->cols * sizeof *Xh);
    if (Xh) {
        bf16_rows_job j = {k, X, Xh, W->cols};
        parallel_rows(n_threads, N, 3 * (size_t)W->cols, bf16_row, &j);
    }
    return Xh;
}

/* One slice of one panel against all N tokens with bf16 operands. */
static void matmul_panel_bf16(const matmul_job *j, int r0, int nr, int c0, int kc, uint16_t *Wp, float *tmp) {
    const kernel_ops *k = j->k;
    const int rows = j->W->rows, cols = j->W->cols, MR = k->mm.mr;
    k->mm.pack_bf16(j->W, r0, nr, c0, kc, Wp, tmp, k->row_to_f32);
    for (int n0 = 0; n0 < j->N; n0 += MR) {
        const int mr = j->N - n0 < MR ? j->N - n0 : MR;
        k->mm.run_bf16(kc, Wp, j->Xh + (size_t)n0 * cols + c0, (size_t)cols, j->Y + (size_t)n0 * rows + r0,
                       (size_t)rows, mr, nr, c0 > 0);
    }
}

/* Panels packed once (matrix.panels): panel p (rows p*NR ...) is NR*cols
 * elements, its slices one after the other, each [kc][NR] as k->pack
 * writes it, in the matrix's own dtype (f16 and bf16 convert exactly on
 * load, so the products are those of panels packed per call). */
int matmul_packs(const kernel_ops *k, const matrix *W) {
    return W->type == DT_F32 || W->type == DT_F16 || (W->type == DT_BF16 && k->mm.run_bf16_panel);
}

static size_t panel_elem_offset(const matrix *W, int NR, int panel, int c0) {
    return ((size_t)panel * NR * (size_t)W->cols) + (size_t)c0 * NR;
}

size_t matmul_panel_bytes(const kernel_ops *k, const matrix *W) {
    const size_t panels = (size_t)(W->rows + k->mm.nr - 1) / (size_t)k->mm.nr;
    return panels * (size_t)k->mm.nr * (size_t)W->cols * dtype_bytes_for(W->type, 1);
}

void matmul_pack_panels(const kernel_ops *k, const matrix *W, void *dst) {
    const int NR = k->mm.nr, kc_max = slice_cols(W), panels = (W->rows + NR - 1) / NR;
    const size_t es = dtype_bytes_for(W->type, 1), rb = es * (size_t)W->cols;
    for (int p = 0; p < panels; p++)
        for (int c0 = 0; c0 < W->cols; c0 += kc_max) {
            const int kc = W->cols - c0 < kc_max ? W->cols - c0 : kc_max;
            uint8_t *out = (uint8_t *)dst + es * panel_elem_offset(W, NR, p, c0);
            for (int j = 0; j < NR; j++) {
                const int r = p * NR + j;
                const uint8_t *row = (const uint8_t *)W->data + (size_t)r * rb + es * (size_t)c0;
                for (int c = 0; c < kc; c++) {
                    uint8_t *o = out + es * ((size_t)c * NR + j);
                    if (r < W->rows) memcpy(o, row + es * (size_t)c, es);
                    else memset(o, 0, es);
                }
            }
        }
}

/* One chunk = one panel of NR weight rows against all N tokens. */
static void matmul_panel(void *p, int panel) {
    /* per-thread packing buffers, reused across calls (the pool keeps its threads) */
    static _Thread_local float Wp[KC * MATMUL_MAX_NR] __attribute__((aligned(64)));
    static _Thread_local float tmp[KC * MATMUL_MAX_NR] __attribute__((aligned(64)));
    const matmul_job *j = p;
    const kernel_ops *k = j->k;
    const matrix *W = j->W;
    const int rows = W->rows, cols = W->cols, MR = k->mm.mr, NR = k->mm.nr, N = j->N, kc_max = slice_cols(W);
    const int r0 = panel * NR, nr = rows - r0 < NR ? rows - r0 : NR;
    const int packed = W->panels && W->panel_nr == NR;
    for (int c0 = 0; c0 < cols; c0 += kc_max) {
        int kc = cols - c0 < kc_max ? cols - c0 : kc_max;
        if (j->Xh) {
            matmul_panel_bf16(j, r0, nr, c0, kc, (uint16_t *)(void *)Wp, tmp);
            continue;
        }
        const float *wp = Wp;
        const uint16_t *wh = NULL; /* a packed f16 or bf16 panel */
        if (!packed) k->pack(W, r0, nr, c0, kc, Wp, tmp);
        else if (W->type == DT_F16 || W->type == DT_BF16)
            wh = (const uint16_t *)W->panels + panel_elem_offset(W, NR, panel, c0);
        else wp = (const float *)W->panels + panel_elem_offset(W, NR, panel, c0);
        for (int n0 = 0; n0 < N; n0 += MR) {
            int mr = N - n0 < MR ? N - n0 : MR;
            const float *x = j->X + (size_t)n0 * cols + c0;
            float *y = j->Y + (size_t)n0 * rows + r0;
            if (wh && W->type == DT_BF16) k->mm.run_bf16_panel(kc, wh, x, (size_t)cols, y, (size_t)rows, mr, nr, c0 > 0);
            else if (wh) k->mm.run_f16(kc, wh, x, (size_t)cols, y, (size_t)rows, mr, nr, c0 > 0);
            else k->mm.run(kc, wp, x, (size_t)cols, y, (size_t)rows, mr, nr, c0 > 0);
        }
    }
}

/* ---- several tokens through the decode's integer kernels ----
 * With int8 activations, a product of several tokens (a prompt, a batched
 * decode step) with a block-format matrix that has its grouped
 * copy goes through the decode's kernels, each group of 16 weight rows
 * unpacked once for a tile of tokens (int8_dot_ops.groups_tokens). Every
 * row of every token is then bit for bit its decode step, whatever the
 * number of tokens, the call they came in or the thread count — a batch's
 * row equals the same token fed alone or inside a prompt — and a few tokens
 * cost about what one does (no panels to convert). Q4_K, Q5_K and Q6_K go
 * the same way through kernel_ops.kquant_tokens; variants without the
 * tiled kernels keep the panels. */
typedef struct int8_tokens {
    int N; /* 0: the panels' path */
    const int8_dot_ops *d;
    const kernel_ops *k;
    matvec_split split;
    act_q8 *a; /* [N]: each token's x as the decode quantizes it (32-weight formats) */
    void *mem;
    void *tokens; /* the same gathered for d->groups_tokens, once for every chunk */
    void **kq; /* [N]: the same for the k-quants (k->kquant_prepare, each in memory of its own), else NULL */
} int8_tokens;

typedef struct quantize_job {
    const int8_tokens *f;
    const matrix *W;
    const float *X;
} quantize_job;

static void quantize_token(void *p, int n) {
    const quantize_job *j = p;
    const float *x = j->X + (size_t)n * j->W->cols;
    if (!j->f->kq) {
        j->f->d->quantize(x, &j->f->a[n]);
        return;
    }
    const kernel_ops *k = j->f->k;
    void *mem = aligned_alloc(64, k->kquant_bytes(j->W->cols));
    if (!(j->f->kq[n] = mem ? k->kquant_prepare(j->W, x, mem) : NULL)) free(mem);
}

static void int8_tokens_release(int8_tokens *f) {
    if (f->kq)
        for (int n = 0; n < f->N; n++) free(f->kq[n]);
    free(f->kq);
    f->N = 0, f->a = NULL, f->mem = NULL, f->kq = NULL, f->tokens = NULL;
}

static size_t round64(size_t n) { return (n + 63) / 64 * 64; }

static int is_kquant(const matrix *W) { return dtype_block_elems(W->type) == 256; }

/* Bytes of scratch the tiled path takes for W and N tokens (the 32-weight
 * formats' activations and tiles; a k-quant's activations are the
 * variant's own, so its 64 bytes only say that the path is taken), or 0
 * where W, the variant or the activations do not take it. */
static size_t int8_tokens_bytes(const kernel_ops *k, const matrix *W, int N) {
    if (!kernels_int8_activations() || !W->groups) return 0;
    if (is_kquant(W)) return k->kquant_tokens && k->kquant_prepare ? 64 : 0;
    if (!int8_dot_handles(W->type) || W->cols % 32) return 0;
    const int8_dot_ops *d = int8_dot_for(k);
    if (!d->groups_tokens) return 0;
    return round64(sizeof(act_q8) * (size_t)N) + act_q8_bytes(W->cols) * (size_t)N +
           round64(d->tokens_bytes(W->cols, N));
}

/* The tiles' scratch, kept between products on the thread that prepares
 * them: a batched step or a prompt chunk asks for the same few hundred KB
 * product after product, and memory handed back to the system comes back as
 * fresh pages, each cleared on its first touch (a tenth of the time in a
 * profile of steps of one and two rows). Freed when the thread ends. NULL
 * where there is no memory: the products then take the panels. */
typedef struct tile_scratch {
    void *p;
    size_t bytes;
} tile_scratch;
static pthread_key_t tile_scratch_key;
static int tile_scratch_ok;

static void tile_scratch_free(void *v) {
    tile_scratch *s = v;
    free(s->p);
    free(s);
}

static void tile_scratch_init(void) { tile_scratch_ok = pthread_key_create(&tile_scratch_key, tile_scratch_free) == 0; }

static uint8_t *tile_scratch_get(size_t bytes) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, tile_scratch_init);
    if (!tile_scratch_ok || bytes == 0) return NULL;
    tile_scratch *s = pthread_getspecific(tile_scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s))) return NULL;
        if (pthread_setspecific(tile_scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->bytes < bytes) {
        free(s->p);
        s->p = aligned_alloc(64, round64(bytes));
        s->bytes = s->p ? round64(bytes) : 0;
    }
    return s->p;
}

/* Lays N tokens' activations out in mem (int8_tokens_bytes of it); 0 where
 * a k-quant's list of tokens cannot be had. */
static int int8_tokens_bind(const kernel_ops *k, const matrix *W, int N, uint8_t *mem, int8_tokens *f) {
    f->k = k;
    if (is_kquant(W)) return (f->kq = calloc((size_t)N, sizeof *f->kq)) != NULL;
    const size_t bytes = act_q8_bytes(W->cols);
    f->d = int8_dot_for(k);
    f->a = (act_q8 *)mem;
    f->mem = mem + round64(sizeof(act_q8) * (size_t)N);
    f->tokens = (uint8_t *)f->mem + bytes * (size_t)N;
    for (int n = 0; n < N; n++) act_q8_bind(&f->a[n], (uint8_t *)f->mem + bytes * (size_t)n, W->cols);
    return 1;
}

/* f->N = 0 where mem is NULL (int8_tokens_bytes was 0, or no memory): the
 * panels' path; else the N tokens quantized into mem. */
static void int8_tokens_prepare(const kernel_ops *k, const matrix *W, const float *X, int N, int n_threads,
                                uint8_t *mem, int8_tokens *f) {
    *f = (int8_tokens){0};
    if (!mem) return;
    f->N = N;
    if (!int8_tokens_bind(k, W, N, mem, f)) {
        int8_tokens_release(f);
        return;
    }
    f->split = matvec_split_for(W, n_threads);
    quantize_job j = {f, W, X};
    parallel_rows(n_threads, N, 4 * (size_t)W->cols, quantize_token, &j);
    if (f->tokens) f->d->tokens_gather(f->a, N, f->tokens);
    if (f->kq)
        for (int n = 0; n < N; n++)
            if (!f->kq[n]) { /* no 8-bit path for this x (not finite) or no memory: the panels */
                int8_tokens_release(f);
                return;
            }
}

/* Chunk c of the rows (decode's split), for every token: the whole groups
 * through the tiled kernel, the rows past them one token at a time, as
 * int8_dot_rows divides a decode product's rows. */
static void int8_tokens_chunk(const int8_tokens *f, const matrix *W, float *Y, int c) {
    int r0, r1;
    matvec_split_range(&f->split, c, &r0, &r1);
    if (f->kq) {
        f->k->kquant_tokens(W, (const void *const *)f->kq, f->N, Y + r0, (size_t)W->rows, r0, r1);
        return;
    }
    const int end = row_groups_end(W, r0, r1);
    if (end > r0) f->d->groups_tokens(W, f->tokens, f->N, Y + r0, (size_t)W->rows, r0 / ROW_GROUP, end / ROW_GROUP);
    if (end < r1)
        for (int n = 0; n < f->N; n++) f->d->rows(W, &f->a[n], Y + (size_t)n * W->rows + end, end, r1);
}

typedef struct int8_tokens_job {
    const int8_tokens *f;
    const matrix *W;
    float *Y;
} int8_tokens_job;

static void int8_tokens_run(void *p, int c) {
    const int8_tokens_job *j = p;
    int8_tokens_chunk(j->f, j->W, j->Y, c);
}

/* decode: whether a product of one row takes the matrix-vector kernels */
static void matmul_rows(const kernel_ops *k, const matrix *W, const float *X, int N, float *Y, int n_threads,
                        int decode) {
    if (N <= 0) return;
    if (N == 1 && decode) {
        matvec_with(k, W, X, Y, n_threads);
        return;
    }
    if ((double)W->rows * W->cols * N < 65536.0) n_threads = 1; /* waking a thread costs more */
    int8_tokens f;
    int8_tokens_prepare(k, W, X, N, n_threads, tile_scratch_get(int8_tokens_bytes(k, W, N)), &f);
    if (f.N) {
        int8_tokens_job fj = {&f, W, Y};
        parallel_for(n_threads, f.split.n_chunks, int8_tokens_run, &fj);
        int8_tokens_release(&f);
        return;
    }
    const int panels = (W->rows + k->mm.nr - 1) / k->mm.nr;
    matmul_job j = {k, W, X, bf16_operand(k, W, X, N, n_threads), Y, N};
    parallel_for(n_threads, panels, matmul_panel, &j);
    free((void *)j.Xh);
}

void matmul_with(const kernel_ops *k, const matrix *W, const float *X, int N, float *Y, int n_threads) {
    matmul_rows(k, W, X, N, Y, n_threads, 1);
}

void matmul(const matrix *W, const float *X, int N, float *Y, int n_threads) {
    matmul_rows(kernels_active(), W, X, N, Y, n_threads, 1);
}

void matmul_batch(const matrix *W, const float *X, int N, float *Y, int n_threads) {
    matmul_rows(kernels_active(), W, X, N, Y, n_threads, 0);
}

/* matmul_group: the chunks of all n products numbered one after the other;
 * first[i] is the first chunk of product i. A chunk is a row range of a
 * decode product (decode: N = 1 through the matrix-vector kernels) or one
 * panel of a product of several rows. */
typedef struct group_job {
    const kernel_ops *k;
    const matrix *const *W;
    const float *const *X;
    float *const *Y;
    int n, N, decode;
    int first[MATMUL_GROUP_MAX + 1];
    matvec_split split[MATMUL_GROUP_MAX]; /* N = 1: the row chunks */
    int8_product q[MATMUL_GROUP_MAX]; /* N = 1: x quantized once per product and thread */
    int quantized[MATMUL_GROUP_MAX];
    const uint16_t *Xh[MATMUL_GROUP_MAX]; /* N > 1: x in bf16 for the bf16 products, or NULL */
    int8_tokens tokens[MATMUL_GROUP_MAX]; /* N > 1: the decode's integer kernels, where tokens[i].N */
} group_job;

static void group_chunk(void *p, int chunk) {
    const group_job *g = p;
    int i = 0;
    while (chunk >= g->first[i + 1]) i++;
    const int c = chunk - g->first[i];
    if (g->decode) {
        int r0, r1;
        matvec_split_range(&g->split[i], c, &r0, &r1);
        if (g->quantized[i]) int8_product_rows(&g->q[i], g->W[i], g->Y[i] + r0, r0, r1);
        else g->k->matvec_rows(g->W[i], g->X[i], g->Y[i] + r0, r0, r1);
    } else if (g->tokens[i].N) {
        int8_tokens_chunk(&g->tokens[i], g->W[i], g->Y[i], c);
    } else {
        matmul_job j = {g->k, g->W[i], g->X[i], g->Xh[i], g->Y[i], g->N};
        matmul_panel(&j, c);
    }
}

static void group_rows(int n, const matrix *const *W, const float *const *X, int N, float *const *Y, int n_threads,
                       int decode) {
    if (N <= 0 || n <= 0) return;
    if (n > MATMUL_GROUP_MAX) { /* not reached by the models; kept correct */
        group_rows(MATMUL_GROUP_MAX, W, X, N, Y, n_threads, decode);
        group_rows(n - MATMUL_GROUP_MAX, W + MATMUL_GROUP_MAX, X + MATMUL_GROUP_MAX, N, Y + MATMUL_GROUP_MAX,
                   n_threads, decode);
        return;
    }
    group_job g = {.k = kernels_active(), .W = W, .X = X, .Y = Y, .n = n, .N = N, .decode = N == 1 && decode};
    double work = 0;
    size_t tiles[MATMUL_GROUP_MAX] = {0}, all_tiles = 0; /* the products' parts of one tile_scratch */
    for (int i = 0; i < n; i++) {
        work += (double)W[i]->rows * W[i]->cols * N;
        if (!g.decode) all_tiles += tiles[i] = int8_tokens_bytes(g.k, W[i], N);
    }
    if (work < 65536.0) n_threads = 1; /* as in matmul_with: too small to share */
    uint8_t *scratch = tile_scratch_get(all_tiles);
    for (int i = 0; i < n; i++) {
        int chunks;
        if (g.decode) {
            /* short chunks only at the job's end, where the threads meet */
            g.split[i] = i < n - 1 ? matvec_split_even(W[i], n_threads) : matvec_split_for(W[i], n_threads);
            chunks = g.split[i].n_chunks;
            g.quantized[i] = int8_product_prepare(g.k, W[i], X[i], &g.q[i]);
        } else {
            int8_tokens_prepare(g.k, W[i], X[i], N, n_threads, scratch && tiles[i] ? scratch : NULL, &g.tokens[i]);
            if (scratch) scratch += tiles[i];
            chunks = g.tokens[i].N ? g.tokens[i].split.n_chunks : (W[i]->rows + g.k->mm.nr - 1) / g.k->mm.nr;
            if (!g.tokens[i].N) g.Xh[i] = bf16_operand(g.k, W[i], X[i], N, n_threads);
        }
        g.first[i + 1] = g.first[i] + chunks;
    }
    parallel_for(n_threads, g.first[n], group_chunk, &g);
    for (int i = 0; i < n; i++) {
        if (g.tokens[i].N) int8_tokens_release(&g.tokens[i]);
        free((void *)g.Xh[i]);
    }
}

void matmul_group(int n, const matrix *const *W, const float *const *X, int N, float *const *Y, int n_threads) {
    group_rows(n, W, X, N, Y, n_threads, 1);
}

void matmul_group_batch(int n, const matrix *const *W, const float *const *X, int N, float *const *Y, int n_threads) {
    group_rows(n, W, X, N, Y, n_threads, 0);
}
