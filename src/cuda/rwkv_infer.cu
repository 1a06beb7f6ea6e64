/* The RWKV-5/6/7 inference context (cuda/rwkv_infer.h): weights uploaded
 * once by the version's slot table, then passes of up to max_rows rows:
 * embedding, ln0, the version's block per layer, ln_out and the head for the
 * rows whose logits are asked for. A pass carries its state pointers to the
 * device, so one sequence and a batch of sequences run the same kernels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/rwkv_infer.cuh"
extern "C" {
#include "core/tensor.h" /* transpose_last2 */
}


/* Rows per pass (bounds the work buffers): a 2048-token prompt is one pass,
 * so its products are GEMMs large enough to approach the matrix peak. The
 * head runs over at most LOGIT_ROWS rows at a time (a V-wide buffer each). */
enum { MAX_ROWS = 2048, LOGIT_ROWS = 256 };

static const infer_version *version_of(int v) {
    return v == 7 ? &rwkv7_infer_version : v == 6 ? &rwkv6_infer_version : v == 5 ? &rwkv5_infer_version : NULL;
}

extern "C" size_t rwkv_infer_state_floats(const rwkv_infer *c) { return c->layer_state * c->sh.n_layer; }

/* The matrices every version names alike (att.receptance/key/value/gate/output,
 * ffn.key/receptance/value) as W_MAT of their shape. */
static void common_matrix(const rwkv_infer_shape *sh, infer_weight *w) {
    const int C = sh->n_embd, A = sh->dim_att, F = sh->n_ffn;
    static const struct {
        const char *name;
        int rows, cols; /* 0: C, 1: A, 2: F */
    } mats[] = {{"att.receptance.weight", 1, 0}, {"att.key.weight", 1, 0}, {"att.value.weight", 1, 0},
                {"att.gate.weight", 1, 0},       {"att.output.weight", 0, 1}, {"ffn.key.weight", 2, 0},
                {"ffn.receptance.weight", 0, 0}, {"ffn.value.weight", 0, 2}};
    const int dims[] = {C, A, F};
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
        if (strcmp(w->name, mats[i].name) == 0)
            w->kind = W_MAT, w->rows = dims[mats[i].rows], w->cols = dims[mats[i].cols], w->count = 1;
}

/* Slot i of layer l (0: none). The channel mix's value matrix is stored
 * transposed where its decode product can skip the zero hiddens
 * (infer_channel_mix). */
static int slot_weight(const rwkv_infer *c, int l, int i, infer_weight *w) {
    if (!c->ver->weight(&c->sh, l, i, w)) return 0;
    common_matrix(&c->sh, w);
    if (c->value_t && w->kind == W_MAT && strcmp(w->name, "ffn.value.weight") == 0) w->kind = W_MAT_T;
    return 1;
}

/* ---- upload -------------------------------------------------------------- */

typedef struct uploader {
    rwkv_infer *c;
    const rwkv_infer_source *src;
    float *host, *host2, *staging; /* the largest tensor's floats each */
} uploader;

/* `count` matrices of n / count floats each (rows of a multiple of 32) as
 * CUDA_Q8, one after another (infer_matrix): q8_0 blocks from the source's
 * quantizer, each matrix split into its codes and then its scales. */
static rwkv_status put_q8(const uploader *u, const float *host, size_t n, size_t count, void **d, rwkv_error *err) {
    const size_t per = n / count, bytes = per + per / 16, block = RWKV_INFER_Q8_BLOCK;
    uint8_t *blocks = (uint8_t *)malloc(per / 32 * block), *packed = (uint8_t *)malloc(count * bytes);
    rwkv_status s = blocks && packed ? RWKV_OK : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for an int8 matrix");
    for (size_t m = 0; m < count && s == RWKV_OK; m++) {
        uint8_t *out = packed + m * bytes;
        u->src->quantize_q8(host + m * per, blocks, per);
        for (size_t b = 0; b < per / 32; b++) {
            memcpy(out + 32 * b, blocks + block * b + 2, 32);
            memcpy(out + per + 2 * b, blocks + block * b, 2);
        }
    }
    if (s == RWKV_OK) s = cuda_alloc(d, count * bytes, "weights", err);
    if (s == RWKV_OK) s = cuda_upload(*d, packed, count * bytes, err);
    free(blocks);
    free(packed);
    return s;
}

/* host[0, n) (`count` matrices for CUDA_Q8) to freshly allocated device memory of type t. */
static rwkv_status put(uploader *u, const float *host, size_t n, size_t count, cuda_dtype t, void **d,
                       rwkv_error *err) {
    if (t == CUDA_Q8) return put_q8(u, host, n, count, d, err);
    rwkv_infer *c = u->c;
    rwkv_status s = cuda_alloc(d, n * cuda_dtype_size(t), "weights", err);
    if (s != RWKV_OK) return s;
    /* a copy from pageable memory may return before its DMA ends: wait for it
     * (the context's stream does not order itself after the default stream) */
    if ((s = cuda_upload(t == CUDA_F32 ? *d : (void *)u->staging, host, n * sizeof(float), err)) == RWKV_OK)
        s = cuda_sync(0, "weight upload", err);
    if (s != RWKV_OK || t == CUDA_F32) return s;
    cuda_convert(t, *d, CUDA_F32, u->staging, n, c->stream);
    return cuda_sync(c->stream, "weight upload", err);
}

