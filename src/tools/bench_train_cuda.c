/* The GPU training benchmark of include/rwkv_bench.h: RWKV-4 training steps
 * on the CUDA backend (cuda/cuda_backend.h) at the Pile models' shapes.
 * Parameters are random (matrices ~U(+-1/sqrt(in))): the speed of a step
 * does not depend on their values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/cuda_backend.h"
#include "rwkv_bench.h"
#include "train/dist.h"
#include "train/engine.h"
#include "train/options.h"
#include "train/peak_cuda.h"
#include "train/rwkv4_grad.h"

typedef struct shape_def {
    const char *name;
    int V, C, L;
} shape_def;

static const shape_def SHAPES[] = {{"169M", 50277, 768, 12}, {"430M", 50277, 1024, 24}, {"1.5B", 50277, 2048, 24}};
enum { N_SHAPES = (int)(sizeof SHAPES / sizeof SHAPES[0]) };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* xorshift64: the random parameters and tokens */
static float urand(uint64_t *s, float lo, float hi) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return lo + (hi - lo) * (float)((double)(*s >> 40) * (1.0 / 16777216.0));
}

static void random_params(const param_layout *lay, float *p, uint64_t *rng) {
    for (int i = 0; i < lay->count; i++) {
        const param_info *q = &lay->params[i];
        float lo = -0.5f, hi = 0.5f;
        if (q->ndim == 2) hi = 1.0f / sqrtf((float)q->shape[1]), lo = -hi;
        if (strstr(q->name, "time_mix")) lo = 0, hi = 1;
        if (strstr(q->name, "time_decay")) lo = -6, hi = 1;
        if (strstr(q->name, "ln") && strstr(q->name, ".weight")) lo = 0.8f, hi = 1.2f;
        for (size_t j = 0; j < q->numel; j++) p[q->offset + j] = urand(rng, lo, hi);
    }
}

const char *rwkv_train_bench_shape(int i) { return i >= 0 && i < N_SHAPES ? SHAPES[i].name : NULL; }

static rwkv_status use_device(const char *device, rwkv_error *err) {
    const int index = train_device_index(device ? device : "cuda");
    if (index < 0) return rwkv_fail(err, RWKV_ERR_ARG, "--device must be cuda or cuda:N, got '%s'", device);
    return train_cuda_use_device(index, err);
}

rwkv_status rwkv_train_bench_peak(const char *device, double *gflops, rwkv_error *err) {
    rwkv_status s = use_device(device, err);
    return s == RWKV_OK ? train_cuda_bf16_peak_gflops(gflops, err) : s;
}

rwkv_status rwkv_bench_device_peaks(const char *device, double *read_gbps, double *bf16_gflops, rwkv_error *err) {
    rwkv_status s = use_device(device, err);
    if (s == RWKV_OK) s = train_cuda_copy_gbps(read_gbps, err);
    return s == RWKV_OK ? train_cuda_bf16_peak_gflops(bf16_gflops, err) : s;
}

/* Steps timed from the host (nothing waits inside one), then one more timed
 * on the device by kind. */
