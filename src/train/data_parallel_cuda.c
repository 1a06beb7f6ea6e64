/* The data-parallel half of the CUDA engine (train/engine_cuda.h,
 * docs/multigpu.md): every rank holds the whole model and trains on its
 * rows of each micro-batch; the gradients are averaged over the ranks while
 * the backward still runs; each rank keeps Adam's moments for one slice of
 * the flat buffer only (ZeRO-1) and updates that slice, and the slices are
 * then gathered so that every rank holds the new parameters.
 *
 * The flat buffer is cut into world slices of `slice` floats (the last one
 * shorter, or empty); the parameter buffer is made world x slice floats
 * long, so that NCCL's all-gather runs in place. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/engine_cuda.h"

/* The backward's gradients are sent in buckets of at least this many floats
 * (64 MiB of fp32): fewer, larger collectives, still several per model. */
enum { BUCKET_FLOATS = 16 << 20 };

static cuda_stream comm_stream(cuda_engine *c) { return cuda_comm_stream(c->comm); }

/* Intersects the Adam spans with [lo, hi), dropping the empty ones. */
static void clip_spans(cuda_engine *c) {
    int k = 0;
    for (int i = 0; i < c->n_spans; i++) {
        cuda_adam_span sp = c->spans[i];
        size_t a = sp.offset > c->lo ? sp.offset : c->lo;
        size_t b = sp.offset + sp.count < c->hi ? sp.offset + sp.count : c->hi;
        if (a >= b) continue;
        sp.offset = a;
        sp.count = b - a;
        c->spans[k++] = sp;
    }
    c->n_spans = k;
}

rwkv_status dp_plan(cuda_engine *c, rwkv4_cuda_shard *shard, rwkv_error *err) {
    const train_engine_config *cfg = &c->cfg;
    if (cfg->batch % c->world != 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "--batch %d is not divisible by the %d GPUs of the run (each takes an equal share)",
                         cfg->batch, c->world);
    c->local_batch = cfg->batch / c->world;
    const size_t align = 64; /* 256-byte aligned slices */
    c->slice = ((c->n + (size_t)c->world - 1) / (size_t)c->world + align - 1) / align * align;
    c->lo = (size_t)c->rank * c->slice < c->n ? (size_t)c->rank * c->slice : c->n;
    c->hi = c->lo + c->slice < c->n ? c->lo + c->slice : c->n;
    c->unreduced = c->n;
    clip_spans(c);
    *shard = (rwkv4_cuda_shard){c->slice * (size_t)c->world, c->lo, c->hi};
    if (cfg->allreduce_bf16 && cudaMalloc(&c->wire, c->n * 2 + 16) != cudaSuccess) {
        cudaGetLastError();
        c->wire = NULL;
        return rwkv_fail(err, RWKV_ERR_NOMEM, "device memory for the bf16 gradients (%zu MiB)", c->n * 2 >> 20);
    }
    return RWKV_OK;
}

/* A device buffer of n floats for a moment or parameter exchange. */
static rwkv_status scratch(float **buf, size_t n, rwkv_error *err) {
    if (cudaMalloc((void **)buf, n * sizeof(float)) == cudaSuccess) return RWKV_OK;
    cudaGetLastError();
    *buf = NULL;
    return rwkv_fail(err, RWKV_ERR_NOMEM, "device memory to exchange %zu MiB of optimizer state",
                     n * sizeof(float) >> 20);
}

static rwkv_status copy_on_comm(cuda_engine *c, void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                                rwkv_error *err) {
    if (bytes && cudaMemcpyAsync(dst, src, bytes, kind, (cudaStream_t)comm_stream(c)) != cudaSuccess)
        return cuda_check("copy beside the collectives", err);
    return RWKV_OK;
}

