/* RWKV-4 training math: parameter layout, the time-parallel forward of
 * docs/model.md §1.2 with saved activations, its backward
 * (equations in docs/training-math.md) and the initialisation of §3.1-§3.2.
 * The layers themselves are in kernels/train_ops.c, the heavy kernels in
 * kernels/ (matmul, matmul_backward, wkv4). */
#include "train/rwkv4_grad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/huge_pages.h"
#include "kernels/kernels_train.h"
#include "core/machine.h"
#include "kernels/train_ops.h"
#include "train/init_random.h"

/* ---- parameter layout (official state_dict order, §1.1) ---------------- */

/* Appends with the per-parameter LR multipliers of RWKV-LM v4neo (§3.3). */
static void layout_add(param_layout *lay, const char *name, int ndim, int64_t d0, int64_t d1,
                       int64_t d2) {
    param_layout_add(lay, name, ndim, d0, d1, d2, 1.0f);
}

static void block_add(param_layout *lay, int l, const char *suffix, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    const float lr_scale = strstr(suffix, ".time_decay") ? 2.0f : strstr(suffix, ".time_first") ? 3.0f : 1.0f;
    param_layout_add_in_block(lay, l, suffix, ndim, d0, d1, d2, lr_scale);
}

rwkv_status rwkv4_layout_init(const rwkv4_shape *shape, param_layout *layout, rwkv_error *err) {
    memset(layout, 0, sizeof *layout);
    const rwkv4_shape s = *shape;
    if (s.n_vocab <= 0 || s.n_embd <= 0 || s.n_layer <= 0 || s.n_ffn <= 0 || s.dim_att <= 0)
        return rwkv_fail(err, RWKV_ERR_ARG,
                         "bad RWKV-4 shape: n_vocab %d n_embd %d n_layer %d n_ffn %d dim_att %d",
                         s.n_vocab, s.n_embd, s.n_layer, s.n_ffn, s.dim_att);
    /* the largest tensors must stay far from size_t and int overflow */
    const double biggest = (double)s.n_vocab * s.n_embd + 13.0 * s.n_layer * (double)s.n_embd *
                                                               (s.n_embd + s.n_ffn + s.dim_att);
    if (biggest > 1e12 || s.n_layer > 100000)
        return rwkv_fail(err, RWKV_ERR_ARG, "RWKV-4 shape too large (%.3g floats)", biggest);
    const int V = s.n_vocab, C = s.n_embd, L = s.n_layer, F = s.n_ffn, A = s.dim_att;
    layout->params = calloc((size_t)(4 + 18 * L + 2), sizeof(param_info));
    if (!layout->params) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (parameter layout)");
    layout->shape = s;
    layout_add(layout, "emb.weight", 2, V, C, 0);
    for (int l = 0; l < L; l++) {
#define ADD(suffix, ...) block_add(layout, l, suffix, __VA_ARGS__)
        param_layout_add_block_norms(layout, l, C);
        ADD("att.time_decay", 1, A, 0, 0);
        ADD("att.time_first", 1, A, 0, 0);
        ADD("att.time_mix_k", 3, 1, 1, C);
        ADD("att.time_mix_v", 3, 1, 1, C);
        ADD("att.time_mix_r", 3, 1, 1, C);
        ADD("att.key.weight", 2, A, C, 0);
        ADD("att.value.weight", 2, A, C, 0);
        ADD("att.receptance.weight", 2, A, C, 0);
        ADD("att.output.weight", 2, C, A, 0);
        ADD("ffn.time_mix_k", 3, 1, 1, C);
        ADD("ffn.time_mix_r", 3, 1, 1, C);
        ADD("ffn.key.weight", 2, F, C, 0);
        ADD("ffn.receptance.weight", 2, C, C, 0);
        ADD("ffn.value.weight", 2, C, F, 0);
#undef ADD
    }
    layout_add(layout, "ln_out.weight", 1, C, 0, 0);
    layout_add(layout, "ln_out.bias", 1, C, 0, 0);
    layout_add(layout, "head.weight", 2, V, C, 0);
    return rwkv_ok(err);
}

/* ---- checkpoint tensors -> flat f32 buffer (§4.2) ----------------------- */

