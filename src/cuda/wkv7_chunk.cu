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
#include "cuda/bulk_copy.cuh"
#include "cuda/mma_tf32.cuh"
#include "cuda/rwkv_infer.cuh"

namespace {

constexpr int CT = 16; /* tokens per chunk */

__device__ __forceinline__ void axpy4(float4 &s, float x, float4 b) {
    s.x = fmaf(x, b.x, s.x), s.y = fmaf(x, b.y, s.y), s.z = fmaf(x, b.z, s.z), s.w = fmaf(x, b.w, s.w);
}

/* What the preparation writes for one (stream, chunk, head), in floats:
 * Ā, R̄ [token][column], b̃, k̃ [column][token], N̄, H̄ [token][token], e^{L_end}.
 * The walk copies a record into shared memory as it is, in one bulk copy,
 * and reads two adjacent floats a lane of each row (mma_tf32.cuh), so the
 * rows it reads most are padded to a stride of 8 banks modulo 32: the float
 * pairs of a half-warp's rows fall into distinct banks. N̄ and H̄, two reads
 * a warp and chunk, are not, so that a record fits in the memory the RWKV-7
 * block lends (its six mixes: 6 floats a token and channel). */
template <int N>
struct chunk_record {
    static constexpr int WIDE = N + 8, NARROW = CT + 8; /* row strides: rows of N floats, rows of CT */
    static constexpr int ABAR = 0, RBAR = CT * WIDE, BT = 2 * CT * WIDE, KT = BT + N * NARROW;
    static constexpr int NBAR = KT + N * NARROW, HBAR = NBAR + CT * CT, DECAY = HBAR + CT * CT;
    static constexpr int FLOATS = DECAY + N;
};
static_assert(chunk_record<64>::FLOATS <= 6 * CT * 64, "a record fits in the six mixes of its tokens");

/* ---- preparation: one block of CT * CT threads per (chunk, head, stream) ---- */

/* Loads the chunk's inputs and turns them into the WKV's, as the block's
 * preparation does for the other kernels: log w = -DECAY_SCALE σ(w0 + dec)
 * (the chunk needs w's log, not w), α = σ(a0 + al), κ = k k_k / |k k_k| over
 * the head, a = -κ, b = κ α, k ← k (1 + (α - 1) k_a); and each token's bonus
 * Σ r k r_k. A token's N channels are N / 4 consecutive threads (a float4
 * each), so the head's sums are shuffles among them. Tokens past the stream's
 * end are zeros and log 1: they leave the state alone. Then L, the running
 * sum of log w. */
template <int N, int P>
__device__ void prep_load(const wkv7_raw_inputs &in, int h, int H, size_t first, size_t A, size_t row0, int count,
                          float (*rh)[P], float (*L)[P], float (*kh)[P], float (*ah)[P], float (*bh)[P]) {
    constexpr int LANES = N / 4;
    static_assert(CT * LANES == CT * CT && 32 % LANES == 0, "a float4 a thread, a token's lanes within a warp");
    const int t = threadIdx.x / LANES, c = 4 * (threadIdx.x % LANES), ch = h * N + c;
    float r[4] = {}, lw[4] = {}, k[4] = {}, kk[4] = {}, al[4] = {}, sq = 0.0f, bonus = 0.0f;
    if (t < count) {
        const size_t o = first + (size_t)t * A + c;
        const float4 rv = *(const float4 *)(in.r + o), dv = *(const float4 *)(in.dec + o);
        const float4 av = *(const float4 *)(in.al + o), kv = *(const float4 *)(in.k + o);
        const float4 w0 = *(const float4 *)(in.w0 + ch), a0 = *(const float4 *)(in.a0 + ch);
        const float4 k_k = *(const float4 *)(in.k_k + ch), k_a = *(const float4 *)(in.k_a + ch);
        const float4 r_k = *(const float4 *)(in.r_k + ch);
        const float rr[4] = {rv.x, rv.y, rv.z, rv.w}, dd[4] = {dv.x, dv.y, dv.z, dv.w}, aa[4] = {av.x, av.y, av.z, av.w};
        const float kr[4] = {kv.x, kv.y, kv.z, kv.w}, ww[4] = {w0.x, w0.y, w0.z, w0.w}, a00[4] = {a0.x, a0.y, a0.z, a0.w};
        const float kkk[4] = {k_k.x, k_k.y, k_k.z, k_k.w}, kaa[4] = {k_a.x, k_a.y, k_a.z, k_a.w};
        const float rkk[4] = {r_k.x, r_k.y, r_k.z, r_k.w};
#pragma unroll
        for (int e = 0; e < 4; e++) {
            r[e] = rr[e];
            lw[e] = rwkv7_log_decay(ww[e], dd[e]);
            al[e] = rwkv7_alpha(a00[e], aa[e]);
            kk[e] = kr[e] * kkk[e];
            sq += kk[e] * kk[e];
            k[e] = rwkv7_scaled_k(kr[e], al[e], kaa[e]);
            bonus += r[e] * k[e] * rkk[e];
        }
    }
#pragma unroll
    for (int m = 1; m < LANES; m <<= 1) {
        sq += __shfl_xor_sync(0xffffffffu, sq, m);
        bonus += __shfl_xor_sync(0xffffffffu, bonus, m);
    }
    if (t < count && c == 0) in.bonus[(row0 + t) * H + h] = bonus;
    const float inv = rwkv7_inv_norm(sq);
    *(float4 *)&rh[t][c] = make_float4(r[0], r[1], r[2], r[3]);
    *(float4 *)&L[t][c] = make_float4(lw[0], lw[1], lw[2], lw[3]);
    *(float4 *)&kh[t][c] = make_float4(k[0], k[1], k[2], k[3]);
    *(float4 *)&ah[t][c] = make_float4(-kk[0] * inv, -kk[1] * inv, -kk[2] * inv, -kk[3] * inv);
    *(float4 *)&bh[t][c] = make_float4(kk[0] * inv * al[0], kk[1] * inv * al[1], kk[2] * inv * al[2], kk[3] * inv * al[3]);
    __syncthreads();
    for (int col = threadIdx.x; col < N; col += blockDim.x) {
        float sum = 0.0f;
#pragma unroll
        for (int u = 0; u < CT; u++) sum += L[u][col], L[u][col] = sum;
    }
    __syncthreads();
}

/* Scales the inputs by their decays in place (â, r̂, b̂, k̂) and writes the
 * end-of-chunk terms b̃, k̃ (stored [column][token]: the walk's products read
 * a column's tokens together) and e^{L_end}. */
template <int N, int P>
__device__ void prep_scale(float (*rh)[P], const float (*L)[P], float (*kh)[P], float (*ah)[P], float (*bh)[P],
                           float *rec) {
    using R = chunk_record<N>;
    for (int idx = threadIdx.x; idx < CT * N; idx += blockDim.x) {
        const int t = idx % CT, c = idx / CT; /* t fastest: the b̃, k̃ stores are rows of tokens */
        const float lt = L[t][c], before = t > 0 ? L[t - 1][c] : 0.0f, end = L[CT - 1][c];
        const float bv = bh[t][c], kv = kh[t][c], to_end = expf(end - lt), from_start = expf(-lt);
        rec[R::BT + c * R::NARROW + t] = bv * to_end, rec[R::KT + c * R::NARROW + t] = kv * to_end;
        bh[t][c] = bv * from_start, kh[t][c] = kv * from_start;
        ah[t][c] *= expf(before), rh[t][c] *= expf(lt);
        if (t == CT - 1) rec[R::DECAY + c] = expf(end);
    }
    __syncthreads();
}

template <int N>
__global__ void __launch_bounds__(CT *CT) wkv7_chunk_prep_kernel(int per, int H, wkv7_raw_inputs in, float *records) {
    using R = chunk_record<N>;
    constexpr int P = N + 4; /* padded rows: the (t, j) threads read 16 rows at one column */
    __shared__ __align__(16) float rh[CT][P], L[CT][P], kh[CT][P], ah[CT][P], bh[CT][P];
    __shared__ float M[CT][CT + 1], Nm[CT][CT + 1], G[CT][CT + 1], Hm[CT][CT + 1], W[CT][CT + 1], Nb[CT][CT + 1];
    const int chunk = blockIdx.x, h = blockIdx.y, stream = blockIdx.z, t0 = chunk * CT;
    const size_t row0 = (size_t)stream * per + t0, A = (size_t)H * N, first = row0 * A + (size_t)h * N;
    float *rec = records + (((size_t)stream * gridDim.x + chunk) * H + h) * R::FLOATS;
    prep_load<N, P>(in, h, H, first, A, row0, per - t0 < CT ? per - t0 : CT, rh, L, kh, ah, bh);
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
        *(float4 *)&abar[u][c] = s, *(float4 *)(rec + R::ABAR + u * R::WIDE + c) = s;
    }
    float nb = 0.0f;
#pragma unroll
    for (int v = 0; v < CT; v++) nb += W[t][v] * Nm[v][j];
    Nb[t][j] = nb, rec[R::NBAR + t * CT + j] = nb;
    __syncthreads();

