/* The streamed decode (streamed_decode.cuh): its program, the planning of
 * every block's weight tiles, and the kernel. */
#include <stdlib.h>
#include <string.h>

#include "cuda/bulk_copy.cuh"
#include "cuda/gemv.cuh"
#include "cuda/ln_shift.cuh"
#include "cuda/streamed_decode.cuh"

enum { THREADS = 256, WARPS = THREADS / 32, MAX_PIECES = THREADS };
/* float4s of a vector a thread holds while their loads are all in flight:
 * inputs of up to 16384 floats, rows (C) of up to 4096 */
enum { VEC_PACKS = 16, ROW_PACKS = 4, MAX_C = 4 * ROW_PACKS * THREADS };
enum { PHASE_NORM_PRODUCTS, PHASE_PRODUCTS, PHASE_WKV7 };

/* A product as the kernel reads it: split warps' parts of a row (gemv_split,
 * the GEMV's own choice for the shape), so that its sums run in its order. */
typedef struct sd_op {
    const bf16 *W;
    const float *X;
    float *Y;
    int out, in, accumulate, act, split, mix;
} sd_op;

typedef struct sd_phase {
    int kind, first_op, n_ops;
    streamed_norm norm;
    step_args step;
} sd_phase;

/* `rows` consecutive rows of one op: one bulk copy into a slot. It carries
 * what the block needs of its op, so that a tile is one load (made a tile
 * ahead) rather than a chain of dependent ones. */
typedef struct sd_tile {
    const bf16 *W; /* the tile's first row */
    const float *X;
    float *Y; /* the tile's first output */
    int op, in, rows, split;
    signed char mix, act, accumulate;
} sd_tile;

typedef struct sd_args {
    const sd_phase *phases;
    const sd_tile *tiles;
    const int *tile_begin; /* [blocks][n_phases + 1]: block b's tiles of phase p begin at tile_begin[b][p] */
    unsigned *done;        /* [n_phases]: blocks that finished the phase */
    int n_phases, C, xbuf_floats, n_slots;
} sd_args;

struct streamed_program {
    int C, broken;
    sd_phase *phases;
    sd_op *ops;
    int n_phases, n_ops, cap_phases, cap_ops;
    /* built */
    unsigned blocks;
    int n_slots, xbuf_floats;
    size_t smem;
    sd_args dev; /* device copies */
};

/* ---- the kernel ------------------------------------------------------------------- */

__device__ __forceinline__ unsigned load_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

/* Until every block has finished phase p - 1. Each block's release of its
 * count (after the barrier that follows all its writes) and this acquire,
 * then the barrier, make those writes visible to every thread here. */
__device__ __forceinline__ void wait_phase(const sd_args &a, int p) {
    if (p > 0 && threadIdx.x == 0)
        while (load_acquire(&a.done[p - 1]) < gridDim.x) {
        }
    __syncthreads();
}

__device__ __forceinline__ void finish_phase(const sd_args &a, int p) {
    __syncthreads();
    if (threadIdx.x == 0) asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(&a.done[p]) : "memory");
}

/* The last block writes a norm phase's z into the state's slot at the
 * start of the next phase, when every block has read the slot. */
__device__ __forceinline__ void replace_slot(const sd_args &a, int p, const float *z) {
    if (p == 0 || a.phases[p - 1].kind != PHASE_NORM_PRODUCTS || blockIdx.x != gridDim.x - 1) return;
    const streamed_norm &n = a.phases[p - 1].norm;
    float *slot = n.states[0] + n.slot_off;
    for (int c = threadIdx.x; c < a.C; c += THREADS) slot[c] = z[c];
}

/* Asks L2 for phase p's norm vectors (the layer norm's weights, the mixes,
 * the state's slot), a slice a block: every block reads them right after
 * its wait, where a read from memory would add its latency to the chain of
 * phases. Called a phase ahead. */
__device__ __forceinline__ void prefetch_norm(const sd_args &a, int p) {
    if (p >= a.n_phases || a.phases[p].kind != PHASE_NORM_PRODUCTS) return;
    const streamed_norm &n = a.phases[p].norm;
    const int lines = (int)((a.C * sizeof(float) + 127) / 128), count = 3 + n.n_mix;
    for (int i = blockIdx.x * THREADS + threadIdx.x; i < count * lines; i += gridDim.x * THREADS) {
        const int v = i / lines;
        const float *at = v == 0 ? n.ln_w : v == 1 ? n.ln_b : v == 2 ? n.states[0] + n.slot_off : n.mu[v - 3];
        asm volatile("prefetch.global.L2 [%0];" ::"l"(at + (i % lines) * 32));
    }
}

