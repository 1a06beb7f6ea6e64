/* RWKV-4 inference on one CUDA device (cuda/rwkv4_infer.h): the block of
 * docs/model.md §1.2 over chunks of up to CHUNK tokens, built from the
 * training kernels (layer norm, activations, cuBLASLt products) and the two
 * state-continuing kernels of token_shift.cu and wkv4.cu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/common.cuh"

extern "C" {
#include "core/error.h"
#include "cuda/rwkv4_infer.h"
}

enum { CHUNK = 128 }; /* tokens per pass: bounds the work buffers and the logits buffer */

/* Per-layer float32 vectors, in this order inside one buffer: rows of C,
 * except the decay and the bonus (A each); the mixes of one token shift are
 * consecutive rows, as cuda_token_shift_state reads them. */
enum { LN1_W, LN1_B, LN2_W, LN2_B, ATT_MIX /* k, v, r: 3 rows of C */, ATT_DECAY = ATT_MIX + 3, ATT_FIRST,
       FFN_MIX /* k, r */, VEC_ROWS = FFN_MIX + 2 };
/* Per-layer matrices. */
enum { ATT_K, ATT_V, ATT_R, ATT_O, FFN_K, FFN_R, FFN_V, N_MAT };

struct rwkv4_infer {
    rwkv4_infer_shape sh;
    cuda_dtype wt; /* storage of the matrices */
    cuda_blas *blas;
    cudaStream_t stream;
    float *vec;    /* [L][vec_floats] */
    void *mat[N_MAT];  /* [L][rows][cols] each, in wt */
    float *emb;        /* [V][C] */
    float *ln0, *ln_out; /* weight, bias: [2][C] */
    void *head;        /* [V][C] in wt */
    size_t weight_bytes;
    /* work buffers of one chunk */
    int *tok;
    float *x, *z, *mix, *k, *v, *r, *mean, *rstd, *logits;
    void *in16; /* bf16 copy of a product's input */
};

static int mat_rows(const rwkv4_infer_shape *s, int i) {
    const int rows[N_MAT] = {s->dim_att, s->dim_att, s->dim_att, s->n_embd, s->n_ffn, s->n_embd, s->n_embd};
    return rows[i];
}
static int mat_cols(const rwkv4_infer_shape *s, int i) {
    const int cols[N_MAT] = {s->n_embd, s->n_embd, s->n_embd, s->dim_att, s->n_embd, s->n_embd, s->n_ffn};
    return cols[i];
}
static size_t vec_floats(const rwkv4_infer_shape *s) { return 9 * (size_t)s->n_embd + 2 * (size_t)s->dim_att; }

static float *layer_vec(const rwkv4_infer *c, int l, int row) {
    const size_t C = (size_t)c->sh.n_embd, A = (size_t)c->sh.dim_att;
    const size_t at = row <= ATT_DECAY ? row * C : row == ATT_FIRST ? 7 * C + A : (size_t)(row - FFN_MIX + 7) * C + 2 * A;
    return c->vec + (size_t)l * vec_floats(&c->sh) + at;
}
static void *layer_mat(const rwkv4_infer *c, int l, int i) {
    const size_t n = (size_t)mat_rows(&c->sh, i) * mat_cols(&c->sh, i);
    return (char *)c->mat[i] + (size_t)l * n * cuda_dtype_size(c->wt);
}

/* Fetches `name` (n floats) into host scratch and uploads it to d (stored as t). */
static rwkv_status upload(rwkv4_infer *c, const char *name, size_t n, cuda_dtype t, void *d, float *host,
                          float *staging, rwkv4_infer_fetch fetch, void *fctx, rwkv_error *err) {
    rwkv_status s = fetch(fctx, name, host, n, err);
    if (s != RWKV_OK) return s;
    /* a copy from pageable memory may return before its DMA ends: wait for it
     * (the context's stream does not order itself after the default stream) */
    if ((s = cuda_upload(t == CUDA_F32 ? d : (void *)staging, host, n * sizeof(float), err)) == RWKV_OK)
        s = cuda_sync(0, name, err);
    if (s != RWKV_OK || t == CUDA_F32) return s;
    cuda_convert(t, d, CUDA_F32, staging, n, c->stream);
    return cuda_sync(c->stream, name, err);
}

