/* The RWKV-7 WKV of a long stream (prefill) in chunks of CT tokens.
 *
 * Token by token, a state row s (one value channel i) goes
 *     sa_t = s·a_t,   s <- s ⊙ w_t + sa_t b_t + v_t k_t,   y_t = s·r_t,
 * a chain of dependent steps whose cost is the latency of one step. Over a
 * chunk the same map is linear in the row at the chunk's start, s0, and in
 * the chunk's values v, through matrices that depend only on r, w, k, a, b,
 * which every row of the head shares. With L_t = Σ_{τ<=t} log w_τ (per
 * column) and
 *     â_t = a_t e^{L_{t-1}},  r̂_t = r_t e^{L_t},  b̂_j = b_j e^{-L_j},  k̂_j = k_j e^{-L_j},
 *     M_tj = â_t·b̂_j,  Nm_tj = â_t·k̂_j  (j < t),    G_tj = r̂_t·b̂_j,  H_tj = r̂_t·k̂_j  (j <= t),
 * the chunk's sums solve sa = Â s0 + Nm v + M sa, so with W = (I - M)^-1
 *     sa = Ā s0 + N̄ v,              Ā = W Â,  N̄ = W Nm
 *     y  = R̄ s0 + H̄ v,              R̄ = R̂ + G Ā,  H̄ = H + G N̄
 *     s_end = s0 ⊙ e^{L_end} + Σ_j sa_j b̃_j + v_j k̃_j,   b̃_j = b_j e^{L_end - L_j}, k̃_j likewise.
 * A first kernel computes these per (stream, chunk, head), every chunk at
 * once; a second walks each row through its chunks, two small products per
 * chunk instead of CT dependent steps.
 *
 * e^{-L_j} grows as the decays shrink: RWKV-7's decays are at least
 * e^{-e^{-1/2}} ≈ 0.545, so over 16 tokens it stays below 1.7e4 and every
 * product above keeps float32's relative precision (the ratios the terms
 * stand for are at most 1). */
#include <cuda_pipeline.h>

#include "cuda/rwkv_infer.cuh"