    /* R̄ = R̂ + G Ā and H̄ = H + G N̄ */
    for (int idx = threadIdx.x; idx < CT * N / 4; idx += blockDim.x) {
        const int u = idx / (N / 4), c = 4 * (idx % (N / 4));
        float4 s = *(const float4 *)&rh[u][c];
#pragma unroll
        for (int v = 0; v < CT; v++) axpy4(s, G[u][v], *(const float4 *)&abar[v][c]);
        *(float4 *)(rec + R::RBAR + u * R::WIDE + c) = s;
    }
    float hb = Hm[t][j];
#pragma unroll
    for (int v = 0; v < CT; v++) hb += G[t][v] * Nb[v][j];
    rec[R::HBAR + t * CT + j] = hb;
}

/* ---- the walk: 16 rows of one head per block, chunk after chunk, on the tensor cores ----
 * For the block's rows S (16 x N), values V (16 x CT, row i's v_t in column
 * t) and a chunk's record, a chunk is two products (mma_tf32.cuh):
 *     [SA | Y] = S [Āᵀ | R̄ᵀ] + V [N̄ᵀ | H̄ᵀ]          (16 x 2 CT)
 *     S       <- S diag(e^{L_end}) + SA b̃ + V k̃        (16 x N)
 * A walk is a chain of dependent chunks whose cost is the latency of one, so
 * the work is spread thin: each block's four warps own a quarter of the
 * columns of S (held in registers as C fragments), take the part of the first
 * product over their columns (and a quarter of its terms in V), and add their
 * parts through shared memory; each then takes the second product for its own
 * columns. One barrier a chunk. The records and values come in by bulk
 * copies, three chunks in flight. */
