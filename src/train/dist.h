/* The ranks of a data-parallel run (docs/multigpu.md): one process per
 * GPU, joined through a rendezvous (core/rendezvous.h) into one NCCL
 * communicator (cuda/cuda_comm.h). The loop and the run's setup use it for
 * the few host values every rank must agree on; the CUDA engine reduces
 * gradients and gathers parameters through it. In a build without CUDA,
 * opening one fails with one line (train/dist_nocuda.c). */
#ifndef RWKV_TRAIN_DIST_H
#define RWKV_TRAIN_DIST_H

#include <stddef.h>

#include "core/error.h"

/* What a session was started with; world 0: a single process, no NCCL. */
typedef struct train_dist_settings {
    int world, rank;
    const char *rendezvous; /* HOST:PORT or file:PATH */
    const char *allreduce;  /* "bf16", "fp32" or NULL: the precision's */
    double timeout_s;       /* a collective that takes longer aborts the run */
} train_dist_settings;

typedef struct train_dist train_dist;

/* Selects CUDA device device_index, meets the other ranks at the rendezvous
 * (rank 0 makes the NCCL id, the others wait for it) and joins the
 * communicator; returns once every rank has joined. */
rwkv_status train_dist_open(const train_dist_settings *set, int device_index, train_dist **out, rwkv_error *err);
void train_dist_free(train_dist *d);
int train_dist_rank(const train_dist *d);
int train_dist_world(const train_dist *d);

/* n host doubles summed over the ranks (every rank calls it at the same point). */
rwkv_status train_dist_sum(train_dist *d, double *v, int n, rwkv_error *err);
/* Rank 0's bytes to every rank. */
rwkv_status train_dist_broadcast(train_dist *d, void *buf, size_t bytes, rwkv_error *err);

struct cuda_comm;
/* The communicator, for the CUDA engine. */
struct cuda_comm *train_dist_comm(train_dist *d);

#endif