namespace {

constexpr int CT = 16;  /* tokens per chunk */
constexpr int RB = 16;  /* state rows per block of the walk */

__device__ __forceinline__ float dot4(float4 a, float4 b) {
    return fmaf(a.w, b.w, fmaf(a.z, b.z, fmaf(a.y, b.y, a.x * b.x)));
}
__device__ __forceinline__ void axpy4(float4 &s, float x, float4 b) {
    s.x = fmaf(x, b.x, s.x), s.y = fmaf(x, b.y, s.y), s.z = fmaf(x, b.z, s.z), s.w = fmaf(x, b.w, s.w);
}

/* What the preparation writes for one (stream, chunk, head), in floats. */
template <int N>
struct chunk_record {
    static constexpr int TN = CT * N;
    static constexpr int ABAR = 0, RBAR = TN, BT = 2 * TN, KT = 3 * TN;
    static constexpr int NBAR = 4 * TN, HBAR = NBAR + CT * CT, DECAY = HBAR + CT * CT;
    static constexpr int FLOATS = DECAY + N;
};

/* ---- preparation: one block of CT * CT threads per (chunk, head, stream) ---- */

/* Loads the chunk's r, k, a, b and log w (tokens past the stream's end: zeros
 * and log 1, so they leave the state alone) and turns log w into L. */
template <int N, int P>
__device__ void prep_load(const float *r, const float *w, const float *k, const float *a, const float *b,
                          size_t first, size_t A, int count, float (*rh)[P], float (*L)[P], float (*kh)[P],
                          float (*ah)[P], float (*bh)[P]) {
    for (int idx = threadIdx.x; idx < CT * N / 4; idx += blockDim.x) {
        const int t = idx / (N / 4), c = 4 * (idx % (N / 4));
        const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        float4 rv = zero, wv = make_float4(1.0f, 1.0f, 1.0f, 1.0f), kv = zero, av = zero, bv = zero;
        if (t < count) {
            const size_t o = first + (size_t)t * A + c;
            rv = *(const float4 *)(r + o), wv = *(const float4 *)(w + o), kv = *(const float4 *)(k + o);
            av = *(const float4 *)(a + o), bv = *(const float4 *)(b + o);
        }
        *(float4 *)&rh[t][c] = rv, *(float4 *)&kh[t][c] = kv, *(float4 *)&ah[t][c] = av, *(float4 *)&bh[t][c] = bv;
        *(float4 *)&L[t][c] = make_float4(logf(wv.x), logf(wv.y), logf(wv.z), logf(wv.w));
    }
    __syncthreads();
    for (int c = threadIdx.x; c < N; c += blockDim.x) {
        float sum = 0.0f;
#pragma unroll
        for (int t = 0; t < CT; t++) sum += L[t][c], L[t][c] = sum;
    }
    __syncthreads();
}

/* Scales the inputs by their decays in place (â, r̂, b̂, k̂) and writes the
 * end-of-chunk terms b̃, k̃ and e^{L_end}. */
template <int N, int P>
__device__ void prep_scale(float (*rh)[P], const float (*L)[P], float (*kh)[P], float (*ah)[P], float (*bh)[P],
                           float *rec) {
    using R = chunk_record<N>;
    for (int idx = threadIdx.x; idx < CT * N; idx += blockDim.x) {
        const int t = idx / N, c = idx % N;
        const float lt = L[t][c], before = t > 0 ? L[t - 1][c] : 0.0f, end = L[CT - 1][c];
        const float bv = bh[t][c], kv = kh[t][c], to_end = expf(end - lt), from_start = expf(-lt);
        rec[R::BT + idx] = bv * to_end, rec[R::KT + idx] = kv * to_end;
        bh[t][c] = bv * from_start, kh[t][c] = kv * from_start;
        ah[t][c] *= expf(before), rh[t][c] *= expf(lt);
        if (t == CT - 1) rec[R::DECAY + c] = expf(end);
    }
    __syncthreads();
}

template <int N>
__global__ void __launch_bounds__(CT *CT) wkv7_chunk_prep_kernel(int per, int H, const float *r, const float *w,
                                                                  const float *k, const float *a, const float *b,
                                                                  float *records) {
    using R = chunk_record<N>;
    constexpr int P = N + 4; /* padded rows: the (t, j) threads read 16 rows at one column */
    __shared__ __align__(16) float rh[CT][P], L[CT][P], kh[CT][P], ah[CT][P], bh[CT][P];
    __shared__ float M[CT][CT + 1], Nm[CT][CT + 1], G[CT][CT + 1], Hm[CT][CT + 1], W[CT][CT + 1], Nb[CT][CT + 1];
    const int chunk = blockIdx.x, h = blockIdx.y, stream = blockIdx.z, t0 = chunk * CT;
    const size_t A = (size_t)H * N, first = ((size_t)stream * per + t0) * A + (size_t)h * N;
    float *rec = records + (((size_t)stream * gridDim.x + chunk) * H + h) * R::FLOATS;
    prep_load<N, P>(r, w, k, a, b, first, A, per - t0 < CT ? per - t0 : CT, rh, L, kh, ah, bh);
    prep_scale<N, P>(rh, L, kh, ah, bh, rec);

    /* the four CT x CT products, thread (t, j) */
    const int t = threadIdx.x / CT, j = threadIdx.x % CT;
    float m = 0.0f, n = 0.0f, g = 0.0f, hh = 0.0f;
#pragma unroll 4
    for (int c = 0; c < N; c += 4) {
        const float4 at = *(const float4 *)&ah[t][c], rt = *(const float4 *)&rh[t][c];
        const float4 bj = *(const float4 *)&bh[j][c], kj = *(const float4 *)&kh[j][c];
        m += at.x * bj.x + at.y * bj.y + at.z * bj.z + at.w * bj.w;
        n += at.x * kj.x + at.y * kj.y + at.z * kj.z + at.w * kj.w;
        g += rt.x * bj.x + rt.y * bj.y + rt.z * bj.z + rt.w * bj.w;
        hh += rt.x * kj.x + rt.y * kj.y + rt.z * kj.z + rt.w * kj.w;
    }
    M[t][j] = j < t ? m : 0.0f, Nm[t][j] = j < t ? n : 0.0f;
    G[t][j] = j <= t ? g : 0.0f, Hm[t][j] = j <= t ? hh : 0.0f;
    __syncthreads();

    /* W = (I - M)^-1, unit lower triangular: column q by forward substitution,
     * each entry added into every later one as soon as it is known, so the
     * chain from one entry to the next is one multiply-add */
    if (threadIdx.x < CT) {
        const int q = threadIdx.x;
        float col[CT];
#pragma unroll
        for (int u = 0; u < CT; u++) col[u] = u == q ? 1.0f : 0.0f;
#pragma unroll
        for (int v = 0; v < CT; v++) {
#pragma unroll
            for (int u = v + 1; u < CT; u++) col[u] += M[u][v] * col[v];
            W[v][q] = col[v];
        }
    }
    __syncthreads();

    /* Ā = W Â (into bh, whose b̂ is used up) and N̄ = W Nm; W and G are zero
     * above the diagonal, so the products run over whole rows */
    float (*abar)[P] = bh;
    for (int idx = threadIdx.x; idx < CT * N / 4; idx += blockDim.x) {
        const int u = idx / (N / 4), c = 4 * (idx % (N / 4));
        float4 s = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int v = 0; v < CT; v++) axpy4(s, W[u][v], *(const float4 *)&ah[v][c]);
        *(float4 *)&abar[u][c] = s, *(float4 *)(rec + R::ABAR + u * N + c) = s;
    }
    float nb = 0.0f;
#pragma unroll
    for (int v = 0; v < CT; v++) nb += W[t][v] * Nm[v][j];
    Nb[t][j] = nb, rec[R::NBAR + j * CT + t] = nb; /* stored [j][t] */
    __syncthreads();