constexpr int WARP_ROWS = 16;                        /* the m of an m16n8k8 product */
constexpr int COL_WARPS = 4, WALK_THREADS = 32 * COL_WARPS, TILES = 3;

/* One chunk's tile in shared memory: the record as written, then the
 * block's values v[t][row], rows padded to 20 floats: the four loads of a
 * values fragment then fall into distinct banks. */
template <int N>
struct walk_tile {
    static constexpr int VSTRIDE = WARP_ROWS + 4, V = chunk_record<N>::FLOATS, FLOATS = V + CT * VSTRIDE;
    static constexpr uint32_t BYTES = FLOATS * sizeof(float) - (VSTRIDE - WARP_ROWS) * CT * sizeof(float);
};

/* Starts the copies of a chunk, one a thread: copy 0 the record, copy 1 + j
 * the values of token j; every warp takes a few (copy lane · COL_WARPS + w),
 * so that none comes late to the next barrier. Tokens past the end (a
 * stream's last chunk) repeat the last token's values: the record holds
 * zeros for them wherever a value is used, and the values must stay finite. */
template <int N>
__device__ void walk_issue(float *tile, uint64_t *bar, const float *rec, const float *v, size_t first, size_t A,
                           int count, int copy) {
    using T = walk_tile<N>;
    if (copy == 0) {
        bulk_barrier_expect(bar, T::BYTES);
        bulk_copy(tile, rec, chunk_record<N>::FLOATS * sizeof(float), bar);
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
 * 8-15): its columns of S, and its share of the values' terms. */
template <int N, int NT>
__device__ __forceinline__ void walk_first(float (&p)[4][4], const float (&s)[NT][4], const tf32_a_frag (&vf)[2],
                                           const float *tile, int w, int g, int t) {
    using R = chunk_record<N>;
    float ps[4][4] = {};
#pragma unroll
    for (int kk = 0; kk < NT; kk++) {
        const tf32_a_frag af = tf32_a_of_c(s[kk]);
        const int k0 = 8 * (w * NT + kk);
#pragma unroll
        for (int nn = 0; nn < 4; nn++) {
            const tf32_b_frag bf = b_frag(tile + (nn < 2 ? R::ABAR : R::RBAR) + (8 * (nn & 1) + g) * R::WIDE, k0, t);
            mma_tf32_small(ps[nn], af, bf);
            mma_tf32_big(p[nn], af, bf);
        }
    }
    /* the values' 2 x 4 (k-tile, n-tile) pairs, dealt out in order */
#pragma unroll
    for (int q = 0; q < 8 / COL_WARPS; q++) {
        const int pair = w * (8 / COL_WARPS) + q, target = pair & 3;
        const tf32_a_frag va = pair >> 2 ? vf[1] : vf[0];
        const tf32_b_frag bf = b_frag(tile + (target < 2 ? R::NBAR : R::HBAR) + (8 * (target & 1) + g) * CT, 8 * (pair >> 2), t);
#pragma unroll
        for (int nn = 0; nn < 4; nn++)
            if (nn == target) mma_tf32_small(ps[nn], va, bf), mma_tf32_big(p[nn], va, bf);
    }
#pragma unroll
    for (int nn = 0; nn < 4; nn++)
#pragma unroll
        for (int e = 0; e < 4; e++) p[nn][e] += ps[nn][e];
}

/* The warp's columns to the chunk's end: decayed, plus SA through b̃ and the values through k̃. */
template <int N, int NT>
__device__ __forceinline__ void walk_second(float (&s)[NT][4], const float4 (&sa)[2], const tf32_a_frag (&vf)[2],
                                            const float *tile, int w, int g, int t) {
    using R = chunk_record<N>;
    float es[NT][4] = {};
#pragma unroll
    for (int nn = 0; nn < NT; nn++) {
        const float2 d = *(const float2 *)(tile + R::DECAY + 8 * (w * NT + nn) + 2 * t);
        s[nn][0] *= d.x, s[nn][1] *= d.y, s[nn][2] *= d.x, s[nn][3] *= d.y;
    }
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
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

template <int N>
__global__ void __launch_bounds__(WALK_THREADS) wkv7_chunk_walk_kernel(float *const *states, size_t off, int per,
                                                                       int H, const float *v, const float *records,
                                                                       float *y) {
    using R = chunk_record<N>;
    using T = walk_tile<N>;
    constexpr int NT = N / 8 / COL_WARPS; /* the n-tiles of S a warp owns */
    static_assert(CT == 16 && NT >= 1 && N % (8 * COL_WARPS) == 0 && N % WARP_ROWS == 0, "tiles of 8");
    extern __shared__ float4 smem4[];
    float *const tiles = (float *)smem4;
    float4 *const parts = smem4 + TILES * T::FLOATS / 4; /* [chunk % 2][warp][n-tile][lane] */
    __shared__ uint64_t full[TILES];
    const int h = blockIdx.x / (N / WARP_ROWS), row0 = (blockIdx.x % (N / WARP_ROWS)) * WARP_ROWS;
    const int stream = blockIdx.y, chunks = (per + CT - 1) / CT;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const size_t A = (size_t)H * N, first = (size_t)stream * per * A + (size_t)h * N + row0;
    const float *rec0 = records + ((size_t)stream * chunks * H + h) * R::FLOATS;
    const size_t rec_step = (size_t)H * R::FLOATS;
    float *const st = states[stream] + off + ((size_t)h * N + row0) * N + 8 * NT * w;
    float s[NT][4]; /* C fragments: n-tile nn holds rows g, g + 8 of the warp's columns 8 nn + 2t, + 1 */
#pragma unroll
    for (int nn = 0; nn < NT; nn++) {
        const float2 top = *(const float2 *)(st + (size_t)g * N + 8 * nn + 2 * t);
        const float2 low = *(const float2 *)(st + (size_t)(g + 8) * N + 8 * nn + 2 * t);
        s[nn][0] = top.x, s[nn][1] = top.y, s[nn][2] = low.x, s[nn][3] = low.y;
    }
    if (threadIdx.x < TILES) bulk_barrier_init(&full[threadIdx.x]);
    __syncthreads();
    const int copy = lane * COL_WARPS + w;
    for (int c = 0; c < 2 && c < chunks; c++)
        walk_issue<N>(tiles + c * T::FLOATS, &full[c], rec0 + c * rec_step, v, first + (size_t)c * CT * A, A,
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
        float p[4][4] = {};
        walk_first<N, NT>(p, s, vf, tile, w, g, t);
        float4 *const part = parts + (size_t)(c & 1) * COL_WARPS * 4 * 32;
#pragma unroll
        for (int nn = 0; nn < 4; nn++) part[(w * 4 + nn) * 32 + lane] = make_float4(p[nn][0], p[nn][1], p[nn][2], p[nn][3]);
        __syncthreads(); /* every part is in, and every warp is done with tile c - 1 */
        if (c + 2 < chunks)
            walk_issue<N>(tiles + ((c + 2) % TILES) * T::FLOATS, &full[(c + 2) % TILES], rec0 + (c + 2) * rec_step, v,
                          first + (size_t)(t0 + 2 * CT) * A, A, per - t0 - 2 * CT < CT ? per - t0 - 2 * CT : CT, copy);
        /* SA whole, in a fixed order of the parts; each warp adds up and stores its share of Y */
        float4 sa[2];
#pragma unroll
        for (int nn = 0; nn < 2; nn++) {
            sa[nn] = part[nn * 32 + lane];
#pragma unroll
            for (int u = 1; u < COL_WARPS; u++) {
                const float4 x = part[(u * 4 + nn) * 32 + lane];
                sa[nn].x += x.x, sa[nn].y += x.y, sa[nn].z += x.z, sa[nn].w += x.w;
            }
        }
#pragma unroll
        for (int q = 0; q < 8 / COL_WARPS; q++) { /* Y's values (2 n-tiles x 4), dealt out in order */
            const int value = w * (8 / COL_WARPS) + q, e = value & 3;
            const float *yp = (const float *)(part + (2 + (value >> 2)) * 32 + lane) + e;
            float yv = yp[0];
#pragma unroll
            for (int u = 1; u < COL_WARPS; u++) yv += yp[u * 4 * 32 * 4];
            const int token = t0 + 8 * (value >> 2) + 2 * t + (e & 1), row = g + 8 * (e >> 1);
            if (token < per) y[first + (size_t)token * A + row] = yv;
        }
        walk_second<N, NT>(s, sa, vf, tile, w, g, t);
    }
#pragma unroll
    for (int nn = 0; nn < NT; nn++) {
        *(float2 *)(st + (size_t)g * N + 8 * nn + 2 * t) = make_float2(s[nn][0], s[nn][1]);
        *(float2 *)(st + (size_t)(g + 8) * N + 8 * nn + 2 * t) = make_float2(s[nn][2], s[nn][3]);
    }
}

/* The scratch the chunked form needs: its matrices for every (stream, chunk, head); 0 where it does not apply. */
size_t chunk_floats(const infer_rows *rows, int H, int N) {
    if (N != 64) return 0;
    return (size_t)rows->n_streams * ((rows->per + CT - 1) / CT) * H * chunk_record<64>::FLOATS;
}

constexpr int walk_bytes = (TILES * walk_tile<64>::FLOATS + 2 * COL_WARPS * 4 * 32 * 4) * (int)sizeof(float);

} // namespace

bool cuda_wkv7_chunked_fits(const infer_rows *rows, size_t off, int H, int N, const wkv7_raw_inputs *in,
                            const float *v, const float *y, size_t scratch_floats) {
    const size_t need = chunk_floats(rows, H, N);
    const float *const arrays[] = {in->r, in->dec, in->al, in->k, in->w0, in->a0, in->k_k, in->k_a, in->r_k, v, y};
    if (rows->per < CT || need == 0 || need > scratch_floats || off % 4 || (size_t)H * N % 4 ||
        !wkv_aligned16(arrays, 11))
        return false;
    /* three tiles and the parts, over the 48 KiB default: a device that cannot give them takes the other kernel */
    if (cudaFuncSetAttribute(wkv7_chunk_walk_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, walk_bytes) !=
        cudaSuccess) {
        cudaGetLastError(); /* not left for the pass's error check */
        return false;
    }
    return true;
}

void cuda_wkv7_chunked(const infer_rows *rows, size_t off, int H, int N, const wkv7_raw_inputs *in, const float *v,
                       float *y, float *scratch, cudaStream_t s) {
    (void)N; /* 64: cuda_wkv7_chunked_fits */
    const int chunks = (rows->per + CT - 1) / CT;
    wkv7_chunk_prep_kernel<64><<<dim3((unsigned)chunks, (unsigned)H, (unsigned)rows->n_streams), CT * CT, 0, s>>>(
        rows->per, H, *in, scratch);
    wkv7_chunk_walk_kernel<64><<<dim3((unsigned)(H * (64 / WARP_ROWS)), (unsigned)rows->n_streams), WALK_THREADS,
                                 walk_bytes, s>>>(rows->states, off, rows->per, H, v, scratch, y);
}
