/* The RWKV-5.2 / RWKV-6 WKV of a long stream (prefill) in chunks of CT
 * tokens, for heads of 64.
 *
 * Token by token, a state row s (value channel i, its columns the key
 * channels) goes
 *     y_t = r_t·(s + u ⊙ k_t v_t),   s <- s ⊙ w_t + k_t v_t,
 * a chain of dependent steps. Over a chunk, with L_t = Σ_{τ<=t} log w_τ per
 * column (L_{-1} = 0),
 *     y_t   = R̄_t·s0 + Σ_{j<=t} H̄_tj v_j,      R̄_t = r_t e^{L_{t-1}},
 *     H̄_tj = Σ_c r_t[c] k_j[c] e^{L_{t-1}[c] - L_j[c]} (j < t),   H̄_tt = Σ_c r_t[c] u[c] k_t[c],
 *     s_end = s0 ⊙ e^{L_end} + Σ_j v_j k̃_j,     k̃_j = k_j e^{L_end - L_j},
 * which is RWKV-7's chunk without its in-context sums: this file's kernel
 * writes R̄, H̄, k̃ and e^{L_end} per (stream, chunk, head) and the walk of
 * wkv_chunk.cuh takes the rows through them.
 *
 * Unlike RWKV-7's, these decays have no lower bound (RWKV-6's
 * exp(-exp(·)) reaches 0), so no factor is taken as e^{-L}: every exponent
 * above is a sum of log decays over a span inside the chunk, at most 0, and
 * the running sums are kept in double so that their differences stay exact
 * when single decays are tiny (a log decay of -100 beside ones of -0.01). A
 * log decay is held at -1e4 or above (e^{-1e4} is 0 in float32 as w is),
 * so that sums stay finite. */
#include "cuda/wkv_chunk.cuh"

namespace {

/* log w of channel ch at a row: RWKV-6's -exp(decay + w), RWKV-5's log of its multiplier */
__device__ __forceinline__ double log_decay(const wkv5_chunk_inputs &in, size_t row, int ch) {
    const float x = in.w[row * in.w_stride + ch];
    const float lw = in.decay ? -expf(in.decay[ch] + x) : logf(x);
    return lw > -1e4f ? (double)lw : -1e4;
}

/* One block of CT x CT threads per (chunk, head, stream). Tokens past the
 * stream's end are zeros and log 1: they leave the state alone. */
template <int N>
__global__ void __launch_bounds__(CT *CT) wkv5_chunk_prep_kernel(int per, int c0, int H, wkv5_chunk_inputs in,
                                                                  float *records) {
    using R = chunk_record<N, false>;
    constexpr int LANES = N / 4, P = N + 4; /* a float4 a thread; padded rows */
    static_assert(CT * LANES == CT * CT, "a token's N channels are N / 4 threads");
    __shared__ __align__(16) float rs[CT][P], ks[CT][P];
    __shared__ double L[CT][N + 1]; /* the running sums; rows of N + 1: the (t, j) threads read 16 rows at one column */
    const int chunk = c0 + blockIdx.x, h = blockIdx.y, stream = blockIdx.z, t0 = chunk * CT;
    const size_t row0 = (size_t)stream * per + t0, A = (size_t)H * N;
    const int count = per - t0 < CT ? per - t0 : CT;
    float *rec = records + (((size_t)stream * ((per + CT - 1) / CT) + chunk) * H + h) * R::FLOATS;
    {
        const int t = threadIdx.x / LANES, c = 4 * (threadIdx.x % LANES), ch = h * N + c;
        float4 r = make_float4(0.0f, 0.0f, 0.0f, 0.0f), k = r;
        double lw[4] = {};
        if (t < count) {
            const size_t o = (row0 + t) * A + ch;
            r = *(const float4 *)(in.r + o), k = *(const float4 *)(in.k + o);
#pragma unroll
            for (int e = 0; e < 4; e++) lw[e] = log_decay(in, row0 + t, ch + e);
        }
        *(float4 *)&rs[t][c] = r, *(float4 *)&ks[t][c] = k;
#pragma unroll
        for (int e = 0; e < 4; e++) L[t][c + e] = lw[e];
    }
    __syncthreads();
    for (int col = threadIdx.x; col < N; col += blockDim.x) {
        double sum = 0.0;
#pragma unroll
        for (int u = 0; u < CT; u++) sum += L[u][col], L[u][col] = sum;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < CT * N; idx += blockDim.x) { /* R̄ and e^{L_end}: rows of columns */
        const int t = idx / N, c = idx % N;
        rec[R::RBAR + t * R::WIDE + c] = t > 0 ? rs[t][c] * expf((float)L[t - 1][c]) : rs[t][c];
        if (t == CT - 1) rec[R::DECAY + c] = expf((float)L[t][c]);
    }
    for (int idx = threadIdx.x; idx < CT * N; idx += blockDim.x) { /* k̃: rows of tokens */
        const int t = idx % CT, c = idx / CT;
        rec[R::KT + c * R::NARROW + t] = ks[t][c] * expf((float)(L[CT - 1][c] - L[t][c]));
    }
    const int t = threadIdx.x / CT, j = threadIdx.x % CT;
    float hv = 0.0f;
    if (j < t)
        for (int c = 0; c < N; c++) hv += rs[t][c] * ks[j][c] * expf((float)(L[t - 1][c] - L[j][c]));
    else if (j == t)
        for (int c = 0; c < N; c++) hv += rs[t][c] * in.u[h * N + c] * ks[t][c];
    rec[R::HBAR + t * CT + j] = hv;
}

} // namespace

bool cuda_wkv5_chunked_fits(const infer_rows *rows, size_t off, int H, int N, const wkv5_chunk_inputs *in,
                            const float *v, const float *y, size_t scratch_floats) {
    const float *const arrays[] = {in->r, in->k, v, y};
    return wkv_chunk_fits<false>(rows, off, H, N, arrays, 4, scratch_floats);
}

cudaError_t cuda_wkv5_chunked(const infer_rows *rows, size_t off, int H, int N, const wkv5_chunk_inputs *in,
                              const float *v, float *y, float *scratch, size_t scratch_floats, cudaStream_t s,
                              const infer_side *side) {
    (void)N; /* 64: cuda_wkv5_chunked_fits */
    return wkv_chunk_run<false>(rows, off, H, v, y, scratch, scratch_floats, s, side, [&](int k0, int k1, cudaStream_t on) {
        const dim3 grid((unsigned)(k1 - k0), (unsigned)H, (unsigned)rows->n_streams);
        wkv5_chunk_prep_kernel<64><<<grid, CT * CT, 0, on>>>(rows->per, k0, H, *in, scratch);
    });
}
