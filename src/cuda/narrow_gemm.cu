/* Products with one narrow side (LoRA factors: in or out of 32 to 128) over
 * more rows than the GEMV takes, on the tensor cores, several in one launch.
 *
 * A general GEMM library tiles such a product badly: a 256 x 2048 x 64
 * product has few output tiles, each walking all of K, and takes as long as
 * a launch of a large product (6-7 µs on an H200), while its work is a
 * fraction of a microsecond. Here a block's eight warps split K between
 * them when K is long (a first factor: out narrow, in wide) or split the
 * rows when K is short (a second factor), each warp holding a 32 x 32 tile
 * of sums in registers, and the warps' partial tiles are added in shared
 * memory in a fixed order, so the result does not depend on timing.
 *
 * Each warp runs mma.sync m16n8k16 (bf16 in, float32 sums). A lane loads
 * 8 consecutive k of a row in one 16-byte load and feeds them to two
 * k-steps in the order (k, k+1 | k+2, k+3) then (k+4, k+5 | k+6, k+7) where
 * the instruction's fragment expects (2t, 2t+1 | 2t+8, 2t+9): the same
 * permutation of k for X and W, so every product X[r][k] W[o][k] meets its
 * partner and only the order of the sum changes. Rows and outputs past the
 * end are read clamped to the last one and never stored, so any row count
 * works; K must be a multiple of 32. */
#include "cuda/common.cuh"

enum { WARPS = 8, TILE = 32, CHUNK = 32 }; /* warps a block; a warp's tile edge; k per 16-byte load */

typedef struct narrow_group {
    cuda_gemv_op op[CUDA_GEMV_MAX_OPS];
    unsigned first_block[CUDA_GEMV_MAX_OPS + 1];
    int k_split[CUDA_GEMV_MAX_OPS]; /* warps that split K: 1, 2, 4 or 8; the other factor splits rows */
    int n, rows;
} narrow_group;

/* Two floats as a bf16 pair (the first in the low half, as in memory). */
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    const __nv_bfloat162 p = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const unsigned *>(&p);
}

/* 8 consecutive values from k of row r as four bf16 pairs: bf16 rows
 * directly, float rows rounded to bf16 (as the GEMM path rounds them). */
__device__ __forceinline__ uint4 load_row8(const cuda_gemv_op &op, int r, int k) {
    if (op.X16) return *reinterpret_cast<const uint4 *>((const bf16 *)op.X16 + (size_t)r * op.ldx + k);
    const float4 *p = reinterpret_cast<const float4 *>(op.X + (size_t)r * op.ldx + k);
    const float4 a = p[0], b = p[1];
    return make_uint4(pack_bf16(a.x, a.y), pack_bf16(a.z, a.w), pack_bf16(b.x, b.y), pack_bf16(b.z, b.w));
}

__device__ __forceinline__ void mma_bf16(float *c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0,
                                         unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* The sums of the warp's 32 x 32 tile (rows r0.., outputs o0..) over the
 * chunks of K [c0, c_end) taken every `stride`: acc[i][j] is the m16n8 tile
 * of rows r0 + 16i, outputs o0 + 8j. */
__device__ __forceinline__ void tile_sums(const cuda_gemv_op &op, int rows, int r0, int o0, int c0, int c_end,
                                          int stride, float acc[2][4][4]) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int r[4], o[4];
    for (int i = 0; i < 4; i++) r[i] = min(r0 + 8 * i + g, rows - 1); /* rows g, g + 8, g + 16, g + 24 */
    for (int j = 0; j < 4; j++) o[j] = min(o0 + 8 * j + g, op.out - 1);
    const bf16 *W = (const bf16 *)op.W;
    uint4 a[4], b[4]; /* the chunk in use; the next one is loaded before it is used */
    auto load = [&](int c, uint4 *x, uint4 *w) {
        const int k = c * CHUNK + 8 * t;
#pragma unroll
        for (int i = 0; i < 4; i++) x[i] = load_row8(op, r[i], k);
#pragma unroll
        for (int j = 0; j < 4; j++) w[j] = *reinterpret_cast<const uint4 *>(W + (size_t)o[j] * op.in + k);
    };
    if (c0 < c_end) load(c0, a, b);
    for (int c = c0; c < c_end; c += stride) {
        uint4 na[4], nb[4];
        if (c + stride < c_end) load(c + stride, na, nb);
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                mma_bf16(acc[i][j], a[2 * i].x, a[2 * i + 1].x, a[2 * i].y, a[2 * i + 1].y, b[j].x, b[j].y);
                mma_bf16(acc[i][j], a[2 * i].z, a[2 * i + 1].z, a[2 * i].w, a[2 * i + 1].w, b[j].z, b[j].w);
            }
#pragma unroll
        for (int i = 0; i < 4; i++) a[i] = na[i], b[i] = nb[i];
    }
}