static rwkv_status fetch(uploader *u, const char *name, size_t n, rwkv_error *err) {
    const size_t have = u->src->numel(u->src->ctx, name);
    if (have != n)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' has %zu elements, expected %zu", name, have, n);
    return u->src->fetch(u->src->ctx, name, u->host, n, err);
}

/* RWKV-5's per-channel decay multipliers and bonus from a per-channel or
 * per-head (5.0/5.1) tensor; the bonus is exp(time_first) in older files. */
static rwkv_status fetch_v5_head(uploader *u, const char *name, const infer_weight *w, rwkv_error *err) {
    const rwkv_infer_shape *sh = &u->c->sh;
    char alt[128];
    const char *use = name;
    int first = 0;
    if (w->kind == W_V5_BONUS && u->src->numel(u->src->ctx, name) == 0) {
        snprintf(alt, sizeof alt, "%.*stime_first", (int)(strlen(name) - strlen("time_faaaa")), name);
        use = alt, first = 1;
    }
    const size_t n = u->src->numel(u->src->ctx, use), A = (size_t)sh->dim_att;
    if (n != A && n != (size_t)sh->n_head)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' has %zu elements, expected %zu or %d", use, n, A,
                         sh->n_head);
    rwkv_status s = u->src->fetch(u->src->ctx, use, u->host2, n, err);
    for (size_t i = 0; i < A && s == RWKV_OK; i++) {
        const double x = u->host2[n == A ? i : i / (size_t)sh->head_size];
        u->host[i] = (float)(w->kind == W_V5_DECAY ? exp(-exp(x)) : first ? exp(x) : x);
    }
    return s;
}

/* How the context stores a matrix of `cols` columns (int8 needs whole blocks of 32 per row). */
static rwkv_status matrix_type(const rwkv_infer *c, const char *name, int cols, cuda_dtype *t, rwkv_error *err) {
    *t = c->q8 ? CUDA_Q8 : c->wt;
    if (c->q8 && cols % 32)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                         "tensor '%s': int8 matrices need rows of a multiple of 32 values, this one has %d", name, cols);
    return RWKV_OK;
}

static rwkv_status upload_weight(uploader *u, int l, const infer_weight *w, void **d, rwkv_error *err) {
    char name[160];
    snprintf(name, sizeof name, "blocks.%d.%s", l, w->name);
    const int matrix = w->kind == W_MAT || w->kind == W_LORA || w->kind == W_MAT_T;
    cuda_dtype t = CUDA_F32;
    rwkv_status ts = matrix ? matrix_type(u->c, name, w->cols, &t, err) : RWKV_OK;
    if (ts != RWKV_OK) return ts;
    const size_t count = w->count > 0 ? (size_t)w->count : 1;
    const size_t n = count * w->rows * (matrix ? (size_t)w->cols : 1);
    rwkv_status s = w->kind == W_V5_DECAY || w->kind == W_V5_BONUS ? fetch_v5_head(u, name, w, err)
                                                                   : fetch(u, name, n, err);
    if (s != RWKV_OK) return s;
    const float *src = u->host;
    if (w->kind == W_LORA) /* the file's [cols][rows] to [rows][cols] */
        transpose_last2(u->host, u->host2, sizeof(float), (int64_t)count, w->cols, w->rows);
    if (w->kind == W_MAT_T) transpose_last2(u->host, u->host2, sizeof(float), 1, w->rows, w->cols);
    if (w->kind == W_LORA || w->kind == W_MAT_T) src = u->host2;
    return put(u, src, n, count, t, d, err);
}

static rwkv_status upload_global(uploader *u, const char *name, size_t n, cuda_dtype t, void **d, rwkv_error *err) {
    rwkv_status s = fetch(u, name, n, err);
    return s == RWKV_OK ? put(u, u->host, n, 1, t, d, err) : s;
}

/* Elements of the largest tensor the context uploads (the head, or a layer's). */
static size_t largest_tensor(const rwkv_infer *c) {
    size_t biggest = (size_t)c->sh.n_vocab * c->sh.n_embd;
    infer_weight w;
    for (int l = 0; l < c->sh.n_layer; l++)
        for (int i = 0; i < c->ver->n_slots; i++)
            if (slot_weight(c, l, i, &w) && (size_t)(w.count > 0 ? w.count : 1) * w.rows * w.cols > biggest)
                biggest = (size_t)(w.count > 0 ? w.count : 1) * w.rows * w.cols;
    return biggest;
}

