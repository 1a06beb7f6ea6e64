/* The RWKV-7 block of GPU inference (model/rwkv7.c on the device): layer
 * norm, the six token-shift mixes, r/k/v products and the decay, in-context
 * learning rate, value-residual and gate LoRAs, the per-token preparation of
 * the WKV inputs, the WKV continuing the state, GroupNorm + bonus + gate, the
 * output product into the residual stream, then the ungated relu² channel mix. */
#include "cuda/rwkv_infer.cuh"


/* The token-shift mixes, r, k and v first: their products read three
 * consecutive mixes, which a large pass takes as one strided batch. */
enum { MIX_R, MIX_K, MIX_V, MIX_W, MIX_A, MIX_G, N_MIX };
enum { LN1_W, LN1_B, LN2_W, LN2_B, X_R, X_W, X_K, X_V, X_A, X_G, W0, A0, V0, W1, W2, A1, A2, V1, V2, G1, G2, K_K,
       K_A, R_K, ATT_R, ATT_K, ATT_V, ATT_O, LNX_W, LNX_B, FFN_X_K, FFN_K, FFN_V, N_SLOTS };

static int weight(const rwkv_infer_shape *sh, int l, int slot, infer_weight *out) {
    const int C = sh->n_embd, A = sh->dim_att, Dw = sh->lora[0], Da = sh->lora[1], Dv = sh->lora[2],
              Dg = sh->lora[3];
    static const char *const names[N_SLOTS] = {
        "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a",
        "att.x_g", "att.w0", "att.a0", "att.v0", "att.w1", "att.w2", "att.a1", "att.a2", "att.v1", "att.v2",
        "att.g1", "att.g2", "att.k_k", "att.k_a", "att.r_k", "att.receptance.weight", "att.key.weight",
        "att.value.weight", "att.output.weight", "att.ln_x.weight", "att.ln_x.bias", "ffn.x_k", "ffn.key.weight",
        "ffn.value.weight"};
    if (l == 0 && (slot == V0 || slot == V1 || slot == V2)) return 0; /* block 0 has no value residual */
    infer_weight w = {names[slot], W_VEC, slot <= X_G || slot == FFN_X_K ? C : A, 1, 1};
    switch (slot) {
    case W1: w = {names[slot], W_LORA, Dw, C, 1}; break;
    case W2: w = {names[slot], W_LORA, A, Dw, 1}; break;
    case A1: w = {names[slot], W_LORA, Da, C, 1}; break;
    case A2: w = {names[slot], W_LORA, A, Da, 1}; break;
    case V1: w = {names[slot], W_LORA, Dv, C, 1}; break;
    case V2: w = {names[slot], W_LORA, A, Dv, 1}; break;
    case G1: w = {names[slot], W_LORA, Dg, C, 1}; break;
    case G2: w = {names[slot], W_LORA, A, Dg, 1}; break;
    default: break;
    }
    *out = w;
    return 1;
}

/* h holds the channel mix's [rows][F], or the four LoRA hiddens side by side */
static size_t hidden(const rwkv_infer_shape *sh) {
    const int ranks = sh->lora[0] + sh->lora[1] + sh->lora[2] + sh->lora[3];
    return (size_t)(sh->n_ffn > ranks ? sh->n_ffn : ranks);
}

static size_t work_floats(const rwkv_infer_shape *sh, int rows) {
    return (size_t)rows * (N_MIX * (size_t)sh->n_embd + 10 * (size_t)sh->dim_att + hidden(sh));
}

/* The work of a pass; v_first sits at the same place for every block of the
 * pass, so block 0's values are there when the later blocks read them. */
typedef struct work {
    float *xm;                            /* [N_MIX][rows][C] */
    float *r, *k, *v, *w, *a, *b, *g, *y; /* [rows][A]: a holds alpha then kappa·alpha, b -kappa */
    float *v_first, *tmp, *h;
} work;

/* The mixes come right before h: both are dead while the WKV runs, so the
 * chunked form takes them together as its scratch (scratch_floats). */
