/* Decode's interleaved copy of a 32-weight block-format matrix (Q8_0, Q4_0,
 * Q4_1, Q5_0, Q5_1): rows in groups of 16, and within a group the block
 * columns one after another, each holding that block of all 16 rows.
 *
 * Why: read row by row, a block's scale must be spread over the lanes that
 * hold its products and every row ends in a horizontal sum; with 16 rows
 * side by side each 32-bit lane is one row, so a block column costs one
 * integer multiply-add per 4 weights of 16 rows (x's 4 activations
 * broadcast), one conversion and one multiply-add for 16 scales, and no
 * horizontal sums. The integer row kernel ran at ~30 GB/s of Q4_0 on one
 * core with its data in cache, below the memory bandwidth; the grouped one
 * at ~90 GB/s (docs/perf.md, change 24).
 *
 * Block columns go in pairs, each pair taking exactly the bytes of the 32
 * blocks it holds (2 × 16 × the block's bytes):
 *   f16 scales d of rows 0..15, column 0 then column 1      2 × 32 bytes
 *   f16 minimums m, likewise (Q4_1, Q5_1)                   2 × 32 bytes
 *   then per column: its fifth bits (Q5_0, Q5_1: 8 little-endian u64
 *     masks, mask v bit 4r+k = the fifth bit of element 4v+k of row r,
 *     64 bytes) and its codes, in 64-byte vectors whose 32-bit lane r
 *     belongs to row r:
 *       4-bit formats: 4 vectors, vector h lane r = code bytes 4h..4h+3 of
 *         row r (low nibbles: elements 4h..4h+3, high: 16+4h..16+4h+3)
 *       Q8_0: 8 vectors, vector v lane r = codes 4v..4v+3 of row r, each
 *         stored + 128 (x ^ 0x80) so that they are unsigned bytes
 * so that every code vector starts on a 64-byte line when a row has an even
 * number of blocks (a single column would leave half of them straddling two
 * lines). A last, unpaired column
 * holds the same parts for itself alone: d, m, fifth bits, codes.
 *
 * Q4_K and Q5_K (256-weight super-blocks) group one super-block column of
 * 16 rows in 16 × the block's bytes, every part on 64-byte lines:
 *   f16 d of rows 0..15 (32 bytes), f16 dmin of rows 0..15 (32 bytes)
 *   the 12 packed scale bytes as 3 vectors: vector k lane r = bytes
 *     4k..4k+3 of row r's scales (so the 6-bit unpacking runs on 16 rows)
 *   Q5_K: the 32 bytes of fifth bits as 8 vectors, vector h lane r = qh
 *     bytes 4h..4h+3 of row r (bit s: sub-block s)
 *   codes: 4 chunks of 64 weights × 8 vectors, vector (j, h) lane r = code
 *     bytes 32j + 4h .. 32j + 4h + 3 of row r (low nibbles: sub-block 2j,
 *     high: 2j + 1)
 *
 * Q6_K (210 bytes a super-block, not a multiple of 64 for 16 rows) keeps
 * the 64-byte parts of every column of a group first and the f16 scales d
 * after them:
 *   column b at 3328 b from the group's start:
 *     the 16 int8 sub-block scales as 4 vectors: vector k lane r = scales
 *       4k..4k+3 of row r
 *     ql as 32 vectors: vector q lane r = ql bytes 4q..4q+3 of row r (low
 *       nibbles: elements 128h + 4v..4v+3 for q = 16h + v, v < 16; high
 *       nibbles: 64 elements further on)
 *     qh as 16 vectors: vector q lane r = qh bytes 4q..4q+3 of row r (bit
 *       pair k of byte 32h + l: element 128h + 32k + l)
 *   then f16 d of rows 0..15 of column b at 3328 nb + 32 b,
 * and each group padded to a multiple of 64 bytes (row_group_stride).
 *
 * The rows past the last whole group are not in the copy (decode reads
 * them from the matrix itself). */
#ifndef RWKV_KERNELS_ROW_GROUPS_H
#define RWKV_KERNELS_ROW_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define ROW_GROUP 16

