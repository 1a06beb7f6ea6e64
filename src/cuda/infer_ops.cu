/* The element-wise and per-head steps that the RWKV-5/6/7 inference blocks
 * share (cuda/rwkv_infer.cuh): the token shift continuing each stream's
 * state, the per-head GroupNorm ln_x with its gate, tanh and sigmoid.
 * Float32 throughout, mirroring model/common.c. */
#include "cuda/rwkv_infer.cuh"

typedef struct mix_set {
    const float *mu[SHIFT_MAX_MIX];
} mix_set;

template <int FORM>
__device__ __forceinline__ float shift_value(float cur, float prev, const float *mu, int ch) {
    if (FORM == SHIFT_DELTA) return prev - cur;
    const float w = mu[ch];
    return FORM == SHIFT_LERP ? cur + (prev - cur) * w : w * cur + (1.0f - w) * prev;
}

/* One thread per (row, channel): the previous token's z is the row above
 * within a stream, the state's slot for a stream's first row. */
template <int FORM, typename T>
__global__ void shift_kernel(const float *z, float *const *states, size_t off, int per, size_t rows, int C,
                             int n_mix, mix_set mu, T *out) {
    const size_t n = rows * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / C;
        const int ch = (int)(i % C);
        const float cur = z[i], prev = r % per ? z[i - C] : states[r / per][off + ch];
        for (int m = 0; m < n_mix; m++) st(out + m * n + i, shift_value<FORM>(cur, prev, mu.mu[m], ch));
    }
}

/* Afterwards (a second launch, so that no first row reads a slot already
 * replaced): each stream's last z into its slot. */
__global__ void shift_save_kernel(const float *z, float *const *states, size_t off, int per, int n_streams, int C) {
    const size_t n = (size_t)n_streams * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const size_t stream = i / C;
        const int ch = (int)(i % C);
        states[stream][off + ch] = z[((stream + 1) * per - 1) * C + ch];
    }
}

static unsigned grid_for(size_t n) { return cuda_blocks(n, 256) < 2048 ? cuda_blocks(n, 256) : 2048; }

/* Decode and batch steps (every row a stream of its own): the layer norm of
 * the row, the mixes against the state's slot, and the slot replaced by the
 * row's z, in one launch where the general path takes three. Two shapes:
 *
 * A few rows (decode): block (row, chunk) handles 256 channels of the row;
 * every block of the row sums the whole row itself (two-pass, as the layer
 * norm kernel), which costs a read of C floats from the cache and saves a
 * second launch, and its small blocks start beside the blocks of the
 * product still running ahead of it (programmatic dependent launch). */
enum { LN_CHUNK_VALUES = 16 }; /* channels of a row a thread holds: rows of up to 4096 at 256 threads */

template <int FORM, typename T>
__global__ void ln_shift_chunk_kernel(const float *x, const float *lw, const float *lb, float *const *states,
                                      size_t off, int C, int n_mix, mix_set mu, float *z, T *out, size_t n) {
    __shared__ float part[32];
    cuda_let_dependents_start();
    const size_t r = blockIdx.x;
    const int ch = blockIdx.y * blockDim.x + threadIdx.x;
    float *slot = states[r] + off;
    /* the channel's norm weights, mixes and slot, which no earlier kernel of
     * the pass writes, loaded before the wait: after it, each mix's load
     * would wait on the store before it (out may alias them), a chain of
     * n_mix + 1 memory latencies at the end of every launch */
    float lwc = 0.0f, lbc = 0.0f, prev = 0.0f, mw[SHIFT_MAX_MIX];
#pragma unroll
    for (int m = 0; m < SHIFT_MAX_MIX; m++) mw[m] = FORM != SHIFT_DELTA && ch < C && m < n_mix ? mu.mu[m][ch] : 0.0f;
    if (ch < C) lwc = lw[ch], lbc = lb[ch], prev = slot[ch];
    cuda_wait_for_prior_grids(); /* launched early: x is the previous kernel's */
    const float *xr = x + r * C;
    /* the thread's first LN_CHUNK_VALUES channels in registers, all their
     * loads issued before the first use (a loop summing straight from
     * memory waited for each load before the next: 8.2 us a launch at
     * C = 2048, measured alone); the sums keep their order */
    float v[LN_CHUNK_VALUES], acc = 0.0f;
#pragma unroll
    for (int e = 0; e < LN_CHUNK_VALUES; e++) {
        const int ch = threadIdx.x + e * blockDim.x;
        v[e] = ch < C ? xr[ch] : 0.0f;
    }
#pragma unroll
    for (int e = 0; e < LN_CHUNK_VALUES; e++) acc += v[e];
    for (int ch = threadIdx.x + LN_CHUNK_VALUES * blockDim.x; ch < C; ch += blockDim.x) acc += xr[ch];
    const float mean = block_sum(acc, part) / C;
    acc = 0.0f;
#pragma unroll
    for (int e = 0; e < LN_CHUNK_VALUES; e++)
        if (threadIdx.x + e * blockDim.x < C) acc += (v[e] - mean) * (v[e] - mean);
    for (int ch = threadIdx.x + LN_CHUNK_VALUES * blockDim.x; ch < C; ch += blockDim.x)
        acc += (xr[ch] - mean) * (xr[ch] - mean);
    const float rstd = rsqrtf(block_sum(acc, part) / C + 1e-5f);
    if (ch >= C) return;
    const float cur = (xr[ch] - mean) * rstd * lwc + lbc;
    z[r * C + ch] = cur;
    slot[ch] = cur;
#pragma unroll
    for (int m = 0; m < SHIFT_MAX_MIX; m++)
        if (m < n_mix) st(out + m * n + r * C + ch, shift_value<FORM>(cur, prev, mw, m));
}

