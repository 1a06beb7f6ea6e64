/* Matrix products of a few rows (decode): Y[r] (+)= act(W X[r]) with one warp
 * per output (or up to four, each a part of a long row: split_of), the weight
 * row read once for all rows in 16-byte packs,
 * several packs in flight per lane. Where a product is bound by reading the
 * weights this reaches the bandwidth that a general GEMM of one column does
 * not; it reads float32 inputs directly (no bf16 copy of them first), sums in
 * float32 in a fixed order (a row's result does not depend on the other
 * rows), and runs several products of the same rows in one launch.
 *
 * A launch may begin before the kernel ahead of it in the stream has ended
 * (programmatic dependent launch): its warps first ask the L2 cache for their
 * weight rows, which no earlier kernel writes, and only then wait for the
 * earlier kernels and read X. So the weights of a product stream in while
 * the small kernels between products (norms, shifts, the WKV) still run. */
#include <cuda_fp16.h>

#include <type_traits>

#include "cuda/bulk_copy.cuh"
#include "cuda/common.cuh"

/* packs a lane loads before using them; threads and warps per block */
enum { UNROLL = 4, THREADS = 128, WARPS = THREADS / 32 };

typedef struct gemv_group {
    cuda_gemv_op op[CUDA_GEMV_MAX_OPS];
    unsigned first_block[CUDA_GEMV_MAX_OPS + 1]; /* blocks of op p: [first_block[p], first_block[p + 1]) */
    unsigned char split[CUDA_GEMV_MAX_OPS];      /* warps that share one output of op p (split_of) */
    int n, rows;
} gemv_group;

__device__ __forceinline__ float activate(float x, int act) {
    if (act == CUDA_ACT_TANH) return tanhf(x);
    if (act == CUDA_ACT_SIGMOID) return 1.0f / (1.0f + expf(-x));
    if (act == CUDA_ACT_RELU2) return x > 0.0f ? x * x : 0.0f;
    return x;
}

/* The weight row of output o, fetched E weights at a time as raw bits and
 * turned into floats only when used, so that a load in flight holds 4
 * registers (a 16-byte pack) instead of its 8 or 16 floats: rows of float or
 * bf16 (E > 1: one 16-byte pack), or of int8 codes with one fp16 scale per 32
 * (CUDA_Q8: the codes of all rows, then the scales; E = 16 is one 16-byte
 * pack of codes, half a block). */
template <typename T, int E>
struct float_row {
    struct bits {
        typename std::conditional<E == 1, T, int4>::type v;
    };
    const T *w;
    float_row() = default;
    __device__ float_row(const void *W, int out, int in, int o) : w((const T *)W + (size_t)o * in) { (void)out; }
    __device__ __forceinline__ bits fetch(int i) const {
        bits b;
        if constexpr (E == 1) b.v = w[i];
        else b.v = *reinterpret_cast<const int4 *>(w + i);
        return b;
    }
    static constexpr bool SCALED = false;
    __device__ __forceinline__ void unpack(const bits &b, float *x) const {
        const T *e = reinterpret_cast<const T *>(&b.v);
#pragma unroll
        for (int k = 0; k < E; k++) x[k] = ld(e + k);
    }
    __device__ __forceinline__ void prefetch(int begin, int end, int lane) const {
        cuda_prefetch_l2(w + begin, sizeof(T) * (size_t)(end - begin), lane);
    }
};

