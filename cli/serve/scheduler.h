/* The scheduler of `rwkv serve`: one thread that owns the model and decodes
 * every active request together, one batched step per token
 * (rwkv_eval_batch_sample: each row's next token drawn by its request's
 * sampler rules where the model is, so a GPU sends back tokens, not
 * logits). Requests wait in a queue until one of the `parallel` slots is
 * free, join the batch between two steps and leave it when they finish, so
 * a long reply never holds up a short one.
 *
 * A request's prompt is fed in three parts: the longest prefix found in the
 * state cache is restored; the rest but its last token is fed in sequence
 * mode, one chunk of at most 256 tokens per step (so a long prompt delays
 * the others by one chunk at a time); the last prompt token rides in the
 * batched step, whose draw gives the first reply token. Every token thus
 * goes through the same matrix-matrix kernels, whatever the batch and
 * whatever was cached, so a request's tokens do not depend on its
 * neighbours or on the cache, bit for bit.
 *
 * States are cached at the end of each prompt and of each reply. */
#ifndef RWKV_SERVE_SCHEDULER_H
#define RWKV_SERVE_SCHEDULER_H

#include "job.h"
#include "rwkv.h"
#include "rwkv_tokenizer.h"

typedef struct scheduler scheduler;

typedef struct scheduler_config {
    rwkv_model *model;
    const rwkv_tokenizer *tok;
    int parallel;        /* slots: requests decoded together */
    int max_queue;       /* requests that may wait for a slot */
    size_t cache_bytes;  /* state cache budget; 0: no cache */
} scheduler_config;

/* Starts the scheduler thread. */
rwkv_status scheduler_start(const scheduler_config *cfg, scheduler **out, rwkv_error *err);
/* Queues a job (the scheduler takes its own reference). 0, or -1 when the
 * queue is full (the job is untouched). */
int scheduler_submit(scheduler *s, job *j);
/* Ends every job still running or queued (HTTP status 503), joins the thread, frees. */
void scheduler_stop(scheduler *s);

#endif