static work carve(const rwkv_infer *c, int rows) {
    const size_t ra = (size_t)rows * c->sh.dim_att;
    work s;
    float *p = c->work;
    /* r, k, v: one strided batch's outputs; tmp, w, a, g: the LoRAs' (lora_products) */
    float **as[] = {&s.r, &s.k, &s.v, &s.b, &s.y, &s.v_first, &s.tmp, &s.w, &s.a, &s.g};
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) *as[i] = p, p += ra;
    s.xm = p, p += N_MIX * (size_t)rows * c->sh.n_embd;
    s.h = p;
    return s;
}

static size_t scratch_floats(const rwkv_infer *c, int rows) {
    return (size_t)rows * (N_MIX * (size_t)c->sh.n_embd + hidden(&c->sh));
}

typedef struct prepare_args {
    const float *w0, *a0, *v0, *k_k, *k_a; /* v0 NULL in block 0 */
    float *dec, *al, *neg, *k, *v, *v_first;
    const float *v_mix;
} prepare_args;

/* The value residual of element i (channel ch): v mixed toward the first
 * layer's values by σ(v0 + v_mix); block 0 (no v0) keeps its values as the
 * first layer's. Returns the v the WKV reads. */
__device__ __forceinline__ float value_residual(const prepare_args &p, size_t i, int ch) {
    const float v = p.v[i];
    if (!p.v0) {
        p.v_first[i] = v;
        return v;
    }
    return rwkv7_value_residual(v, p.v_first[i], p.v0[ch], p.v_mix[i]);
}

/* One warp per (row, head): decay, alpha, the value residual, kappa
 * normalised per head, the kernel's k, a = -kappa (neg) and b = kappa·alpha (al). */
__global__ void prepare_kernel(prepare_args p, size_t units, int H, int N) {
    const size_t unit = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (unit >= units) return;
    const size_t base = unit * N;
    const int ch0 = (int)(unit % H) * N;
    float ss = 0.0f;
    for (int j = lane; j < N; j += 32) {
        const size_t i = base + j;
        const int ch = ch0 + j;
        p.dec[i] = expf(rwkv7_log_decay(p.w0[ch], p.dec[i]));
        p.al[i] = rwkv7_alpha(p.a0[ch], p.al[i]);
        p.v[i] = value_residual(p, i, ch);
        const float kk = p.k[i] * p.k_k[ch];
        p.neg[i] = kk;
        ss += kk * kk;
    }
    const float inv = rwkv7_inv_norm(warp_sum(ss));
    for (int j = lane; j < N; j += 32) {
        const size_t i = base + j;
        const float kappa = p.neg[i] * inv;
        p.neg[i] = -kappa;
        p.k[i] = rwkv7_scaled_k(p.k[i], p.al[i], p.k_a[ch0 + j]);
        p.al[i] = kappa * p.al[i];
    }
}

/* One warp per (row, head): y = (GN(y) + (Σ_j r_j k_j r_k[j]) v) ⊙ g, written to y16 in bf16
 * instead when given (a large bf16 pass: the output GEMM reads it with no conversion). The
 * bonus sums come from `bonus` when given (the chunked WKV computes them), else from r and k. */
__global__ void finish_kernel(float *y, const float *r, const float *k, const float *v, const float *g,
                              const float *r_k, const float *lnx_w, const float *lnx_b, size_t units, int H, int N,
                              float eps, bf16 *y16, const float *bonus_of) {
    const size_t unit = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (unit >= units) return;
    const size_t base = unit * N;
    const int ch0 = (int)(unit % H) * N;
    float s = 0.0f, bonus = 0.0f;
    for (int j = lane; j < N; j += 32) {
        s += y[base + j];
        if (!bonus_of) bonus += r[base + j] * k[base + j] * r_k[ch0 + j];
    }
    const float mean = warp_sum(s) / N;
    bonus = bonus_of ? bonus_of[unit] : warp_sum(bonus);
    float var = 0.0f;
    for (int j = lane; j < N; j += 32) var += (y[base + j] - mean) * (y[base + j] - mean);
    const float inv = 1.0f / sqrtf(warp_sum(var) / N + eps);
    for (int j = lane; j < N; j += 32) {
        const size_t i = base + j;
        const float gn = (y[i] - mean) * inv * lnx_w[ch0 + j] + lnx_b[ch0 + j], out = (gn + bonus * v[i]) * g[i];
        if (y16) y16[i] = __float2bfloat16(out); /* the output GEMM's input, instead of y */
        else y[i] = out;
    }
}