/* z = LN(x) and the slot's values into shared memory, as ln_shift_chunk_kernel
 * computes them; every thread's loads issued before the first use. */
__device__ __forceinline__ void norm_row(const sd_args &a, const streamed_norm &n, const float *slot_at, float *z,
                                         float *prev, float *part) {
    const float2 stats = ln_row_stats(n.x, a.C, part);
    const float4 *x = (const float4 *)n.x, *w = (const float4 *)n.ln_w, *b = (const float4 *)n.ln_b,
                 *slot = (const float4 *)slot_at;
    float4 xv[ROW_PACKS], wv[ROW_PACKS], bv[ROW_PACKS], sv[ROW_PACKS];
#pragma unroll
    for (int e = 0; e < ROW_PACKS; e++) {
        const int q = threadIdx.x + e * THREADS;
        if (q < a.C / 4) xv[e] = x[q], wv[e] = w[q], bv[e] = b[q], sv[e] = slot[q];
    }
#pragma unroll
    for (int e = 0; e < ROW_PACKS; e++) {
        const int q = threadIdx.x + e * THREADS;
        if (q >= a.C / 4) break;
        ((float4 *)z)[q] = make_float4((xv[e].x - stats.x) * stats.y * wv[e].x + bv[e].x,
                                       (xv[e].y - stats.x) * stats.y * wv[e].y + bv[e].y,
                                       (xv[e].z - stats.x) * stats.y * wv[e].z + bv[e].z,
                                       (xv[e].w - stats.x) * stats.y * wv[e].w + bv[e].w);
        ((float4 *)prev)[q] = sv[e];
    }
    __syncthreads();
}

/* Tile t into slot `slot`. */
__device__ __forceinline__ void issue_tile(const sd_tile &t, int slot, unsigned char *ring, uint64_t *full) {
    const uint32_t bytes = (uint32_t)t.rows * t.in * sizeof(bf16);
    bulk_barrier_expect(&full[slot], bytes);
    bulk_copy(ring + (size_t)slot * STREAMED_SLOT_BYTES, t.W, bytes, &full[slot]);
}

/* A product's input into xbuf: a mix of the phase's norm (shift_value
 * of each channel, as the norm + shift launch), or a vector a phase ahead
 * wrote; every thread's loads issued before the first store. */
__device__ __forceinline__ void load_input(const sd_tile &op, const streamed_norm &n, const float *z, const float *prev,
                                           float *xbuf) {
    const int n4 = op.in / 4;
    if (op.mix >= 0) {
        const float4 *mu = (const float4 *)n.mu[op.mix];
        float4 m[ROW_PACKS];
#pragma unroll
        for (int e = 0; e < ROW_PACKS; e++)
            if (threadIdx.x + e * THREADS < n4) m[e] = mu[threadIdx.x + e * THREADS];
#pragma unroll
        for (int e = 0; e < ROW_PACKS; e++) {
            const int q = threadIdx.x + e * THREADS;
            if (q >= n4) break;
            const float mw[4] = {m[e].x, m[e].y, m[e].z, m[e].w};
            float *out = xbuf + 4 * q;
            for (int i = 0; i < 4; i++) out[i] = shift_value<SHIFT_LERP>(z[4 * q + i], prev[4 * q + i], mw, i);
        }
    } else {
        float4 v[VEC_PACKS];
#pragma unroll
        for (int e = 0; e < VEC_PACKS; e++)
            if (threadIdx.x + e * THREADS < n4) v[e] = __ldcg((const float4 *)op.X + threadIdx.x + e * THREADS);
#pragma unroll
        for (int e = 0; e < VEC_PACKS; e++)
            if (threadIdx.x + e * THREADS < n4) ((float4 *)xbuf)[threadIdx.x + e * THREADS] = v[e];
    }
    __syncthreads();
}

/* The rows of tile k (in its slot) against xbuf: each warp sums pieces (a
 * row's part) as the GEMV's warps do, and after the barrier the slot goes
 * back to the copies (tile k + n_slots, `refill`, which thread 0 loaded
 * before the sums) while the first threads add each row's parts in order. */
