/* Collectives between the GPUs of a data-parallel run through NCCL, callable
 * from C (no NCCL or CUDA types here). NCCL is opened with dlopen at the
 * first use, so a program that never trains on several GPUs neither needs
 * the library nor pays for loading it; without it the first call fails with
 * one line (RWKV_ERR_UNSUPPORTED).
 *
 * The communicator is non-blocking and every wait polls: the stream and
 * NCCL's asynchronous error. A collective that does not finish within the
 * communicator's timeout, or that NCCL reports failed (a peer process died,
 * a network error), aborts the communicator and returns RWKV_ERR_IO naming
 * the rank and the operation; every later call returns that error again.
 * Collectives are enqueued on the communicator's own stream; nothing else
 * waits for them unless asked (cuda_comm_wait, cuda_comm_follow). */
#ifndef RWKV_CUDA_COMM_H
#define RWKV_CUDA_COMM_H

#include "core/error.h"
#include "cuda/cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { CUDA_COMM_ID_BYTES = 128 };

typedef struct cuda_comm cuda_comm;
typedef enum { CUDA_COMM_F32, CUDA_COMM_BF16, CUDA_COMM_F64, CUDA_COMM_BYTES } cuda_comm_type;
typedef enum { CUDA_COMM_SUM, CUDA_COMM_AVG, CUDA_COMM_MAX } cuda_comm_op;

/* A fresh unique id for rank 0 to hand to the others (core/rendezvous.h). */
rwkv_status cuda_comm_unique_id(unsigned char id[CUDA_COMM_ID_BYTES], rwkv_error *err);
/* Joins the communicator `id` as `rank` of `world` on the current device;
 * waits (at most timeout_s) until every rank has joined. */
rwkv_status cuda_comm_new(const unsigned char id[CUDA_COMM_ID_BYTES], int rank, int world, double timeout_s,
                          cuda_comm **out, rwkv_error *err);
void cuda_comm_free(cuda_comm *c);
/* The stream the collectives are enqueued on. */
cuda_stream cuda_comm_stream(cuda_comm *c);

/* The communicator's stream waits for the work enqueued on `s` so far. */
rwkv_status cuda_comm_follow(cuda_comm *c, cuda_stream s, rwkv_error *err);
/* recv = op over the ranks of send (count elements; send == recv in place). */
rwkv_status cuda_comm_all_reduce(cuda_comm *c, const void *send, void *recv, size_t count, cuda_comm_type t,
                                 cuda_comm_op op, rwkv_error *err);
/* recv[r·count ..] = rank r's send (in place when send = recv + rank·count). */
rwkv_status cuda_comm_all_gather(cuda_comm *c, const void *send, void *recv, size_t count, cuda_comm_type t,
                                 rwkv_error *err);
/* Rank 0's count elements of buf to every rank. */
rwkv_status cuda_comm_broadcast(cuda_comm *c, void *buf, size_t count, cuda_comm_type t, rwkv_error *err);
/* Waits for everything enqueued on the communicator's stream. */
rwkv_status cuda_comm_wait(cuda_comm *c, const char *what, rwkv_error *err);
/* Host values: n doubles reduced by op, and rank 0's bytes to every rank (they wait). */
rwkv_status cuda_comm_host_all_reduce(cuda_comm *c, double *v, int n, cuda_comm_op op, rwkv_error *err);
rwkv_status cuda_comm_host_broadcast(cuda_comm *c, void *buf, size_t bytes, rwkv_error *err);

#ifdef __cplusplus
}
#endif

#endif
