/* The persistent decode program (decode_program.cuh): the recording of a
 * pass's phases, their upload, and the kernel that replays them. */
#include <stdlib.h>
#include <string.h>

#include "cuda/decode_program.cuh"
#include "cuda/layernorm.cuh"

/* Threads of a block: what the block-wide phases were written for (a block
 * of 256 channels in the layer norm + shift, 4 x 64 in RWKV-7's step). */
enum { PROGRAM_THREADS = 256 };
/* How far ahead of the products the L2 prefetch runs: with the largest
 * phase (a 2048 x 8192 bf16 matrix, 32 MB) it stays inside a 50 MB L2. */
#define DEFAULT_LOOKAHEAD ((size_t)16 << 20)

enum phase_kind { PHASE_LAYERNORM, PHASE_LN_SHIFT, PHASE_PRODUCTS, PHASE_WKV7_STEP };

typedef struct phase_layernorm {
    const float *x, *w, *b;
    const int *tok;
    float *y;
    int rows, C, packed;
} phase_layernorm;

typedef struct phase_shift {
    ln_shift_step a;
    float *out;
    int chunks, form;
} phase_shift;

typedef struct phase_products {
    cuda_gemv_op op[CUDA_GEMV_MAX_OPS];
    int first[CUDA_GEMV_MAX_OPS + 1]; /* outputs of op k: [first[k], first[k + 1]) */
    int n, rows;
} phase_products;

/* One phase: its work in `units` (rows, row chunks, outputs or heads), and
 * the bytes [prefetch_begin, prefetch_end) of the weight stream (every
 * product's matrix in program order; segment prefetch_segment holds the
 * first) it asks the L2 cache for. */
typedef struct phase {
    int kind, units, prefetch_segment;
    size_t prefetch_begin, prefetch_end;
    union {
        phase_layernorm ln;
        phase_shift shift;
        phase_products products;
        step_args step;
    };
} phase;

typedef struct segment {
    const char *at;
    size_t start, bytes; /* its place in the weight stream */
} segment;

struct decode_program {
    cuda_dtype wt;
    phase *phases;
    segment *segments;
    int n_phases, n_segments, cap_phases, broken;
    unsigned blocks; /* of the persistent grid */
    phase *d_phases;
    segment *d_segments;
};

/* ---- the kernel ------------------------------------------------------------- */

