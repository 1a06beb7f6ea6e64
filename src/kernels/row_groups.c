/* The grouped copy of a block-format matrix (kernels/row_groups.h): one
 * map from a block's bytes to their places in its block column, used in
 * both directions (pack at load, unpack for checks). */
#include <string.h>

#include "kernels/row_groups.h"

typedef struct group_format {
    size_t block_bytes;
    int block_elems;
    int has_min, five, eight; /* a minimum after the scale; fifth bits; 8-bit codes */
} group_format;

static int format_of(dtype t, group_format *f) {
    *f = (group_format){dtype_block_bytes(t), (int)dtype_block_elems(t), t == DT_Q4_1 || t == DT_Q5_1,
                        t == DT_Q5_0 || t == DT_Q5_1, t == DT_Q8_0};
    return t == DT_Q8_0 || t == DT_Q4_0 || t == DT_Q4_1 || t == DT_Q5_0 || t == DT_Q5_1 || t == DT_Q4_K ||
           t == DT_Q5_K || t == DT_Q6_K;
}

int row_groups_apply(const matrix *W) {
    group_format f;
    return format_of(W->type, &f) && W->rows >= ROW_GROUP && W->cols > 0 && W->cols % f.block_elems == 0;
}

size_t row_groups_bytes(const matrix *W) {
    if (!row_groups_apply(W)) return 0;
    return (size_t)(W->rows / ROW_GROUP) * row_group_stride(W->type, W->cols);
}

static inline void move_bytes(uint8_t *col, uint8_t *blk, size_t n, int to_col) {
    if (to_col) memcpy(col, blk, n);
    else memcpy(blk, col, n);
}

/* Moves the block of row r (0..15) between the format's layout (blk) and
 * its places in the block column whose parts lie at base + c: into the
 * column when to_col, else out. Each part moves in its whole units (4 codes
 * of a 32-bit lane, the 4 fifth bits of a mask's nibble), not byte by byte:
 * the copies are made for every matrix at load (a 1.5B q8_0 file: 1.6 GB). */
static void move_block(const group_format *f, uint8_t *base, group_column c, uint8_t *blk, int r, int to_col) {
    size_t in_blk = 2;
    move_bytes(base + c.scale + 2 * r, blk, 2, to_col);
    if (f->has_min) {
        move_bytes(base + c.min + 2 * r, blk + 2, 2, to_col);
        in_blk += 2;
    }
    if (f->five) {
        /* element e's fifth bit: bit e of the block's qh (little-endian, as
         * everywhere), bit 4r + e % 4 of mask e / 4; so mask k's nibble r
         * holds qh's nibble k */
        uint32_t qh;
        memcpy(&qh, blk + in_blk, 4);
        uint32_t out = 0;
        const int shift = 4 * (r % 2);
        for (int k = 0; k < 8; k++) {
            uint8_t *m = base + c.fifth + 8 * k + r / 2;
            if (to_col) *m = (uint8_t)((*m & ~(0xFu << shift)) | ((qh >> 4 * k) & 0xFu) << shift);
            else out |= (uint32_t)((*m >> shift) & 0xFu) << 4 * k;
        }
        if (!to_col) memcpy(blk + in_blk, &out, 4);
        in_blk += 4;
    }
    /* Q8_0's codes are stored + 128 (the sign bit flipped) */
    const uint32_t flip = f->eight ? 0x80808080u : 0;
    for (int q = 0; q < (f->eight ? 8 : 4); q++) {
        uint8_t *lane = base + c.codes + 64 * q + 4 * r, *four = blk + in_blk + 4 * q;
        uint32_t v;
        memcpy(&v, to_col ? four : lane, 4);
        v ^= flip;
        memcpy(to_col ? lane : four, &v, 4);
    }
}

/* The same for a Q4_K or Q5_K super-block (kernels/row_groups.h), column at col. */
static void move_block_k(uint8_t *col, uint8_t *blk, int r, int five, int to_col) {
    move_bytes(col + 2 * r, blk, 2, to_col);
    move_bytes(col + 32 + 2 * r, blk + 2, 2, to_col);
    for (int k = 0; k < 3; k++) move_bytes(col + 64 + 64 * k + 4 * r, blk + 4 + 4 * k, 4, to_col);
    if (five)
        for (int h = 0; h < 8; h++) move_bytes(col + 256 + 64 * h + 4 * r, blk + 16 + 4 * h, 4, to_col);
    uint8_t *codes = col + (five ? 768 : 256), *qs = blk + (five ? 48 : 16);
    for (int q = 0; q < 32; q++) move_bytes(codes + 64 * q + 4 * r, qs + 4 * q, 4, to_col);
}

