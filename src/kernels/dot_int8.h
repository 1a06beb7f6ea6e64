/* Integer dot products for the 32-weight block formats (Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1) at decode, the way these formats were designed to be used:
 * the activation vector x is quantized once per product to int8 blocks of
 * 32 (x ≈ d·q, d = max|x| / 127 per block), and each weight block's codes
 * are multiplied with those int8 values in integer arithmetic (VNNI
 * vpdpbusd, or vpmaddubsw + vpmaddwd); only the block's sum is scaled in
 * float. This does several times less work per weight byte than converting
 * every weight to float, which kept these formats compute-bound below the
 * memory bandwidth.
 *
 * The price is the rounding of x: each activation moves by up to d/2 of its
 * block (docs/quantization.md has the measured logit and perplexity
 * differences). The float-activation kernels (kernel_ops.matvec_rows) stay
 * available: RWKV_ACTIVATIONS=f32 (or kernels_set_int8_activations(0))
 * selects them for the whole process.
 *
 * A block's integer sum, for codes c (what the format stores, before its
 * offset) and q (the activation's int8 values):
 *   Q8_0:        d_w d_x Σ c q                     (c signed)
 *   Q4_0 / Q5_0: d_w d_x (Σ c q − 8 Σ q)           (16 for Q5_0; c unsigned)
 *   Q4_1 / Q5_1: d_w d_x Σ c q + m_w Σ x           (Σ x in float, exact x)
 * The SIMD variants sum c·q in 8 lanes of 4 products per block, so the
 * per-block values they need are kept spread over those lanes (act_q8). */
#ifndef RWKV_DOT_INT8_H
#define RWKV_DOT_INT8_H

#include <stdint.h>

#include "kernels/kernels.h"

/* x quantized per block of 32, laid out for 8 lanes per block; every array
 * holds one more zero block past n (the SIMD loops take blocks in pairs). */
typedef struct act_q8 {
    int n;          /* elements, a multiple of 32 */
    int8_t *q;      /* [n + 32]  x ≈ d · q, |q| <= 127 */
    float *d;       /* [n/4 + 8] the block's d in each of its 8 lanes */
    int32_t *qneg8; /* [n/4 + 8] −8 Σ q of the block in its first lane, 0 in the others
                       (the Q4_0 offset term, ready to start the integer sum from) */
    float *xsum;    /* [n/4 + 8] Σ x of the block in its first lane, 0 in the others */
} act_q8;

/* Bytes of memory act_q8_bind needs for n elements (a multiple of 64 bytes). */
size_t act_q8_bytes(int n);
/* Points a's arrays into mem (64-byte aligned, act_q8_bytes(n) bytes). */
void act_q8_bind(act_q8 *a, void *mem, int n);
/* Zeroes the padding block past n (codes and scales: it adds nothing). */
void act_q8_clear_pad(act_q8 *a);

/* Layout of a 4/5-bit block format for the SIMD rows: block bytes, where
 * the low 4-bit codes (two per byte: element j low, j + 16 high) and the
 * fifth bits (a little-endian u32, bit j for element j; -1: none) start,
 * whether an f16 minimum follows the f16 scale, and the offset subtracted
 * from the codes (8, 16, or 0: none). */
typedef struct nib_format {
    int bb, qs, qh, has_min, offset;
} nib_format;
#define Q4_0_FORMAT ((nib_format){18, 2, -1, 0, 8})
#define Q4_1_FORMAT ((nib_format){20, 4, -1, 1, 0})
#define Q5_0_FORMAT ((nib_format){22, 6, 2, 0, 16})
#define Q5_1_FORMAT ((nib_format){24, 8, 4, 1, 0})

/* One implementation of the integer path. */
typedef struct int8_dot_ops {
    const char *name; /* "scalar", "avx2", "avxvnni", "avx512vnni" */
    const char *base; /* the kernel table (kernel_ops.name) whose instruction set it needs at least */
    /* a = x quantized (x: a->n floats; a bound by act_q8_bind) */
    void (*quantize)(const float *x, act_q8 *a);
    /* y[r - r0] = row r of W . x for r0 <= r < r1, x as quantized in a */
    void (*rows)(const matrix *W, const act_q8 *a, float *y, int r0, int r1);
    /* y[16 (g - g0) + i] = row 16 g + i of W . x for g0 <= g < g1, read from
     * W->groups (kernels/row_groups.h); NULL where the variant has none
     * (its reference is rows on W->data: the same integer sums) */
    void (*groups)(const matrix *W, const act_q8 *a, float *y, int g0, int g1);
    /* groups against N tokens: token n's results at Y + n ldy, each bit for
     * bit what groups gives for that token alone (the weights unpacked once
     * for several tokens); NULL where the variant has none. The tokens come
     * gathered by tokens_gather (once per product, for every chunk of rows)
     * into tokens_bytes(cols, N) bytes, 64-byte aligned, from a[0..N). */
    size_t (*tokens_bytes)(int cols, int N);
    void (*tokens_gather)(const act_q8 *a, int N, void *tokens);
    void (*groups_tokens)(const matrix *W, const void *tokens, int N, float *Y, size_t ldy, int g0, int g1);
} int8_dot_ops;

extern const int8_dot_ops int8_dot_scalar, int8_dot_avx2, int8_dot_avxvnni, int8_dot_avx512vnni;

/* y[r - r0] = row r of W . x for r0 <= r < r1 with d: from W->groups
 * where d reads them and the rows cover whole groups, else d->rows. */
void int8_dot_rows(const int8_dot_ops *d, const matrix *W, const act_q8 *a, float *y, int r0, int r1);

/* Every variant compiled in, the reference first (NULL-terminated). */
const int8_dot_ops *const *int8_dot_all(void);
/* 1 if this CPU runs the variant. */
int int8_dot_supported(const int8_dot_ops *d);
/* The widest variant this CPU runs within the instruction set of kernel table k. */
const int8_dot_ops *int8_dot_for(const kernel_ops *k);

/* 1 for the block types the integer path handles (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1). */
int int8_dot_handles(dtype t);

/* One decode product W . x on the 8-bit path: the block formats above, and
 * the k-quants through kernel table k's two-step path
 * (kernel_ops.kquant_prepare). The threads that share the product's rows
 * (matvec_with, matmul_group) each quantize x once, into memory of their
 * own, when they first run rows of it: no thread waits while another
 * quantizes, and none writes lines that another core is reading (on the
 * project machine a line written by one core and read by the other costs a
 * round trip between the cores). Every thread quantizes with the same
 * arithmetic, so the results do not depend on which thread ran which rows.
 * A thread keeps its copies for the last few products (MATMUL_GROUP_MAX,
 * the products of one job) and frees them when it exits.
 *
 * prepare returns 1 and fills p when W takes an 8-bit path, 0 when the
 * float path runs (matvec_rows); nothing is allocated, nothing released. */
typedef struct int8_product {
    const kernel_ops *k;
    const int8_dot_ops *d; /* the block formats' variant; NULL: a k-quant (k->kquant_*) */
    const float *x;
    size_t bytes;     /* of one quantized copy of x */
    unsigned long id; /* unique over the process: names the threads' copies */
} int8_product;
int int8_product_prepare(const kernel_ops *k, const matrix *W, const float *x, int8_product *p);
/* y[r - r0] = row r of W . x for r0 <= r < r1, x as this thread quantized
 * it for p. Where the thread can have no memory for its copy, or a k-quant's
 * x is not finite, its rows take the float path (k->matvec_rows). */
void int8_product_rows(const int8_product *p, const matrix *W, float *y, int r0, int r1);

#endif
