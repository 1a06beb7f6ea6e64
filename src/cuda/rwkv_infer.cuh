/* The inside of an RWKV-5/6/7 inference context (cuda/rwkv_infer.h),
 * shared by the driver (rwkv_infer.cu) and the version blocks
 * (rwkv5_block.cu, rwkv6_block.cu, rwkv7_block.cu). A version supplies a
 * table: its per-layer weights by slot (name, how it is stored), the work
 * memory a chunk of rows needs and its block; the driver does the rest
 * (upload, embedding, ln0, ln_out, head, chunks, state pointers). */
#ifndef RWKV_CUDA_RWKV_INFER_CUH
#define RWKV_CUDA_RWKV_INFER_CUH

#include <type_traits>

#include "cuda/common.cuh"

extern "C" {
#include "core/error.h"
#include "cuda/rwkv_infer.h"
}

/* How a per-layer weight is stored on the device. */
enum infer_kind {
    W_VEC,      /* float32 vector of `rows` floats */
    W_MAT,      /* [rows][cols] matrix (nn.Linear: y = W x), in the context's weight type */
    W_LORA,     /* stored [cols][rows] in the file (y = x @ M): transposed at upload to a W_MAT */
    W_MAT_T,    /* a W_MAT in the file, stored transposed [cols][rows] (rwkv_infer.value_t) */
    W_V5_DECAY, /* RWKV-5 time_decay, per channel or per head: exp(-exp(.)) per channel */
    W_V5_BONUS, /* RWKV-5 bonus: time_faaaa as stored, or exp(time_first); per channel or per head */
};

typedef struct infer_weight {
    const char *name; /* after "blocks.<l>." */
    enum infer_kind kind;
    int rows, cols;
    int count; /* W_LORA: matrices stored one after another ([count][cols][rows] in the file); 0 means 1 */
} infer_weight;

/* The rows of one pass: n_streams independent streams of `per` consecutive
 * tokens each (one sequence: 1 stream of T; a batch step: B streams of 1);
 * row r belongs to stream r / per, whose state is states[r / per]. */
typedef struct infer_rows {
    float *const *states; /* device array of n_streams device pointers */
    int n_streams, per, n;
} infer_rows;

typedef struct infer_version {
    int n_slots;
    /* Slot `slot` of layer l; 0 when the layer has none (e.g. RWKV-7's
     * block 0 value LoRA). The matrices every version names alike
     * (att.key.weight ...) get their kind and shape from the driver. */
    int (*weight)(const rwkv_infer_shape *sh, int l, int slot, infer_weight *out);
    /* Floats of work memory for a pass of `rows` rows (beside x and z). */
    size_t (*work_floats)(const rwkv_infer_shape *sh, int rows);
    /* One block over the rows of the residual stream c->x. */
    rwkv_status (*block)(rwkv_infer *c, int l, const infer_rows *rows, rwkv_error *err);
    /* Slots [pack_first, pack_first + pack_count): matrices of one shape
     * whose products the block issues one after another on consecutive
     * inputs into consecutive outputs (r, k, v); the driver stores each
     * layer's run in one allocation at a constant stride, and a large pass
     * takes the run as one strided batched GEMM. pack_count 0: none. */
    int pack_first, pack_count;
    /* Derived weights the version builds once the slots are uploaded and
     * packed (NULL: none); what it allocates it hangs on c->derived. */
    rwkv_status (*derive)(rwkv_infer *c, rwkv_error *err);
} infer_version;

/* max(C, A), the width of buffers that hold either */
static inline size_t infer_wide(const rwkv_infer_shape *sh) {
    return (size_t)(sh->dim_att > sh->n_embd ? sh->dim_att : sh->n_embd);
}

extern const infer_version rwkv5_infer_version, rwkv6_infer_version, rwkv7_infer_version;

/* A captured pass (decode, or a batch step), replayed as one graph launch:
 * the pass's kernels read their tokens and state pointers from the
 * context's buffers, so one graph serves every pass of the same shape. */
enum { INFER_GRAPHS = 16 };
typedef struct infer_graph {
    int n, n_streams, out_rows;
    cudaGraphExec_t exec;
} infer_graph;

/* A second stream for work that overlaps the main stream's: the chunked
 * WKVs build the matrices of a prompt's later parts there while the main
 * stream walks its first ones (cuda_wkv7_chunked, cuda_wkv5_chunked). */