    /* R̄ = R̂ + G Ā and H̄ = H + G N̄ */
    for (int idx = threadIdx.x; idx < CT * N / 4; idx += blockDim.x) {
        const int u = idx / (N / 4), c = 4 * (idx % (N / 4));
        float4 s = *(const float4 *)&rh[u][c];
#pragma unroll
        for (int v = 0; v < CT; v++) axpy4(s, G[u][v], *(const float4 *)&abar[v][c]);
        *(float4 *)(rec + R::RBAR + u * N + c) = s;
    }
    float hb = Hm[t][j];
#pragma unroll
    for (int v = 0; v < CT; v++) hb += G[t][v] * Nb[v][j];
    rec[R::HBAR + j * CT + t] = hb;
}

/* ---- the walk: RB rows of one head per block, chunk after chunk ----
 * A row lives in the registers of ROW_LANES lanes of one warp (lane q holds
 * its float4 column q), so its sums are shuffles inside the warp and only the
 * chunk's record is shared by the block. What bounds the walk is the shared
 * memory's bandwidth (every lane reads its columns of the record each
 * chunk), so a lane holds LANE_ROWS rows and uses each value it reads for
 * all of them. Three tiles in flight, one barrier a chunk. */
constexpr int ROW_LANES = 16, LANE_ROWS = 2, TILES = 3;
constexpr int WALK_THREADS = RB / LANE_ROWS * ROW_LANES;
constexpr int KEEP = 2 * CT / ROW_LANES; /* of the row's 2 CT sums, those a lane ends with */

/* One chunk's tile in shared memory: the record as written, then the block
 * rows' values v[t][row]. */
template <int N>
struct walk_tile {
    static constexpr int V = chunk_record<N>::FLOATS, FLOATS = V + CT * RB;
};

template <int N>
__device__ void walk_load(float *tile, const float *rec, const float *v, size_t first, size_t A, int count) {
    constexpr int RQ = chunk_record<N>::FLOATS / 4, VQ = CT * RB / 4;
    for (int idx = threadIdx.x; idx < RQ + VQ; idx += blockDim.x) {
        if (idx < RQ) {
            __pipeline_memcpy_async(tile + 4 * idx, rec + 4 * idx, 16);
        } else { /* the values of tokens past the end are zeros */
            const int e = idx - RQ, t = e / (RB / 4), i = 4 * (e % (RB / 4));
            const bool on = t < count;
            __pipeline_memcpy_async(tile + walk_tile<N>::V + t * RB + i, v + (on ? first + (size_t)t * A + i : 0),
                                    16, on ? 0 : 16);
        }
    }
    __pipeline_commit();
}

/* Sums each of the 2 CT values p over the row's lanes, a lane keeping half
 * of what it holds at every step (the half its partner does not): lane q
 * ends with the sums of values KEEP q .. KEEP q + KEEP - 1 in p[0 .. KEEP). */