/* Decode (every stream one row): prepare, the WKV step and finish of one
 * (stream, head) in one block of 4N threads, the head's vectors in shared
 * memory: one launch where a sequence takes three. The state rows are read
 * first, so their loads overlap the preparation. Thread t < N prepares
 * channel t as prepare_kernel does; 4 threads share each state row (float4
 * columns 16c + 4q, c < Q = N / 16); then GroupNorm, bonus and gate as
 * finish_kernel. Heads of 16 to 256 channels. */
typedef struct step_args {
    prepare_args p;
    const float *r, *g, *r_k, *lnx_w, *lnx_b;
    float *const *states;
    size_t off;
    int H;
    float eps;
    float *y;
    bf16 *y16; /* when set, y goes here in bf16 (the output GEMM's input) instead */
} step_args;

/* The head's parameter vectors (no kernel of the pass writes them) asked of
 * L2 before the wait: read after it, from memory that a token's stream of
 * weights has long evicted them from, they add three memory latencies in a
 * row to the end of a decode step. A hint: nothing depends on it for its
 * result; a thread per 64 bytes. */
__device__ __forceinline__ void prefetch_head_vectors(const step_args &q, int first, int t, int N) {
    if (t >= N || t % 16 != 0) return;
    const float *vecs[] = {q.p.w0, q.p.a0, q.p.v0, q.p.k_k, q.p.k_a, q.r_k, q.lnx_w, q.lnx_b, q.p.v0 ? q.p.v_first : NULL};
#pragma unroll
    for (int i = 0; i < 9; i++)
        if (vecs[i]) asm volatile("prefetch.global.L2 [%0];" ::"l"(vecs[i] + first + t));
}

/* For heads of 64: at most 40 registers, so that six blocks share an SM
 * (eight spill a little): a batch step is bound by moving the states, and
 * more resident blocks keep more of their rows in flight. */