enum { INFER_SIDE_EVENTS = 8 };
typedef struct infer_side {
    cudaStream_t stream;
    cudaEvent_t events[INFER_SIDE_EVENTS];
} infer_side;

struct rwkv_infer {
    rwkv_infer_shape sh;
    const infer_version *ver;
    cuda_dtype wt; /* storage of the matrices (int8: bf16, the type of the GEMMs) */
    int q8;        /* the matrices are CUDA_Q8: GEMVs read them so, GEMMs after a dequantization into w16 */
    int value_t;   /* ffn.value is stored transposed (W_MAT_T) for cuda_sparse_product */
    float *sparse; /* cuda_sparse_product's scratch */
    cuda_blas *blas;
    cudaStream_t stream;
    infer_side side;
    cuda_blas *side_blas; /* the side stream's GEMMs (a workspace of their own) */
    void **w;        /* [L][n_slots] device weights (NULL: absent) */
    int packed;        /* in layers [0, packed_layers) the first `packed` slots of the ver->pack_* run */
    int packed_layers; /* lie in one allocation, owned by the run's first slot */
    float *emb;      /* [V][C] */
    float *ln0, *ln_out; /* weight, bias: [2][C] */
    void *head;      /* [V][C] in wt */
    size_t layer_state;
    /* work of one pass of up to max_rows rows */
    int max_rows;
    int *tok;
    float **ptrs;    /* the pass's state pointers */
    float *x, *z, *mean, *rstd, *logits, *work;
    void *in16;      /* bf16 copy of a product's input */
    void *mix16;     /* bf16 token-shift outputs of a large pass: [SHIFT_MAX_MIX][rows][C] */
    void *w16;       /* int8 matrices: the bf16 copies of a GEMM's matrices (one, or a batch's run) */
    size_t w16_elems; /* its room, in bf16 values: the largest matrix */
    size_t in16_floats;
    infer_graph graphs[INFER_GRAPHS];
    int n_graphs;
    /* the draw of rwkv_infer_eval_draw: rules and tokens of max_rows rows,
     * the flat bias lists (bias_cap entries), allocated at the first draw */
    cuda_draw_rule *draw_rules;
    int *draw_next, *draw_bias_ids;
    float *draw_bias;
    size_t draw_bias_cap;
    void *derived;  /* the version's derived weights (infer_version.derive), one allocation */
};

static inline void *infer_w(const rwkv_infer *c, int l, int slot) { return c->w[(size_t)l * c->ver->n_slots + slot]; }
/* Matrix m of a slot that holds several [rows][cols] ones (infer_weight.count). */
static inline const void *infer_matrix(const rwkv_infer *c, int l, int slot, int m, int rows, int cols) {
    const size_t n = (size_t)rows * cols, bytes = c->q8 ? n + n / 16 : n * cuda_dtype_size(c->wt);
    return (const char *)infer_w(c, l, slot) + (size_t)m * bytes;
}
static inline float *infer_vec(const rwkv_infer *c, int l, int slot) { return (float *)infer_w(c, l, slot); }

/* Several products of the same rows (cuda_gemv_op: Y = act(X Wᵀ), or
 * Y += X Wᵀ when accumulate, X's rows ldx floats apart, float32 output).
 * A few rows (decode): grouped GEMV launches reading X as float32. More: a
 * GEMM each (in bf16 X rounded to bf16 first), then the activation. */
rwkv_status infer_products(rwkv_infer *c, const cuda_gemv_op *ops, int n, int rows, rwkv_error *err);
/* `batch` products of one shape as one strided batched GEMM (more rows than
 * the GEMV takes; X16 given, or float32 weights): product i reads W + i
 * w_stride, X + i x_stride and writes Y + i y_stride (elements of each), no
 * activation; on stream s with the cuBLASLt handle that serves it (c->blas
 * for c->stream, c->side_blas for c->side.stream). W is in c->wt also in an
 * int8 context (a version's derived copies). */
rwkv_status infer_batched(rwkv_infer *c, cuda_blas *blas, cudaStream_t s, const cuda_gemv_op *op, int batch,
                          long long w_stride, long long x_stride, long long y_stride, int rows, rwkv_error *err);
/* One product without activation: Y[rows][out] (+)= X[rows][in] Wᵀ. */
rwkv_status infer_linear(rwkv_infer *c, const void *W, int out, int in, const float *X, int ldx, int rows, float *Y,
                         int accumulate, rwkv_error *err);