/* A block: WARPS / ks row tiles of 32 x one output tile of 32, each row
 * tile's K split over ks warps; the partial tiles meet in shared memory. */
__global__ void __launch_bounds__(WARPS * 32) narrow_kernel(narrow_group g) {
    __shared__ float part[WARPS][TILE][TILE + 1];
    int p = 0;
    while (p + 1 < g.n && blockIdx.x >= g.first_block[p + 1]) p++;
    const cuda_gemv_op &op = g.op[p];
    const int ks = g.k_split[p], row_tiles = WARPS / ks, out_tiles = (op.out + TILE - 1) / TILE;
    const unsigned b = blockIdx.x - g.first_block[p];
    const int o0 = (int)(b % out_tiles) * TILE, rb = (int)(b / out_tiles) * TILE * row_tiles;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, s = warp % ks, r0 = rb + (warp / ks) * TILE;
    float acc[2][4][4] = {};
    if (r0 < g.rows) tile_sums(op, g.rows, r0, o0, s, op.in / CHUNK, ks, acc);
    const int gr = lane >> 2, t = lane & 3;
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) part[warp][16 * i + gr + 8 * (e >> 1)][8 * j + 2 * t + (e & 1)] = acc[i][j][e];
    __syncthreads();
    for (int e = threadIdx.x; e < row_tiles * TILE * TILE; e += blockDim.x) {
        const int tile = e / (TILE * TILE), rr = e / TILE % TILE, cc = e % TILE;
        const int row = rb + tile * TILE + rr, o = o0 + cc;
        if (row >= g.rows || o >= op.out) continue;
        float sum = 0.0f;
        for (int k = 0; k < ks; k++) sum += part[tile * ks + k][rr][cc];
        const size_t at = (size_t)row * op.out + o;
        if (op.Y16) ((bf16 *)op.Y16)[at] = __float2bfloat16(cuda_activate(sum, op.act));
        else op.Y[at] = op.accumulate ? op.Y[at] + sum : cuda_activate(sum, op.act);
    }
}

/* Warps that split K: about eight chunks each when K is long, 1 when short. */
static int k_split_of(int in) {
    const int chunks = in / CHUNK;
    int ks = 1;
    while (ks < WARPS && ks * 2 <= chunks / 2) ks *= 2;
    return ks;
}

extern "C" int cuda_narrow_fits(const cuda_gemv_op *op) {
    const int narrow = op->in <= CUDA_NARROW_MAX || op->out <= CUDA_NARROW_MAX;
    const int x_ok = op->X16 ? aligned16(op->X16) && op->ldx % 8 == 0 : aligned16(op->X) && op->ldx % 4 == 0;
    return narrow && x_ok && op->in % CHUNK == 0 && aligned16(op->W) && !(op->Y16 && op->accumulate);
}

extern "C" void cuda_narrow_group(const cuda_gemv_op *ops, int n_ops, int rows, cuda_stream stream) {
    narrow_group g;
    memset(&g, 0, sizeof g);
    g.n = n_ops, g.rows = rows;
    for (int p = 0; p < n_ops; p++) {
        g.op[p] = ops[p];
        g.k_split[p] = k_split_of(ops[p].in);
        const int tile_rows = TILE * (WARPS / g.k_split[p]);
        const unsigned blocks = (unsigned)((rows + tile_rows - 1) / tile_rows) * ((ops[p].out + TILE - 1) / TILE);
        g.first_block[p + 1] = g.first_block[p] + blocks;
    }
    narrow_kernel<<<g.first_block[n_ops], WARPS * 32, 0, stream>>>(g);
}