template <int Q>
__global__ void __launch_bounds__(64 * Q, Q == 4 ? 6 : 1) decode_step_kernel(step_args q) {
    constexpr int N = 16 * Q;
    __shared__ float part[32];
    __shared__ float4 vec4[7 * N / 4]; /* r, w, k, a (= -kappa), b (= kappa alpha), v, y */
    cuda_let_dependents_start();
    float *vec = (float *)vec4;
    const int h = blockIdx.x, t = threadIdx.x, row = t / 4, q4 = t % 4;
    float4 *st = (float4 *)(q.states[blockIdx.y] + q.off + ((size_t)h * N + row) * N) + q4;
    prefetch_head_vectors(q, h * N, t, N);
    float4 s[Q];
#pragma unroll
    for (int c = 0; c < Q; c++) s[c] = __ldcs(st + 4 * c); /* streamed: read once, written once, not kept in L2 */
    cuda_wait_for_prior_grids(); /* launched early: the state (no earlier kernel of the pass writes it) is read first */
    const size_t base = (size_t)blockIdx.y * q.H * N + (size_t)h * N; /* row blockIdx.y, head h */
    float *sr = vec, *sw = vec + N, *sk = vec + 2 * N, *sa = vec + 3 * N, *sb = vec + 4 * N, *sv = vec + 5 * N,
          *sy = vec + 6 * N;
    const prepare_args &p = q.p;
    float kk = 0.0f, al = 0.0f, kraw = 0.0f;
    if (t < N) {
        const size_t i = base + t;
        const int ch = h * N + t;
        sr[t] = q.r[i];
        sw[t] = expf(rwkv7_log_decay(p.w0[ch], p.dec[i]));
        al = rwkv7_alpha(p.a0[ch], p.al[i]);
        sv[t] = value_residual(p, i, ch);
        kraw = p.k[i];
        kk = kraw * p.k_k[ch];
    }
    const float inv = rwkv7_inv_norm(block_sum(kk * kk, part));
    if (t < N) {
        const float kappa = kk * inv;
        sa[t] = -kappa;
        sb[t] = kappa * al;
        sk[t] = rwkv7_scaled_k(kraw, al, p.k_a[h * N + t]);
    }
    __syncthreads();
    const float4 *in = vec4; /* r, w, k, a, b as N / 4 float4 each */
    float sum_a = 0.0f, acc = 0.0f;
#pragma unroll
    for (int c = 0; c < Q; c++) {
        const float4 av = in[3 * N / 4 + 4 * c + q4];
        sum_a += s[c].x * av.x + s[c].y * av.y + s[c].z * av.z + s[c].w * av.w;
    }
    sum_a += __shfl_xor_sync(0xffffffffu, sum_a, 1);
    sum_a += __shfl_xor_sync(0xffffffffu, sum_a, 2);
    const float vi = sv[row];
#pragma unroll
    for (int c = 0; c < Q; c++) {
        const int j = 4 * c + q4;
        acc += wkv7_step4(s[c], in[j], in[N / 4 + j], in[2 * N / 4 + j], in[4 * N / 4 + j], sum_a, vi);
        __stcs(st + 4 * c, s[c]);
    }
    acc += __shfl_xor_sync(0xffffffffu, acc, 1);
    acc += __shfl_xor_sync(0xffffffffu, acc, 2);
    if (q4 == 0) sy[row] = acc;
    __syncthreads();
    const float yt = t < N ? sy[t] : 0.0f;
    const float mean = block_sum(yt, part) / N;
    const float var = block_sum(t < N ? (yt - mean) * (yt - mean) : 0.0f, part) / N;
    const float bonus = block_sum(t < N ? sr[t] * sk[t] * q.r_k[h * N + t] : 0.0f, part);
    if (t < N) {
        const int ch = h * N + t;
        const float gn = (yt - mean) * (1.0f / sqrtf(var + q.eps)) * q.lnx_w[ch] + q.lnx_b[ch];
        const float out = (gn + bonus * sv[t]) * q.g[base + t];
        if (q.y16) q.y16[base + t] = __float2bfloat16(out);
        else q.y[base + t] = out;
    }
}

/* Calls f(std::integral_constant<int, Q>) for the fused step's head sizes
 * (Q = N / 16); false for any other N. */
template <class F>
static bool by_step_width(int N, F f) {
    switch (N) {
    case 16: f(std::integral_constant<int, 1>()); return true;
    case 32: f(std::integral_constant<int, 2>()); return true;
    case 64: f(std::integral_constant<int, 4>()); return true;
    case 128: f(std::integral_constant<int, 8>()); return true;
    case 256: f(std::integral_constant<int, 16>()); return true;
    default: return false;
    }
}

/* The fused decode step where it applies (one row per stream, a head of
 * 16, 32, 64, 128 or 256 channels, 16-byte aligned state rows); false
 * otherwise. */
static bool decode_step(rwkv_infer *c, const infer_rows *rows, const step_args *q, int N) {
    if (rows->per != 1 || q->off % 4) return false;
    const dim3 grid((unsigned)q->H, (unsigned)rows->n);
    return by_step_width(N, [&](auto width) {
        constexpr int Q = decltype(width)::value;
        cuda_launch_early(decode_step_kernel<Q>, grid, dim3(64 * Q), 0, c->stream, *q);
    });
}

/* ---- the LoRAs of a large bf16 pass as two strided batches ----
 * The four LoRAs (value residual, decay, in-context rate, gate: the order of
 * their mixes MIX_V..MIX_G) have ranks of 32 to a few hundred; as GEMMs of
 * their own, each over a few hundred rows is a short launch that leaves most
 * of the GPU idle (a batch step of 256 rows at 1.5B: seven GEMMs, 40 µs a
 * layer on an H100).
 * Padded with zeros to the largest rank D they are one shape: the first
 * factors [4][D][C] (rows past a LoRA's rank zero) and the second [4][A][D]
 * (columns past it zero), so each factor is one strided batch. A padded
 * hidden is tanh(0) or σ(0) of a zero row and meets only zero weights. */