static rwkv_status upload_all(rwkv_infer *c, const rwkv_infer_source *src, rwkv_error *err) {
    const rwkv_infer_shape *sh = &c->sh;
    const size_t C = (size_t)sh->n_embd, biggest = largest_tensor(c);
    infer_weight w;
    uploader u = {c, src, (float *)malloc(biggest * 4), (float *)malloc(biggest * 4), NULL};
    rwkv_status s = u.host && u.host2 ? RWKV_OK : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for the upload");
    if (s == RWKV_OK && c->wt != CUDA_F32) s = cuda_alloc((void **)&u.staging, biggest * 4, "upload staging", err);
    if (s == RWKV_OK) s = upload_global(&u, "emb.weight", (size_t)sh->n_vocab * C, CUDA_F32, (void **)&c->emb, err);
    cuda_dtype head_t = c->wt;
    if (s == RWKV_OK) s = matrix_type(c, "head.weight", sh->n_embd, &head_t, err);
    if (s == RWKV_OK) s = upload_global(&u, "head.weight", (size_t)sh->n_vocab * C, head_t, &c->head, err);
    const char *const glob[] = {"blocks.0.ln0.weight", "blocks.0.ln0.bias", "ln_out.weight", "ln_out.bias"};
    float *gl[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4 && s == RWKV_OK; i++) s = upload_global(&u, glob[i], C, CUDA_F32, (void **)&gl[i], err);
    /* ln0 and ln_out as [2][C] each: weight then bias */
    if (s == RWKV_OK) s = cuda_alloc((void **)&c->ln0, 2 * C * 4, "weights", err);
    if (s == RWKV_OK) s = cuda_alloc((void **)&c->ln_out, 2 * C * 4, "weights", err);
    for (int i = 0; i < 4 && s == RWKV_OK; i++)
        if (cudaMemcpyAsync((i < 2 ? c->ln0 : c->ln_out) + (i % 2) * C, gl[i], C * 4, cudaMemcpyDeviceToDevice,
                            c->stream) != cudaSuccess)
            s = cuda_check("weight copy", err);
    if (s == RWKV_OK) s = cuda_sync(c->stream, "weight copy", err);
    for (int i = 0; i < 4; i++) cuda_free(gl[i]);
    for (int l = 0; l < sh->n_layer && s == RWKV_OK; l++)
        for (int i = 0; i < c->ver->n_slots && s == RWKV_OK; i++)
            if (slot_weight(c, l, i, &w)) s = upload_weight(&u, l, &w, &c->w[(size_t)l * c->ver->n_slots + i], err);
    free(u.host);
    free(u.host2);
    cuda_free(u.staging);
    return s;
}

/* The version's run of slots moved into one allocation per layer (float
 * and bf16 matrices: the int8 ones go through one dequantization buffer a
 * product, never as a batch), when every matrix of the run is there with
 * one shape. */
static rwkv_status pack_runs(rwkv_infer *c, rwkv_error *err) {
    const int first = c->ver->pack_first;
    int n = c->ver->pack_count; /* cut to the part of the run every layer has (RWKV-5.0/5.1: no gate) */
    infer_weight w0, w;
    for (int l = 0; l < c->sh.n_layer && n > 1; l++) {
        if (!slot_weight(c, l, first, &w0) || w0.kind != W_MAT || !infer_w(c, l, first)) n = 0;
        for (int i = 1; i < n; i++)
            if (!slot_weight(c, l, first + i, &w) || w.kind != W_MAT || w.rows != w0.rows || w.cols != w0.cols ||
                !infer_w(c, l, first + i))
                n = i;
    }
    if (n < 2 || c->q8) return RWKV_OK;
    /* one layer at a time (one layer's run of extra device memory at once);
     * packed_layers says which layers' slots share a run, also after a failure */
    const size_t bytes = (size_t)w0.rows * w0.cols * cuda_dtype_size(c->wt);
    c->packed = n;
    for (int l = 0; l < c->sh.n_layer; l++) {
        void *run;
        rwkv_status s = cuda_alloc(&run, n * bytes, "weights", err);
        for (int i = 0; i < n && s == RWKV_OK; i++)
            if (cudaMemcpyAsync((char *)run + i * bytes, infer_w(c, l, first + i), bytes, cudaMemcpyDeviceToDevice,
                                c->stream) != cudaSuccess)
                s = cuda_check("weight copy", err);
        if (s == RWKV_OK) s = cuda_sync(c->stream, "weight copy", err);
        if (s != RWKV_OK) {
            cuda_free(run);
            return s;
        }
        for (int i = 0; i < n; i++) {
            void **slot = &c->w[(size_t)l * c->ver->n_slots + first + i];
            cuda_free(*slot);
            *slot = (char *)run + i * bytes;
        }
        c->packed_layers = l + 1;
    }
    return RWKV_OK;
}

/* ---- context --------------------------------------------------------------- */

static size_t widest_input(const rwkv_infer_shape *sh) {
    int w = sh->n_embd;
    const int others[] = {sh->dim_att, sh->n_ffn, 5 * sh->lora[0], sh->lora[1], sh->lora[2], sh->lora[3]};
    for (int i = 0; i < 6; i++) w = others[i] > w ? others[i] : w;
    return (size_t)w;
}

