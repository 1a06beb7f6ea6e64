/* rwkv_eval_batch_sample (include/rwkv_sample.h): a batched decode whose
 * rows are drawn into next tokens, on the device where the backend can
 * (model_backend.eval_batch_draw), else on the host by kernels/draw.c, the
 * sampler's own code. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/draw.h"
#include "model/model.h"

static rwkv_status check_draw(const rwkv_draw *d, size_t row, rwkv_error *err) {
    if (!(d->temperature >= 0) || !isfinite(d->temperature))
        return rwkv_fail(err, RWKV_ERR_ARG,
                         "rwkv_eval_batch_sample: row %zu: temperature %g is not a finite number >= 0", row,
                         d->temperature);
    if (!(d->top_p >= 0 && d->top_p <= 1))
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_batch_sample: row %zu: top_p %g is outside [0, 1]", row,
                         d->top_p);
    if (d->top_k < 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_batch_sample: row %zu: top_k %d is negative", row, d->top_k);
    if (!(d->uniform >= 0 && d->uniform < 1))
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_batch_sample: row %zu: uniform %g is outside [0, 1)", row,
                         d->uniform);
    if (d->n_ids < 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_batch_sample: row %zu: n_ids %d is negative", row, d->n_ids);
    if (d->n_bias && (!d->bias_ids || !d->bias))
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_batch_sample: row %zu: %zu biases but a NULL list", row,
                         d->n_bias);
    return RWKV_OK;
}

/* Row i's token from its logits (clobbered). */
static int draw_row(const rwkv_draw *d, draw_work *w, float *logits, int V) {
    if (d->n_ids > 0 && d->n_ids < V) V = d->n_ids;
    draw_apply_bias(logits, V, d->bias_ids, d->bias, d->n_bias);
    const draw_rule rule = {d->temperature, d->top_p, d->top_k};
    int greedy;
    draw_mass mass;
    if (draw_distribution(&rule, w, logits, V, &greedy, &mass)) return -1;
    return greedy >= 0 ? greedy : draw_pick(logits, V, d->uniform, &mass);
}

/* The rows' draws, a chunk of consecutive rows per parallel_for chunk, each
 * chunk with its own sort scratch; a failed allocation marks its rows -2. */
typedef struct draw_job {
    const rwkv_draw *draws;
    float *logits;
    int *next;
    int V, rows_per_chunk;
    size_t n;
} draw_job;

static void draw_chunk(void *ctx, int chunk) {
    const draw_job *j = ctx;
    const size_t r0 = (size_t)chunk * j->rows_per_chunk;
    const size_t r1 = r0 + j->rows_per_chunk < j->n ? r0 + j->rows_per_chunk : j->n;
    draw_work w = {0};
    const int ok = draw_work_reserve(&w, (size_t)j->V) == 0;
    for (size_t i = r0; i < r1; i++)
        j->next[i] = ok ? draw_row(&j->draws[i], &w, j->logits + i * (size_t)j->V, j->V) : -2;
    draw_work_free(&w);
}

rwkv_status model_eval_batch_draw_host(rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n,
                                       const rwkv_draw *draws, int *next, rwkv_error *err) {
    const int V = m->info.n_vocab;
    /* plain memory: page-locked memory costs more to allocate per call than it saves a GPU's copy */
    float *logits = n <= SIZE_MAX / sizeof(float) / (size_t)V ? malloc(n * (size_t)V * sizeof(float)) : NULL;
    if (!logits) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu rows of logits", n);
    rwkv_status s = m->backend->eval_batch(m, states, tokens, n, logits, err);
    if (s == RWKV_OK) {
        /* a row is about a millisecond at V = 65536 (a softmax, a partial sort): rows in parallel */
        const int chunks = n < (size_t)m->n_threads ? (int)n : m->n_threads;
        const draw_job j = {draws, logits, next, V, (int)((n + chunks - 1) / chunks), n};
        parallel_for(m->n_threads, chunks, draw_chunk, (void *)&j);
        for (size_t i = 0; i < n && s == RWKV_OK; i++)
            if (next[i] == -2) s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for the draw of %d logits", V);
    }
    free(logits);
    return s;
}

rwkv_status rwkv_eval_batch_sample(rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n,
                                   const rwkv_draw *draws, int *next, rwkv_error *err) {
    if (!m || (n && (!states || !tokens || !draws || !next)))
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_batch_sample: null argument");
    if (n == 0) return rwkv_ok(err);
    rwkv_status s = model_check_batch(m, states, tokens, n, err);
    for (size_t i = 0; i < n && s == RWKV_OK; i++) s = check_draw(&draws[i], i, err);
    if (s != RWKV_OK) return s;
    s = m->backend->eval_batch_draw ? m->backend->eval_batch_draw(m, states, tokens, n, draws, next, err)
                                    : model_eval_batch_draw_host(m, states, tokens, n, draws, next, err);
    if (s != RWKV_OK) return s;
    for (size_t i = 0; i < n; i++) states[i]->pos++;
    return rwkv_ok(err);
}
