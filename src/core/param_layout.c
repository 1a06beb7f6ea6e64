#include "core/param_layout.h"

#include "core/dtype.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void param_layout_add(param_layout *lay, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                      float lr_scale) {
    param_info *p = &lay->params[lay->count++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 0;
    p->shape[2] = ndim > 2 ? d2 : 0;
    p->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1) * (size_t)(ndim > 2 ? d2 : 1);
    p->offset = lay->total;
    p->lr_scale = lr_scale;
    int big_dims = 0; /* dimensions of size > 1: a [1,1,C] vector is no matrix */
    for (int d = 0; d < ndim; d++) big_dims += p->shape[d] > 1;
    p->decay = big_dims >= 2;
    lay->total += p->numel;
}

void param_layout_add_in_block(param_layout *lay, int l, const char *suffix, int ndim, int64_t d0, int64_t d1,
                               int64_t d2, float lr_scale) {
    char name[64];
    snprintf(name, sizeof name, "blocks.%d.%s", l, suffix);
    param_layout_add(lay, name, ndim, d0, d1, d2, lr_scale);
}

void param_layout_add_block_norms(param_layout *lay, int l, int C) {
    static const char *const norms[] = {"ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "ln0.weight", "ln0.bias"};
    for (int i = 0; i < (l == 0 ? 6 : 4); i++) param_layout_add_in_block(lay, l, norms[i], 1, C, 0, 0, 1.0f);
}

void param_layout_free(param_layout *layout) {
    if (!layout) return;
    free(layout->params);
    memset(layout, 0, sizeof *layout);
}

const param_info *param_layout_find(const param_layout *layout, const char *name) {
    for (int i = 0; i < layout->count; i++)
        if (strcmp(layout->params[i].name, name) == 0) return &layout->params[i];
    return NULL;
}

rwkv_status param_layout_fill(const param_layout *layout, const tensor_set *set, float *buf, rwkv_error *err) {
    for (int i = 0; i < layout->count; i++) {
        const param_info *p = &layout->params[i];
        const tensor *t = tensor_set_find(set, p->name);
        char got[64], want[64];
        if (!t) return rwkv_fail(err, RWKV_ERR_SHAPE, "missing tensor %s", p->name);
        shape_format(t->ndim, t->shape, got, sizeof got);
        shape_format(p->ndim, p->shape, want, sizeof want);
        if (!dtype_is_float(t->type))
            return rwkv_fail(err, RWKV_ERR_SHAPE, "%s has dtype %s, expected a float type", p->name,
                             dtype_name(t->type));
        int ok = tensor_numel(t) == (int64_t)p->numel;
        if (p->ndim == 2) ok = ok && t->ndim == 2 && t->shape[0] == p->shape[0];
        if (!ok) return rwkv_fail(err, RWKV_ERR_SHAPE, "%s has shape %s, expected %s", p->name, got, want);
        dtype_to_f32(t->type, t->data, buf + p->offset, p->numel);
    }
    return rwkv_ok(err);
}

const char *param_layout_first_nonfinite(const param_layout *layout, const float *values) {
    for (int i = 0; i < layout->count; i++) {
        const param_info *p = &layout->params[i];
        for (size_t j = 0; j < p->numel; j++)
            if (!isfinite(values[p->offset + j])) return p->name;
    }
    return "(none)";
}