static rwkv_status alloc_work(rwkv_infer *c, rwkv_error *err) {
    const rwkv_infer_shape *sh = &c->sh;
    const size_t R = (size_t)c->max_rows, C = (size_t)sh->n_embd, V = (size_t)sh->n_vocab;
    float **const bufs[] = {&c->x, &c->z, &c->mean, &c->rstd, &c->logits, &c->work};
    const size_t sizes[] = {R * C, R * C, R, R, LOGIT_ROWS * V, c->ver->work_floats(sh, c->max_rows)};
    rwkv_status s = RWKV_OK;
    for (int i = 0; i < 6 && s == RWKV_OK; i++) s = cuda_alloc((void **)bufs[i], sizes[i] * 4, "work buffers", err);
    if (s == RWKV_OK) s = cuda_alloc((void **)&c->tok, R * sizeof(int), "tokens", err);
    if (s == RWKV_OK) s = cuda_alloc((void **)&c->ptrs, R * sizeof(float *), "state pointers", err);
    c->in16_floats = R * widest_input(sh);
    if (s == RWKV_OK && c->wt != CUDA_F32) s = cuda_alloc(&c->in16, c->in16_floats * 2, "work buffers", err);
    if (s == RWKV_OK && c->wt != CUDA_F32) s = cuda_alloc(&c->mix16, SHIFT_MAX_MIX * R * C * 2, "work buffers", err);
    c->w16_elems = c->q8 ? largest_tensor(c) : 0;
    if (s == RWKV_OK && c->q8) s = cuda_alloc(&c->w16, c->w16_elems * 2, "int8 dequantization buffer", err);
    const size_t sparse_floats = c->value_t ? cuda_sparse_product_scratch(c->wt, sh->n_embd, sh->n_ffn) : 0;
    if (s == RWKV_OK && c->value_t) s = cuda_alloc((void **)&c->sparse, sparse_floats * 4, "work buffers", err);
    if (s == RWKV_OK && c->value_t && cudaMemset(c->sparse, 0, sparse_floats * 4) != cudaSuccess)
        s = cuda_check("cudaMemset", err);
    return s;
}

/* Whether the channel mix's value matrix is stored transposed for the
 * sparse decode product. Its listing of the live hiddens and its sum of the
 * blocks' slices cost a few microseconds that a small matrix's dense GEMV
 * does not: measured on an H100 (bf16, RWKV-7), the 0.1B shape's 4.7 MB
 * matrix decoded 0.356 -> 0.421 ms a token with it, the 1.5B shape's 33.5 MB
 * one 1.615 -> 1.523 ms. A line through the two differences per layer
 * crosses zero near 22 MB. */
enum { SPARSE_VALUE_MIN_BYTES = 24 << 20 };
static int sparse_value_pays(const rwkv_infer *c, const rwkv_infer_shape *sh) {
    const size_t bytes = (size_t)sh->n_embd * sh->n_ffn * cuda_dtype_size(c->wt);
    return !c->q8 && cuda_sparse_product_fits(c->wt, sh->n_embd, sh->n_ffn) && bytes >= SPARSE_VALUE_MIN_BYTES;
}

extern "C" rwkv_status rwkv_infer_new(const rwkv_infer_shape *shape, rwkv_infer_matrices mats, int device,
                                      const rwkv_infer_source *src, rwkv_infer **out, rwkv_error *err) {
    *out = NULL;
    if (!version_of(shape->version))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "no CUDA inference for RWKV-%d", shape->version);
    if (shape->head_size > CUDA_WKV_MAX_HEAD)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "head size %d: the GPU takes heads of up to %d channels",
                         shape->head_size, CUDA_WKV_MAX_HEAD);
    if (device < 0 || device >= cuda_device_count())
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "CUDA device %d does not exist (%d found)", device,
                         cuda_device_count());
    if (cudaSetDevice(device) != cudaSuccess) return cuda_check("cudaSetDevice", err);
    rwkv_infer *c = (rwkv_infer *)calloc(1, sizeof *c);
    if (!c) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    c->sh = *shape;
    c->ver = version_of(shape->version);
    c->wt = mats == RWKV_INFER_FP32 ? CUDA_F32 : CUDA_BF16;
    c->q8 = mats == RWKV_INFER_INT8;
    c->value_t = sparse_value_pays(c, shape);
    c->max_rows = MAX_ROWS;
    c->layer_state = 2 * (size_t)shape->n_embd + (size_t)shape->n_head * shape->head_size * shape->head_size;
    c->w = (void **)calloc((size_t)shape->n_layer * c->ver->n_slots, sizeof(void *));
    rwkv_status s = c->w ? RWKV_OK : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    if (s == RWKV_OK && (cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) != cudaSuccess ||
                         cudaStreamCreateWithFlags(&c->side.stream, cudaStreamNonBlocking) != cudaSuccess))
        s = cuda_check("cudaStreamCreate", err);
    for (int i = 0; i < INFER_SIDE_EVENTS && s == RWKV_OK; i++)
        if (cudaEventCreateWithFlags(&c->side.events[i], cudaEventDisableTiming) != cudaSuccess)
            s = cuda_check("cudaEventCreate", err);
    if (s == RWKV_OK) s = cuda_blas_new(&c->blas, err);
    if (s == RWKV_OK) s = cuda_blas_new(&c->side_blas, err);
    if (s == RWKV_OK) s = alloc_work(c, err);
    if (s == RWKV_OK) s = upload_all(c, src, err);
    if (s == RWKV_OK) s = pack_runs(c, err);
    if (s == RWKV_OK && c->ver->derive) s = c->ver->derive(c, err);
    if (s != RWKV_OK) {
        rwkv_infer_free(c);
        return s;
    }
    *out = c;
    return RWKV_OK;
}