template <int E>
struct q8_row {
    struct bits {
        typename std::conditional<E == 1, int8_t, int4>::type v;
        __half d;
    };
    const int8_t *q;
    const __half *d;
    q8_row() = default;
    __device__ q8_row(const void *W, int out, int in, int o)
        : q((const int8_t *)W + (size_t)o * in),
          d((const __half *)((const int8_t *)W + (size_t)out * in) + (size_t)o * (in / 32)) {}
    __device__ __forceinline__ bits fetch(int i) const {
        bits b;
        if constexpr (E == 1) b.v = q[i];
        else b.v = *reinterpret_cast<const int4 *>(q + i);
        b.d = d[i / 32];
        return b;
    }
    /* A pack of 16 codes (half a block, one scale) comes out as the codes
     * themselves: row_dot sums them against X and scales the pack's sum once
     * (SCALED), one multiplication a pack instead of one a weight. */
    static constexpr bool SCALED = E == 16;
    __device__ __forceinline__ float scale(const bits &b) const { return __half2float(b.d); }
    __device__ __forceinline__ void unpack(const bits &b, float *x) const {
        if constexpr (E == 16) {
            /* code c + 128 as the low byte of the float 2^23 (bits 0x4B0000uu: one byte
             * permute), minus 2^23 + 128, is c exactly: no int-to-float conversion, which
             * runs at a quarter of the FMA rate */
            const unsigned words[4] = {(unsigned)b.v.x ^ 0x80808080u, (unsigned)b.v.y ^ 0x80808080u,
                                       (unsigned)b.v.z ^ 0x80808080u, (unsigned)b.v.w ^ 0x80808080u};
#pragma unroll
            for (int e = 0; e < 16; e++)
                x[e] = __uint_as_float(__byte_perm(words[e / 4], 0x4B00u, 0x5440u + (e % 4))) - 8388736.0f;
        } else {
            x[0] = __half2float(b.d) * (float)b.v;
        }
    }
    __device__ __forceinline__ void prefetch(int begin, int end, int lane) const {
        cuda_prefetch_l2(q + begin, (size_t)(end - begin), lane);
        cuda_prefetch_l2(d + begin / 32, sizeof(__half) * (size_t)((end - begin) / 32), lane);
    }
};

/* A warp's part of a bf16 weight row that a bulk copy has put in shared
 * memory (staged_gemv_kernel): fetched by the same indices as the row in
 * global memory, so row_dot visits it in the same order. */
struct staged_row {
    struct bits {
        int4 v;
    };
    const bf16 *s; /* element `begin` of the row */
    int begin;
    static constexpr bool SCALED = false;
    __device__ __forceinline__ bits fetch(int i) const { return {*reinterpret_cast<const int4 *>(s + (i - begin))}; }
    __device__ __forceinline__ void unpack(const bits &b, float *x) const {
        const bf16 *e = reinterpret_cast<const bf16 *>(&b.v);
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] = ld(e + k);
    }
};

template <typename T, int E>
struct row_of {
    using type = float_row<T, E>;
};
template <int E>
struct row_of<int8_t, E> {
    using type = q8_row<E>;
};

/* acc[j][r] += this lane's share of W[o + j][begin, end) · X[r][begin, end)
 * for the OUTS outputs of a warp, E weights at a time (E > 1: 16-byte packs
 * of W and float4 loads of X, which the caller checked). Each X load serves
 * all OUTS outputs: with several rows, loading X for every weight pack would
 * bound the product by the L1 cache instead of the memory. A lane visits its
 * packs in the same order whatever OUTS and ROWS are, so every sum is too. */