/* Where the parts of a block column lie, in bytes from the start of its
 * pair (or of the last, unpaired column). */
typedef struct group_column {
    size_t scale, min, fifth, codes;
} group_column;

/* Column i (0 or 1) of a pair, or the unpaired column (paired = 0, i = 0),
 * of a block format t. */
static inline group_column row_group_column(dtype t, int paired, int i) {
    const int has_min = t == DT_Q4_1 || t == DT_Q5_1, five = t == DT_Q5_0 || t == DT_Q5_1;
    const size_t codes = t == DT_Q8_0 ? 512 : 256, n = paired ? 2 : 1;
    group_column c;
    c.scale = 32 * (size_t)i;
    c.min = 32 * n + 32 * (size_t)i;
    c.fifth = 32 * n * (has_min ? 2 : 1) + (size_t)i * ((five ? 64 : 0) + codes);
    c.codes = c.fifth + (five ? 64 : 0);
    return c;
}

/* How the decode kernels walk a 32-weight format's groups (the AVX-512 and
 * the AVX2 ones alike): nb block columns of cb bytes, in pairs (columns c0
 * and c1) and a last unpaired one (lone). Every column touches its pages 8
 * KB ahead (Q8_0's and the Q4 formats' decode 3-24% faster than without;
 * docs/perf.md, change 52); the Q5 columns, the slowest to consume, also ask
 * for every line 6 KB ahead (every_line: without, 8% slower; with the lines
 * alone, 12 KB ahead, 4-9% slower, change 53; Q8_0's ran 10-20% slower with
 * every line asked for). */
typedef struct group_walk {
    int nb, every_line;
    size_t cb;
    group_column c0, c1, lone;
} group_walk;

static inline group_walk row_group_walk(dtype t, int cols) {
    group_walk w;
    w.nb = cols / 32;
    w.every_line = t == DT_Q5_0 || t == DT_Q5_1;
    w.cb = ROW_GROUP * dtype_block_bytes(t);
    w.c0 = row_group_column(t, 1, 0), w.c1 = row_group_column(t, 1, 1), w.lone = row_group_column(t, 0, 0);
    return w;
}

/* The bytes of Q6_K's 64-byte parts of one column of 16 rows (all but d). */
#define ROW_GROUP_Q6K_PARTS 3328

/* Bytes from one group of 16 rows of a grouped copy to the next. */
static inline size_t row_group_stride(dtype t, int cols) {
    const size_t bytes = ROW_GROUP * dtype_bytes_for(t, (uint64_t)cols);
    return t == DT_Q6_K ? (bytes + 63) / 64 * 64 : bytes;
}

/* Whether W has a grouped form: one of the five formats or a k-quant, at
 * least one whole group of rows. */
int row_groups_apply(const matrix *W);
/* The end of the rows from r0 (< r1) that the kernels read from W's grouped
 * copy: the whole groups that start at r0 (r0 itself when none do: W has
 * no copy, r0 is inside a group, or fewer than 16 rows are left). */
static inline int row_groups_end(const matrix *W, int r0, int r1) {
    const int last = W->rows / ROW_GROUP * ROW_GROUP, end = r1 < last ? r1 / ROW_GROUP * ROW_GROUP : last;
    return W->groups && r0 % ROW_GROUP == 0 && end > r0 ? end : r0;
}

/* Bytes of W's grouped copy (its first rows / 16 · 16 rows, padded as
 * row_group_stride says). */
size_t row_groups_bytes(const matrix *W);
/* Writes W's grouped copy to dst (row_groups_bytes(W) bytes) on up to
 * n_threads threads. */
void row_groups_pack(const matrix *W, void *dst, int n_threads);
/* Row r (< rows / 16 · 16) of W's grouped copy `groups`, back in the
 * format's own block layout (dtype_bytes_for(W->type, W->cols) bytes). */
void row_groups_unpack_row(const matrix *W, const void *groups, int r, uint8_t *row);

#endif
