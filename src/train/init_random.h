/* Random initialisation shared by the architectures' init functions:
 * one random stream per tensor (seeded from the run's seed and the tensor's
 * index, so the result does not depend on the order tensors are visited nor
 * on the thread count) and PyTorch-style orthogonal matrices
 * (docs/model.md §3.2). */
#ifndef RWKV_TRAIN_INIT_RANDOM_H
#define RWKV_TRAIN_INIT_RANDOM_H

#include <stdint.h>

#include "core/error.h"

/* The generator state of tensor `index` of a model initialised with `seed`. */
uint64_t init_stream(uint64_t seed, int index);
/* Uniform in [0, 1). */
double init_uniform01(uint64_t *s);
/* W [rows][cols] := an orthogonal matrix (orthonormal vectors along the
 * longer side: QR of a Gaussian matrix with diag(R) > 0) times gain.
 * RWKV_ERR_NOMEM when its rows·cols doubles of workspace cannot be had. */
rwkv_status orthogonal_init(float *W, int rows, int cols, double gain, uint64_t *rng);
/* 1 when s ends with suffix. */
int ends_with(const char *s, const char *suffix);

#endif
