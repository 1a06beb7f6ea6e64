/* Training checkpoints: the model as safetensors with the official RWKV-4
 * key names and shapes (float32, the master weights), the training state
 * (Adam moments, step, RNG, data position) and the run's settings
 * (config.json), each written atomically (temp + fsync + rename).
 *
 * train_state-SSSSSSSS.bin (little-endian):
 *   0 "RWKVTST\0"  8 u32 version (1)  12 u32 0
 *   16 u64 step  24 u64 n (floats per moment)  32 u64 rng[4]  64 u64 samples drawn
 *   72 u64 tokens seen  80 u64 skipped steps  88 f64 elapsed seconds  96 f64 last validation
 *   loss (NaN: none)  104 u64 FNV-1a of the float32 weights  112 f32 m[n]  then f32 v[n]
 *   then u64 FNV-1a of every byte before it. */
#ifndef RWKV_TRAIN_CHECKPOINT_H
#define RWKV_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "rwkv_train.h"
#include "train/rwkv4_grad.h"

/* FNV-1a 64 over bytes (chainable: pass the previous result as h, or FNV_INIT). */
#define FNV_INIT 0xcbf29ce484222325ull
uint64_t fnv1a64(uint64_t h, const void *data, size_t n);
uint64_t params_hash(const float *params, size_t n);

rwkv_status train_save_model(const char *path, const param_layout *lay, const float *params,
                             rwkv_error *err);
/* Loads any checkpoint into a flat f32 buffer (layout filled, params malloc'ed). */
rwkv_status train_load_model(const char *path, param_layout *lay, float **params, rwkv_error *err);

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

rwkv_status train_state_write(const char *path, const train_state *st, int pause_ms, rwkv_error *err);
rwkv_status train_state_read(const char *path, train_state *st, rwkv_error *err);
void train_state_free(train_state *st);

/* DIR/model-SSSSSSSS.safetensors and DIR/train_state-SSSSSSSS.bin */
void ckpt_model_path(const char *dir, long step, char *buf, size_t size);
void ckpt_state_path(const char *dir, long step, char *buf, size_t size);
/* Steps that have a state file in dir, newest first; returns the count (-1 on error). */
int ckpt_list(const char *dir, long **steps, rwkv_error *err);
/* Deletes checkpoints older than the `keep` newest (keep <= 0: none) and stale temp files. */
void ckpt_prune(const char *dir, int keep);
/* Deletes leftover "*.tmp.PID" files of killed writers in dir. */
void ckpt_remove_temps(const char *dir);

/* The run's settings. Strings of `opt` point into this struct. config.json
 * holds "arch" ("rwkv4" when absent: runs written before the GPT baseline)
 * and "n_head" (0 when absent) besides every numeric option. */
typedef struct train_config {
    rwkv_train_options opt;
    char *data_path, *out_dir, *init_path, *tokenizer, *arch;
    char *tokens_path; /* the token file the run reads */
    int n_vocab;
} train_config;

rwkv_status train_config_write(const char *path, const train_config *c, rwkv_error *err);
rwkv_status train_config_read(const char *path, train_config *c, rwkv_error *err);
void train_config_free(train_config *c);

#endif