/* The same for a Q6_K super-block: its 64-byte parts at col, its d among
 * the group's scales at d16. */
static void move_block_q6k(uint8_t *col, uint8_t *d16, uint8_t *blk, int r, int to_col) {
    for (int k = 0; k < 4; k++) move_bytes(col + 64 * k + 4 * r, blk + 192 + 4 * k, 4, to_col);
    for (int q = 0; q < 32; q++) move_bytes(col + 256 + 64 * q + 4 * r, blk + 4 * q, 4, to_col);
    for (int q = 0; q < 16; q++) move_bytes(col + 2304 + 64 * q + 4 * r, blk + 128 + 4 * q, 4, to_col);
    move_bytes(d16 + 2 * r, blk + 208, 2, to_col);
}

static int is_k(dtype t) { return t == DT_Q4_K || t == DT_Q5_K; }

/* Block column b of group g: the start of its pair (or of itself when
 * unpaired, and always for the k-quants) and where its parts lie from there
 * (for Q6_K c->scale is the offset of its d from the start). */
static uint8_t *column_base(const matrix *W, const void *groups, int g, int b, group_column *c) {
    const int nb = W->cols / (int)dtype_block_elems(W->type);
    const size_t cb = ROW_GROUP * dtype_block_bytes(W->type);
    if (W->type == DT_Q6_K) {
        c->scale = (size_t)ROW_GROUP_Q6K_PARTS * (size_t)(nb - b) + 32 * (size_t)b;
        return (uint8_t *)groups + (size_t)g * row_group_stride(W->type, W->cols) + (size_t)ROW_GROUP_Q6K_PARTS * b;
    }
    if (is_k(W->type)) return (uint8_t *)groups + ((size_t)g * nb + (size_t)b) * cb;
    *c = row_group_column(W->type, b / 2 * 2 + 1 < nb, b % 2);
    return (uint8_t *)groups + ((size_t)g * nb + (size_t)(b / 2 * 2)) * cb;
}

/* Moves the block of row r (0..15) of a column (base, c: column_base)
 * between its row (blk) and the column, for any of the types. */
static void move_any(const matrix *W, const group_format *f, uint8_t *base, group_column c, uint8_t *blk, int r,
                     int to_col) {
    if (W->type == DT_Q6_K) move_block_q6k(base, base + c.scale, blk, r, to_col);
    else if (is_k(W->type)) move_block_k(base, blk, r, W->type == DT_Q5_K, to_col);
    else move_block(f, base, c, blk, r, to_col);
}

typedef struct pack_job {
    const matrix *W;
    void *dst;
    group_format f;
} pack_job;

/* One group's 16 rows, column by column: each column's place is worked out
 * once for its 16 blocks. */
static void pack_group(void *p, int g) {
    const pack_job *j = p;
    const matrix *W = j->W;
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)W->cols);
    for (int b = 0; b < W->cols / j->f.block_elems; b++) {
        group_column c = {0};
        uint8_t *base = column_base(W, j->dst, g, b, &c);
        const uint8_t *blk = (const uint8_t *)W->data + (size_t)g * ROW_GROUP * rb + b * j->f.block_bytes;
        for (int r = 0; r < ROW_GROUP; r++, blk += rb) move_any(W, &j->f, base, c, (uint8_t *)blk, r, 1);
    }
}

void row_groups_pack(const matrix *W, void *dst, int n_threads) {
    pack_job j = {W, dst, {0}};
    format_of(W->type, &j.f);
    parallel_rows(n_threads, W->rows / ROW_GROUP, row_group_stride(W->type, W->cols), pack_group, &j);
}

void row_groups_unpack_row(const matrix *W, const void *groups, int r, uint8_t *row) {
    group_format f;
    format_of(W->type, &f);
    for (int b = 0; b < W->cols / f.block_elems; b++) {
        group_column c = {0};
        uint8_t *base = column_base(W, groups, r / ROW_GROUP, b, &c);
        move_any(W, &f, base, c, row + b * f.block_bytes, r % ROW_GROUP, 0);
    }
}
