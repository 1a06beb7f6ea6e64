/* The ranks of a data-parallel run over NCCL (train/dist.h). */
#include "train/dist.h"

#include <stdlib.h>

#include "core/rendezvous.h"
#include "cuda/cuda_comm.h"
#include "train/engine.h"

struct train_dist {
    cuda_comm *comm;
    int rank, world;
};

rwkv_status train_dist_open(const train_dist_settings *set, int device_index, train_dist **out, rwkv_error *err) {
    *out = NULL;
    unsigned char id[CUDA_COMM_ID_BYTES] = {0};
    rwkv_status s = rendezvous_check_spec(set->rendezvous, err);
    if (s == RWKV_OK) s = train_cuda_use_device(device_index, err);
    if (s == RWKV_OK && set->rank == 0) s = cuda_comm_unique_id(id, err);
    if (s == RWKV_OK) s = rendezvous_exchange(set->rendezvous, set->rank, set->world, id, sizeof id, set->timeout_s, err);
    train_dist *d = NULL;
    if (s == RWKV_OK && !(d = calloc(1, sizeof *d))) s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    if (s == RWKV_OK) {
        d->rank = set->rank;
        d->world = set->world;
        s = cuda_comm_new(id, set->rank, set->world, set->timeout_s, &d->comm, err);
    }
    /* the communicator exists only once every rank has read the id */
    if (s == RWKV_OK) rendezvous_finish(set->rendezvous, set->rank);
    if (s != RWKV_OK) {
        free(d);
        return s;
    }
    *out = d;
    return RWKV_OK;
}

void train_dist_free(train_dist *d) {
    if (!d) return;
    cuda_comm_free(d->comm);
    free(d);
}

int train_dist_rank(const train_dist *d) { return d->rank; }
int train_dist_world(const train_dist *d) { return d->world; }

rwkv_status train_dist_sum(train_dist *d, double *v, int n, rwkv_error *err) {
    return cuda_comm_host_all_reduce(d->comm, v, n, CUDA_COMM_SUM, err);
}

rwkv_status train_dist_broadcast(train_dist *d, void *buf, size_t bytes, rwkv_error *err) {
    return cuda_comm_host_broadcast(d->comm, buf, bytes, err);
}

struct cuda_comm *train_dist_comm(train_dist *d) { return d->comm; }
