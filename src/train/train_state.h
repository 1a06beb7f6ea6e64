/* The training state file: everything besides the weights that a resumed
 * run needs to continue exactly (Adam moments, step, data RNG, counters),
 * written atomically (temp + fsync + rename).
 *
 * train_state-SSSSSSSS.bin (little-endian):
 *   0 "RWKVTST\0"  8 u32 version (1)  12 u32 0
 *   16 u64 step  24 u64 n (floats per moment)  32 u64 rng[4]  64 u64 samples drawn
 *   72 u64 tokens seen  80 u64 skipped steps  88 f64 elapsed seconds  96 f64 last validation
 *   loss (NaN: none)  104 u64 FNV-1a of the float32 weights  112 f32 m[n]  then f32 v[n]
 *   then u64 FNV-1a of every byte before it. */
#ifndef RWKV_TRAIN_TRAIN_STATE_H
#define RWKV_TRAIN_TRAIN_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* FNV-1a 64 over bytes (chainable: pass the previous result as h, or FNV_INIT). */
#define FNV_INIT 0xcbf29ce484222325ull
uint64_t fnv1a64(uint64_t h, const void *data, size_t n);
/* FNV-1a of the weights' little-endian bytes: ties a state file to its model file. */
uint64_t params_hash(const float *params, size_t n);

typedef struct train_state {
    uint64_t step;
    uint64_t rng[4];
    uint64_t samples;
    uint64_t tokens_seen;
    uint64_t skipped;
    double elapsed_s;
    double last_val_loss;
    uint64_t params_hash;
    size_t n;
    float *m, *v; /* borrowed when writing; malloc'ed by train_state_read */
} train_state;

/* pause_ms > 0 sleeps in the middle of the write (a test hook: a window in
 * which to kill the writer). */
rwkv_status train_state_write(const char *path, const train_state *st, int pause_ms, rwkv_error *err);
rwkv_status train_state_read(const char *path, train_state *st, rwkv_error *err);
void train_state_free(train_state *st);

#endif
