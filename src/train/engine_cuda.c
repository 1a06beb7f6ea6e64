/* The CUDA training engine (train/engine.h): RWKV-4 on one NVIDIA GPU
 * through the context of cuda/cuda_backend.h. Parameters, gradients and
 * Adam moments live in device memory; the host sees them only through
 * export_state (a download into buffers this engine owns, for a checkpoint)
 * and gives them once, at the start (an upload). The flat layout is the
 * CPU's, so checkpoints move between the two engines unchanged. With
 * config.dist the engine is one rank of a data-parallel run and the calls
 * that involve the other ranks go through train/data_parallel_cuda.c.
 *
 * Every device call returns a status, but several operations of the table
 * cannot (zero_grads, adam_step): their failure is kept and returned by the
 * next call that can fail, before it does anything. */
#include "train/engine_cuda.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/peak_cuda.h"

void cuda_engine_keep_failure(cuda_engine *c, rwkv_status s, const rwkv_error *e) {
    if (s != RWKV_OK && c->pending == RWKV_OK) {
        c->pending = s;
        c->pending_err = *e;
    }
}

static rwkv_status take_failure(cuda_engine *c, rwkv_error *err) {
    if (c->pending == RWKV_OK) return RWKV_OK;
    if (err) *err = c->pending_err;
    return c->pending;
}

static void cuda_engine_free(train_engine *e) {
    cuda_engine *c = (cuda_engine *)e;
    if (!c) return;
    rwkv4_cuda_free(c->ctx);
    rwkv4_cuda_free(c->ctx_rem);
    if (c->wire) cudaFree(c->wire);
    free(c->spans);
    free(c->params);
    free(c->m);
    free(c->v);
    free(c->grads);
    free(c);
}

static void cuda_engine_zero_grads(train_engine *e) {
    cuda_engine *c = (cuda_engine *)e;
    rwkv_error err;
    cuda_engine_keep_failure(c, rwkv4_cuda_zero_grads(c->ctx, &err), &err);
}

static rwkv_status cuda_engine_accumulate(train_engine *e, const int *inputs, const int *targets, int last,
                                          float *loss, rwkv_error *err) {
    cuda_engine *c = (cuda_engine *)e;
    rwkv_status s = take_failure(c, err);
    if (s != RWKV_OK) return s;
    if (c->comm) return dp_accumulate(c, inputs, targets, last, loss, err);
    c->last_inputs = inputs;
    c->last_targets = targets;
    return rwkv4_cuda_forward_backward(c->ctx, inputs, targets, c->cfg.l2wrap, loss, err);
}

static double cuda_engine_grad_norm(train_engine *e) {
    cuda_engine *c = (cuda_engine *)e;
    rwkv_error err;
    double norm = NAN;
    rwkv_status s = take_failure(c, &err);
    if (s == RWKV_OK) s = rwkv4_cuda_grad_norm(c->ctx, &norm, &err);
    cuda_engine_keep_failure(c, s, &err);
    return s == RWKV_OK ? norm : NAN;
}

static const char *cuda_engine_nonfinite_param(train_engine *e) {
    cuda_engine *c = (cuda_engine *)e;
    rwkv_error err;
    if (!c->grads) c->grads = malloc(c->n * sizeof(float) + 1);
    if (!c->grads) return "(unknown: out of host memory)";
    rwkv_status s = rwkv4_cuda_download_grads(c->ctx, c->grads, &err);
    if (s != RWKV_OK) {
        cuda_engine_keep_failure(c, s, &err);
        return "(unknown: the gradients could not be read back)";
    }
    return param_layout_first_nonfinite(c->cfg.lay, c->grads);
}

/* Clipping was folded into grad_scale by the loop (from grad_norm), so the
 * device's own clipping stays off (max_norm 0). */
static void cuda_engine_adam_step(train_engine *e, float lr, float grad_scale, long t) {
    cuda_engine *c = (cuda_engine *)e;
    rwkv_error err;
    c->host_valid = 0;
    rwkv_status s = rwkv4_cuda_adam_update(c->ctx, c->spans, c->n_spans, lr, grad_scale, 0.0f, t, &c->hp, &err);
    if (s == RWKV_OK && c->comm) s = dp_gather_params(c, &err);
    cuda_engine_keep_failure(c, s, &err);
}

