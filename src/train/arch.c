/* The trainer's architectures (train/arch.h): thin adapters from the common
 * operations to the RWKV-4 training math and the GPT baseline. */
#include "train/arch.h"

#include <stdlib.h>
#include <string.h>

#include "formats/formats.h"
#include "train/gpt_grad.h"
#include "train/model_file.h"
#include "train/rwkv7_grad.h"

int arch_default_heads(int n_embd) {
    int h = n_embd / 64;
    if (h < 1) h = 1;
    while (h > 1 && n_embd % h) h--;
    return h;
}

static const train_arch *const all_archs[] = {&train_arch_rwkv4, &train_arch_rwkv7, &train_arch_gpt};

const char *train_arch_names(void) { return "rwkv4, rwkv7, gpt"; }

rwkv_status train_arch_init(const train_arch *arch, const arch_shape *sh, const param_layout *lay, float *params,
                            uint64_t seed, float emb_scale, rwkv_error *err) {
    arch_init_state st = {0};
    for (int i = 0; i < lay->count; i++) {
        rwkv_status s = arch->init_tensor(sh, lay, i, params + lay->params[i].offset, seed, emb_scale, &st, err);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}

const train_arch *train_arch_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof all_archs / sizeof all_archs[0]; i++)
        if (strcmp(name, all_archs[i]->name) == 0) return all_archs[i];
    return NULL;
}

/* ---- RWKV-4 --------------------------------------------------------------- */

static rwkv4_shape to_rwkv4(const arch_shape *sh) {
    rwkv4_shape s = {sh->n_vocab, sh->n_embd, sh->n_layer, sh->n_ffn ? sh->n_ffn : 4 * sh->n_embd, sh->n_embd};
    return s;
}

static rwkv_status r4_shape_check(arch_shape *sh, rwkv_error *err) {
    if (sh->n_ffn == 0) sh->n_ffn = 4 * sh->n_embd;
    sh->n_head = 0;
    sh->n_ctx = 0;
    if (sh->n_vocab <= 0 || sh->n_embd <= 0 || sh->n_layer <= 0 || sh->n_ffn <= 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "bad RWKV-4 shape: n_vocab %d n_embd %d n_layer %d n_ffn %d",
                         sh->n_vocab, sh->n_embd, sh->n_layer, sh->n_ffn);
    return RWKV_OK;
}

static rwkv_status r4_layout(const arch_shape *sh, param_layout *lay, rwkv_error *err) {
    rwkv4_shape s = to_rwkv4(sh);
    return rwkv4_layout_init(&s, lay, err);
}

static rwkv_status r4_init(const arch_shape *sh, const param_layout *lay, int index, float *w, uint64_t seed,
                           float emb_scale, arch_init_state *st, rwkv_error *err) {
    (void)sh;
    (void)st;
    rwkv_status s = rwkv4_init_tensor(lay, index, w, seed, emb_scale);
    return s == RWKV_OK ? RWKV_OK : rwkv_fail(err, s, "out of memory initialising the model");
}

static rwkv_status r4_load(const char *path, arch_shape *sh, param_layout *lay, float **params, rwkv_error *err) {
    *params = NULL;
    tensor_set set;
    rwkv_status s = checkpoint_read(path, &set, err);
    if (s != RWKV_OK) return s;
    const int gpt = gpt_is_checkpoint(&set), rwkv7 = tensor_set_find(&set, "blocks.0.att.r_k") != NULL;
    if (gpt || rwkv7) {
        tensor_set_free(&set);
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: is %s checkpoint (train it with --arch %s)", path,
                         gpt ? "a GPT" : "an RWKV-7", gpt ? "gpt" : "rwkv7");
    }
    s = params_from_tensors(&set, lay, params, err);
    tensor_set_free(&set);
    if (s != RWKV_OK) {
        if (err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
        return s;
    }
    if (lay->shape.dim_att != lay->shape.n_embd) {
        s = rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: dim_att %d != n_embd %d is not supported for training", path,
                      lay->shape.dim_att, lay->shape.n_embd);
        free(*params);
        *params = NULL;
        param_layout_free(lay);
        return s;
    }
    sh->n_vocab = lay->shape.n_vocab;
    sh->n_embd = lay->shape.n_embd;
    sh->n_layer = lay->shape.n_layer;
    sh->n_ffn = lay->shape.n_ffn;
    sh->n_head = 0;
    sh->n_ctx = 0;
    return RWKV_OK;
}

static rwkv_status r4_save(const char *path, const arch_shape *sh, const param_layout *lay, const float *params,
                           rwkv_error *err) {
    (void)sh;
    return train_save_model(path, lay, params, err);
}

static rwkv_status r4_ctx_new(const arch_shape *sh, const param_layout *lay, int B, int T, int nt, void **ctx,
                              rwkv_error *err) {
    (void)sh;
    rwkv4_train_ctx *c = NULL;
    rwkv_status s = rwkv4_train_ctx_new(lay, B, T, nt, &c, err);
    *ctx = c;
    return s;
}