static rwkv_status find_matrix(const tensor_set *set, const char *name, const tensor **out,
                               rwkv_error *err) {
    const tensor *t = tensor_set_find(set, name);
    if (!t) return rwkv_fail(err, RWKV_ERR_SHAPE, "missing tensor %s", name);
    if (t->ndim != 2 || t->shape[0] <= 0 || t->shape[1] <= 0 || t->shape[0] > INT32_MAX ||
        t->shape[1] > INT32_MAX) {
        char buf[64];
        shape_format(t->ndim, t->shape, buf, sizeof buf);
        return rwkv_fail(err, RWKV_ERR_SHAPE, "%s has shape %s, expected a matrix", name, buf);
    }
    *out = t;
    return RWKV_OK;
}

rwkv_status params_from_tensors(const tensor_set *set, param_layout *layout, float **params,
                                rwkv_error *err) {
    *params = NULL;
    memset(layout, 0, sizeof *layout);
    const tensor *emb, *att_key, *ffn_key;
    rwkv_status st;
    if ((st = find_matrix(set, "emb.weight", &emb, err)) ||
        (st = find_matrix(set, "blocks.0.att.key.weight", &att_key, err)) ||
        (st = find_matrix(set, "blocks.0.ffn.key.weight", &ffn_key, err)))
        return st;
    long n_layer = 0;
    for (int i = 0; i < set->count; i++) {
        const char *nm = set->tensors[i].name;
        if (strncmp(nm, "blocks.", 7) != 0) continue;
        char *end;
        long l = strtol(nm + 7, &end, 10);
        if (end != nm + 7 && *end == '.' && l >= 0 && l < 100000 && l + 1 > n_layer) n_layer = l + 1;
    }
    rwkv4_shape shape = {(int)emb->shape[0], (int)emb->shape[1], (int)n_layer,
                         (int)ffn_key->shape[0], (int)att_key->shape[0]};
    if ((st = rwkv4_layout_init(&shape, layout, err))) return st;
    float *buf = NULL;
    if (posix_memalign((void **)&buf, 64, layout->total * sizeof(float)) != 0) {
        param_layout_free(layout);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (%zu parameters)", layout->total);
    }
    st = param_layout_fill(layout, set, buf, err);
    if (st) {
        free(buf);
        param_layout_free(layout);
        return st;
    }
    *params = buf;
    return rwkv_ok(err);
}

/* ---- training context ---------------------------------------------------- */

/* Offsets (in floats) of one block's parameters in the flat buffers. */
typedef struct block_offsets {
    size_t ln1_w, ln1_b, ln2_w, ln2_b;
    size_t time_decay, time_first, att_mix_k, att_mix_v, att_mix_r;
    size_t att_k, att_v, att_r, att_o;
    size_t ffn_mix_k, ffn_mix_r, ffn_k, ffn_r, ffn_v;
} block_offsets;

/* Saved activations of one block, each [N][width]. */
typedef struct block_acts {
    float *x_in;  /* block input (residual stream)      [C] */
    float *z1;    /* LN1 output                          [C] */
    float *k, *v; /* Wk·xk, Wv·xv                        [A] */
    float *r;     /* σ(Wr·xr)                            [A] */
    float *y;     /* WKV output                          [A] */
    float *x_mid; /* residual after time mixing          [C] */
    float *z2;    /* LN2 output                          [C] */
    float *kf;    /* W'k·xk' before relu²                [F] */
    float *rf;    /* σ(W'r·xr')                          [C] */
    float *vf;    /* W'v·relu²(kf)                       [C] */
} block_acts;

struct rwkv4_train_ctx {
    int V, C, L, F, A, B, T, N, nt;
    size_t emb, ln0_w, ln0_b, ln_out_w, ln_out_b, head;
    block_offsets *blk;
    block_acts *act;
    float *emb_out;                   /* [N][C] embedding rows (LN0 input) */
    float *x_out, *z_out;             /* [N][C] last residual, LN_out output */
    float *logits;                    /* [N][V], turned into dlogits by backward */
    float *row_loss, *lse;            /* [N] */
    float *sc[3], *sa[3], *sf;        /* scratch [N][C], [N][A], [N][F] */
    float *gx, *gz;                   /* [N][C] gradient of the residual, of an LN output */
    float *scratch;                   /* the norms' row-block sums (train_scratch_floats) */
    float *wkv_state;                 /* [3·B·A] */
    float *decay;                     /* [A] d = -exp(time_decay) */
    float *zeros;                     /* [C] token shift's z[-1] */
    float *arena;
    size_t arena_bytes; /* as huge_pages_map mapped it */
};