/* z = LN(x; w, b) over the rows (eps 1e-5). */
void infer_layernorm(rwkv_infer *c, const float *x, const float *w, const float *b, int rows, float *z);

/* The token shift of every version, continuing the streams' states: the
 * previous token's z is z[r-1] within a stream and the state's slot (`off`
 * floats into each state) for a stream's first row; afterwards the slot
 * holds the stream's last z. out[m] (rows x C each, consecutive) is
 *   SHIFT_LERP  z + (prev - z) mu_m          (RWKV-6/7)
 *   SHIFT_MIX   mu_m z + (1 - mu_m) prev     (RWKV-4/5)
 *   SHIFT_DELTA prev - z                     (RWKV-6's dz; n_mix 1, mu unused) */
enum shift_form { SHIFT_LERP, SHIFT_MIX, SHIFT_DELTA };
enum { SHIFT_MAX_MIX = 6 };
void infer_shift(rwkv_infer *c, enum shift_form form, const float *z, const infer_rows *rows, size_t off,
                 int n_mix, const float *const *mu, float *out);

/* z = LN(c->x; ln_w, ln_b), then infer_shift(form, z, ...) into out, or in
 * bf16 into out16 when that is set (the inputs of bf16 GEMMs, which then
 * need no conversion): one fused launch when every stream is one row
 * (decode, batch steps), else the two steps. */
void infer_ln_shift(rwkv_infer *c, const float *ln_w, const float *ln_b, const infer_rows *rows, size_t off,
                    enum shift_form form, int n_mix, const float *const *mu, float *out, void *out16);
/* Where a pass of `rows` rows keeps its shift outputs in bf16 for the GEMMs
 * (c->mix16: bf16 weights and more rows than the GEMV takes); NULL otherwise. */
static inline void *infer_mix16(const rwkv_infer *c, int rows) {
    return c->wt == CUDA_BF16 && rows > CUDA_GEMV_ROWS ? c->mix16 : NULL;
}

/* The squared-ReLU channel mix of layer l, which every version shares but
 * for the shift's form and the receptance gate:
 *   z = LN2(x), xk, xr = shift(z) (the state slot: the layer's last C floats),
 *   x += σ(W_r xr) ⊙ W_v relu²(W_k xk)      (W_r NULL: no gate, RWKV-7)
 * mu = {mu_k, mu_r}; xm [2][rows][C], h [rows][F], v and r [rows][C] scratch.
 * Where c->value_t, W_v is stored transposed and a few rows' product skips
 * its rows for the hiddens relu² made zero (cuda_sparse_product). */
typedef struct infer_ffn_weights {
    const float *ln_w, *ln_b, *mu[2];
    const void *Wk, *Wv, *Wr;
} infer_ffn_weights;
rwkv_status infer_channel_mix(rwkv_infer *c, int l, const infer_rows *rows, enum shift_form form,
                              const infer_ffn_weights *w, float *xm, float *h, float *v, float *r, rwkv_error *err);

/* y = GN_H(y; w, b, eps) (⊙ silu(g) when g is not NULL) per row, in place. */
void infer_group_norm_gate(rwkv_infer *c, float *y, const float *g, const float *w, const float *b, int rows);

/* x = act(x) in place over n values of type t (float32 or bf16); CUDA_ACT_NONE does nothing. */
void infer_activation(cudaStream_t s, int act, cuda_dtype t, void *x, size_t n);

/* The matrix-state WKVs continuing the streams' states (S at `off` floats
 * into each state; every other array [rows][H*N]):
 *   RWKV-5/6: y_i = Σ_j r_j (S_ij + u_j k_j v_i), S_ij = w_j S_ij + k_j v_i,
 *             w per row (w_stride = H*N) or one vector (w_stride = 0).
 *   RWKV-7:   S_ij = S_ij w_j + (Σ_l S_il a_l) b_j + v_i k_j, y_i = Σ_j S_ij r_j. */
enum { CUDA_WKV_MAX_HEAD = 256 }; /* the largest head size N the two take */

/* What the two WKV kernels share: a warp holds one state row, lane j its
 * columns j, j + 32, ... (E of them); wkv_by_width calls launch(E) with E as
 * a compile-time constant (std::integral_constant) for head size N. */
