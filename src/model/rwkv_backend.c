/* The CPU backend of the RWKV family (model/model.h): a state is the
 * recurrent state's floats, evaluation is the chunked forward of
 * model/common.c over the version's block. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/common.h"

static rwkv_status state_init(rwkv_state *st, rwkv_error *err) {
    const rwkv_model *m = st->model;
    st->n = m->info.state_floats;
    if (!(st->data = malloc(st->n * sizeof(float)))) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    common_state_init(m, st->data);
    return RWKV_OK;
}

static void state_reset(rwkv_state *st) { common_state_init(st->model, st->data); }

static void state_release(rwkv_state *st) { free(st->data); }

static void state_memory(const rwkv_state *st, size_t *used, size_t *reserved) {
    *used = *reserved = st->n * sizeof(float);
}

static rwkv_status eval(rwkv_model *m, rwkv_state *st, const int *tokens, size_t n, float *logits, int all_logits,
                        rwkv_error *err) {
    return common_eval(m, st->data, tokens, n, logits, all_logits, err);
}

static rwkv_status eval_batch(rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n, float *logits,
                              rwkv_error *err) {
    float **data = malloc(n * sizeof *data);
    if (!data) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for a batch of %zu", n);
    for (size_t i = 0; i < n; i++) data[i] = states[i]->data;
    rwkv_status s = common_eval_batch(m, data, tokens, n, logits, err);
    free(data);
    return s;
}

const model_backend rwkv_cpu_backend = {
    .device = "cpu",
    .state_init = state_init,
    .state_reset = state_reset,
    .state_release = state_release,
    .state_memory = state_memory,
    .eval = eval,
    .eval_batch = eval_batch,
    .forward = NULL, /* unbounded context: scoring carries the state instead */
    .impl_free = common_free,
};
