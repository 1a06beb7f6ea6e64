/* Prometheus metrics of `rwkv serve` (serve/metrics.h). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "metrics.h"

#define MAX_BUCKETS 12

typedef struct named {
    const char *name, *help;
} named;

static const named counter_names[M_COUNTERS] = {
    {"rwkv_requests_total", "HTTP requests received"},
    {"rwkv_request_errors_total", "HTTP requests answered with a 4xx or 5xx status"},
    {"rwkv_completions_total", "generations finished"},
    {"rwkv_cancelled_total", "generations stopped by a client disconnect or the request timeout"},
    {"rwkv_prompt_tokens_total", "prompt tokens of finished generations"},
    {"rwkv_prompt_tokens_cached_total", "prompt tokens restored from the state cache instead of fed"},
    {"rwkv_generated_tokens_total", "tokens generated"},
    {"rwkv_state_cache_hits_total", "requests that started from a cached state"},
    {"rwkv_state_cache_misses_total", "requests that found no cached prefix"},
    {"rwkv_decode_steps_total", "batched decode steps"},
};
static const named gauge_names[G_GAUGES] = {
    {"rwkv_queue_depth", "requests waiting for a decode slot"},
    {"rwkv_active_requests", "requests being decoded"},
    {"rwkv_state_cache_bytes", "bytes held by the state cache"},
    {"rwkv_state_cache_entries", "states held by the state cache"},
};

typedef struct histogram {
    named n;
    double bounds[MAX_BUCKETS];
    int n_bounds;
    unsigned long long counts[MAX_BUCKETS + 1];
    double sum;
    unsigned long long total;
} histogram;

static struct {
    pthread_mutex_t mu;
    double counters[M_COUNTERS], gauges[G_GAUGES];
    histogram h[H_HISTOGRAMS];
} M = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .h = {
        {{"rwkv_time_to_first_token_seconds", "seconds from a request's arrival to its first generated token"},
         {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}, 12, {0}, 0, 0},
        {{"rwkv_decode_step_seconds", "seconds per batched decode step (one token for every active stream)"},
         {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}, 12, {0}, 0, 0},
        {{"rwkv_decode_batch_size", "streams decoded together in one step"},
         {1, 2, 4, 8, 16, 32, 64, 128, 256}, 9, {0}, 0, 0},
    },
};

void metrics_add(metric_counter c, double v) {
    pthread_mutex_lock(&M.mu);
    M.counters[c] += v;
    pthread_mutex_unlock(&M.mu);
}

void metrics_set(metric_gauge g, double v) {
    pthread_mutex_lock(&M.mu);
    M.gauges[g] = v;
    pthread_mutex_unlock(&M.mu);
}

void metrics_observe(metric_histogram which, double v) {
    pthread_mutex_lock(&M.mu);
    histogram *h = &M.h[which];
    int b = 0;
    while (b < h->n_bounds && v > h->bounds[b]) b++;
    h->counts[b]++;
    h->sum += v;
    h->total++;
    pthread_mutex_unlock(&M.mu);
}

typedef struct text {
    char *p;
    size_t n, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
    for (int attempt = 0; attempt < 2 && !t->failed; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < t->cap - t->n) {
            t->n += (size_t)k;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)(k > 0 ? k : 0);
        char *p = realloc(t->p, cap);
        if (!p) break;
        t->p = p;
        t->cap = cap;
    }
    t->failed = 1;
}

char *metrics_text(size_t *len) {
    text t = {malloc(4096), 0, 4096, 0};
    if (!t.p) return NULL;
    pthread_mutex_lock(&M.mu);
    for (int i = 0; i < M_COUNTERS; i++)
        put(&t, "# HELP %s %s\n# TYPE %s counter\n%s %.17g\n", counter_names[i].name, counter_names[i].help,
            counter_names[i].name, counter_names[i].name, M.counters[i]);
    for (int i = 0; i < G_GAUGES; i++)
        put(&t, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", gauge_names[i].name, gauge_names[i].help,
            gauge_names[i].name, gauge_names[i].name, M.gauges[i]);
    for (int i = 0; i < H_HISTOGRAMS; i++) {
        const histogram *h = &M.h[i];
        put(&t, "# HELP %s %s\n# TYPE %s histogram\n", h->n.name, h->n.help, h->n.name);
        unsigned long long cum = 0;
        for (int b = 0; b < h->n_bounds; b++) {
            cum += h->counts[b];
            put(&t, "%s_bucket{le=\"%g\"} %llu\n", h->n.name, h->bounds[b], cum);
        }
        put(&t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.17g\n%s_count %llu\n", h->n.name, h->total, h->n.name, h->sum,
            h->n.name, h->total);
    }
    pthread_mutex_unlock(&M.mu);
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    *len = t.n;
    return t.p;
}
