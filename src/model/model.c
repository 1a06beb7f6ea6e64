/* The public model/state API (include/rwkv.h): loading (the architecture is
 * detected here, once), info, states and evaluation. Every call that runs
 * the model goes through its backend table (model/model.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/machine.h"
#include "formats/formats.h"
#include "formats/hf.h"
#include "model/gpt.h"
#include "model/model.h"

/* Parameter count, bytes and storage dtype over the checkpoint's tensors
 * (the RWKV family keeps its weights as the file stores them). */
static void weights_summary(const tensor_set *set, rwkv_model_info *info) {
    dtype first = DT_COUNT;
    int mixed = 0;
    for (int i = 0; i < set->count; i++) {
        const tensor *t = &set->tensors[i];
        info->n_params += tensor_numel(t);
        info->weight_bytes += (int64_t)t->nbytes;
        if (t->ndim >= 2) {
            if (first == DT_COUNT) first = t->type;
            else if (first != t->type) mixed = 1;
        }
    }
    info->dtype = mixed ? "mixed" : dtype_name(first == DT_COUNT ? DT_F32 : first);
}

rwkv_status rwkv_model_load(const char *path, rwkv_model **out, rwkv_error *err) {
    return rwkv_model_load_ex(path, NULL, out, err);
}

/* "cpu" (gpu = -1), "cuda" (device 0) or "cuda:N"; precision "fp32", "bf16"
 * or "int8" (the GPU's; the CPU keeps the file's dtypes). */
static rwkv_status parse_device(const char *device, const char *precision, int *gpu, rwkv_error *err) {
    if (strcmp(precision, "fp32") != 0 && strcmp(precision, "bf16") != 0 && strcmp(precision, "int8") != 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "precision '%s': expected fp32, bf16 or int8", precision);
    if (strcmp(device, "cpu") == 0) {
        *gpu = -1;
        return RWKV_OK;
    }
    char *end = NULL;
    if (strcmp(device, "cuda") == 0) *gpu = 0;
    else if (strncmp(device, "cuda:", 5) == 0 && device[5] >= '0' && device[5] <= '9')
        *gpu = (int)strtol(device + 5, &end, 10);
    if (strncmp(device, "cuda", 4) != 0 || (end && *end))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "device '%s' is not available: expected cpu, cuda or cuda:N",
                         device);
    return RWKV_OK;
}