template <int HALF>
__device__ __forceinline__ void row_reduce_scatter(float (&p)[2 * CT], int q) {
    constexpr int BIT = HALF * ROW_LANES / (2 * CT);
    const bool up = q & BIT;
#pragma unroll
    for (int m = 0; m < HALF; m++) {
        const float send = up ? p[m] : p[m + HALF], keep = up ? p[m + HALF] : p[m];
        p[m] = keep + __shfl_xor_sync(0xffffffffu, send, BIT);
    }
    if constexpr (HALF > KEEP) row_reduce_scatter<HALF / 2>(p, q);
}

template <int N>
__global__ void __launch_bounds__(WALK_THREADS, 1) wkv7_chunk_walk_kernel(float *const *states, size_t off, int per,
                                                                          int H, const float *v, const float *records,
                                                                          float *y) {
    using R = chunk_record<N>;
    using T = walk_tile<N>;
    static_assert(N == 4 * ROW_LANES && KEEP * ROW_LANES == 2 * CT, "a lane holds one float4 of each of its rows");
    extern __shared__ float4 smem4[];
    float *const tiles = (float *)smem4;
    const int h = blockIdx.x / (N / RB), row0 = (blockIdx.x % (N / RB)) * RB, stream = blockIdx.y;
    const int chunks = (per + CT - 1) / CT, lane = threadIdx.x % 32, q = lane % ROW_LANES, leader = lane - q;
    const int i0 = threadIdx.x / ROW_LANES; /* the lane's rows: i0, i0 + RB / LANE_ROWS, ... */
    const bool sa_lane = q < ROW_LANES / 2; /* lanes with sums of s·Ā; the others s·R̄ (outputs) */
    const int tok = KEEP * (q % (ROW_LANES / 2)); /* the lane's first token of the chunk */
    const size_t A = (size_t)H * N, first = (size_t)stream * per * A + (size_t)h * N + row0;
    const float *rec0 = records + ((size_t)stream * chunks * H + h) * R::FLOATS;
    const size_t rec_step = (size_t)H * R::FLOATS;
    float *const st = states[stream] + off + ((size_t)h * N + row0) * N + 4 * q;
    float4 s[LANE_ROWS];
#pragma unroll
    for (int r = 0; r < LANE_ROWS; r++) s[r] = *(const float4 *)(st + (size_t)(i0 + r * (RB / LANE_ROWS)) * N);
    walk_load<N>(tiles, rec0, v, first, A, per < CT ? per : CT);
    if (chunks > 1) walk_load<N>(tiles + T::FLOATS, rec0 + rec_step, v, first + CT * A, A, per - CT < CT ? per - CT : CT);
    else __pipeline_commit(); /* an empty group keeps the count of groups in flight uniform */
    for (int c = 0; c < chunks; c++) {
        const int t0 = c * CT;
        __pipeline_wait_prior(1);
        __syncthreads(); /* tile c is in for every thread, and every thread is done with tile c - 1 */
        if (c + 2 < chunks)
            walk_load<N>(tiles + ((c + 2) % TILES) * T::FLOATS, rec0 + (c + 2) * rec_step, v,
                         first + (size_t)(t0 + 2 * CT) * A, A, per - t0 - 2 * CT < CT ? per - t0 - 2 * CT : CT);
        else
            __pipeline_commit();
        const float *tile = tiles + (c % TILES) * T::FLOATS;
        const float4 *tile4 = (const float4 *)tile;
        /* each row against Ā_t, R̄_t (2 CT consecutive vectors of the record) */
        float p[LANE_ROWS][2 * CT];
#pragma unroll
        for (int m = 0; m < 2 * CT; m++) {
            const float4 x = tile4[m * (N / 4) + q];
#pragma unroll
            for (int r = 0; r < LANE_ROWS; r++) p[r][m] = dot4(s[r], x);
        }
#pragma unroll
        for (int r = 0; r < LANE_ROWS; r++) row_reduce_scatter<CT>(p[r], q);
        /* plus the values through N̄ (sums) or H̄ (outputs), both stored [j][t] */
        float vv[LANE_ROWS][CT];
        const float *vm = tile + (sa_lane ? R::NBAR : R::HBAR) + tok;
#pragma unroll
        for (int j = 0; j < CT; j++) {
            float m[KEEP];
#pragma unroll
            for (int e = 0; e < KEEP; e++) m[e] = vm[j * CT + e];
#pragma unroll
            for (int r = 0; r < LANE_ROWS; r++) {
                vv[r][j] = tile[T::V + j * RB + i0 + r * (RB / LANE_ROWS)];
#pragma unroll
                for (int e = 0; e < KEEP; e++) p[r][e] = fmaf(vv[r][j], m[e], p[r][e]);
            }
        }
#pragma unroll
        for (int r = 0; r < LANE_ROWS; r++)
#pragma unroll
            for (int e = 0; e < KEEP; e++)
                if (!sa_lane && t0 + tok + e < per)
                    y[first + (size_t)(t0 + tok + e) * A + i0 + r * (RB / LANE_ROWS)] = p[r][e];
        float sa[LANE_ROWS][CT];
#pragma unroll
        for (int r = 0; r < LANE_ROWS; r++)
#pragma unroll
            for (int j = 0; j < CT; j++) sa[r][j] = __shfl_sync(0xffffffffu, p[r][j % KEEP], leader + j / KEEP);
        /* the rows to the chunk's end: decayed, plus the sums through b̃ and the values through k̃ */
        const float4 d = tile4[R::DECAY / 4 + q];
        float4 kv[LANE_ROWS];
#pragma unroll
        for (int r = 0; r < LANE_ROWS; r++) {
            s[r] = make_float4(s[r].x * d.x, s[r].y * d.y, s[r].z * d.z, s[r].w * d.w);
            kv[r] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int j = 0; j < CT; j++) {
            const float4 bt = tile4[(R::BT + j * N) / 4 + q], kt = tile4[(R::KT + j * N) / 4 + q];
#pragma unroll
            for (int r = 0; r < LANE_ROWS; r++) axpy4(s[r], sa[r][j], bt), axpy4(kv[r], vv[r][j], kt);
        }
#pragma unroll
        for (int r = 0; r < LANE_ROWS; r++)
            s[r] = make_float4(s[r].x + kv[r].x, s[r].y + kv[r].y, s[r].z + kv[r].z, s[r].w + kv[r].w);
    }
#pragma unroll
    for (int r = 0; r < LANE_ROWS; r++) *(float4 *)(st + (size_t)(i0 + r * (RB / LANE_ROWS)) * N) = s[r];
}

