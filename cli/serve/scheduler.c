/* The continuous-batching scheduler of `rwkv serve` (serve/scheduler.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "scheduler.h"
#include "state_cache.h"

#define PREFILL_CHUNK 256

typedef struct slot {
    job *j;               /* NULL: free */
    rwkv_state *st;
    rwkv_sampler *smp;
    rwkv_token_stream *ts;
    size_t fed;           /* prompt tokens in the state (restored or fed) */
    int *seq;             /* every token in the state: the cache key */
    size_t n_seq, cap_seq;
    int next;             /* the reply token the next step feeds */
    int decoding;         /* the whole prompt is in the state */
    int at_stop;          /* the reply ended at a stop string */
    long generated;
    char *raw;            /* the reply's bytes; raw[0..published) went to the job */
    size_t raw_len, raw_cap, published;
} slot;

struct scheduler {
    scheduler_config cfg;
    int n_vocab, n_sample, n_ctx, eos;
    slot *slots;
    state_cache *cache;
    pthread_t thread;
    pthread_mutex_t mu; /* guards the queue and `stopping` */
    pthread_cond_t cv;
    job **queue;
    int q_head, q_len, stopping;
    /* one step's batch: the rows' states and tokens, their draws and the
     * tokens drawn (rwkv_eval_batch_sample: on a GPU the logits stay there) */
    rwkv_state **b_states;
    int *b_tokens, *b_slot, *b_next;
    rwkv_draw *b_draws;
    unsigned char *b_failed; /* the row's draw could not be prepared (out of memory) */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int seq_push(slot *sl, const int *tokens, size_t n) {
    if (n == 0) return 0;
    if (grow((void **)&sl->seq, &sl->cap_seq, sl->n_seq + n, sizeof(int)) != 0) return -1;
    memcpy(sl->seq + sl->n_seq, tokens, n * sizeof(int));
    sl->n_seq += n;
    return 0;
}

/* ---- the reply text and stop strings ----------------------------------------- */

/* Where the first stop string starts in raw (SIZE_MAX: none). Only a match
 * that ends past `old` (the length before the newest bytes) is new. */
static size_t find_stop(const job *j, const char *raw, size_t len, size_t old) {
    size_t best = SIZE_MAX;
    for (int k = 0; k < j->n_stops; k++) {
        size_t m = strlen(j->stops[k]);
        for (size_t i = old >= m ? old - m + 1 : 0; m && i + m <= len && i < best; i++)
            if (memcmp(raw + i, j->stops[k], m) == 0) best = i;
    }
    return best;
}

/* Bytes at the end of raw that may still grow into a stop string. */
static size_t held_back(const job *j, const char *raw, size_t len) {
    size_t hold = 0;
    for (int k = 0; k < j->n_stops; k++) {
        size_t m = strlen(j->stops[k]);
        for (size_t h = m - 1; h > hold; h--)
            if (h <= len && memcmp(raw + len - h, j->stops[k], h) == 0) {
                hold = h;
                break;
            }
    }
    return hold;
}

/* Adds reply bytes and publishes what can no longer be part of a stop
 * string. Returns 1 when a stop string was completed (published up to it). */
static int reply_bytes(slot *sl, const char *p, size_t n) {
    if (grow((void **)&sl->raw, &sl->raw_cap, sl->raw_len + n + 1, 1) != 0) return -1;
    memcpy(sl->raw + sl->raw_len, p, n);
    size_t old = sl->raw_len;
    sl->raw_len += n;
    size_t stop = find_stop(sl->j, sl->raw, sl->raw_len, old);
    size_t upto = stop != SIZE_MAX ? stop : sl->raw_len - held_back(sl->j, sl->raw, sl->raw_len);
    if (upto > sl->published) {
        job_append(sl->j, sl->raw + sl->published, upto - sl->published);
        sl->published = upto;
    }
    return stop != SIZE_MAX;
}

/* ---- slots -------------------------------------------------------------------- */

/* Ends the slot's job: the rest of the reply (unless it ended at a stop
 * string), the state cached under every token it holds, the counters. */
static void finish(scheduler *s, slot *sl, const char *reason, int status, const char *error) {
    job *j = sl->j;
    if (reason && !sl->at_stop) {
        const char *tail;
        size_t n;
        rwkv_token_stream_flush(sl->ts, &tail, &n);
        if (reply_bytes(sl, tail, n) == 0 && sl->raw_len > sl->published)
            job_append(j, sl->raw + sl->published, sl->raw_len - sl->published);
    }
    if (s->cache && sl->decoding && !status) state_cache_put(s->cache, sl->seq, sl->n_seq, sl->st);
    pthread_mutex_lock(&j->mu);
    j->completion_tokens = (size_t)sl->generated;
    pthread_mutex_unlock(&j->mu);
    job_finish(j, reason, status, error);
    metrics_add(atomic_load(&j->cancelled) || status == 504 ? M_CANCELLED : M_COMPLETIONS, 1);
    metrics_add(M_PROMPT_TOKENS, (double)j->n_prompt);
    metrics_add(M_GENERATED_TOKENS, (double)sl->generated);
    job_release(j);
    rwkv_sampler_free(sl->smp);
    rwkv_token_stream_free(sl->ts);
    sl->smp = NULL;
    sl->ts = NULL;
    sl->j = NULL;
}

/* A queued job takes a free slot: the cached prefix restored, a sampler
 * and a text stream made. */
static void start(scheduler *s, slot *sl, job *j) {
    rwkv_error err;
    sl->j = j;
    sl->fed = sl->n_seq = sl->raw_len = sl->published = 0;
    sl->generated = 0;
    sl->decoding = sl->at_stop = 0;
    rwkv_state_reset(sl->st);
    size_t cached = s->cache ? state_cache_get(s->cache, j->prompt, j->n_prompt, j->n_prompt - 1, sl->st) : 0;
    if (s->cache) metrics_add(cached ? M_CACHE_HITS : M_CACHE_MISSES, 1);
    metrics_add(M_CACHED_TOKENS, (double)cached);
    pthread_mutex_lock(&j->mu);
    j->cached_tokens = cached;
    pthread_mutex_unlock(&j->mu);
    sl->fed = cached;
    if (seq_push(sl, j->prompt, cached) != 0 || rwkv_sampler_new(&j->sampling, j->seed, &sl->smp, &err) != RWKV_OK ||
        rwkv_token_stream_new(s->cfg.tok, RWKV_STREAM_REPLACE, &sl->ts, &err) != RWKV_OK)
        finish(s, sl, NULL, 500, "out of memory starting the generation");
}

/* One sequence-mode chunk of a prompt that has two or more tokens to feed
 * before its last one (never leaving exactly one: see scheduler.h). */
static void prefill_chunk(scheduler *s, slot *sl) {
    const job *j = sl->j;
    if (sl->decoding || j->n_prompt - sl->fed < 3) return;
    size_t left = j->n_prompt - 1 - sl->fed;
    size_t len = left < PREFILL_CHUNK ? left : PREFILL_CHUNK;
    if (left - len == 1) len--;
    rwkv_error err = {.message = "out of memory"};
    if (rwkv_eval_sequence(s->cfg.model, sl->st, j->prompt + sl->fed, len, NULL, 0, &err) != RWKV_OK ||
        seq_push(sl, j->prompt + sl->fed, len) != 0) {
        finish(s, sl, NULL, 500, err.message);
        return;
    }
    sl->fed += len;
}

/* Whether this step's row of the slot yields a reply token: the row of a
 * decoding slot or of the prompt's last token, below the length limit
 * (next_token's order of checks). */
static int row_yields(const slot *sl) {
    const job *j = sl->j;
    return (sl->decoding || sl->fed + 1 >= j->n_prompt) && sl->generated < j->max_tokens;
}

/* The row's draw: the slot's sampler's rule, bans, penalties and number
 * where the row yields a token (the same token rwkv_sampler_sample would
 * draw from the row's logits), else greedy, which takes no number. -1 when
 * out of memory. */
static int row_draw(const scheduler *s, slot *sl, rwkv_draw *d) {
    memset(d, 0, sizeof *d);
    d->top_p = 1.0;
    if (!row_yields(sl)) return 0;
    if (rwkv_sampler_draw(sl->smp, s->n_vocab, d, NULL) != RWKV_OK) return -1;
    d->n_ids = s->n_sample;
    return 0;
}

/* The drawn reply token t and what it ends: NULL (go on), or the finish
 * reason; a failure sets *status and *error. */
static const char *next_token(scheduler *s, slot *sl, int t, int *status, const char **error) {
    job *j = sl->j;
    if (sl->generated >= j->max_tokens) return "length";
    if (t < 0) {
        *status = 500;
        *error = "no token can be sampled (the logits are not finite)";
        return NULL;
    }
    if (j->stop_at_eos && t == s->eos) return "stop";
    const char *piece;
    size_t n;
    if (rwkv_sampler_accept(sl->smp, t, NULL, 0, NULL) != RWKV_OK ||
        rwkv_token_stream_push(sl->ts, t, &piece, &n, NULL) != RWKV_OK) {
        *status = 500;
        *error = "out of memory";
        return NULL;
    }
    sl->generated++;
    int stop = reply_bytes(sl, piece, n);
    if (stop < 0) {
        *status = 500;
        *error = "out of memory for the reply";
        return NULL;
    }
    sl->at_stop = stop;
    if (stop) return "stop";
    if (sl->generated >= j->max_tokens) return "length";
    if (s->n_ctx && rwkv_state_pos(sl->st) >= (size_t)s->n_ctx) return "length";
    sl->next = t;
    return NULL;
}

/* Handles the slot's drawn reply token: end of text, stop strings, the
 * length limit, the GPT's context. */
static void take_token(scheduler *s, slot *sl, int t) {
    if (sl->generated == 0) metrics_observe(H_TTFT, now_s() - sl->j->t_arrival);
    int status = 0;
    const char *error = NULL;
    const char *reason = next_token(s, sl, t, &status, &error);
    if (reason || status) finish(s, sl, reason, status, error);
}

/* ---- the loop ----------------------------------------------------------------- */

static int n_active(const scheduler *s) {
    int n = 0;
    for (int i = 0; i < s->cfg.parallel; i++) n += s->slots[i].j != NULL;
    return n;
}

/* Waits for work, then moves queued jobs into free slots. 0 when stopping. */
static int admit(scheduler *s) {
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && s->q_len == 0 && n_active(s) == 0) pthread_cond_wait(&s->cv, &s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    for (int i = 0; i < s->cfg.parallel && s->q_len > 0; i++) {
        if (s->slots[i].j) continue;
        job *j = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % s->cfg.max_queue;
        s->q_len--;
        start(s, &s->slots[i], j);
    }
    metrics_set(G_QUEUE_DEPTH, s->q_len);
    pthread_mutex_unlock(&s->mu);
    return 1;
}

/* The slot's row of this step: its next reply token, or a prompt token
 * (the last one's logits start the reply). 0: not in this step. */
static int row_token(const slot *sl, int *token) {
    const job *j = sl->j;
    if (sl->decoding) {
        *token = sl->next;
        return 1;
    }
    if (j->n_prompt - sl->fed > 2) return 0; /* prefill_chunk's part */
    *token = j->prompt[sl->fed];
    return 1;
}

static void step(scheduler *s) {
    const double t0 = now_s();
    int n = 0;
    for (int i = 0; i < s->cfg.parallel; i++) {
        slot *sl = &s->slots[i];
        if (!sl->j) continue;
        if (atomic_load(&sl->j->cancelled)) finish(s, sl, NULL, 499, "the client disconnected");
        else if (sl->j->deadline > 0 && t0 > sl->j->deadline) finish(s, sl, NULL, 504, "the request timed out");
        else prefill_chunk(s, sl);
        if (sl->j && row_token(sl, &s->b_tokens[n])) {
            s->b_states[n] = sl->st;
            s->b_failed[n] = row_draw(s, sl, &s->b_draws[n]) != 0;
            s->b_slot[n++] = i;
        }
    }
    if (n == 0) return;
    rwkv_error err;
    rwkv_status st =
        rwkv_eval_batch_sample(s->cfg.model, s->b_states, s->b_tokens, (size_t)n, s->b_draws, s->b_next, &err);
    for (int r = 0; r < n; r++) {
        slot *sl = &s->slots[s->b_slot[r]];
        if (st != RWKV_OK) {
            finish(s, sl, NULL, 500, err.message);
            continue;
        }
        if (s->b_failed[r] || seq_push(sl, &s->b_tokens[r], 1) != 0) {
            finish(s, sl, NULL, 500, "out of memory");
            continue;
        }
        if (!sl->decoding && ++sl->fed < sl->j->n_prompt) continue;
        if (!sl->decoding && s->cache) state_cache_put(s->cache, sl->seq, sl->n_seq, sl->st);
        sl->decoding = 1;
        take_token(s, sl, s->b_next[r]);
    }
    metrics_add(M_DECODE_STEPS, 1);
    metrics_observe(H_TOKEN, now_s() - t0);
    metrics_observe(H_BATCH, n);
}

static void *run(void *arg) {
    scheduler *s = arg;
    while (admit(s)) {
        step(s);
        metrics_set(G_ACTIVE, n_active(s));
        if (s->cache) {
            metrics_set(G_CACHE_BYTES, (double)state_cache_bytes(s->cache));
            metrics_set(G_CACHE_ENTRIES, (double)state_cache_entries(s->cache));
        }
    }
    for (int i = 0; i < s->cfg.parallel; i++)
        if (s->slots[i].j) finish(s, &s->slots[i], NULL, 503, "the server is shutting down");
    return NULL;
}

/* ---- life cycle --------------------------------------------------------------- */

static void free_all(scheduler *s) {
    for (int i = 0; s->slots && i < s->cfg.parallel; i++) {
        rwkv_state_free(s->slots[i].st);
        free(s->slots[i].seq);
        free(s->slots[i].raw);
    }
    free(s->slots);
    state_cache_free(s->cache);
    free(s->queue);
    free(s->b_states);
    free(s->b_tokens);
    free(s->b_slot);
    free(s->b_next);
    free(s->b_draws);
    free(s->b_failed);
    free(s);
}

rwkv_status scheduler_start(const scheduler_config *cfg, scheduler **out, rwkv_error *err) {
    scheduler *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->cfg = *cfg;
    rwkv_model_info info;
    rwkv_model_get_info(cfg->model, &info);
    int tv = rwkv_tokenizer_vocab_size(cfg->tok);
    s->n_vocab = info.n_vocab;
    s->n_sample = tv > 0 && tv < info.n_vocab ? tv : info.n_vocab;
    s->n_ctx = info.n_ctx;
    s->eos = rwkv_tokenizer_eos(cfg->tok);
    const int P = cfg->parallel;
    s->slots = calloc((size_t)P, sizeof *s->slots);
    s->queue = calloc((size_t)cfg->max_queue, sizeof *s->queue);
    s->b_states = calloc((size_t)P, sizeof *s->b_states);
    s->b_tokens = calloc((size_t)P, sizeof *s->b_tokens);
    s->b_slot = calloc((size_t)P, sizeof *s->b_slot);
    s->b_next = calloc((size_t)P, sizeof *s->b_next);
    s->b_draws = calloc((size_t)P, sizeof *s->b_draws);
    s->b_failed = calloc((size_t)P, 1);
    if (!s->slots || !s->queue || !s->b_states || !s->b_tokens || !s->b_slot || !s->b_next || !s->b_draws ||
        !s->b_failed)
        goto oom;
    for (int i = 0; i < P; i++)
        if (rwkv_state_new(cfg->model, &s->slots[i].st, err) != RWKV_OK) goto fail;
    /* the GPT's KV cache cannot be copied: no state cache */
    if (cfg->cache_bytes && info.state_floats && !(s->cache = state_cache_new(cfg->model, cfg->cache_bytes))) goto oom;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        snprintf(err->message, sizeof err->message, "cannot start the scheduler thread");
        err->code = RWKV_ERR_NOMEM;
        goto fail;
    }
    *out = s;
    return RWKV_OK;
oom:
    snprintf(err->message, sizeof err->message, "out of memory for %d decode slots", cfg->parallel);
    err->code = RWKV_ERR_NOMEM;
fail:
    if (s) free_all(s);
    return err->code;
}

int scheduler_submit(scheduler *s, job *j) {
    pthread_mutex_lock(&s->mu);
    int ok = !s->stopping && s->q_len < s->cfg.max_queue;
    if (ok) {
        job_retain(j);
        s->queue[(s->q_head + s->q_len) % s->cfg.max_queue] = j;
        s->q_len++;
        metrics_set(G_QUEUE_DEPTH, s->q_len);
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
}

void scheduler_stop(scheduler *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    for (; s->q_len > 0; s->q_len--, s->q_head = (s->q_head + 1) % s->cfg.max_queue) {
        job *j = s->queue[s->q_head];
        job_finish(j, NULL, 503, "the server is shutting down");
        job_release(j);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free_all(s);
}