__device__ __forceinline__ void run_tile(const sd_args &a, const sd_tile &t, int k, bool refill_due,
                                         const sd_tile &refill, unsigned char *ring, uint64_t *full,
                                         const float *xbuf, float *pieces) {
    const int slot = k % a.n_slots, warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int part = t.in / t.split, n = t.rows * t.split;
    const bf16 *w = (const bf16 *)(ring + (size_t)slot * STREAMED_SLOT_BYTES);
    float *sums = pieces + (k & 1) * MAX_PIECES; /* two sets: the next tile's pieces never meet this one's adds */
    float *y = t.Y + threadIdx.x;
    /* an accumulated row's value, asked for before the sums (this block alone writes the row in this phase) */
    const float old = t.accumulate && threadIdx.x < t.rows ? __ldcg(y) : 0.0f;
    bulk_barrier_wait(&full[slot], (uint32_t)(k / a.n_slots) & 1);
    for (int i = warp; i < n; i += WARPS) {
        const int row = i / t.split, begin = i % t.split * part;
        const staged_row sr = {w + (size_t)row * t.in + begin, begin};
        float acc[1][1] = {{0.0f}};
        row_dot<1, 1, staged_row, 8>(&sr, xbuf, 0, begin, begin + part, 1, lane, acc);
        const float sum = lanes_sum<0>(&acc[0][0], lane);
        if (lane == 0) sums[i] = sum;
    }
    __syncthreads();
    if (threadIdx.x == 0 && refill_due) issue_tile(refill, slot, ring, full);
    if (threadIdx.x < t.rows) {
        float sum = sums[threadIdx.x * t.split];
        for (int q = 1; q < t.split; q++) sum += sums[threadIdx.x * t.split + q];
        *y = t.accumulate ? old + sum : activate(sum, t.act);
    }
}

/* A phase's products: the block's tiles [t, end), `cur` holding tile t
 * (each next one loaded while the current one runs). Returns the block's
 * next tile. */
__device__ __forceinline__ sd_tile run_products(const sd_args &a, const streamed_norm &n, int first, int last,
                                                int t, int end, sd_tile cur, unsigned char *ring, uint64_t *full,
                                                const float *z, const float *prev, float *xbuf, float *pieces) {
    int op = -1;
    for (; t < end; t++) {
        const sd_tile next = t + 1 < last ? a.tiles[t + 1] : cur;
        const int k = t - first;
        const bool refill_due = threadIdx.x == 0 && t + a.n_slots < last;
        const sd_tile refill = refill_due ? a.tiles[t + a.n_slots] : cur;
        if (cur.op != op) load_input(cur, n, z, prev, xbuf), op = cur.op;
        run_tile(a, cur, k, refill_due, refill, ring, full, xbuf, pieces);
        cur = next;
    }
    return cur;
}

__global__ void __launch_bounds__(THREADS, 1) streamed_kernel(sd_args a) {
    extern __shared__ __align__(128) unsigned char smem[];
    __shared__ float part[32];
    unsigned char *ring = smem;
    float *z = (float *)(smem + (size_t)a.n_slots * STREAMED_SLOT_BYTES), *prev = z + a.C, *xbuf = prev + a.C;
    float *pieces = xbuf + a.xbuf_floats;
    uint64_t *full = (uint64_t *)(pieces + 2 * MAX_PIECES);
    const int *begin = a.tile_begin + (size_t)blockIdx.x * (a.n_phases + 1);
    const int first = begin[0], last = begin[a.n_phases];
    if (threadIdx.x == 0) {
        for (int s = 0; s < a.n_slots; s++) bulk_barrier_init(&full[s]);
        for (int k = 0; k < a.n_slots && first + k < last; k++) issue_tile(a.tiles[first + k], k, ring, full);
    }
    prefetch_norm(a, 0);
    prefetch_norm(a, 1);
    sd_tile cur = a.tiles[first < last ? first : 0];
    int kind = a.phases[0].kind, end = begin[1];
    __syncthreads();
    for (int p = 0; p < a.n_phases; p++) {
        const sd_phase &ph = a.phases[p];
        /* what the phase reads of its descriptor, and the next phase's kind
         * and end, loaded before the wait: no chain of loads after it */
        const int next_kind = p + 1 < a.n_phases ? a.phases[p + 1].kind : 0, next_end = begin[p + 1 < a.n_phases ? p + 2 : p + 1];
        const int t = begin[p];
        if (kind == PHASE_WKV7) {
            const auto wait = [&] {
                wait_phase(a, p);
                replace_slot(a, p, z);
            };
            if ((int)blockIdx.x < ph.step.H) decode_step_unit<4>(ph.step, blockIdx.x, 0, wait);
            else wait();
        } else {
            const streamed_norm n = ph.norm;
            const float *slot = kind == PHASE_NORM_PRODUCTS ? n.states[0] + n.slot_off : NULL;
            wait_phase(a, p);
            replace_slot(a, p, z);
            if (kind == PHASE_NORM_PRODUCTS) norm_row(a, n, slot, z, prev, part);
            cur = run_products(a, n, first, last, t, end, cur, ring, full, z, prev, xbuf, pieces);
        }
        finish_phase(a, p);
        prefetch_norm(a, p + 2);
        kind = next_kind, end = next_end;
    }
}