/* The scratch the chunked form needs: its matrices for every (stream, chunk, head); 0 where it does not apply. */
size_t chunk_floats(const infer_rows *rows, int H, int N) {
    if (N != 64) return 0;
    return (size_t)rows->n_streams * ((rows->per + CT - 1) / CT) * H * chunk_record<64>::FLOATS;
}

} // namespace

bool cuda_wkv7_chunked(const infer_rows *rows, size_t off, int H, int N, const float *r, const float *w,
                       const float *k, const float *v, const float *a, const float *b, float *y, float *scratch,
                       size_t scratch_floats, cudaStream_t s) {
    const size_t need = chunk_floats(rows, H, N);
    const float *const arrays[] = {r, w, k, v, a, b, scratch};
    if (rows->per < CT || need == 0 || need > scratch_floats || off % 4 || (size_t)H * N % 4 ||
        !wkv_aligned16(arrays, 7))
        return false;
    /* three tiles, over the 48 KiB default: a device that cannot give them takes the other kernel */
    const int bytes = TILES * walk_tile<64>::FLOATS * (int)sizeof(float);
    if (cudaFuncSetAttribute(wkv7_chunk_walk_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) !=
        cudaSuccess) {
        cudaGetLastError(); /* not left for the pass's error check */
        return false;
    }
    const int chunks = (rows->per + CT - 1) / CT;
    wkv7_chunk_prep_kernel<64><<<dim3((unsigned)chunks, (unsigned)H, (unsigned)rows->n_streams), CT * CT, 0, s>>>(
        rows->per, H, r, w, k, a, b, scratch);
    wkv7_chunk_walk_kernel<64><<<dim3((unsigned)(H * (64 / RB)), (unsigned)rows->n_streams), WALK_THREADS, bytes, s>>>(
        rows->states, off, rows->per, H, v, scratch, y);
    return true;
}