rwkv_status dp_share_state(cuda_engine *c, rwkv_error *err) {
    const rwkv4_cuda_device d = rwkv4_cuda_device_state(c->ctx);
    float *tmp = NULL;
    rwkv_status s = cuda_comm_follow(c->comm, d.stream, err);
    if (s == RWKV_OK) s = cuda_comm_broadcast(c->comm, d.params, c->n, CUDA_COMM_F32, err);
    if (s == RWKV_OK) s = cuda_comm_wait(c->comm, "the parameters' broadcast", err);
    if (s == RWKV_OK) rwkv4_cuda_refresh_bf16(c->ctx);
    if (s == RWKV_OK) s = scratch(&tmp, c->n, err);
    for (int k = 0; k < 2 && s == RWKV_OK; k++) {
        const float *host = k ? c->v : c->m;
        float *dev = k ? d.v : d.m;
        if (c->rank == 0) s = copy_on_comm(c, tmp, host, c->n * sizeof(float), cudaMemcpyHostToDevice, err);
        if (s == RWKV_OK) s = cuda_comm_broadcast(c->comm, tmp, c->n, CUDA_COMM_F32, err);
        if (s == RWKV_OK)
            s = copy_on_comm(c, dev, tmp + c->lo, (c->hi - c->lo) * sizeof(float), cudaMemcpyDeviceToDevice, err);
        if (s == RWKV_OK) s = cuda_comm_wait(c->comm, "the optimizer state's broadcast", err);
    }
    if (tmp) cudaFree(tmp);
    if (s == RWKV_OK) s = rwkv4_cuda_sync(c->ctx, err);
    return s;
}

/* Averages the gradients [from, unreduced) over the ranks, on the
 * communicator's stream once the backward has produced them. */
static rwkv_status reduce_from(cuda_engine *c, size_t from, rwkv_error *err) {
    if (from >= c->unreduced) return RWKV_OK;
    const rwkv4_cuda_device d = rwkv4_cuda_device_state(c->ctx);
    const size_t count = c->unreduced - from;
    c->unreduced = from;
    rwkv_status s = cuda_comm_follow(c->comm, d.stream, err);
    if (s != RWKV_OK) return s;
    if (!c->wire) return cuda_comm_all_reduce(c->comm, d.grads + from, d.grads + from, count, CUDA_COMM_F32, CUDA_COMM_AVG, err);
    uint16_t *w = (uint16_t *)c->wire + from;
    cuda_convert(CUDA_BF16, w, CUDA_F32, d.grads + from, count, comm_stream(c));
    s = cuda_comm_all_reduce(c->comm, w, w, count, CUDA_COMM_BF16, CUDA_COMM_AVG, err);
    cuda_convert(CUDA_F32, d.grads + from, CUDA_BF16, w, count, comm_stream(c));
    return s;
}

/* rwkv4_cuda's hook: the gradients from `from` on are final. */
static void grads_final(void *user, size_t from) {
    cuda_engine *c = user;
    if (c->unreduced - from < (size_t)BUCKET_FLOATS && from > 0) return;
    rwkv_error err;
    cuda_engine_keep_failure(c, reduce_from(c, from, &err), &err);
}

rwkv_status dp_accumulate(cuda_engine *c, const int *inputs, const int *targets, int last, float *loss,
                          rwkv_error *err) {
    const size_t off = (size_t)c->rank * (size_t)c->local_batch * (size_t)c->cfg.ctx_len;
    c->last_inputs = inputs + off;
    c->last_targets = targets + off;
    c->unreduced = c->n;
    rwkv4_cuda_set_grad_hook(c->ctx, last ? grads_final : NULL, c);
    float local = 0;
    rwkv_status s = rwkv4_cuda_forward_backward(c->ctx, c->last_inputs, c->last_targets, c->cfg.l2wrap, &local, err);
    rwkv4_cuda_set_grad_hook(c->ctx, NULL, NULL);
    if (s == RWKV_ERR_NUMERIC) { /* the other ranks still reduce with this one */
        local = NAN;
        s = RWKV_OK;
    }
    if (s == RWKV_OK && c->pending != RWKV_OK) {
        s = c->pending;
        if (err) *err = c->pending_err;
    }
    if (s == RWKV_OK && last) s = reduce_from(c, 0, err);
    double sum = local;
    if (s == RWKV_OK) s = train_dist_sum(c->cfg.dist, &sum, 1, err);
    if (s != RWKV_OK) return s;
    *loss = (float)(sum / c->world);
    if (!isfinite(*loss)) return rwkv_fail(err, RWKV_ERR_NUMERIC, "the loss is not finite");
    return RWKV_OK;
}

