/* Random initialisation shared by the architectures' init functions:
 * one random stream per tensor (seeded from the run's seed and the tensor's
 * index, so the result does not depend on the order tensors are visited nor
 * on the thread count) and PyTorch-style orthogonal matrices
 * (docs/model.md §3.2). */
#ifndef RWKV_TRAIN_INIT_RANDOM_H
#define RWKV_TRAIN_INIT_RANDOM_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* The generator state of tensor `index` of a model initialised with `seed`. */
uint64_t init_stream(uint64_t seed, int index);
/* w[i] := U(-half, half) for i < n from the stream's first n draws (uniform
 * in [0, 1) with 53 bits, scaled), drawn on all cores: each element is a
 * function of its index alone, so the thread count changes nothing. */
void init_uniform_fill(float *w, size_t n, double half, uint64_t stream);
/* The same draws as lo + width·u: U[lo, lo + width). */
void init_uniform_range_fill(float *w, size_t n, double lo, double width, uint64_t stream);
/* W [rows][cols] := an orthogonal matrix (orthonormal vectors along the
 * longer side: QR of a Gaussian matrix with diag(R) > 0) times gain.
 * RWKV_ERR_NOMEM when its rows·cols doubles of workspace cannot be had. */
rwkv_status orthogonal_init(float *W, int rows, int cols, double gain, uint64_t *rng);
/* 1 when s ends with suffix. */
int ends_with(const char *s, const char *suffix);

#endif