template <int E>
__device__ __forceinline__ void wkv_row_load(float *s, const float *st, int lane, int N) {
#pragma unroll
    for (int q = 0; q < E; q++) s[q] = lane + 32 * q < N ? st[lane + 32 * q] : 0.0f;
}
template <int E>
__device__ __forceinline__ void wkv_row_store(float *st, const float *s, int lane, int N) {
#pragma unroll
    for (int q = 0; q < E; q++)
        if (lane + 32 * q < N) st[lane + 32 * q] = s[q];
}
template <class F>
static void wkv_by_width(int N, F launch) {
    if (N <= 32) launch(std::integral_constant<int, 1>());
    else if (N <= 64) launch(std::integral_constant<int, 2>());
    else if (N <= 128) launch(std::integral_constant<int, 4>());
    else launch(std::integral_constant<int, 8>());
}
/* A warp of the one-token kernels holds R rows of a head: one row is 256
 * bytes of state at N = 64, too few bytes in flight per SM to stream a batch
 * of states at the memory's speed, while R rows issue R times as many loads
 * at once and share the head's inputs. R = 4 wherever N allows. */
template <class F>
static void wkv_by_shape(int N, F launch) {
    wkv_by_width(N, [&](auto width) {
        if (N % 4 == 0) launch(width, std::integral_constant<int, 4>());
        else launch(width, std::integral_constant<int, 1>());
    });
}
/* blocks of 8 warps covering the H * N rows of one stream, R rows a warp */
static inline unsigned wkv_blocks(int H, int N, int R) { return (unsigned)(((size_t)H * N / R + 7) / 8); }
/* R warp sums side by side: their shuffles overlap */
template <int R>
__device__ __forceinline__ void warp_sums(float *x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
#pragma unroll
        for (int m = 0; m < R; m++) x[m] += __shfl_xor_sync(0xffffffffu, x[m], o);
}
/* x[lane] for lane < R, without indexing a register array at run time */
template <int R>
__device__ __forceinline__ float wkv_pick(const float *x, int lane) {
    float v = x[0];
#pragma unroll
    for (int m = 1; m < R; m++)
        if (lane == m) v = x[m];
    return v;
}
/* Whether every array is 16-byte aligned (the long-stream kernels read float4s). */
static inline bool wkv_aligned16(const float *const *arrays, int n) {
    for (int i = 0; i < n; i++)
        if ((uintptr_t)arrays[i] % 16) return false;
    return true;
}
/* Four columns of an RWKV-7 state row through one token: s = s w + sa b + v k,
 * returning their share of the output s · r (the decode step and the
 * long-stream kernel share it). */
__device__ __forceinline__ float wkv7_step4(float4 &s, float4 r, float4 w, float4 k, float4 b, float sa, float v) {
    s.x = s.x * w.x + sa * b.x + v * k.x;
    s.y = s.y * w.y + sa * b.y + v * k.y;
    s.z = s.z * w.z + sa * b.z + v * k.z;
    s.w = s.w * w.w + sa * b.w + v * k.w;
    return s.x * r.x + s.y * r.y + s.z * r.z + s.w * r.w;
}
void cuda_wkv5_state(const infer_rows *rows, size_t off, int H, int N, const float *r, const float *k,
                     const float *v, const float *w, size_t w_stride, const float *u, float *y, cudaStream_t s);

/* The RWKV-5.2 / 6 WKV of a long stream in chunks (wkv5_chunk.cu), for heads
 * of 64: r, k [rows][H N]; w RWKV-6's decay LoRA output per row (w_stride
 * H N, the decay then exp(-exp(decay + w)), decay [H N]) or RWKV-5's
 * multipliers (w_stride 0, decay NULL); u the bonus [H N]. */
typedef struct wkv5_chunk_inputs {
    const float *r, *k, *w;
    size_t w_stride;
    const float *decay, *u;
} wkv5_chunk_inputs;
/* As cuda_wkv7_chunked_fits and cuda_wkv7_chunked below, for these inputs. */
bool cuda_wkv5_chunked_fits(const infer_rows *rows, size_t off, int H, int N, const wkv5_chunk_inputs *in,
                            const float *v, const float *y, size_t scratch_floats);
cudaError_t cuda_wkv5_chunked(const infer_rows *rows, size_t off, int H, int N, const wkv5_chunk_inputs *in,
                              const float *v, float *y, float *scratch, size_t scratch_floats, cudaStream_t s,
                              const infer_side *side);
