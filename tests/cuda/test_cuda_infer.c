/* RWKV-4 inference on the GPU (--device cuda) against the CPU: the two
 * state-continuing kernels, then whole models (random RWKV-4 models and the
 * reference vectors) through rwkv_eval / rwkv_eval_sequence, comparing
 * logits and the downloaded state, and a state saved from the GPU loaded
 * on the CPU.
 *
 * Error budgets (max |gpu - cpu| over a buffer, relative to max(1, max |cpu|)):
 *   kernels                      1e-5 (same float operations, other exp())
 *   whole model, fp32            2e-4 (strict fp32 products summed in another order)
 *   whole model, bf16            5e-2 (matrix inputs and weights rounded to bf16)
 *   reference vectors, fp32      2e-4 against the float64 reference logits
 * RWKV-5/6/7 are tests/cuda/test_cuda_infer_wkv.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer_check.h"
#include "core/tensor.h"
#include "formats/formats.h"
#include "kernels/wkv.h"
#include "rwkv.h"
#include "rwkv_train.h"

static const char *vectors_dir;

static int write_random_model(const char *path, int V, int C, int L, int F, uint64_t seed) {
    return write_random_arch(path, "rwkv4", V, C, L, F, 0, seed);
}

static void test_token_shift_state(void) {
    NEED_GPU();
    enum { T = 7, C = 40, M = 3 };
    float *z = random_floats(T * C, -2, 2), *prev = random_floats(C, -2, 2), *mu = random_floats(M * C, 0, 1);
    float want[M * T * C];
    for (int m = 0; m < M; m++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                const float cur = z[t * C + c], before = t ? z[(t - 1) * C + c] : prev[c], w = mu[m * C + c];
                want[(m * T + t) * C + c] = w * cur + (1.0f - w) * before;
            }
    float *dz = to_device(CUDA_F32, z, T * C), *dprev = to_device(CUDA_F32, prev, C), *dmu = to_device(CUDA_F32, mu, M * C);
    float *dout = poisoned(CUDA_F32, M * T * C);
    cuda_token_shift_state(dz, dprev, dmu, M, T, C, dout, 0);
    float *got = to_host(CUDA_F32, dout, M * T * C), *got_prev = to_host(CUDA_F32, dprev, C);
    CHECK(got && got_prev, "device copies failed");
    CHECK(max_err(got, want, M * T * C) <= 1e-5, "mixes differ by %g", max_err(got, want, M * T * C));
    CHECK(max_err(got_prev, z + (T - 1) * C, C) == 0, "the state is not the last row");
    free(z), free(prev), free(mu), free(got), free(got_prev);
    cuda_free(dz), cuda_free(dprev), cuda_free(dmu), cuda_free(dout);
}

static void test_wkv_state(void) {
    NEED_GPU();
    enum { T = 50, C = 70 };
    float *theta = random_floats(C, -6, 2), *u = random_floats(C, -1, 1), *k = random_floats(T * C, -8, 8);
    float *v = random_floats(T * C, -2, 2), *st = random_floats(3 * C, 0.1f, 2), d[C], y[T * C];
    for (int c = 0; c < C; c++) d[c] = -expf(theta[c]);
    for (int c = 0; c < C / 2; c++) st[2 * C + c] = -1e38f; /* half the channels fresh */
    float *dth = to_device(CUDA_F32, theta, C), *du = to_device(CUDA_F32, u, C), *dk = to_device(CUDA_F32, k, T * C);
    float *dv = to_device(CUDA_F32, v, T * C), *dst = to_device(CUDA_F32, st, 3 * C), *dy = poisoned(CUDA_F32, T * C);
    wkv4_forward_scalar(T, C, 0, C, d, u, k, v, st, st + C, st + 2 * C, y);
    cuda_wkv_forward_state(T, C, dth, du, dk, dv, dst, dst + C, dst + 2 * C, dy, 0);
    float *got = to_host(CUDA_F32, dy, T * C), *got_st = to_host(CUDA_F32, dst, 3 * C);
    CHECK(got && got_st, "device copies failed");
    CHECK(max_err(got, y, T * C) <= 1e-5, "y differs by %g", max_err(got, y, T * C));
    CHECK(max_err(got_st, st, 3 * C) <= 1e-5, "state differs by %g", max_err(got_st, st, 3 * C));
    free(theta), free(u), free(k), free(v), free(st), free(got), free(got_st);
    cuda_free(dth), cuda_free(du), cuda_free(dk), cuda_free(dv), cuda_free(dst), cuda_free(dy);
}


static void random_models(const char *precision, double budget) {
    NEED_GPU();
    static const int shapes[][4] = {{97, 64, 2, 256}, {300, 128, 3, 200}};
    enum { N = 300 }; /* crosses the GPU's 128-token chunks and the CPU's 256 */
    int tok[N];
    for (int s = 0; s < 2; s++) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/rwkv_infer_%d_%d.safetensors", (int)getpid(), s);
        CHECK(write_random_model(path, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], 7 + s), "model");
        for (int i = 0; i < N; i++) tok[i] = (int)urand(0, (float)shapes[s][0] - 0.01f);
        compare_devices(path, precision, tok, N, 5, budget);
        unlink(path);
    }
}

static void test_random_models_fp32(void) { random_models("fp32", 2e-4); }
static void test_random_models_bf16(void) { random_models("bf16", 5e-2); }

/* The reference cases: each row's logits against logits_parallel, and GPU
 * against CPU on the same checkpoint. */