__device__ __forceinline__ unsigned load_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void store_release(unsigned *p, unsigned v) {
    asm volatile("st.release.gpu.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

/* Every block waits here until all have arrived: bar[0] counts arrivals,
 * bar[32] (its own cache line) is the generation the last arrival advances.
 * The fences make each block's writes before the barrier visible to every
 * block after it. */
__device__ void grid_barrier(unsigned *bar) {
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned *count = bar, *generation = bar + 32;
        const unsigned g = load_acquire(generation);
        __threadfence();
        if (atomicAdd(count, 1u) == gridDim.x - 1) {
            atomicExch(count, 0u);
            __threadfence();
            store_release(generation, g + 1);
        } else {
            while (load_acquire(generation) == g) __nanosleep(20);
        }
        __threadfence();
    }
    __syncthreads();
}

/* This thread's share of the phase's prefetch window, a 128-byte line at a time. */
__device__ void prefetch_window(const phase *ph, const segment *seg) {
    const size_t threads = (size_t)gridDim.x * blockDim.x;
    int s = ph->prefetch_segment;
    for (size_t at = ph->prefetch_begin + ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 128;
         at < ph->prefetch_end; at += threads * 128) {
        while (at >= seg[s].start + seg[s].bytes) s++;
        asm volatile("prefetch.global.L2 [%0];" ::"l"(seg[s].at + (at - seg[s].start)));
    }
}

__device__ void run_layernorm(const phase_layernorm &l, int warp, int warps, int lane) {
    for (int r = warp; r < l.rows; r += warps) {
        const float *x = l.x + (size_t)(l.tok ? l.tok[r] : r) * l.C;
        if (l.packed) layernorm_row<float, 4>(x, l.w, l.b, l.C, l.y + (size_t)r * l.C, lane, NULL, NULL);
        else layernorm_row<float, 1>(x, l.w, l.b, l.C, l.y + (size_t)r * l.C, lane, NULL, NULL);
    }
}

template <int FORM>
__device__ void run_shift(const phase_shift &s, int units) {
    for (int u = blockIdx.x; u < units; u += gridDim.x) {
        ln_shift_chunk<FORM, float>(s.a, s.out, u / s.chunks, u % s.chunks);
        __syncthreads(); /* the next unit reuses the block's shared sums */
    }
}

template <typename T>
__device__ void run_products(const phase_products &g, int units, int warp, int warps, int lane) {
    int k = 0;
    for (int o = warp; o < units; o += warps) {
        while (o >= g.first[k + 1]) k++;
        gemv_output<T>(&g.op[k], g.rows, o - g.first[k], lane);
    }
}

__device__ void run_wkv7_step(const step_args &q, int units) {
    for (int u = blockIdx.x; u < units; u += gridDim.x) {
        wkv7_decode_unit<4>(q, u % q.H, u / q.H);
        __syncthreads(); /* the next unit reuses the block's shared vectors */
    }
}

/* T: the matrices' type (float, bf16, or int8_t for CUDA_Q8). */
template <typename T>
__global__ void __launch_bounds__(PROGRAM_THREADS, 2)
    program_kernel(const phase *phases, int n_phases, const segment *segments, unsigned *bar) {
    const int lane = threadIdx.x & 31, warps = gridDim.x * (PROGRAM_THREADS / 32);
    const int warp = blockIdx.x * (PROGRAM_THREADS / 32) + threadIdx.x / 32;
    for (int i = 0; i < n_phases; i++) {
        const phase *ph = phases + i;
        prefetch_window(ph, segments);
        switch (ph->kind) {
        case PHASE_LAYERNORM: run_layernorm(ph->ln, warp, warps, lane); break;
        case PHASE_LN_SHIFT:
            if (ph->shift.form == SHIFT_LERP) run_shift<SHIFT_LERP>(ph->shift, ph->units);
            else if (ph->shift.form == SHIFT_MIX) run_shift<SHIFT_MIX>(ph->shift, ph->units);
            else run_shift<SHIFT_DELTA>(ph->shift, ph->units);
            break;
        case PHASE_PRODUCTS: run_products<T>(ph->products, ph->units, warp, warps, lane); break;
        default: run_wkv7_step(ph->step, ph->units); break;
        }
        grid_barrier(bar);
    }
}

/* ---- recording ------------------------------------------------------------- */

decode_program *program_new(cuda_dtype wt) {
    decode_program *p = (decode_program *)calloc(1, sizeof *p);
    if (p) p->wt = wt;
    return p;
}

void program_free(decode_program *p) {
    if (!p) return;
    cuda_free(p->d_phases);
    cuda_free(p->d_segments);
    free(p->phases);
    free(p->segments);
    free(p);
}

/* A new zeroed phase of this kind at the end (NULL, and the program broken, when out of memory). */
static phase *append(decode_program *p, int kind, int units) {
    if (p->broken) return NULL;
    if (p->n_phases == p->cap_phases) {
        const int cap = p->cap_phases ? 2 * p->cap_phases : 256;
        phase *grown = (phase *)realloc(p->phases, sizeof(phase) * (size_t)cap);
        if (!grown) {
            p->broken = 1;
            return NULL;
        }
        p->phases = grown, p->cap_phases = cap;
    }
    phase *ph = &p->phases[p->n_phases++];
    memset(ph, 0, sizeof *ph);
    ph->kind = kind, ph->units = units;
    return ph;
}

void program_layernorm(decode_program *p, const float *x, const int *tok, const float *w, const float *b, int rows,
                       int C, float *y) {
    phase *ph = append(p, PHASE_LAYERNORM, rows);
    if (!ph) return;
    const int packed = C % 4 == 0 && aligned16(x) && aligned16(y) && aligned16(w) && aligned16(b);
    ph->ln = {x, w, b, tok, y, rows, C, packed};
}

void program_ln_shift(decode_program *p, enum shift_form form, const ln_shift_step *a, float *out, int rows) {
    const int chunks = (a->C + LN_SHIFT_CHUNK - 1) / LN_SHIFT_CHUNK;
    phase *ph = append(p, PHASE_LN_SHIFT, rows * chunks);
    if (ph) ph->shift = {*a, out, chunks, form};
}

void program_products(decode_program *p, const cuda_gemv_op *ops, int n, int rows) {
    for (int done = 0; done < n; done += CUDA_GEMV_MAX_OPS) {
        const int count = n - done < CUDA_GEMV_MAX_OPS ? n - done : CUDA_GEMV_MAX_OPS;
        phase_products g;
        memset(&g, 0, sizeof g);
        g.n = count, g.rows = rows;
        for (int k = 0; k < count; k++) g.op[k] = ops[done + k], g.first[k + 1] = g.first[k] + ops[done + k].out;
        phase *ph = append(p, PHASE_PRODUCTS, g.first[count]);
        if (ph) ph->products = g;
    }
}

void program_wkv7_step(decode_program *p, const step_args *q, int heads, int rows) {
    phase *ph = append(p, PHASE_WKV7_STEP, heads * rows);
    if (ph) ph->step = *q;
}

int program_complete(const decode_program *p) { return !p->broken; }

/* The weight stream (every product's matrix in program order) as segments,
 * and each phase's prefetch window: from where the previous window ended to
 * PROGRAM_LOOKAHEAD past the last byte of the products up to this phase. */
static int plan_prefetch(decode_program *p) {
    int n = 0;
    for (int i = 0; i < p->n_phases; i++)
        if (p->phases[i].kind == PHASE_PRODUCTS) n += p->phases[i].products.n;
    p->segments = (segment *)calloc((size_t)n + 1, sizeof(segment));
    if (!p->segments) return 0;
    size_t total = 0;
    for (int i = 0; i < p->n_phases; i++) {
        const phase_products *g = &p->phases[i].products;
        for (int k = 0; p->phases[i].kind == PHASE_PRODUCTS && k < g->n; k++) {
            const size_t bytes = gemv_weight_bytes(p->wt, &g->op[k]);
            p->segments[p->n_segments++] = {(const char *)g->op[k].W, total, bytes};
            total += bytes;
        }
    }
    p->segments[p->n_segments] = {NULL, total, (size_t)-1 / 2}; /* a sentinel: no window reaches it */
    size_t consumed = 0, window_end = 0;
    const size_t PROGRAM_LOOKAHEAD = getenv("XLA_MB") ? (size_t)atoi(getenv("XLA_MB")) << 20 : DEFAULT_LOOKAHEAD; /* TEMP */
    int first = 0;
    for (int i = 0; i < p->n_phases; i++) {
        phase *ph = &p->phases[i];
        if (ph->kind == PHASE_PRODUCTS)
            for (int k = 0; k < ph->products.n; k++) consumed += gemv_weight_bytes(p->wt, &ph->products.op[k]);
        size_t end = consumed + PROGRAM_LOOKAHEAD < total ? consumed + PROGRAM_LOOKAHEAD : total;
        if (end > window_end + 2 * PROGRAM_LOOKAHEAD) end = window_end + 2 * PROGRAM_LOOKAHEAD; /* the head: L2-sized windows */
        while (first < p->n_segments && p->segments[first].start + p->segments[first].bytes <= window_end) first++;
        ph->prefetch_segment = first;
        ph->prefetch_begin = window_end;
        ph->prefetch_end = end > window_end ? end : window_end;
        window_end = ph->prefetch_end;
    }
    return 1;
}

/* Blocks of the persistent grid: as many as stay resident together (a
 * cooperative launch refuses more), at most 2 per multiprocessor. */
template <typename T>
static unsigned resident_blocks(void) {
    int device = 0, sms = 0, per_sm = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, program_kernel<T>, PROGRAM_THREADS, 0);
    const int cap = getenv("XBPS") ? atoi(getenv("XBPS")) : 2; /* TEMP */
    return (unsigned)(sms * (per_sm < cap ? per_sm : cap));
}