enum { LORA_V, LORA_W, LORA_A, LORA_G, N_LORA };
static const int lora_first[N_LORA] = {V1, W1, A1, G1}, lora_second[N_LORA] = {V2, W2, A2, G2};

static int lora_rank(const rwkv_infer_shape *sh) {
    int d = 0;
    for (int i = 0; i < 4; i++) d = sh->lora[i] > d ? sh->lora[i] : d;
    return d;
}

/* Layer l's padded factor f (0 first, 1 second), LoRA p, in c->derived. */
static bf16 *lora_pack(const rwkv_infer *c, int l, int f, int p) {
    const size_t n = (size_t)lora_rank(&c->sh) * infer_wide(&c->sh);
    return (bf16 *)c->derived + ((size_t)(2 * l + f) * N_LORA + p) * n;
}

/* Rank of LoRA p (sh->lora: decay, in-context rate, value, gate). */
static int rank_of(const rwkv_infer_shape *sh, int p) {
    static const int index[N_LORA] = {2, 0, 1, 3};
    return sh->lora[index[p]];
}

static rwkv_status derive(rwkv_infer *c, rwkv_error *err) {
    const rwkv_infer_shape *sh = &c->sh;
    const int D = lora_rank(sh), C = sh->n_embd, A = sh->dim_att;
    const int ranks = sh->lora[0] + sh->lora[1] + sh->lora[2] + sh->lora[3];
    /* the products take the LoRAs one by one: for float32 matrices, and
     * where padding would more than double the LoRAs' memory (a gate of a
     * much higher rank than the others). int8 factors are padded as the bf16
     * values a GEMM of them would dequantize them to (the GEMV still reads
     * their codes): a large pass then runs two strided batches instead of
     * a dequantization and a GEMM for each factor. */
    if (c->wt != CUDA_BF16 || A != C || N_LORA * D > 2 * ranks) return RWKV_OK;
    const size_t bytes = (size_t)sh->n_layer * 2 * N_LORA * D * C * sizeof(bf16);
    rwkv_error ignored; /* no room for the copy: the products take the LoRAs one by one, as without it */
    if (cuda_alloc(&c->derived, bytes, "padded LoRA weights", &ignored) != RWKV_OK) return RWKV_OK;
    cudaError_t e = cudaMemsetAsync(c->derived, 0, bytes, c->stream);
    for (int l = 0; l < sh->n_layer && e == cudaSuccess; l++)
        for (int p = l == 0 ? LORA_W : LORA_V; p < N_LORA && e == cudaSuccess; p++) {
            const int d = rank_of(sh, p);
            const void *second = infer_w(c, l, lora_second[p]);
            if (c->q8) { /* the first factor's rows straight into the pack, the second through c->w16 */
                cuda_dequant_q8(infer_w(c, l, lora_first[p]), d, C, lora_pack(c, l, 0, p), c->stream);
                cuda_dequant_q8(second, A, d, c->w16, c->stream);
                second = c->w16;
                e = cudaGetLastError();
            } else {
                e = cudaMemcpyAsync(lora_pack(c, l, 0, p), infer_w(c, l, lora_first[p]), (size_t)d * C * sizeof(bf16),
                                    cudaMemcpyDeviceToDevice, c->stream);
            }
            if (e == cudaSuccess)
                e = cudaMemcpy2DAsync(lora_pack(c, l, 1, p), D * sizeof(bf16), second, d * sizeof(bf16),
                                      d * sizeof(bf16), A, cudaMemcpyDeviceToDevice, c->stream);
        }
    return e == cudaSuccess ? cuda_sync(c->stream, "LoRA packing", err) : cuda_check("LoRA packing", err);
}

