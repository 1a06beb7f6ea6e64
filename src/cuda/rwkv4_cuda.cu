/* RWKV-4 training on the device (cuda_backend.h): the forward of
 * docs/model.md §1.2 with saved activations and its backward,
 * layer by layer the same sequence as train/rwkv4_grad.c, on the kernels of
 * cuda_ops.h; the optimizer over the flat buffers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/common.cuh"

extern "C" {
#include "cuda/cuda_backend.h"
#include "core/error.h"
}

/* Offsets (floats) of one block's parameters in the flat buffers. */
typedef struct block_off {
    size_t ln1_w, ln1_b, ln2_w, ln2_b, time_decay, time_first, att_mix, att_kvr, att_o;
    size_t ffn_mix, ffn_k, ffn_r, ffn_v;
} block_off;

/* Saved activations of one block (storage type of the context). */
typedef struct block_act {
    void *x_in, *z1, *kvr, *y, *x_mid, *z2, *kf, *h, *vf, *rf;
    float *mean1, *rstd1, *mean2, *rstd2;
} block_act;

enum { EVENT_PAIRS = 4096 };
/* What the step's device time is split into (rwkv4_cuda_timing). */
typedef enum { KIND_GEMM, KIND_WKV, KIND_NORM, KIND_SHIFT, KIND_ELEM, KIND_LOSS } op_kind;

struct rwkv4_cuda {
    int V, C, L, F, A, B, T, N, Vp;
    int Vh;        /* rows of the head as multiplied: Vp when zero rows can follow it, else V */
    size_t pad;    /* those zero rows' floats after the last parameter */
    cuda_dtype act;
    size_t total; /* parameters */
    param_layout layout;
    size_t emb, ln0_w, ln0_b, ln_out_w, ln_out_b, head;
    block_off *blk;
    block_act *acts;
    cudaStream_t stream;
    cuda_blas *blas;
    /* device */
    void *arena;
    size_t arena_bytes;
    float *params, *grads, *m, *v;
    bf16 *params16;
    void *emb_out, *x_out, *z_out, *logits;
    float *mean0, *rstd0, *mean_out, *rstd_out;
    void *mix, *dmix, *gc2, *gx, *gz, *sf, *sa, *gkvr;
    float *wkv_s, *wkv_q, *wkv_chunk, *partial, *row_loss, *loss;
    double *rowsum, *norm, *norm_partial;
    int *tok_dev; /* inputs, targets, order, seg, seg_tok: 5 x (N + 1) */
    cuda_adam_span *spans;
    int *block_span;
    /* host */
    int *tok_host; /* pinned, the same 5 arrays */
    int *count;    /* [V] scratch of the embedding plan */
    int n_seg;
    cudaEvent_t upload_done;
    cuda_adam_span *spans_host; /* spans of the last Adam step's groups */
    int n_spans, n_adam_blocks;
    /* data parallel: the parameter buffer's size and the moments' range */
    size_t param_cap, m_lo, m_n;
    rwkv4_cuda_grad_hook hook;
    void *hook_user;
    size_t *final_from; /* [L + 2]: per backward stage, where the final gradients start (SIZE_MAX: not a suffix) */
    /* timing */
    int timing;
    cudaEvent_t ev[2 * EVENT_PAIRS], ev_start, ev_end;
    op_kind ev_kind[EVENT_PAIRS];
    int n_ev;
};

#define CU(call, what)                                                                             \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            cudaGetLastError();                                                                    \
            return rwkv_fail(err, e_ == cudaErrorMemoryAllocation ? RWKV_ERR_NOMEM : RWKV_ERR_IO,  \
                             "%s: CUDA error %s", what, cudaGetErrorString(e_));                   \
        }                                                                                          \
    } while (0)

rwkv_status rwkv4_cuda_available(rwkv_error *err) {
    if (cuda_device_count() <= 0) return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "no CUDA device");
    return RWKV_OK;
}

/* ---- context ------------------------------------------------------------ */

static size_t find_off(const param_layout *lay, const char *name, int *missing) {
    const param_info *p = param_layout_find(lay, name);
    if (!p) {
        *missing = 1;
        return 0;
    }
    return p->offset;
}

static size_t blk_off(const param_layout *lay, int l, const char *suffix, int *missing) {
    char name[64];
    snprintf(name, sizeof name, "blocks.%d.%s", l, suffix);
    return find_off(lay, name, missing);
}

/* Offsets of every parameter; the k, v, r matrices (and the three time-mix
 * vectors, and the two of channel mixing) must be adjacent in the layout, as
 * the official order has them, because they are used as one batch. */
