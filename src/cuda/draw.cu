/* The draw of rwkv_eval_batch_sample on the device: each row of logits
 * becomes its next token by the rules of kernels/draw.c (the reference),
 * so that a batch's logits never cross to the host. One block per row.
 *
 * The CPU sorts the probabilities to find the nucleus cut and top_k; here
 * the same cuts are found by radix selection over the probabilities' float
 * bits (which order like unsigned integers for p >= 0), three digits of
 * 11, 11 and 10 bits, each a histogram over the row:
 *   nucleus: the cut is the largest p whose "mass at or above p" reaches
 *            top_p (the p where the CPU's descending cumulative sum first
 *            reaches top_p; its ties survive, as there); the mass is summed
 *            in 2^-56 fixed point, so the order of the additions does not
 *            matter and the result is the same every run;
 *   top_k:   the largest p with at least top_k probabilities at or above
 *            it; of the ties at that p the lowest ids come first, as in
 *            the CPU's sort.
 * The draw walks the renormalised probabilities in id order, each thread a
 * contiguous range, the ranges' sums scanned across the block in double.
 * Sums run in another order than the CPU's, so a token can differ from the
 * CPU's only where top_p or the number falls within rounding of a
 * boundary. */
#include <climits>

#include "cuda/common.cuh"

enum { DRAW_THREADS = 1024, DRAW_BINS = 2048 };
static_assert(DRAW_BINS == 2 * DRAW_THREADS, "select_key: thread t holds the digits 2t and 2t + 1");
static const double MASS_ONE = 72057594037927936.0; /* 2^56: the fixed point of the nucleus sums */

/* ---- block-wide reductions and scans (every thread gets the result) ------------ */

template <typename T>
__device__ __forceinline__ T warp_add(T x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/* The block's sum; `sh` holds 32 values. */
template <typename T>
__device__ T block_add(T x, T *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    x = warp_add(x);
    __syncthreads();
    if (lane == 0) sh[warp] = x;
    __syncthreads();
    return warp_add(lane < (int)(blockDim.x >> 5) ? sh[lane] : T(0));
}

/* The sum of x over the threads before this one; `sh` holds 32 values. */
template <typename T>
__device__ T block_exclusive_scan(T x, T *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    T inc = x;
    for (int o = 1; o < 32; o <<= 1) {
        const T y = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += y;
    }
    __syncthreads();
    if (lane == 31) sh[warp] = inc;
    __syncthreads();
    T before = 0;
    for (int w = 0; w < warp; w++) before += sh[w];
    return before + inc - x;
}

struct draw_shared {
    unsigned long long bins[DRAW_BINS];
    unsigned long long u64[32];
    double f64[32];
    float f32[32];
    int i32[32];
    int chosen;                /* the digit a level picks */
    unsigned long long above;  /* the mass (or count) above the chosen digit */
    int result;
};

/* ---- passes over a row -----------------------------------------------------------
 * A block walks a row of 64K floats about ten times, from L2, one block per
 * SM: a loop that issues one load and waits for it keeps a few KB in
 * flight per SM and is bound by L2's latency. These issue several loads
 * before using any, and call f in the same order as the plain loop, so
 * every sum is the same. */
enum { DRAW_AHEAD = 4 };

/* f(j, p[j]) for this thread's ids j = t, t + blockDim.x, ... in order. */
template <class F>
__device__ __forceinline__ void for_strided(const float *p, int V, F f) {
    const int step = blockDim.x;
    int j = threadIdx.x;
    for (; j + (DRAW_AHEAD - 1) * step < V; j += DRAW_AHEAD * step) {
        float v[DRAW_AHEAD];
#pragma unroll
        for (int u = 0; u < DRAW_AHEAD; u++) v[u] = p[j + u * step];
#pragma unroll
        for (int u = 0; u < DRAW_AHEAD; u++) f(j + u * step, v[u]);
    }
    for (; j < V; j += step) f(j, p[j]);
}

/* for_strided where every lane of a warp runs every round (j may pass V;
 * f then gets j >= V and 0), so that f may use the warp's collectives. */
template <class F>
__device__ __forceinline__ void for_strided_warp(const float *p, int V, F f) {
    const int step = blockDim.x, lane = threadIdx.x & 31;
    int j0 = threadIdx.x - lane; /* the warp's first id: the same in every lane */
    for (; j0 + (DRAW_AHEAD - 1) * step < V; j0 += DRAW_AHEAD * step) {
        unsigned k[DRAW_AHEAD];
#pragma unroll
        for (int u = 0; u < DRAW_AHEAD; u++) {
            const int j = j0 + u * step + lane;
            k[u] = j < V ? __float_as_uint(p[j]) : 0u;
        }
#pragma unroll
        for (int u = 0; u < DRAW_AHEAD; u++) f(j0 + u * step + lane, k[u]);
    }
    for (; j0 < V; j0 += step) {
        const int j = j0 + lane;
        f(j, j < V ? __float_as_uint(p[j]) : 0u);
    }
}

/* f(j, p[j]) for j in [lo, hi) in order, four at a time where aligned. */
template <class F>
__device__ __forceinline__ void for_range(const float *p, int lo, int hi, F f) {
    int j = lo;
    if ((uintptr_t)(p + lo) % 16 == 0)
        for (; j + 8 <= hi; j += 8) {
            const float4 a = *(const float4 *)(p + j), b = *(const float4 *)(p + j + 4);
            f(j, a.x), f(j + 1, a.y), f(j + 2, a.z), f(j + 3, a.w);
            f(j + 4, b.x), f(j + 5, b.y), f(j + 6, b.z), f(j + 7, b.w);
        }
    for (; j < hi; j++) f(j, p[j]);
}

/* The largest value in the row and its lowest id; -1 when a NaN or +inf is there. */
__device__ void row_max(const float *l, int V, draw_shared *sh, float *best, int *arg) {
    float b = -INFINITY;
    int a = INT_MAX, bad = 0;
    for_strided(l, V, [&](int j, float v) {
        if (isnan(v) || v == INFINITY) bad = 1;
        if (v > b) b = v, a = j;
    });
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_xor_sync(0xffffffffu, b, o);
        const int oa = __shfl_xor_sync(0xffffffffu, a, o);
        if (ob > b || (ob == b && oa < a)) b = ob, a = oa;
    }
    bad = __syncthreads_or(bad);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) sh->f32[warp] = b, sh->i32[warp] = a;
    __syncthreads();
    b = lane < nw ? sh->f32[lane] : -INFINITY;
    a = lane < nw ? sh->i32[lane] : INT_MAX;
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_xor_sync(0xffffffffu, b, o);
        const int oa = __shfl_xor_sync(0xffffffffu, a, o);
        if (ob > b || (ob == b && oa < a)) b = ob, a = oa;
    }
    *best = b;
    *arg = bad || b == -INFINITY ? -1 : a;
}