static void r4_ctx_free(void *ctx) { rwkv4_train_ctx_free(ctx); }

static rwkv_status r4_fb(void *ctx, const float *params, const int *in, const int *tg, float l2wrap, float *grads,
                         float *loss, rwkv_error *err) {
    rwkv4_fb_options o = {l2wrap};
    return rwkv4_forward_backward(ctx, params, in, tg, &o, grads, loss, err);
}

static rwkv_status r4_loss(void *ctx, const float *params, const int *in, const int *tg, float *loss,
                           rwkv_error *err) {
    return rwkv4_forward_loss(ctx, params, in, tg, NULL, loss, err);
}

/* 6 x parameters: the paper's 6(VC + 13C^2 L) counting (§7.4) plus the small vectors. */
static double r4_flops(const arch_shape *sh, const param_layout *lay, int T) {
    (void)sh;
    (void)T;
    return 6.0 * (double)lay->total;
}

const train_arch train_arch_rwkv4 = {
    "rwkv4", r4_shape_check, r4_layout, r4_init, r4_load, r4_save, r4_ctx_new, r4_ctx_free, r4_fb, r4_loss, r4_flops,
};

/* ---- GPT ------------------------------------------------------------------ */

static gpt_shape to_gpt(const arch_shape *sh) {
    gpt_shape g = {sh->n_vocab, sh->n_embd, sh->n_layer, sh->n_head, sh->n_ctx, sh->n_ffn};
    return g;
}

static void from_gpt(const gpt_shape *g, arch_shape *sh) {
    sh->n_vocab = g->n_vocab;
    sh->n_embd = g->n_embd;
    sh->n_layer = g->n_layer;
    sh->n_ffn = g->n_ffn;
    sh->n_head = g->n_head;
    sh->n_ctx = g->n_ctx;
}

static rwkv_status g_shape_check(arch_shape *sh, rwkv_error *err) {
    if (sh->n_head == 0 && sh->n_embd > 0) sh->n_head = arch_default_heads(sh->n_embd);
    gpt_shape g = to_gpt(sh);
    rwkv_status s = gpt_shape_check(&g, err);
    if (s == RWKV_OK) from_gpt(&g, sh);
    return s;
}

static rwkv_status g_layout(const arch_shape *sh, param_layout *lay, rwkv_error *err) {
    gpt_shape g = to_gpt(sh);
    return gpt_layout_init(&g, lay, err);
}

static rwkv_status g_init(const arch_shape *sh, const param_layout *lay, int index, float *w, uint64_t seed,
                          float emb_scale, arch_init_state *st, rwkv_error *err) {
    (void)emb_scale;
    (void)err;
    gpt_shape g = to_gpt(sh);
    if (index == 0) rng_seed(&st->gen, seed);
    gpt_init_tensor(&g, &lay->params[index], w, &st->gen);
    return RWKV_OK;
}

static rwkv_status g_load(const char *path, arch_shape *sh, param_layout *lay, float **params, rwkv_error *err) {
    gpt_shape g;
    rwkv_status s = gpt_load_model(path, sh->n_head, &g, lay, params, err);
    if (s == RWKV_OK) from_gpt(&g, sh);
    return s;
}

static rwkv_status g_save(const char *path, const arch_shape *sh, const param_layout *lay, const float *params,
                          rwkv_error *err) {
    (void)lay;
    gpt_shape g = to_gpt(sh);
    return gpt_save_model(path, &g, params, err);
}

static rwkv_status g_ctx_new(const arch_shape *sh, const param_layout *lay, int B, int T, int nt, void **ctx,
                             rwkv_error *err) {
    (void)lay;
    gpt_shape g = to_gpt(sh);
    gpt_train_ctx *c = NULL;
    rwkv_status s = gpt_train_ctx_new(&g, B, T, nt, &c, err);
    *ctx = c;
    return s;
}

static void g_ctx_free(void *ctx) { gpt_train_ctx_free(ctx); }

static rwkv_status g_fb(void *ctx, const float *params, const int *in, const int *tg, float l2wrap, float *grads,
                        float *loss, rwkv_error *err) {
    (void)l2wrap;
    return gpt_forward_backward(ctx, params, in, tg, grads, loss, err);
}

static rwkv_status g_loss(void *ctx, const float *params, const int *in, const int *tg, float *loss,
                          rwkv_error *err) {
    return gpt_forward_loss(ctx, params, in, tg, NULL, loss, err);
}

static double g_flops(const arch_shape *sh, const param_layout *lay, int T) {
    (void)lay;
    gpt_shape g = to_gpt(sh);
    return gpt_train_flops_per_token(&g, T);
}