/* ---- the program ------------------------------------------------------------------- */

streamed_program *streamed_new(int C) {
    streamed_program *p = (streamed_program *)calloc(1, sizeof *p);
    if (p) p->C = C;
    return p;
}

void streamed_free(streamed_program *p) {
    if (!p) return;
    void *const bufs[] = {(void *)p->dev.phases, (void *)p->dev.tiles, (void *)p->dev.tile_begin, (void *)p->dev.done};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cuda_free(bufs[i]);
    free(p->phases);
    free(p->ops);
    free(p);
}

/* Room for one more element in *arr (cap *cap); 0 when out of memory. */
static int grow(void **arr, int n, int *cap, size_t elem) {
    if (n < *cap) return 1;
    const int c = *cap ? 2 * *cap : 64;
    void *g = realloc(*arr, elem * (size_t)c);
    if (!g) return 0;
    *arr = g, *cap = c;
    return 1;
}

static sd_phase *add_phase(streamed_program *p, int kind) {
    if (p->broken || !grow((void **)&p->phases, p->n_phases, &p->cap_phases, sizeof(sd_phase))) {
        p->broken = 1;
        return NULL;
    }
    sd_phase *ph = &p->phases[p->n_phases++];
    memset(ph, 0, sizeof *ph);
    ph->kind = kind, ph->first_op = p->n_ops;
    return ph;
}

static void add_products(streamed_program *p, sd_phase *ph, const streamed_product *ops, int n) {
    for (int i = 0; ph && i < n; i++) {
        if (!grow((void **)&p->ops, p->n_ops, &p->cap_ops, sizeof(sd_op))) {
            p->broken = 1;
            return;
        }
        const cuda_gemv_op *o = &ops[i].op;
        const sd_op d = {(const bf16 *)o->W, o->X,       o->Y,   o->out, o->in, o->accumulate, o->act,
                         gemv_split(o->out, o->in, PACK(bf16)), ops[i].mix};
        p->ops[p->n_ops++] = d;
        ph->n_ops++;
    }
}

void streamed_norm_products(streamed_program *p, const streamed_norm *norm, const streamed_product *ops, int n) {
    sd_phase *ph = add_phase(p, PHASE_NORM_PRODUCTS);
    if (ph) ph->norm = *norm;
    add_products(p, ph, ops, n);
}

void streamed_products(streamed_program *p, const streamed_product *ops, int n) {
    add_products(p, add_phase(p, PHASE_PRODUCTS), ops, n);
}

void streamed_wkv7_step(streamed_program *p, const step_args *q) {
    sd_phase *ph = add_phase(p, PHASE_WKV7);
    if (ph) ph->step = *q;
}

/* Whether every phase and product fits the kernel: rows that bulk copies
 * can move whole into a slot, inputs that xbuf holds, a norm's mixes. */
static int shapes_fit(const streamed_program *p) {
    if (p->broken || !p->n_phases || p->phases[p->n_phases - 1].kind == PHASE_NORM_PRODUCTS || p->C % 8 ||
        p->C > MAX_C)
        return 0;
    for (int i = 0; i < p->n_phases; i++) {
        const sd_phase *ph = &p->phases[i];
        if (ph->kind == PHASE_NORM_PRODUCTS) { /* its vectors are read as float4s */
            uintptr_t any = (uintptr_t)ph->norm.x | (uintptr_t)ph->norm.ln_w | (uintptr_t)ph->norm.ln_b;
            for (int m = 0; m < ph->norm.n_mix; m++) any |= (uintptr_t)ph->norm.mu[m];
            if (any % 16 || ph->norm.slot_off % 4) return 0;
        }
        for (int k = ph->first_op; k < ph->first_op + ph->n_ops; k++) {
            const sd_op *o = &p->ops[k];
            const int mix_ok = o->mix < 0 ? o->X != NULL
                                          : ph->kind == PHASE_NORM_PRODUCTS && o->mix < ph->norm.n_mix && o->in == p->C;
            if (!mix_ok || o->in % 8 || (uintptr_t)o->W % 16 || (uintptr_t)o->X % 16 || (uintptr_t)o->Y % 4 ||
                o->in * sizeof(bf16) > STREAMED_SLOT_BYTES || o->in > 4 * VEC_PACKS * THREADS || o->split > MAX_PIECES)
                return 0;
        }
    }
    return 1;
}