rwkv_status rwkv_model_load_ex(const char *path, const rwkv_load_options *opt, rwkv_model **out, rwkv_error *err) {
    if (!path || !out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_model_load: path and out are required");
    *out = NULL;
    const char *device = opt && opt->device ? opt->device : "cpu";
    const char *precision = opt && opt->precision ? opt->precision : "fp32";
    int gpu = -1;
    rwkv_status s = parse_device(device, precision, &gpu, err);
    if (s != RWKV_OK) return s;
    rwkv_model *m = calloc(1, sizeof *m);
    if (!m) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    s = checkpoint_read_ex(path, opt && opt->no_mmap, &m->weights, err);
    if (s != RWKV_OK) {
        free(m);
        return s;
    }
    m->n_threads = machine_cores();
    m->weights.pack_panels = opt && opt->pack_weights && gpu < 0;
    m->weights.group_rows = gpu < 0;
    int gpt = gpt_is_checkpoint(&m->weights);
    s = gpt ? model_build_gpt(m, err) : model_build_rwkv(m, err);
    m->info.arch = gpt ? RWKV_ARCH_GPT : RWKV_ARCH_RWKV;
    const cuda_matrices mats = strcmp(precision, "bf16") == 0   ? CUDA_MATRICES_BF16
                               : strcmp(precision, "int8") == 0 ? CUDA_MATRICES_INT8
                                                                 : CUDA_MATRICES_FP32;
    if (s == RWKV_OK && gpu >= 0) s = model_to_cuda(m, gpu, mats, err);
    if (s != RWKV_OK) {
        if (err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
        rwkv_model_free(m);
        return s;
    }
    m->info.format = m->weights.format;
    m->info.layout = m->weights.layout ? m->weights.layout : "official";
    m->info.device = m->backend->device;
    m->info.file_bytes = (int64_t)tensor_set_file_bytes(&m->weights);
    if (!gpt) weights_summary(&m->weights, &m->info);
    *out = m;
    return rwkv_ok(err);
}

void rwkv_model_free(rwkv_model *m) {
    if (!m) return;
    if (m->device) m->backend->device_free(m);
    if (m->impl) m->backend->impl_free(m->impl);
    tensor_set_free(&m->weights);
    free(m);
}

void rwkv_model_get_info(const rwkv_model *m, rwkv_model_info *info) { *info = m->info; }

void rwkv_model_set_threads(rwkv_model *m, int n_threads) { m->n_threads = n_threads > 0 ? n_threads : machine_cores(); }

rwkv_status rwkv_state_new(const rwkv_model *m, rwkv_state **out, rwkv_error *err) {
    if (!m || !out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_new: model and out are required");
    rwkv_state *s = calloc(1, sizeof *s);
    if (!s) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    s->model = m;
    rwkv_status st = m->backend->state_init(s, err);
    if (st != RWKV_OK) {
        free(s);
        return st;
    }
    *out = s;
    return rwkv_ok(err);
}

void rwkv_state_free(rwkv_state *s) {
    if (!s) return;
    s->model->backend->state_release(s);
    free(s);
}

void rwkv_state_reset(rwkv_state *s) {
    s->model->backend->state_reset(s);
    s->pos = 0;
}

size_t rwkv_state_pos(const rwkv_state *s) { return s->pos; }

void rwkv_state_memory(const rwkv_state *s, size_t *used, size_t *reserved) {
    size_t u, r;
    s->model->backend->state_memory(s, &u, &r);
    if (used) *used = u;
    if (reserved) *reserved = r;
}

rwkv_status rwkv_state_copy(rwkv_state *dst, const rwkv_state *src, rwkv_error *err) {
    if (!dst || !src) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_copy: dst and src are required");
    if (!src->n || !dst->n)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "rwkv_state_copy: a GPT's KV cache cannot be copied (RNN states only)");
    if (dst->n != src->n)
        return rwkv_fail(err, RWKV_ERR_ARG, "state sizes differ (%zu vs %zu floats)", dst->n, src->n);
    const float *from = rwkv_state_data((rwkv_state *)src); /* a GPU state is downloaded */
    float *to = rwkv_state_data(dst);
    if (!from || !to) return rwkv_fail(err, RWKV_ERR_IO, "rwkv_state_copy: the state could not be read from the device");
    memcpy(to, from, src->n * sizeof(float));
    dst->pos = src->pos;
    return rwkv_ok(err);
}

size_t rwkv_state_size(const rwkv_state *s) { return s->n; }
float *rwkv_state_data(rwkv_state *s) {
    return s->model->backend->state_host ? s->model->backend->state_host(s) : s->data;
}

static rwkv_status check_tokens(const rwkv_model *m, const int *tokens, size_t n, rwkv_error *err) {
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->info.n_vocab)
            return rwkv_fail(err, RWKV_ERR_ARG, "token %d at position %zu is outside the vocabulary [0, %d)",
                             tokens[i], i, m->info.n_vocab);
    return RWKV_OK;
}

rwkv_status rwkv_eval(rwkv_model *m, rwkv_state *state, int token, float *logits, rwkv_error *err) {
    return rwkv_eval_sequence(m, state, &token, 1, logits, 0, err);
}

rwkv_status rwkv_eval_sequence(rwkv_model *m, rwkv_state *state, const int *tokens, size_t n, float *logits,
                               int all_logits, rwkv_error *err) {
    if (!m || !state || (!tokens && n)) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval: null argument");
    if (state->n != m->info.state_floats || (state->seq && state->model != m) || state->model->backend != m->backend)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval: the state belongs to a model of another shape or device");
    if (n == 0) return rwkv_ok(err);
    rwkv_status s = check_tokens(m, tokens, n, err);
    if (s != RWKV_OK) return s;
    if (m->info.n_ctx && state->pos + n > (size_t)m->info.n_ctx)
        return rwkv_fail(err, RWKV_ERR_ARG,
                         "rwkv_eval: %zu more tokens after %zu would pass the model's context of %d positions", n,
                         state->pos, m->info.n_ctx);
    s = m->backend->eval(m, state, tokens, n, logits, all_logits, err);
    if (s != RWKV_OK) return s;
    state->pos += n;
    return rwkv_ok(err);
}

/* A batch's states: each of this model's shape, none twice. */
static rwkv_status check_batch_states(const rwkv_model *m, rwkv_state *const *states, size_t n, rwkv_error *err) {
    for (size_t i = 0; i < n; i++) {
        const rwkv_state *st = states[i];
        if (!st) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_batch: state %zu is NULL", i);
        if (st->n != m->info.state_floats || (st->seq && st->model != m) || st->model->backend != m->backend)
            return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_batch: state %zu belongs to a model of another shape or device",
                             i);
        if (m->info.n_ctx && st->pos + 1 > (size_t)m->info.n_ctx)
            return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_batch: state %zu is full (%d positions)", i, m->info.n_ctx);
        for (size_t j = 0; j < i; j++)
            if (states[j] == st)
                return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_batch: states %zu and %zu are the same state", j, i);
    }
    return RWKV_OK;
}

rwkv_status model_check_batch(const rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n,
                              rwkv_error *err) {
    rwkv_status s = check_tokens(m, tokens, n, err);
    return s != RWKV_OK ? s : check_batch_states(m, states, n, err);
}

rwkv_status rwkv_eval_batch(rwkv_model *m, rwkv_state *const *states, const int *tokens, size_t n, float *logits,
                            rwkv_error *err) {
    if (!m || (n && (!states || !tokens))) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_batch: null argument");
    if (n == 0) return rwkv_ok(err);
    rwkv_status s = model_check_batch(m, states, tokens, n, err);
    if (s != RWKV_OK) return s;
    if ((s = m->backend->eval_batch(m, states, tokens, n, logits, err)) != RWKV_OK) return s;
    for (size_t i = 0; i < n; i++) states[i]->pos++;
    return rwkv_ok(err);
}

