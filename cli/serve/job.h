/* One generation request as the HTTP side and the scheduler share it.
 *
 * The HTTP thread fills the request part, submits the job and then only
 * reads the output part; the scheduler thread writes the output part. The
 * output is guarded by the job's mutex, and every change wakes the reader.
 * A job is freed when both sides have released it (job_release). */
#ifndef RWKV_SERVE_JOB_H
#define RWKV_SERVE_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rwkv_sample.h"

#define JOB_MAX_STOPS 8

typedef struct job {
    /* ---- the request (set before submission, then read-only) ---- */
    int *prompt;   /* token ids (owned) */
    size_t n_prompt;
    rwkv_sampler_params sampling;
    uint64_t seed;
    long max_tokens;
    char *stops[JOB_MAX_STOPS]; /* stop strings (owned), never part of the output */
    int n_stops;
    int stop_at_eos;            /* the tokenizer's end-of-text id ends the reply */
    double deadline;            /* monotonic seconds; 0: none */
    double t_arrival;

    /* ---- the output (guarded by mu) ---- */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *text;                 /* the reply so far (stop strings held back until they cannot match) */
    size_t len, cap;
    int finished;
    const char *finish_reason;  /* "stop" or "length" (static strings) */
    int error_status;           /* nonzero: the generation failed with this HTTP status */
    char error[256];
    size_t completion_tokens, cached_tokens;

    atomic_int cancelled;       /* set by the HTTP side: the client left */
    atomic_int refs;
} job;

/* A job with one reference (the HTTP side's), empty output. NULL: out of memory. */
job *job_new(void);
void job_retain(job *j);
void job_release(job *j);

/* Scheduler side (take the mutex inside): append reply bytes; finish
 * (reason NULL with an error status and message for a failed generation). */
void job_append(job *j, const char *text, size_t len);
void job_finish(job *j, const char *reason, int error_status, const char *error);

/* HTTP side: waits until the output grew past `seen` bytes or the job
 * finished, or `timeout_s` passed. Returns with j->mu held. */
void job_wait_locked(job *j, size_t seen, double timeout_s);

#endif
