/* RWKV-7 parameters: shape defaults, the layout in the official state_dict
 * order, reading a checkpoint, and the official initialisation
 * (docs/training-rwkv7.md explains every number). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/load.h"
#include "train/init_random.h"
#include "train/rwkv7_grad.h"

/* The official rank suggestion: factor·sqrt(C) rounded to a multiple of 32,
 * at least 32. */
static int suggested_rank(int C, double factor) {
    const int r = (int)floor(factor * sqrt((double)C) / 32.0 + 0.5) * 32;
    return r > 32 ? r : 32;
}

rwkv_status rwkv7_shape_complete(rwkv7_shape *s, rwkv_error *err) {
    if (s->n_embd <= 0 || s->n_vocab <= 0 || s->n_layer <= 0 || s->n_ffn < 0 || s->head_size < 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "bad RWKV-7 shape: n_vocab %d n_embd %d n_layer %d n_ffn %d head_size %d",
                         s->n_vocab, s->n_embd, s->n_layer, s->n_ffn, s->head_size);
    if (s->n_ffn == 0) s->n_ffn = 4 * s->n_embd;
    if (s->head_size == 0) s->head_size = s->n_embd < 64 ? s->n_embd : 64;
    if (s->d_decay == 0) s->d_decay = suggested_rank(s->n_embd, 2.5);
    if (s->d_aaa == 0) s->d_aaa = suggested_rank(s->n_embd, 2.5);
    if (s->d_mv == 0) s->d_mv = suggested_rank(s->n_embd, 1.7);
    if (s->d_gate == 0) s->d_gate = suggested_rank(s->n_embd, 5.0);
    if (s->n_embd % s->head_size != 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "--head-size %d does not divide n_embd %d", s->head_size, s->n_embd);
    if (s->d_decay < 1 || s->d_aaa < 1 || s->d_mv < 1 || s->d_gate < 1)
        return rwkv_fail(err, RWKV_ERR_ARG, "bad RWKV-7 LoRA ranks %d %d %d %d", s->d_decay, s->d_aaa, s->d_mv,
                         s->d_gate);
    const double biggest = (double)s->n_vocab * s->n_embd +
                           (double)s->n_layer * s->n_embd * (4.0 * s->n_embd + 2.0 * s->n_ffn + 2.0 * s->d_gate);
    if (biggest > 1e12 || s->n_layer > 100000)
        return rwkv_fail(err, RWKV_ERR_ARG, "RWKV-7 shape too large (%.3g floats)", biggest);
    return RWKV_OK;
}

/* The official LR multipliers and weight decay: w0 learns at 2x; weight
 * decay (when set) only on the `.weight` matrices, never on the LoRA
 * factors nor the vectors. */
static void add(param_layout *lay, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    param_layout_add(lay, name, ndim, d0, d1, d2, ends_with(name, ".att.w0") ? 2.0f : 1.0f);
    param_info *p = &lay->params[lay->count - 1];
    p->decay = p->decay && ends_with(name, ".weight");
}

/* The LoRA paths in the official order: factor 1 [C, D], factor 2 [D, C],
 * then the bias vector (the gate has none; block 0 has no value residual). */
static void add_loras(param_layout *lay, const rwkv7_shape *s, int l) {
    const struct { char name; int rank, has_bias; } paths[] = {
        {'w', s->d_decay, 1}, {'a', s->d_aaa, 1}, {'v', s->d_mv, 1}, {'g', s->d_gate, 0}};
    char name[64];
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (paths[i].name == 'v' && l == 0) continue;
        const int C = s->n_embd, D = paths[i].rank;
        for (int part = 1; part <= (paths[i].has_bias ? 3 : 2); part++) {
            snprintf(name, sizeof name, "blocks.%d.att.%c%d", l, paths[i].name, part % 3);
            if (part == 1) add(lay, name, 2, C, D, 0);
            else if (part == 2) add(lay, name, 2, D, C, 0);
            else add(lay, name, 3, 1, 1, C);
        }
    }
}

static void add_block(param_layout *lay, const rwkv7_shape *s, int l) {
    const int C = s->n_embd, N = s->head_size, H = C / N, F = s->n_ffn;
    char name[64];
#define ADD(suffix, ...)                                                                                              \
    do {                                                                                                              \
        snprintf(name, sizeof name, "blocks.%d.%s", l, suffix);                                                       \
        add(lay, name, __VA_ARGS__);                                                                                  \
    } while (0)
    param_layout_add_block_norms(lay, l, C);
    static const char *const mixes[] = {"att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g"};
    for (int i = 0; i < 6; i++) ADD(mixes[i], 3, 1, 1, C);
    add_loras(lay, s, l);
    ADD("att.k_k", 3, 1, 1, C);
    ADD("att.k_a", 3, 1, 1, C);
    ADD("att.r_k", 2, H, N, 0);
    ADD("att.receptance.weight", 2, C, C, 0);
    ADD("att.key.weight", 2, C, C, 0);
    ADD("att.value.weight", 2, C, C, 0);
    ADD("att.output.weight", 2, C, C, 0);
    ADD("att.ln_x.weight", 1, C, 0, 0);
    ADD("att.ln_x.bias", 1, C, 0, 0);
    ADD("ffn.x_k", 3, 1, 1, C);
    ADD("ffn.key.weight", 2, F, C, 0);
    ADD("ffn.value.weight", 2, C, F, 0);
#undef ADD
}