#define NO_OFFSET ((size_t)-1)

static size_t off_of(const param_layout *lay, const char *name) {
    const param_info *p = param_layout_find(lay, name);
    return p ? p->offset : NO_OFFSET;
}

static size_t block_off(const param_layout *lay, int l, const char *suffix) {
    char name[64];
    snprintf(name, sizeof name, "blocks.%d.%s", l, suffix);
    return off_of(lay, name);
}

rwkv_status rwkv4_train_ctx_new(const param_layout *layout, int B, int T, int n_threads,
                                rwkv4_train_ctx **out, rwkv_error *err) {
    *out = NULL;
    const rwkv4_shape s = layout->shape;
    if (B <= 0 || T <= 0 || (double)B * T > INT32_MAX / 2)
        return rwkv_fail(err, RWKV_ERR_ARG, "bad batch shape B %d T %d", B, T);
    rwkv4_train_ctx *c = calloc(1, sizeof *c);
    if (!c) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (training context)");
    c->V = s.n_vocab, c->C = s.n_embd, c->L = s.n_layer, c->F = s.n_ffn, c->A = s.dim_att;
    c->B = B, c->T = T, c->N = B * T;
    c->nt = n_threads > 0 ? n_threads : machine_cores();
    c->blk = calloc((size_t)c->L, sizeof *c->blk);
    c->act = calloc((size_t)c->L, sizeof *c->act);
    if (!c->blk || !c->act) {
        rwkv4_train_ctx_free(c);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (training context)");
    }
    c->emb = off_of(layout, "emb.weight");
    c->ln0_w = block_off(layout, 0, "ln0.weight");
    c->ln0_b = block_off(layout, 0, "ln0.bias");
    c->ln_out_w = off_of(layout, "ln_out.weight");
    c->ln_out_b = off_of(layout, "ln_out.bias");
    c->head = off_of(layout, "head.weight");
    int missing = c->emb == NO_OFFSET || c->ln0_w == NO_OFFSET || c->ln0_b == NO_OFFSET ||
                  c->ln_out_w == NO_OFFSET || c->ln_out_b == NO_OFFSET || c->head == NO_OFFSET;
    for (int l = 0; l < c->L && !missing; l++) {
        block_offsets *o = &c->blk[l];
        size_t *fields[] = {&o->ln1_w,     &o->ln1_b,      &o->ln2_w,     &o->ln2_b,
                            &o->time_decay, &o->time_first, &o->att_mix_k, &o->att_mix_v,
                            &o->att_mix_r, &o->att_k,      &o->att_v,     &o->att_r,
                            &o->att_o,     &o->ffn_mix_k,  &o->ffn_mix_r, &o->ffn_k,
                            &o->ffn_r,     &o->ffn_v};
        static const char *const names[] = {
            "ln1.weight",        "ln1.bias",           "ln2.weight",
            "ln2.bias",          "att.time_decay",     "att.time_first",
            "att.time_mix_k",    "att.time_mix_v",     "att.time_mix_r",
            "att.key.weight",    "att.value.weight",   "att.receptance.weight",
            "att.output.weight", "ffn.time_mix_k",     "ffn.time_mix_r",
            "ffn.key.weight",    "ffn.receptance.weight", "ffn.value.weight"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            *fields[i] = block_off(layout, l, names[i]);
            missing |= *fields[i] == NO_OFFSET;
        }
    }
    if (missing) {
        rwkv4_train_ctx_free(c);
        return rwkv_fail(err, RWKV_ERR_ARG, "parameter layout is not an RWKV-4 layout");
    }

    /* one arena; every buffer rounded up to 64 bytes */
    const size_t N = (size_t)c->N, C = (size_t)c->C, A = (size_t)c->A, F = (size_t)c->F,
                 V = (size_t)c->V;
#define R16(x) (((x) + 15) & ~(size_t)15)
    const double per_token = (double)c->L * (6.0 * C + 4.0 * A + F) + 8.0 * C + 3.0 * A + F + V + 4;
    if (per_token * (double)N + 3.0 * B * A + A + C > 1e14) {
        rwkv4_train_ctx_free(c);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "activations too large (%.3g floats per token)",
                         per_token);
    }
    const size_t total = (size_t)c->L * (6 * R16(N * C) + 4 * R16(N * A) + R16(N * F)) +
                         8 * R16(N * C) + 3 * R16(N * A) + R16(N * F) + R16(N * V) +
                         2 * R16(N) + R16(train_scratch_floats(C)) + R16(3 * (size_t)B * A) + R16(A) + R16(C);
    /* in 2 MB pages: the products read and write these a row apart (core/huge_pages.h) */
    if (!(c->arena = huge_pages_map(total * sizeof(float), &c->arena_bytes))) {
        rwkv4_train_ctx_free(c);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (%.1f MiB of activations)",
                         (double)total * sizeof(float) / (1 << 20));
    }
    float *cur = c->arena;
