/* One training session in a run directory: its settings, data, model state
 * (inside a train_engine) and counters, shared by the start of a fresh run
 * (train/trainer.c), a resume (train/resume.c) and the loop. */
#ifndef RWKV_TRAIN_RUN_H
#define RWKV_TRAIN_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "core/fs.h"
#include "train/adam.h"
#include "train/arch.h"
#include "train/data.h"
#include "train/dist.h"
#include "train/engine.h"
#include "train/run_config.h"
#include "train/schedule.h"

#define DIR_MAX_LEN 3072 /* leaves room for the file names inside the run directory */

typedef struct run {
    train_config cfg;
    const rwkv_train_options *o; /* = &cfg.opt */
    char dir[DIR_MAX_LEN];
    int lock_fd;
    int debug_save_pause_ms;
    long debug_nan_step;
    int measure_peak;

    token_data data;
    uint64_t *val_starts;
    int64_t n_val;

    const train_arch *arch;
    arch_shape shape; /* of the model being trained */
    param_layout lay;
    int have_layout;
    /* the model state on the host until run_start_engine hands it over */
    float *params, *m, *v;
    train_engine *engine;
    lr_schedule sched;

    int *inputs, *targets;

    train_rng rng;
    long step;
    uint64_t samples, tokens_seen, skipped;
    double elapsed_before; /* wall seconds of earlier sessions */
    double last_val;
    long last_saved;

    FILE *log;
    double peak_gflops;

    /* data parallel: the ranks (NULL: a single process) and this one's number */
    train_dist *dist;
    int rank;
} run;

/* An empty run for directory dir (RWKV_ERR_ARG when the path is too long;
 * `what` names the option for the message). */
rwkv_status run_init(run *r, const char *dir, const char *what, rwkv_error *err);
void run_free(run *r);

/* Opens the token file and sets the split and the validation windows. */
rwkv_status run_open_data(run *r, rwkv_error *err);
/* The model's shape as the run's settings give it. */
arch_shape run_options_shape(const run *r);
/* Fresh parameters: the --init checkpoint or the architecture's initialisation. */
rwkv_status run_fresh_params(run *r, rwkv_error *err);
/* Checks a model's shape against the run's settings. */
rwkv_status run_check_shape(const run *r, const arch_shape *sh, const char *what, rwkv_error *err);
/* The schedule, batch buffers and the engine, which takes over params, m and v. */
rwkv_status run_start_engine(run *r, rwkv_error *err);
/* The data-parallel settings of the run's options (world 0: none). */
train_dist_settings run_dist_settings(const rwkv_train_options *o);
/* 1 when flag is set on any rank (every rank calls it at the same point);
 * flag itself in a single process. */
rwkv_status run_any_rank(run *r, int *flag, rwkv_error *err);
/* Rank 0 of a data-parallel run: 1; any other rank: 0 (it writes nothing). */
int run_writes(const run *r);
/* Writes the model and training state of the current step (in a
 * data-parallel run every rank calls it; only rank 0 writes). */
rwkv_status run_save_checkpoint(run *r, double elapsed, const char *model_path, rwkv_error *err);

/* The loop from r->step to the run's last step (train/trainer.c). */
rwkv_status train_loop(run *r, rwkv_train_callback cb, void *user, const char *note, rwkv_error *err);

/* A rank other than 0 of a data-parallel run in directory dir: waits for
 * rank 0 at the rendezvous (rank 0 has made or opened the run by then),
 * reads the run's settings and data, takes the model state from rank 0 and
 * runs the loop beside it, writing nothing (train/join.c). `session` gives
 * this process's device, data-parallel settings, threads and test hooks. */
rwkv_status train_join(const char *dir, const rwkv_train_options *session, rwkv_train_callback cb, void *user,
                       rwkv_error *err);

#endif