static void test_reference_vectors(void) {
    NEED_GPU();
    static const char *const cases[] = {"tiny", "small"};
    for (int c = 0; c < 2; c++) {
        char dir[1300], path[1400];
        snprintf(dir, sizeof dir, "%s/%s", vectors_dir, cases[c]);
        int B, T, V = 0, *inputs = NULL;
        if (!read_case(dir, &B, &T, &V, &inputs)) SKIP("%s: no reference case", dir);
        snprintf(path, sizeof path, "%s/model.f32.safetensors", dir);
        if (access(path, R_OK) != 0) snprintf(path, sizeof path, "%s/model.bf16.safetensors", dir);
        snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/logits_parallel.f32");
        FILE *f = fopen(dir, "rb");
        float *want = malloc(sizeof(float) * B * T * V), *got = malloc(sizeof(float) * T * V);
        CHECK(f && fread(want, sizeof(float), (size_t)B * T * V, f) == (size_t)B * T * V, "%s", dir);
        fclose(f);
        rwkv_model *gpu = load_on(path, "cuda", "fp32");
        CHECK(gpu, "load");
        for (int b = 0; b < B; b++) {
            rwkv_state *st;
            CHECK(rwkv_state_new(gpu, &st, NULL) == RWKV_OK, "state");
            CHECK(rwkv_eval_sequence(gpu, st, inputs + b * T, T, got, 1, NULL) == RWKV_OK, "eval");
            const double e = max_err(got, want + (size_t)b * T * V, (size_t)T * V);
            CHECK(e <= 2e-4, "%s row %d: logits differ from the reference by %g", cases[c], b, e);
            rwkv_state_free(st);
        }
        rwkv_model_free(gpu);
        compare_devices(path, "fp32", inputs, T, T, 2e-4);
        compare_devices(path, "bf16", inputs, T, T, 5e-2);
        free(want), free(got), free(inputs);
    }
}

/* A state saved from the GPU loads on the CPU and continues alike (infer_check.h). */
static void test_state_round_trip(void) {
    NEED_GPU();
    char path[64];
    snprintf(path, sizeof path, "/tmp/rwkv_infer_rt_%d.safetensors", (int)getpid());
    CHECK(write_random_model(path, 80, 64, 2, 128, 3), "model");
    check_state_round_trip(path, 80);
    unlink(path);
}

/* rwkv_eval_batch on the GPU: each row as its own rwkv_eval on the CPU; a
 * CPU state is refused by the GPU model. */
static void test_eval_batch(void) {
    NEED_GPU();
    char path[64];
    snprintf(path, sizeof path, "/tmp/rwkv_infer_b_%d.safetensors", (int)getpid());
    CHECK(write_random_model(path, 90, 64, 2, 128, 4), "model");
    rwkv_model *cpu = load_on(path, "cpu", NULL), *gpu = load_on(path, "cuda", NULL);
    CHECK(cpu && gpu, "load");
    enum { N = 3 };
    rwkv_state *sg[N], *sc[N];
    const int warm[N] = {3, 40, 77}, tok[N] = {5, 6, 7};
    float lg[N * 90], lc[90];
    for (int i = 0; i < N; i++) {
        CHECK(rwkv_state_new(gpu, &sg[i], NULL) == RWKV_OK && rwkv_state_new(cpu, &sc[i], NULL) == RWKV_OK, "states");
        CHECK(rwkv_eval(gpu, sg[i], warm[i], NULL, NULL) == RWKV_OK && rwkv_eval(cpu, sc[i], warm[i], NULL, NULL) == RWKV_OK,
              "warm-up");
    }
    CHECK(rwkv_eval_batch(gpu, sg, tok, N, lg, NULL) == RWKV_OK, "gpu batch");
    for (int i = 0; i < N; i++) {
        CHECK(rwkv_eval(cpu, sc[i], tok[i], lc, NULL) == RWKV_OK, "cpu");
        CHECK(max_err(lg + i * 90, lc, 90) <= 2e-4, "row %d differs by %g", i, max_err(lg + i * 90, lc, 90));
    }
    rwkv_error err;
    CHECK(rwkv_eval(gpu, sc[0], 1, lc, &err) == RWKV_ERR_ARG && strstr(err.message, "device"), "a cpu state on the gpu");
    for (int i = 0; i < N; i++) rwkv_state_free(sg[i]), rwkv_state_free(sc[i]);
    rwkv_model_free(cpu), rwkv_model_free(gpu);
    unlink(path);
}

/* The GPT baseline on the GPU is one line of RWKV_ERR_UNSUPPORTED. */
static void test_gpt_refused(void) {
    NEED_GPU();
    char path[64];
    snprintf(path, sizeof path, "/tmp/rwkv_infer_gpt_%d.safetensors", (int)getpid());
    rwkv_init_options o = rwkv_init_options_default();
    o.arch = "gpt", o.n_layer = 1, o.n_embd = 64;
    CHECK(rwkv_init_checkpoint(&o, path, NULL) == RWKV_OK, "init");
    rwkv_load_options lo = {.device = "cuda"};
    rwkv_model *m = NULL;
    rwkv_error err;
    CHECK(rwkv_model_load_ex(path, &lo, &m, &err) == RWKV_ERR_UNSUPPORTED && !m, "a GPT model loaded on cuda");
    CHECK(strstr(err.message, "GPT") && !strchr(err.message, '\n'), "message: %s", err.message);
    unlink(path);
}

int main(int argc, char **argv) {
    static char def[1300];
    snprintf(def, sizeof def, "%s/testvectors/rwkv4", shared_dir());
    vectors_dir = argc > 1 ? argv[1] : def;
    RUN(test_token_shift_state);
    RUN(test_wkv_state);
    RUN(test_random_models_fp32);
    RUN(test_random_models_bf16);
    RUN(test_reference_vectors);
    RUN(test_state_round_trip);
    RUN(test_eval_batch);
    RUN(test_gpt_refused);
    return test_summary();
}
