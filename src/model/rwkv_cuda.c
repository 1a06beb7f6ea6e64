/* The CUDA backend of the RWKV family (model/model.h): the model is built
 * for the CPU first (shape checks, info, the fresh state), then its weights
 * go to the GPU once and every evaluation runs there: RWKV-4 through
 * cuda/rwkv4_infer.h, RWKV-5/6/7 through cuda/rwkv_infer.h (which also runs
 * a batch step as one pass over the weights).
 *
 * A state lives on the GPU in the CPU's layout, with a host copy in
 * st->data for rwkv_state_data, state files and rwkv_state_copy. Which copy
 * is current is tracked so that each moves only when needed: the host copy
 * is refreshed when it is asked for (the caller may then write it, so the
 * next evaluation uploads it first). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "kernels/kernels.h"
#include "cuda/cuda_ops.h"
#include "cuda/rwkv4_infer.h"
#include "cuda/rwkv_infer.h"
#include "model/common.h"
#include "model/load.h"

/* m->device: the context of the model's version. */
typedef struct cuda_model {
    rwkv4_infer *v4;  /* RWKV-4 */
    rwkv_infer *wkv;  /* RWKV-5/6/7 */
} cuda_model;

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

/* Makes the device copy current (uploading what the caller wrote); from
 * here on the evaluation changes it, so the host copy is stale. */
static rwkv_status state_to_device(rwkv_state *st, rwkv_error *err) {
    cuda_seq *q = st->seq;
    rwkv_status s = RWKV_OK;
    if (!q->device_current) s = cuda_upload(q->d_state, st->data, st->n * sizeof(float), err);
    if (!q->device_current && s == RWKV_OK) s = cuda_sync(0, "state upload", err); /* the DMA has ended */
    if (s != RWKV_OK) return s;
    q->device_current = 1;
    q->host_current = 0;
    return RWKV_OK;
}

static rwkv_status eval(rwkv_model *m, rwkv_state *st, const int *tokens, size_t n, float *logits, int all_logits,
                        rwkv_error *err) {
    const cuda_model *g = m->device;
    rwkv_status s = state_to_device(st, err);
    if (s != RWKV_OK) return s;
    cuda_seq *q = st->seq;
    if (g->v4) return rwkv4_infer_eval(g->v4, q->d_state, tokens, n, logits, all_logits, err);
    return rwkv_infer_eval(g->wkv, &q->d_state, 1, tokens, n, logits, all_logits, err);
}

/* RWKV-5/6/7: one pass for all rows. RWKV-4: one decode step per state,
 * one after another (the states are distinct, so the order does not matter). */
static rwkv_status eval_batch(rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n, float *logits,
                              rwkv_error *err) {
    const cuda_model *g = m->device;
    const size_t V = (size_t)m->info.n_vocab;
    if (g->v4) {
        for (size_t i = 0; i < n; i++) {
            rwkv_status s = eval(m, states[i], tokens + i, 1, logits ? logits + i * V : NULL, 0, err);
            if (s != RWKV_OK) return s;
        }
        return RWKV_OK;
    }
    float **ptrs = malloc(n * sizeof *ptrs);
    if (!ptrs) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for a batch of %zu", n);
    rwkv_status s = RWKV_OK;
    for (size_t i = 0; i < n && s == RWKV_OK; i++) {
        s = state_to_device(states[i], err);
        ptrs[i] = ((cuda_seq *)states[i]->seq)->d_state;
    }
    if (s == RWKV_OK) s = rwkv_infer_eval(g->wkv, ptrs, n, tokens, n, logits, 1, err);
    free(ptrs);
    return s;
}

/* RWKV-5/6/7: the rules and their biases flattened for the device, the
 * draw there. RWKV-4 decodes its rows one by one on the host's side anyway:
 * its logits are drawn on the host. */
static rwkv_status eval_batch_draw(rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n,
                                   const rwkv_draw *draws, int *next, rwkv_error *err) {
    const cuda_model *g = m->device;
    if (g->v4) return model_eval_batch_draw_host(m, states, tokens, n, draws, next, err);
    size_t n_bias = 0;
    for (size_t i = 0; i < n; i++) n_bias += draws[i].n_bias;
    if (n_bias > INT_MAX) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_batch_sample: %zu biases in all", n_bias);
    cuda_draw_rule *rules = malloc(n * sizeof *rules);
    float **ptrs = malloc(n * sizeof *ptrs);
    int *ids = malloc((n_bias ? n_bias : 1) * sizeof *ids);
    float *bias = malloc((n_bias ? n_bias : 1) * sizeof *bias);
    rwkv_status s = RWKV_OK;
    if (!rules || !ptrs || !ids || !bias) s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for a batch of %zu", n);
    size_t at = 0;
    for (size_t i = 0; i < n && s == RWKV_OK; i++) {
        const rwkv_draw *d = &draws[i];
        const int V = m->info.n_vocab, n_ids = d->n_ids > 0 && d->n_ids < V ? d->n_ids : V;
        const cuda_draw_rule r = {d->temperature, d->top_p, d->uniform, d->top_k, (int)at, (int)d->n_bias, n_ids};
        rules[i] = r;
        if (d->n_bias) memcpy(ids + at, d->bias_ids, d->n_bias * sizeof *ids);
        if (d->n_bias) memcpy(bias + at, d->bias, d->n_bias * sizeof *bias);
        at += d->n_bias;
        s = state_to_device(states[i], err);
        ptrs[i] = s == RWKV_OK ? ((cuda_seq *)states[i]->seq)->d_state : NULL;
    }
    const rwkv_infer_draw draw = {rules, ids, bias, n_bias, next};
    if (s == RWKV_OK) s = rwkv_infer_eval_draw(g->wkv, ptrs, n, tokens, &draw, err);
    free(rules), free(ptrs), free(ids), free(bias);
    return s;
}

