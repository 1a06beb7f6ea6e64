/* The CPU training engine (train/engine.h): host buffers, the architecture's
 * CPU forward/backward (train/arch.h) and the Adam of train/adam.h. */
#include "train/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/huge_pages.h"
#include "core/machine.h"
#include "kernels/train_ops.h"

typedef struct cpu_engine {
    train_engine base;
    train_engine_config cfg;
    adam_group *groups;
    size_t n;
    float *params, *grads, *m, *v;
    size_t grads_bytes; /* as huge_pages_map mapped the gradients */
    void *ctx, *ctx_rem; /* the architecture's training contexts (full batch, last validation batch) */
} cpu_engine;

static void cpu_free(train_engine *e) {
    cpu_engine *c = (cpu_engine *)e;
    if (!c) return;
    if (c->ctx) c->cfg.arch->ctx_free(c->ctx);
    if (c->ctx_rem) c->cfg.arch->ctx_free(c->ctx_rem);
    free(c->groups);
    free(c->params);
    huge_pages_unmap(c->grads, c->grads_bytes);
    free(c->m);
    free(c->v);
    free(c);
}

static void cpu_zero_grads(train_engine *e) {
    cpu_engine *c = (cpu_engine *)e;
    zero_floats(c->grads, c->n, c->cfg.threads);
}

static rwkv_status cpu_accumulate(train_engine *e, const int *inputs, const int *targets, int last, float *loss,
                                  rwkv_error *err) {
    cpu_engine *c = (cpu_engine *)e;
    (void)last; /* one process: the gradients are complete as they are */
    return c->cfg.arch->forward_backward(c->ctx, c->params, inputs, targets, c->cfg.l2wrap, c->grads, loss, err);
}

static double cpu_grad_norm(train_engine *e) {
    cpu_engine *c = (cpu_engine *)e;
    return grad_global_norm(c->grads, c->n, c->cfg.threads);
}

static const char *cpu_nonfinite_param(train_engine *e) {
    const cpu_engine *c = (const cpu_engine *)e;
    return param_layout_first_nonfinite(c->cfg.lay, c->grads);
}

static void cpu_adam_step(train_engine *e, float lr, float grad_scale, long t) {
    cpu_engine *c = (cpu_engine *)e;
    adam_update(c->params, c->grads, c->m, c->v, c->groups, c->cfg.n_groups, lr, grad_scale, t, &c->cfg.hp,
                c->cfg.threads);
}

static rwkv_status cpu_eval_loss(train_engine *e, const int *inputs, const int *targets, int n_seq, float *loss,
                                 rwkv_error *err) {
    cpu_engine *c = (cpu_engine *)e;
    void *ctx = n_seq == c->cfg.batch ? c->ctx : c->ctx_rem;
    if (!ctx) return rwkv_fail(err, RWKV_ERR_ARG, "validation batch of %d sequences: no context for it", n_seq);
    return c->cfg.arch->forward_loss(ctx, c->params, inputs, targets, loss, err);
}

static rwkv_status cpu_export_state(train_engine *e, const float **params, const float **m, const float **v,
                                    rwkv_error *err) {
    (void)err;
    const cpu_engine *c = (const cpu_engine *)e;
    if (params) *params = c->params;
    if (m) *m = c->m;
    if (v) *v = c->v;
    return RWKV_OK;
}

static void cpu_poison_grad(train_engine *e) { ((cpu_engine *)e)->grads[0] = NAN; }

static double cpu_peak_gflops(train_engine *e) { return machine_fma_peak_gflops(((cpu_engine *)e)->cfg.threads); }

static const train_engine_ops cpu_ops = {
    .name = "cpu",
    .free = cpu_free,
    .zero_grads = cpu_zero_grads,
    .accumulate = cpu_accumulate,
    .grad_norm = cpu_grad_norm,
    .nonfinite_param = cpu_nonfinite_param,
    .adam_step = cpu_adam_step,
    .eval_loss = cpu_eval_loss,
    .export_state = cpu_export_state,
    .poison_grad = cpu_poison_grad,
    .peak_gflops = cpu_peak_gflops,
    .peak_kind = "fp32 FMA",
};

rwkv_status train_engine_new_cpu(const train_engine_config *cfg, float *params, float *m, float *v,
                                 train_engine **out, rwkv_error *err) {
    *out = NULL;
    const size_t n = cfg->lay->total;
    cpu_engine *c = calloc(1, sizeof *c);
    if (c) {
        c->base.ops = &cpu_ops;
        c->cfg = *cfg;
        c->n = n;
        c->params = params;
        c->m = m ? m : calloc(n + 1, sizeof(float));
        c->v = v ? v : calloc(n + 1, sizeof(float));
        /* in 2 MB pages: the weight gradients' products write them a row apart */
        c->grads = huge_pages_map((n + 1) * sizeof(float), &c->grads_bytes);
        c->groups = malloc(((size_t)cfg->n_groups + 1) * sizeof *c->groups);
    }
    if (!c || !c->m || !c->v || !c->grads || !c->groups) {
        if (c) cpu_free(&c->base);
        else {
            free(params);
            free(m);
            free(v);
        }
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu parameters' gradients and moments", n);
    }
    memcpy(c->groups, cfg->groups, (size_t)cfg->n_groups * sizeof *c->groups);
    c->cfg.groups = c->groups;
    rwkv_status s = cfg->arch->ctx_new(cfg->shape, cfg->lay, cfg->batch, cfg->ctx_len, cfg->threads, &c->ctx, err);
    if (s != RWKV_OK) {
        char what[96];
        snprintf(what, sizeof what, "--batch %d x --ctx %d", cfg->batch, cfg->ctx_len);
        if (err) rwkv_error_prefix(err, what);
    } else if (cfg->val_rem_batch > 0) {
        s = cfg->arch->ctx_new(cfg->shape, cfg->lay, cfg->val_rem_batch, cfg->ctx_len, cfg->threads, &c->ctx_rem,
                               err);
    }
    if (s != RWKV_OK) {
        cpu_free(&c->base);
        return s;
    }
    *out = &c->base;
    return RWKV_OK;
}
