/* Random numbers for everything that must be reproducible from a seed
 * (sampling, training data order, initialisation, synthetic data):
 * splitmix64 to expand a seed, xoshiro256** as the generator. Both are
 * tiny, fast and statistically strong; the whole state is four words, so
 * a training checkpoint can store it exactly. */
#ifndef RWKV_RNG_H
#define RWKV_RNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t s[4];
} rng;

/* Advances *state and returns the next splitmix64 output. */
uint64_t splitmix64(uint64_t *state);
/* What the (i+1)-th call of splitmix64 from `state` returns, without the
 * calls before it: splitmix64 is a counter (state + (i+1)·gamma) through a
 * mixer, so a long stream can be cut into pieces drawn in parallel. */
uint64_t splitmix64_at(uint64_t state, uint64_t i);

void rng_seed(rng *r, uint64_t seed);
uint64_t rng_next(rng *r);
/* Uniform in [0, n), n > 0, without modulo bias. */
uint64_t rng_below(rng *r, uint64_t n);
/* Uniform in [0, 1) with 53 random bits. */
static inline double rng_unit(uint64_t bits) { return (double)(bits >> 11) * 0x1.0p-53; }

#endif