/* Downloads parameters and moments into the host buffers (once per update). */
static rwkv_status download_state(cuda_engine *c, rwkv_error *err) {
    rwkv_status s = take_failure(c, err);
    if (s != RWKV_OK || c->host_valid) return s;
    s = rwkv4_cuda_download_params(c->ctx, c->params, err);
    if (s == RWKV_OK) s = c->comm ? dp_gather_moments(c, err) : rwkv4_cuda_download_moments(c->ctx, c->m, c->v, err);
    c->host_valid = s == RWKV_OK;
    return s;
}

rwkv_status cuda_engine_rem_context(cuda_engine *c, int rows, rwkv4_cuda **out, rwkv_error *err) {
    rwkv_status s = RWKV_OK;
    if (!c->ctx_rem)
        s = rwkv4_cuda_new(c->cfg.lay, rows, c->cfg.ctx_len, c->cfg.bf16 ? RWKV4_CUDA_BF16 : RWKV4_CUDA_FP32,
                           &c->ctx_rem, err);
    if (s == RWKV_OK) s = rwkv4_cuda_download_params(c->ctx, c->params, err);
    if (s == RWKV_OK) s = rwkv4_cuda_upload_params(c->ctx_rem, c->params, err);
    *out = c->ctx_rem;
    return s;
}

/* A validation batch of n_seq sequences: the training context for a full
 * batch; for the smaller last one a second context, which receives the
 * current parameters through the host. */
static rwkv_status cuda_engine_eval_loss(train_engine *e, const int *inputs, const int *targets, int n_seq,
                                         float *loss, rwkv_error *err) {
    cuda_engine *c = (cuda_engine *)e;
    rwkv_status s = take_failure(c, err);
    if (s != RWKV_OK) return s;
    if (c->comm) return dp_eval_loss(c, inputs, targets, n_seq, loss, err);
    if (n_seq == c->cfg.batch) return rwkv4_cuda_forward_loss(c->ctx, inputs, targets, NULL, loss, err);
    if (n_seq != c->cfg.val_rem_batch)
        return rwkv_fail(err, RWKV_ERR_ARG, "validation batch of %d sequences: no context for it", n_seq);
    rwkv4_cuda *rem = NULL;
    s = cuda_engine_rem_context(c, n_seq, &rem, err);
    if (s == RWKV_OK) s = rwkv4_cuda_forward_loss(rem, inputs, targets, NULL, loss, err);
    return s;
}

static rwkv_status cuda_engine_export_state(train_engine *e, const float **params, const float **m,
                                            const float **v, rwkv_error *err) {
    cuda_engine *c = (cuda_engine *)e;
    rwkv_status s = download_state(c, err);
    if (s != RWKV_OK) return s;
    if (params) *params = c->params;
    if (m) *m = c->m;
    if (v) *v = c->v;
    return RWKV_OK;
}

/* The device gradients cannot be written from the host, so the last
 * micro-batch is run once more with a NaN regulariser factor: its NaN
 * reaches every logit gradient and from there every parameter's. */
static void cuda_engine_poison_grad(train_engine *e) {
    cuda_engine *c = (cuda_engine *)e;
    rwkv_error err;
    if (!c->last_inputs) return;
    rwkv_status s = rwkv4_cuda_forward_backward(c->ctx, c->last_inputs, c->last_targets, NAN, NULL, &err);
    cuda_engine_keep_failure(c, s, &err);
}

/* Every rank's GPU: the same kind, so one measurement times the world size. */
static double cuda_engine_peak_gflops(train_engine *e) {
    cuda_engine *c = (cuda_engine *)e;
    rwkv_error err;
    double peak = 0;
    return train_cuda_bf16_peak_gflops(&peak, &err) == RWKV_OK ? peak * (c->comm ? c->world : 1) : 0.0;
}

static const train_engine_ops cuda_ops = {
    .name = "cuda",
    .free = cuda_engine_free,
    .zero_grads = cuda_engine_zero_grads,
    .accumulate = cuda_engine_accumulate,
    .grad_norm = cuda_engine_grad_norm,
    .nonfinite_param = cuda_engine_nonfinite_param,
    .adam_step = cuda_engine_adam_step,
    .eval_loss = cuda_engine_eval_loss,
    .export_state = cuda_engine_export_state,
    .poison_grad = cuda_engine_poison_grad,
    .peak_gflops = cuda_engine_peak_gflops,
    .peak_kind = "bf16 matmul",
};

/* The device index against the devices there are. */
static rwkv_status check_device(int device_index, rwkv_error *err) {
    int n = cuda_device_count();
    if (n <= 0) return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "--device cuda: no CUDA device (or no driver) found");
    if (device_index < 0 || device_index >= n)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "--device cuda:%d: this machine has %d CUDA device%s (0 to %d)",
                         device_index, n, n == 1 ? "" : "s", n - 1);
    return RWKV_OK;
}