#define TAKE(n) (cur += R16(n), cur - R16(n))
    for (int l = 0; l < c->L; l++) {
        block_acts *a = &c->act[l];
        a->x_in = TAKE(N * C), a->z1 = TAKE(N * C), a->x_mid = TAKE(N * C), a->z2 = TAKE(N * C);
        a->rf = TAKE(N * C), a->vf = TAKE(N * C);
        a->k = TAKE(N * A), a->v = TAKE(N * A), a->r = TAKE(N * A), a->y = TAKE(N * A);
        a->kf = TAKE(N * F);
    }
    c->emb_out = TAKE(N * C), c->x_out = TAKE(N * C), c->z_out = TAKE(N * C);
    for (int i = 0; i < 3; i++) c->sc[i] = TAKE(N * C);
    c->gx = TAKE(N * C), c->gz = TAKE(N * C);
    for (int i = 0; i < 3; i++) c->sa[i] = TAKE(N * A);
    c->sf = TAKE(N * F);
    c->logits = TAKE(N * V);
    c->row_loss = TAKE(N), c->lse = TAKE(N), c->scratch = TAKE(train_scratch_floats(C));
    c->wkv_state = TAKE(3 * (size_t)B * A);
    c->decay = TAKE(A);
    c->zeros = TAKE(C);
#undef TAKE
#undef R16
    memset(c->zeros, 0, C * sizeof(float));
    *out = c;
    return rwkv_ok(err);
}

void rwkv4_train_ctx_free(rwkv4_train_ctx *ctx) {
    if (!ctx) return;
    huge_pages_unmap(ctx->arena, ctx->arena_bytes);
    free(ctx->blk);
    free(ctx->act);
    free(ctx);
}

/* ---- forward (§1.2) -------------------------------------------------------- */

static rwkv_status check_tokens(const rwkv4_train_ctx *c, const int *tok, const char *what,
                                rwkv_error *err) {
    for (int n = 0; n < c->N; n++)
        if (tok[n] < 0 || tok[n] >= c->V)
            return rwkv_fail(err, RWKV_ERR_ARG, "%s[%d][%d] = %d is outside the vocabulary (%d)",
                             what, n / c->T, n % c->T, tok[n], c->V);
    return RWKV_OK;
}

static void decay_of(const rwkv4_train_ctx *c, const float *theta) {
    for (int i = 0; i < c->A; i++) c->decay[i] = -expf(theta[i]); /* d = -exp(θ) (§0) */
}

/* Runs the model over inputs, leaving every saved activation, the logits and
 * the per-row losses in the context. */