template <int ROWS, int OUTS, typename Row, int E>
__device__ __forceinline__ void row_dot(const Row *w, const float *X, int ldx, int begin, int end, int rows, int lane,
                                        float (*acc)[ROWS]) {
    constexpr int U = OUTS >= UNROLL ? 1 : UNROLL / OUTS; /* packs in flight per output */
    for (int base = begin + lane * E; base < end; base += 32 * E * U) {
        typename Row::bits raw[U][OUTS];
#pragma unroll
        for (int u = 0; u < U; u++)
            if (base + u * 32 * E < end)
#pragma unroll
                for (int j = 0; j < OUTS; j++) raw[u][j] = w[j].fetch(base + u * 32 * E);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = base + u * 32 * E;
            if (i >= end) break;
            float wv[OUTS][E];
#pragma unroll
            for (int j = 0; j < OUTS; j++) w[j].unpack(raw[u][j], wv[j]);
#pragma unroll
            for (int r = 0; r < ROWS; r++) {
                if (r >= rows) break;
                float xv[E];
                if constexpr (E > 1) {
#pragma unroll
                    for (int e = 0; e < E; e += 4) load_pack(xv + e, X + (size_t)r * ldx + i + e);
                } else {
                    xv[0] = X[(size_t)r * ldx + i];
                }
#pragma unroll
                for (int j = 0; j < OUTS; j++) {
                    if constexpr (Row::SCALED) {
                        float pack = 0.0f;
#pragma unroll
                        for (int e = 0; e < E; e++) pack += wv[j][e] * xv[e];
                        acc[j][r] += w[j].scale(raw[u][j]) * pack;
                    } else {
#pragma unroll
                        for (int e = 0; e < E; e++) acc[j][r] += wv[j][e] * xv[e];
                    }
                }
            }
        }
    }
}

/* The warp's N = 2^LOG_N partial sums (v[i], one set per lane) summed over
 * the lanes in one tree of 31 shuffles instead of N warp_sums of 5: at each
 * step a lane keeps half of its values and adds its partner's same half, so
 * sum i ends in the lanes l with l >> (5 - LOG_N) == i. Every sum pairs the
 * lanes in warp_sum's order (l ^ 16, then 8, 4, 2, 1), so it is the same
 * float as warp_sum gives for it. Returns the lane's sum. */