rwkv_status rwkv7_layout_init(const rwkv7_shape *shape, param_layout *layout, rwkv_error *err) {
    memset(layout, 0, sizeof *layout);
    rwkv7_shape s = *shape;
    rwkv_status st = rwkv7_shape_complete(&s, err);
    if (st != RWKV_OK) return st;
    layout->params = calloc((size_t)5 + 36 * (size_t)s.n_layer, sizeof(param_info));
    if (!layout->params) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (parameter layout)");
    layout->shape = (model_dims){s.n_vocab, s.n_embd, s.n_layer, s.n_ffn, s.n_embd};
    add(layout, "emb.weight", 2, s.n_vocab, s.n_embd, 0);
    for (int l = 0; l < s.n_layer; l++) add_block(layout, &s, l);
    add(layout, "ln_out.weight", 1, s.n_embd, 0, 0);
    add(layout, "ln_out.bias", 1, s.n_embd, 0, 0);
    add(layout, "head.weight", 2, s.n_vocab, s.n_embd, 0);
    return rwkv_ok(err);
}

/* ---- checkpoint tensors -> flat buffer ----------------------------------- */

/* Dimension `dim` of tensor `name`, which must have `ndim` dimensions. */
static rwkv_status dim_of(const tensor_set *set, const char *name, int ndim, int dim, int *out, rwkv_error *err) {
    const tensor *t = tensor_set_find(set, name);
    if (!t) return rwkv_fail(err, RWKV_ERR_SHAPE, "missing tensor %s", name);
    if (t->ndim != ndim || t->shape[dim] <= 0 || t->shape[dim] > INT32_MAX) {
        char buf[64];
        shape_format(t->ndim, t->shape, buf, sizeof buf);
        return rwkv_fail(err, RWKV_ERR_SHAPE, "%s has shape %s, expected %d dimensions", name, buf, ndim);
    }
    *out = (int)t->shape[dim];
    return RWKV_OK;
}

rwkv_status rwkv7_params_from_tensors(const tensor_set *set, rwkv7_shape *shape, param_layout *layout,
                                      float **params, rwkv_error *err) {
    *params = NULL;
    memset(layout, 0, sizeof *layout);
    rwkv7_shape s = {0};
    int H = 0;
    rwkv_status st;
    s.n_layer = model_layer_count(set);
    if ((st = dim_of(set, "emb.weight", 2, 0, &s.n_vocab, err)) ||
        (st = dim_of(set, "emb.weight", 2, 1, &s.n_embd, err)) ||
        (st = dim_of(set, "blocks.0.ffn.key.weight", 2, 0, &s.n_ffn, err)) ||
        (st = dim_of(set, "blocks.0.att.r_k", 2, 0, &H, err)) ||
        (st = dim_of(set, "blocks.0.att.w1", 2, 1, &s.d_decay, err)) ||
        (st = dim_of(set, "blocks.0.att.a1", 2, 1, &s.d_aaa, err)) ||
        (st = dim_of(set, "blocks.0.att.g1", 2, 1, &s.d_gate, err)))
        return st;
    if (s.n_embd % H != 0)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "blocks.0.att.r_k: %d heads do not divide n_embd %d", H, s.n_embd);
    s.head_size = s.n_embd / H;
    /* block 0's v1 is unused (and usually absent): the rank is block 1's */
    if (s.n_layer > 1 && (st = dim_of(set, "blocks.1.att.v1", 2, 1, &s.d_mv, err))) return st;
    if ((st = rwkv7_layout_init(&s, layout, err))) return st;
    float *buf = NULL;
    if (posix_memalign((void **)&buf, 64, layout->total * sizeof(float)) != 0) {
        param_layout_free(layout);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (%zu parameters)", layout->total);
    }
    if ((st = param_layout_fill(layout, set, buf, err))) {
        free(buf);
        param_layout_free(layout);
        return st;
    }
    if (s.n_layer == 1) s.d_mv = 0; /* no v LoRA anywhere: nothing to report */
    *shape = s;
    *params = buf;
    return rwkv_ok(err);
}

/* ---- the official initialisation ------------------------------------------ */

/* Per-layer and per-channel profiles of the init (docs/training-rwkv7.md). */
typedef struct init_profile {
    int C, N, L, l;
    double r01, r10; /* l/(L-1) rising 0 -> 1; 1 - l/L falling 1 -> ~0 */
} init_profile;

static double linear_at(const init_profile *p, int n) { return p->C > 1 ? (double)n / (p->C - 1) - 0.5 : 0.0; }

/* -1 .. 1 across each head, squared with its sign: big at the heads' edges. */
static double zigzag_at(const init_profile *p, int n) {
    if (p->N < 2) return 0.0;
    const double half = (p->N - 1) / 2.0, z = ((n % p->N) - half) / half;
    return z * fabs(z);
}