static int read_offsets(rwkv4_cuda *c) {
    const param_layout *lay = &c->layout;
    int missing = 0;
    c->emb = find_off(lay, "emb.weight", &missing);
    c->ln0_w = blk_off(lay, 0, "ln0.weight", &missing);
    c->ln0_b = blk_off(lay, 0, "ln0.bias", &missing);
    c->ln_out_w = find_off(lay, "ln_out.weight", &missing);
    c->ln_out_b = find_off(lay, "ln_out.bias", &missing);
    c->head = find_off(lay, "head.weight", &missing);
    const size_t AC = (size_t)c->A * c->C, C = (size_t)c->C;
    for (int l = 0; l < c->L; l++) {
        block_off *o = &c->blk[l];
        o->ln1_w = blk_off(lay, l, "ln1.weight", &missing);
        o->ln1_b = blk_off(lay, l, "ln1.bias", &missing);
        o->ln2_w = blk_off(lay, l, "ln2.weight", &missing);
        o->ln2_b = blk_off(lay, l, "ln2.bias", &missing);
        o->time_decay = blk_off(lay, l, "att.time_decay", &missing);
        o->time_first = blk_off(lay, l, "att.time_first", &missing);
        o->att_mix = blk_off(lay, l, "att.time_mix_k", &missing);
        missing |= blk_off(lay, l, "att.time_mix_v", &missing) != o->att_mix + C;
        missing |= blk_off(lay, l, "att.time_mix_r", &missing) != o->att_mix + 2 * C;
        o->att_kvr = blk_off(lay, l, "att.key.weight", &missing);
        missing |= blk_off(lay, l, "att.value.weight", &missing) != o->att_kvr + AC;
        missing |= blk_off(lay, l, "att.receptance.weight", &missing) != o->att_kvr + 2 * AC;
        o->att_o = blk_off(lay, l, "att.output.weight", &missing);
        o->ffn_mix = blk_off(lay, l, "ffn.time_mix_k", &missing);
        missing |= blk_off(lay, l, "ffn.time_mix_r", &missing) != o->ffn_mix + C;
        o->ffn_k = blk_off(lay, l, "ffn.key.weight", &missing);
        o->ffn_r = blk_off(lay, l, "ffn.receptance.weight", &missing);
        o->ffn_v = blk_off(lay, l, "ffn.value.weight", &missing);
    }
    return !missing;
}

/* Carves the device arena: with base NULL only counts the bytes. */
static size_t carve(rwkv4_cuda *c, char *base) {
    size_t off = 0;
    const size_t es = cuda_dtype_size(c->act);
    const size_t N = (size_t)c->N, C = (size_t)c->C, A = (size_t)c->A, F = (size_t)c->F;
    const size_t P = c->total + c->pad, colsum_w = C > A ? C : A;
#define TAKE(ptr, type, bytes)                                                                     \
    do {                                                                                           \
        ptr = (type)(base ? base + off : NULL);                                                    \
        off += ((size_t)(bytes) + 255) & ~(size_t)255;                                             \
    } while (0)
    TAKE(c->params, float *, (P > c->param_cap ? P : c->param_cap) * 4);
    TAKE(c->grads, float *, P * 4);
    TAKE(c->m, float *, c->m_n * 4);
    TAKE(c->v, float *, c->m_n * 4);
    if (c->act == CUDA_BF16) TAKE(c->params16, bf16 *, P * 2);
    for (int l = 0; l < c->L; l++) {
        block_act *a = &c->acts[l];
        TAKE(a->x_in, void *, N * C * es);
        TAKE(a->z1, void *, N * C * es);
        TAKE(a->kvr, void *, 3 * N * A * es);
        TAKE(a->y, void *, N * A * es);
        TAKE(a->x_mid, void *, N * C * es);
        TAKE(a->z2, void *, N * C * es);
        TAKE(a->kf, void *, N * F * es);
        TAKE(a->h, void *, N * F * es);
        TAKE(a->vf, void *, N * C * es);
        TAKE(a->rf, void *, N * C * es);
        TAKE(a->mean1, float *, N * 4);
        TAKE(a->rstd1, float *, N * 4);
        TAKE(a->mean2, float *, N * 4);
        TAKE(a->rstd2, float *, N * 4);
    }
    TAKE(c->emb_out, void *, N * C * es);
    TAKE(c->x_out, void *, N * C * es);
    TAKE(c->z_out, void *, N * C * es);
    TAKE(c->logits, void *, N * (size_t)c->Vp * es);
    TAKE(c->mean0, float *, N * 4);
    TAKE(c->rstd0, float *, N * 4);
    TAKE(c->mean_out, float *, N * 4);
    TAKE(c->rstd_out, float *, N * 4);
    TAKE(c->mix, void *, 3 * N * C * es);
    TAKE(c->dmix, void *, 3 * N * C * es);
    TAKE(c->gc2, void *, 2 * N * C * es);
    TAKE(c->gx, void *, N * C * es);
    TAKE(c->gz, void *, N * C * es);
    TAKE(c->sf, void *, N * F * es);
    TAKE(c->sa, void *, N * A * es);
    TAKE(c->gkvr, void *, 3 * N * A * es);
    TAKE(c->wkv_s, float *, N * A * 4);
    TAKE(c->wkv_q, float *, N * A * 4);
    TAKE(c->partial, float *, cuda_colsum_scratch((int)colsum_w, 3) * 4);
    TAKE(c->row_loss, float *, N * 4);
    TAKE(c->loss, float *, 4);
    size_t wkv_floats, wkv_doubles;
    cuda_wkv_scratch(c->B, c->T, c->A, &wkv_floats, &wkv_doubles);
    TAKE(c->wkv_chunk, float *, wkv_floats * 4);
    TAKE(c->rowsum, double *, wkv_doubles * 8);
    TAKE(c->norm, double *, 8);
    TAKE(c->norm_partial, double *, cuda_norm_scratch(P) * 8);
    TAKE(c->tok_dev, int *, 5 * (N + 1) * 4);
#undef TAKE
    return off;
}

/* The backward stage in which a parameter's gradient becomes final: 0 for
 * the head and ln_out, L - l for block l (its ln0 and the embedding: L + 1,
 * after the last block). */
static int grad_stage(const char *name, int L) {
    int l;
    if (strncmp(name, "blocks.", 7) == 0 && sscanf(name + 7, "%d", &l) == 1)
        return strstr(name, ".ln0.") ? L + 1 : L - l;
    return strcmp(name, "emb.weight") == 0 ? L + 1 : 0;
}

/* final_from[k]: after stage k, the offset from which every gradient up to
 * the end of the layout is final, when the stages so far finished exactly
 * a suffix of the flat buffer (the official order); SIZE_MAX otherwise. */
