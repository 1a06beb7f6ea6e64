/* What the GPU inference tests share: the error measure, loading a model
 * on a device, one model run on the CPU and the GPU side by side, and the
 * reference cases' inputs (case.txt), random checkpoints and the state
 * round trip between the devices. */
#ifndef RWKV_INFER_CHECK_H
#define RWKV_INFER_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "core/tensor.h"
#include "cuda_test.h"
#include "formats/formats.h"
#include "rwkv.h"
#include "rwkv_train.h"

/* max |got - want| / max(1, max |want|); NaN sticks. */
__attribute__((unused)) static double max_err(const float *got, const float *want, size_t n) {
    double m = 0, scale = 1;
    for (size_t i = 0; i < n; i++) {
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= m)) m = d; /* NaN sticks */
    }
    return m / scale;
}

__attribute__((unused)) static rwkv_model *load_on(const char *path, const char *device, const char *precision) {
    rwkv_load_options lo = {.device = device, .precision = precision};
    rwkv_model *m = NULL;
    rwkv_error err;
    if (rwkv_model_load_ex(path, &lo, &m, &err) != RWKV_OK) printf("  load %s on %s: %s\n", path, device, err.message);
    return m;
}

/* n tokens in sequence mode (all logits), then `decode` tokens one by one,
 * on both devices: logits and states compared after each phase. */
__attribute__((unused)) static void compare_devices(const char *path, const char *precision, const int *tok, int n,
                                                    int decode, double budget) {
    rwkv_model *cpu = load_on(path, "cpu", NULL), *gpu = load_on(path, "cuda", precision);
    CHECK(cpu && gpu, "models did not load");
    rwkv_model_info info;
    rwkv_model_get_info(cpu, &info);
    const size_t V = (size_t)info.n_vocab;
    rwkv_state *sc, *sg;
    CHECK(rwkv_state_new(cpu, &sc, NULL) == RWKV_OK && rwkv_state_new(gpu, &sg, NULL) == RWKV_OK, "states");
    float *lc = malloc(n * V * 4), *lg = malloc(n * V * 4);
    CHECK(rwkv_eval_sequence(cpu, sc, tok, n, lc, 1, NULL) == RWKV_OK, "cpu eval");
    CHECK(rwkv_eval_sequence(gpu, sg, tok, n, lg, 1, NULL) == RWKV_OK, "gpu eval");
    double e = max_err(lg, lc, n * V), es = max_err(rwkv_state_data(sg), rwkv_state_data(sc), rwkv_state_size(sc));
    CHECK(e <= budget && es <= budget, "%s %s: sequence logits differ by %g, state by %g (budget %g)", path, precision,
          e, es, budget);
    for (int i = 0; i < decode; i++) {
        CHECK(rwkv_eval(cpu, sc, tok[i], lc, NULL) == RWKV_OK && rwkv_eval(gpu, sg, tok[i], lg, NULL) == RWKV_OK, "decode");
        e = max_err(lg, lc, V);
        CHECK(e <= budget, "%s %s: decode step %d logits differ by %g", path, precision, i, e);
    }
    es = max_err(rwkv_state_data(sg), rwkv_state_data(sc), rwkv_state_size(sc));
    CHECK(es <= budget, "%s %s: state after decoding differs by %g", path, precision, es);
    printf("  %s %s: max error %.3g (logits), %.3g (state)\n", path, precision ? precision : "fp32", e, es);
    free(lc), free(lg);
    rwkv_state_free(sc), rwkv_state_free(sg);
    rwkv_model_free(cpu), rwkv_model_free(gpu);
}

/* A reference case's B x T inputs and vocabulary (case.txt of dir). */
__attribute__((unused)) static int read_case(const char *dir, int *B, int *T, int *V, int **inputs) {
    char p[1400], word[32];
    snprintf(p, sizeof p, "%s/case.txt", dir);
    FILE *f = fopen(p, "r");
    int ok = 0;
    while (f && fscanf(f, "%31s", word) == 1) {
        if (strcmp(word, "n_vocab") == 0 && fscanf(f, "%d", V) != 1) break;
        if (strcmp(word, "inputs") == 0 && fscanf(f, "%d %d", B, T) == 2) {
            *inputs = malloc(sizeof(int) * *B * *T);
            ok = 1;
            for (int i = 0; i < *B * *T; i++) ok &= fscanf(f, "%d", &(*inputs)[i]) == 1;
            break;
        }
    }
    if (f) fclose(f);
    return ok;
}

/* A random checkpoint of `arch` at path: the init's names and shapes, every
 * value redrawn (the init zeroes some matrices, which would hide errors):
 * mixes in [0, 1), layer-norm weights in [0.5, 1.5), time_decay vectors in
 * [-4, decay_hi), the rest around zero, matrices scaled by their width. */