/* The four LoRAs of a large bf16 pass (block 0: three, no value residual)
 * from the mixes m16 into tmp, w, a, g: the first factors into the bf16
 * hiddens h16 [4][rows][D], their tanh and σ, then the second factors; on
 * the side stream, beside the r, k, v products on the main one. */
static rwkv_status lora_products(rwkv_infer *c, int l, int R, const bf16 *m16, bf16 *h16, const work *s,
                                 rwkv_error *err) {
    cudaStream_t side = c->side.stream;
    const int D = lora_rank(&c->sh), C = c->sh.n_embd, p0 = l == 0 ? LORA_W : LORA_V, n = N_LORA - p0;
    const size_t rc = (size_t)R * C, rd = (size_t)R * D;
    const cuda_gemv_op first = {lora_pack(c, l, 0, p0), D,    C,    NULL, C, NULL, 0, CUDA_ACT_NONE,
                                m16 + (MIX_V + p0) * rc, h16 + p0 * rd};
    rwkv_status st =
        infer_batched(c, c->side_blas, side, &first, n, (long long)D * C, (long long)rc, (long long)rd, R, err);
    if (st != RWKV_OK) return st;
    infer_activation(side, CUDA_ACT_TANH, CUDA_BF16, h16 + LORA_W * rd, rd);
    infer_activation(side, CUDA_ACT_SIGMOID, CUDA_BF16, h16 + LORA_G * rd, rd);
    const cuda_gemv_op second = {lora_pack(c, l, 1, p0), C, D, NULL, D, s->tmp + p0 * rc, 0, CUDA_ACT_NONE,
                                 h16 + p0 * rd, NULL};
    return infer_batched(c, c->side_blas, side, &second, n, (long long)C * D, (long long)rd, (long long)rc, R, err);
}

/* r, k, v on the main stream and the LoRAs on the side one, which joins it
 * again (always, so that a captured pass stays whole): a batch step's r, k,
 * v GEMM fills about three quarters of the SMs and leaves the rest to the
 * LoRAs' short GEMMs. Events 0 and 1 of the side stream (the chunked WKV
 * records them again later, after these waits are queued). */
static rwkv_status rkv_and_loras(rwkv_infer *c, int l, int R, const cuda_gemv_op *rkv, const bf16 *m16,
                                 const work *s, rwkv_error *err) {
    const cudaEvent_t fork = c->side.events[0], join = c->side.events[1];
    if (cudaEventRecord(fork, c->stream) != cudaSuccess || cudaStreamWaitEvent(c->side.stream, fork, 0) != cudaSuccess)
        return cuda_check("LoRA fork", err);
    rwkv_status st = lora_products(c, l, R, m16, (bf16 *)c->in16, s, err);
    if (st == RWKV_OK) st = infer_products(c, rkv, 3, R, err);
    const bool joined =
        cudaEventRecord(join, c->side.stream) == cudaSuccess && cudaStreamWaitEvent(c->stream, join, 0) == cudaSuccess;
    return st != RWKV_OK || joined ? st : cuda_check("LoRA join", err);
}

/* The LoRAs one by one, beside r, k, v in one group of products (float32
 * and int8 matrices, and passes without the padded copy): the first factors
 * (tanh for w, σ for g) into the hiddens h, then the second factors; block 0
 * has no value residual. A large bf16 pass (m16) keeps the hiddens in bf16
 * too where c->in16 has room (no product of these groups converts into it):
 * the first factors write them, activation applied, the second read them. */
