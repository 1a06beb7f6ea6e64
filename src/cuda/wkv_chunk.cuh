/* The walk of a chunked WKV (prefill): each state row through a stream's
 * chunks of CT tokens on the tensor cores, from matrices a version's own
 * kernel prepares per (stream, chunk, head) — wkv7_chunk.cu for RWKV-7,
 * wkv5_chunk.cu for RWKV-5.2 and 6. A state row s (value channel i, its
 * columns the key channels) is linear over a chunk in its value at the
 * chunk's start s0 and in the chunk's values v:
 *     y = R̄ s0 + H̄ v,     s_end = s0 ⊙ d + SA b̃ + V k̃,
 * where RWKV-7 also carries the chunk's in-context sums SA = Ā s0 + N̄ v
 * (SA true) and RWKV-5/6 have none. Included by the two chunk files. */
#pragma once

#include "cuda/bulk_copy.cuh"
#include "cuda/mma_tf32.cuh"
#include "cuda/rwkv_infer.cuh"

namespace {

constexpr int CT = 16; /* tokens per chunk */

/* What a preparation writes for one (stream, chunk, head), in floats:
 * Ā, R̄ [token][column], b̃, k̃ [column][token], N̄, H̄ [token][token], d =
 * e^{L_end} (without SA: R̄, k̃, H̄, d). The walk copies a record into
 * shared memory as it is, in one bulk copy, and reads two adjacent floats a
 * lane of each row (mma_tf32.cuh), so the rows it reads most are padded to
 * a stride of 8 banks modulo 32: the float pairs of a half-warp's rows fall
 * into distinct banks. N̄ and H̄, two reads a warp and chunk, are not, so
 * that a record fits in the memory the blocks lend (RWKV-7's six mixes: 6
 * floats a token and channel). */
template <int N, bool SA>
struct chunk_record {
    static constexpr int WIDE = N + 8, NARROW = CT + 8; /* row strides: rows of N floats, rows of CT */
    static constexpr int ABAR = 0, RBAR = SA ? CT * WIDE : 0, BT = RBAR + CT * WIDE;
    static constexpr int KT = BT + (SA ? N * NARROW : 0), NBAR = KT + N * NARROW;
    static constexpr int HBAR = NBAR + (SA ? CT * CT : 0), DECAY = HBAR + CT * CT, FLOATS = DECAY + N;
    static_assert(FLOATS % 4 == 0, "records on 16-byte boundaries, for the bulk copies");
};

/* The scratch a pass's records need; 0 where the chunked form does not apply. */
template <bool SA>
size_t chunk_floats(const infer_rows *rows, int H, int N) {
    if (N != 64) return 0;
    return (size_t)rows->n_streams * ((rows->per + CT - 1) / CT) * H * chunk_record<64, SA>::FLOATS;
}

/* ---- the walk: 16 rows of one head per block, chunk after chunk, on the tensor cores ----
 * For the block's rows S (16 x N), values V (16 x CT, row i's v_t in column
 * t) and a chunk's record, a chunk is two products (mma_tf32.cuh):
 *     [SA | Y] = S [Āᵀ | R̄ᵀ] + V [N̄ᵀ | H̄ᵀ]          (16 x 2 CT; Y alone without SA)
 *     S       <- S diag(d) + SA b̃ + V k̃               (16 x N)
 * A walk is a chain of dependent chunks whose cost is the latency of one, so
 * the work is spread thin: each block's four warps own a quarter of the
 * columns of S (held in registers as C fragments), take the part of the first
 * product over their columns (and a quarter of its terms in V), and add their
 * parts through shared memory; each then takes the second product for its own
 * columns. One barrier a chunk. The records and values come in by bulk
 * copies, three chunks in flight. */
constexpr int WARP_ROWS = 16; /* the m of an m16n8k8 product */
constexpr int COL_WARPS = 4, WALK_THREADS = 32 * COL_WARPS, TILES = 3;

/* One chunk's tile in shared memory: the record as written, then the
 * block's values v[t][row], rows padded to 20 floats: the four loads of a
 * values fragment then fall into distinct banks. */
template <int N, bool SA>
struct walk_tile {
    static constexpr int VSTRIDE = WARP_ROWS + 4, V = chunk_record<N, SA>::FLOATS, FLOATS = V + CT * VSTRIDE;
    static constexpr uint32_t BYTES = FLOATS * sizeof(float) - (VSTRIDE - WARP_ROWS) * CT * sizeof(float);
    static constexpr int NP = SA ? 4 : 2; /* n-tiles of the first product: SA's (two), Y's (two) */
};

/* Starts the copies of a chunk, one a thread: copy 0 the record, copy 1 + j
 * the values of token j; every warp takes a few (copy lane · COL_WARPS + w),
 * so that none comes late to the next barrier. Tokens past the end (a
 * stream's last chunk) repeat the last token's values: the record holds
 * zeros for them wherever a value is used, and the values must stay finite. */
template <int N, bool SA>
__device__ void walk_issue(float *tile, uint64_t *bar, const float *rec, const float *v, size_t first, size_t A,
                           int count, int copy) {
    using T = walk_tile<N, SA>;
    if (copy == 0) {
        bulk_barrier_expect(bar, T::BYTES);
        bulk_copy(tile, rec, chunk_record<N, SA>::FLOATS * sizeof(float), bar);
    } else if (copy <= CT) {
        const int j = copy - 1, src = j < count ? j : count - 1;
        bulk_copy(tile + T::V + j * T::VSTRIDE, v + first + (size_t)src * A, WARP_ROWS * sizeof(float), bar);
    }
}

/* The B fragment (b0, b1) of rows 2t, 2t + 1 of a k-tile, column g of an
 * n-tile, from a matrix stored with k contiguous: row_g points at the
 * n-tile's column g, k0 is the k-tile's first index. */
__device__ __forceinline__ tf32_b_frag b_frag(const float *row_g, int k0, int t) {
    return tf32_b(*(const float2 *)(row_g + k0 + 2 * t));
}

/* The warp's part of [SA | Y] (n-tiles: SA tokens 0-7, 8-15, Y tokens 0-7,
 * 8-15; Y's alone without SA): its columns of S, and its share of the
 * values' terms. */
template <int N, int NT, bool SA>
__device__ __forceinline__ void walk_first(float (&p)[walk_tile<N, SA>::NP][4], const float (&s)[NT][4],
                                           const tf32_a_frag (&vf)[2], const float *tile, int w, int g, int t) {
    using R = chunk_record<N, SA>;
    constexpr int NP = walk_tile<N, SA>::NP, PAIRS = 2 * NP; /* (k-tile of the values, n-tile) pairs */
    static_assert(PAIRS % COL_WARPS == 0, "the values' pairs dealt out evenly");
    float ps[NP][4] = {};
#pragma unroll
    for (int kk = 0; kk < NT; kk++) {
        const tf32_a_frag af = tf32_a_of_c(s[kk]);
        const int k0 = 8 * (w * NT + kk);
#pragma unroll
        for (int nn = 0; nn < NP; nn++) {
            const int m = SA && nn < 2 ? R::ABAR : R::RBAR;
            const tf32_b_frag bf = b_frag(tile + m + (8 * (nn & 1) + g) * R::WIDE, k0, t);
            mma_tf32_small(ps[nn], af, bf);
            mma_tf32_big(p[nn], af, bf);
        }
    }
#pragma unroll
    for (int q = 0; q < PAIRS / COL_WARPS; q++) {
        const int pair = w * (PAIRS / COL_WARPS) + q, target = pair % NP, ktile = pair / NP;
        const tf32_a_frag va = ktile ? vf[1] : vf[0];
        const int m = SA && target < 2 ? R::NBAR : R::HBAR;
        const tf32_b_frag bf = b_frag(tile + m + (8 * (target & 1) + g) * CT, 8 * ktile, t);
#pragma unroll
        for (int nn = 0; nn < NP; nn++)
            if (nn == target) mma_tf32_small(ps[nn], va, bf), mma_tf32_big(p[nn], va, bf);
    }
#pragma unroll
    for (int nn = 0; nn < NP; nn++)
#pragma unroll
        for (int e = 0; e < 4; e++) p[nn][e] += ps[nn][e];
}

/* The warp's columns to the chunk's end: decayed, plus SA through b̃ and the values through k̃. */
template <int N, int NT, bool SA>
__device__ __forceinline__ void walk_second(float (&s)[NT][4], const float4 (&sa)[2], const tf32_a_frag (&vf)[2],
                                            const float *tile, int w, int g, int t) {
    using R = chunk_record<N, SA>;
    float es[NT][4] = {};
#pragma unroll
    for (int nn = 0; nn < NT; nn++) {
        const float2 d = *(const float2 *)(tile + R::DECAY + 8 * (w * NT + nn) + 2 * t);
        s[nn][0] *= d.x, s[nn][1] *= d.y, s[nn][2] *= d.x, s[nn][3] *= d.y;
    }
#pragma unroll
    for (int kk = SA ? 0 : 2; kk < 4; kk++) {
        const bool sums = kk < 2; /* k over SA's tokens (through b̃), then the values' (through k̃) */
        const tf32_a_frag af = sums ? tf32_a(sa[kk].x, sa[kk].z, sa[kk].y, sa[kk].w) : vf[kk - 2];
#pragma unroll
        for (int nn = 0; nn < NT; nn++) {
            const float *m = tile + (sums ? R::BT : R::KT) + (8 * (w * NT + nn) + g) * R::NARROW;
            const tf32_b_frag bf = b_frag(m, 8 * (kk & 1), t);
            mma_tf32_small(es[nn], af, bf);
            mma_tf32_big(s[nn], af, bf);
        }
    }
#pragma unroll
    for (int nn = 0; nn < NT; nn++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[nn][e] += es[nn][e];
}

/* The warp's rows g, g + 8 of its columns of S, from or to memory. */
template <int N, int NT>
__device__ __forceinline__ void walk_rows(float (&s)[NT][4], float *st, int g, int t, bool store) {
#pragma unroll
    for (int nn = 0; nn < NT; nn++) {
        float2 *top = (float2 *)(st + (size_t)g * N + 8 * nn + 2 * t);
        float2 *low = (float2 *)(st + (size_t)(g + 8) * N + 8 * nn + 2 * t);
        if (store) {
            *top = make_float2(s[nn][0], s[nn][1]), *low = make_float2(s[nn][2], s[nn][3]);
        } else {
            const float2 a = *top, b = *low;
            s[nn][0] = a.x, s[nn][1] = a.y, s[nn][2] = b.x, s[nn][3] = b.y;
        }
    }
}

/* What a walk reads and writes. SETS 1: the streams' states from chunk c0
 * to c1 (the prompt, or its first segment), outputs into y. SETS 2: a later
 * segment, walked before the state at its start is known, as two sets of
 * rows in one block sharing its tiles: set 0 from zeros with the values
 * (outputs into y), set 1 from the identity without them (outputs into q);
 * their ends into seg ([stream][set][H N][N], the states' layout per set). */
struct walk_args {
    float *const *states;
    size_t off;
    float *seg;
    int per, c0, c1, H;
    const float *v, *records;
    float *y, *q;
};

/* A segment's start rows: zeros (set 0) or the identity's (set 1). */
template <int NT>
__device__ __forceinline__ void walk_start(float (&s)[NT][4], bool identity, int row0, int w, int g, int t) {
#pragma unroll
    for (int nn = 0; nn < NT; nn++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int row = row0 + g + 8 * (e >> 1), col = 8 * (w * NT + nn) + 2 * t + (e & 1);
            s[nn][e] = identity && row == col ? 1.0f : 0.0f;
        }
}

template <bool SA, int SETS>
constexpr int walk_bytes() {
    return (TILES * walk_tile<64, SA>::FLOATS + 2 * SETS * COL_WARPS * walk_tile<64, SA>::NP * 32 * 4) *
           (int)sizeof(float);
}

/* Walks chunks [c0, c1) of each stream, from the rows at their start to the
 * rows at the end of chunk c1 - 1. */
template <int N, bool SA, int SETS>
__global__ void __launch_bounds__(WALK_THREADS *SETS) wkv_chunk_walk_kernel(walk_args a) {
    using R = chunk_record<N, SA>;
    using T = walk_tile<N, SA>;
    constexpr int NT = N / 8 / COL_WARPS, NP = T::NP; /* the n-tiles of S a warp owns; of the first product */
    static_assert(CT == 16 && NT >= 1 && N % (8 * COL_WARPS) == 0 && N % WARP_ROWS == 0, "tiles of 8");
    extern __shared__ float4 smem4[];
    float *const tiles = (float *)smem4;
    float4 *const parts = smem4 + TILES * T::FLOATS / 4; /* [chunk % 2][set][warp][n-tile][lane] */
    __shared__ uint64_t full[TILES];
    const int h = blockIdx.x / (N / WARP_ROWS), row0 = (blockIdx.x % (N / WARP_ROWS)) * WARP_ROWS;
    const int stream = blockIdx.y, chunks = a.c1 - a.c0, set = SETS > 1 ? (int)threadIdx.x / WALK_THREADS : 0;
    const int w = threadIdx.x / 32 % COL_WARPS, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const size_t A = (size_t)a.H * N, first = ((size_t)stream * a.per + (size_t)a.c0 * CT) * A + (size_t)h * N + row0;
    const float *rec0 = a.records + (((size_t)stream * ((a.per + CT - 1) / CT) + a.c0) * a.H + h) * R::FLOATS;
    const size_t rec_step = (size_t)a.H * R::FLOATS, at = ((size_t)h * N + row0) * N + 8 * NT * w;
    const int per = (a.per < a.c1 * CT ? a.per : a.c1 * CT) - a.c0 * CT; /* the range's tokens */
    float *const st = SETS == 1 ? a.states[stream] + a.off + at : a.seg + ((size_t)stream * SETS + set) * A * N + at;
    float *const out = set ? a.q : a.y;
    float s[NT][4]; /* C fragments: n-tile nn holds rows g, g + 8 of the warp's columns 8 nn + 2t, + 1 */
    if (SETS == 1) walk_rows<N, NT>(s, st, g, t, false);
    else walk_start<NT>(s, set == 1, row0, w, g, t);
    if (threadIdx.x < TILES) bulk_barrier_init(&full[threadIdx.x]);
    __syncthreads();
    const int copy = set ? CT + 1 : lane * COL_WARPS + w; /* set 0 issues the copies; CT + 1 is none */
    for (int c = 0; c < 2 && c < chunks; c++)
        walk_issue<N, SA>(tiles + c * T::FLOATS, &full[c], rec0 + c * rec_step, a.v, first + (size_t)c * CT * A, A,
                          per - c * CT < CT ? per - c * CT : CT, copy);
    for (int c = 0; c < chunks; c++) {
        const int t0 = c * CT;
        const float *tile = tiles + (c % TILES) * T::FLOATS;
        bulk_barrier_wait(&full[c % TILES], (uint32_t)(c / TILES) & 1);
        tf32_a_frag vf[2]; /* the values as A fragments, k over the chunk's tokens (none for the identity) */
#pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            const float *vt = tile + T::V + (8 * kk + 2 * t) * T::VSTRIDE + g;
            vf[kk] = set ? tf32_a(0.0f, 0.0f, 0.0f, 0.0f) : tf32_a(vt[0], vt[8], vt[T::VSTRIDE], vt[T::VSTRIDE + 8]);
        }
        float p[NP][4] = {};
        walk_first<N, NT, SA>(p, s, vf, tile, w, g, t);
        float4 *const part = parts + ((size_t)(c & 1) * SETS + set) * COL_WARPS * NP * 32;
#pragma unroll
        for (int nn = 0; nn < NP; nn++)
            part[(w * NP + nn) * 32 + lane] = make_float4(p[nn][0], p[nn][1], p[nn][2], p[nn][3]);
        __syncthreads(); /* every part is in, and every warp is done with tile c - 1 */
        if (c + 2 < chunks)
            walk_issue<N, SA>(tiles + ((c + 2) % TILES) * T::FLOATS, &full[(c + 2) % TILES], rec0 + (c + 2) * rec_step,
                              a.v, first + (size_t)(t0 + 2 * CT) * A, A,
                              per - t0 - 2 * CT < CT ? per - t0 - 2 * CT : CT, copy);
        /* SA whole, in a fixed order of the parts; each warp adds up and stores its share of Y */
        float4 sa[2] = {};
#pragma unroll
        for (int nn = 0; nn < 2 && SA; nn++) {
            sa[nn] = part[nn * 32 + lane];
#pragma unroll
            for (int u = 1; u < COL_WARPS; u++) {
                const float4 x = part[(u * NP + nn) * 32 + lane];
                sa[nn].x += x.x, sa[nn].y += x.y, sa[nn].z += x.z, sa[nn].w += x.w;
            }
        }
#pragma unroll
        for (int q = 0; q < 8 / COL_WARPS; q++) { /* Y's values (2 n-tiles x 4), dealt out in order */
            const int value = w * (8 / COL_WARPS) + q, e = value & 3;
            const float *yp = (const float *)(part + (NP - 2 + (value >> 2)) * 32 + lane) + e;
            float yv = yp[0];
#pragma unroll
            for (int u = 1; u < COL_WARPS; u++) yv += yp[u * NP * 32 * 4];
            const int token = t0 + 8 * (value >> 2) + 2 * t + (e & 1), row = g + 8 * (e >> 1);
            if (token < per) out[first + (size_t)token * A + row] = yv;
        }
        walk_second<N, NT, SA>(s, sa, vf, tile, w, g, t);
    }
    walk_rows<N, NT>(s, st, g, t, true);
}

/* ---- a prompt's second half as a segment ----
 * The walk is a chain of chunks whose cost is the latency of one; a small
 * model's heads leave most SMs without a block (a 0.1B model's 12 heads: 48
 * blocks of four warps). The map over a segment of chunks is linear in the
 * state S at its start: each row's S_t = S P_t + S0_t, where S0 is the
 * segment walked from zeros with its values and P_t the identity walked
 * without them, so y_t = S (P_t r_t) + y0_t, P_t r_t being the identity
 * walk's outputs q_t. So the second half is walked (set 0 and set 1) while
 * the first half is, each a chain half as long; then, from the state S at
 * the first half's end, y_t += S q_t over the second half's tokens and the
 * state becomes S P_end + S0_end. One block per (head, tile, stream): a tile
 * is 64 tokens, or the state (the last tile); each thread sums 4 x 4
 * outputs over j in order, so the result does not depend on timing. */
constexpr int JOIN_COLS = 64, JOIN_THREADS = 256;

__global__ void __launch_bounds__(JOIN_THREADS) wkv_chunk_join_kernel(float *const *states, size_t off, float *seg,
                                                                      float *y, const float *q, int per, int t0,
                                                                      int H) {
    constexpr int N = 64, P = N + 4;
    __shared__ __align__(16) float sj[N][P], m[N][P]; /* sj[j][i] = S[i][j]; m[j][c] */
    const int h = blockIdx.x, stream = blockIdx.z, tok0 = t0 + (int)blockIdx.y * JOIN_COLS;
    const bool state = blockIdx.y == gridDim.y - 1;
    const size_t A = (size_t)H * N, hnn = A * N;
    const float *S = states[stream] + off + (size_t)h * N * N;
    float *const s0 = seg + (size_t)stream * 2 * hnn + (size_t)h * N * N; /* S0_end, then the state's end */
    const float *p_end = s0 + hnn;
    for (int e = threadIdx.x; e < N * N; e += JOIN_THREADS) {
        const int r = e / N, col = e % N, tok = tok0 + r;
        sj[col][r] = S[e];
        if (state) m[r][col] = p_end[e];
        else m[col][r] = tok < per ? q[((size_t)stream * per + tok) * A + (size_t)h * N + col] : 0.0f;
    }
    __syncthreads();
    const int ti = threadIdx.x / 16, tc = threadIdx.x % 16;
    float acc[4][4] = {};
    for (int j = 0; j < N; j++) {
        const float4 a4 = *(const float4 *)&sj[j][4 * ti], b4 = *(const float4 *)&m[j][4 * tc];
        const float av[4] = {a4.x, a4.y, a4.z, a4.w}, bv[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
        for (int di = 0; di < 4; di++)
#pragma unroll
            for (int dc = 0; dc < 4; dc++) acc[di][dc] = fmaf(av[di], bv[dc], acc[di][dc]);
    }
    if (state) { /* rows 4 ti + di, columns 4 tc ..: into S0_end, which a copy then makes the state */
#pragma unroll
        for (int di = 0; di < 4; di++) {
            float4 *o = (float4 *)(s0 + (size_t)(4 * ti + di) * N + 4 * tc);
            const float4 b = *o;
            *o = make_float4(b.x + acc[di][0], b.y + acc[di][1], b.z + acc[di][2], b.w + acc[di][3]);
        }
        return;
    }
#pragma unroll
    for (int dc = 0; dc < 4; dc++) { /* token 4 tc + dc, channels 4 ti .. */
        const int tok = tok0 + 4 * tc + dc;
        if (tok >= per) break;
        float4 *o = (float4 *)(y + ((size_t)stream * per + tok) * A + (size_t)h * N + 4 * ti);
        const float4 b = *o;
        *o = make_float4(b.x + acc[0][dc], b.y + acc[1][dc], b.z + acc[2][dc], b.w + acc[3][dc]);
    }
}

/* The joined state (S0_end of each stream) into the streams' states. */
__global__ void wkv_chunk_state_kernel(float *const *states, size_t off, const float *seg, size_t hnn) {
    const float4 *from = (const float4 *)(seg + (size_t)blockIdx.y * 2 * hnn);
    float4 *to = (float4 *)(states[blockIdx.y] + off);
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < hnn / 4; e += (size_t)gridDim.x * blockDim.x)
        to[e] = from[e];
}

/* The walk's grid: a block per 16 rows of a head, per stream. */
static dim3 walk_grid(const infer_rows *rows, int H) {
    return dim3((unsigned)(H * (64 / WARP_ROWS)), (unsigned)rows->n_streams);
}

/* Whether a pass takes the chunked form: heads of 64, streams of CT tokens or
 * more, scratch for the records, 16-byte aligned arrays, and a device that
 * gives the walk the shared memory it asks for (three tiles and the parts,
 * over the 48 KiB default; a device that cannot takes the other kernel). */
template <bool SA>
bool wkv_chunk_fits(const infer_rows *rows, size_t off, int H, int N, const float *const *arrays, int n_arrays,
                    size_t scratch_floats) {
    const size_t need = chunk_floats<SA>(rows, H, N);
    if (rows->per < CT || need == 0 || need > scratch_floats || off % 4 || (size_t)H * N % 4 ||
        !wkv_aligned16(arrays, n_arrays))
        return false;
    if (cudaFuncSetAttribute(wkv_chunk_walk_kernel<64, SA, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             walk_bytes<SA, 1>()) != cudaSuccess) {
        cudaGetLastError(); /* not left for the pass's error check */
        return false;
    }
    return true;
}

/* Parts of a long pass: at least PART_CHUNKS chunks each, at most MAX_PARTS (an event each) */
constexpr int PART_CHUNKS = 8, MAX_PARTS = 4;
static_assert(MAX_PARTS <= INFER_SIDE_EVENTS, "an event a part");

/* The scratch of a pass walked in two segments: the records, q (a float per
 * token and channel) and each stream's two sets of rows. */
template <bool SA>
size_t segment_floats(const infer_rows *rows, int H) {
    const size_t streams = (size_t)rows->n_streams, A = (size_t)H * 64;
    return chunk_floats<SA>(rows, H, 64) + streams * rows->per * A + streams * 2 * A * 64;
}

/* Whether a pass walks its second half as a segment beside the first: a
 * side stream to walk it on, 2 PART_CHUNKS chunks or more, the scratch, and
 * the two walks' blocks of a stream (a block per 16 rows of a head, each) no
 * more than the SMs, so that neither walk shares an SM: a 0.1B model's 12
 * heads take 96 of an H100's 132. Where they would share (a 1.5B model's 32
 * heads), the two chains slowed each other down as much as the halving
 * gained: they read each record from L2 eight times between them, and
 * more warps an SM lengthen each chunk. Whether a pass is segmented depends
 * on its shape per stream, not on how many streams share it. */
template <bool SA>
bool wkv_chunk_segmented(const infer_rows *rows, int H, size_t scratch_floats, const infer_side *side) {
    if (!side || (rows->per + CT - 1) / CT < 2 * PART_CHUNKS || segment_floats<SA>(rows, H) > scratch_floats)
        return false;
    const int sms = cuda_sm_count();
    if (sms == 0 || 2 * H * (64 / WARP_ROWS) > sms) return false;
    if (cudaFuncSetAttribute(wkv_chunk_walk_kernel<64, SA, 2>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             walk_bytes<SA, 2>()) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return true;
}

/* A pass in two segments: every chunk's records on s; the second half
 * walked on the side stream (sets 0 and 1) while s walks the first; then
 * on s the join of the two and the state. */
template <bool SA, typename Prep>
cudaError_t wkv_chunk_segments(const infer_rows *rows, walk_args a, cudaStream_t s, const infer_side *side,
                               Prep prep) {
    const int chunks = a.c1, mid = chunks / 2, H = a.H;
    const dim3 grid = walk_grid(rows, H);
    a.q = (float *)a.records + chunk_floats<SA>(rows, H, 64);
    a.seg = a.q + (size_t)rows->n_streams * rows->per * H * 64;
    prep(0, chunks, s);
    cudaError_t e = cudaEventRecord(side->events[0], s);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(side->stream, side->events[0], 0);
    if (e != cudaSuccess) return e;
    walk_args second = a;
    second.c0 = mid;
    wkv_chunk_walk_kernel<64, SA, 2><<<grid, 2 * WALK_THREADS, walk_bytes<SA, 2>(), side->stream>>>(second);
    e = cudaEventRecord(side->events[1], side->stream);
    a.c1 = mid;
    wkv_chunk_walk_kernel<64, SA, 1><<<grid, WALK_THREADS, walk_bytes<SA, 1>(), s>>>(a);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(s, side->events[1], 0);
    if (e != cudaSuccess) return e;
    const int t0 = mid * CT, tiles = (rows->per - t0 + JOIN_COLS - 1) / JOIN_COLS;
    wkv_chunk_join_kernel<<<dim3((unsigned)H, (unsigned)tiles + 1, (unsigned)rows->n_streams), JOIN_THREADS, 0, s>>>(
        a.states, a.off, a.seg, a.y, a.q, a.per, t0, H);
    const size_t hnn = (size_t)H * 64 * 64;
    wkv_chunk_state_kernel<<<dim3((unsigned)((hnn / 4 + 255) / 256), (unsigned)rows->n_streams), 256, 0, s>>>(
        a.states, a.off, a.seg, hnn);
    return cudaSuccess;
}

/* A pass it fits (rwkv_infer.cuh, cuda_wkv7_chunked): prep(k0, k1, stream)
 * launches the preparation of chunks [k0, k1) on the stream. In two
 * segments where wkv_chunk_segmented says so; else in parts: part 0's
 * records on s, alone, then the later parts' on the side stream, each
 * walked on s once its records are in. */
template <bool SA, typename Prep>
cudaError_t wkv_chunk_run(const infer_rows *rows, size_t off, int H, const float *v, float *y, float *scratch,
                          size_t scratch_floats, cudaStream_t s, const infer_side *side, Prep prep) {
    const int chunks = (rows->per + CT - 1) / CT;
    walk_args a = {rows->states, off, NULL, rows->per, 0, chunks, H, v, scratch, y, NULL};
    if (wkv_chunk_segmented<SA>(rows, H, scratch_floats, side)) return wkv_chunk_segments<SA>(rows, a, s, side, prep);
    int parts = side ? chunks / PART_CHUNKS : 1;
    parts = parts < 1 ? 1 : parts > MAX_PARTS ? MAX_PARTS : parts;
    const auto bound = [&](int k) { return (int)((long)chunks * k / parts); };
    prep(bound(0), bound(1), s);
    cudaError_t e = parts > 1 ? cudaEventRecord(side->events[0], s) : cudaSuccess;
    if (e == cudaSuccess && parts > 1) e = cudaStreamWaitEvent(side->stream, side->events[0], 0);
    for (int k = 1; k < parts && e == cudaSuccess; k++) {
        prep(bound(k), bound(k + 1), side->stream);
        e = cudaEventRecord(side->events[k], side->stream);
    }
    for (int k = 0; k < parts && e == cudaSuccess; k++) {
        if (k > 0) e = cudaStreamWaitEvent(s, side->events[k], 0);
        a.c0 = bound(k), a.c1 = bound(k + 1);
        wkv_chunk_walk_kernel<64, SA, 1><<<walk_grid(rows, H), WALK_THREADS, walk_bytes<SA, 1>(), s>>>(a);
    }
    return e;
}

} // namespace