template <int LOG_N>
__device__ __forceinline__ float lanes_sum(float *v, int lane) {
    int n = 1 << LOG_N, o = 16;
#pragma unroll
    for (int step = 0; step < LOG_N; step++, o >>= 1) {
        n /= 2;
        const bool upper = (lane & o) != 0;
#pragma unroll
        for (int i = 0; i < (1 << LOG_N) / 2; i++) {
            if (i >= n) break;
            const float send = upper ? v[i] : v[i + n], keep = upper ? v[i + n] : v[i];
            v[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
        }
    }
#pragma unroll
    for (int step = LOG_N; step < 5; step++, o >>= 1) v[0] += __shfl_xor_sync(0xffffffffu, v[0], o);
    return v[0];
}

__host__ __device__ constexpr int log2_of(int n) { return n <= 1 ? 0 : 1 + log2_of(n / 2); }

/* The sums of one warp's part of its rows into Y: with split warps a row,
 * the parts meet in shared memory and the first warp adds them in part order
 * (a fixed order, so the result does not depend on timing). */
template <int ROWS, int OUTS>
__device__ __forceinline__ void store_sums(const cuda_gemv_op *op, float (*acc)[ROWS], int rows, int o, bool active,
                                           int split) {
    constexpr int LOG_N = log2_of(OUTS * ROWS);
    static_assert((1 << LOG_N) == OUTS * ROWS && LOG_N <= 5, "OUTS x ROWS: a power of two up to 32");
    __shared__ float part_sum[WARPS][OUTS * ROWS];
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int i = lane >> (5 - LOG_N);                  /* the sum this lane ends with */
    const bool writer = (lane & ((32 >> LOG_N) - 1)) == 0; /* one lane of those that hold it */
    float sum = lanes_sum<LOG_N>(&acc[0][0], lane);
    if (split > 1) {
        if (writer) part_sum[warp][i] = sum;
        __syncthreads();
        if (warp % split != 0) return;
        sum = part_sum[warp][i];
        for (int q = 1; q < split; q++) sum += part_sum[warp + q][i];
    }
    const int j = i / ROWS, r = i % ROWS;
    if (!active || !writer || r >= rows) return;
    float *y = op->Y + (size_t)r * op->out + o + j;
    *y = op->accumulate ? *y + sum : activate(sum, op->act);
}

/* T: float, bf16, or int8_t for CUDA_Q8 rows; ROWS: the most rows a launch
 * takes (1 for decode: fewer registers, more warps in flight); OUTS: outputs
 * a warp computes (it divides every op's out). */
template <typename T, int ROWS, int OUTS>
__global__ void __launch_bounds__(THREADS) gemv_kernel(gemv_group g) {
    cuda_let_dependents_start();
    int p = 0;
    while (p + 1 < g.n && blockIdx.x >= g.first_block[p + 1]) p++;
    const cuda_gemv_op *op = &g.op[p];
    const int split = g.split[p], warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int o = ((int)(blockIdx.x - g.first_block[p]) * (WARPS / split) + warp / split) * OUTS;
    const int part = op->in / split, begin = warp % split * part, end = begin + part;
    const bool active = o < op->out;
    float acc[OUTS][ROWS];
#pragma unroll
    for (int j = 0; j < OUTS; j++)
#pragma unroll
        for (int r = 0; r < ROWS; r++) acc[j][r] = 0.0f;
    if (active) {
        using packed_row = typename row_of<T, PACK(T)>::type;
        using plain_row = typename row_of<T, 1>::type;
        packed_row wp[OUTS];
#pragma unroll
        for (int j = 0; j < OUTS; j++) {
            wp[j] = packed_row(op->W, op->out, op->in, o + j);
            wp[j].prefetch(begin, end, lane);
        }
        cuda_wait_for_prior_grids();
        const bool packed = op->in % PACK(T) == 0 && ((uintptr_t)op->W & 15) == 0 && ((uintptr_t)op->X & 15) == 0 &&
                            op->ldx % 4 == 0;
        if (packed) {
            row_dot<ROWS, OUTS, packed_row, PACK(T)>(wp, op->X, op->ldx, begin, end, g.rows, lane, acc);
        } else {
            plain_row w1[OUTS];
#pragma unroll
            for (int j = 0; j < OUTS; j++) w1[j] = plain_row(op->W, op->out, op->in, o + j);
            row_dot<ROWS, OUTS, plain_row, 1>(w1, op->X, op->ldx, begin, end, g.rows, lane, acc);
        }
    }
    store_sums<ROWS, OUTS>(op, acc, g.rows, o, active, split);
}

/* gemv_kernel<bf16, 1, 1> with each warp's part of its weight row brought
 * into shared memory by one bulk copy issued before the wait for the kernel
 * ahead: the copies run while that kernel still runs, and after the wait the
 * warp reads its row from shared memory instead of the L2 cache. Same warps,
 * parts and order of sums as gemv_kernel, so the same result bit for bit.
 * Used for short rows only (staged_part_max). */
__global__ void __launch_bounds__(THREADS) staged_gemv_kernel(gemv_group g, int part_max) {
    extern __shared__ int4 stage4[]; /* [WARPS][part_max] bf16 */
    __shared__ uint64_t landed[WARPS];
    cuda_let_dependents_start();
    int p = 0;
    while (p + 1 < g.n && blockIdx.x >= g.first_block[p + 1]) p++;
    const cuda_gemv_op *op = &g.op[p];
    const int split = g.split[p], warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int o = (int)(blockIdx.x - g.first_block[p]) * (WARPS / split) + warp / split;
    const int part = op->in / split, begin = warp % split * part, end = begin + part;
    const bool active = o < op->out;
    bf16 *seg = (bf16 *)stage4 + (size_t)warp * part_max;
    if (active && lane == 0) {
        bulk_barrier_init(&landed[warp]);
        bulk_barrier_expect(&landed[warp], (uint32_t)(part * sizeof(bf16)));
        bulk_copy(seg, (const bf16 *)op->W + (size_t)o * op->in + begin, (uint32_t)(part * sizeof(bf16)),
                  &landed[warp]);
    }
    __syncwarp();
    float acc[1][1] = {{0.0f}};
    cuda_wait_for_prior_grids();
    if (active) {
        bulk_barrier_wait(&landed[warp], 0);
        const staged_row w = {seg, begin};
        row_dot<1, 1, staged_row, 8>(&w, op->X, op->ldx, begin, end, 1, lane, acc);
    }
    store_sums<1, 1>(op, acc, 1, o, active, split);
}

/* Blocks of the staged kernel resident at once, with part_max weights a warp. */
static unsigned staged_wave(int part_max) {
    const int sms = cuda_sm_count();
    int per_sm = 0;
    if (sms == 0 ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, staged_gemv_kernel, THREADS,
                                                      (size_t)WARPS * part_max * sizeof(bf16)) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return (unsigned)(sms * per_sm);
}

/* The staged kernel's shared memory for g (0: it does not take g): every
 * op's rows and X in 16-byte packs, short parts (at most STAGED_MAX_PART
 * weights, the LoRA factors' rows of 32-256), and one wave of blocks.
 * A short product is all latency: after its wait, gemv_kernel still reads
 * each row from L2 (asked for before the wait), where the staged kernel
 * finds it in shared memory. Long rows are bound by the memory instead, and
 * a warp that waits for its whole copy before summing loses the overlap of
 * loads and sums. H100, decode, against gemv_kernel alone in one run:
 * staging every product of one wave, RWKV-7 0.1B 0.355-0.358 -> 0.333-0.335
 * ms a token, RWKV-6 1.5B 1.906 -> 1.920; staging only parts of 512 weights
 * or more, 0.1B level and RWKV-6 1.920; staging all, RWKV-7 1.5B 1.62 ->
 * 1.71. So the short rows gave the gain and the long ones the loss. */
enum { STAGED_MAX_PART = 256 };
static int staged_part_max(const gemv_group &g) {
    int part_max = 0;
    for (int p = 0; p < g.n; p++) {
        const cuda_gemv_op *op = &g.op[p];
        const int part = op->in / g.split[p];
        if (op->in % 8 || part % 8 || ((uintptr_t)op->W & 15) || ((uintptr_t)op->X & 15) || op->ldx % 4 ||
            part > STAGED_MAX_PART)
            return 0;
        part_max = part > part_max ? part : part_max;
    }
    if ((size_t)WARPS * part_max * sizeof(bf16) > 48 * 1024) return 0;
    return g.first_block[g.n] <= staged_wave(part_max) ? part_max : 0;
}

/* Warps that share one output, each summing a contiguous part of the row.
 * A product of few long rows (the channel mix's value: 2048 rows of 8192)
 * otherwise has too few warps to keep enough loads in flight, and a warp with
 * a shorter part ends its chain of dependent loads sooner. Split while the op
 * keeps at most 16384 warps (the channel mix's key product, 8192 rows, in two
 * parts: 1.5B bf16 decode 1.87 -> 1.82 ms on an H100), parts of at least
 * 1024 weights, and whole rounds of packs per lane (so a part starts on a
 * pack, and on a q8 block). The order of the sum depends only on the shape,
 * so a row's result is the same whatever rows share the launch. */
static int split_of(const cuda_gemv_op *op, int pack) {
    int s = 1;
    while (2 * s <= WARPS && (size_t)op->out * 2 * s <= 16384 && op->in / (2 * s) >= 1024 &&
           op->in % (2 * s * 32 * pack) == 0)
        s *= 2;
    return s;
}

/* Outputs a warp computes. With four rows or more, a warp that computes
 * several outputs makes each X load serve that many weight rows; but it also
 * divides the launch's warps, and fewer than about 2048 (16 a multiprocessor)
 * keep too few loads in flight: at 0.1B (C = 768) four outputs a warp made a
 * batch of 8 slower, at 1.5B faster. One for fewer rows, where X costs little.
 * int8 rows take at most two: their 16-code packs fill twice the registers
 * once unpacked. */
static int outs_of(const gemv_group &g, int most) {
    if (g.rows < 4) return 1;
    for (int outs = most; outs > 1; outs /= 2) {
        size_t warps = 0;
        int divides = 1;
        for (int p = 0; p < g.n; p++) {
            divides &= g.op[p].out % outs == 0;
            warps += (size_t)g.op[p].out / outs * g.split[p];
        }
        if (divides && warps >= 2048) return outs;
    }
    return 1;
}

template <typename T>
static void launch_gemv(gemv_group &g, cuda_stream stream) {
    constexpr int most = sizeof(T) == 1 ? 2 : 4;
    for (int p = 0; p < g.n; p++) g.split[p] = (unsigned char)split_of(&g.op[p], PACK(T));
    const int outs = outs_of(g, most);
    for (int p = 0; p < g.n; p++) {
        const size_t warps = (size_t)g.op[p].out / outs * g.split[p];
        g.first_block[p + 1] = g.first_block[p] + (unsigned)((warps + WARPS - 1) / WARPS);
    }
    const dim3 grid(g.first_block[g.n]);
    const int part_max = std::is_same<T, bf16>::value && g.rows == 1 ? staged_part_max(g) : 0;
    if (part_max)
        cuda_launch_early(staged_gemv_kernel, grid, dim3(THREADS), (size_t)WARPS * part_max * sizeof(bf16), stream, g,
                          part_max);
    else if (g.rows == 1) cuda_launch_early(gemv_kernel<T, 1, 1>, grid, dim3(THREADS), 0, stream, g);
    else if (outs == 1) cuda_launch_early(gemv_kernel<T, CUDA_GEMV_ROWS, 1>, grid, dim3(THREADS), 0, stream, g);
    else if (outs == 2) cuda_launch_early(gemv_kernel<T, CUDA_GEMV_ROWS, 2>, grid, dim3(THREADS), 0, stream, g);
    else cuda_launch_early(gemv_kernel<T, CUDA_GEMV_ROWS, most>, grid, dim3(THREADS), 0, stream, g);
}

void cuda_gemv_group(cuda_dtype wt, const cuda_gemv_op *ops, int n_ops, int rows, cuda_stream stream) {
    gemv_group g;
    memset(&g, 0, sizeof g);
    g.n = n_ops, g.rows = rows;
    for (int p = 0; p < n_ops; p++) g.op[p] = ops[p];
    if (wt == CUDA_Q8) launch_gemv<int8_t>(g, stream);
    else if (wt == CUDA_BF16) launch_gemv<bf16>(g, stream);
    else launch_gemv<float>(g, stream);
}

/* One thread per 16 codes (half a block): their scale, 16 bf16 out. */
__global__ void dequant_q8_kernel(const int8_t *q, const __half *d, size_t n, int cols, bf16 *out) {
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n / 16; k += (size_t)gridDim.x * blockDim.x) {
        const size_t i = 16 * k;
        const float s = __half2float(d[(i / cols) * (cols / 32) + (i % cols) / 32]);
        const int4 raw = *reinterpret_cast<const int4 *>(q + i);
        const int8_t *b = reinterpret_cast<const int8_t *>(&raw);
        float x[16];
#pragma unroll
        for (int e = 0; e < 16; e++) x[e] = s * (float)b[e];
        store_pack(out + i, x);
        store_pack(out + i + 8, x + 8);
    }
}

void cuda_dequant_q8(const void *q8, int rows, int cols, void *d_bf16, cuda_stream stream) {
    const size_t n = (size_t)rows * cols;
    const int8_t *q = (const int8_t *)q8;
    const unsigned blocks = cuda_blocks(n / 16, 256) < 4096 ? cuda_blocks(n / 16, 256) : 4096;
    dequant_q8_kernel<<<blocks, 256, 0, stream>>>(q, (const __half *)(q + n), n, cols, (bf16 *)d_bf16);
}
