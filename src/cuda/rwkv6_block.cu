/* The RWKV-6 block of GPU inference (model/rwkv6.c on the device): layer
 * norm, the data-dependent token shift (a LoRA correction of each of the five
 * mixes), the data-dependent decay, r/k/v/g products, the RWKV-5/6 WKV
 * continuing the state, GroupNorm ⊙ silu(g), the output product into the
 * residual stream, then the gated relu² channel mix. */
#include "cuda/rwkv_infer.cuh"

/* The mixes in the order of time_maa_w1's column blocks (model/rwkv6.c). */
enum { MIX_W, MIX_K, MIX_V, MIX_R, MIX_G, N_MIX };
static_assert((int)N_MIX < (int)SHIFT_MAX_MIX, "a bf16 mix slot left for ddlerp's first mix");
/* k, v, r, g side by side: the order of their products (one strided batch in a large pass) */
enum { LN1_W, LN1_B, LN2_W, LN2_B, MAA_X, MAA_W, MAA_K, MAA_V, MAA_R, MAA_G, MAA_W1, MAA_W2, DECAY, DECAY_W1,
       DECAY_W2, BONUS, ATT_K, ATT_V, ATT_R, ATT_G, ATT_O, LNX_W, LNX_B, FFN_MAA_K, FFN_MAA_R, FFN_K, FFN_R, FFN_V,
       N_SLOTS };

static int weight(const rwkv_infer_shape *sh, int l, int slot, infer_weight *out) {
    (void)l;
    const int C = sh->n_embd, A = sh->dim_att, Dm = sh->lora[0], Dd = sh->lora[1];
    static const char *const names[N_SLOTS] = {
        "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "att.time_maa_x", "att.time_maa_w", "att.time_maa_k",
        "att.time_maa_v", "att.time_maa_r", "att.time_maa_g", "att.time_maa_w1", "att.time_maa_w2",
        "att.time_decay", "att.time_decay_w1", "att.time_decay_w2", "att.time_faaaa", "att.key.weight",
        "att.value.weight", "att.receptance.weight", "att.gate.weight", "att.output.weight", "att.ln_x.weight",
        "att.ln_x.bias", "ffn.time_maa_k", "ffn.time_maa_r", "ffn.key.weight", "ffn.receptance.weight",
        "ffn.value.weight"};
    infer_weight w = {names[slot], W_VEC, slot <= MAA_G || slot >= FFN_MAA_K ? C : A, 1, 1};
    switch (slot) {
    case MAA_W1: w = {names[slot], W_LORA, N_MIX * Dm, C, 1}; break;
    case MAA_W2: w = {names[slot], W_LORA, C, Dm, N_MIX}; break;
    case DECAY_W1: w = {names[slot], W_LORA, Dd, C, 1}; break;
    case DECAY_W2: w = {names[slot], W_LORA, A, Dd, 1}; break;
    default: break;
    }
    *out = w;
    return 1;
}

static size_t work_floats(const rwkv_infer_shape *sh, int rows) {
    const size_t h = (size_t)(sh->n_ffn > sh->lora[1] ? sh->n_ffn : sh->lora[1]);
    return (size_t)rows * ((1 + N_MIX) * (size_t)sh->n_embd + 7 * infer_wide(sh) + N_MIX * (size_t)sh->lora[0] + h);
}

typedef struct work {
    float *dz, *xm;                 /* [rows][C], [N_MIX][rows][C] */
    float *k, *v, *r, *g, *wd, *y, *tmp; /* [rows][max(C, A)]; k, v, r, g in their products' order */
    float *lora, *h;                /* [rows][5 Dm], [rows][max(F, Dd)] */
} work;

/* dz and the mixes lie side by side: both are dead while the WKV runs, so
 * the chunked form takes them together as its scratch (scratch_floats). */
static work carve(const rwkv_infer *c, int rows) {
    const size_t rc = (size_t)rows * c->sh.n_embd, rw = (size_t)rows * infer_wide(&c->sh);
    work s;
    float *p = c->work;
    s.dz = p, p += rc;
    s.xm = p, p += N_MIX * rc;
    float **as[] = {&s.k, &s.v, &s.r, &s.g, &s.wd, &s.y, &s.tmp};
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) *as[i] = p, p += rw;
    s.lora = p, p += (size_t)rows * N_MIX * c->sh.lora[0];
    s.h = p;
    return s;
}

static size_t scratch_floats(const rwkv_infer *c, int rows) {
    return (size_t)rows * (1 + N_MIX) * (size_t)c->sh.n_embd;
}

/* The mixes of one launch: out[m] = z + dz ⊙ (mu[m] + add[m]) per row (add[m]
 * NULL: mu[m] alone), rows of C; in bf16 into out16[m] instead when that is
 * set (the input of a bf16 GEMM, the only reader: the float32 copy cost a
 * third of the launch's bytes). */