static void device_free(rwkv_model *m) {
    cuda_model *g = m->device;
    rwkv4_infer_free(g->v4);
    rwkv_infer_free(g->wkv);
    free(g);
}

static const model_backend rwkv_cuda_backend = {
    .device = "cuda",
    .state_init = state_init,
    .state_reset = state_reset,
    .state_release = state_release,
    .state_memory = state_memory,
    .state_host = state_host,
    .eval = eval,
    .eval_batch = eval_batch,
    .eval_batch_draw = eval_batch_draw,
    .forward = NULL,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .impl_free = common_free,
    .device_free = device_free,
};

/* The checkpoint as the contexts' weight source: any float dtype, converted. */
static size_t numel(void *ctx, const char *name) {
    const tensor *t = tensor_set_find(ctx, name);
    return t ? (size_t)tensor_numel(t) : 0;
}

static rwkv_status fetch(void *ctx, const char *name, float *dst, size_t n, rwkv_error *err) {
    const tensor *t = model_tensor(ctx, name, err);
    if (!t) return RWKV_ERR_SHAPE;
    if (!dtype_is_float(t->type) && !dtype_is_block(t->type))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "tensor '%s' is %s; the GPU takes float or quantized weights",
                         name, dtype_name(t->type));
    if ((size_t)tensor_numel(t) != n)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' has %lld elements, expected %zu", name,
                         (long long)tensor_numel(t), n);
    dtype_to_f32(t->type, t->data, dst, n);
    return RWKV_OK;
}

static void quantize_q8(const float *src, void *blocks, size_t n) { quantize_row(DT_Q8_0, src, blocks, n); }

static rwkv_status wkv_context(rwkv_model *m, int device_index, cuda_matrices mats, rwkv_infer **out,
                               rwkv_error *err) {
    const rwkv_model_info *in = &m->info;
    const int version = in->version[0] - '0';
    rwkv_infer_shape sh = {version, strcmp(in->version, "5.0") != 0, in->n_vocab, in->n_embd, in->n_layer,
                           in->n_ffn, in->dim_att, in->n_head, in->head_size, {0, 0, 0, 0}, in->gn_eps};
    const int lora6[] = {in->d_mix_lora, in->d_decay_lora, 0, 0},
              lora7[] = {in->d_decay_lora, in->d_aaa_lora, in->d_mv_lora, in->d_gate_lora};
    memcpy(sh.lora, version == 6 ? lora6 : version == 7 ? lora7 : sh.lora, sizeof sh.lora);
    rwkv_infer_source src = {&m->weights, numel, fetch, quantize_q8};
    const rwkv_infer_matrices im = mats == CUDA_MATRICES_INT8   ? RWKV_INFER_INT8
                                   : mats == CUDA_MATRICES_BF16 ? RWKV_INFER_BF16
                                                                : RWKV_INFER_FP32;
    return rwkv_infer_new(&sh, im, device_index, &src, out, err);
}

rwkv_status model_to_cuda(rwkv_model *m, int device_index, cuda_matrices mats, rwkv_error *err) {
    if (m->info.arch != RWKV_ARCH_RWKV)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "--device cuda runs the RWKV family; the GPT baseline runs on the cpu");
    cuda_model *g = calloc(1, sizeof *g);
    if (!g) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    rwkv_status s;
    if (strcmp(m->info.version, "4") == 0 && mats == CUDA_MATRICES_INT8) {
        free(g);
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "int8 matrices on the GPU are for RWKV-5/6/7; use fp32 or bf16");
    }
    if (strcmp(m->info.version, "4") == 0) {
        const rwkv_common *c = m->impl;
        rwkv4_infer_shape sh = {c->V, c->C, c->L, c->F, c->A};
        s = rwkv4_infer_new(&sh, mats == CUDA_MATRICES_BF16, device_index, fetch, &m->weights, &g->v4, err);
    } else {
        s = wkv_context(m, device_index, mats, &g->wkv, err);
    }
    if (s != RWKV_OK) {
        free(g);
        return s;
    }
    m->device = g;
    m->backend = &rwkv_cuda_backend;
    return RWKV_OK;
}