extern "C" void rwkv_infer_free(rwkv_infer *c) {
    if (!c) return;
    if (c->stream) cudaStreamSynchronize(c->stream);
    if (c->side.stream) cudaStreamSynchronize(c->side.stream);
    void *const bufs[] = {c->emb,   c->head,  c->ln0,  c->ln_out,     c->tok,       c->ptrs,
                          c->x,     c->z,     c->mean, c->rstd,       c->logits,    c->work,
                          c->in16,  c->mix16, c->w16,  c->draw_rules, c->draw_next, c->draw_bias_ids,
                          c->draw_bias, c->derived, c->sparse};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cuda_free(bufs[i]);
    for (size_t i = 0; c->w && i < (size_t)c->sh.n_layer * c->ver->n_slots; i++) {
        const int layer = (int)(i / c->ver->n_slots), in_run = (int)(i % c->ver->n_slots) - c->ver->pack_first;
        const int shared = layer < c->packed_layers && in_run > 0 && in_run < c->packed;
        if (!shared) cuda_free(c->w[i]); /* a packed run: its first slot owns it */
    }
    for (int i = 0; i < c->n_graphs; i++) cudaGraphExecDestroy(c->graphs[i].exec);
    free(c->w);
    cuda_blas_free(c->blas);
    cuda_blas_free(c->side_blas);
    if (c->stream) cudaStreamDestroy(c->stream);
    if (c->side.stream) cudaStreamDestroy(c->side.stream);
    for (int i = 0; i < INFER_SIDE_EVENTS; i++)
        if (c->side.events[i]) cudaEventDestroy(c->side.events[i]);
    free(c);
}

/* ---- the shared steps of the blocks ------------------------------------------ */

/* How far apart consecutive products' matrices, inputs and outputs lie (in
 * elements) when `n` products can run as one strided batched GEMM: same
 * shape and form, inputs already in the GEMM's type, constant strides. */
typedef struct gemm_strides {
    long long w, x, y;
} gemm_strides;

static long long apart(const void *a, const void *b, size_t elem) {
    const ptrdiff_t d = (const char *)b - (const char *)a;
    return d > 0 && d % (ptrdiff_t)elem == 0 ? (long long)(d / (ptrdiff_t)elem) : 0;
}

/* The longest run of ops[0..n) that batches (1: none), its strides in *st.
 * Their activations may differ: each is applied to its own output after the
 * GEMM. int8 matrices batch wherever they lie: gemm dequantizes a run's
 * matrices one after another into c->w16, as far as it has room. */
static int batch_run(const rwkv_infer *c, const cuda_gemv_op *ops, int n, gemm_strides *st) {
    const cuda_gemv_op *a = &ops[0];
    const size_t we = cuda_dtype_size(c->wt), xe = a->X16 ? 2 : 4, ye = a->Y16 ? 2 : 4;
    const size_t elems = (size_t)a->out * a->in;
    if (a->accumulate || (c->wt != CUDA_F32 && !a->X16)) return 1;
    if (c->q8 && (size_t)n * elems > c->w16_elems) n = (int)(c->w16_elems / elems);
    int run = 1;
    for (; run < n; run++) {
        const cuda_gemv_op *p = &ops[run - 1], *q = &ops[run];
        const void *px = p->X16 ? p->X16 : (const void *)p->X, *qx = q->X16 ? q->X16 : (const void *)q->X;
        const void *py = p->Y16 ? p->Y16 : (void *)p->Y, *qy = q->Y16 ? q->Y16 : (void *)q->Y;
        const gemm_strides d = {c->q8 ? (long long)elems : apart(p->W, q->W, we), apart(px, qx, xe), apart(py, qy, ye)};
        if (q->out != a->out || q->in != a->in || q->ldx != a->ldx || q->accumulate ||
            !q->X16 != !a->X16 || !q->Y16 != !a->Y16 || !d.w || !d.x || !d.y)
            break;
        if (run > 1 && (d.w != st->w || d.x != st->x || d.y != st->y)) break;
        *st = d;
    }
    return run;
}

/* `batch` products as one GEMM (more rows than the GEMV takes), ops[i + 1]
 * `st` elements after ops[i] where batch > 1; q8: op->W holds int8 codes,
 * dequantized into c->w16 first; w_t: op->W is stored transposed, [in][out]. */