static rwkv_status upload_layer(rwkv4_infer *c, int l, float *host, float *staging, rwkv4_infer_fetch fetch,
                                void *fctx, rwkv_error *err) {
    static const char *const vec_names[] = {"ln1.weight",     "ln1.bias",       "ln2.weight",    "ln2.bias",
                                            "att.time_mix_k", "att.time_mix_v", "att.time_mix_r", "att.time_decay",
                                            "att.time_first", "ffn.time_mix_k", "ffn.time_mix_r"};
    static const char *const mat_names[] = {"att.key.weight",  "att.value.weight",      "att.receptance.weight",
                                            "att.output.weight", "ffn.key.weight", "ffn.receptance.weight",
                                            "ffn.value.weight"};
    const int C = c->sh.n_embd, A = c->sh.dim_att;
    char name[96];
    rwkv_status s = RWKV_OK;
    for (int i = 0; i < VEC_ROWS && s == RWKV_OK; i++) {
        snprintf(name, sizeof name, "blocks.%d.%s", l, vec_names[i]);
        const int n = i == ATT_DECAY || i == ATT_FIRST ? A : C;
        s = upload(c, name, (size_t)n, CUDA_F32, layer_vec(c, l, i), host, staging, fetch, fctx, err);
    }
    for (int i = 0; i < N_MAT && s == RWKV_OK; i++) {
        snprintf(name, sizeof name, "blocks.%d.%s", l, mat_names[i]);
        const size_t n = (size_t)mat_rows(&c->sh, i) * mat_cols(&c->sh, i);
        s = upload(c, name, n, c->wt, layer_mat(c, l, i), host, staging, fetch, fctx, err);
    }
    return s;
}

static rwkv_status upload_all(rwkv4_infer *c, rwkv4_infer_fetch fetch, void *fctx, rwkv_error *err) {
    const rwkv4_infer_shape *sh = &c->sh;
    const size_t C = (size_t)sh->n_embd, largest = (size_t)sh->n_vocab * C;
    size_t biggest = largest;
    for (int i = 0; i < N_MAT; i++) {
        const size_t n = (size_t)mat_rows(sh, i) * mat_cols(sh, i);
        if (n > biggest) biggest = n;
    }
    float *host = (float *)malloc(biggest * sizeof(float)), *staging = NULL;
    if (!host) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for the weight upload");
    rwkv_status s = c->wt == CUDA_F32 ? RWKV_OK : cuda_alloc((void **)&staging, biggest * 4, "upload staging", err);
    if (s == RWKV_OK) s = upload(c, "emb.weight", largest, CUDA_F32, c->emb, host, staging, fetch, fctx, err);
    if (s == RWKV_OK) s = upload(c, "head.weight", largest, c->wt, c->head, host, staging, fetch, fctx, err);
    const char *const glob[] = {"blocks.0.ln0.weight", "blocks.0.ln0.bias", "ln_out.weight", "ln_out.bias"};
    float *const gdst[] = {c->ln0, c->ln0 + C, c->ln_out, c->ln_out + C};
    for (int i = 0; i < 4 && s == RWKV_OK; i++) s = upload(c, glob[i], C, CUDA_F32, gdst[i], host, staging, fetch, fctx, err);
    for (int l = 0; l < sh->n_layer && s == RWKV_OK; l++) s = upload_layer(c, l, host, staging, fetch, fctx, err);
    free(host);
    cuda_free(staging);
    return s;
}

/* Every device buffer; sizes in elements. */
static rwkv_status alloc_all(rwkv4_infer *c, rwkv_error *err) {
    const rwkv4_infer_shape *sh = &c->sh;
    const size_t C = (size_t)sh->n_embd, V = (size_t)sh->n_vocab, L = (size_t)sh->n_layer, T = CHUNK;
    size_t wide = C > (size_t)sh->dim_att ? C : (size_t)sh->dim_att;
    if ((size_t)sh->n_ffn > wide) wide = (size_t)sh->n_ffn;
    const size_t ws = cuda_dtype_size(c->wt);
    rwkv_status s = cuda_alloc((void **)&c->vec, L * vec_floats(sh) * 4, "weights", err);
    for (int i = 0; i < N_MAT && s == RWKV_OK; i++)
        s = cuda_alloc(&c->mat[i], L * mat_rows(sh, i) * mat_cols(sh, i) * ws, "weights", err);
    if (s == RWKV_OK) s = cuda_alloc((void **)&c->emb, V * C * 4, "embedding", err);
    if (s == RWKV_OK) s = cuda_alloc(&c->head, V * C * ws, "head", err);
    if (s == RWKV_OK) s = cuda_alloc((void **)&c->ln0, 2 * C * 4, "weights", err);
    if (s == RWKV_OK) s = cuda_alloc((void **)&c->ln_out, 2 * C * 4, "weights", err);
    c->weight_bytes = (L * vec_floats(sh) + V * C + 4 * C) * 4 + V * C * ws;
    for (int i = 0; i < N_MAT; i++) c->weight_bytes += L * mat_rows(sh, i) * mat_cols(sh, i) * ws;
    float **const bufs[] = {&c->x, &c->z, &c->mix, &c->k, &c->v, &c->r, &c->mean, &c->rstd, &c->logits};
    const size_t sizes[] = {T * C, T * C, 3 * T * C, T * wide, T * wide, T * wide, T, T, T * V};
    for (int i = 0; i < 9 && s == RWKV_OK; i++) s = cuda_alloc((void **)bufs[i], sizes[i] * 4, "work buffers", err);
    if (s == RWKV_OK) s = cuda_alloc((void **)&c->tok, T * sizeof(int), "tokens", err);
    if (s == RWKV_OK && c->wt != CUDA_F32) s = cuda_alloc(&c->in16, 3 * T * wide * 2, "work buffers", err);
    return s;
}

