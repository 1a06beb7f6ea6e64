/* Training throughput of the CUDA backend on RWKV-4 shapes (docs/cuda.md):
 * for each shape, tokens/s of full training steps (forward, backward,
 * gradient norm, clipped Adam), model FLOP utilisation against a bf16
 * matrix-product peak measured in the same run, the device time of one
 * step split into GEMM / WKV / the rest (CUDA events), and device memory.
 *
 *   cuda_train_bench [--quick] [--shape 169M|430M|1.5B] [--batch B] [--ctx T]
 *                    [--steps N] [--precision bf16|fp32]
 *
 * Parameters are random (matrices ~U(±1/sqrt(in))): the speed of a step
 * does not depend on their values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_ops.h"
#include "train/rwkv4_grad.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int die(const char *what, const rwkv_error *err) {
    fprintf(stderr, "cuda_train_bench: %s: %s\n", what, err->message);
    return 1;
}

/* bf16 GEMM peak (TFLOP/s): 8192³ products on random data, after warm-up. */
static int measure_peak(double *tflops, rwkv_error *err) {
    const int n = 8192, reps = 20;
    const size_t nn = (size_t)n * n;
    void *a = NULL, *b = NULL, *c = NULL;
    cuda_blas *h = NULL;
    rwkv_status st;
    if ((st = cuda_alloc(&a, nn * 2, "peak A", err)) || (st = cuda_alloc(&b, nn * 2, "peak B", err)) ||
        (st = cuda_alloc(&c, nn * 2, "peak C", err)) || (st = cuda_blas_new(&h, err)))
        goto out;
    cuda_fill_uniform(CUDA_BF16, a, -1, 1, 1, nn, 0);
    cuda_fill_uniform(CUDA_BF16, b, -1, 1, 2, nn, 0);
    cuda_gemm g = {CUDA_BF16, CUDA_BF16, 1, 0, n, n, n, a, b, NULL, c, n, n, n, 0, 0, 0, 1, 1.0f, 0.0f};
    double t0 = 0;
    for (int i = 0; i < reps + 3 && !st; i++) {
        if (i == 3) {
            if ((st = cuda_sync(0, "peak", err))) break;
            t0 = now_s();
        }
        st = cuda_matmul(h, &g, 0, err);
    }
    if (!st) st = cuda_sync(0, "peak", err);
    if (!st) *tflops = 2.0 * n * (double)n * n * reps / (now_s() - t0) * 1e-12;
out:
    cuda_blas_free(h);
    cuda_free(a), cuda_free(b), cuda_free(c);
    return st;
}

typedef struct shape_def {
    const char *name;
    int V, C, L;
} shape_def;

static const shape_def SHAPES[] = {{"169M", 50277, 768, 12}, {"430M", 50277, 1024, 24}, {"1.5B", 50277, 2048, 24}};

static uint64_t rng_state = 88172645463325252ull;
static float urand(float lo, float hi) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 40) * (1.0 / 16777216.0));
}

static void random_params(const param_layout *lay, float *p) {
    for (int i = 0; i < lay->count; i++) {
        const param_info *q = &lay->params[i];
        float lo = -0.5f, hi = 0.5f;
        if (q->ndim == 2) hi = 1.0f / sqrtf((float)q->shape[1]), lo = -hi;
        if (strstr(q->name, "time_mix")) lo = 0, hi = 1;
        if (strstr(q->name, "time_decay")) lo = -6, hi = 1;
        if (strstr(q->name, "ln") && strstr(q->name, ".weight")) lo = 0.8f, hi = 1.2f;
        for (size_t j = 0; j < q->numel; j++) p[q->offset + j] = urand(lo, hi);
    }
}

