/* Random RWKV-5.2 and RWKV-6 models (`rwkv init --arch rwkv5|rwkv6
 * --uniform`), for benchmarks and tests at the shapes people run: rwkv.c does
 * not train these versions, so they have only the operations of a fresh
 * model (train/arch.h) and there is no official init to follow. The tensors
 * carry the official names and shapes (the x052 and x060 layouts that
 * model/rwkv5.c and model/rwkv6.c read, the RWKV-6 LoRA ranks of the official
 * code) and values in the ranges a trained model has, so that a forward pass
 * stays finite at any depth:
 *   matrices      uniform with variance 1 / fan-in (the head and the
 *                 embedding too: the embedding only feeds ln0)
 *   LoRA factors  the same, times 0.1 (data-dependent terms stay small)
 *   mixes         uniform in [0, 1)
 *   time_decay    uniform in [-6, -1): per-step decays exp(-exp(d)) of 0.69 to 0.998
 *   time_faaaa    uniform in [0, 1)
 *   norms         weight 1, bias 0
 * Each tensor draws from its own stream of the seed and its index
 * (init_stream), so a value depends on the seed and the tensor's place only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/arch.h"
#include "train/init_random.h"

/* ---- shape and layout ------------------------------------------------------ */

static rwkv_status shape_check(arch_shape *sh, int v6, rwkv_error *err) {
    const char *name = v6 ? "RWKV-6" : "RWKV-5";
    if (sh->n_vocab <= 0 || sh->n_embd <= 0 || sh->n_layer <= 0 || sh->n_ffn < 0 || sh->head_size < 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "bad %s shape: n_vocab %d n_embd %d n_layer %d n_ffn %d head_size %d",
                         name, sh->n_vocab, sh->n_embd, sh->n_layer, sh->n_ffn, sh->head_size);
    const int C = sh->n_embd, official_ffn = C * 7 / 2 / 32 * 32; /* 3.5 C, rounded down to a multiple of 32 */
    if (sh->n_ffn == 0) sh->n_ffn = official_ffn > 0 ? official_ffn : C;
    if (sh->head_size == 0) sh->head_size = C < 64 ? C : 64;
    if (C % sh->head_size != 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "--head-size %d does not divide n_embd %d", sh->head_size, C);
    sh->n_head = C / sh->head_size;
    sh->n_ctx = 0;
    /* the official x060 ranks, doubled at the 7B width */
    sh->d_mix = v6 ? (C == 4096 ? 64 : 32) : 0;
    sh->d_decay = v6 ? (C == 4096 ? 128 : 64) : 0;
    sh->d_aaa = sh->d_mv = sh->d_gate = 0;
    const double floats = 2.0 * sh->n_vocab * C + (double)sh->n_layer * C * (6.0 * C + 3.0 * sh->n_ffn);
    if (floats > 1e12) return rwkv_fail(err, RWKV_ERR_ARG, "%s shape too large (%.3g floats)", name, floats);
    return RWKV_OK;
}

static rwkv_status r5_shape_check(arch_shape *sh, rwkv_error *err) { return shape_check(sh, 0, err); }
static rwkv_status r6_shape_check(arch_shape *sh, rwkv_error *err) { return shape_check(sh, 1, err); }

#define ADD(suffix, ndim, d0, d1, d2) param_layout_add_in_block(lay, l, (suffix), (ndim), (d0), (d1), (d2), 1.0f)

/* The time mix of block l: x052's, or x060's with its LoRAs. */
static void add_time_mix(param_layout *lay, const arch_shape *sh, int l, int v6) {
    const int C = sh->n_embd, N = sh->head_size, H = C / N;
    if (v6) {
        static const char *const maa[] = {"att.time_maa_x", "att.time_maa_w", "att.time_maa_k",
                                          "att.time_maa_v", "att.time_maa_r", "att.time_maa_g"};
        for (int i = 0; i < 6; i++) ADD(maa[i], 3, 1, 1, C);
        ADD("att.time_maa_w1", 2, C, 5 * sh->d_mix, 0);
        ADD("att.time_maa_w2", 3, 5, sh->d_mix, C);
        ADD("att.time_decay", 3, 1, 1, C);
        ADD("att.time_decay_w1", 2, C, sh->d_decay, 0);
        ADD("att.time_decay_w2", 2, sh->d_decay, C, 0);
    } else {
        static const char *const mix[] = {"att.time_mix_k", "att.time_mix_v", "att.time_mix_r", "att.time_mix_g"};
        for (int i = 0; i < 4; i++) ADD(mix[i], 3, 1, 1, C);
        ADD("att.time_decay", 2, H, N, 0);
    }
    ADD("att.time_faaaa", 2, H, N, 0);
    static const char *const proj[] = {"att.receptance.weight", "att.key.weight", "att.value.weight",
                                       "att.gate.weight", "att.output.weight"};
    for (int i = 0; i < 5; i++) ADD(proj[i], 2, C, C, 0);
    ADD("att.ln_x.weight", 1, C, 0, 0);
    ADD("att.ln_x.bias", 1, C, 0, 0);
}