/* Many rows (batch steps, prompts) where ln_shift_pack_kernel (below) does
 * not fit them: a block per row holds the row in registers (LN_ROW_VALUES
 * channels a thread, ch = threadIdx.x + e blockDim.x), so x is read once.
 * Rows of LN_ROW_MAX_C channels at most. */
enum { LN_ROW_THREADS = 512, LN_ROW_VALUES = 16, LN_ROW_MAX_C = LN_ROW_THREADS * LN_ROW_VALUES };
enum { LN_ROW_MIN_ROWS = 32 }; /* fewer rows take the chunked kernel */

/* The thread's channels of row xr, layer-normed (two passes, as the layer norm kernel). */
__device__ __forceinline__ void ln_row_values(const float *xr, const float *lw, const float *lb, int C,
                                              float (&v)[LN_ROW_VALUES], float *part) {
    float acc = 0.0f;
#pragma unroll
    for (int e = 0; e < LN_ROW_VALUES; e++) {
        const int ch = threadIdx.x + e * blockDim.x;
        v[e] = ch < C ? xr[ch] : 0.0f;
        acc += v[e];
    }
    const float mean = block_sum(acc, part) / C;
    acc = 0.0f;
#pragma unroll
    for (int e = 0; e < LN_ROW_VALUES; e++)
        if (threadIdx.x + e * blockDim.x < C) acc += (v[e] - mean) * (v[e] - mean);
    const float rstd = rsqrtf(block_sum(acc, part) / C + 1e-5f);
#pragma unroll
    for (int e = 0; e < LN_ROW_VALUES; e++) {
        const int ch = threadIdx.x + e * blockDim.x;
        if (ch < C) v[e] = (v[e] - mean) * rstd * lw[ch] + lb[ch];
    }
}

/* Streams of per rows. A stream's first row takes the previous token's z
 * from the state's slot, which no earlier kernel of the pass writes (read
 * before the wait); a later row normalises the row above again (a second
 * read of x, mostly from L2) instead of z going through memory. per == 1
 * (batch steps): each row replaces its slot. per > 1 (a prompt): z is
 * written for each stream's last row only, or for every row where z_all
 * (RWKV-6's ddlerp reads z), and shift_save_kernel fills the slots after
 * the launch, so that no first row reads a slot already replaced. */