static int plan_grad_suffixes(rwkv4_cuda *c) {
    c->final_from = (size_t *)malloc(sizeof(size_t) * (size_t)(c->L + 2));
    if (!c->final_from) return 0;
    for (int k = 0; k <= c->L + 1; k++) {
        size_t lo = SIZE_MAX, hi_rest = 0;
        for (int i = 0; i < c->layout.count; i++) {
            const param_info *p = &c->layout.params[i];
            if (grad_stage(p->name, c->L) <= k) lo = p->offset < lo ? p->offset : lo;
            else if (p->offset + p->numel > hi_rest) hi_rest = p->offset + p->numel;
        }
        c->final_from[k] = lo != SIZE_MAX && hi_rest <= lo ? lo : SIZE_MAX;
    }
    return 1;
}

rwkv_status rwkv4_cuda_new(const param_layout *layout, int B, int T, rwkv4_cuda_precision precision,
                           rwkv4_cuda **out, rwkv_error *err) {
    return rwkv4_cuda_new_shard(layout, B, T, precision, NULL, out, err);
}

rwkv_status rwkv4_cuda_new_shard(const param_layout *layout, int B, int T, rwkv4_cuda_precision precision,
                                 const rwkv4_cuda_shard *shard, rwkv4_cuda **out, rwkv_error *err) {
    *out = NULL;
    if (shard && (shard->moment_lo > shard->moment_hi || shard->moment_hi > layout->total))
        return rwkv_fail(err, RWKV_ERR_ARG, "moment range [%zu, %zu) outside the %zu parameters", shard->moment_lo,
                         shard->moment_hi, layout->total);
    rwkv_status st = rwkv4_cuda_available(err);
    if (st) return st;
    const model_dims s = layout->shape;
    if (B <= 0 || T <= 0 || (double)B * T > INT32_MAX / 4)
        return rwkv_fail(err, RWKV_ERR_ARG, "bad batch shape B %d T %d", B, T);
    rwkv4_cuda *c = (rwkv4_cuda *)calloc(1, sizeof *c);
    if (!c) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (CUDA training context)");
    c->V = s.n_vocab, c->C = s.n_embd, c->L = s.n_layer, c->F = s.n_ffn, c->A = s.dim_att;
    c->B = B, c->T = T, c->N = B * T;
    c->Vp = (c->V + 63) / 64 * 64; /* aligned logits rows for the tensor cores */
    /* The head is multiplied as Vp rows when it is the last tensor of the
     * layout (the official order): its zero rows then live after the last
     * parameter, get zero gradients, and no product has an odd dimension. */
    const param_info *hp = param_layout_find(layout, "head.weight");
    const int head_last = hp && hp->offset + hp->numel == layout->total;
    c->Vh = head_last ? c->Vp : c->V;
    c->pad = (size_t)(c->Vh - c->V) * (size_t)c->C;
    c->act = precision == RWKV4_CUDA_BF16 ? CUDA_BF16 : CUDA_F32;
    c->total = layout->total;
    c->param_cap = shard ? shard->param_floats : 0;
    c->m_lo = shard ? shard->moment_lo : 0;
    c->m_n = shard ? shard->moment_hi - shard->moment_lo : layout->total;
    c->layout = *layout;
    c->layout.params = (param_info *)malloc(sizeof(param_info) * (size_t)layout->count);
    c->blk = (block_off *)calloc((size_t)c->L, sizeof *c->blk);
    c->acts = (block_act *)calloc((size_t)c->L, sizeof *c->acts);
    c->count = (int *)malloc(sizeof(int) * (size_t)c->V);
    if (!c->layout.params || !c->blk || !c->acts || !c->count) {
        rwkv4_cuda_free(c);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (CUDA training context)");
    }
    memcpy(c->layout.params, layout->params, sizeof(param_info) * (size_t)layout->count);
    if (!plan_grad_suffixes(c)) {
        rwkv4_cuda_free(c);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (CUDA training context)");
    }
    if (!read_offsets(c)) {
        rwkv4_cuda_free(c);
        return rwkv_fail(err, RWKV_ERR_ARG, "parameter layout is not an RWKV-4 layout");
    }
    c->arena_bytes = carve(c, NULL);
    cudaError_t e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&c->upload_done, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaMallocHost((void **)&c->tok_host, 5 * ((size_t)c->N + 1) * sizeof(int));
    if (e != cudaSuccess) {
        cudaGetLastError();
        rwkv4_cuda_free(c);
        return rwkv_fail(err, RWKV_ERR_IO, "CUDA stream/event/host buffer: %s", cudaGetErrorString(e));
    }
    if ((st = cuda_alloc(&c->arena, c->arena_bytes, "parameters, optimizer state and activations", err)) ||
        (st = cuda_blas_new(&c->blas, err))) {
        rwkv4_cuda_free(c);
        return st;
    }
    carve(c, (char *)c->arena);
    if (cudaMemsetAsync(c->arena, 0, c->arena_bytes, c->stream) != cudaSuccess ||
        cudaStreamSynchronize(c->stream) != cudaSuccess) {
        cudaGetLastError();
        rwkv4_cuda_free(c);
        return rwkv_fail(err, RWKV_ERR_IO, "clearing the device buffers failed");
    }
    *out = c;
    return RWKV_OK;
}

