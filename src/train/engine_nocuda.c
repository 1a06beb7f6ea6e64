/* The CUDA engine's entry points in a build without the CUDA toolkit
 * (train/engine.h): --device cuda is refused with one line saying so. */
#include "train/engine.h"

#include <stdlib.h>

static rwkv_status no_cuda(rwkv_error *err) {
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                     "--device cuda: this build has no CUDA support (rebuild where nvcc is on the PATH, or make CUDA=1)");
}

rwkv_status train_cuda_check(const char *arch, int device_index, rwkv_error *err) {
    (void)arch;
    (void)device_index;
    return no_cuda(err);
}

rwkv_status train_cuda_use_device(int device_index, rwkv_error *err) {
    (void)device_index;
    return no_cuda(err);
}

rwkv_status train_engine_new_cuda(const train_engine_config *cfg, float *params, float *m, float *v,
                                  train_engine **out, rwkv_error *err) {
    (void)cfg;
    *out = NULL;
    free(params);
    free(m);
    free(v);
    return no_cuda(err);
}