static rwkv_status rkv_and_loras_each(rwkv_infer *c, int l, int R, const cuda_gemv_op *rkv, const bf16 *m16,
                                      const work *s, rwkv_error *err) {
    const rwkv_infer_shape *sh = &c->sh;
    const int C = sh->n_embd, A = sh->dim_att, Dw = sh->lora[0], Da = sh->lora[1], Dv = sh->lora[2],
              Dg = sh->lora[3];
    const size_t rc = (size_t)R * C;
    float *hw = s->h, *ha = hw + (size_t)R * Dw, *hg = ha + (size_t)R * Da, *hv = hg + (size_t)R * Dg;
    const float *xm = s->xm;
    cuda_gemv_op first[] = {
        rkv[0], rkv[1], rkv[2],
        {infer_w(c, l, W1), Dw, C, xm + MIX_W * rc, C, hw, 0, CUDA_ACT_TANH, NULL, NULL},
        {infer_w(c, l, A1), Da, C, xm + MIX_A * rc, C, ha, 0, CUDA_ACT_NONE, NULL, NULL},
        {infer_w(c, l, G1), Dg, C, xm + MIX_G * rc, C, hg, 0, CUDA_ACT_SIGMOID, NULL, NULL},
        {infer_w(c, l, V1), Dv, C, xm + MIX_V * rc, C, hv, 0, CUDA_ACT_NONE, NULL, NULL}};
    cuda_gemv_op second[] = {{infer_w(c, l, W2), A, Dw, hw, Dw, s->w, 0, CUDA_ACT_NONE, NULL, NULL},
                             {infer_w(c, l, A2), A, Da, ha, Da, s->a, 0, CUDA_ACT_NONE, NULL, NULL},
                             {infer_w(c, l, G2), A, Dg, hg, Dg, s->g, 0, CUDA_ACT_NONE, NULL, NULL},
                             {infer_w(c, l, V2), A, Dv, hv, Dv, s->tmp, 0, CUDA_ACT_NONE, NULL, NULL}};
    static const int mix_of[] = {MIX_W, MIX_A, MIX_G, MIX_V};
    bf16 *h16 = m16 && (size_t)R * (Dw + Da + Dg + Dv) <= c->in16_floats ? (bf16 *)c->in16 : NULL;
    for (int i = 0; i < 4 && m16; i++) {
        first[3 + i].X16 = m16 + mix_of[i] * rc;
        if (h16) second[i].X16 = first[3 + i].Y16 = h16 + (first[3 + i].Y - s->h);
    }
    rwkv_status st = infer_products(c, first, l > 0 ? 7 : 6, R, err);
    return st == RWKV_OK ? infer_products(c, second, l > 0 ? 4 : 3, R, err) : st;
}

/* The WKV of the pass from the products' outputs, GroupNorm + bonus + gate,
 * and the output product into the residual stream: decode and batch steps
 * in one fused launch, long streams chunked where they fit, anything else
 * by preparation, the state kernel and finish. */
static rwkv_status wkv_and_output(rwkv_infer *c, int l, const infer_rows *rows, const work *s, bool large,
                                  rwkv_error *err) {
    const rwkv_infer_shape *sh = &c->sh;
    const int A = sh->dim_att, H = sh->n_head, N = sh->head_size, R = rows->n;
    const size_t off = (size_t)l * c->layer_state + sh->n_embd;
    const size_t units = (size_t)R * H;
    const unsigned blocks = (unsigned)((units + 7) / 8);
    prepare_args p = {infer_vec(c, l, W0), infer_vec(c, l, A0), l > 0 ? infer_vec(c, l, V0) : NULL,
                      infer_vec(c, l, K_K), infer_vec(c, l, K_A), s->w, s->a, s->b, s->k, s->v, s->v_first, s->tmp};
    /* a large bf16 pass: y in bf16 for the output GEMM (c->in16 is free again) */
    const step_args q = {p, s->r, s->g, infer_vec(c, l, R_K), infer_vec(c, l, LNX_W), infer_vec(c, l, LNX_B),
                         rows->states, off, H, sh->gn_eps, s->y, large ? (bf16 *)c->in16 : NULL};
    const cuda_gemv_op o = {infer_w(c, l, ATT_O), sh->n_embd, A, s->y, A, c->x, 1, CUDA_ACT_NONE, q.y16, NULL};
    if (decode_step(c, rows, &q, N)) return infer_products(c, &o, 1, R, err);
    /* the chunked WKV prepares its own inputs, the value residual and the
     * bonus sums (into b, which only the other path uses); the mixes' memory
     * holds its matrices */
    const wkv7_raw_inputs raw = {s->r, s->w,  s->a, s->k,  p.w0,       p.a0, p.k_k,
                                 p.k_a, q.r_k, s->b, s->v, s->v_first, p.v0, s->tmp};
    const size_t scratch = scratch_floats(c, R);
    const bool chunked = cuda_wkv7_chunked_fits(rows, off, H, N, &raw, s->y, scratch);
    if (chunked) {
        if (cuda_wkv7_chunked(rows, off, H, N, &raw, s->y, s->xm, scratch, c->stream, &c->side) != cudaSuccess)
            return cuda_check("chunked WKV", err);
    } else {
        prepare_kernel<<<blocks, 256, 0, c->stream>>>(p, units, H, N);
        cuda_wkv7_state(rows, off, H, N, s->r, s->w, s->k, s->v, s->b, s->a, s->y, c->stream);
    }
    finish_kernel<<<blocks, 256, 0, c->stream>>>(s->y, s->r, s->k, s->v, s->g, q.r_k, q.lnx_w, q.lnx_b, units, H, N,
                                                 sh->gn_eps, q.y16, chunked ? raw.bonus : NULL);
    return infer_products(c, &o, 1, R, err);
}