static void forward(rwkv4_train_ctx *c, const float *P, const int *inputs, const int *targets) {
    const int B = c->B, T = c->T, N = c->N, C = c->C, A = c->A, F = c->F, V = c->V, nt = c->nt;
    embedding_forward(P + c->emb, inputs, N, C, c->emb_out, nt);
    layernorm_forward(c->emb_out, P + c->ln0_w, P + c->ln0_b, N, C, c->act[0].x_in, nt);
    for (int l = 0; l < c->L; l++) {
        const block_offsets *o = &c->blk[l];
        block_acts *a = &c->act[l];
        float *x_next = l + 1 < c->L ? c->act[l + 1].x_in : c->x_out;
        /* time mixing */
        layernorm_forward(a->x_in, P + o->ln1_w, P + o->ln1_b, N, C, a->z1, nt);
        token_shift_forward(a->z1, P + o->att_mix_k, B, T, C, c->zeros, c->sc[0], nt);
        token_shift_forward(a->z1, P + o->att_mix_v, B, T, C, c->zeros, c->sc[1], nt);
        token_shift_forward(a->z1, P + o->att_mix_r, B, T, C, c->zeros, c->sc[2], nt);
        linear_forward(P + o->att_k, A, C, c->sc[0], N, a->k, nt);
        linear_forward(P + o->att_v, A, C, c->sc[1], N, a->v, nt);
        linear_forward(P + o->att_r, A, C, c->sc[2], N, a->r, nt);
        sigmoid_forward(a->r, (size_t)N * A, nt);
        decay_of(c, P + o->time_decay);
        wkv4_forward_batch(B, T, A, c->decay, P + o->time_first, a->k, a->v, c->wkv_state, a->y, nt);
        gate_forward(a->r, a->y, c->sa[0], (size_t)N * A, nt);
        linear_forward(P + o->att_o, C, A, c->sa[0], N, c->sc[0], nt);
        residual_forward(a->x_in, c->sc[0], a->x_mid, (size_t)N * C, nt);
        /* channel mixing */
        layernorm_forward(a->x_mid, P + o->ln2_w, P + o->ln2_b, N, C, a->z2, nt);
        token_shift_forward(a->z2, P + o->ffn_mix_k, B, T, C, c->zeros, c->sc[0], nt);
        token_shift_forward(a->z2, P + o->ffn_mix_r, B, T, C, c->zeros, c->sc[1], nt);
        linear_forward(P + o->ffn_k, F, C, c->sc[0], N, a->kf, nt);
        relu2_forward(a->kf, c->sf, (size_t)N * F, nt);
        linear_forward(P + o->ffn_v, C, F, c->sf, N, a->vf, nt);
        linear_forward(P + o->ffn_r, C, C, c->sc[1], N, a->rf, nt);
        sigmoid_forward(a->rf, (size_t)N * C, nt);
        gate_forward(a->rf, a->vf, c->sc[2], (size_t)N * C, nt);
        residual_forward(a->x_mid, c->sc[2], x_next, (size_t)N * C, nt);
    }
    layernorm_forward(c->x_out, P + c->ln_out_w, P + c->ln_out_b, N, C, c->z_out, nt);
    linear_forward(P + c->head, V, C, c->z_out, N, c->logits, nt);
    cross_entropy_forward(c->logits, targets, N, V, c->row_loss, c->lse, nt);
}

static rwkv_status mean_loss(const rwkv4_train_ctx *c, float *loss, rwkv_error *err) {
    double sum = 0;
    for (int n = 0; n < c->N; n++) sum += c->row_loss[n];
    *loss = (float)(sum / c->N);
    if (!isfinite(*loss)) return rwkv_fail(err, RWKV_ERR_NUMERIC, "the loss is not finite");
    return rwkv_ok(err);
}

/* ---- backward (docs/training-math.md) ---------------------------------------- */

