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
 * once; the walk (wkv_chunk.cuh) takes each row through its chunks, two small products per
 * chunk instead of CT dependent steps.
 *
 * e^{-L_j} grows as the decays shrink: RWKV-7's decays are at least
 * e^{-e^{-1/2}} ≈ 0.545, so over 16 tokens it stays below 1.7e4 and every
 * product above keeps float32's relative precision (the ratios the terms
 * stand for are at most 1). */
#include "cuda/wkv_chunk.cuh"

namespace {

__device__ __forceinline__ void axpy4(float4 &s, float x, float4 b) {
    s.x = fmaf(x, b.x, s.x), s.y = fmaf(x, b.y, s.y), s.z = fmaf(x, b.z, s.z), s.w = fmaf(x, b.w, s.w);
}

using record7 = chunk_record<64, true>;
static_assert(record7::FLOATS <= 6 * CT * 64, "a record fits in the six mixes of its tokens");

/* ---- preparation: one block of CT * CT threads per (chunk, head, stream) ---- */

/* The value residual of four channels in place (block 0: its values kept as
 * the first block's); the walk reads v once this chunk's records are in. */
__device__ __forceinline__ void value_residual4(const wkv7_raw_inputs &in, size_t o, int ch) {
    float4 v = *(const float4 *)(in.v + o);
    if (!in.v0) {
        *(float4 *)(in.v_first + o) = v;
        return;
    }
    const float4 f = *(const float4 *)(in.v_first + o), m = *(const float4 *)(in.v_mix + o);
    const float4 b = *(const float4 *)(in.v0 + ch);
    v = make_float4(rwkv7_value_residual(v.x, f.x, b.x, m.x), rwkv7_value_residual(v.y, f.y, b.y, m.y),
                    rwkv7_value_residual(v.z, f.z, b.z, m.z), rwkv7_value_residual(v.w, f.w, b.w, m.w));
    *(float4 *)(in.v + o) = v;
}

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
    using R = chunk_record<N, true>;
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
__global__ void __launch_bounds__(CT *CT) wkv7_chunk_prep_kernel(int per, int c0, int H, wkv7_raw_inputs in,
                                                                  float *records) {
    using R = chunk_record<N, true>;
    constexpr int P = N + 4; /* padded rows: the (t, j) threads read 16 rows at one column */
    __shared__ __align__(16) float rh[CT][P], L[CT][P], kh[CT][P], ah[CT][P], bh[CT][P];
    __shared__ float M[CT][CT + 1], Nm[CT][CT + 1], G[CT][CT + 1], Hm[CT][CT + 1], W[CT][CT + 1], Nb[CT][CT + 1];
    const int chunk = c0 + blockIdx.x, h = blockIdx.y, stream = blockIdx.z, t0 = chunk * CT;
    const size_t row0 = (size_t)stream * per + t0, A = (size_t)H * N, first = row0 * A + (size_t)h * N;
    float *rec = records + (((size_t)stream * ((per + CT - 1) / CT) + chunk) * H + h) * R::FLOATS;
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
    /* last, when the registers of the rest are free again: at the start it
     * took the kernel from four blocks an SM to three */
    const int vt = threadIdx.x / (N / 4), vc = 4 * (threadIdx.x % (N / 4));
    if (vt < per - t0) value_residual4(in, first + (size_t)vt * A + vc, h * N + vc);
}

} // namespace

bool cuda_wkv7_chunked_fits(const infer_rows *rows, size_t off, int H, int N, const wkv7_raw_inputs *in,
                            const float *y, size_t scratch_floats) {
    const float *const arrays[] = {in->r,   in->dec, in->al, in->k,       in->w0, in->a0,    in->k_k,
                                   in->k_a, in->r_k, in->v,  in->v_first, in->v0, in->v_mix, y};
    return wkv_chunk_fits<true>(rows, off, H, N, arrays, (int)(sizeof arrays / sizeof arrays[0]), scratch_floats);
}

cudaError_t cuda_wkv7_chunked(const infer_rows *rows, size_t off, int H, int N, const wkv7_raw_inputs *in, float *y,
                              float *scratch, size_t scratch_floats, cudaStream_t s, const infer_side *side) {
    (void)N; /* 64: cuda_wkv7_chunked_fits */
    return wkv_chunk_run<true>(rows, off, H, in->v, y, scratch, scratch_floats, s, side, [&](int k0, int k1, cudaStream_t on) {
        const dim3 grid((unsigned)(k1 - k0), (unsigned)H, (unsigned)rows->n_streams);
        wkv7_chunk_prep_kernel<64><<<grid, CT * CT, 0, on>>>(rows->per, k0, H, *in, scratch);
    });
}
