/* The CUDA training context (cuda/cuda_backend.h) against the CPU trainer's
 * math (train/rwkv4_grad.h, train/adam.h):
 *   - fp32 mode: loss and every parameter gradient of rwkv4_forward_backward
 *     (L2Wrap on) on small random models, |got - want| <= 1e-4·max|want| +
 *     1e-3·|want| per parameter tensor, the loss within 1e-5 relative;
 *   - bf16 mode: the loss within 1% and each gradient tensor within 10%
 *     in norm (‖got - want‖ / ‖want‖; bf16 keeps 8 significant bits and
 *     the rounding compounds over the layers), 30% for vector parameters
 *     (bf16_grad_ratio says why);
 *   - forward only (validation): loss and logits of rwkv4_forward_loss, fp32
 *     within 1e-5 / 1e-4·max + 1e-4·|want|, bf16 within 1% / 2% in norm;
 *   - Adam with clipping over the flat buffers, and parameters and moments
 *     going up and back unchanged (a GPU run resumes on the CPU);
 *   - 20 training steps on both sides: the same losses at every step;
 *   - the reference vectors (argument 1, or ../shared/testvectors/rwkv4):
 *     loss and gradients of every case within the case's own tolerances in
 *     fp32, and within the bf16 budget above in bf16. */
#include <jansson.h>
#include <math.h>

#include "cuda/cuda_backend.h"
#include "cuda_test.h"
#include "formats/formats.h"
#include "train/adam.h"
#include "train/rwkv4_grad.h"

static const char *vectors_dir;

typedef struct model {
    param_layout lay;
    float *params;
    int B, T;
    int *inputs, *targets;
} model;

/* Random parameters of a usable scale: matrices ~U(±1/sqrt(in)), LN weights
 * near 1, time_mix in [0, 1], decays from fast to nearly 1. */
static int model_new(model *m, int V, int C, int L, int F, int B, int T) {
    memset(m, 0, sizeof *m);
    rwkv4_shape s = {V, C, L, F, C};
    if (rwkv4_layout_init(&s, &m->lay, NULL)) return 0;
    m->params = malloc(m->lay.total * sizeof(float));
    m->B = B, m->T = T;
    m->inputs = malloc(sizeof(int) * B * T);
    m->targets = malloc(sizeof(int) * B * T);
    if (!m->params || !m->inputs || !m->targets) return 0;
    for (int i = 0; i < m->lay.count; i++) {
        const param_info *p = &m->lay.params[i];
        float *w = m->params + p->offset;
        const char *nm = p->name;
        for (size_t j = 0; j < p->numel; j++) {
            float x;
            if (strstr(nm, ".weight") && p->ndim == 2) x = urand(-1, 1) / sqrtf((float)p->shape[1]);
            else if (strstr(nm, "ln") && strstr(nm, ".weight")) x = urand(0.8f, 1.2f);
            else if (strstr(nm, "time_mix")) x = urand(0, 1);
            else if (strstr(nm, "time_decay")) x = urand(-6, 1);
            else x = urand(-0.5f, 0.5f);
            w[j] = x;
        }
    }
    if (strcmp(m->lay.params[0].name, "emb.weight") == 0)
        for (size_t j = 0; j < m->lay.params[0].numel; j++) m->params[j] = urand(-1, 1);
    for (int n = 0; n < B * T; n++) {
        m->inputs[n] = (int)urand(0, (float)V);
        m->targets[n] = (int)urand(0, (float)V);
    }
    return 1;
}

static void model_free(model *m) {
    param_layout_free(&m->lay);
    free(m->params);
    free(m->inputs);
    free(m->targets);
}

static double norm_diff_ratio(const float *got, const float *want, size_t n) {
    double d = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        w += (double)want[i] * want[i];
    }
    return w > 0 ? sqrt(d / w) : sqrt(d);
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* The bf16 budget of one gradient tensor, ‖got − want‖ / ‖want‖: 10% for
 * matrices; 30% for vectors (time-mix, decay, bonus, norm gains), which are
 * per-channel sums over every token of the batch whose terms largely cancel,
 * so each term's bf16 rounding weighs far more against the small sum. */
