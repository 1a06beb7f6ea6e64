/* train/dist.h in a build without the CUDA toolkit: no ranks to join. */
#include "train/dist.h"

rwkv_status train_dist_open(const train_dist_settings *set, int device_index, train_dist **out, rwkv_error *err) {
    (void)set;
    (void)device_index;
    *out = NULL;
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                     "training on several GPUs: this build has no CUDA support (rebuild where nvcc is on the PATH)");
}

/* unreachable without a train_dist */
void train_dist_free(train_dist *d) { (void)d; }
int train_dist_rank(const train_dist *d) {
    (void)d;
    return 0;
}

int train_dist_world(const train_dist *d) {
    (void)d;
    return 1;
}

rwkv_status train_dist_sum(train_dist *d, double *v, int n, rwkv_error *err) {
    (void)d;
    (void)v;
    (void)n;
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "no CUDA support");
}

rwkv_status train_dist_broadcast(train_dist *d, void *buf, size_t bytes, rwkv_error *err) {
    (void)d;
    (void)buf;
    (void)bytes;
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "no CUDA support");
}

struct cuda_comm *train_dist_comm(train_dist *d) {
    (void)d;
    return NULL;
}