static rwkv_status gemm(rwkv_infer *c, cuda_blas *blas, cudaStream_t stream, const cuda_gemv_op *op, int batch,
                        const gemm_strides *st, int rows, bool q8, bool w_t, rwkv_error *err) {
    const void *B = op->X16 ? op->X16 : op->X;
    if (c->wt != CUDA_F32 && !op->X16) { /* the rows' used columns only; ldx >= in */
        const size_t n = (size_t)(rows - 1) * op->ldx + op->in;
        if (n > c->in16_floats) return rwkv_fail(err, RWKV_ERR_ARG, "product input of %zu floats too large", n);
        cuda_convert(c->wt, c->in16, CUDA_F32, op->X, n, stream);
        B = c->in16;
    }
    const void *W = op->W;
    if (q8) { /* bf16 copies of the int8 matrices, st->w apart (batch_run) */
        for (int i = 0; i < batch; i++)
            cuda_dequant_q8(op[i].W, op->out, op->in, (bf16 *)c->w16 + (size_t)i * st->w, stream);
        W = c->w16;
    }
    cuda_gemm g;
    memset(&g, 0, sizeof g);
    g.ab = c->wt, g.cd = op->Y16 ? CUDA_BF16 : CUDA_F32, g.trans_a = !w_t, g.m = op->out, g.n = rows, g.k = op->in;
    g.A = W, g.lda = w_t ? op->out : op->in, g.B = B, g.ldb = op->ldx;
    g.C = op->accumulate ? op->Y : NULL, g.D = op->Y16 ? op->Y16 : (void *)op->Y, g.ldc = op->out;
    g.batch = batch, g.alpha = 1.0f, g.beta = op->accumulate ? 1.0f : 0.0f;
    if (batch > 1) g.stride_a = st->w, g.stride_b = st->x, g.stride_c = st->y;
    return cuda_matmul(blas, &g, stream, err);
}

rwkv_status infer_products(rwkv_infer *c, const cuda_gemv_op *ops, int n, int rows, rwkv_error *err) {
    if (rows <= CUDA_GEMV_ROWS) { /* decode: bound by reading W */
        for (int i = 0; i < n; i += CUDA_GEMV_MAX_OPS)
            cuda_gemv_group(c->q8 ? CUDA_Q8 : c->wt, ops + i, n - i < CUDA_GEMV_MAX_OPS ? n - i : CUDA_GEMV_MAX_OPS,
                            rows, c->stream);
        return RWKV_OK;
    }
    for (int i = 0; i < n;) {
        gemm_strides st = {0, 0, 0};
        const int run = batch_run(c, ops + i, n - i, &st);
        rwkv_status s = gemm(c, c->blas, c->stream, &ops[i], run, &st, rows, c->q8, false, err);
        for (int j = i; j < i + run && s == RWKV_OK; j++) {
            const size_t count = (size_t)rows * ops[j].out;
            /* the activation in place, on the bf16 output when there is one */
            if (ops[j].Y16) infer_activation(c->stream, ops[j].act, CUDA_BF16, ops[j].Y16, count);
            else infer_activation(c->stream, ops[j].act, CUDA_F32, ops[j].Y, count);
        }
        if (s != RWKV_OK) return s;
        i += run;
    }
    return RWKV_OK;
}

rwkv_status infer_batched(rwkv_infer *c, cuda_blas *blas, cudaStream_t s, const cuda_gemv_op *op, int batch,
                          long long w_stride, long long x_stride, long long y_stride, int rows, rwkv_error *err) {
    const gemm_strides st = {w_stride, x_stride, y_stride};
    return gemm(c, blas, s, op, batch, &st, rows, false, false, err);
}

rwkv_status infer_linear(rwkv_infer *c, const void *W, int out, int in, const float *X, int ldx, int rows, float *Y,
                         int accumulate, rwkv_error *err) {
    const cuda_gemv_op op = {W, out, in, X, ldx, Y, accumulate, CUDA_ACT_NONE, NULL, NULL};
    return infer_products(c, &op, 1, rows, err);
}

void infer_layernorm(rwkv_infer *c, const float *x, const float *w, const float *b, int rows, float *z) {
    cuda_layernorm_forward(CUDA_F32, x, w, b, rows, c->sh.n_embd, z, c->mean, c->rstd, c->stream);
}

rwkv_status infer_channel_mix(rwkv_infer *c, int l, const infer_rows *rows, enum shift_form form,
                              const infer_ffn_weights *w, float *xm, float *h, float *v, float *r, rwkv_error *err) {
    const int C = c->sh.n_embd, F = c->sh.n_ffn, R = rows->n;
    const float *xk = xm, *xr = xm + (size_t)R * C;
    /* a large bf16 pass keeps xk, xr and relu²(W_k xk) in bf16 for the GEMMs */
    bf16 *m16 = (bf16 *)infer_mix16(c, R), *h16 = m16 ? (bf16 *)c->in16 : NULL;
    infer_ln_shift(c, w->ln_w, w->ln_b, rows, (size_t)(l + 1) * c->layer_state - C, form, w->Wr ? 2 : 1, w->mu, xm,
                   m16);
    cuda_gemv_op first[] = {{w->Wk, F, C, xk, C, h, 0, CUDA_ACT_RELU2, m16, h16},
                            {w->Wr, C, C, xr, C, r, 0, CUDA_ACT_NONE, m16 ? m16 + (size_t)R * C : NULL, NULL}};
    rwkv_status s = infer_products(c, first, w->Wr ? 2 : 1, R, err);
    if (s != RWKV_OK) return s;
    cuda_gemv_op second = {w->Wv, C, F, h, F, w->Wr ? v : c->x, !w->Wr, CUDA_ACT_NONE, h16, NULL};
    if (!c->value_t) s = infer_products(c, &second, 1, R, err);
    else if (R <= CUDA_GEMV_ROWS) /* W_v stored transposed: the rows of zero hiddens are not read */
        cuda_sparse_product(c->wt, second.W, second.out, second.in, second.X, second.ldx, R, second.Y,
                            second.accumulate, c->sparse, c->stream);
    else s = gemm(c, c->blas, c->stream, &second, 1, NULL, R, false, true, err);
    if (s != RWKV_OK || !w->Wr) return s;
    cuda_gate_residual_forward(CUDA_F32, c->x, r, v, c->x, (size_t)R * C, c->stream);
    return RWKV_OK;
}