static double bf16_grad_ratio(const param_info *p, const float *got, const float *want) {
    int64_t longest = 1;
    for (int d = 0; d < p->ndim; d++) longest = p->shape[d] > longest ? p->shape[d] : longest;
    return norm_diff_ratio(got, want, p->numel) / ((int64_t)p->numel == longest ? 0.3 : 0.1);
}

/* CPU and GPU forward/backward of one model; returns 0 after a failed CHECK. */
static void compare_model(int V, int C, int L, int F, int B, int T, rwkv4_cuda_precision prec) {
    model m;
    rwkv_error err;
    CHECK(model_new(&m, V, C, L, F, B, T), "model setup");
    const size_t P = m.lay.total;
    float *want = calloc(P, 4), *got = malloc(P * 4);
    float loss_cpu = 0, loss_gpu = 0;
    rwkv4_train_ctx *cpu = NULL;
    rwkv4_cuda *gpu = NULL;
    CHECK(rwkv4_train_ctx_new(&m.lay, B, T, 1, &cpu, &err) == RWKV_OK, "%s", err.message);
    CHECK(rwkv4_forward_backward(cpu, m.params, m.inputs, m.targets, NULL, want, &loss_cpu, &err) == RWKV_OK,
          "%s", err.message);
    CHECK(rwkv4_cuda_new(&m.lay, B, T, prec, &gpu, &err) == RWKV_OK, "%s", err.message);
    CHECK(rwkv4_cuda_upload_params(gpu, m.params, &err) == RWKV_OK, "%s", err.message);
    /* twice, zeroing between: a stale activation or gradient would show */
    for (int rep = 0; rep < 2; rep++) {
        CHECK(rwkv4_cuda_zero_grads(gpu, &err) == RWKV_OK, "%s", err.message);
        CHECK(rwkv4_cuda_forward_backward(gpu, m.inputs, m.targets, 1e-4f, &loss_gpu, &err) == RWKV_OK, "%s",
              err.message);
    }
    CHECK(rwkv4_cuda_download_grads(gpu, got, &err) == RWKV_OK, "%s", err.message);
    const int bf = prec == RWKV4_CUDA_BF16;
    CHECK(fabs(loss_gpu - loss_cpu) <= (bf ? 1e-2 : 1e-5) * fabs(loss_cpu), "loss %.7f, CPU %.7f", loss_gpu,
          loss_cpu);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m.lay.count; i++) {
        const param_info *p = &m.lay.params[i];
        const float *g = got + p->offset, *w = want + p->offset;
        const double r = bf ? bf16_grad_ratio(p, g, w)
                            : tol_ratio(g, w, p->numel, 1e-4 * max_abs(w, p->numel) + 1e-12, 1e-3);
        if (!(r <= worst)) worst = r, worst_name = p->name;
        CHECK(r <= 1.0, "%s gradient of %s: %.3g x the budget", bf ? "bf16" : "fp32", p->name, r);
    }
    printf("  %s V%d C%d L%d F%d B%d T%d: loss %.6f (CPU %.6f), worst gradient %.3g of the budget (%s)\n",
           bf ? "bf16" : "fp32", V, C, L, F, B, T, loss_gpu, loss_cpu, worst, worst_name);
    rwkv4_cuda_free(gpu);
    rwkv4_train_ctx_free(cpu);
    free(want), free(got);
    model_free(&m);
}

static void test_model_fp32(void) {
    NEED_GPU();
    compare_model(67, 48, 2, 96, 2, 33, RWKV4_CUDA_FP32);
    if (test_current_failed) return;
    compare_model(131, 64, 3, 256, 3, 70, RWKV4_CUDA_FP32);
}

static void test_model_bf16(void) {
    NEED_GPU();
    compare_model(131, 64, 3, 256, 3, 70, RWKV4_CUDA_BF16);
}

