/* RWKV-4, inference: the block of docs/model.md §1.2 over a
 * chunk of T tokens, continuing from the recurrent state of §1.4. RNN mode
 * (one token) and sequence mode (many tokens, matrix-matrix products) are
 * the same code (model/common.c runs the chunks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/wkv.h"
#include "model/common.h"

#define FRESH_PP (-1e38f) /* "empty" WKV state: every exponent p - q underflows to 0 (§1.3) */

typedef struct rwkv4_layer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    float *att_mix_k, *att_mix_v, *att_mix_r;
    float *att_d; /* d = -exp(time_decay), the per-step log decay (§0) */
    float *att_u; /* time_first, the bonus */
    matrix att_k, att_v, att_r, att_o;
    float *ffn_mix_k, *ffn_mix_r;
    matrix ffn_k, ffn_r, ffn_v;
} rwkv4_layer;

typedef struct rwkv4 {
    rwkv_common c;
    rwkv4_layer *layers;
} rwkv4;

/* State slots of one layer (§1.4): att_xx[C], aa[A], bb[A], pp[A], ffn_xx[C];
 * fresh: zeros except pp, which starts "empty". */
static void rwkv4_state_init(const void *impl, float *state) {
    const rwkv4 *w = impl;
    const int C = w->c.C, A = w->c.A;
    for (int l = 0; l < w->c.L; l++)
        for (int i = 0; i < A; i++) state[(size_t)l * w->c.layer_state + C + 2 * A + i] = FRESH_PP;
}

/* Working memory of one block: three mixed inputs and three projections,
 * each [T][max(C, A, F)], and the WKV output [T][max(C, A)]. */
static size_t widest(const rwkv4 *w) {
    int m = w->c.C > w->c.A ? w->c.C : w->c.A;
    return (size_t)(m > w->c.F ? m : w->c.F);
}
static size_t rwkv4_scratch_floats(const void *impl, int T) { return 7 * (size_t)T * widest(impl); }

static void rwkv4_block(const void *impl, int l, const block_states *st, float *x, float *z, float *scratch, int T, int nt) {
    const rwkv4 *w = impl;
    const rwkv4_layer *ly = &w->layers[l];
    const int C = w->c.C, A = w->c.A;
    const size_t tw = (size_t)T * widest(w);
    float *xa = scratch, *xb = xa + tw, *xc = xb + tw, *k = xc + tw, *v = k + tw, *r = v + tw, *y = r + tw;
    /* state slots (offsets into each layer state): att_xx, aa, bb, pp, ffn_xx */
    const shift_src att_prev = {st, 0}, ffn_prev = {st, (size_t)C + 3 * (size_t)A};

    /* time mixing: k, v, r from token-shifted LN1 outputs, WKV, gated output */
    layernorm_rows(x, ly->ln1_w, ly->ln1_b, T, C, z, nt);
    const float *att_mu[] = {ly->att_mix_k, ly->att_mix_v, ly->att_mix_r};
    float *const att_in[] = {xa, xb, xc};
    shift_mix_rows(z, att_prev, T, C, 3, att_mu, att_in, nt);
    shift_save(att_prev, z, T, C);
    const matrix *W[] = {&ly->att_k, &ly->att_v, &ly->att_r};
    const float *X[] = {xa, xb, xc};
    float *const Y[] = {k, v, r};
    block_matmul_group(st, 3, W, X, T, Y, nt);
    for (int t = 0, rows = st->batched ? 1 : T; t < T; t += rows) {
        float *aa = row_state(st, t) + C, *bb = aa + A, *pp = bb + A;
        const size_t o = (size_t)t * A;
        wkv4_forward(rows, A, ly->att_d, ly->att_u, k + o, v + o, aa, bb, pp, y + o);
    }
    sigmoid_mul(y, r, (size_t)T * A);
    block_matmul(st, &ly->att_o, y, T, k, nt); /* k is free again: [T][C] output */
    add_rows(x, k, T, C, nt);

    /* channel mixing */
    layernorm_rows(x, ly->ln2_w, ly->ln2_b, T, C, z, nt);
    const float *ffn_mu[] = {ly->ffn_mix_k, ly->ffn_mix_r};
    float *const ffn_in[] = {xa, xb};
    shift_mix_rows(z, ffn_prev, T, C, 2, ffn_mu, ffn_in, nt);
    shift_save(ffn_prev, z, T, C);
    ffn_relu2(st, &ly->ffn_k, &ly->ffn_v, &ly->ffn_r, xa, xb, T, k, v, r, x, nt);
}

