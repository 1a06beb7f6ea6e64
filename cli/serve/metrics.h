/* The server's counters and histograms, written as Prometheus text at
 * GET /metrics. Every update takes one mutex: updates happen a few times
 * per request and once per decode step, far below where that matters. */
#ifndef RWKV_SERVE_METRICS_H
#define RWKV_SERVE_METRICS_H

#include <stddef.h>

typedef enum metric_counter {
    M_REQUESTS,          /* HTTP requests received */
    M_REQUEST_ERRORS,    /* answered with a 4xx or 5xx status */
    M_COMPLETIONS,       /* generations finished */
    M_CANCELLED,         /* generations stopped because the client left or timed out */
    M_PROMPT_TOKENS,     /* prompt tokens of finished generations */
    M_CACHED_TOKENS,     /* of which restored from the state cache */
    M_GENERATED_TOKENS,
    M_CACHE_HITS,
    M_CACHE_MISSES,
    M_DECODE_STEPS,      /* batched decode calls */
    M_COUNTERS
} metric_counter;

typedef enum metric_gauge {
    G_QUEUE_DEPTH,   /* requests waiting for a slot */
    G_ACTIVE,        /* requests being decoded */
    G_CACHE_BYTES,
    G_CACHE_ENTRIES,
    G_GAUGES
} metric_gauge;

typedef enum metric_histogram {
    H_TTFT,       /* seconds from arrival to the first generated token */
    H_TOKEN,      /* seconds per decode step (each stream gets one token per step) */
    H_BATCH,      /* streams per decode step */
    H_HISTOGRAMS
} metric_histogram;

void metrics_add(metric_counter c, double v);
void metrics_set(metric_gauge g, double v);
void metrics_observe(metric_histogram h, double v);

/* The Prometheus text exposition; malloc'd, NUL-terminated (NULL: out of memory). */
char *metrics_text(size_t *len);

#endif
