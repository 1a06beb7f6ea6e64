/* Model files of training (train/model_file.h). */
#include "train/model_file.h"

#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"
#include "formats/formats.h"
#include "train/rwkv4_grad.h"

rwkv_status train_save_model(const char *path, const param_layout *lay, const float *params,
                             rwkv_error *err) {
    tensor *t = calloc((size_t)lay->count, sizeof *t);
    if (!t) return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < lay->count; i++) {
        const param_info *p = &lay->params[i];
        t[i].name = (char *)p->name;
        t[i].type = DT_F32;
        t[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim && d < TENSOR_MAX_DIMS; d++) t[i].shape[d] = p->shape[d];
        t[i].data = params + p->offset;
        t[i].nbytes = p->numel * sizeof(float);
    }
    rwkv_status s = safetensors_write(path, t, lay->count, DT_F32, err);
    free(t);
    return s;
}

rwkv_status train_load_model(const char *path, param_layout *lay, float **params, rwkv_error *err) {
    tensor_set set;
    *params = NULL;
    rwkv_status s = checkpoint_read(path, &set, err);
    if (s != RWKV_OK) return s;
    s = params_from_tensors(&set, lay, params, err);
    if (s != RWKV_OK && err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
    tensor_set_free(&set);
    return s;
}