void rwkv4_cuda_free(rwkv4_cuda *c) {
    if (!c) return;
    if (c->stream) cudaStreamSynchronize(c->stream);
    cuda_blas_free(c->blas);
    cuda_free(c->arena);
    if (c->tok_host) cudaFreeHost(c->tok_host);
    if (c->upload_done) cudaEventDestroy(c->upload_done);
    if (c->timing) {
        for (int i = 0; i < 2 * EVENT_PAIRS; i++) cudaEventDestroy(c->ev[i]);
        cudaEventDestroy(c->ev_start);
        cudaEventDestroy(c->ev_end);
    }
    if (c->stream) cudaStreamDestroy(c->stream);
    cuda_free(c->spans);
    cuda_free(c->block_span);
    free(c->spans_host);
    free(c->layout.params);
    free(c->blk);
    free(c->acts);
    free(c->count);
    free(c->final_from);
    free(c);
    cudaGetLastError();
}

size_t rwkv4_cuda_bytes(const rwkv4_cuda *c) { return c->arena_bytes; }

/* ---- host <-> device ---------------------------------------------------------- */

rwkv_status rwkv4_cuda_upload_params(rwkv4_cuda *c, const float *params, rwkv_error *err) {
    CU(cudaMemcpyAsync(c->params, params, c->total * 4, cudaMemcpyHostToDevice, c->stream), "parameter upload");
    if (c->params16) cuda_convert(CUDA_BF16, c->params16, CUDA_F32, c->params, c->total, c->stream);
    return cuda_sync(c->stream, "parameter upload", err);
}

rwkv_status rwkv4_cuda_download_params(rwkv4_cuda *c, float *params, rwkv_error *err) {
    CU(cudaMemcpyAsync(params, c->params, c->total * 4, cudaMemcpyDeviceToHost, c->stream), "parameter download");
    return cuda_sync(c->stream, "parameter download", err);
}

rwkv_status rwkv4_cuda_upload_moments(rwkv4_cuda *c, const float *m, const float *v, rwkv_error *err) {
    CU(cudaMemcpyAsync(c->m, m, c->m_n * 4, cudaMemcpyHostToDevice, c->stream), "moment upload");
    CU(cudaMemcpyAsync(c->v, v, c->m_n * 4, cudaMemcpyHostToDevice, c->stream), "moment upload");
    return cuda_sync(c->stream, "moment upload", err);
}

rwkv_status rwkv4_cuda_download_moments(rwkv4_cuda *c, float *m, float *v, rwkv_error *err) {
    CU(cudaMemcpyAsync(m, c->m, c->m_n * 4, cudaMemcpyDeviceToHost, c->stream), "moment download");
    CU(cudaMemcpyAsync(v, c->v, c->m_n * 4, cudaMemcpyDeviceToHost, c->stream), "moment download");
    return cuda_sync(c->stream, "moment download", err);
}

rwkv_status rwkv4_cuda_download_grads(rwkv4_cuda *c, float *grads, rwkv_error *err) {
    CU(cudaMemcpyAsync(grads, c->grads, c->total * 4, cudaMemcpyDeviceToHost, c->stream), "gradient download");
    return cuda_sync(c->stream, "gradient download", err);
}

rwkv_status rwkv4_cuda_zero_grads(rwkv4_cuda *c, rwkv_error *err) {
    CU(cudaMemsetAsync(c->grads, 0, (c->total + c->pad) * 4, c->stream), "zeroing the gradients");
    return RWKV_OK;
}

void rwkv4_cuda_set_grad_hook(rwkv4_cuda *c, rwkv4_cuda_grad_hook hook, void *user) {
    c->hook = hook;
    c->hook_user = user;
}

rwkv4_cuda_device rwkv4_cuda_device_state(rwkv4_cuda *c) {
    rwkv4_cuda_device d = {c->params, c->grads, c->m, c->v, c->stream, c->total};
    return d;
}

void rwkv4_cuda_refresh_bf16(rwkv4_cuda *c) {
    if (c->params16) cuda_convert(CUDA_BF16, c->params16, CUDA_F32, c->params, c->total, c->stream);
}

rwkv_status rwkv4_cuda_sync(rwkv4_cuda *c, rwkv_error *err) {
    return cuda_sync(c->stream, "CUDA training step", err);
}

/* ---- timing ----------------------------------------------------------------- */

void rwkv4_cuda_set_timing(rwkv4_cuda *c, int on) {
    if (on && !c->timing) {
        for (int i = 0; i < 2 * EVENT_PAIRS; i++) cudaEventCreate(&c->ev[i]);
        cudaEventCreate(&c->ev_start);
        cudaEventCreate(&c->ev_end);
        c->timing = 1;
    }
}

static void op_begin(rwkv4_cuda *c, op_kind kind) {
    if (!c->timing || c->n_ev >= EVENT_PAIRS) return;
    c->ev_kind[c->n_ev] = kind;
    cudaEventRecord(c->ev[2 * c->n_ev], c->stream);
}

static void op_end(rwkv4_cuda *c) {
    if (!c->timing || c->n_ev >= EVENT_PAIRS) return;
    cudaEventRecord(c->ev[2 * c->n_ev + 1], c->stream);
    c->n_ev++;
}

/* Runs one launcher call, timed under `kind` when timing is on. */
#define TIMED(kind, call)                                                                          \
    do {                                                                                           \
        op_begin(c, kind);                                                                         \
        call;                                                                                      \
        op_end(c);                                                                                 \
    } while (0)

rwkv_status rwkv4_cuda_timing_get(rwkv4_cuda *c, rwkv4_cuda_timing *out, rwkv_error *err) {
    memset(out, 0, sizeof *out);
    if (!c->timing) return RWKV_OK;
    rwkv_status st = cuda_sync(c->stream, "timing", err);
    if (st) return st;
    float ms = 0;
    double *slot[] = {&out->gemm_ms, &out->wkv_ms, &out->norm_ms, &out->shift_ms, &out->elem_ms, &out->loss_ms};
    for (int i = 0; i < c->n_ev; i++) {
        cudaEventElapsedTime(&ms, c->ev[2 * i], c->ev[2 * i + 1]);
        *slot[c->ev_kind[i]] += ms;
    }
    cudaEventElapsedTime(&ms, c->ev_start, c->ev_end);
    out->total_ms = ms;
    out->other_ms = out->total_ms - out->gemm_ms - out->wkv_ms;
    return cuda_check("timing", err);
}