/* ---- passes ---------------------------------------------------------------------- */

/* A pass's device work, its tokens and state pointers already uploaded:
 * embedding, ln0 and the blocks over the residual stream c->x. */
static rwkv_status forward(rwkv_infer *c, const infer_rows *rows, rwkv_error *err) {
    const int C = c->sh.n_embd, n = rows->n;
    cuda_embedding_forward(CUDA_F32, c->emb, c->tok, n, C, c->z, c->stream);
    infer_layernorm(c, c->z, c->ln0, c->ln0 + C, n, c->x);
    rwkv_status s = RWKV_OK;
    for (int l = 0; l < c->sh.n_layer && s == RWKV_OK; l++) s = c->ver->block(c, l, rows, err);
    return s;
}

/* ln_out and the head of `count` <= LOGIT_ROWS rows from `first` into c->logits. */
static rwkv_status head(rwkv_infer *c, int first, int count, rwkv_error *err) {
    const int C = c->sh.n_embd;
    infer_layernorm(c, c->x + (size_t)first * C, c->ln_out, c->ln_out + C, count, c->z);
    return infer_linear(c, c->head, c->sh.n_vocab, C, c->z, C, count, c->logits, 0, err);
}

/* forward() and the head of its last out_rows rows (<= LOGIT_ROWS) through
 * the pass shape's graph, captured at its first use (INFER_GRAPHS shapes at
 * most; later shapes run without one). */
static rwkv_status forward_graph(rwkv_infer *c, const infer_rows *rows, int out_rows, rwkv_error *err) {
    for (int i = 0; i < c->n_graphs; i++) {
        const infer_graph *g = &c->graphs[i];
        if (g->n == rows->n && g->n_streams == rows->n_streams && g->out_rows == out_rows)
            return cudaGraphLaunch(g->exec, c->stream) == cudaSuccess ? RWKV_OK : cuda_check("graph launch", err);
    }
    if (c->n_graphs == INFER_GRAPHS) {
        rwkv_status s = forward(c, rows, err);
        return s == RWKV_OK && out_rows ? head(c, rows->n - out_rows, out_rows, err) : s;
    }
    cudaGraph_t graph;
    if (cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess)
        return cuda_check("graph capture", err);
    rwkv_status s = forward(c, rows, err);
    if (s == RWKV_OK && out_rows) s = head(c, rows->n - out_rows, out_rows, err);
    const cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    if (s != RWKV_OK || e != cudaSuccess) {
        if (e == cudaSuccess) cudaGraphDestroy(graph);
        return s != RWKV_OK ? s : cuda_check("graph capture", err);
    }
    infer_graph *g = &c->graphs[c->n_graphs];
    const cudaError_t ie = cudaGraphInstantiate(&g->exec, graph, 0);
    cudaGraphDestroy(graph);
    if (ie != cudaSuccess) return cuda_check("graph instantiation", err);
    g->n = rows->n, g->n_streams = rows->n_streams, g->out_rows = out_rows;
    c->n_graphs++;
    return cudaGraphLaunch(g->exec, c->stream) == cudaSuccess ? RWKV_OK : cuda_check("graph launch", err);
}

static rwkv_status download(rwkv_infer *c, float *logits, int rows, rwkv_error *err) {
    const size_t bytes = sizeof(float) * rows * (size_t)c->sh.n_vocab;
    return cudaMemcpyAsync(logits, c->logits, bytes, cudaMemcpyDeviceToHost, c->stream) == cudaSuccess
               ? RWKV_OK
               : cuda_check("logits download", err);
}

/* Where a pass's logits go: to host `logits`, or, with `draw`, drawn into
 * draw->next[first + row] by the rules from draw->rules[first] on (already
 * in c->draw_rules, which holds the pass's rows from index 0). */
typedef struct pass_out {
    float *logits;
    const rwkv_infer_draw *draw;
    size_t first;
} pass_out;

/* The `count` rows of c->logits that are the pass's rows from `row` on. */
static rwkv_status deliver(rwkv_infer *c, const pass_out *o, int row, int count, rwkv_error *err) {
    if (!o->draw) return download(c, o->logits + (size_t)row * c->sh.n_vocab, count, err);
    cuda_draw(c->logits, c->sh.n_vocab, count, c->draw_rules + row, c->draw_bias_ids, c->draw_bias,
              c->draw_next + row, c->stream);
    return cudaMemcpyAsync(o->draw->next + o->first + row, c->draw_next + row, sizeof(int) * count,
                           cudaMemcpyDeviceToHost, c->stream) == cudaSuccess
               ? RWKV_OK
               : cuda_check("token download", err);
}

/* One pass; the logits of its last `out_rows` rows delivered (0: none). A
 * large pass computes and delivers them LOGIT_ROWS rows at a time (the
 * stream orders each delivery before the next head overwrites the buffer). */
