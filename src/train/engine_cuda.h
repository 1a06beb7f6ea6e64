/* The CUDA engine's state (train/engine_cuda.c), shared with its
 * data-parallel part (train/data_parallel_cuda.c). Private to the two. */
#ifndef RWKV_TRAIN_ENGINE_CUDA_H
#define RWKV_TRAIN_ENGINE_CUDA_H

#include "cuda/cuda_backend.h"
#include "cuda/cuda_comm.h"
#include "train/dist.h"
#include "train/engine.h"

typedef struct cuda_engine {
    train_engine base;
    train_engine_config cfg;
    size_t n;
    int local_batch;     /* this rank's sequences of a micro-batch (batch / world) */
    rwkv4_cuda *ctx;     /* the training batch */
    rwkv4_cuda *ctx_rem; /* the last, smaller validation batch: made at its first use */
    cuda_adam_span *spans;
    int n_spans;
    rwkv4_cuda_adam hp;
    /* host copies for export_state, valid while host_valid (m, v: rank 0 only in a data-parallel run) */
    float *params, *m, *v;
    int host_valid;
    float *grads; /* host copy of the gradients, only for the error message */
    const int *last_inputs, *last_targets; /* the last micro-batch (the loop's buffers) */
    rwkv_status pending;
    rwkv_error pending_err;
    /* data parallel (cfg.dist not NULL) */
    cuda_comm *comm;
    int rank, world;
    size_t slice;      /* floats per rank: rank r updates [r·slice, (r+1)·slice) ∩ [0, n) */
    size_t lo, hi;     /* this rank's part */
    void *wire;        /* bf16 gradients on the wire (--allreduce bf16), n elements; else NULL */
    size_t unreduced;  /* the backward's gradients from here to the end are being reduced */
} cuda_engine;

/* Keeps the first failure of an operation that cannot return one. */
void cuda_engine_keep_failure(cuda_engine *c, rwkv_status s, const rwkv_error *e);
/* The context for a smaller validation batch of `rows` sequences (made at
 * the first call; rows must not change), holding the current parameters. */
rwkv_status cuda_engine_rem_context(cuda_engine *c, int rows, rwkv4_cuda **out, rwkv_error *err);

/* ---- train/data_parallel_cuda.c ---- */

/* The slice, the wire buffer and the Adam spans of this rank; the context
 * is made with room for the parameter all-gather. */
rwkv_status dp_plan(cuda_engine *c, rwkv4_cuda_shard *shard, rwkv_error *err);
/* Rank 0's parameters and moments to every rank (the start of a run). */
rwkv_status dp_share_state(cuda_engine *c, rwkv_error *err);
/* This rank's rows of the micro-batch, forward and backward, the gradients
 * averaged over the ranks during the backward when `last`; the mean loss
 * over all ranks. */
rwkv_status dp_accumulate(cuda_engine *c, const int *inputs, const int *targets, int last, float *loss,
                          rwkv_error *err);
/* After the Adam step on this rank's slice: every rank's slice to all. */
rwkv_status dp_gather_params(cuda_engine *c, rwkv_error *err);
/* The moments of every slice into rank 0's host copies. */
rwkv_status dp_gather_moments(cuda_engine *c, rwkv_error *err);
/* The validation batch split over the ranks, its mean loss over all. */
rwkv_status dp_eval_loss(cuda_engine *c, const int *inputs, const int *targets, int n_seq, float *loss,
                         rwkv_error *err);

#endif