/* emb and ln0 first, then the blocks, ln_out and the head. */
static rwkv_status layout(const arch_shape *sh, param_layout *lay, int v6, rwkv_error *err) {
    memset(lay, 0, sizeof *lay);
    const int C = sh->n_embd, F = sh->n_ffn;
    lay->params = calloc((size_t)6 + 32 * (size_t)sh->n_layer, sizeof(param_info));
    if (!lay->params) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (parameter layout)");
    lay->shape = (model_dims){sh->n_vocab, C, sh->n_layer, F, C};
    param_layout_add(lay, "emb.weight", 2, sh->n_vocab, C, 0, 1.0f);
    param_layout_add(lay, "blocks.0.ln0.weight", 1, C, 0, 0, 1.0f);
    param_layout_add(lay, "blocks.0.ln0.bias", 1, C, 0, 0, 1.0f);
    for (int l = 0; l < sh->n_layer; l++) {
        static const char *const norms[] = {"ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"};
        for (int i = 0; i < 4; i++) ADD(norms[i], 1, C, 0, 0);
        add_time_mix(lay, sh, l, v6);
        ADD(v6 ? "ffn.time_maa_k" : "ffn.time_mix_k", 3, 1, 1, C);
        ADD(v6 ? "ffn.time_maa_r" : "ffn.time_mix_r", 3, 1, 1, C);
        ADD("ffn.key.weight", 2, F, C, 0);
        ADD("ffn.receptance.weight", 2, C, C, 0);
        ADD("ffn.value.weight", 2, C, F, 0);
    }
    param_layout_add(lay, "ln_out.weight", 1, C, 0, 0, 1.0f);
    param_layout_add(lay, "ln_out.bias", 1, C, 0, 0, 1.0f);
    param_layout_add(lay, "head.weight", 2, sh->n_vocab, C, 0, 1.0f);
    return rwkv_ok(err);
}

#undef ADD

static rwkv_status r5_layout(const arch_shape *sh, param_layout *lay, rwkv_error *err) {
    return layout(sh, lay, 0, err);
}
static rwkv_status r6_layout(const arch_shape *sh, param_layout *lay, rwkv_error *err) {
    return layout(sh, lay, 1, err);
}

/* ---- values ---------------------------------------------------------------- */

static rwkv_status init_tensor(const arch_shape *sh, const param_layout *lay, int index, float *w, uint64_t seed,
                               float emb_scale, arch_init_state *st, rwkv_error *err) {
    (void)sh, (void)emb_scale, (void)st, (void)err;
    const param_info *p = &lay->params[index];
    const char *nm = p->name;
    const uint64_t stream = init_stream(seed, index);
    if (p->ndim == 1) { /* the norms */
        const float v = ends_with(nm, ".weight") ? 1.0f : 0.0f;
        for (size_t i = 0; i < p->numel; i++) w[i] = v;
    } else if (ends_with(nm, ".weight")) { /* Linear [out, in] */
        init_uniform_fill(w, p->numel, sqrt(3.0 / (double)p->shape[1]), stream);
    } else if (ends_with(nm, "_w1") || ends_with(nm, "_w2")) { /* LoRA [in, out], time_maa_w2 [5, in, out] */
        init_uniform_fill(w, p->numel, 0.1 * sqrt(3.0 / (double)p->shape[p->ndim - 2]), stream);
    } else if (ends_with(nm, "time_decay")) {
        init_uniform_range_fill(w, p->numel, -6.0, 5.0, stream);
    } else { /* the mixes and time_faaaa */
        init_uniform_range_fill(w, p->numel, 0.0, 1.0, stream);
    }
    return RWKV_OK;
}

const train_arch train_arch_rwkv5 = {"rwkv5", r5_shape_check, r5_layout, init_tensor, NULL, NULL, NULL, NULL,
                                     NULL,    NULL,           NULL};
const train_arch train_arch_rwkv6 = {"rwkv6", r6_shape_check, r6_layout, init_tensor, NULL, NULL, NULL, NULL,
                                     NULL,    NULL,           NULL};