static rwkv_status time_steps(rwkv4_cuda *ctx, const param_layout *lay, const shape_def *sh, int B, int T,
                              int steps, rwkv_train_bench_result *r, rwkv_error *err) {
    const int warmup = 2, n = B * T;
    int *inputs = malloc(sizeof(int) * (size_t)n), *targets = malloc(sizeof(int) * (size_t)n);
    cuda_adam_span *spans = malloc(sizeof *spans * (size_t)lay->count);
    rwkv_status s = inputs && targets && spans ? RWKV_OK : rwkv_fail(err, RWKV_ERR_NOMEM, "out of host memory");
    for (int i = 0; s == RWKV_OK && i < lay->count; i++)
        spans[i] = (cuda_adam_span){lay->params[i].offset, lay->params[i].numel, lay->params[i].lr_scale, 0};
    const rwkv4_cuda_adam h = {0.9f, 0.99f, 1e-8f, 0.0f};
    uint64_t rng = 88172645463325252ull;
    double t0 = 0;
    for (int i = 0; s == RWKV_OK && i < warmup + steps; i++) {
        if (i == warmup) {
            s = rwkv4_cuda_sync(ctx, err);
            t0 = now_s();
        }
        for (int k = 0; k < n; k++) {
            inputs[k] = (int)urand(&rng, 0, (float)sh->V);
            targets[k] = (int)urand(&rng, 0, (float)sh->V);
        }
        if (s == RWKV_OK) s = rwkv4_cuda_zero_grads(ctx, err);
        if (s == RWKV_OK) s = rwkv4_cuda_forward_backward(ctx, inputs, targets, 1e-4f, NULL, err);
        if (s == RWKV_OK) s = rwkv4_cuda_grad_norm(ctx, NULL, err);
        if (s == RWKV_OK) s = rwkv4_cuda_adam_update(ctx, spans, lay->count, 1e-4f, 1.0f, 1.0f, i + 1, &h, err);
    }
    float loss = 0;
    if (s == RWKV_OK) s = rwkv4_cuda_last_loss(ctx, &loss, err);
    const double dt = (now_s() - t0) / steps;
    rwkv4_cuda_timing tm;
    rwkv4_cuda_set_timing(ctx, 1);
    if (s == RWKV_OK) s = rwkv4_cuda_forward_backward(ctx, inputs, targets, 1e-4f, NULL, err);
    if (s == RWKV_OK) s = rwkv4_cuda_timing_get(ctx, &tm, err);
    if (s == RWKV_OK) {
        r->step_ms = dt * 1e3;
        r->tokens_per_s = (double)n / dt;
        r->loss = loss;
        r->gemm_ms = tm.gemm_ms, r->wkv_ms = tm.wkv_ms, r->other_ms = tm.other_ms;
        r->norm_ms = tm.norm_ms, r->shift_ms = tm.shift_ms, r->elem_ms = tm.elem_ms, r->loss_ms = tm.loss_ms;
    }
    free(inputs);
    free(targets);
    free(spans);
    return s;
}

/* The data-parallel step of the trainer's engine, on `world` ranks (the
 * engine takes over params). */
static rwkv_status time_parallel(const rwkv_train_bench_options *o, const param_layout *lay, const shape_def *sh,
                                 int B, int T, int steps, int fp32, float *params, rwkv_train_bench_result *r,
                                 rwkv_error *err) {
    const int warmup = 2, world = o->world_size, n = B * T * world;
    const train_dist_settings set = {world, o->rank, o->rendezvous, NULL, 600.0};
    arch_shape as = {.n_vocab = sh->V, .n_embd = sh->C, .n_layer = sh->L, .n_ffn = 4 * sh->C};
    adam_group *groups = malloc(sizeof *groups * (size_t)lay->count);
    int *inputs = malloc(sizeof(int) * (size_t)n), *targets = malloc(sizeof(int) * (size_t)n);
    train_dist *dist = NULL;
    train_engine *e = NULL;
    rwkv_status s = groups && inputs && targets ? RWKV_OK : rwkv_fail(err, RWKV_ERR_NOMEM, "out of host memory");
    for (int i = 0; s == RWKV_OK && i < lay->count; i++)
        groups[i] = (adam_group){lay->params[i].offset, lay->params[i].numel, lay->params[i].lr_scale, 0};
    if (s == RWKV_OK) s = train_dist_open(&set, train_device_index(o->device ? o->device : "cuda"), &dist, err);
    if (s == RWKV_OK) {
        const train_engine_config cfg = {.arch = train_arch_find("rwkv4"), .shape = &as, .lay = lay, .batch = B * world,
                                         .ctx_len = T, .threads = 1, .groups = groups, .n_groups = lay->count,
                                         .hp = {0.9f, 0.99f, 1e-8f, 0.0f}, .l2wrap = 1e-4f,
                                         .device_index = train_device_index(o->device ? o->device : "cuda"),
                                         .bf16 = !fp32, .dist = dist, .allreduce_bf16 = !fp32};
        s = train_engine_new_cuda(&cfg, params, NULL, NULL, &e, err);
    } else {
        free(params);
    }
    uint64_t rng = 88172645463325252ull;
    double t0 = 0;
    float loss = 0;
    for (int i = 0; s == RWKV_OK && i < warmup + steps; i++) {
        if (i == warmup) t0 = now_s();
        for (int k = 0; k < n; k++) {
            inputs[k] = (int)urand(&rng, 0, (float)sh->V);
            targets[k] = (int)urand(&rng, 0, (float)sh->V);
        }
        e->ops->zero_grads(e);
        s = e->ops->accumulate(e, inputs, targets, 1, &loss, err);
        if (s == RWKV_OK) e->ops->adam_step(e, 1e-4f, (float)(1.0 / (e->ops->grad_norm(e) + 1.0)), i + 1);
    }
    const double dt = (now_s() - t0) / steps; /* the last update waited for its all-gather */
    /* one more micro-batch returns a failure the last update kept (adam_step returns none) */
    if (s == RWKV_OK) s = e->ops->accumulate(e, inputs, targets, 1, &loss, err);
    if (s == RWKV_OK) {
        r->step_ms = dt * 1e3;
        r->tokens_per_s = (double)n / dt;
        r->loss = loss;
    }
    if (e) e->ops->free(e);
    train_dist_free(dist);
    free(groups);
    free(inputs);
    free(targets);
    return s;
}