typedef struct lerp_set {
    const float *mu[N_MIX], *add[N_MIX];
    float *out[N_MIX];
    bf16 *out16[N_MIX];
    int n;
} lerp_set;

/* Launched early: the thread's first channel's mixes are loaded before the
 * wait (a decode row is one channel a thread, and its weights come from
 * memory, not the cache, by the time a token reaches the layer). */
__global__ void ddlerp_kernel(const float *z, const float *dz, lerp_set s, int C, size_t n) {
    cuda_let_dependents_start();
    const size_t first = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    float mu_first[N_MIX];
#pragma unroll
    for (int m = 0; m < N_MIX; m++) mu_first[m] = m < s.n && first < n ? s.mu[m][first % C] : 0.0f;
    cuda_wait_for_prior_grids();
    for (size_t i = first; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float zi = z[i], dzi = dz[i];
#pragma unroll
        for (int m = 0; m < N_MIX; m++) {
            if (m >= s.n) break;
            const float v = zi + dzi * ((i == first ? mu_first[m] : s.mu[m][i % C]) + (s.add[m] ? s.add[m][i] : 0.0f));
            if (s.out16[m]) s.out16[m][i] = __float2bfloat16(v);
            else s.out[m][i] = v;
        }
    }
}

/* w = exp(-exp(decay + w)) per row, rows of A; launched early as above. */
__global__ void decay_kernel(const float *decay, float *w, int A, size_t n) {
    cuda_let_dependents_start();
    const size_t first = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    const float decay_first = first < n ? decay[first % A] : 0.0f;
    cuda_wait_for_prior_grids();
    for (size_t i = first; i < n; i += (size_t)gridDim.x * blockDim.x)
        w[i] = expf(-expf((i == first ? decay_first : decay[i % A]) + w[i]));
}

static unsigned grid_of(size_t n) { return cuda_blocks(n, 256) < 2048 ? cuda_blocks(n, 256) : 2048; }

/* x_c = z + dz (maa_c + tanh((z + dz maa_x) @ maa_w1)[c] @ maa_w2[c]): the
 * five second-factor products land in xm, which the lerp then updates in place */
static rwkv_status ddlerp(rwkv_infer *c, int l, int R, const work *s, rwkv_error *err) {
    const int C = c->sh.n_embd, Dm = c->sh.lora[0];
    const size_t rc = (size_t)R * C;
    /* a large bf16 pass: every mix in bf16 only, for the GEMMs that read them
     * (x's in the sixth slot, which the five mixes leave free) */
    bf16 *m16 = (bf16 *)infer_mix16(c, R), *x16 = m16 ? m16 + N_MIX * rc : NULL;
    lerp_set x = {{infer_vec(c, l, MAA_X)}, {NULL}, {s->tmp}, {x16}, 1};
    cuda_launch_early(ddlerp_kernel, dim3(grid_of(rc)), dim3(256), 0, c->stream, (const float *)c->z,
                      (const float *)s->dz, x, C, rc);
    /* and the LoRA's hiddens in bf16 (c->in16): the five second factors then
     * read them as they are, one strided batch, with no conversion of each */
    bf16 *h16 = m16 && (size_t)R * N_MIX * Dm <= c->in16_floats ? (bf16 *)c->in16 : NULL;
    const cuda_gemv_op first = {infer_w(c, l, MAA_W1), N_MIX * Dm, C, s->tmp, C, s->lora, 0, CUDA_ACT_TANH, x16, h16};
    rwkv_status st = infer_products(c, &first, 1, R, err);
    if (st != RWKV_OK) return st;
    cuda_gemv_op ops[N_MIX];
    for (int m = 0; m < N_MIX; m++) {
        ops[m] = {infer_matrix(c, l, MAA_W2, m, C, Dm), C, Dm, s->lora + (size_t)m * Dm, N_MIX * Dm, s->xm + m * rc, 0, CUDA_ACT_NONE, h16 ? h16 + (size_t)m * Dm : NULL, NULL};
    }
    if ((st = infer_products(c, ops, N_MIX, R, err)) != RWKV_OK) return st;
    lerp_set mixes;
    for (int m = 0; m < N_MIX; m++) {
        mixes.mu[m] = infer_vec(c, l, MAA_W + m), mixes.add[m] = mixes.out[m] = s->xm + m * rc;
        mixes.out16[m] = m16 ? m16 + m * rc : NULL;
    }
    mixes.n = N_MIX;
    cuda_launch_early(ddlerp_kernel, dim3(grid_of(rc)), dim3(256), 0, c->stream, (const float *)c->z,
                      (const float *)s->dz, mixes, C, rc);
    return RWKV_OK;
}