template <int FORM, typename T>
__global__ void __launch_bounds__(LN_ROW_THREADS)
    ln_shift_row_kernel(const float *x, const float *lw, const float *lb, float *const *states, size_t off, int per,
                        int z_all, int C, int n_mix, mix_set mu, float *z, T *out, size_t n) {
    __shared__ float part[32];
    cuda_let_dependents_start();
    const size_t r = blockIdx.x;
    const int pos = (int)(r % per);
    float *slot = states[r / per] + off;
    float v[LN_ROW_VALUES], prev[LN_ROW_VALUES];
#pragma unroll
    for (int e = 0; e < LN_ROW_VALUES; e++) {
        const int ch = threadIdx.x + e * blockDim.x;
        prev[e] = pos == 0 && ch < C ? slot[ch] : 0.0f;
    }
    cuda_wait_for_prior_grids(); /* launched early: x is the previous kernel's */
    ln_row_values(x + r * C, lw, lb, C, v, part);
    if (pos > 0) ln_row_values(x + (r - 1) * C, lw, lb, C, prev, part);
    const bool keep_z = per == 1 || z_all || pos == per - 1;
#pragma unroll
    for (int e = 0; e < LN_ROW_VALUES; e++) {
        const int ch = threadIdx.x + e * blockDim.x;
        if (ch >= C) break;
        if (keep_z) z[r * C + ch] = v[e];
        if (per == 1) slot[ch] = v[e];
    }
    /* the weights of a mix for all the thread's channels are loaded before
     * its stores: a load may not pass a store to out (they may alias), so
     * loading them channel by channel between the stores would chain
     * LN_ROW_VALUES x n_mix load latencies */
#pragma unroll
    for (int m = 0; m < SHIFT_MAX_MIX; m++) {
        if (m >= n_mix) break;
        float mw[LN_ROW_VALUES];
#pragma unroll
        for (int e = 0; e < LN_ROW_VALUES; e++) {
            const int ch = threadIdx.x + e * blockDim.x;
            mw[e] = FORM != SHIFT_DELTA && ch < C ? mu.mu[m][ch] : 0.0f;
        }
#pragma unroll
        for (int e = 0; e < LN_ROW_VALUES; e++) {
            const int ch = threadIdx.x + e * blockDim.x;
            if (ch < C) st(out + m * n + r * C + ch, shift_value<FORM>(v[e], prev[e], mw, e));
        }
    }
}

/* Rows of a multiple of 4 channels (prompts and batch steps, as
 * ln_shift_row_kernel): its layout with each thread's channels as float4s
 * (channels 4q..4q+3, q = threadIdx.x + e blockDim.x), the row above loaded
 * beside the row rather than after its norm, the two rows' sums taken in one
 * reduction, each mix's weights loaded before the previous mix's stores,
 * and two packs a thread (under 64 registers: 32 warps an SM). The
 * row-at-a-time kernel left the memory idle most of the time: at 2048 rows
 * of 2048 channels it moved the 64 MB of six mixes in 43 us (H100). */
enum { LN_PACK_PACKS = 2, LN_PACK_THREADS = 1024, LN_PACK_MAX_C = 4 * LN_PACK_PACKS * LN_PACK_THREADS };

__device__ __forceinline__ void st4(float *p, float4 v) { *(float4 *)p = v; }
__device__ __forceinline__ void st4(bf16 *p, float4 v) {
    const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
    uint2 raw;
    raw.x = *(const unsigned *)&lo, raw.y = *(const unsigned *)&hi;
    *(uint2 *)p = raw;
}

__device__ __forceinline__ float4 ln4(float4 v, float mean, float rstd, float4 w, float4 b) {
    return make_float4((v.x - mean) * rstd * w.x + b.x, (v.y - mean) * rstd * w.y + b.y,
                       (v.z - mean) * rstd * w.z + b.z, (v.w - mean) * rstd * w.w + b.w);
}

__device__ __forceinline__ float sum4(float4 v) { return v.x + v.y + v.z + v.w; }
__device__ __forceinline__ float sq4(float4 v, float mean) {
    return (v.x - mean) * (v.x - mean) + (v.y - mean) * (v.y - mean) + (v.z - mean) * (v.z - mean) +
           (v.w - mean) * (v.w - mean);
}

template <int FORM>
__device__ __forceinline__ float4 shift4(float4 cur, float4 prev, float4 w) {
    const float mw[4] = {w.x, w.y, w.z, w.w};
    return make_float4(shift_value<FORM>(cur.x, prev.x, mw, 0), shift_value<FORM>(cur.y, prev.y, mw, 1),
                       shift_value<FORM>(cur.z, prev.z, mw, 2), shift_value<FORM>(cur.w, prev.w, mw, 3));
}