/* ---- matrix products ----------------------------------------------------------- */

/* The weight matrix at offset off as GEMM operand (bf16 copy in bf16 mode). */
static const void *weight(const rwkv4_cuda *c, size_t off) {
    return c->params16 ? (const void *)(c->params16 + off) : (const void *)(c->params + off);
}

/* One batch of row-major products (docs in cuda_ops.h: column-major view). */
typedef struct linear {
    size_t w;    /* weight offset; batch matrices follow each other */
    int out, in; /* W [out][in] */
    int batch;
} linear;

static rwkv_status gemm(rwkv4_cuda *c, cuda_gemm *g, rwkv_error *err) {
    g->ab = c->act;
    g->alpha = 1.0f;
    op_begin(c, KIND_GEMM);
    rwkv_status st = cuda_matmul(c->blas, g, c->stream, err);
    op_end(c);
    return st;
}

/* Y[N][out] (ld ldy) = X[N][in] Wᵀ (+ R when R is not NULL, the residual). */
static rwkv_status linear_forward(rwkv4_cuda *c, linear w, const void *X, void *Y, int ldy,
                                  const void *R, rwkv_error *err) {
    cuda_gemm g;
    memset(&g, 0, sizeof g);
    g.cd = c->act, g.trans_a = 1, g.m = w.out, g.n = c->N, g.k = w.in;
    g.A = weight(c, w.w), g.lda = w.in, g.stride_a = (long long)w.out * w.in;
    g.B = X, g.ldb = w.in, g.stride_b = (long long)c->N * w.in;
    g.C = R, g.D = Y, g.ldc = ldy, g.stride_c = (long long)c->N * ldy;
    g.batch = w.batch, g.beta = R ? 1.0f : 0.0f;
    return gemm(c, &g, err);
}

/* dW += dY[N][out]ᵀ X[N][in] (ld of dY: ldd), into the float32 gradients. */
static rwkv_status linear_backward_weight(rwkv4_cuda *c, linear w, const void *X, const void *dY,
                                          int ldd, rwkv_error *err) {
    cuda_gemm g;
    memset(&g, 0, sizeof g);
    g.cd = CUDA_F32, g.trans_b = 1, g.m = w.in, g.n = w.out, g.k = c->N;
    g.A = X, g.lda = w.in, g.stride_a = (long long)c->N * w.in;
    g.B = dY, g.ldb = ldd, g.stride_b = (long long)c->N * ldd;
    g.D = c->grads + w.w, g.ldc = w.in, g.stride_c = (long long)w.out * w.in;
    g.batch = w.batch, g.beta = 1.0f;
    return gemm(c, &g, err);
}

/* dX[N][in] = dY[N][out] W. */
static rwkv_status linear_backward_input(rwkv4_cuda *c, linear w, const void *dY, int ldd, void *dX,
                                         rwkv_error *err) {
    cuda_gemm g;
    memset(&g, 0, sizeof g);
    g.cd = c->act, g.m = w.in, g.n = c->N, g.k = w.out;
    g.A = weight(c, w.w), g.lda = w.in, g.stride_a = (long long)w.out * w.in;
    g.B = dY, g.ldb = ldd, g.stride_b = (long long)c->N * ldd;
    g.D = dX, g.ldc = w.in, g.stride_c = (long long)c->N * w.in;
    g.batch = w.batch, g.beta = 0.0f;
    return gemm(c, &g, err);
}

static linear lin(size_t w, int out, int in, int batch) {
    linear l = {w, out, in, batch};
    return l;
}

/* ---- forward and backward ------------------------------------------------------- */

#define TRY(x)                                                                                     \
    do {                                                                                           \
        rwkv_status st_ = (x);                                                                     \
        if (st_) return st_;                                                                       \
    } while (0)

static size_t ebytes(const rwkv4_cuda *c, size_t n) { return n * cuda_dtype_size(c->act); }

static rwkv_status forward_block(rwkv4_cuda *c, int l, rwkv_error *err) {
    const int B = c->B, T = c->T, N = c->N, C = c->C, A = c->A, F = c->F;
    const cuda_dtype t = c->act;
    const block_off *o = &c->blk[l];
    block_act *a = &c->acts[l];
    const float *P = c->params;
    void *x_next = l + 1 < c->L ? c->acts[l + 1].x_in : c->x_out;
    cudaStream_t s = c->stream;
    /* time mixing */
    TIMED(KIND_NORM, cuda_layernorm_forward(t, a->x_in, P + o->ln1_w, P + o->ln1_b, N, C, a->z1, a->mean1,
                                            a->rstd1, s));
    TIMED(KIND_SHIFT, cuda_token_shift_forward(t, a->z1, P + o->att_mix, 3, B, T, C, c->mix, s));
    TRY(linear_forward(c, lin(o->att_kvr, A, C, 3), c->mix, a->kvr, A, NULL, err));
    const char *kvr = (const char *)a->kvr;
    const void *k = kvr, *v = kvr + ebytes(c, (size_t)N * A), *r = kvr + 2 * ebytes(c, (size_t)N * A);
    TIMED(KIND_WKV, cuda_wkv_forward(t, B, T, A, P + o->time_decay, P + o->time_first, k, v, r, a->y, c->sa,
                                     c->wkv_chunk, s));
    TRY(linear_forward(c, lin(o->att_o, C, A, 1), c->sa, a->x_mid, C, a->x_in, err));
    /* channel mixing */
    TIMED(KIND_NORM, cuda_layernorm_forward(t, a->x_mid, P + o->ln2_w, P + o->ln2_b, N, C, a->z2, a->mean2,
                                            a->rstd2, s));
    TIMED(KIND_SHIFT, cuda_token_shift_forward(t, a->z2, P + o->ffn_mix, 2, B, T, C, c->mix, s));
    TRY(linear_forward(c, lin(o->ffn_k, F, C, 1), c->mix, a->kf, F, NULL, err));
    TIMED(KIND_ELEM, cuda_relu2_forward(t, a->kf, a->h, (size_t)N * F, s));
    TRY(linear_forward(c, lin(o->ffn_v, C, F, 1), a->h, a->vf, C, NULL, err));
    TRY(linear_forward(c, lin(o->ffn_r, C, C, 1), (const char *)c->mix + ebytes(c, (size_t)N * C), a->rf,
                       C, NULL, err));
    TIMED(KIND_ELEM, cuda_gate_residual_forward(t, a->x_mid, a->rf, a->vf, x_next, (size_t)N * C, s));
    return RWKV_OK;
}