__attribute__((unused)) static int write_random_decays(const char *path, const char *arch, int V, int C, int L, int F,
                                                       int head_size, uint64_t seed, float decay_hi) {
    rwkv_init_options o = rwkv_init_options_default();
    o.arch = arch, o.n_vocab = V, o.n_embd = C, o.n_layer = L, o.n_ffn = F, o.head_size = head_size, o.seed = seed;
    o.uniform = strcmp(arch, "rwkv5") == 0 || strcmp(arch, "rwkv6") == 0; /* the only init they have */
    tensor_set set;
    if (rwkv_init_checkpoint(&o, path, NULL) != RWKV_OK || checkpoint_read(path, &set, NULL) != RWKV_OK) return 0;
    for (int i = 0; i < set.count; i++) {
        tensor *t = &set.tensors[i];
        const size_t n = (size_t)tensor_numel(t);
        float *x = tensor_set_alloc(&set, n * 4);
        const char *name = t->name;
        const int mix = strstr(name, "time_mix") || strstr(name, ".x_");
        const int decay = strstr(name, "time_decay") && !strstr(name, "time_decay_w"); /* not RWKV-6's LoRA */
        const int ln_w = strstr(name, "ln") && strstr(name, "weight");
        const float amp = t->ndim == 2 ? 1.0f / sqrtf((float)t->shape[1]) : 0.5f;
        for (size_t j = 0; j < n; j++)
            x[j] = mix ? urand(0, 1) : decay ? urand(-4, decay_hi) : ln_w ? urand(0.5f, 1.5f) : urand(-amp, amp) * 2;
        t->data = x;
        t->type = DT_F32;
        t->nbytes = n * 4;
    }
    int ok = safetensors_write(path, set.tensors, set.count, DT_F32, NULL) == RWKV_OK;
    tensor_set_free(&set);
    return ok;
}

/* As write_random_decays, time_decay in [-4, 1). */
__attribute__((unused)) static int write_random_arch(const char *path, const char *arch, int V, int C, int L, int F,
                                                     int head_size, uint64_t seed) {
    return write_random_decays(path, arch, V, C, L, F, head_size, seed, 1.0f);
}

/* A state saved from the GPU loads on the CPU, and the two continue alike;
 * rwkv_state_copy and a state loaded into the GPU carry over too. */
__attribute__((unused)) static void check_state_round_trip(const char *path, int V) {
    char spath[64];
    snprintf(spath, sizeof spath, "/tmp/rwkv_infer_rt_%d.state", (int)getpid());
    rwkv_model *cpu = load_on(path, "cpu", NULL), *gpu = load_on(path, "cuda", NULL);
    CHECK(cpu && gpu, "load");
    rwkv_state *sg, *sg2, *sc;
    CHECK(rwkv_state_new(gpu, &sg, NULL) == RWKV_OK && rwkv_state_new(gpu, &sg2, NULL) == RWKV_OK &&
              rwkv_state_new(cpu, &sc, NULL) == RWKV_OK,
          "states");
    const int tok[] = {1, 5, 9, 33, 2, 70, 4};
    CHECK(rwkv_eval_sequence(gpu, sg, tok, 7, NULL, 0, NULL) == RWKV_OK, "gpu eval");
    rwkv_error err;
    CHECK(rwkv_state_save(sg, spath, &err) == RWKV_OK, "save: %s", err.message);
    CHECK(rwkv_state_load(sc, spath, &err) == RWKV_OK, "load on the cpu: %s", err.message);
    CHECK(rwkv_state_copy(sg2, sg, &err) == RWKV_OK, "copy: %s", err.message);
    float *lc = malloc(V * 4), *lg = malloc(V * 4), *lg2 = malloc(V * 4);
    CHECK(rwkv_eval(cpu, sc, 11, lc, NULL) == RWKV_OK && rwkv_eval(gpu, sg, 11, lg, NULL) == RWKV_OK &&
              rwkv_eval(gpu, sg2, 11, lg2, NULL) == RWKV_OK,
          "continue");
    CHECK(max_err(lg, lc, V) <= 2e-4, "the cpu continues a gpu state differently: %g", max_err(lg, lc, V));
    CHECK(max_err(lg2, lg, V) == 0, "a copied gpu state continues differently");
    CHECK(rwkv_state_load(sg2, spath, &err) == RWKV_OK, "load on the gpu: %s", err.message);
    CHECK(rwkv_eval(gpu, sg2, 11, lg2, NULL) == RWKV_OK && max_err(lg2, lg, V) == 0, "a loaded gpu state differs");
    rwkv_state_free(sg), rwkv_state_free(sg2), rwkv_state_free(sc);
    rwkv_model_free(cpu), rwkv_model_free(gpu);
    free(lc), free(lg), free(lg2);
    unlink(spath);
}

#endif