/* RWKV-7's WKV token by token (decode, batch steps, and streams the chunked
 * form below does not take). */
void cuda_wkv7_state(const infer_rows *rows, size_t off, int H, int N, const float *r, const float *w,
                     const float *k, const float *v, const float *a, const float *b, float *y, cudaStream_t s);
/* RWKV-7's constants, as model/rwkv7.c: the decay's scale (w = e^{-DECAY_SCALE σ(·)})
 * and the clamp of kappa's per-head L2 norm. */
#define RWKV7_DECAY_SCALE 0.60653065971263342f /* e^-1/2 */
#define RWKV7_KK_EPS 1e-12f

/* RWKV-7's per-channel preparation of the WKV's inputs, one definition for
 * the kernels that do it (the block's preparation, the decode step, the
 * chunked form): the decay's log -DECAY_SCALE σ(w0 + dec) (w is its exp),
 * alpha σ(a0 + al), k scaled by the in-context rate k (1 + (α - 1) k_a), and
 * 1 / |κ| from the head's sum of squares, the norm clamped. */
__device__ __forceinline__ float rwkv7_log_decay(float w0, float dec) {
    return -RWKV7_DECAY_SCALE * (1.0f / (1.0f + expf(-(w0 + dec))));
}
__device__ __forceinline__ float rwkv7_alpha(float a0, float al) { return 1.0f / (1.0f + expf(-(a0 + al))); }
__device__ __forceinline__ float rwkv7_scaled_k(float k, float alpha, float k_a) {
    return k * (1.0f + (alpha - 1.0f) * k_a);
}
__device__ __forceinline__ float rwkv7_inv_norm(float sum_sq) {
    const float norm = sqrtf(sum_sq);
    return 1.0f / (norm > RWKV7_KK_EPS ? norm : RWKV7_KK_EPS);
}
/* The value residual of the blocks after the first: v mixed toward the
 * first block's values by σ(v0 + v_mix). */
__device__ __forceinline__ float rwkv7_value_residual(float v, float v_first, float v0, float v_mix) {
    return v + (v_first - v) * (1.0f / (1.0f + expf(-(v0 + v_mix))));
}

/* The chunked form's inputs as the block's products leave them: it turns
 * them into the WKV's r, w, k, a, b itself (the arithmetic of the block's
 * preparation) while it builds its matrices, applies the value residual to
 * v in place (block 0, v0 NULL, keeps its values in v_first instead), and
 * writes the bonus Σ_j r_j k_j r_k[j] of each (row, head) for GroupNorm +
 * gate, so that those arrays never go through memory again. */
typedef struct wkv7_raw_inputs {
    const float *r, *dec, *al, *k;          /* [rows][H N]: r, the decay's and alpha's LoRA outputs, k */
    const float *w0, *a0, *k_k, *k_a, *r_k; /* [H N] */
    float *bonus;                           /* [rows][H] */
    float *v, *v_first;                     /* [rows][H N]: the values, the first block's values */
    const float *v0, *v_mix;                /* [H N], [rows][H N]: the residual's bias and LoRA output */
} wkv7_raw_inputs;

/* Whether the chunked form takes the pass: heads of 64, streams of 16 tokens
 * or more, scratch for its matrices (chunk_floats), 16-byte aligned arrays,
 * and a device that gives its kernel the shared memory it asks for. */
bool cuda_wkv7_chunked_fits(const infer_rows *rows, size_t off, int H, int N, const wkv7_raw_inputs *in,
                            const float *y, size_t scratch_floats);
/* The chunked WKV of a pass it fits: y its output, scratch (scratch_floats
 * of them, as given to the fits) its matrices. The walk is a chain of
 * dependent chunks with a few warps an SM. A long pass whose walk blocks
 * leave SMs over walks its second half on side->stream from zeros and from
 * the identity while s walks the first, and joins the two (wkv_chunk.cuh);
 * otherwise it goes in parts: the matrices of part 0 on s, of the later
 * parts on side->stream while s walks the earlier ones (side NULL: one
 * part, all on s). */
cudaError_t cuda_wkv7_chunked(const infer_rows *rows, size_t off, int H, int N, const wkv7_raw_inputs *in, float *y,
                              float *scratch, size_t scratch_floats, cudaStream_t s, const infer_side *side);

#endif