/* Embedding, every block, LN_out, the head and the cross-entropy (its
 * backward fused in when `backward`). */
static rwkv_status forward(rwkv4_cuda *c, int backward, float l2wrap, rwkv_error *err) {
    const int N = c->N, C = c->C;
    const cuda_dtype t = c->act;
    const float *P = c->params;
    const int *inputs = c->tok_dev, *targets = c->tok_dev + (N + 1);
    TIMED(KIND_ELEM, cuda_embedding_forward(t, P + c->emb, inputs, N, C, c->emb_out, c->stream));
    TIMED(KIND_NORM, cuda_layernorm_forward(t, c->emb_out, P + c->ln0_w, P + c->ln0_b, N, C, c->acts[0].x_in,
                                            c->mean0, c->rstd0, c->stream));
    for (int l = 0; l < c->L; l++) TRY(forward_block(c, l, err));
    TIMED(KIND_NORM, cuda_layernorm_forward(t, c->x_out, P + c->ln_out_w, P + c->ln_out_b, N, C, c->z_out,
                                            c->mean_out, c->rstd_out, c->stream));
    TRY(linear_forward(c, lin(c->head, c->Vh, C, 1), c->z_out, c->logits, c->Vp, NULL, err));
    TIMED(KIND_LOSS, cuda_cross_entropy(t, c->logits, c->Vp, targets, N, c->V, l2wrap, backward, c->row_loss,
                                        c->stream));
    TIMED(KIND_LOSS, cuda_mean(c->row_loss, N, c->loss, c->stream));
    return cuda_check("CUDA forward", err);
}

/* gx = dL/d(block output) on entry, dL/d(block input) on return. */
static rwkv_status backward_block(rwkv4_cuda *c, int l, rwkv_error *err) {
    const int B = c->B, T = c->T, N = c->N, C = c->C, A = c->A, F = c->F;
    const cuda_dtype t = c->act;
    const block_off *o = &c->blk[l];
    const block_act *a = &c->acts[l];
    const float *P = c->params;
    float *G = c->grads;
    cudaStream_t s = c->stream;
    const size_t NC = (size_t)N * C, NA = (size_t)N * A;
    char *dvf = (char *)c->gc2, *drf = dvf + ebytes(c, NC);
    char *mix1 = (char *)c->mix + ebytes(c, NC), *dmix1 = (char *)c->dmix + ebytes(c, NC);
    /* channel mixing */
    TIMED(KIND_ELEM, cuda_gate_backward(t, a->rf, a->vf, c->gx, dvf, drf, NC, s));
    TRY(linear_backward_weight(c, lin(o->ffn_v, C, F, 1), a->h, dvf, C, err));
    TRY(linear_backward_input(c, lin(o->ffn_v, C, F, 1), dvf, C, c->sf, err));
    TIMED(KIND_ELEM, cuda_relu2_backward(t, a->kf, c->sf, c->sf, (size_t)N * F, s));
    TIMED(KIND_SHIFT, cuda_token_shift_forward(t, a->z2, P + o->ffn_mix, 2, B, T, C, c->mix, s));
    TRY(linear_backward_weight(c, lin(o->ffn_k, F, C, 1), c->mix, c->sf, F, err));
    TRY(linear_backward_input(c, lin(o->ffn_k, F, C, 1), c->sf, F, c->dmix, err));
    TRY(linear_backward_weight(c, lin(o->ffn_r, C, C, 1), mix1, drf, C, err));
    TRY(linear_backward_input(c, lin(o->ffn_r, C, C, 1), drf, C, dmix1, err));
    TIMED(KIND_SHIFT, cuda_token_shift_backward(t, c->dmix, a->z2, P + o->ffn_mix, 2, B, T, C, c->gz,
                                                G + o->ffn_mix, c->partial, s));
    TIMED(KIND_NORM, cuda_layernorm_backward(t, a->x_mid, P + o->ln2_w, a->mean2, a->rstd2, c->gz, N, C, c->gx,
                                             1, G + o->ln2_w, G + o->ln2_b, c->partial, s));
    /* time mixing; gx = dL/d x_mid */
    const char *kvr = (const char *)a->kvr;
    char *gkvr = (char *)c->gkvr;
    TIMED(KIND_ELEM, cuda_gate_forward(t, kvr + 2 * ebytes(c, NA), a->y, c->sa, NA, s));
    TRY(linear_backward_weight(c, lin(o->att_o, C, A, 1), c->sa, c->gx, C, err));
    TRY(linear_backward_input(c, lin(o->att_o, C, A, 1), c->gx, C, c->sa, err));
    const void *k = kvr, *v = kvr + ebytes(c, NA), *r = kvr + 2 * ebytes(c, NA);
    void *gk = gkvr, *gv = gkvr + ebytes(c, NA), *gr = gkvr + 2 * ebytes(c, NA);
    TIMED(KIND_WKV, cuda_wkv_backward(t, B, T, A, P + o->time_decay, P + o->time_first, k, v, r, a->y, c->sa, gk,
                                      gv, gr, G + o->time_decay, G + o->time_first, c->wkv_s, c->wkv_q,
                                      c->wkv_chunk, c->rowsum, s));
    TIMED(KIND_SHIFT, cuda_token_shift_forward(t, a->z1, P + o->att_mix, 3, B, T, C, c->mix, s));
    TRY(linear_backward_weight(c, lin(o->att_kvr, A, C, 3), c->mix, c->gkvr, A, err));
    TRY(linear_backward_input(c, lin(o->att_kvr, A, C, 3), c->gkvr, A, c->dmix, err));
    TIMED(KIND_SHIFT, cuda_token_shift_backward(t, c->dmix, a->z1, P + o->att_mix, 3, B, T, C, c->gz,
                                                G + o->att_mix, c->partial, s));
    TIMED(KIND_NORM, cuda_layernorm_backward(t, a->x_in, P + o->ln1_w, a->mean1, a->rstd1, c->gz, N, C, c->gx,
                                             1, G + o->ln1_w, G + o->ln1_b, c->partial, s));
    return RWKV_OK;
}