typedef struct block_tiles {
    sd_tile *t;
    int n, cap;
} block_tiles;

/* Row `row` of op `op` onto block b's list: onto its last tile where that
 * holds the row before it and has room for one more (at most `most` rows). */
static int push_row(block_tiles *b, int op, int row, int most) {
    sd_tile *last = b->n ? &b->t[b->n - 1] : NULL;
    if (last && last->op == op && (int)(uintptr_t)last->W + last->rows == row && last->rows < most) {
        last->rows++;
        return 1;
    }
    if (!grow((void **)&b->t, b->n, &b->cap, sizeof(sd_tile))) return 0;
    sd_tile t;
    memset(&t, 0, sizeof t);
    t.op = op, t.W = (const bf16 *)(uintptr_t)row, t.rows = 1; /* W holds the first row until fill_tiles */
    b->t[b->n++] = t;
    return 1;
}

/* Every block's tiles, phase by phase: a phase's rows (its products' rows
 * in order) dealt out by their weight bytes, block b taking the rows that
 * start in its 1/G of them, so each block reads a like share of every
 * phase; begin[b][p] is where block b's tiles of phase p start. */
static int plan_tiles(const streamed_program *p, unsigned G, block_tiles *blocks, int *begin) {
    for (int i = 0; i < p->n_phases; i++) {
        const sd_phase *ph = &p->phases[i];
        unsigned long long total = 0, at = 0;
        for (unsigned b = 0; b < G; b++) begin[(size_t)b * (p->n_phases + 1) + i] = blocks[b].n;
        for (int k = ph->first_op; k < ph->first_op + ph->n_ops; k++) total += (unsigned long long)p->ops[k].out * p->ops[k].in;
        for (int k = ph->first_op; k < ph->first_op + ph->n_ops; k++) {
            const sd_op *o = &p->ops[k];
            const int by_bytes = STREAMED_SLOT_BYTES / (int)(o->in * sizeof(bf16)), by_pieces = MAX_PIECES / o->split;
            for (int row = 0; row < o->out; row++, at += (unsigned long long)o->in)
                if (!push_row(&blocks[at * G / total], k, row, by_bytes < by_pieces ? by_bytes : by_pieces)) return 0;
        }
    }
    for (unsigned b = 0; b < G; b++) begin[(size_t)b * (p->n_phases + 1) + p->n_phases] = blocks[b].n;
    return 1;
}

/* The shared memory a block takes beside its ring (floats: z, prev, xbuf, two sets of piece sums). */
static size_t side_bytes(const streamed_program *p) {
    return sizeof(float) * (2 * (size_t)p->C + (size_t)p->xbuf_floats + 2 * MAX_PIECES);
}

/* Slots of the ring and the device's blocks; 0 slots where it does not fit. */
static void size_ring(streamed_program *p) {
    int dev = 0, sms = 0, optin = 0, per_sm = 0;
    cudaFuncAttributes attr;
    p->n_slots = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) ||
        cudaFuncGetAttributes(&attr, streamed_kernel) != cudaSuccess)
        return;
    const size_t other = side_bytes(p) + attr.sharedSizeBytes;
    int slots = optin > (int)other ? (int)((optin - other) / (STREAMED_SLOT_BYTES + sizeof(uint64_t))) : 0;
    slots = slots > 8 ? 8 : slots; /* 256 KB in flight a block is more than a multiprocessor's share needs */
    if (slots < 2) return;
    p->smem = (size_t)slots * (STREAMED_SLOT_BYTES + sizeof(uint64_t)) + side_bytes(p);
    if (cudaFuncSetAttribute(streamed_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p->smem) ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, streamed_kernel, THREADS, p->smem) || per_sm < 1)
        return;
    p->n_slots = slots, p->blocks = (unsigned)sms;
}

/* Copies n elements of `bytes` each from host src to a new device array *dst. */
static rwkv_status upload(void **dst, const void *src, size_t bytes, rwkv_error *err) {
    rwkv_status s = cuda_alloc(dst, bytes ? bytes : 1, "streamed decode", err);
    if (s == RWKV_OK && bytes && cudaMemcpy(*dst, src, bytes, cudaMemcpyHostToDevice) != cudaSuccess)
        s = cuda_check("streamed decode upload", err);
    return s;
}