extern "C" rwkv_status rwkv4_infer_new(const rwkv4_infer_shape *shape, int bf16, int device, rwkv4_infer_fetch fetch,
                                       void *fetch_ctx, rwkv4_infer **out, rwkv_error *err) {
    *out = NULL;
    if (device < 0 || device >= cuda_device_count())
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "CUDA device %d does not exist (%d found)", device,
                         cuda_device_count());
    if (cudaSetDevice(device) != cudaSuccess) return cuda_check("cudaSetDevice", err);
    rwkv4_infer *c = (rwkv4_infer *)calloc(1, sizeof *c);
    if (!c) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    c->sh = *shape;
    c->wt = bf16 ? CUDA_BF16 : CUDA_F32;
    rwkv_status s = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) == cudaSuccess
                        ? RWKV_OK
                        : cuda_check("cudaStreamCreate", err);
    if (s == RWKV_OK) s = cuda_blas_new(&c->blas, err);
    if (s == RWKV_OK) s = alloc_all(c, err);
    if (s == RWKV_OK) s = upload_all(c, fetch, fetch_ctx, err);
    if (s != RWKV_OK) {
        rwkv4_infer_free(c);
        return s;
    }
    *out = c;
    return RWKV_OK;
}

extern "C" void rwkv4_infer_free(rwkv4_infer *c) {
    if (!c) return;
    if (c->stream) cudaStreamSynchronize(c->stream);
    void *const bufs[] = {c->vec, c->emb, c->head, c->ln0, c->ln_out, c->tok, c->x, c->z, c->mix, c->k,
                          c->v, c->r, c->mean, c->rstd, c->logits, c->in16};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cuda_free(bufs[i]);
    for (int i = 0; i < N_MAT; i++) cuda_free(c->mat[i]);
    cuda_blas_free(c->blas);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

extern "C" size_t rwkv4_infer_weight_bytes(const rwkv4_infer *c) { return c->weight_bytes; }

/* Y[T][out] = X[T][in] Wᵀ (+ Y when accumulate: the residual), float32
 * output; in bf16 X is rounded to bf16 first. */
static rwkv_status linear(rwkv4_infer *c, const void *W, int out, int in, const float *X, int T, float *Y,
                          int accumulate, rwkv_error *err) {
    const void *B = X;
    if (c->wt != CUDA_F32) {
        cuda_convert(c->wt, c->in16, CUDA_F32, X, (size_t)T * in, c->stream);
        B = c->in16;
    }
    cuda_gemm g;
    memset(&g, 0, sizeof g);
    g.ab = c->wt, g.cd = CUDA_F32, g.trans_a = 1, g.m = out, g.n = T, g.k = in;
    g.A = W, g.lda = in, g.B = B, g.ldb = in;
    g.C = accumulate ? Y : NULL, g.D = Y, g.ldc = out;
    g.batch = 1, g.alpha = 1.0f, g.beta = accumulate ? 1.0f : 0.0f;
    return cuda_matmul(c->blas, &g, c->stream, err);
}

/* One block over T tokens of the residual stream c->x; st = the layer's state. */
static rwkv_status block(rwkv4_infer *c, int l, float *st, int T, rwkv_error *err) {
    const int C = c->sh.n_embd, A = c->sh.dim_att, F = c->sh.n_ffn;
    const size_t TC = (size_t)T * C;
    float *att_xx = st, *aa = st + C, *bb = aa + A, *pp = bb + A, *ffn_xx = pp + A;
    cudaStream_t s = c->stream;
    /* time mixing */
    cuda_layernorm_forward(CUDA_F32, c->x, layer_vec(c, l, LN1_W), layer_vec(c, l, LN1_B), T, C, c->z, c->mean,
                           c->rstd, s);
    cuda_token_shift_state(c->z, att_xx, layer_vec(c, l, ATT_MIX), 3, T, C, c->mix, s);
    rwkv_status r = linear(c, layer_mat(c, l, ATT_K), A, C, c->mix, T, c->k, 0, err);
    if (r == RWKV_OK) r = linear(c, layer_mat(c, l, ATT_V), A, C, c->mix + TC, T, c->v, 0, err);
    if (r == RWKV_OK) r = linear(c, layer_mat(c, l, ATT_R), A, C, c->mix + 2 * TC, T, c->r, 0, err);
    if (r != RWKV_OK) return r;
    cuda_wkv_forward_state(T, A, layer_vec(c, l, ATT_DECAY), layer_vec(c, l, ATT_FIRST), c->k, c->v, aa, bb, pp,
                           c->k, s); /* y over k: each step reads k[t] before writing y[t] */
    cuda_gate_forward(CUDA_F32, c->r, c->k, c->k, (size_t)T * A, s);
    if ((r = linear(c, layer_mat(c, l, ATT_O), C, A, c->k, T, c->x, 1, err)) != RWKV_OK) return r;
    /* channel mixing */
    cuda_layernorm_forward(CUDA_F32, c->x, layer_vec(c, l, LN2_W), layer_vec(c, l, LN2_B), T, C, c->z, c->mean,
                           c->rstd, s);
    cuda_token_shift_state(c->z, ffn_xx, layer_vec(c, l, FFN_MIX), 2, T, C, c->mix, s);
    if ((r = linear(c, layer_mat(c, l, FFN_K), F, C, c->mix, T, c->k, 0, err)) != RWKV_OK) return r;
    cuda_relu2_forward(CUDA_F32, c->k, c->k, (size_t)T * F, s);
    if ((r = linear(c, layer_mat(c, l, FFN_R), C, C, c->mix + TC, T, c->r, 0, err)) != RWKV_OK) return r;
    if ((r = linear(c, layer_mat(c, l, FFN_V), C, F, c->k, T, c->v, 0, err)) != RWKV_OK) return r;
    cuda_gate_residual_forward(CUDA_F32, c->x, c->r, c->v, c->x, TC, s);
    return RWKV_OK;
}

/* One chunk of T tokens; logits of its last `rows` tokens to host `logits` (NULL: none). */
static rwkv_status chunk(rwkv4_infer *c, float *d_state, const int *tokens, int T, float *logits, int rows,
                         rwkv_error *err) {
    const int C = c->sh.n_embd, A = c->sh.dim_att, V = c->sh.n_vocab;
    const size_t layer_state = 2 * (size_t)C + 3 * (size_t)A;
    if (cudaMemcpyAsync(c->tok, tokens, sizeof(int) * T, cudaMemcpyHostToDevice, c->stream) != cudaSuccess)
        return cuda_check("token upload", err);
    cuda_embedding_forward(CUDA_F32, c->emb, c->tok, T, C, c->z, c->stream);
    cuda_layernorm_forward(CUDA_F32, c->z, c->ln0, c->ln0 + C, T, C, c->x, c->mean, c->rstd, c->stream);
    rwkv_status s = RWKV_OK;
    for (int l = 0; l < c->sh.n_layer && s == RWKV_OK; l++) s = block(c, l, d_state + l * layer_state, T, err);
    if (s != RWKV_OK || !logits) return s == RWKV_OK ? cuda_sync(c->stream, "rwkv4 forward", err) : s;
    const float *last = c->x + (size_t)(T - rows) * C;
    cuda_layernorm_forward(CUDA_F32, last, c->ln_out, c->ln_out + C, rows, C, c->z, c->mean, c->rstd, c->stream);
    if ((s = linear(c, c->head, V, C, c->z, rows, c->logits, 0, err)) != RWKV_OK) return s;
    if (cudaMemcpyAsync(logits, c->logits, sizeof(float) * rows * V, cudaMemcpyDeviceToHost, c->stream) != cudaSuccess)
        return cuda_check("logits download", err);
    return cuda_sync(c->stream, "rwkv4 forward", err);
}

extern "C" rwkv_status rwkv4_infer_eval(rwkv4_infer *c, float *d_state, const int *tokens, size_t n, float *logits,
                                        int all_logits, rwkv_error *err) {
    const size_t V = (size_t)c->sh.n_vocab;
    for (size_t done = 0; done < n; done += CHUNK) {
        const int T = n - done < CHUNK ? (int)(n - done) : CHUNK;
        float *out = NULL;
        int rows = 0;
        if (logits && all_logits) out = logits + done * V, rows = T;
        else if (logits && done + T == n) out = logits, rows = 1;
        rwkv_status s = chunk(c, d_state, tokens + done, T, out, rows, err);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}

extern "C" rwkv_status rwkv4_infer_sync(rwkv4_infer *c, rwkv_error *err) {
    return cuda_sync(c->stream, "rwkv4 inference", err);
}