/* Forward only (validation): the loss and the logits of rwkv4_forward_loss. */
static void compare_forward(rwkv4_cuda_precision prec) {
    const int V = 67, B = 2, T = 33;
    model m;
    rwkv_error err;
    CHECK(model_new(&m, V, 48, 2, 96, B, T), "model setup");
    const size_t NV = (size_t)B * T * V;
    float *want = malloc(NV * 4), *got = malloc(NV * 4), loss_cpu = 0, loss_gpu = 0;
    rwkv4_train_ctx *cpu = NULL;
    rwkv4_cuda *gpu = NULL;
    CHECK(rwkv4_train_ctx_new(&m.lay, B, T, 1, &cpu, &err) == RWKV_OK &&
              rwkv4_forward_loss(cpu, m.params, m.inputs, m.targets, want, &loss_cpu, &err) == RWKV_OK &&
              rwkv4_cuda_new(&m.lay, B, T, prec, &gpu, &err) == RWKV_OK &&
              rwkv4_cuda_upload_params(gpu, m.params, &err) == RWKV_OK &&
              rwkv4_cuda_forward_loss(gpu, m.inputs, m.targets, got, &loss_gpu, &err) == RWKV_OK,
          "%s", err.message);
    const int bf = prec == RWKV4_CUDA_BF16;
    CHECK(fabs(loss_gpu - loss_cpu) <= (bf ? 1e-2 : 1e-5) * fabs(loss_cpu), "loss %.7f, CPU %.7f", loss_gpu,
          loss_cpu);
    const double r = bf ? norm_diff_ratio(got, want, NV) / 0.02
                        : tol_ratio(got, want, NV, 1e-4 * max_abs(want, NV), 1e-4);
    CHECK(r <= 1, "%s logits: %.3g x the budget", bf ? "bf16" : "fp32", r);
    rwkv4_cuda_free(gpu);
    rwkv4_train_ctx_free(cpu);
    free(want), free(got);
    model_free(&m);
}

static void test_forward_only(void) {
    NEED_GPU();
    compare_forward(RWKV4_CUDA_FP32);
    if (test_current_failed) return;
    compare_forward(RWKV4_CUDA_BF16);
}

/* One Adam group per parameter, as the trainer makes them (weight decay on
 * matrices), for the CPU (adam_group) and the device (cuda_adam_span). */
static void adam_setup(const param_layout *lay, adam_group **groups, cuda_adam_span **spans) {
    *groups = malloc(sizeof **groups * lay->count);
    *spans = malloc(sizeof **spans * lay->count);
    for (int i = 0; i < lay->count; i++) {
        const param_info *p = &lay->params[i];
        (*groups)[i] = (adam_group){p->offset, p->numel, p->lr_scale, p->ndim >= 2};
        (*spans)[i] = (cuda_adam_span){p->offset, p->numel, p->lr_scale, p->ndim >= 2};
    }
}

/* Parameters and moments survive the round trip bit for bit, and one Adam
 * step with clipping matches adam_update after the CPU's own clipping. */