static void init_vector(const init_profile *p, const char *nm, float *w) {
    const int C = p->C;
    static const struct { const char *suffix; double power; } mixes[] = {
        {"att.x_r", 0.2}, {"att.x_w", 0.9}, {"att.x_k", 0.7}, {"att.x_v", 0.7}, {"att.x_a", 0.9}, {"att.x_g", 0.2}};
    for (size_t m = 0; m < sizeof mixes / sizeof mixes[0]; m++)
        if (ends_with(nm, mixes[m].suffix)) {
            for (int i = 0; i < C; i++) w[i] = (float)(1.0 - pow((double)i / C, mixes[m].power * p->r10));
            return;
        }
    for (int i = 0; i < C; i++) {
        const double lin = linear_at(p, i), zz = zigzag_at(p, i);
        double x = 0.0;
        if (ends_with(nm, "att.w0")) {
            const double pos = C > 1 ? (double)i / (C - 1) : 0.0;
            x = -6.0 + 6.0 * pow(pos, 1.0 + pow(p->r01, 0.3)) + 0.5 + 2.5 * zz;
        } else if (ends_with(nm, "att.a0")) {
            x = -0.19 + 0.3 * zz + 0.4 * lin;
        } else if (ends_with(nm, "att.v0")) {
            x = 0.73 - 0.4 * lin;
        } else if (ends_with(nm, "att.k_k")) {
            x = 0.71 - 0.1 * lin;
        } else if (ends_with(nm, "att.k_a")) {
            x = 1.02;
        } else if (ends_with(nm, "att.r_k")) {
            x = -0.04;
        } else if (ends_with(nm, "ffn.x_k")) {
            x = 1.0 - pow((double)i / C, pow(p->r10, 4.0));
        } else if (ends_with(nm, "att.ln_x.weight")) {
            x = pow((double)(p->l + 1) / p->L, 0.7);
        } else if (ends_with(nm, "ln0.weight") || ends_with(nm, "ln1.weight") || ends_with(nm, "ln2.weight") ||
                   strcmp(nm, "ln_out.weight") == 0) {
            x = 1.0;
        }
        w[i] = (float)x; /* LayerNorm biases: 0 */
    }
}

/* Orthogonal gain of a matrix; 0: zeros; < 0: uniform of that half-width. */
static double matrix_scale(const char *nm, const param_info *pi, int V, int C) {
    if (strcmp(nm, "emb.weight") == 0) return -1e-4;
    if (strcmp(nm, "head.weight") == 0) return V > C ? 0.5 * sqrt((double)V / C) : 0.5;
    if (ends_with(nm, "att.output.weight") || ends_with(nm, "ffn.value.weight")) return 0.0;
    if (ends_with(nm, "att.key.weight")) return 0.1;
    if (ends_with(nm, ".weight")) return 1.0;
    /* LoRA: the first factor zero, the second orthogonal x 0.1 (gain sqrt(rows/cols) when tall) */
    if (ends_with(nm, "1")) return 0.0;
    return 0.1 * (pi->shape[0] > pi->shape[1] ? sqrt((double)pi->shape[0] / pi->shape[1]) : 1.0);
}

rwkv_status rwkv7_init_tensor(const rwkv7_shape *shape, const param_layout *layout, int index, float *w,
                              uint64_t seed) {
    const int C = shape->n_embd, L = shape->n_layer;
    const param_info *p = &layout->params[index];
    uint64_t rng = init_stream(seed, index);
    int l = 0;
    sscanf(p->name, "blocks.%d.", &l);
    const init_profile prof = {C, shape->head_size, L, l, L > 1 ? (double)l / (L - 1) : 0.0, 1.0 - (double)l / L};
    const int is_matrix = p->ndim == 2 && !ends_with(p->name, ".r_k");
    if (!is_matrix) {
        if ((size_t)C != p->numel) return RWKV_ERR_SHAPE;
        init_vector(&prof, p->name, w);
        return RWKV_OK;
    }
    const double scale = matrix_scale(p->name, p, shape->n_vocab, C);
    if (scale == 0.0) {
        memset(w, 0, p->numel * sizeof(float));
    } else if (scale < 0.0 || shape->uniform) {
        /* uniform: an orthogonal matrix's entries have variance 1 / (its longer side) */
        const double longer = (double)(p->shape[0] > p->shape[1] ? p->shape[0] : p->shape[1]);
        init_uniform_fill(w, p->numel, scale < 0.0 ? -scale : scale * sqrt(3.0 / longer), rng);
    } else if (orthogonal_init(w, (int)p->shape[0], (int)p->shape[1], scale, &rng)) {
        return RWKV_ERR_NOMEM;
    }
    return RWKV_OK;
}

rwkv_status rwkv7_init_params(const rwkv7_shape *shape, const param_layout *layout, float *params, uint64_t seed) {
    for (int pi = 0; pi < layout->count; pi++) {
        rwkv_status s = rwkv7_init_tensor(shape, layout, pi, params + layout->params[pi].offset, seed);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}
