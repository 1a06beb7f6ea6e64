/* Products of a few rows whose inputs are mostly zeros: the channel mix's
 * value product, whose input relu²(W_k x) is zero wherever W_k x <= 0 (about
 * half the hiddens of a random model). The matrix is stored transposed,
 * Wt [in][out], so that the weights input j multiplies are one contiguous
 * row, and a row whose input is zero in every row of the pass is not read
 * at all: the product reads (live inputs / in) of the matrix instead of all
 * of it. The inference context uses it for large matrices only
 * (sparse_value_pays in rwkv_infer.cu).
 *
 * One launch (early: programmatic dependent launch). Block (s, tile) takes
 * the inputs [s J, s J + J) and the tile's 32 packs of outputs (one 16-byte
 * pack of a row of Wt a lane); warp w takes the w-th eighth of the inputs,
 * lists those that are live (not zero in some row) in increasing order and
 * sums its lanes' packs over them. The block adds its warps' sums in warp
 * order into slice s of a float32 scratch [S][rows][out]; the block that
 * finishes its tile last adds the S slices in order into Y. So every sum's
 * order depends on the shape only, never on which inputs are zero in the
 * other rows (a zero input adds exactly nothing): a row's result is the
 * same float whatever rows share the launch, as for the GEMV. */
#include "cuda/common.cuh"

enum { SPARSE_WARPS = 8, SPARSE_THREADS = 32 * SPARSE_WARPS, SPARSE_UNROLL = 8, SPARSE_MAX_J = 512 };
enum { SPARSE_PER_SM = 2 }; /* blocks a multiprocessor (plan_of) */
enum { SUM_UNROLL = 16 }; /* slices a thread of the last block loads at once */

typedef struct sparse_plan {
    int tiles; /* blocks across the outputs: 32 packs each */
    int J;     /* inputs a block takes (a multiple of SPARSE_WARPS) */
    int S;     /* blocks along the inputs: slices of the scratch */
} sparse_plan;

/* About two blocks a multiprocessor: loads enough in flight, and few
 * enough slices for the last block to add. */
static sparse_plan plan_of(cuda_dtype wt, int out, int in) {
    sparse_plan p;
    const int pack = wt == CUDA_BF16 ? 8 : 4, units = out / pack;
    p.tiles = (units + 31) / 32;
    int sms = cuda_sm_count();
    if (sms == 0) sms = 132; /* an H100's, where the device cannot be asked */
    const int target = SPARSE_PER_SM * sms / p.tiles > 0 ? SPARSE_PER_SM * sms / p.tiles : 1;
    int J = (in + target - 1) / target;
    J = (J + SPARSE_WARPS - 1) / SPARSE_WARPS * SPARSE_WARPS;
    p.J = J < SPARSE_MAX_J ? J : SPARSE_MAX_J;
    p.S = (in + p.J - 1) / p.J;
    return p;
}

/* The scratch: one arrival counter a tile (16 floats' room for each), then the slices. */
static size_t counters_floats(const sparse_plan &p) { return (size_t)p.tiles * 16; }

/* Warp `warp`'s live inputs among [j0 + lo, j0 + hi) in increasing order into
 * live (block-relative indices), their values into xs; returns their count. */
template <int ROWS>
__device__ __forceinline__ int list_live(const float *X, int ldx, int rows, int j0, int lo, int hi, int lane,
                                         float (*xs)[SPARSE_MAX_J], short *live) {
    int n = 0;
    for (int base = lo; base < hi; base += 32) {
        const int jj = base + lane;
        bool is_live = false;
#pragma unroll
        for (int r = 0; r < ROWS; r++)
            if (r < rows && jj < hi) {
                const float v = X[(size_t)r * ldx + j0 + jj];
                xs[r][jj] = v;
                is_live |= v != 0.0f;
            }
        const unsigned mask = __ballot_sync(0xffffffffu, is_live);
        if (is_live) live[lo + n + __popc(mask & ((1u << lane) - 1))] = (short)jj;
        n += __popc(mask);
    }
    __syncwarp();
    return n;
}

/* The last block of a tile: Y (+)= the S slices in order, one output a thread. */
__device__ __forceinline__ void add_slices(const float *part, int S, int out, int rows, int o, float *Y, int accumulate) {
    for (int r = 0; r < rows; r++) {
        float sum = 0.0f;
        for (int s = 0; s < S; s += SUM_UNROLL) {
            float v[SUM_UNROLL];
#pragma unroll
            for (int u = 0; u < SUM_UNROLL; u++)
                v[u] = s + u < S ? __ldcg(part + ((size_t)(s + u) * rows + r) * out + o) : 0.0f;
#pragma unroll
            for (int u = 0; u < SUM_UNROLL; u++)
                if (s + u < S) sum += v[u];
        }
        float *y = Y + (size_t)r * out + o;
        *y = accumulate ? *y + sum : sum;
    }
}