rwkv_status program_upload(decode_program *p, rwkv_error *err) {
    if (p->broken || !plan_prefetch(p)) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    p->blocks = p->wt == CUDA_Q8 ? resident_blocks<int8_t>() : p->wt == CUDA_BF16 ? resident_blocks<bf16>()
                                                                                : resident_blocks<float>();
    if (!p->blocks) return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "the decode program does not fit on this device");
    const size_t phase_bytes = sizeof(phase) * (size_t)p->n_phases,
                 segment_bytes = sizeof(segment) * (size_t)(p->n_segments + 1);
    rwkv_status s = cuda_alloc((void **)&p->d_phases, phase_bytes, "decode program", err);
    if (s == RWKV_OK) s = cuda_alloc((void **)&p->d_segments, segment_bytes, "decode program", err);
    if (s == RWKV_OK && (cudaMemcpy(p->d_phases, p->phases, phase_bytes, cudaMemcpyHostToDevice) != cudaSuccess ||
                         cudaMemcpy(p->d_segments, p->segments, segment_bytes, cudaMemcpyHostToDevice) != cudaSuccess))
        s = cuda_check("decode program upload", err);
    return s;
}

template <typename T>
static cudaError_t launch_as(const decode_program *p, unsigned *barrier, cudaStream_t s) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(p->blocks), cfg.blockDim = dim3(PROGRAM_THREADS), cfg.stream = s;
    cudaLaunchAttribute together;
    together.id = cudaLaunchAttributeCooperative;
    together.val.cooperative = 1;
    cfg.attrs = &together, cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, program_kernel<T>, (const phase *)p->d_phases, p->n_phases,
                              (const segment *)p->d_segments, barrier);
}

rwkv_status program_launch(const decode_program *p, unsigned *barrier, cudaStream_t s, rwkv_error *err) {
    const cudaError_t e = p->wt == CUDA_Q8    ? launch_as<int8_t>(p, barrier, s)
                          : p->wt == CUDA_BF16 ? launch_as<bf16>(p, barrier, s)
                                               : launch_as<float>(p, barrier, s);
    return e == cudaSuccess ? RWKV_OK : cuda_check("decode program launch", err);
}
