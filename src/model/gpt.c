/* The GPT baseline (model/gpt.h): shape, the named layout of the flat
 * buffer, and checkpoints. The batched forward is in model/gpt_forward.c,
 * decoding in model/gpt_decode.c, the backward and the GPT-2 init in
 * train/gpt_grad.c. */
#include "model/gpt_forward.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats.h"

static const char *const layer_names[P_PER_LAYER] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias"};

/* ---- shape and layout --------------------------------------------------- */

rwkv_status gpt_shape_check(gpt_shape *s, rwkv_error *err) {
    if (!s) return rwkv_fail(err, RWKV_ERR_ARG, "gpt: no shape");
    if (s->n_ffn == 0) s->n_ffn = 4 * s->n_embd;
    const int lim = 1 << 20;
    if (s->n_vocab <= 0 || s->n_embd <= 0 || s->n_layer <= 0 || s->n_head <= 0 || s->n_ctx <= 0 ||
        s->n_ffn <= 0 || s->n_vocab > lim || s->n_embd > lim / 4 || s->n_layer > 4096 || s->n_ctx > lim ||
        s->n_ffn > lim)
        return rwkv_fail(err, RWKV_ERR_ARG,
                         "gpt: bad shape (n_vocab %d, n_embd %d, n_layer %d, n_head %d, n_ctx %d, n_ffn %d)",
                         s->n_vocab, s->n_embd, s->n_layer, s->n_head, s->n_ctx, s->n_ffn);
    if (s->n_embd % s->n_head)
        return rwkv_fail(err, RWKV_ERR_ARG, "gpt: n_embd %d is not a multiple of n_head %d", s->n_embd,
                         s->n_head);
    return RWKV_OK;
}

size_t gpt_param_count(const gpt_shape *s) {
    const size_t V = (size_t)s->n_vocab, C = (size_t)s->n_embd, F = (size_t)s->n_ffn;
    const size_t per_layer = 2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + F * C + F + C * F + C;
    return V * C + (size_t)s->n_ctx * C + (size_t)s->n_layer * per_layer + 2 * C + V * C;
}

rwkv_status gpt_layout_init(const gpt_shape *shape_in, param_layout *lay, rwkv_error *err) {
    memset(lay, 0, sizeof *lay);
    gpt_shape s = *shape_in;
    rwkv_status st = gpt_shape_check(&s, err);
    if (st != RWKV_OK) return st;
    const int L = s.n_layer, C = s.n_embd, F = s.n_ffn, V = s.n_vocab;
    lay->params = calloc((size_t)(5 + L * P_PER_LAYER), sizeof *lay->params);
    if (!lay->params) return rwkv_fail(err, RWKV_ERR_NOMEM, "gpt: out of memory");
    lay->shape = (model_dims){V, C, L, F, C};
    param_layout_add(lay, "transformer.wte.weight", 2, V, C, 0, 1.0f);
    param_layout_add(lay, "transformer.wpe.weight", 2, s.n_ctx, C, 0, 1.0f);
    for (int l = 0; l < L; l++) {
        char name[64];
        const int64_t dims[P_PER_LAYER][2] = {{C, 0}, {C, 0}, {3 * C, C}, {3 * C, 0}, {C, C}, {C, 0},
                                              {C, 0}, {C, 0}, {F, C},     {F, 0},     {C, F}, {C, 0}};
        for (int k = 0; k < P_PER_LAYER; k++) {
            snprintf(name, sizeof name, "transformer.h.%d.%s", l, layer_names[k]);
            param_layout_add(lay, name, dims[k][1] ? 2 : 1, dims[k][0], dims[k][1], 0, 1.0f);
        }
    }
    param_layout_add(lay, "transformer.ln_f.weight", 1, C, 0, 0, 1.0f);
    param_layout_add(lay, "transformer.ln_f.bias", 1, C, 0, 0, 1.0f);
    param_layout_add(lay, "lm_head.weight", 2, V, C, 0, 1.0f);
    return RWKV_OK;
}
/* ---- checkpoints ------------------------------------------------------------- */

int gpt_is_checkpoint(const tensor_set *set) { return tensor_set_find(set, "transformer.wte.weight") != NULL; }

static const tensor *find2(const tensor_set *set, const char *name, rwkv_error *err) {
    const tensor *t = tensor_set_find(set, name);
    if (!t || t->ndim != 2) rwkv_fail(err, RWKV_ERR_SHAPE, "gpt checkpoint: '%s' missing or not a matrix", name);
    return t && t->ndim == 2 ? t : NULL;
}