static void test_adam_and_roundtrip(void) {
    NEED_GPU();
    model m;
    rwkv_error err;
    CHECK(model_new(&m, 50, 32, 2, 64, 2, 16), "model setup");
    const size_t P = m.lay.total;
    float *grads = calloc(P, 4), *mo = random_floats(P, -0.01f, 0.01f), *vo = random_floats(P, 0, 1e-4f);
    float *back = malloc(P * 4), *back_m = malloc(P * 4), *back_v = malloc(P * 4);
    adam_group *groups;
    cuda_adam_span *spans;
    adam_setup(&m.lay, &groups, &spans);
    const adam_hparams h = {0.9f, 0.99f, 1e-8f, 0.01f};
    const rwkv4_cuda_adam hg = {h.beta1, h.beta2, h.eps, h.weight_decay};
    rwkv4_cuda *gpu = NULL;
    CHECK(rwkv4_cuda_new(&m.lay, 2, 16, RWKV4_CUDA_FP32, &gpu, &err) == RWKV_OK, "%s", err.message);
    CHECK(rwkv4_cuda_upload_params(gpu, m.params, &err) == RWKV_OK &&
              rwkv4_cuda_upload_moments(gpu, mo, vo, &err) == RWKV_OK &&
              rwkv4_cuda_download_params(gpu, back, &err) == RWKV_OK &&
              rwkv4_cuda_download_moments(gpu, back_m, back_v, &err) == RWKV_OK,
          "%s", err.message);
    CHECK(!memcmp(back, m.params, P * 4) && !memcmp(back_m, mo, P * 4) && !memcmp(back_v, vo, P * 4),
          "parameters or moments changed on the way");
    float loss;
    double norm = 0;
    CHECK(rwkv4_cuda_forward_backward(gpu, m.inputs, m.targets, 1e-4f, &loss, &err) == RWKV_OK &&
              rwkv4_cuda_grad_norm(gpu, &norm, &err) == RWKV_OK &&
              rwkv4_cuda_download_grads(gpu, grads, &err) == RWKV_OK,
          "%s", err.message);
    const double cpu_norm = grad_global_norm(grads, P, 1);
    CHECK(fabs(norm - cpu_norm) <= 1e-9 * cpu_norm, "norm %.12g, CPU %.12g", norm, cpu_norm);
    const float gscale = 0.5f, max_norm = (float)(cpu_norm * 0.1); /* clipping on */
    CHECK(rwkv4_cuda_adam_update(gpu, spans, m.lay.count, 1e-3f, gscale, max_norm, 3, &hg, &err) == RWKV_OK &&
              rwkv4_cuda_download_params(gpu, back, &err) == RWKV_OK &&
              rwkv4_cuda_download_moments(gpu, back_m, back_v, &err) == RWKV_OK,
          "%s", err.message);
    adam_update(m.params, grads, mo, vo, groups, m.lay.count, 1e-3f,
                gscale * grad_clip_scale(cpu_norm * gscale, max_norm), 3, &h, 1);
    const double rp = tol_ratio(back, m.params, P, 1e-6, 1e-6), rm = tol_ratio(back_m, mo, P, 1e-9, 1e-6),
                 rv = tol_ratio(back_v, vo, P, 1e-12, 1e-6);
    CHECK(rp <= 1 && rm <= 1 && rv <= 1, "Adam step off: params %.3g, m %.3g, v %.3g x the budget", rp, rm, rv);
    rwkv4_cuda_free(gpu);
    free(grads), free(mo), free(vo), free(back), free(back_m), free(back_v), free(groups), free(spans);
    model_free(&m);
}

/* A short training run, the same steps on both sides (zero gradients,
 * forward/backward with L2Wrap, global norm, clipped Adam) on a sequence
 * the model can learn (the CPU's loss goes 4.4 -> 0.14 in 20 steps): the
 * losses agree at every step within 1e-3·loss + 1e-3 (fp32) or
 * 3e-2·loss + 2e-2 (bf16), and fall to less than half. */