rwkv_status rwkv_train_bench_run(const char *shape, const rwkv_train_bench_options *opts, double peak_gflops,
                                 rwkv_train_bench_result *out, rwkv_error *err) {
    const rwkv_train_bench_options def = {0};
    const rwkv_train_bench_options *o = opts ? opts : &def;
    const shape_def *sh = NULL;
    for (int i = 0; i < N_SHAPES; i++)
        if (shape && strcmp(shape, SHAPES[i].name) == 0) sh = &SHAPES[i];
    if (!sh) return rwkv_fail(err, RWKV_ERR_ARG, "--shape must be 169M, 430M or 1.5B, got '%s'", shape ? shape : "");
    const int fp32 = o->precision && strcmp(o->precision, "fp32") == 0;
    if (o->precision && !fp32 && strcmp(o->precision, "bf16") != 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "--precision must be bf16 or fp32, got '%s'", o->precision);
    const int B = o->batch > 0 ? o->batch : 32, T = o->ctx > 0 ? o->ctx : 1024, steps = o->steps > 0 ? o->steps : 5;
    *out = (rwkv_train_bench_result){.shape = sh->name, .n_vocab = sh->V, .n_embd = sh->C, .n_layer = sh->L,
                                     .batch = B, .ctx = T, .precision = fp32 ? "fp32" : "bf16"};
    rwkv_status s = use_device(o->device, err);
    if (s != RWKV_OK) return s;
    const rwkv4_shape rs = {sh->V, sh->C, sh->L, 4 * sh->C, sh->C};
    param_layout lay;
    s = rwkv4_layout_init(&rs, &lay, err);
    if (s != RWKV_OK) return s;
    float *params = malloc(lay.total * sizeof(float));
    rwkv4_cuda *ctx = NULL;
    uint64_t rng = 2463534242ull;
    if (!params) s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of host memory for %zu parameters", lay.total);
    if (s == RWKV_OK) random_params(&lay, params, &rng);
    if (s == RWKV_OK && o->world_size > 0) {
        s = time_parallel(o, &lay, sh, B, T, steps, fp32, params, out, err);
        params = NULL; /* the engine took them */
    } else if (s == RWKV_OK) {
        s = rwkv4_cuda_new(&lay, B, T, fp32 ? RWKV4_CUDA_FP32 : RWKV4_CUDA_BF16, &ctx, err);
    }
    if (s == RWKV_OK && ctx) s = rwkv4_cuda_upload_params(ctx, params, err);
    if (s == RWKV_OK && ctx) s = time_steps(ctx, &lay, sh, B, T, steps, out, err);
    if (s == RWKV_OK) {
        const double flops_per_token = 6.0 * ((double)sh->V * sh->C + 13.0 * sh->C * (double)sh->C * sh->L);
        out->mfu = peak_gflops > 0 ? out->tokens_per_s * flops_per_token / (peak_gflops * 1e9) : 0;
        out->device_gib = ctx ? (double)rwkv4_cuda_bytes(ctx) / (double)(1 << 30) : 0.0;
    }
    if (s != RWKV_OK && err) rwkv_error_prefix(err, sh->name);
    rwkv4_cuda_free(ctx);
    free(params);
    param_layout_free(&lay);
    return s;
}