rwkv_status train_cuda_check(const char *arch, int device_index, rwkv_error *err) {
    if (!arch || strcmp(arch, "rwkv4") != 0)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "--arch %s: training on a CUDA device supports rwkv4 only",
                         arch ? arch : "(none)");
    return check_device(device_index, err);
}

rwkv_status train_cuda_use_device(int device_index, rwkv_error *err) {
    rwkv_status s = check_device(device_index, err);
    if (s == RWKV_OK && cudaSetDevice(device_index) != cudaSuccess) {
        cudaGetLastError();
        s = rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "--device cuda:%d: cannot select this device", device_index);
    }
    return s;
}

/* The engine's device context, holding the host state copied up (in a
 * data-parallel run: rank 0's state shared with every rank). */
static rwkv_status start_device(cuda_engine *c, rwkv_error *err) {
    const train_engine_config *cfg = &c->cfg;
    rwkv4_cuda_shard shard = {0, 0, c->n};
    rwkv_status s = train_cuda_check(cfg->arch->name, cfg->device_index, err);
    if (s == RWKV_OK) s = train_cuda_use_device(cfg->device_index, err);
    if (s == RWKV_OK && c->comm) s = dp_plan(c, &shard, err);
    if (s == RWKV_OK) {
        s = rwkv4_cuda_new_shard(cfg->lay, c->local_batch, cfg->ctx_len, cfg->bf16 ? RWKV4_CUDA_BF16 : RWKV4_CUDA_FP32,
                                 &shard, &c->ctx, err);
        if (s != RWKV_OK && err) {
            char what[96];
            snprintf(what, sizeof what, "--batch %d x --ctx %d on cuda:%d", c->local_batch, cfg->ctx_len,
                     cfg->device_index);
            rwkv_error_prefix(err, what);
        }
    }
    if (s == RWKV_OK) s = rwkv4_cuda_upload_params(c->ctx, c->params, err);
    if (s == RWKV_OK) s = c->comm ? dp_share_state(c, err) : rwkv4_cuda_upload_moments(c->ctx, c->m, c->v, err);
    return s;
}

rwkv_status train_engine_new_cuda(const train_engine_config *cfg, float *params, float *m, float *v,
                                  train_engine **out, rwkv_error *err) {
    *out = NULL;
    const size_t n = cfg->lay->total;
    cuda_engine *c = calloc(1, sizeof *c);
    if (!c) {
        free(params);
        free(m);
        free(v);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    /* the host buffers stay as the export copies, which match the device right after the upload */
    c->base.ops = &cuda_ops;
    c->cfg = *cfg;
    c->cfg.groups = NULL; /* copied into spans below */
    c->n = n;
    c->local_batch = cfg->batch;
    c->comm = cfg->dist ? train_dist_comm(cfg->dist) : NULL;
    c->rank = cfg->dist ? train_dist_rank(cfg->dist) : 0;
    c->world = cfg->dist ? train_dist_world(cfg->dist) : 1;
    c->hp = (rwkv4_cuda_adam){cfg->hp.beta1, cfg->hp.beta2, cfg->hp.eps, cfg->hp.weight_decay};
    c->params = params;
    /* the moments' host copies serve checkpoints, which only rank 0 writes */
    const int host_moments = c->rank == 0;
    c->m = m ? m : host_moments ? calloc(n + 1, sizeof(float)) : NULL;
    c->v = v ? v : host_moments ? calloc(n + 1, sizeof(float)) : NULL;
    c->spans = malloc(((size_t)cfg->n_groups + 1) * sizeof *c->spans);
    c->n_spans = cfg->n_groups;
    rwkv_status s = RWKV_OK;
    if (!c->spans || (host_moments && (!c->m || !c->v)))
        s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu parameters' moments", n);
    if (s == RWKV_OK) {
        for (int i = 0; i < cfg->n_groups; i++)
            c->spans[i] = (cuda_adam_span){cfg->groups[i].offset, cfg->groups[i].count, cfg->groups[i].lr_scale,
                                           cfg->groups[i].decay};
        s = start_device(c, err);
    }
    if (s != RWKV_OK) {
        cuda_engine_free(&c->base);
        return s;
    }
    c->host_valid = 1;
    *out = &c->base;
    return RWKV_OK;
}
