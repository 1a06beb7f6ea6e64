/* model_to_cuda in a build without the CUDA toolkit: --device cuda is
 * refused with one line saying so. */
#include "model/model.h"

rwkv_status model_to_cuda(rwkv_model *m, int device_index, cuda_matrices mats, rwkv_error *err) {
    (void)m;
    (void)device_index;
    (void)mats;
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                     "--device cuda: this build has no CUDA support (use the cpu, or rebuild where nvcc is on the PATH)");
}