static void train_steps(rwkv4_cuda_precision prec) {
    enum { STEPS = 20 };
    const int V = 64, B = 4, T = 32;
    model m;
    rwkv_error err;
    CHECK(model_new(&m, V, 64, 2, 128, B, T), "model setup");
    for (int n = 0; n < B * T; n++) { /* sequences of a fixed pattern: next token = (7·token + 3) mod V */
        const int b = n / T, t = n % T;
        int tok = (b * 11 + 5) % V;
        for (int i = 0; i < t; i++) tok = (7 * tok + 3) % V;
        m.inputs[n] = tok;
        m.targets[n] = (7 * tok + 3) % V;
    }
    const size_t P = m.lay.total;
    float *grads = malloc(P * 4), *mo = calloc(P, 4), *vo = calloc(P, 4);
    adam_group *groups;
    cuda_adam_span *spans;
    adam_setup(&m.lay, &groups, &spans);
    const adam_hparams h = {0.9f, 0.99f, 1e-8f, 0.01f};
    const rwkv4_cuda_adam hg = {h.beta1, h.beta2, h.eps, h.weight_decay};
    const float lr = 3e-3f, max_norm = 1.0f;
    rwkv4_train_ctx *cpu = NULL;
    rwkv4_cuda *gpu = NULL;
    CHECK(rwkv4_train_ctx_new(&m.lay, B, T, 1, &cpu, &err) == RWKV_OK &&
              rwkv4_cuda_new(&m.lay, B, T, prec, &gpu, &err) == RWKV_OK &&
              rwkv4_cuda_upload_params(gpu, m.params, &err) == RWKV_OK &&
              rwkv4_cuda_upload_moments(gpu, mo, vo, &err) == RWKV_OK,
          "%s", err.message);
    const int bf = prec == RWKV4_CUDA_BF16;
    float first = 0, loss_cpu = 0, loss_gpu = 0;
    double worst = 0;
    for (int step = 1; step <= STEPS; step++) {
        memset(grads, 0, P * 4);
        CHECK(rwkv4_forward_backward(cpu, m.params, m.inputs, m.targets, NULL, grads, &loss_cpu, &err) == RWKV_OK,
              "%s", err.message);
        const double norm = grad_global_norm(grads, P, 1);
        adam_update(m.params, grads, mo, vo, groups, m.lay.count, lr, grad_clip_scale(norm, max_norm), step, &h,
                    1);
        CHECK(rwkv4_cuda_zero_grads(gpu, &err) == RWKV_OK &&
                  rwkv4_cuda_forward_backward(gpu, m.inputs, m.targets, 1e-4f, &loss_gpu, &err) == RWKV_OK &&
                  rwkv4_cuda_grad_norm(gpu, NULL, &err) == RWKV_OK &&
                  rwkv4_cuda_adam_update(gpu, spans, m.lay.count, lr, 1.0f, max_norm, step, &hg, &err) == RWKV_OK,
              "%s", err.message);
        const double ratio = fabs(loss_gpu - loss_cpu) / (bf ? 3e-2 * loss_cpu + 2e-2 : 1e-3 * loss_cpu + 1e-3);
        worst = ratio > worst ? ratio : worst;
        CHECK(ratio <= 1, "step %d: loss %.6f, CPU %.6f", step, loss_gpu, loss_cpu);
        if (step == 1) first = loss_cpu;
    }
    CHECK(loss_cpu < 0.5f * first, "the model did not learn: loss %.4f -> %.4f", first, loss_cpu);
    printf("  %s: %d steps, loss %.4f -> %.4f (CPU %.4f), worst step %.2g of the budget\n", bf ? "bf16" : "fp32",
           STEPS, first, loss_gpu, loss_cpu, worst);
    rwkv4_cuda_free(gpu);
    rwkv4_train_ctx_free(cpu);
    free(grads), free(mo), free(vo), free(groups), free(spans);
    model_free(&m);
}

static void test_training_fp32(void) {
    NEED_GPU();
    train_steps(RWKV4_CUDA_FP32);
}

static void test_training_bf16(void) {
    NEED_GPU();
    train_steps(RWKV4_CUDA_BF16);
}

/* A token outside the vocabulary is refused before anything runs. */
static void test_bad_tokens(void) {
    NEED_GPU();
    model m;
    rwkv_error err;
    CHECK(model_new(&m, 20, 32, 1, 64, 1, 8), "model setup");
    rwkv4_cuda *gpu = NULL;
    CHECK(rwkv4_cuda_new(&m.lay, 1, 8, RWKV4_CUDA_FP32, &gpu, &err) == RWKV_OK, "%s", err.message);
    m.inputs[5] = 20;
    float loss;
    CHECK(rwkv4_cuda_forward_backward(gpu, m.inputs, m.targets, 1e-4f, &loss, &err) == RWKV_ERR_ARG,
          "an out-of-vocabulary token was accepted");
    CHECK(strstr(err.message, "inputs[0][5]") != NULL, "message does not name the token: %s", err.message);
    rwkv4_cuda_free(gpu);
    model_free(&m);
}