rwkv_status gpt_shape_from_tensors(const tensor_set *set, int n_head, gpt_shape *shape, rwkv_error *err) {
    const tensor *wte = find2(set, "transformer.wte.weight", err);
    if (!wte) return RWKV_ERR_SHAPE;
    const tensor *wpe = find2(set, "transformer.wpe.weight", err);
    if (!wpe) return RWKV_ERR_SHAPE;
    gpt_shape s = {0};
    s.n_vocab = (int)wte->shape[0];
    s.n_embd = (int)wte->shape[1];
    s.n_ctx = (int)wpe->shape[0];
    char name[96];
    for (;;) {
        snprintf(name, sizeof name, "transformer.h.%d.ln_1.weight", s.n_layer);
        if (!tensor_set_find(set, name)) break;
        s.n_layer++;
        if (s.n_layer > 4096) break;
    }
    if (s.n_layer == 0) return rwkv_fail(err, RWKV_ERR_SHAPE, "gpt checkpoint: no layers (transformer.h.0.*)");
    const tensor *fc = find2(set, "transformer.h.0.mlp.c_fc.weight", err);
    if (!fc) return RWKV_ERR_SHAPE;
    s.n_ffn = (int)fc->shape[0];
    const tensor *nh = tensor_set_find(set, "config.n_head");
    if (nh) {
        if (nh->type != DT_I64 || tensor_numel(nh) != 1)
            return rwkv_fail(err, RWKV_ERR_SHAPE, "gpt checkpoint: config.n_head must be one I64");
        int64_t v;
        memcpy(&v, nh->data, sizeof v);
        if (v <= 0 || v > (1 << 20))
            return rwkv_fail(err, RWKV_ERR_SHAPE, "gpt checkpoint: config.n_head = %" PRId64, v);
        s.n_head = (int)v;
    } else if (n_head > 0) {
        s.n_head = n_head;
    } else {
        return rwkv_fail(err, RWKV_ERR_SHAPE, "gpt checkpoint: no config.n_head tensor and no head count given");
    }
    rwkv_status st = gpt_shape_check(&s, err);
    if (st != RWKV_OK) return st;
    *shape = s;
    return RWKV_OK;
}

tensor gpt_head_count_tensor(const int64_t *n_head) {
    tensor h = {.name = "config.n_head", .type = DT_I64, .ndim = 1, .shape = {1}, .data = n_head,
                .nbytes = sizeof *n_head};
    return h;
}

rwkv_status gpt_save_model(const char *path, const gpt_shape *shape, const float *params, rwkv_error *err) {
    param_layout lay;
    rwkv_status s = gpt_layout_init(shape, &lay, err);
    if (s != RWKV_OK) return s;
    tensor *t = calloc((size_t)lay.count + 1, sizeof *t);
    if (!t) {
        free(lay.params);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < lay.count; i++) {
        const param_info *p = &lay.params[i];
        t[i].name = (char *)p->name;
        t[i].type = DT_F32;
        t[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) t[i].shape[d] = p->shape[d];
        t[i].data = params + p->offset;
        t[i].nbytes = p->numel * sizeof(float);
    }
    const int64_t n_head = shape->n_head;
    t[lay.count] = gpt_head_count_tensor(&n_head);
    s = safetensors_write(path, t, lay.count + 1, DT_COUNT, err);
    free(t);
    free(lay.params);
    return s;
}

rwkv_status gpt_params_from_tensors(const tensor_set *set, int n_head, gpt_shape *shape, param_layout *layout,
                                    float **params, rwkv_error *err) {
    *params = NULL;
    gpt_shape sh;
    param_layout lay = {0};
    float *buf = NULL;
    rwkv_status s = RWKV_OK;
    if (!gpt_is_checkpoint(set))
        s = rwkv_fail(err, RWKV_ERR_SHAPE, "not a GPT checkpoint (no transformer.wte.weight)");
    if (s == RWKV_OK) s = gpt_shape_from_tensors(set, n_head, &sh, err);
    if (s == RWKV_OK) s = gpt_layout_init(&sh, &lay, err);
    if (s == RWKV_OK && !(buf = malloc(lay.total * sizeof(float))))
        s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu parameters", lay.total);
    for (int i = 0; s == RWKV_OK && i < lay.count; i++) {
        const param_info *p = &lay.params[i];
        const tensor *t = tensor_set_find(set, p->name);
        int ok = t && dtype_is_float(t->type) && t->ndim == p->ndim;
        for (int d = 0; ok && d < p->ndim; d++) ok = t->shape[d] == p->shape[d];
        if (!ok) {
            char want[64];
            shape_format(p->ndim, p->shape, want, sizeof want);
            s = rwkv_fail(err, RWKV_ERR_SHAPE, "gpt checkpoint: '%s' missing or not a float tensor of shape %s",
                          p->name, want);
            break;
        }
        dtype_to_f32(t->type, t->data, buf + p->offset, p->numel);
    }
    if (s != RWKV_OK) {
        free(buf);
        free(lay.params);
        return s;
    }
    *shape = sh;
    *params = buf;
    if (layout) *layout = lay;
    else free(lay.params);
    return RWKV_OK;
}

rwkv_status gpt_load_model(const char *path, int n_head, gpt_shape *shape, param_layout *layout, float **params,
                           rwkv_error *err) {
    *params = NULL;
    tensor_set set;
    rwkv_status s = checkpoint_read(path, &set, err);
    if (s != RWKV_OK) return s;
    s = gpt_params_from_tensors(&set, n_head, shape, layout, params, err);
    tensor_set_free(&set);
    if (s != RWKV_OK && err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
    return s;
}
