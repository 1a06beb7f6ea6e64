/* The CUDA backend of RWKV-4 (model/model.h): the model is built for the
 * CPU first (shape checks, info, the fresh state), then its weights go to
 * the GPU once (cuda/rwkv4_infer.h) and every evaluation runs there.
 *
 * A state lives on the GPU in the CPU's layout, with a host copy in
 * st->data for rwkv_state_data, state files and rwkv_state_copy. Which copy
 * is current is tracked so that each moves only when needed: the host copy
 * is refreshed when it is asked for (the caller may then write it, so the
 * next evaluation uploads it first). */
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "cuda/cuda_ops.h"
#include "cuda/rwkv4_infer.h"
#include "model/common.h"
#include "model/load.h"

typedef struct cuda_seq {
    float *d_state;
    int host_current;   /* st->data equals the device state */
    int device_current; /* the device state equals st->data */
} cuda_seq;

static rwkv_status state_init(rwkv_state *st, rwkv_error *err) {
    const rwkv_model *m = st->model;
    st->n = m->info.state_floats;
    cuda_seq *q = calloc(1, sizeof *q);
    if (!q || !(st->data = malloc(st->n * sizeof(float)))) {
        free(q);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    rwkv_status s = cuda_alloc((void **)&q->d_state, st->n * sizeof(float), "state", err);
    if (s != RWKV_OK) {
        free(q);
        free(st->data);
        return s;
    }
    common_state_init(m, st->data);
    q->host_current = 1;
    st->seq = q;
    return RWKV_OK;
}

static void state_reset(rwkv_state *st) {
    cuda_seq *q = st->seq;
    common_state_init(st->model, st->data);
    q->host_current = 1;
    q->device_current = 0;
}

static void state_release(rwkv_state *st) {
    cuda_seq *q = st->seq;
    if (q) cuda_free(q->d_state);
    free(q);
    free(st->data);
}

static void state_memory(const rwkv_state *st, size_t *used, size_t *reserved) {
    *used = *reserved = st->n * sizeof(float);
}

static float *state_host(rwkv_state *st) {
    cuda_seq *q = st->seq;
    if (!q->host_current && cuda_download(st->data, q->d_state, st->n * sizeof(float), NULL) != RWKV_OK)
        return NULL;
    q->host_current = 1;
    q->device_current = 0; /* the caller may write the host copy */
    return st->data;
}

static rwkv_status eval(rwkv_model *m, rwkv_state *st, const int *tokens, size_t n, float *logits, int all_logits,
                        rwkv_error *err) {
    cuda_seq *q = st->seq;
    rwkv_status s = RWKV_OK;
    if (!q->device_current) s = cuda_upload(q->d_state, st->data, st->n * sizeof(float), err);
    if (!q->device_current && s == RWKV_OK) s = cuda_sync(0, "state upload", err); /* the DMA has ended */
    if (s != RWKV_OK) return s;
    q->device_current = 1;
    q->host_current = 0;
    return rwkv4_infer_eval(m->device, q->d_state, tokens, n, logits, all_logits, err);
}

/* One token per state, one after another: each is a decode step of its own
 * sequence (the states are distinct, so the order does not matter). */
static rwkv_status eval_batch(rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n, float *logits,
                              rwkv_error *err) {
    const size_t V = (size_t)m->info.n_vocab;
    for (size_t i = 0; i < n; i++) {
        rwkv_status s = eval(m, states[i], tokens + i, 1, logits ? logits + i * V : NULL, 0, err);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}

static void device_free(rwkv_model *m) { rwkv4_infer_free(m->device); }

static const model_backend rwkv4_cuda_backend = {
    .device = "cuda",
    .state_init = state_init,
    .state_reset = state_reset,
    .state_release = state_release,
    .state_memory = state_memory,
    .state_host = state_host,
    .eval = eval,
    .eval_batch = eval_batch,
    .forward = NULL,
    .impl_free = common_free,
    .device_free = device_free,
};

/* rwkv4_infer_fetch over the checkpoint: any float dtype, converted. */
static rwkv_status fetch(void *ctx, const char *name, float *dst, size_t numel, rwkv_error *err) {
    const tensor *t = model_tensor(ctx, name, err);
    if (!t) return RWKV_ERR_SHAPE;
    if (!dtype_is_float(t->type))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "tensor '%s' is %s; the GPU takes float weights (f32/f16/bf16)",
                         name, dtype_name(t->type));
    if ((size_t)tensor_numel(t) != numel)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' has %lld elements, expected %zu", name,
                         (long long)tensor_numel(t), numel);
    dtype_to_f32(t->type, t->data, dst, numel);
    return RWKV_OK;
}

rwkv_status model_to_cuda(rwkv_model *m, int device_index, int bf16, rwkv_error *err) {
    if (m->info.arch != RWKV_ARCH_RWKV || strcmp(m->info.version, "4") != 0)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "--device cuda runs RWKV-4 models only; this is %s%s (run it on the cpu)",
                         m->info.arch == RWKV_ARCH_RWKV ? "RWKV-" : "the ",
                         m->info.arch == RWKV_ARCH_RWKV ? m->info.version : "GPT baseline");
    const rwkv_common *c = m->impl;
    rwkv4_infer_shape sh = {c->V, c->C, c->L, c->F, c->A};
    rwkv4_infer *ctx;
    rwkv_status s = rwkv4_infer_new(&sh, bf16, device_index, fetch, &m->weights, &ctx, err);
    if (s != RWKV_OK) return s;
    m->device = ctx;
    m->backend = &rwkv4_cuda_backend;
    return RWKV_OK;
}