float *rwkv_logits_alloc(rwkv_model *m, size_t n_rows, rwkv_error *err) {
    if (!m) {
        rwkv_fail(err, RWKV_ERR_ARG, "rwkv_logits_alloc: null model");
        return NULL;
    }
    const size_t V = (size_t)m->info.n_vocab;
    if (n_rows == 0 || n_rows > SIZE_MAX / sizeof(float) / V) {
        rwkv_fail(err, RWKV_ERR_ARG, "rwkv_logits_alloc: %zu rows of %zu logits", n_rows, V);
        return NULL;
    }
    const size_t bytes = n_rows * V * sizeof(float);
    float *p = m->backend->host_alloc ? m->backend->host_alloc(bytes) : malloc(bytes);
    if (!p) rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu rows of logits (%.1f MiB)", n_rows,
                      (double)bytes / (1 << 20));
    return p;
}

void rwkv_logits_free(rwkv_model *m, float *logits) {
    if (!m || !logits) return;
    if (m->backend->host_free) m->backend->host_free(logits);
    else free(logits);
}

rwkv_status model_forward(rwkv_model *m, const int *tokens, size_t n, float *logits, rwkv_error *err) {
    if (!m->backend->forward)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "this model has no bounded-context forward (an RWKV model)");
    if (!tokens || !logits) return rwkv_fail(err, RWKV_ERR_ARG, "model_forward: null argument");
    if (n < 1 || n > (size_t)m->info.n_ctx)
        return rwkv_fail(err, RWKV_ERR_ARG, "%zu tokens in one forward; the model takes 1 to %d", n, m->info.n_ctx);
    rwkv_status s = check_tokens(m, tokens, n, err);
    return s == RWKV_OK ? m->backend->forward(m, tokens, n, logits, err) : s;
}

/* The dtype the writers take for a public rwkv_dtype (DT_COUNT: keep). */
static rwkv_status output_dtype(rwkv_dtype req, dtype *out, rwkv_error *err) {
    static const dtype map[] = {[RWKV_DTYPE_KEEP] = DT_COUNT, [RWKV_DTYPE_F32] = DT_F32,
                                [RWKV_DTYPE_F16] = DT_F16, [RWKV_DTYPE_BF16] = DT_BF16};
    if ((unsigned)req > RWKV_DTYPE_BF16) return rwkv_fail(err, RWKV_ERR_ARG, "unknown output dtype");
    *out = map[req];
    return RWKV_OK;
}

rwkv_status rwkv_convert_to_safetensors(const char *in_path, const char *out_path, rwkv_dtype dtype_req,
                                        rwkv_error *err) {
    dtype to = DT_COUNT;
    rwkv_status s = output_dtype(dtype_req, &to, err);
    if (s == RWKV_OK) s = rwkv_check_output(out_path, &in_path, 1, err);
    if (s != RWKV_OK) return s;
    /* Loading the model validates the checkpoint before anything is written. */
    rwkv_model *m;
    s = rwkv_model_load(in_path, &m, err);
    if (s != RWKV_OK) return s;
    s = safetensors_write(out_path, m->weights.tensors, m->weights.count, to, err);
    rwkv_model_free(m);
    return s == RWKV_OK ? rwkv_ok(err) : s;
}

/* The folder itself (converting a transformers folder into itself) and the
 * two files the folder writer replaces must not be the input. */
static rwkv_status check_hf_outputs(const char *in_path, const char *out_dir, rwkv_error *err) {
    static const char *const names[] = {"config.json", "model.safetensors"};
    rwkv_status s = rwkv_check_output(out_dir, &in_path, 1, err);
    for (size_t i = 0; s == RWKV_OK && i < sizeof names / sizeof names[0]; i++) {
        char path[FS_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", out_dir, names[i]);
        s = rwkv_check_output(path, &in_path, 1, err);
    }
    return s;
}

rwkv_status rwkv_convert_to_hf(const char *in_path, const char *out_dir, rwkv_dtype dtype_req, rwkv_error *err) {
    dtype to = DT_COUNT;
    rwkv_status s = output_dtype(dtype_req, &to, err);
    if (s == RWKV_OK) s = check_hf_outputs(in_path, out_dir, err);
    if (s != RWKV_OK) return s;
    rwkv_model *m;
    s = rwkv_model_load(in_path, &m, err);
    if (s != RWKV_OK) return s;
    if (m->info.arch != RWKV_ARCH_RWKV || strcmp(m->info.version, "4") != 0)
        s = rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                      "%s: is %s%s; transformers' RwkvForCausalLM layout holds RWKV-4 models only", in_path,
                      m->info.arch == RWKV_ARCH_RWKV ? "RWKV-" : "the ",
                      m->info.arch == RWKV_ARCH_RWKV ? m->info.version : "GPT baseline");
    else
        s = hf_folder_write(out_dir, &m->weights, to, err);
    rwkv_model_free(m);
    return s == RWKV_OK ? rwkv_ok(err) : s;
}