rwkv_status dp_gather_params(cuda_engine *c, rwkv_error *err) {
    const rwkv4_cuda_device d = rwkv4_cuda_device_state(c->ctx);
    const size_t mine = (size_t)c->rank * c->slice;
    rwkv_status s = cuda_comm_follow(c->comm, d.stream, err);
    if (s == RWKV_OK) s = cuda_comm_all_gather(c->comm, d.params + mine, d.params, c->slice, CUDA_COMM_F32, err);
    if (s == RWKV_OK) s = cuda_comm_wait(c->comm, "the parameters' all-gather", err);
    if (s == RWKV_OK) rwkv4_cuda_refresh_bf16(c->ctx);
    return s;
}

rwkv_status dp_gather_moments(cuda_engine *c, rwkv_error *err) {
    const rwkv4_cuda_device d = rwkv4_cuda_device_state(c->ctx);
    const size_t mine = (size_t)c->rank * c->slice;
    float *tmp = NULL;
    rwkv_status s = scratch(&tmp, c->slice * (size_t)c->world, err);
    if (s == RWKV_OK) s = cuda_comm_follow(c->comm, d.stream, err);
    for (int k = 0; k < 2 && s == RWKV_OK; k++) {
        s = copy_on_comm(c, tmp + mine, k ? d.v : d.m, (c->hi - c->lo) * sizeof(float), cudaMemcpyDeviceToDevice,
                         err);
        if (s == RWKV_OK) s = cuda_comm_all_gather(c->comm, tmp + mine, tmp, c->slice, CUDA_COMM_F32, err);
        if (s == RWKV_OK) s = cuda_comm_wait(c->comm, "the optimizer state's all-gather", err);
        if (s == RWKV_OK && c->rank == 0)
            s = copy_on_comm(c, k ? c->v : c->m, tmp, c->n * sizeof(float), cudaMemcpyDeviceToHost, err);
        if (s == RWKV_OK) s = cuda_comm_wait(c->comm, "the optimizer state's download", err);
    }
    if (tmp) cudaFree(tmp);
    return s;
}

rwkv_status dp_eval_loss(cuda_engine *c, const int *inputs, const int *targets, int n_seq, float *loss,
                         rwkv_error *err) {
    const int first = (int)((long)c->rank * n_seq / c->world), end = (int)((long)(c->rank + 1) * n_seq / c->world);
    const int rows = end - first;
    const size_t off = (size_t)first * (size_t)c->cfg.ctx_len;
    rwkv4_cuda *ctx = c->ctx;
    rwkv_status s = RWKV_OK;
    if (rows > 0 && rows != c->local_batch) s = cuda_engine_rem_context(c, rows, &ctx, err);
    float local = 0;
    if (s == RWKV_OK && rows > 0) s = rwkv4_cuda_forward_loss(ctx, inputs + off, targets + off, NULL, &local, err);
    if (s == RWKV_ERR_NUMERIC) {
        local = NAN;
        s = RWKV_OK;
    }
    double sum = (double)local * rows;
    if (s == RWKV_OK) s = train_dist_sum(c->cfg.dist, &sum, 1, err);
    if (s != RWKV_OK) return s;
    *loss = (float)(sum / n_seq);
    if (!isfinite(*loss)) return rwkv_fail(err, RWKV_ERR_NUMERIC, "the loss is not finite");
    return RWKV_OK;
}