/* Each tile's op fields, and its first row's weights and output. */
static void fill_tiles(const streamed_program *p, sd_tile *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const sd_op *o = &p->ops[t[i].op];
        const int row = (int)(uintptr_t)t[i].W;
        t[i].W = o->W + (size_t)row * o->in, t[i].X = o->X, t[i].Y = o->Y + row;
        t[i].in = o->in, t[i].split = o->split;
        t[i].mix = (signed char)o->mix, t[i].act = (signed char)o->act, t[i].accumulate = (signed char)o->accumulate;
    }
}

static rwkv_status upload_plan(streamed_program *p, const block_tiles *blocks, const int *begin, rwkv_error *err) {
    const unsigned G = p->blocks;
    size_t n = 0;
    for (unsigned b = 0; b < G; b++) n += (size_t)blocks[b].n;
    sd_tile *tiles = (sd_tile *)malloc(sizeof(sd_tile) * (n ? n : 1));
    int *at = (int *)malloc(sizeof(int) * (size_t)G * (p->n_phases + 1));
    rwkv_status s = tiles && at ? RWKV_OK : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    for (unsigned b = 0, off = 0; s == RWKV_OK && b < G; off += (unsigned)blocks[b].n, b++) {
        memcpy(tiles + off, blocks[b].t, sizeof(sd_tile) * (size_t)blocks[b].n);
        for (int i = 0; i <= p->n_phases; i++) {
            const size_t j = (size_t)b * (p->n_phases + 1) + i;
            at[j] = (int)off + begin[j];
        }
    }
    if (s == RWKV_OK) fill_tiles(p, tiles, n);
    if (s == RWKV_OK) s = upload((void **)&p->dev.tiles, tiles, sizeof(sd_tile) * n, err);
    if (s == RWKV_OK) s = upload((void **)&p->dev.tile_begin, at, sizeof(int) * (size_t)G * (p->n_phases + 1), err);
    if (s == RWKV_OK) s = upload((void **)&p->dev.phases, p->phases, sizeof(sd_phase) * p->n_phases, err);
    if (s == RWKV_OK) s = cuda_alloc((void **)&p->dev.done, sizeof(unsigned) * p->n_phases, "streamed decode", err);
    free(tiles), free(at);
    p->dev.n_phases = p->n_phases, p->dev.C = p->C, p->dev.xbuf_floats = p->xbuf_floats, p->dev.n_slots = p->n_slots;
    return s;
}

rwkv_status streamed_build(streamed_program *p, rwkv_error *err) {
    if (!shapes_fit(p)) return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "the pass does not fit the streamed decode");
    for (int k = 0; k < p->n_ops; k++) p->xbuf_floats = p->ops[k].in > p->xbuf_floats ? p->ops[k].in : p->xbuf_floats;
    p->xbuf_floats = (p->xbuf_floats + 3) / 4 * 4;
    size_ring(p);
    int heads_fit = p->n_slots > 0;
    for (int i = 0; i < p->n_phases && heads_fit; i++)
        heads_fit = p->phases[i].kind != PHASE_WKV7 || p->phases[i].step.H <= (int)p->blocks;
    cudaGetLastError(); /* a size query that failed leaves the graph path, not an error */
    if (!heads_fit) return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "the streamed decode does not fit this device");
    const unsigned G = p->blocks;
    block_tiles *blocks = (block_tiles *)calloc(G, sizeof(block_tiles));
    int *begin = (int *)malloc(sizeof(int) * (size_t)G * (p->n_phases + 1));
    rwkv_status s = blocks && begin && plan_tiles(p, G, blocks, begin) ? RWKV_OK
                                                                       : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    if (s == RWKV_OK) s = upload_plan(p, blocks, begin, err);
    for (unsigned b = 0; blocks && b < G; b++) free(blocks[b].t);
    free(blocks), free(begin);
    return s;
}

rwkv_status streamed_launch(const streamed_program *p, cudaStream_t s, rwkv_error *err) {
    if (cudaMemsetAsync(p->dev.done, 0, sizeof(unsigned) * p->n_phases, s) != cudaSuccess)
        return cuda_check("streamed decode", err);
    streamed_kernel<<<p->blocks, THREADS, p->smem, s>>>(p->dev);
    return cuda_check("streamed decode", err);
}