static void backward(rwkv4_train_ctx *c, const float *P, const int *inputs, const int *targets,
                     float l2wrap, float *G) {
    const int B = c->B, T = c->T, N = c->N, C = c->C, A = c->A, F = c->F, V = c->V, nt = c->nt;
    const size_t NC = (size_t)N * C, NA = (size_t)N * A, NF = (size_t)N * F;
    cross_entropy_backward(c->logits, targets, c->lse, N, V, l2wrap, nt);
    linear_backward(P + c->head, V, C, c->z_out, c->logits, N, c->gz, G + c->head, nt);
    memset(c->gx, 0, NC * sizeof(float));
    layernorm_backward(c->x_out, P + c->ln_out_w, c->gz, N, C, c->gx, G + c->ln_out_w,
                       G + c->ln_out_b, c->scratch, nt);
    for (int l = c->L - 1; l >= 0; l--) {
        const block_offsets *o = &c->blk[l];
        const block_acts *a = &c->act[l];
        /* channel mixing; gx = dL/d(block output) */
        sigmoid_gate_backward(a->rf, a->vf, c->gx, c->sc[0], c->sc[1], NC, nt);
        relu2_forward(a->kf, c->sf, NF, nt);
        linear_backward(P + o->ffn_v, C, F, c->sf, c->sc[0], N, c->sf, G + o->ffn_v, nt);
        relu2_backward(a->kf, c->sf, c->sf, NF, nt);
        token_shift_forward(a->z2, P + o->ffn_mix_k, B, T, C, c->zeros, c->sc[2], nt);
        linear_backward(P + o->ffn_k, F, C, c->sc[2], c->sf, N, c->sc[2], G + o->ffn_k, nt);
        token_shift_forward(a->z2, P + o->ffn_mix_r, B, T, C, c->zeros, c->sc[0], nt);
        linear_backward(P + o->ffn_r, C, C, c->sc[0], c->sc[1], N, c->sc[0], G + o->ffn_r, nt);
        const shift_norm_grad ffn_shifts = {2, {c->sc[2], c->sc[0]}, {P + o->ffn_mix_k, P + o->ffn_mix_r},
                                            {G + o->ffn_mix_k, G + o->ffn_mix_r}, a->z2, a->x_mid, P + o->ln2_w,
                                            c->gx, G + o->ln2_w, G + o->ln2_b};
        shift_norm_backward(&ffn_shifts, B, T, C, c->scratch, nt);
        /* time mixing; gx = dL/d x_mid */
        gate_forward(a->r, a->y, c->sa[0], NA, nt);
        linear_backward(P + o->att_o, C, A, c->sa[0], c->gx, N, c->sa[0], G + o->att_o, nt);
        sigmoid_gate_backward(a->r, a->y, c->sa[0], c->sa[1], c->sa[2], NA, nt);
        decay_of(c, P + o->time_decay);
        wkv4_backward(B, T, A, c->decay, P + o->time_first, a->k, a->v, a->y, c->sa[1], c->sa[0],
                     c->sa[1], G + o->time_decay, G + o->time_first, nt);
        const size_t mix[3] = {o->att_mix_k, o->att_mix_v, o->att_mix_r};
        const size_t W[3] = {o->att_k, o->att_v, o->att_r};
        shift_norm_grad att_shifts = {3, .z = a->z1, .x = a->x_in, .w = P + o->ln1_w, .dx = c->gx,
                                      .dw = G + o->ln1_w, .db = G + o->ln1_b};
        for (int i = 0; i < 3; i++) { /* k, v, r: gradients in sa[0], sa[1], sa[2]; their inputs' in sc[i] */
            token_shift_forward(a->z1, P + mix[i], B, T, C, c->zeros, c->sc[i], nt);
            linear_backward(P + W[i], A, C, c->sc[i], c->sa[i], N, c->sc[i], G + W[i], nt);
            att_shifts.dout[i] = c->sc[i], att_shifts.mu[i] = P + mix[i], att_shifts.dmu[i] = G + mix[i];
        }
        shift_norm_backward(&att_shifts, B, T, C, c->scratch, nt);
    }
    memset(c->gz, 0, NC * sizeof(float));
    layernorm_backward(c->emb_out, P + c->ln0_w, c->gx, N, C, c->gz, G + c->ln0_w, G + c->ln0_b,
                       c->scratch, nt);
    embedding_backward(c->gz, inputs, N, C, G + c->emb, nt);
}

rwkv_status rwkv4_forward_backward(rwkv4_train_ctx *ctx, const float *params, const int *inputs,
                                   const int *targets, const rwkv4_fb_options *opt, float *grads,
                                   float *loss, rwkv_error *err) {
    rwkv_status st;
    if ((st = check_tokens(ctx, inputs, "inputs", err)) ||
        (st = check_tokens(ctx, targets, "targets", err)))
        return st;
    forward(ctx, params, inputs, targets);
    backward(ctx, params, inputs, targets, opt ? opt->l2wrap : 1e-4f, grads);
    return mean_loss(ctx, loss, err);
}