/* ---- reference vectors ---------------------------------------------------------- */

typedef struct vcase {
    int B, T;
    int *inputs, *targets;
    double loss, loss_atol, loss_rtol, grad_atol, grad_rtol;
    char ckpt[256];
    char (*grad_name)[96], (*grad_file)[160];
    int n_grads;
} vcase;

static int read_ints(char **save, int n, int *out) {
    for (int i = 0; i < n; i++) {
        char *tok = strtok_r(NULL, " \n", save);
        if (!tok) return 0;
        out[i] = atoi(tok);
    }
    return 1;
}

/* The facts of case.txt this test needs (format: the vector folder's README). */
static int parse_case(const char *dir, vcase *c) {
    memset(c, 0, sizeof *c);
    c->grad_name = calloc(1024, sizeof *c->grad_name);
    c->grad_file = calloc(1024, sizeof *c->grad_file);
    char path[4096];
    snprintf(path, sizeof path, "%s/case.txt", dir);
    FILE *f = fopen(path, "r");
    size_t cap = 1 << 22;
    char *line = malloc(cap);
    int ok = f && line && c->grad_name && c->grad_file;
    while (ok && fgets(line, (int)cap, f)) {
        char *save, *key = strtok_r(line, " \n", &save);
        if (!key) continue;
        if (!strcmp(key, "inputs") || !strcmp(key, "targets")) {
            char *sb = strtok_r(NULL, " \n", &save), *st = strtok_r(NULL, " \n", &save);
            c->B = sb ? atoi(sb) : 0, c->T = st ? atoi(st) : 0;
            int *arr = c->B > 0 && c->T > 0 ? malloc(sizeof(int) * c->B * c->T) : NULL;
            ok = arr && read_ints(&save, c->B * c->T, arr);
            if (key[0] == 'i') c->inputs = arr;
            else c->targets = arr;
        } else if (!strcmp(key, "loss")) {
            char *v = strtok_r(NULL, " \n", &save);
            c->loss = v ? atof(v) : NAN;
        } else if (!strcmp(key, "checkpoint") && !c->ckpt[0]) {
            char *v = strtok_r(NULL, " \n", &save);
            if (v) snprintf(c->ckpt, sizeof c->ckpt, "%s", v);
        } else if (!strcmp(key, "grad") && c->n_grads < 1024) {
            char *name = strtok_r(NULL, " \n", &save), *file = strtok_r(NULL, " \n", &save);
            if (name && file) {
                snprintf(c->grad_name[c->n_grads], 96, "%s", name);
                snprintf(c->grad_file[c->n_grads++], 160, "%s", file);
            }
        } else if (!strcmp(key, "tolerance")) {
            char *kind = strtok_r(NULL, " \n", &save), *a = strtok_r(NULL, " \n", &save),
                 *r = strtok_r(NULL, " \n", &save);
            if (kind && a && r && !strcmp(kind, "loss")) c->loss_atol = atof(a), c->loss_rtol = atof(r);
            if (kind && a && r && !strcmp(kind, "grads")) c->grad_atol = atof(a), c->grad_rtol = atof(r);
        }
    }
    if (f) fclose(f);
    free(line);
    return ok && c->inputs && c->targets && c->ckpt[0];
}

static void free_case(vcase *c) {
    free(c->inputs), free(c->targets), free(c->grad_name), free(c->grad_file);
}

static float *read_f32(const char *dir, const char *file, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    float *x = malloc(n * 4);
    int ok = f && x && fread(x, 4, n, f) == n && fgetc(f) == EOF;
    if (f) fclose(f);
    if (!ok) free(x);
    return ok ? x : NULL;
}

/* fp32: the case's own tolerances. bf16: the loss within 1% and each
 * gradient within the bf16 budget of compare_model. */
