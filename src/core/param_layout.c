#include "core/param_layout.h"

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
    lay->total += p->numel;
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

const char *param_layout_first_nonfinite(const param_layout *layout, const float *values) {
    for (int i = 0; i < layout->count; i++) {
        const param_info *p = &layout->params[i];
        for (size_t j = 0; j < p->numel; j++)
            if (!isfinite(values[p->offset + j])) return p->name;
    }
    return "(none)";
}