static int bench_shape(const shape_def *s, int B, int T, int steps, rwkv4_cuda_precision prec, double peak) {
    rwkv_error err;
    const rwkv4_shape sh = {s->V, s->C, s->L, 4 * s->C, s->C};
    param_layout lay;
    if (rwkv4_layout_init(&sh, &lay, &err)) return die("layout", &err);
    float *params = malloc(lay.total * sizeof(float));
    int *inputs = malloc(sizeof(int) * B * T), *targets = malloc(sizeof(int) * B * T);
    cuda_adam_span *groups = malloc(sizeof *groups * lay.count);
    if (!params || !inputs || !targets || !groups) {
        fprintf(stderr, "cuda_train_bench: out of host memory\n");
        return 1;
    }
    random_params(&lay, params);
    for (int i = 0; i < lay.count; i++)
        groups[i] = (cuda_adam_span){lay.params[i].offset, lay.params[i].numel, lay.params[i].lr_scale, 0};
    const rwkv4_cuda_adam h = {0.9f, 0.99f, 1e-8f, 0.0f};
    rwkv4_cuda *ctx = NULL;
    int rc = 0;
    if (rwkv4_cuda_new(&lay, B, T, prec, &ctx, &err) || rwkv4_cuda_upload_params(ctx, params, &err)) {
        rc = die(s->name, &err);
        goto out;
    }
    double t0 = 0;
    const int warmup = 2;
    rwkv_status st = RWKV_OK;
    for (int i = 0; i < warmup + steps && !st; i++) {
        if (i == warmup) {
            if ((st = rwkv4_cuda_sync(ctx, &err))) break;
            t0 = now_s();
        }
        for (int n = 0; n < B * T; n++) inputs[n] = (int)urand(0, (float)s->V), targets[n] = (int)urand(0,
                (float)s->V);
        /* one training step, with nothing that waits for the device */
        if ((st = rwkv4_cuda_zero_grads(ctx, &err)) ||
            (st = rwkv4_cuda_forward_backward(ctx, inputs, targets, 1e-4f, NULL, &err)) ||
            (st = rwkv4_cuda_grad_norm(ctx, NULL, &err)))
            break;
        st = rwkv4_cuda_adam_update(ctx, groups, lay.count, 1e-4f, 1.0f, 1.0f, i + 1, &h, &err);
    }
    float loss = 0;
    if (st || rwkv4_cuda_last_loss(ctx, &loss, &err)) {
        rc = die(s->name, &err);
        goto out;
    }
    const double dt = (now_s() - t0) / steps;
    const double tok_s = (double)B * T / dt;
    const double flops_tok = 6.0 * ((double)s->V * s->C + 13.0 * s->C * (double)s->C * s->L);
    const double mfu = tok_s * flops_tok / (peak * 1e12);
    rwkv4_cuda_timing tm;
    rwkv4_cuda_set_timing(ctx, 1);
    if (rwkv4_cuda_forward_backward(ctx, inputs, targets, 1e-4f, NULL, &err) || rwkv4_cuda_timing_get(ctx,
            &tm, &err)) {
        rc = die(s->name, &err);
        goto out;
    }
    printf("| %s | %s | %d x %d | %.1f | %.0f | %.1f%% | %.1f / %.1f / %.1f | %.1f / %.1f / %.1f / %.1f | %.1f | %.2f |\n",
           s->name, prec == RWKV4_CUDA_BF16 ? "bf16" : "fp32", B, T, dt * 1e3, tok_s, 100 * mfu, tm.gemm_ms,
           tm.wkv_ms, tm.other_ms, tm.norm_ms, tm.shift_ms, tm.elem_ms, tm.loss_ms,
           (double)rwkv4_cuda_bytes(ctx) / (1 << 30), loss);
    fflush(stdout);
out:
    rwkv4_cuda_free(ctx);
    free(params), free(inputs), free(targets), free(groups);
    param_layout_free(&lay);
    return rc;
}

int main(int argc, char **argv) {
    int quick = 0, B = 32, T = 1024, steps = 5;
    const char *only = NULL;
    rwkv4_cuda_precision prec = RWKV4_CUDA_BF16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) quick = 1;
        else if (!strcmp(a, "--shape") && v) only = v, i++;
        else if (!strcmp(a, "--batch") && v) B = atoi(v), i++;
        else if (!strcmp(a, "--ctx") && v) T = atoi(v), i++;
        else if (!strcmp(a, "--steps") && v) steps = atoi(v), i++;
        else if (!strcmp(a, "--precision") && v) prec = strcmp(v, "fp32") ? RWKV4_CUDA_BF16 : RWKV4_CUDA_FP32, i++;
        else {
            fprintf(stderr, "usage: cuda_train_bench [--quick] [--shape 169M|430M|1.5B] [--batch B] [--ctx T] "
                            "[--steps N] [--precision bf16|fp32]\n");
            return 2;
        }
    }
    if (cuda_device_count() <= 0) {
        printf("SKIP cuda_train_bench: no CUDA device\n");
        return 0;
    }
    if (quick) B = 8, steps = 3, only = only ? only : "169M";
    rwkv_error err;
    double peak = 0;
    if (measure_peak(&peak, &err)) return die("bf16 GEMM peak", &err);
    printf("bf16 GEMM peak (cuBLASLt, 8192^3, random data): %.0f TFLOP/s\n\n", peak);
    printf("| shape | precision | B x T | step ms | tokens/s | MFU | GEMM / WKV / rest ms | rest: LN / shift / "
           "elementwise / loss ms | device GiB | loss |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    int rc = 0;
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        if (!only || !strcmp(only, SHAPES[i].name)) rc |= bench_shape(&SHAPES[i], B, T, steps, prec, peak);
    return rc;
}