const train_arch train_arch_gpt = {
    "gpt", g_shape_check, g_layout, g_init, g_load, g_save, g_ctx_new, g_ctx_free, g_fb, g_loss, g_flops,
};

/* ---- RWKV-7 --------------------------------------------------------------- */

static rwkv7_shape to_rwkv7(const arch_shape *sh) {
    rwkv7_shape s = {sh->n_vocab, sh->n_embd,  sh->n_layer, sh->n_ffn,
                     sh->head_size, sh->d_decay, sh->d_aaa, sh->d_mv, sh->d_gate, sh->uniform};
    return s;
}

static void from_rwkv7(const rwkv7_shape *s, arch_shape *sh) {
    sh->n_vocab = s->n_vocab, sh->n_embd = s->n_embd, sh->n_layer = s->n_layer, sh->n_ffn = s->n_ffn;
    sh->n_head = s->n_embd / s->head_size, sh->n_ctx = 0, sh->head_size = s->head_size;
    sh->d_decay = s->d_decay, sh->d_aaa = s->d_aaa, sh->d_mv = s->d_mv, sh->d_gate = s->d_gate;
}

static rwkv_status r7_shape_check(arch_shape *sh, rwkv_error *err) {
    rwkv7_shape s = to_rwkv7(sh);
    rwkv_status st = rwkv7_shape_complete(&s, err);
    if (st == RWKV_OK) from_rwkv7(&s, sh);
    return st;
}

static rwkv_status r7_layout(const arch_shape *sh, param_layout *lay, rwkv_error *err) {
    rwkv7_shape s = to_rwkv7(sh);
    return rwkv7_layout_init(&s, lay, err);
}

/* (emb_scale is RWKV-4's: RWKV-7 uses its own fixed 1e-4, docs/training-rwkv7.md) */
static rwkv_status r7_init(const arch_shape *sh, const param_layout *lay, int index, float *w, uint64_t seed,
                           float emb_scale, arch_init_state *st, rwkv_error *err) {
    (void)emb_scale;
    (void)st;
    rwkv7_shape s = to_rwkv7(sh);
    rwkv_status r = rwkv7_init_tensor(&s, lay, index, w, seed);
    return r == RWKV_OK ? RWKV_OK : rwkv_fail(err, r, "cannot initialise the RWKV-7 model");
}

static rwkv_status r7_load(const char *path, arch_shape *sh, param_layout *lay, float **params, rwkv_error *err) {
    *params = NULL;
    tensor_set set;
    rwkv_status s = checkpoint_read(path, &set, err);
    if (s != RWKV_OK) return s;
    rwkv7_shape shape;
    if (!tensor_set_find(&set, "blocks.0.att.r_k"))
        s = rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: is not an RWKV-7 checkpoint (no blocks.0.att.r_k)", path);
    else
        s = rwkv7_params_from_tensors(&set, &shape, lay, params, err);
    tensor_set_free(&set);
    if (s != RWKV_OK) {
        if (err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
        return s;
    }
    from_rwkv7(&shape, sh);
    return RWKV_OK;
}

static rwkv_status r7_ctx_new(const arch_shape *sh, const param_layout *lay, int B, int T, int nt, void **ctx,
                              rwkv_error *err) {
    rwkv7_shape s = to_rwkv7(sh);
    rwkv7_train_ctx *c = NULL;
    rwkv_status st = rwkv7_train_ctx_new(&s, lay, B, T, nt, &c, err);
    *ctx = c;
    return st;
}

static void r7_ctx_free(void *ctx) { rwkv7_train_ctx_free(ctx); }

static rwkv_status r7_fb(void *ctx, const float *params, const int *in, const int *tg, float l2wrap, float *grads,
                         float *loss, rwkv_error *err) {
    return rwkv7_forward_backward(ctx, params, in, tg, l2wrap, grads, loss, err);
}

static rwkv_status r7_loss(void *ctx, const float *params, const int *in, const int *tg, float *loss,
                           rwkv_error *err) {
    return rwkv7_forward_loss(ctx, params, in, tg, NULL, loss, err);
}

/* 6 x parameters (every weight, LoRA factors included, is one multiply-add
 * per token forward), plus the WKV, which has no weights: per token, layer and
 * state element (H N² = C N of them) the forward does S a (2 FLOPs), the
 * update S w + (S a) b + v k (5) and S r (2); training counts three times the
 * forward, as for the weights: 27 C N per layer. */
static double r7_flops(const arch_shape *sh, const param_layout *lay, int T) {
    (void)T;
    return 6.0 * (double)lay->total + 27.0 * sh->n_layer * (double)sh->n_embd * sh->head_size;
}

const train_arch train_arch_rwkv7 = {
    "rwkv7", r7_shape_check, r7_layout, r7_init, r7_load, r4_save, r7_ctx_new, r7_ctx_free, r7_fb, r7_loss,
    r7_flops,
};
