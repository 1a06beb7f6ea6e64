/* Random RWKV-5.2 and RWKV-6 checkpoints (`rwkv init --arch rwkv5|rwkv6
 * --uniform`), for benchmarks and tests at the shapes people run: rwkv.c does
 * not train these versions, so there is no official init to follow. The
 * tensors carry the official names and shapes (the x052 and x060 layouts the
 * loaders in model/rwkv5.c and model/rwkv6.c read) and values in the ranges a
 * trained model has, so that a forward pass stays finite at any depth:
 *   matrices      uniform with variance 1 / fan-in (the head and the
 *                 embedding too: the embedding only feeds ln0)
 *   LoRA factors  the same, times 0.1 (data-dependent terms stay small)
 *   mixes         uniform in [0, 1)
 *   time_decay    uniform in [-6, -1): per-step decays exp(-exp(d)) of 0.69 to 0.998
 *   time_faaaa    uniform in [0, 1)
 *   norms         weight 1, bias 0
 * Each tensor draws from its own stream of the seed (init_stream), so a
 * value depends on the seed and the tensor's place only. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/tensor.h"
#include "formats/formats.h"
#include "train/init_bench_model.h"
#include "train/init_random.h"

enum fill { F_MATRIX, F_LORA, F_MIX, F_DECAY, F_BONUS, F_ONE, F_ZERO };

typedef struct gen {
    tensor_set set;
    uint64_t seed;
    int index; /* tensors added so far: the stream of the next */
    rwkv_status status;
    rwkv_error *err;
} gen;

/* Adds `name` of the given shape (ndim <= 3) filled as `how`; fan_in for matrices. */
static void add(gen *g, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, enum fill how, int64_t fan_in) {
    if (g->status != RWKV_OK) return;
    const int64_t shape[3] = {d0, d1, d2};
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    float *w = tensor_set_alloc(&g->set, n * sizeof(float));
    if (!w) {
        g->status = rwkv_fail(g->err, RWKV_ERR_NOMEM, "out of memory for %s (%zu floats)", name, n);
        return;
    }
    uint64_t rng = init_stream(g->seed, g->index++);
    const double half = (how == F_LORA ? 0.1 : 1.0) * sqrt(3.0 / (double)(fan_in > 0 ? fan_in : 1));
    for (size_t i = 0; i < n; i++) {
        const double u = init_uniform01(&rng);
        w[i] = (float)(how == F_MATRIX || how == F_LORA ? (2.0 * u - 1.0) * half
                       : how == F_MIX || how == F_BONUS ? u
                       : how == F_DECAY                 ? -6.0 + 5.0 * u
                       : how == F_ONE                   ? 1.0
                                                        : 0.0);
    }
    g->status = tensor_set_add(&g->set, name, DT_F32, ndim, shape, w, n * sizeof(float), g->err);
}

static void add_norm(gen *g, const char *prefix, int64_t n) {
    char name[128];
    snprintf(name, sizeof name, "%s.weight", prefix);
    add(g, name, 1, n, 0, 0, F_ONE, 0);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add(g, name, 1, n, 0, 0, F_ZERO, 0);
}

/* One layer's tensors; version 5 (5.2) or 6. */
static void add_layer(gen *g, int version, int l, int64_t C, int64_t H, int64_t N, int64_t F) {
    const int64_t A = H * N, Dm = 32, Dd = 64;
    char p[64], name[128];
    snprintf(p, sizeof p, "blocks.%d.", l);
#define NAME(s) (snprintf(name, sizeof name, "%s%s", p, s), name)
    snprintf(name, sizeof name, "%sln1", p), add_norm(g, name, C);
    snprintf(name, sizeof name, "%sln2", p), add_norm(g, name, C);
    if (version == 5) {
        static const char *const mixes[] = {"att.time_mix_k", "att.time_mix_v", "att.time_mix_r", "att.time_mix_g"};
        for (int m = 0; m < 4; m++) add(g, NAME(mixes[m]), 3, 1, 1, C, F_MIX, 0);
        add(g, NAME("att.time_decay"), 2, H, N, 0, F_DECAY, 0);
    } else {
        static const char *const mixes[] = {"att.time_maa_x", "att.time_maa_w", "att.time_maa_k", "att.time_maa_v",
                                            "att.time_maa_r", "att.time_maa_g"};
        for (int m = 0; m < 6; m++) add(g, NAME(mixes[m]), 3, 1, 1, C, F_MIX, 0);
        add(g, NAME("att.time_maa_w1"), 2, C, 5 * Dm, 0, F_LORA, C);
        add(g, NAME("att.time_maa_w2"), 3, 5, Dm, C, F_LORA, Dm);
        add(g, NAME("att.time_decay"), 3, 1, 1, A, F_DECAY, 0);
        add(g, NAME("att.time_decay_w1"), 2, C, Dd, 0, F_LORA, C);
        add(g, NAME("att.time_decay_w2"), 2, Dd, A, 0, F_LORA, Dd);
    }
    add(g, NAME("att.time_faaaa"), 2, H, N, 0, F_BONUS, 0);
    static const char *const att[] = {"att.receptance.weight", "att.key.weight", "att.value.weight", "att.gate.weight"};
    for (int m = 0; m < 4; m++) add(g, NAME(att[m]), 2, A, C, 0, F_MATRIX, C);
    add(g, NAME("att.output.weight"), 2, C, A, 0, F_MATRIX, A);
    snprintf(name, sizeof name, "%satt.ln_x", p), add_norm(g, name, A);
    const char *fk = version == 5 ? "ffn.time_mix_k" : "ffn.time_maa_k", *fr = version == 5 ? "ffn.time_mix_r"
                                                                                           : "ffn.time_maa_r";
    add(g, NAME(fk), 3, 1, 1, C, F_MIX, 0);
    add(g, NAME(fr), 3, 1, 1, C, F_MIX, 0);
    add(g, NAME("ffn.key.weight"), 2, F, C, 0, F_MATRIX, C);
    add(g, NAME("ffn.receptance.weight"), 2, C, C, 0, F_MATRIX, C);
    add(g, NAME("ffn.value.weight"), 2, C, F, 0, F_MATRIX, F);
#undef NAME
}

rwkv_status init_bench_model(const rwkv_init_options *o, int version, const char *out_path, rwkv_error *err) {
    const int64_t C = o->n_embd, N = o->head_size ? o->head_size : (C < 64 ? C : 64);
    if (!o->uniform)
        return rwkv_fail(err, RWKV_ERR_ARG, "--arch rwkv%d writes random models for benchmarks: it needs --uniform",
                         version);
    if (C % N != 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "--head-size %lld must divide --embd %lld", (long long)N, (long long)C);
    const int64_t official = C * 7 / 2 / 32 * 32; /* 3.5 C, rounded down to a multiple of 32 */
    const int64_t F = o->n_ffn ? o->n_ffn : official > 0 ? official : C;
    gen g = {.seed = o->seed, .status = RWKV_OK, .err = err};
    tensor_set_init(&g.set);
    add(&g, "emb.weight", 2, o->n_vocab, C, 0, F_MATRIX, C);
    add_norm(&g, "blocks.0.ln0", C);
    for (int l = 0; l < o->n_layer; l++) add_layer(&g, version, l, C, C / N, N, F);
    add_norm(&g, "ln_out", C);
    add(&g, "head.weight", 2, o->n_vocab, C, 0, F_MATRIX, C);
    rwkv_status s = g.status;
    if (s == RWKV_OK) s = safetensors_write(out_path, g.set.tensors, g.set.count, DT_F32, err);
    tensor_set_free(&g.set);
    return s;
}