static rwkv_status pass(rwkv_infer *c, float *const *d_states, const int *tokens, const infer_rows *rows,
                        const pass_out *out, int out_rows, rwkv_error *err) {
    const int n = rows->n;
    if (cudaMemcpyAsync(c->tok, tokens, sizeof(int) * n, cudaMemcpyHostToDevice, c->stream) != cudaSuccess ||
        cudaMemcpyAsync(c->ptrs, d_states, sizeof(float *) * rows->n_streams, cudaMemcpyHostToDevice, c->stream) !=
            cudaSuccess)
        return cuda_check("token upload", err);
    rwkv_status s;
    /* decode and batch steps are many short kernels: replayed as graphs */
    if (n <= CUDA_GEMV_ROWS || (rows->n_streams > 1 && out_rows <= LOGIT_ROWS)) {
        s = forward_graph(c, rows, out_rows, err);
        if (s == RWKV_OK && out_rows) s = deliver(c, out, 0, out_rows, err);
    } else {
        s = forward(c, rows, err);
        for (int done = 0; done < out_rows && s == RWKV_OK; done += LOGIT_ROWS) {
            const int count = out_rows - done < LOGIT_ROWS ? out_rows - done : LOGIT_ROWS;
            s = head(c, n - out_rows + done, count, err);
            if (s == RWKV_OK) s = deliver(c, out, done, count, err);
        }
    }
    return s == RWKV_OK ? cuda_sync(c->stream, "forward", err) : s;
}

extern "C" rwkv_status rwkv_infer_eval(rwkv_infer *c, float *const *d_states, size_t n_states, const int *tokens,
                                       size_t n, float *logits, int all_logits, rwkv_error *err) {
    const size_t V = (size_t)c->sh.n_vocab, R = (size_t)c->max_rows;
    const int batch = n_states > 1;
    for (size_t done = 0; done < n; done += R) {
        const int T = n - done < R ? (int)(n - done) : (int)R;
        /* the pass's rows: the one sequence's next T tokens, or T streams of one */
        infer_rows rows = {c->ptrs, batch ? T : 1, batch ? 1 : T, T};
        pass_out out = {NULL, NULL, 0};
        int out_rows = 0;
        if (logits && (all_logits || batch)) out.logits = logits + done * V, out_rows = T;
        else if (logits && done + T == n) out.logits = logits, out_rows = 1;
        rwkv_status s = pass(c, batch ? d_states + done : d_states, tokens + done, &rows, &out, out_rows, err);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}

/* The draw's device buffers: rules and tokens for max_rows rows once, the
 * bias lists grown to n_bias entries. */
static rwkv_status draw_buffers(rwkv_infer *c, size_t n_bias, rwkv_error *err) {
    const size_t R = (size_t)c->max_rows;
    rwkv_status s = RWKV_OK;
    if (!c->draw_rules) s = cuda_alloc((void **)&c->draw_rules, R * sizeof(cuda_draw_rule), "draw rules", err);
    if (s == RWKV_OK && !c->draw_next) s = cuda_alloc((void **)&c->draw_next, R * sizeof(int), "drawn tokens", err);
    if (s != RWKV_OK || n_bias <= c->draw_bias_cap) return s;
    cudaStreamSynchronize(c->stream); /* the old lists may still be read */
    cuda_free(c->draw_bias_ids), cuda_free(c->draw_bias);
    c->draw_bias_ids = NULL, c->draw_bias = NULL, c->draw_bias_cap = 0;
    const size_t cap = n_bias < 4096 ? 4096 : n_bias;
    s = cuda_alloc((void **)&c->draw_bias_ids, cap * sizeof(int), "draw biases", err);
    if (s == RWKV_OK) s = cuda_alloc((void **)&c->draw_bias, cap * sizeof(float), "draw biases", err);
    if (s == RWKV_OK) c->draw_bias_cap = cap;
    return s;
}

extern "C" rwkv_status rwkv_infer_eval_draw(rwkv_infer *c, float *const *d_states, size_t n, const int *tokens,
                                            const rwkv_infer_draw *draw, rwkv_error *err) {
    rwkv_status s = draw_buffers(c, draw->n_bias, err);
    if (s != RWKV_OK) return s;
    if (draw->n_bias &&
        (cudaMemcpyAsync(c->draw_bias_ids, draw->bias_ids, draw->n_bias * sizeof(int), cudaMemcpyHostToDevice,
                         c->stream) != cudaSuccess ||
         cudaMemcpyAsync(c->draw_bias, draw->bias, draw->n_bias * sizeof(float), cudaMemcpyHostToDevice,
                         c->stream) != cudaSuccess))
        return cuda_check("bias upload", err);
    const size_t R = (size_t)c->max_rows;
    for (size_t done = 0; done < n; done += R) {
        const int T = n - done < R ? (int)(n - done) : (int)R;
        if (cudaMemcpyAsync(c->draw_rules, draw->rules + done, T * sizeof(cuda_draw_rule), cudaMemcpyHostToDevice,
                            c->stream) != cudaSuccess)
            return cuda_check("rule upload", err);
        infer_rows rows = {c->ptrs, T, 1, T};
        const pass_out out = {NULL, draw, done};
        s = pass(c, d_states + done, tokens + done, &rows, &out, T, err);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}