static rwkv_status time_mix(rwkv_infer *c, int l, const infer_rows *rows, const work *s, rwkv_error *err) {
    const rwkv_infer_shape *sh = &c->sh;
    const int C = sh->n_embd, A = sh->dim_att, R = rows->n;
    const size_t rc = (size_t)R * C;
    const float *mu[N_MIX];
    static const int mix_slot[N_MIX] = {X_R, X_K, X_V, X_W, X_A, X_G}; /* by MIX_* */
    for (int i = 0; i < N_MIX; i++) mu[i] = infer_vec(c, l, mix_slot[i]);
    bf16 *m16 = (bf16 *)infer_mix16(c, R); /* a large bf16 pass: the mixes in bf16 for the GEMMs */
    infer_ln_shift(c, infer_vec(c, l, LN1_W), infer_vec(c, l, LN1_B), rows, (size_t)l * c->layer_state, SHIFT_LERP,
                   N_MIX, mu, s->xm, m16);
    cuda_gemv_op rkv[] = {{infer_w(c, l, ATT_R), A, C, s->xm + MIX_R * rc, C, s->r, 0, CUDA_ACT_NONE, NULL, NULL},
                          {infer_w(c, l, ATT_K), A, C, s->xm + MIX_K * rc, C, s->k, 0, CUDA_ACT_NONE, NULL, NULL},
                          {infer_w(c, l, ATT_V), A, C, s->xm + MIX_V * rc, C, s->v, 0, CUDA_ACT_NONE, NULL, NULL}};
    for (int i = 0; i < 3 && m16; i++) rkv[i].X16 = m16 + (MIX_R + i) * rc;
    const bool padded = c->derived && m16 && (size_t)R * N_LORA * lora_rank(sh) <= c->in16_floats;
    rwkv_status st = padded ? rkv_and_loras(c, l, R, rkv, m16, s, err) : rkv_and_loras_each(c, l, R, rkv, m16, s, err);
    return st == RWKV_OK ? wkv_and_output(c, l, rows, s, m16 != NULL, err) : st;
}

static rwkv_status block(rwkv_infer *c, int l, const infer_rows *rows, rwkv_error *err) {
    const work s = carve(c, rows->n);
    rwkv_status st = time_mix(c, l, rows, &s, err);
    if (st != RWKV_OK) return st;
    /* channel mix: relu²(W_k (z + dz x_k)) through W_v, no receptance */
    const infer_ffn_weights f = {infer_vec(c, l, LN2_W), infer_vec(c, l, LN2_B), {infer_vec(c, l, FFN_X_K), NULL},
                                 infer_w(c, l, FFN_K), infer_w(c, l, FFN_V), NULL};
    return infer_channel_mix(c, l, rows, SHIFT_LERP, &f, s.xm, s.h, NULL, NULL, err);
}

const infer_version rwkv7_infer_version = {N_SLOTS, weight, work_floats, block, ATT_R, 3, derive};