/* Mix m's weights for the thread's packs (zeros past the row, or for the delta form). */
template <int FORM>
__device__ __forceinline__ void mix_weights4(const mix_set &mu, int m, int C4, float4 (&w)[LN_PACK_PACKS]) {
#pragma unroll
    for (int e = 0; e < LN_PACK_PACKS; e++) {
        const int q = threadIdx.x + e * blockDim.x;
        w[e] = FORM != SHIFT_DELTA && q < C4 ? ((const float4 *)mu.mu[m])[q] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
}

template <int FORM, typename T>
__global__ void __launch_bounds__(LN_PACK_THREADS)
    ln_shift_pack_kernel(const float *x, const float *lw, const float *lb, float *const *states, size_t off, int per,
                         int z_all, int C, int n_mix, mix_set mu, float *z, T *out, size_t n) {
    constexpr int P = LN_PACK_PACKS;
    __shared__ float2 part[32];
    cuda_let_dependents_start();
    const size_t r = blockIdx.x;
    const int pos = (int)(r % per), C4 = C / 4;
    const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float4 *slot = (float4 *)(states[r / per] + off);
    float4 cur[P], prev[P], w4[P], b4[P];
#pragma unroll
    for (int e = 0; e < P; e++) { /* what no earlier kernel of the pass writes, before the wait */
        const int q = threadIdx.x + e * blockDim.x;
        w4[e] = q < C4 ? ((const float4 *)lw)[q] : zero, b4[e] = q < C4 ? ((const float4 *)lb)[q] : zero;
        prev[e] = pos == 0 && q < C4 ? slot[q] : zero;
    }
    cuda_wait_for_prior_grids(); /* launched early: x is the previous kernel's */
    const float4 *xr = (const float4 *)(x + r * C);
#pragma unroll
    for (int e = 0; e < P; e++) {
        const int q = threadIdx.x + e * blockDim.x;
        cur[e] = q < C4 ? xr[q] : zero;
        if (pos > 0) prev[e] = q < C4 ? xr[q - C4] : zero;
    }
    float2 acc = make_float2(0.0f, 0.0f); /* x: the row, y: the row above (when it is x's) */
#pragma unroll
    for (int e = 0; e < P; e++) acc.x += sum4(cur[e]), acc.y += pos > 0 ? sum4(prev[e]) : 0.0f;
    acc = block_sum2(acc, part);
    const float2 mean = make_float2(acc.x / C, acc.y / C);
    acc = make_float2(0.0f, 0.0f);
#pragma unroll
    for (int e = 0; e < P; e++)
        if (threadIdx.x + e * blockDim.x < C4)
            acc.x += sq4(cur[e], mean.x), acc.y += pos > 0 ? sq4(prev[e], mean.y) : 0.0f;
    acc = block_sum2(acc, part);
    const float rstd = rsqrtf(acc.x / C + 1e-5f), rstd_prev = rsqrtf(acc.y / C + 1e-5f);
    const bool keep_z = per == 1 || z_all || pos == per - 1;
#pragma unroll
    for (int e = 0; e < P; e++) {
        const int q = threadIdx.x + e * blockDim.x;
        cur[e] = ln4(cur[e], mean.x, rstd, w4[e], b4[e]);
        if (pos > 0) prev[e] = ln4(prev[e], mean.y, rstd_prev, w4[e], b4[e]);
        if (keep_z && q < C4) ((float4 *)(z + r * C))[q] = cur[e];
        if (per == 1 && q < C4) slot[q] = cur[e]; /* a batch step: each row replaces its slot */
    }
    float4 mw[P];
    mix_weights4<FORM>(mu, 0, C4, mw);
#pragma unroll
    for (int m = 0; m < SHIFT_MAX_MIX; m++) {
        if (m >= n_mix) break;
        float4 next[P];
        if (m + 1 < n_mix) mix_weights4<FORM>(mu, m + 1, C4, next);
#pragma unroll
        for (int e = 0; e < P; e++) {
            const int q = threadIdx.x + e * blockDim.x;
            if (q < C4) st4(out + m * n + r * C + 4 * (size_t)q, shift4<FORM>(cur[e], prev[e], mw[e]));
        }
#pragma unroll
        for (int e = 0; e < P; e++) mw[e] = next[e];
    }
}

/* Each stream's last z into its slot, after the launch that read the slots. */
static void shift_save_launch(rwkv_infer *c, const float *z, const infer_rows *rows, size_t off) {
    const int C = c->sh.n_embd;
    const size_t ns = (size_t)rows->n_streams * C;
    shift_save_kernel<<<grid_for(ns), 256, 0, c->stream>>>(z, rows->states, off, rows->per, rows->n_streams, C);
}

static mix_set mixes(const float *const *mu, int n_mix) {
    mix_set m;
    for (int i = 0; i < SHIFT_MAX_MIX; i++) m.mu[i] = mu && i < n_mix ? mu[i] : NULL;
    return m;
}

/* The shift's launches for output type T. */
template <typename T>
static void shift_launch(rwkv_infer *c, enum shift_form form, const float *z, const infer_rows *rows, size_t off,
                         int n_mix, const mix_set &m, T *out) {
    const int C = c->sh.n_embd;
    const size_t n = (size_t)rows->n * C;
    if (form == SHIFT_LERP)
        shift_kernel<SHIFT_LERP, T><<<grid_for(n), 256, 0, c->stream>>>(z, rows->states, off, rows->per, rows->n, C,
                                                                        n_mix, m, out);
    else if (form == SHIFT_MIX)
        shift_kernel<SHIFT_MIX, T><<<grid_for(n), 256, 0, c->stream>>>(z, rows->states, off, rows->per, rows->n, C,
                                                                       n_mix, m, out);
    else
        shift_kernel<SHIFT_DELTA, T><<<grid_for(n), 256, 0, c->stream>>>(z, rows->states, off, rows->per, rows->n,
                                                                         C, 1, m, out);
    shift_save_launch(c, z, rows, off);
}

/* Whether the norm + shift can take float4s: rows of a multiple of 4
 * channels, every array (and the state slots: off, as the states are whole
 * allocations) on a 16-byte boundary. */
template <typename T>
static bool pack_rows_fit(const rwkv_infer *c, const float *ln_w, const float *ln_b, size_t off, int n_mix,
                          const mix_set &m, const T *out) {
    const uintptr_t any = (uintptr_t)c->x | (uintptr_t)c->z | (uintptr_t)ln_w | (uintptr_t)ln_b | (uintptr_t)out;
    uintptr_t mixes = 0;
    for (int i = 0; i < n_mix; i++) mixes |= (uintptr_t)m.mu[i];
    return c->sh.n_embd % 4 == 0 && c->sh.n_embd <= LN_PACK_MAX_C && off % 4 == 0 && (any | mixes) % 16 == 0;
}

/* The layer norm and the shift in one launch: a block per row where the
 * rows are many and not too wide, else (decode) blocks of 256 channels. */
template <typename T>
static void ln_shift_step_launch(rwkv_infer *c, const float *ln_w, const float *ln_b, const infer_rows *rows,
                                 size_t off, enum shift_form form, int n_mix, const mix_set &m, T *out) {
    const int C = c->sh.n_embd;
    const size_t n = (size_t)rows->n * C;
    const int used = form == SHIFT_DELTA ? 1 : n_mix; /* the delta form has one output */
    if (rows->n >= LN_ROW_MIN_ROWS && C <= LN_ROW_MAX_C) {
        void (*kernel)(const float *, const float *, const float *, float *const *, size_t, int, int, int, int,
                       mix_set, float *, T *, size_t);
        unsigned threads; /* whole warps of the kernel's channels a thread */
        if (pack_rows_fit(c, ln_w, ln_b, off, used, m, out)) {
            kernel = form == SHIFT_LERP ? ln_shift_pack_kernel<SHIFT_LERP, T>
                     : form == SHIFT_MIX ? ln_shift_pack_kernel<SHIFT_MIX, T>
                                         : ln_shift_pack_kernel<SHIFT_DELTA, T>;
            threads = (unsigned)((C + 32 * 4 * LN_PACK_PACKS - 1) / (32 * 4 * LN_PACK_PACKS) * 32);
        } else {
            kernel = form == SHIFT_LERP ? ln_shift_row_kernel<SHIFT_LERP, T>
                     : form == SHIFT_MIX ? ln_shift_row_kernel<SHIFT_MIX, T>
                                         : ln_shift_row_kernel<SHIFT_DELTA, T>;
            threads = (unsigned)((C + 32 * LN_ROW_VALUES - 1) / (32 * LN_ROW_VALUES) * 32);
        }
        cuda_launch_early(kernel, dim3((unsigned)rows->n), dim3(threads), 0, c->stream, c->x, ln_w, ln_b,
                          rows->states, off, rows->per, form == SHIFT_DELTA ? 1 : 0, C, used, m, c->z, out, n);
        if (rows->per > 1) shift_save_launch(c, c->z, rows, off);
        return;
    }
    void (*kernel)(const float *, const float *, const float *, float *const *, size_t, int, int, mix_set, float *,
                   T *, size_t) =
        form == SHIFT_LERP ? ln_shift_chunk_kernel<SHIFT_LERP, T>
        : form == SHIFT_MIX ? ln_shift_chunk_kernel<SHIFT_MIX, T>
                            : ln_shift_chunk_kernel<SHIFT_DELTA, T>;
    const dim3 grid((unsigned)rows->n, cuda_blocks((size_t)C, 256));
    cuda_launch_early(kernel, grid, dim3(256), 0, c->stream, c->x, ln_w, ln_b, rows->states, off, C, used, m, c->z,
                      out, n);
}

void infer_shift(rwkv_infer *c, enum shift_form form, const float *z, const infer_rows *rows, size_t off,
                 int n_mix, const float *const *mu, float *out) {
    shift_launch(c, form, z, rows, off, n_mix, mixes(mu, n_mix), out);
}

void infer_ln_shift(rwkv_infer *c, const float *ln_w, const float *ln_b, const infer_rows *rows, size_t off,
                    enum shift_form form, int n_mix, const float *const *mu, float *out, void *out16) {
    const mix_set m = mixes(mu, n_mix);
    /* a prompt's rows each normalise the row above as well, unless too few or too wide for a block a row */
    const bool fused = rows->per == 1 || (rows->n >= LN_ROW_MIN_ROWS && c->sh.n_embd <= LN_ROW_MAX_C);
    if (!fused) infer_layernorm(c, c->x, ln_w, ln_b, rows->n, c->z);
    if (!fused && out16) shift_launch(c, form, c->z, rows, off, n_mix, m, (bf16 *)out16);
    else if (!fused) shift_launch(c, form, c->z, rows, off, n_mix, m, out);
    else if (out16) ln_shift_step_launch(c, ln_w, ln_b, rows, off, form, n_mix, m, (bf16 *)out16);
    else ln_shift_step_launch(c, ln_w, ln_b, rows, off, form, n_mix, m, out);
}

/* One warp per (row, head): GN over the head's N channels (two passes, the
 * CPU's layernorm), the affine of ln_x, then the SiLU gate. */
__global__ void group_norm_gate_kernel(float *y, const float *g, const float *w, const float *b, size_t units,
                                       int H, int N, float eps) {
    cuda_let_dependents_start();
    const size_t unit = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; /* row * H + head */
    const int lane = threadIdx.x & 31;
    if (unit >= units) return;
    const size_t base = unit * N;
    const int ch0 = (int)(unit % H) * N;
    cuda_prefetch_l2(w + ch0, sizeof(float) * N, lane);
    cuda_prefetch_l2(b + ch0, sizeof(float) * N, lane);
    cuda_wait_for_prior_grids(); /* launched early: y and g are the previous kernels' */
    float s = 0.0f;
    for (int j = lane; j < N; j += 32) s += y[base + j];
    const float mean = warp_sum(s) / N;
    float var = 0.0f;
    for (int j = lane; j < N; j += 32) var += (y[base + j] - mean) * (y[base + j] - mean);
    const float inv = 1.0f / sqrtf(warp_sum(var) / N + eps);
    for (int j = lane; j < N; j += 32) {
        float o = (y[base + j] - mean) * inv * w[ch0 + j] + b[ch0 + j];
        if (g) {
            const float gj = g[base + j];
            o *= gj * (1.0f / (1.0f + expf(-gj)));
        }
        y[base + j] = o;
    }
}

void infer_group_norm_gate(rwkv_infer *c, float *y, const float *g, const float *w, const float *b, int rows) {
    const int H = c->sh.n_head, N = c->sh.head_size;
    const size_t units = (size_t)rows * H;
    cuda_launch_early(group_norm_gate_kernel, dim3((unsigned)((units + 7) / 8)), dim3(256), 0, c->stream, y, g, w, b,
                      units, H, N, c->sh.gn_eps);
}

template <int SIG, typename T>
__global__ void squash_kernel(T *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        st(x + i, SIG ? 1.0f / (1.0f + expf(-ld(x + i))) : tanhf(ld(x + i)));
}

void infer_activation(cudaStream_t s, int act, cuda_dtype t, void *x, size_t n) {
    if (act == CUDA_ACT_RELU2) cuda_relu2_forward(t, x, x, n, s);
    if (act != CUDA_ACT_TANH && act != CUDA_ACT_SIGMOID) return;
    CUDA_DISPATCH(t, {
        if (act == CUDA_ACT_TANH) squash_kernel<0><<<grid_for(n), 256, 0, s>>>((act_t *)x, n);
        else squash_kernel<1><<<grid_for(n), 256, 0, s>>>((act_t *)x, n);
    });
}