static const model_ops rwkv4_ops = {rwkv4_state_init, rwkv4_scratch_floats, rwkv4_block};

static rwkv_status load_layer(tensor_set *set, rwkv4 *w, int l, rwkv_error *err) {
    rwkv4_layer *ly = &w->layers[l];
    const int C = w->c.C, A = w->c.A, F = w->c.F;
    char n[128];
#define NAME(suffix) (snprintf(n, sizeof n, "blocks.%d.%s", l, suffix), n)
    LOAD_VEC(ly->ln1_w, NAME("ln1.weight"), C);
    LOAD_VEC(ly->ln1_b, NAME("ln1.bias"), C);
    LOAD_VEC(ly->ln2_w, NAME("ln2.weight"), C);
    LOAD_VEC(ly->ln2_b, NAME("ln2.bias"), C);
    LOAD_VEC(ly->att_mix_k, NAME("att.time_mix_k"), C);
    LOAD_VEC(ly->att_mix_v, NAME("att.time_mix_v"), C);
    LOAD_VEC(ly->att_mix_r, NAME("att.time_mix_r"), C);
    LOAD_VEC(ly->att_d, NAME("att.time_decay"), A);
    LOAD_VEC(ly->att_u, NAME("att.time_first"), A);
    for (int i = 0; i < A; i++) ly->att_d[i] = -expf(ly->att_d[i]);
    LOAD_MAT(ly->att_k, NAME("att.key.weight"), A, C);
    LOAD_MAT(ly->att_v, NAME("att.value.weight"), A, C);
    LOAD_MAT(ly->att_r, NAME("att.receptance.weight"), A, C);
    LOAD_MAT(ly->att_o, NAME("att.output.weight"), C, A);
    LOAD_VEC(ly->ffn_mix_k, NAME("ffn.time_mix_k"), C);
    LOAD_VEC(ly->ffn_mix_r, NAME("ffn.time_mix_r"), C);
    LOAD_MAT(ly->ffn_k, NAME("ffn.key.weight"), F, C);
    LOAD_MAT(ly->ffn_r, NAME("ffn.receptance.weight"), C, C);
    LOAD_MAT(ly->ffn_v, NAME("ffn.value.weight"), C, F);
#undef NAME
    return RWKV_OK;
}

rwkv_status rwkv4_build(rwkv_model *m, rwkv_error *err) {
    /* keys that only experimental RWKV-4 variants have (docs §1.1) */
    static const char *const variant_keys[] = {"head_q", "head_k", "pos_emb", "tiny_", "ffnPre", "_strategy"};
    tensor_set *set = &m->weights;
    rwkv_status s = reject_keys(set, variant_keys, sizeof variant_keys / sizeof variant_keys[0],
                                "an experimental RWKV-4 variant", err);
    if (s != RWKV_OK) return s;
    rwkv4 *w = calloc(1, sizeof *w);
    if (!w) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    m->impl = w;
    m->ops = &rwkv4_ops;
    m->backend = &rwkv_cpu_backend;
    if ((s = common_load(set, &w->c, err)) != RWKV_OK) return s;
    w->c.layer_state = 2 * (size_t)w->c.C + 3 * (size_t)w->c.A;
    w->c.layers = w->layers = calloc((size_t)w->c.L, sizeof *w->layers);
    if (!w->layers) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    for (int l = 0; l < w->c.L; l++)
        if ((s = load_layer(set, w, l, err)) != RWKV_OK) return s;
    common_fill_info(&w->c, "4", &m->info);
    return RWKV_OK;
}