template <typename T, int ROWS>
__global__ void __launch_bounds__(SPARSE_THREADS)
    sparse_product_kernel(const T *Wt, int out, int in, const float *X, int ldx, int rows, float *Y, int accumulate,
                          unsigned *arrived, float *part, sparse_plan p) {
    constexpr int E = PACK(T), WIDTH = 32 * E; /* outputs of a tile */
    __shared__ float xs[ROWS][SPARSE_MAX_J];
    __shared__ short live[SPARSE_MAX_J];
    __shared__ float warp_sums[SPARSE_WARPS][WIDTH];
    __shared__ bool last;
    cuda_let_dependents_start();
    const int s = blockIdx.x, tile = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int j0 = s * p.J, n_j = in - j0 < p.J ? in - j0 : p.J, share = p.J / SPARSE_WARPS;
    const int lo = warp * share, hi = lo + share < n_j ? lo + share : n_j;
    cuda_wait_for_prior_grids(); /* X is the kernel ahead's output */
    const int n = lo < hi ? list_live<ROWS>(X, ldx, rows, j0, lo, hi, lane, xs, live) : 0;
    const int unit = tile * 32 + lane;
    const bool active = unit * E < out;
    float acc[ROWS][E];
#pragma unroll
    for (int r = 0; r < ROWS; r++)
#pragma unroll
        for (int e = 0; e < E; e++) acc[r][e] = 0.0f;
    const T *w_unit = Wt + (size_t)(active ? unit : 0) * E;
    for (int i = 0; active && i < n; i += SPARSE_UNROLL) {
        int4 raw[SPARSE_UNROLL];
#pragma unroll
        for (int u = 0; u < SPARSE_UNROLL; u++) /* all the loads first, then the sums */
            if (i + u < n) raw[u] = *reinterpret_cast<const int4 *>(w_unit + (size_t)(j0 + live[lo + i + u]) * out);
#pragma unroll
        for (int u = 0; u < SPARSE_UNROLL; u++) {
            if (i + u >= n) break;
            const int jj = live[lo + i + u];
            const T *e = reinterpret_cast<const T *>(&raw[u]);
#pragma unroll
            for (int r = 0; r < ROWS; r++) {
                if (r >= rows) break;
                const float x = xs[r][jj];
#pragma unroll
                for (int k = 0; k < E; k++) acc[r][k] += x * ld(e + k);
            }
        }
    }
    /* the warps' sums added in warp order, row by row, into slice s */
    const int o = tile * WIDTH + (int)threadIdx.x;
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        if (r >= rows) break; /* the same for the whole block: the barriers stay matched */
#pragma unroll
        for (int k = 0; k < E; k++) warp_sums[warp][lane * E + k] = acc[r][k];
        __syncthreads();
        if (threadIdx.x < WIDTH && o < out) {
            float sum = warp_sums[0][threadIdx.x];
            for (int w = 1; w < SPARSE_WARPS; w++) sum += warp_sums[w][threadIdx.x];
            part[((size_t)s * rows + r) * out + o] = sum;
        }
        __syncthreads();
    }
    /* the tile's last block adds the slices (the counter made ready for the next launch) */
    __threadfence();
    if (threadIdx.x == 0) last = atomicAdd(&arrived[tile], 1u) == (unsigned)p.S - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    if (threadIdx.x < WIDTH && o < out) add_slices(part, p.S, out, rows, o, Y, accumulate);
    if (threadIdx.x == 0) arrived[tile] = 0;
}

int cuda_sparse_product_fits(cuda_dtype wt, int out, int in) {
    return (wt == CUDA_F32 || wt == CUDA_BF16) && out > 0 && in > 0 && out % 8 == 0;
}

size_t cuda_sparse_product_scratch(cuda_dtype wt, int out, int in) {
    const sparse_plan p = plan_of(wt, out, in);
    return counters_floats(p) + (size_t)p.S * CUDA_GEMV_ROWS * out;
}

template <typename T>
static void launch(const sparse_plan &p, const void *Wt, int out, int in, const float *X, int ldx, int rows, float *Y,
                   int accumulate, float *scratch, cuda_stream stream) {
    const dim3 grid(p.S, p.tiles), block(SPARSE_THREADS);
    unsigned *arrived = (unsigned *)scratch;
    float *part = scratch + counters_floats(p);
    if (rows == 1)
        cuda_launch_early(sparse_product_kernel<T, 1>, grid, block, 0, stream, (const T *)Wt, out, in, X, ldx, rows, Y,
                          accumulate, arrived, part, p);
    else
        cuda_launch_early(sparse_product_kernel<T, CUDA_GEMV_ROWS>, grid, block, 0, stream, (const T *)Wt, out, in, X,
                          ldx, rows, Y, accumulate, arrived, part, p);
}

void cuda_sparse_product(cuda_dtype wt, const void *Wt, int out, int in, const float *X, int ldx, int rows, float *Y,
                         int accumulate, float *scratch, cuda_stream stream) {
    const sparse_plan p = plan_of(wt, out, in);
    if (wt == CUDA_BF16) launch<bf16>(p, Wt, out, in, X, ldx, rows, Y, accumulate, scratch, stream);
    else launch<float>(p, Wt, out, in, X, ldx, rows, Y, accumulate, scratch, stream);
}
