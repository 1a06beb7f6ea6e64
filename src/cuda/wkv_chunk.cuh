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

template <bool SA>
constexpr int walk_bytes() {
    return (TILES * walk_tile<64, SA>::FLOATS + 2 * COL_WARPS * walk_tile<64, SA>::NP * 32 * 4) * (int)sizeof(float);
}

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

/* Walks chunks [c0, c1) of each stream (per tokens), from the states as
 * they are to the states at the end of chunk c1 - 1. */
template <int N, bool SA>
__global__ void __launch_bounds__(WALK_THREADS) wkv_chunk_walk_kernel(float *const *states, size_t off, int per,
                                                                      int c0, int c1, int H, const float *v,
                                                                      const float *records, float *y) {
    using R = chunk_record<N, SA>;
    using T = walk_tile<N, SA>;
    constexpr int NT = N / 8 / COL_WARPS, NP = T::NP; /* the n-tiles of S a warp owns; of the first product */
    static_assert(CT == 16 && NT >= 1 && N % (8 * COL_WARPS) == 0 && N % WARP_ROWS == 0, "tiles of 8");
    extern __shared__ float4 smem4[];
    float *const tiles = (float *)smem4;
    float4 *const parts = smem4 + TILES * T::FLOATS / 4; /* [chunk % 2][warp][n-tile][lane] */
    __shared__ uint64_t full[TILES];
    const int h = blockIdx.x / (N / WARP_ROWS), row0 = (blockIdx.x % (N / WARP_ROWS)) * WARP_ROWS;
    const int stream = blockIdx.y, chunks = c1 - c0;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const size_t A = (size_t)H * N, first = ((size_t)stream * per + (size_t)c0 * CT) * A + (size_t)h * N + row0;
    const float *rec0 = records + (((size_t)stream * ((per + CT - 1) / CT) + c0) * H + h) * R::FLOATS;
    const size_t rec_step = (size_t)H * R::FLOATS;
    per = (per < c1 * CT ? per : c1 * CT) - c0 * CT; /* from here on: the range's tokens */
    float *const st = states[stream] + off + ((size_t)h * N + row0) * N + 8 * NT * w;
    float s[NT][4]; /* C fragments: n-tile nn holds rows g, g + 8 of the warp's columns 8 nn + 2t, + 1 */
    walk_rows<N, NT>(s, st, g, t, false);
    if (threadIdx.x < TILES) bulk_barrier_init(&full[threadIdx.x]);
    __syncthreads();
    const int copy = lane * COL_WARPS + w;
    for (int c = 0; c < 2 && c < chunks; c++)
        walk_issue<N, SA>(tiles + c * T::FLOATS, &full[c], rec0 + c * rec_step, v, first + (size_t)c * CT * A, A,
                          per - c * CT < CT ? per - c * CT : CT, copy);
    for (int c = 0; c < chunks; c++) {
        const int t0 = c * CT;
        const float *tile = tiles + (c % TILES) * T::FLOATS;
        bulk_barrier_wait(&full[c % TILES], (uint32_t)(c / TILES) & 1);
        tf32_a_frag vf[2]; /* the values as A fragments, k over the chunk's tokens */
#pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            const float *vt = tile + T::V + (8 * kk + 2 * t) * T::VSTRIDE + g;
            vf[kk] = tf32_a(vt[0], vt[8], vt[T::VSTRIDE], vt[T::VSTRIDE + 8]);
        }
        float p[NP][4] = {};
        walk_first<N, NT, SA>(p, s, vf, tile, w, g, t);
        float4 *const part = parts + (size_t)(c & 1) * COL_WARPS * NP * 32;
#pragma unroll
        for (int nn = 0; nn < NP; nn++)
            part[(w * NP + nn) * 32 + lane] = make_float4(p[nn][0], p[nn][1], p[nn][2], p[nn][3]);
        __syncthreads(); /* every part is in, and every warp is done with tile c - 1 */
        if (c + 2 < chunks)
            walk_issue<N, SA>(tiles + ((c + 2) % TILES) * T::FLOATS, &full[(c + 2) % TILES], rec0 + (c + 2) * rec_step,
                              v, first + (size_t)(t0 + 2 * CT) * A, A,
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
            if (token < per) y[first + (size_t)token * A + row] = yv;
        }
        walk_second<N, NT, SA>(s, sa, vf, tile, w, g, t);
    }
    walk_rows<N, NT>(s, st, g, t, true);
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
    if (cudaFuncSetAttribute(wkv_chunk_walk_kernel<64, SA>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             walk_bytes<SA>()) != cudaSuccess) {
        cudaGetLastError(); /* not left for the pass's error check */
        return false;
    }
    return true;
}

/* Parts of a long pass: at least PART_CHUNKS chunks each, at most MAX_PARTS (an event each) */
constexpr int PART_CHUNKS = 8, MAX_PARTS = 4;
static_assert(MAX_PARTS <= INFER_SIDE_EVENTS, "an event a part");

/* A pass it fits, in parts (rwkv_infer.cuh, cuda_wkv7_chunked): prep(k0,
 * k1, stream) launches the preparation of chunks [k0, k1) on the stream;
 * part 0's on s, alone, then the later parts' on the side stream, each
 * walked on s once its records are in. */
template <bool SA, typename Prep>
cudaError_t wkv_chunk_run(const infer_rows *rows, size_t off, int H, const float *v, float *y, const float *records,
                          cudaStream_t s, const infer_side *side, Prep prep) {
    const int chunks = (rows->per + CT - 1) / CT;
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
        wkv_chunk_walk_kernel<64, SA><<<dim3((unsigned)(H * (64 / WARP_ROWS)), (unsigned)rows->n_streams),
                                        WALK_THREADS, walk_bytes<SA>(), s>>>(rows->states, off, rows->per, bound(k),
                                                                             bound(k + 1), H, v, records, y);
    }
    return e;
}

} // namespace