rwkv_status rwkv4_forward_loss(rwkv4_train_ctx *ctx, const float *params, const int *inputs,
                               const int *targets, float *logits, float *loss, rwkv_error *err) {
    rwkv_status st;
    if ((st = check_tokens(ctx, inputs, "inputs", err)) ||
        (st = check_tokens(ctx, targets, "targets", err)))
        return st;
    forward(ctx, params, inputs, targets);
    if (logits) memcpy(logits, ctx->logits, (size_t)ctx->N * ctx->V * sizeof(float));
    return mean_loss(ctx, loss, err);
}

/* ---- initialisation (§3.1-§3.2) ----------------------------------------------- */

rwkv_status rwkv4_init_tensor(const param_layout *layout, int index, float *w, uint64_t seed, float emb_scale) {
    const int C = layout->shape.n_embd, A = layout->shape.dim_att, L = layout->shape.n_layer;
    const param_info *p = &layout->params[index];
    /* one random stream per tensor, from the seed and the tensor's index */
    uint64_t rng = init_stream(seed, index);
    int l = 0;
    sscanf(p->name, "blocks.%d.", &l);
    const double r01 = L > 1 ? (double)l / (L - 1) : 0.0; /* 0 -> 1 over layers */
    const double r10 = 1.0 - (double)l / L;               /* 1 -> almost 0 */
    const char *nm = p->name;
    if (strcmp(nm, "emb.weight") == 0) {
        init_uniform_fill(w, p->numel, emb_scale, rng);
    } else if (ends_with(nm, "ln0.weight") || ends_with(nm, "ln1.weight") || ends_with(nm, "ln2.weight") ||
               strcmp(nm, "ln_out.weight") == 0) {
        for (size_t i = 0; i < p->numel; i++) w[i] = 1.0f;
    } else if (ends_with(nm, ".time_mix_k") || ends_with(nm, "ffn.time_mix_r")) {
        for (int i = 0; i < C; i++) w[i] = (float)pow((double)i / C, r10);
    } else if (ends_with(nm, "att.time_mix_v")) {
        for (int i = 0; i < C; i++) w[i] = (float)(pow((double)i / C, r10) + 0.3 * r01);
    } else if (ends_with(nm, "att.time_mix_r")) {
        for (int i = 0; i < C; i++) w[i] = (float)pow((double)i / C, 0.5 * r10);
    } else if (ends_with(nm, "time_decay")) {
        for (int h = 0; h < A; h++) {
            const double x = A > 1 ? (double)h / (A - 1) : 0.0;
            w[h] = (float)(-5.0 + 8.0 * pow(x, 0.7 + 1.3 * r01));
        }
    } else if (ends_with(nm, "time_first")) {
        for (int h = 0; h < A; h++) w[h] = (float)(log(0.3) + 0.5 * (((h + 1) % 3) - 1));
    } else if (ends_with(nm, "att.value.weight") || ends_with(nm, "ffn.key.weight") ||
               strcmp(nm, "head.weight") == 0) {
        /* gain sqrt(rows/cols) when rows > cols, else 1; head × 0.5 */
        const int rows = (int)p->shape[0], cols = (int)p->shape[1];
        double gain = rows > cols ? sqrt((double)rows / cols) : 1.0;
        if (strcmp(nm, "head.weight") == 0) gain *= 0.5;
        if (orthogonal_init(w, rows, cols, gain, &rng)) return RWKV_ERR_NOMEM;
    } else { /* LN biases and the zero-initialised matrices (§3.2) */
        memset(w, 0, p->numel * sizeof(float));
    }
    return RWKV_OK;
}

rwkv_status rwkv4_init_params(const param_layout *layout, float *params, uint64_t seed, float emb_scale) {
    for (int pi = 0; pi < layout->count; pi++) {
        rwkv_status s = rwkv4_init_tensor(layout, pi, params + layout->params[pi].offset, seed, emb_scale);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}