static void check_case(const char *dir, rwkv4_cuda_precision prec) {
    const int bf = prec == RWKV4_CUDA_BF16;
    vcase c;
    rwkv_error err;
    CHECK(parse_case(dir, &c), "%s: cannot parse case.txt", dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, c.ckpt);
    tensor_set set;
    param_layout lay;
    float *params = NULL;
    CHECK(checkpoint_read(path, &set, &err) == RWKV_OK, "%s", err.message);
    rwkv_status st = params_from_tensors(&set, &lay, &params, &err);
    tensor_set_free(&set);
    CHECK(st == RWKV_OK, "%s", err.message);
    rwkv4_cuda *gpu = NULL;
    float loss = 0, *grads = malloc(lay.total * 4);
    CHECK(rwkv4_cuda_new(&lay, c.B, c.T, prec, &gpu, &err) == RWKV_OK &&
              rwkv4_cuda_upload_params(gpu, params, &err) == RWKV_OK &&
              rwkv4_cuda_forward_backward(gpu, c.inputs, c.targets, 0.0f, &loss,
                                          &err) /* plain mean loss */ == RWKV_OK &&
              rwkv4_cuda_download_grads(gpu, grads, &err) == RWKV_OK,
          "%s: %s", dir, err.message);
    const float want = (float)c.loss;
    const double loss_ratio = bf ? fabs(loss - want) / (1e-2 * fabs(want))
                                 : tol_ratio(&loss, &want, 1, c.loss_atol, c.loss_rtol);
    CHECK(loss_ratio <= 1, "%s (%s): loss %.8f, want %.8f", dir, bf ? "bf16" : "fp32", loss, want);
    double worst = 0;
    for (int i = 0; i < c.n_grads; i++) {
        const param_info *p = param_layout_find(&lay, c.grad_name[i]);
        CHECK(p != NULL, "%s: no parameter %s", dir, c.grad_name[i]);
        float *w = read_f32(dir, c.grad_file[i], p->numel);
        CHECK(w != NULL, "%s: cannot read %s", dir, c.grad_file[i]);
        const double r = bf ? bf16_grad_ratio(p, grads + p->offset, w)
                            : tol_ratio(grads + p->offset, w, p->numel, c.grad_atol, c.grad_rtol);
        free(w);
        CHECK(r <= 1, "%s (%s): gradient of %s is %.3g x the tolerance", dir, bf ? "bf16" : "fp32",
              c.grad_name[i], r);
        worst = r > worst ? r : worst;
    }
    printf("  %s (%s, %s): loss %.8f, %d gradients, worst %.3g of the tolerance\n", dir, c.ckpt,
           bf ? "bf16" : "fp32", loss, c.n_grads, worst);
    rwkv4_cuda_free(gpu);
    free(grads), free(params);
    param_layout_free(&lay);
    free_case(&c);
}

static void test_reference_vectors(void) {
    NEED_GPU();
    char index[2048];
    snprintf(index, sizeof index, "%s/index.json", vectors_dir);
    json_t *root = json_load_file(index, 0, NULL);
    if (!root) SKIP("%.900s not found", index);
    json_t *cases = json_object_get(root, "cases"), *e;
    size_t i;
    int n = 0;
    json_array_foreach(cases, i, e) {
        const char *d = json_string_value(json_object_get(e, "dir"));
        if (!d) continue;
        char dir[2048];
        snprintf(dir, sizeof dir, "%s/%s", vectors_dir, d);
        check_case(dir, RWKV4_CUDA_FP32);
        if (!test_current_failed) check_case(dir, RWKV4_CUDA_BF16);
        n++;
        if (test_current_failed) break;
    }
    json_decref(root);
    CHECK(n > 0, "%s lists no cases", index);
}

int main(int argc, char **argv) {
    static char def[1300];
    snprintf(def, sizeof def, "%s/testvectors/rwkv4", shared_dir());
    vectors_dir = argc > 1 ? argv[1] : def;
    RUN(test_model_fp32);
    RUN(test_model_bf16);
    RUN(test_forward_only);
    RUN(test_adam_and_roundtrip);
    RUN(test_training_fp32);
    RUN(test_training_bf16);
    RUN(test_bad_tokens);
    RUN(test_reference_vectors);
    return test_summary();
}