static rwkv_status time_mix(rwkv_infer *c, int l, const infer_rows *rows, const work *s, rwkv_error *err) {
    const rwkv_infer_shape *sh = &c->sh;
    const int C = sh->n_embd, A = sh->dim_att, Dd = sh->lora[1], R = rows->n;
    const size_t rc = (size_t)R * C, off = (size_t)l * c->layer_state;
    infer_ln_shift(c, infer_vec(c, l, LN1_W), infer_vec(c, l, LN1_B), rows, off, SHIFT_DELTA, 1, NULL, s->dz, NULL);
    rwkv_status st = ddlerp(c, l, R, s, err);
    if (st != RWKV_OK) return st;
    /* r, k, v, g, and w = exp(-exp(time_decay + tanh(x_w @ decay_w1) @ decay_w2)) */
    const float *xm = s->xm;
    const bf16 *m16 = (const bf16 *)infer_mix16(c, R); /* ddlerp's bf16 mixes in a large bf16 pass */
    cuda_gemv_op ops[] = {{infer_w(c, l, DECAY_W1), Dd, C, xm + MIX_W * rc, C, s->h, 0, CUDA_ACT_TANH, NULL, NULL},
                          {infer_w(c, l, ATT_K), A, C, xm + MIX_K * rc, C, s->k, 0, CUDA_ACT_NONE, NULL, NULL},
                          {infer_w(c, l, ATT_V), A, C, xm + MIX_V * rc, C, s->v, 0, CUDA_ACT_NONE, NULL, NULL},
                          {infer_w(c, l, ATT_R), A, C, xm + MIX_R * rc, C, s->r, 0, CUDA_ACT_NONE, NULL, NULL},
                          {infer_w(c, l, ATT_G), A, C, xm + MIX_G * rc, C, s->g, 0, CUDA_ACT_NONE, NULL, NULL}};
    const int mix_of[] = {MIX_W, MIX_K, MIX_V, MIX_R, MIX_G};
    for (int i = 0; i < 5 && m16; i++) ops[i].X16 = m16 + mix_of[i] * rc;
    /* the decay's hidden in bf16 too, where it fits c->in16 (ddlerp's is used up) */
    bf16 *h16 = m16 && (size_t)R * Dd <= c->in16_floats ? (bf16 *)c->in16 : NULL;
    ops[0].Y16 = h16;
    if ((st = infer_products(c, ops, 5, R, err)) != RWKV_OK) return st;
    const cuda_gemv_op decay = {infer_w(c, l, DECAY_W2), A, Dd, s->h, Dd, s->wd, 0, CUDA_ACT_NONE, h16, NULL};
    if ((st = infer_products(c, &decay, 1, R, err)) != RWKV_OK) return st;
    /* a long stream in chunks, which take the decay's LoRA output as it is
     * (the mixes' and dz's memory, used up by then, holds their matrices) */
    const int H = sh->n_head, N = sh->head_size;
    const wkv5_chunk_inputs in = {s->r, s->k, s->wd, (size_t)A, infer_vec(c, l, DECAY), infer_vec(c, l, BONUS)};
    const size_t scratch = scratch_floats(c, R);
    if (cuda_wkv5_chunked_fits(rows, off + C, H, N, &in, s->v, s->y, scratch)) {
        if (cuda_wkv5_chunked(rows, off + C, H, N, &in, s->v, s->y, s->dz, scratch, c->stream, &c->side) != cudaSuccess)
            return cuda_check("chunked WKV", err);
    } else {
        cuda_launch_early(decay_kernel, dim3(grid_of((size_t)R * A)), dim3(256), 0, c->stream, in.decay, s->wd, A,
                          (size_t)R * A);
        cuda_wkv5_state(rows, off + C, H, N, s->r, s->k, s->v, s->wd, (size_t)A, in.u, s->y, c->stream);
    }
    infer_group_norm_gate(c, s->y, s->g, infer_vec(c, l, LNX_W), infer_vec(c, l, LNX_B), R);
    return infer_linear(c, infer_w(c, l, ATT_O), C, A, s->y, A, R, c->x, 1, err);
}

static rwkv_status block(rwkv_infer *c, int l, const infer_rows *rows, rwkv_error *err) {
    const work s = carve(c, rows->n);
    rwkv_status st = time_mix(c, l, rows, &s, err);
    if (st != RWKV_OK) return st;
    const infer_ffn_weights f = {infer_vec(c, l, LN2_W), infer_vec(c, l, LN2_B),
                                 {infer_vec(c, l, FFN_MAA_K), infer_vec(c, l, FFN_MAA_R)},
                                 infer_w(c, l, FFN_K), infer_w(c, l, FFN_V), infer_w(c, l, FFN_R)};
    return infer_channel_mix(c, l, rows, SHIFT_LERP, &f, s.xm, s.h, s.v, s.r, err);
}

const infer_version rwkv6_infer_version = {N_SLOTS, weight, work_floats, block, ATT_K, 4, NULL};