__device__ __forceinline__ unsigned long long mass_of(float p) { return (unsigned long long)((double)p * MASS_ONE); }

/* bins[b] += w, summed first over the lanes of `lanes` that add into the same
 * bin (one atomic addition per bin and warp). The sums are integers, so
 * the order of the additions cannot change them. A weight is below 2^57:
 * three parts of 19 bits, each summed over at most 32 lanes in 32 bits. */
__device__ __forceinline__ void add_to_bin(unsigned long long *bins, unsigned b, unsigned long long w, unsigned lanes) {
    const unsigned peers = __match_any_sync(lanes, b);
    const unsigned part = (1u << 19) - 1;
    const unsigned long long lo = __reduce_add_sync(peers, (unsigned)w & part),
                             mid = __reduce_add_sync(peers, (unsigned)(w >> 19) & part),
                             hi = __reduce_add_sync(peers, (unsigned)(w >> 38));
    if ((threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(&bins[b], lo + (mid << 19) + (hi << 38));
}

/* The largest key v (float bits of a probability) with weight(keys >= v)
 * >= need, where weight is the mass (by_mass) or the count; *above gets the
 * weight of the keys > v. need > 0, and the row's total reaches it. */
__device__ unsigned select_key(const float *p, int V, bool by_mass, unsigned long long need, draw_shared *sh,
                               unsigned long long *above_out) {
    static const int shift[3] = {21, 10, 0}, bits[3] = {11, 11, 10};
    unsigned prefix = 0;
    unsigned long long above = 0;
    for (int level = 0; level < 3; level++) {
        for (int b = threadIdx.x; b < DRAW_BINS; b += blockDim.x) sh->bins[b] = 0;
        if (threadIdx.x == 0) sh->chosen = -1;
        __syncthreads();
        const int hi = shift[level] + bits[level];
        const unsigned mask = (1u << bits[level]) - 1;
        /* the warp's lanes of one bin add up their weights before one
         * atomic addition: a row's probabilities mostly share a few top
         * digits, and 32 lanes adding into one shared counter wait on each other */
        for_strided_warp(p, V, [&](int j, unsigned k) {
            const bool counted = j < V && (level == 0 || (k >> hi) == prefix);
            const unsigned lanes = __ballot_sync(0xffffffffu, counted);
            if (counted) add_to_bin(sh->bins, (k >> shift[level]) & mask, by_mass ? mass_of(__uint_as_float(k)) : 1ull, lanes);
        });
        __syncthreads();
        /* thread t holds bins 2t, 2t + 1; suffix(b) = weight of the digits >= b */
        const int b0 = 2 * threadIdx.x;
        const unsigned long long w0 = sh->bins[b0], w1 = sh->bins[b0 + 1];
        const unsigned long long after = block_add(w0 + w1, sh->u64) - block_exclusive_scan(w0 + w1, sh->u64) -
                                         (w0 + w1); /* digits above this thread's two */
        const unsigned long long s1 = after + w1, s0 = s1 + w0;
        if (above + s1 >= need && w1) atomicMax(&sh->chosen, b0 + 1);
        else if (above + s0 >= need && w0) atomicMax(&sh->chosen, b0);
        __syncthreads();
        const int c = sh->chosen;
        if (c == b0 + 1) sh->above = above + after;
        if (c == b0) sh->above = above + after + w1;
        __syncthreads();
        above = sh->above;
        prefix = (prefix << bits[level]) | (unsigned)c;
    }
    *above_out = above;
    return prefix;
}

/* This thread's contiguous range of ids for the walk in id order. */
__device__ __forceinline__ void my_range(int V, int *lo, int *hi) {
    const int per = (V + blockDim.x - 1) / blockDim.x;
    *lo = min(V, (int)threadIdx.x * per), *hi = min(V, *lo + per);
}

/* The kept set: p >= cut, or the top_k first in (p descending, id
 * ascending) order: key > kv, or key == kv among the first `slots` ties. */
struct keep_rule {
    float cut;
    bool by_k;
    unsigned kv;
    int slots;
};

/* The weight q_j of ids [lo, hi) (0 for the cut), tie ranks from first_tie. */
__device__ __forceinline__ float weight_of(float p, int rank_tie, const keep_rule &k, float e, bool powered) {
    bool kept;
    if (k.by_k) {
        const unsigned key = __float_as_uint(p);
        kept = key > k.kv || (key == k.kv && rank_tie < k.slots);
    } else {
        kept = p >= k.cut;
    }
    if (!kept || !(p > 0)) return 0.0f;
    return powered ? powf(p, e) : p;
}

/* The id the number picks from the kept probabilities, as draw_pick does on
 * their renormalised copy; `fallback` when every weight is 0. */
__device__ int walk(const float *p, int V, const keep_rule &k, double temperature, double u, int fallback,
                    draw_shared *sh) {
    int lo, hi;
    my_range(V, &lo, &hi);
    const bool powered = temperature != 1.0;
    const float e = (float)(1.0 / temperature);
    int ties = 0;
    if (k.by_k) for_range(p, lo, hi, [&](int, float v) { ties += __float_as_uint(v) == k.kv; });
    const int first_tie = k.by_k ? block_exclusive_scan(ties, sh->i32) : 0;
    double total = 0;
    int r = first_tie;
    for_range(p, lo, hi, [&](int, float v) {
        total += weight_of(v, r, k, e, powered);
        r += k.by_k && __float_as_uint(v) == k.kv;
    });
    total = block_add(total, sh->f64);
    if (!(total > 0) || isinf(total)) return fallback; /* every survivor underflowed: the top one */
    double local = 0;
    int last = -1;
    r = first_tie;
    for_range(p, lo, hi, [&](int j, float v) {
        const float q = (float)(weight_of(v, r, k, e, powered) / total);
        r += k.by_k && __float_as_uint(v) == k.kv;
        local += q;
        if (q > 0) last = j;
    });
    const double before = block_exclusive_scan(local, sh->f64), sum = block_add(local, sh->f64);
    if (threadIdx.x == 0) sh->result = INT_MAX;
    __syncthreads();
    const double target = u * sum;
    if (before + local > target) { /* the walk crosses the target in this range or before it */
        double c = before;
        for (int j = lo, r = first_tie; j < hi; j++) {
            const float q = (float)(weight_of(p[j], r, k, e, powered) / total);
            r += k.by_k && __float_as_uint(p[j]) == k.kv;
            c += q;
            if (c > target && q > 0) {
                atomicMin(&sh->result, j);
                break;
            }
        }
    }
    __syncthreads();
    int id = sh->result;
    __syncthreads(); /* every thread has its id before thread 0 may reset the slot below */
    if (id == INT_MAX) { /* rounding: the target fell past the last step */
        if (threadIdx.x == 0) sh->result = -1;
        __syncthreads();
        if (last >= 0) atomicMax(&sh->result, last);
        __syncthreads();
        id = sh->result;
    }
    return id;
}

/* The nucleus and top_k cuts of the probabilities p as a keep_rule. */
__device__ keep_rule cuts(const float *p, int V, const cuda_draw_rule &d, int arg, draw_shared *sh) {
    keep_rule k = {0.0f, false, 0u, 0};
    if (d.top_p < 1) {
        const float top_p = (float)d.top_p;
        const unsigned long long need = (unsigned long long)ceil((double)top_p * MASS_ONE);
        unsigned long long above, total = 0;
        for_strided(p, V, [&](int, float v) { total += mass_of(v); });
        total = block_add(total, sh->u64);
        if (need == 0) k.cut = p[arg]; /* top_p 0: the top probability and its ties */
        else if (total >= need) k.cut = __uint_as_float(select_key(p, V, true, need, sh, &above));
        /* else the sum never reaches top_p: everything stays */
    }
    if (d.top_k > 0 && d.top_k < V) {
        int n_kept = 0;
        for_strided(p, V, [&](int, float v) { n_kept += v >= k.cut; });
        n_kept = block_add(n_kept, sh->i32);
        if (n_kept > d.top_k) {
            unsigned long long above;
            k.kv = select_key(p, V, false, (unsigned long long)d.top_k, sh, &above);
            k.by_k = true;
            k.slots = d.top_k - (int)above;
        }
    }
    return k;
}

__global__ void __launch_bounds__(DRAW_THREADS) draw_kernel(float *logits, int row_len, const cuda_draw_rule *rules,
                                                            const int *bias_ids, const float *bias, int *next) {
    __shared__ draw_shared sh;
    float *l = logits + (size_t)blockIdx.x * row_len;
    const cuda_draw_rule d = rules[blockIdx.x];
    const int V = d.n_ids; /* the row's candidates */
    for (int i = threadIdx.x; i < d.n_bias; i += blockDim.x) {
        const int j = bias_ids[d.bias_start + i];
        const float b = bias[d.bias_start + i];
        if (j < 0 || j >= V) continue;
        if (b == -INFINITY) l[j] = -INFINITY; /* a ban, whatever else the list adds */
        else atomicAdd(&l[j], b);
    }
    __syncthreads();
    float best;
    int arg;
    row_max(l, V, &sh, &best, &arg);
    if (arg < 0 || d.temperature == 0) {
        if (threadIdx.x == 0) next[blockIdx.x] = arg;
        return;
    }
    /* softmax as the CPU's: expf in float, the normaliser in double */
    double z = 0;
    for_strided(l, V, [&](int, float v) { z += expf(v - best); });
    z = block_add(z, sh.f64);
    for_strided(l, V, [&](int j, float v) { l[j] = (float)((double)expf(v - best) / z); });
    __syncthreads();
    const keep_rule k = cuts(l, V, d, arg, &sh);
    const int id = walk(l, V, k, d.temperature, d.uniform, arg, &sh);
    if (threadIdx.x == 0) next[blockIdx.x] = id;
}

extern "C" void cuda_draw(float *d_logits, int V, int n, const cuda_draw_rule *d_rules, const int *d_bias_ids,
                          const float *d_bias, int *d_next, cuda_stream stream) {
    draw_kernel<<<n, DRAW_THREADS, 0, stream>>>(d_logits, V, d_rules, d_bias_ids, d_bias, d_next);
}