/* Tells the hook (if any) that backward stage k was enqueued. */
static void grads_final(rwkv4_cuda *c, int k) {
    if (c->hook && c->final_from[k] != SIZE_MAX) c->hook(c->hook_user, c->final_from[k]);
}

static rwkv_status backward(rwkv4_cuda *c, rwkv_error *err) {
    const int N = c->N, C = c->C;
    const cuda_dtype t = c->act;
    const float *P = c->params;
    float *G = c->grads;
    const int *order = c->tok_dev + 2 * (N + 1), *seg = c->tok_dev + 3 * (N + 1),
              *seg_tok = c->tok_dev + 4 * (N + 1);
    const linear head = lin(c->head, c->Vh, C, 1);
    TRY(linear_backward_weight(c, head, c->z_out, c->logits, c->Vp, err));
    TRY(linear_backward_input(c, head, c->logits, c->Vp, c->gz, err));
    TIMED(KIND_NORM, cuda_layernorm_backward(t, c->x_out, P + c->ln_out_w, c->mean_out, c->rstd_out, c->gz, N,
                                             C, c->gx, 0, G + c->ln_out_w, G + c->ln_out_b, c->partial,
                                             c->stream));
    grads_final(c, 0);
    for (int l = c->L - 1; l >= 0; l--) {
        TRY(backward_block(c, l, err));
        grads_final(c, c->L - l);
    }
    TIMED(KIND_NORM, cuda_layernorm_backward(t, c->emb_out, P + c->ln0_w, c->mean0, c->rstd0, c->gx, N, C,
                                             c->gz, 0, G + c->ln0_w, G + c->ln0_b, c->partial, c->stream));
    TIMED(KIND_ELEM, cuda_embedding_backward(t, c->gz, order, seg, seg_tok, c->n_seg, C, G + c->emb,
                                             c->stream));
    grads_final(c, c->L + 1);
    return cuda_check("CUDA backward", err);
}

/* Checks the tokens and sends them (and the embedding backward's plan) to
 * the device through the pinned buffer; waits only if the previous batch's
 * copy has not left that buffer yet. */
static rwkv_status upload_tokens(rwkv4_cuda *c, const int *inputs, const int *targets, rwkv_error *err) {
    const int N = c->N;
    for (int k = 0; k < 2; k++) {
        const int *tok = k ? targets : inputs;
        for (int n = 0; n < N; n++)
            if (tok[n] < 0 || tok[n] >= c->V)
                return rwkv_fail(err, RWKV_ERR_ARG, "%s[%d][%d] = %d is outside the vocabulary (%d)",
                                 k ? "targets" : "inputs", n / c->T, n % c->T, tok[n], c->V);
    }
    CU(cudaEventSynchronize(c->upload_done), "token upload");
    int *h = c->tok_host;
    memcpy(h, inputs, sizeof(int) * (size_t)N);
    memcpy(h + (N + 1), targets, sizeof(int) * (size_t)N);
    c->n_seg = cuda_embedding_plan(inputs, N, c->V, h + 2 * (N + 1), h + 3 * (N + 1), h + 4 * (N + 1),
                                   c->count);
    CU(cudaMemcpyAsync(c->tok_dev, h, 5 * ((size_t)N + 1) * sizeof(int), cudaMemcpyHostToDevice, c->stream),
       "token upload");
    CU(cudaEventRecord(c->upload_done, c->stream), "token upload");
    return RWKV_OK;
}

rwkv_status rwkv4_cuda_last_loss(rwkv4_cuda *c, float *loss, rwkv_error *err) {
    CU(cudaMemcpyAsync(loss, c->loss, sizeof(float), cudaMemcpyDeviceToHost, c->stream), "loss download");
    TRY(cuda_sync(c->stream, "CUDA training step", err));
    if (!isfinite(*loss)) return rwkv_fail(err, RWKV_ERR_NUMERIC, "the loss is not finite");
    return RWKV_OK;
}

rwkv_status rwkv4_cuda_forward_backward(rwkv4_cuda *c, const int *inputs, const int *targets,
                                        float l2wrap, float *loss, rwkv_error *err) {
    TRY(upload_tokens(c, inputs, targets, err));
    c->n_ev = 0;
    if (c->timing) cudaEventRecord(c->ev_start, c->stream);
    TRY(forward(c, 1, l2wrap, err));
    TRY(backward(c, err));
    if (c->timing) cudaEventRecord(c->ev_end, c->stream);
    return loss ? rwkv4_cuda_last_loss(c, loss, err) : RWKV_OK;
}

rwkv_status rwkv4_cuda_forward_loss(rwkv4_cuda *c, const int *inputs, const int *targets,
                                    float *logits, float *loss, rwkv_error *err) {
    TRY(upload_tokens(c, inputs, targets, err));
    c->n_ev = 0;
    TRY(forward(c, 0, 0.0f, err));
    if (logits) {
        if (c->act == CUDA_F32) {
            CU(cudaMemcpy2DAsync(logits, (size_t)c->V * 4, c->logits, (size_t)c->Vp * 4, (size_t)c->V * 4,
                                 (size_t)c->N, cudaMemcpyDeviceToHost, c->stream),
               "logits download");
        } else { /* widened on the device first */
            float *tmp = NULL;
            TRY(cuda_alloc((void **)&tmp, (size_t)c->N * c->Vp * 4, "logits", err));
            cuda_convert(CUDA_F32, tmp, c->act, c->logits, (size_t)c->N * c->Vp, c->stream);
            cudaError_t e = cudaMemcpy2DAsync(logits, (size_t)c->V * 4, tmp, (size_t)c->Vp * 4,
                                              (size_t)c->V * 4, (size_t)c->N, cudaMemcpyDeviceToHost,
                                              c->stream);
            cudaStreamSynchronize(c->stream);
            cuda_free(tmp);
            CU(e, "logits download");
        }
    }
    return rwkv4_cuda_last_loss(c, loss, err);
}

/* ---- optimizer ------------------------------------------------------------------ */

rwkv_status rwkv4_cuda_grad_norm(rwkv4_cuda *c, double *norm, rwkv_error *err) {
    cuda_global_norm(c->grads, c->total, c->norm_partial, c->norm, c->stream);
    if (!norm) return cuda_check("gradient norm", err);
    CU(cudaMemcpyAsync(norm, c->norm, sizeof(double), cudaMemcpyDeviceToHost, c->stream), "gradient norm");
    return cuda_sync(c->stream, "gradient norm", err);
}

/* Uploads the block table of cuda_adam_update for these spans, unless the
 * last step had the same ones. */
static rwkv_status adam_plan(rwkv4_cuda *c, const cuda_adam_span *spans, int n, rwkv_error *err) {
    cuda_adam_span *sp = (cuda_adam_span *)calloc((size_t)(n > 0 ? n : 1), sizeof *sp);
    if (!sp) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (Adam spans)");
    for (int i = 0; i < n; i++) {
        if (spans[i].count > 0 && (spans[i].offset < c->m_lo || spans[i].offset + spans[i].count > c->m_lo + c->m_n)) {
            free(sp);
            return rwkv_fail(err, RWKV_ERR_ARG, "Adam span %d runs outside the moments' [%zu, %zu)", i, c->m_lo,
                             c->m_lo + c->m_n);
        }
        sp[i] = spans[i];
    }
    if (c->spans_host && c->n_spans == n && memcmp(c->spans_host, sp, sizeof *sp * (size_t)n) == 0) {
        free(sp);
        return RWKV_OK;
    }
    const int nb = cuda_adam_blocks(sp, n, NULL);
    int *table = (int *)malloc(sizeof(int) * 2 * (size_t)(nb > 0 ? nb : 1));
    if (!table) {
        free(sp);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (Adam block table)");
    }
    cuda_adam_blocks(sp, n, table);
    cudaStreamSynchronize(c->stream); /* the old tables may still be in use */
    cuda_free(c->spans);
    cuda_free(c->block_span);
    c->spans = NULL, c->block_span = NULL;
    free(c->spans_host);
    c->spans_host = sp, c->n_spans = n, c->n_adam_blocks = nb;
    rwkv_status st = cuda_alloc((void **)&c->spans, sizeof *sp * (size_t)(n > 0 ? n : 1), "Adam spans", err);
    if (!st) st = cuda_alloc((void **)&c->block_span, sizeof(int) * 2 * (size_t)(nb > 0 ? nb : 1), "Adam blocks", err);
    if (!st) st = cuda_upload(c->spans, sp, sizeof *sp * (size_t)n, err);
    if (!st) st = cuda_upload(c->block_span, table, sizeof(int) * 2 * (size_t)nb, err);
    free(table);
    if (st) { /* forget the half-made tables */
        free(c->spans_host);
        c->spans_host = NULL, c->n_spans = 0;
    }
    return st;
}

rwkv_status rwkv4_cuda_adam_update(rwkv4_cuda *c, const cuda_adam_span *spans, int n_spans, float lr,
                                   float grad_scale, float max_norm, long t, const rwkv4_cuda_adam *h,
                                   rwkv_error *err) {
    TRY(adam_plan(c, spans, n_spans, err));
    /* the moments are indexed by parameter offset: their base is shifted by the range's start */
    cuda_adam_update(c->params, c->grads, c->m - c->m_lo, c->v - c->m_lo, (uint16_t *)c->params16, c->spans, c->block_span,
                     c->n_adam_blocks, lr, grad_scale, max_norm, c->norm, h->beta1, h->beta2, h->eps,
                     h->weight_decay, t, c->stream);
    return cuda_check("Adam step", err);
}
