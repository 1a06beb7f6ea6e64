/* The public model/state API: loading, info, states and evaluation, shared
 * by every RWKV version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats.h"
#include "model/common.h"
#include "model/gpt.h"

#ifdef _OPENMP
#include <omp.h>
#endif

const tensor *model_tensor(const tensor_set *set, const char *name, rwkv_error *err) {
    const tensor *t = tensor_set_find(set, name);
    if (!t) rwkv_fail(err, RWKV_ERR_SHAPE, "missing tensor '%s'", name);
    else if (!dtype_is_float(t->type) && !dtype_is_block(t->type)) {
        rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' has dtype %s, expected a float type", name, dtype_name(t->type));
        return NULL;
    }
    return t;
}

float *model_vector(tensor_set *set, const char *name, int64_t n, rwkv_error *err) {
    const tensor *t = model_tensor(set, name, err);
    if (!t) return NULL;
    if (tensor_numel(t) != n) {
        char sb[96];
        shape_format(t->ndim, t->shape, sb, sizeof sb);
        rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' has shape %s, expected %lld elements", name, sb, (long long)n);
        return NULL;
    }
    float *out = tensor_set_alloc(set, (size_t)n * sizeof(float));
    if (!out) {
        rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    dtype_to_f32(t->type, t->data, out, (size_t)n);
    return out;
}

rwkv_status model_matrix(const tensor_set *set, const char *name, int64_t rows, int64_t cols, matrix *out,
                         rwkv_error *err) {
    const tensor *t = model_tensor(set, name, err);
    if (!t) return err ? err->code : RWKV_ERR_SHAPE;
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        char sb[96];
        shape_format(t->ndim, t->shape, sb, sizeof sb);
        return rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' has shape %s, expected [%lld, %lld]", name, sb,
                         (long long)rows, (long long)cols);
    }
    if (dtype_is_block(t->type) && cols % (int64_t)dtype_block_elems(t->type))
        return rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s': %s rows must be a multiple of %zu", name,
                         dtype_name(t->type), dtype_block_elems(t->type));
    out->type = t->type;
    out->rows = (int)rows;
    out->cols = (int)cols;
    out->data = t->data;
    return RWKV_OK;
}

int model_layer_count(const tensor_set *set) {
    int L = 0;
    for (int i = 0; i < set->count; i++) {
        int idx;
        if (sscanf(set->tensors[i].name, "blocks.%d.", &idx) == 1 && idx >= 0 && idx < 4096 && idx + 1 > L)
            L = idx + 1;
    }
    return L;
}

rwkv_status model_lora(tensor_set *set, const char *name, int count, int64_t in, int64_t out, matrix *outm,
                       rwkv_error *err) {
    const tensor *t = model_tensor(set, name, err);
    if (!t) return err ? err->code : RWKV_ERR_SHAPE;
    int shape_ok = count == 1 ? t->ndim == 2 && t->shape[0] == in && t->shape[1] == out
                              : t->ndim == 3 && t->shape[0] == count && t->shape[1] == in && t->shape[2] == out;
    if (!shape_ok || in < 1 || out < 1 || in > (1 << 20) || out > (1 << 20)) {
        char sb[96];
        shape_format(t->ndim, t->shape, sb, sizeof sb);
        if (count == 1)
            return rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' has shape %s, expected [%lld, %lld]", name, sb,
                             (long long)in, (long long)out);
        return rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' has shape %s, expected [%d, %lld, %lld]", name, sb, count,
                         (long long)in, (long long)out);
    }
    size_t per = (size_t)in * (size_t)out;
    float *tmp = malloc(per * (size_t)count * sizeof(float));
    float *dst = tensor_set_alloc(set, per * (size_t)count * sizeof(float));
    if (!tmp || !dst) {
        free(tmp);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    dtype_to_f32(t->type, t->data, tmp, per * (size_t)count);
    for (int c = 0; c < count; c++) {
        const float *src = tmp + (size_t)c * per;
        float *d = dst + (size_t)c * per;
        for (int64_t i = 0; i < in; i++)
            for (int64_t o = 0; o < out; o++) d[o * in + i] = src[i * out + o];
        outm[c].type = DT_F32;
        outm[c].rows = (int)out;
        outm[c].cols = (int)in;
        outm[c].data = d;
    }
    free(tmp);
    return RWKV_OK;
}

/* docs §4.6, on layer 0's keys; the shape of att.time_decay separates 5.2
 * (one decay per channel: [H, N]) from 5.0/5.1 (one per head: [H]). */
const char *model_detect_version(const tensor_set *set) {
    if (tensor_set_find(set, "blocks.0.att.r_k") || tensor_set_find(set, "blocks.0.att.x_r") ||
        tensor_set_find(set, "blocks.0.att.x_rwkvag"))
        return "7";
    if (tensor_set_find(set, "blocks.0.att.time_maa_x")) return "6";
    if (tensor_set_find(set, "blocks.0.att.ln_x.weight")) {
        const tensor *d = tensor_set_find(set, "blocks.0.att.time_decay");
        if (d && d->ndim >= 2 && d->shape[1] > 1) return "5.2";
        return tensor_set_find(set, "blocks.0.att.gate.weight") ? "5.1" : "5.0";
    }
    return "4";
}

float model_group_norm_eps(const char *format, const char *version) {
    if (format && strcmp(format, "rwkv.cpp") == 0 && version && version[0] == '5') return 1e-5f;
    return 64e-5f;
}

static int default_threads(void) {
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

rwkv_status rwkv_model_load(const char *path, rwkv_model **out, rwkv_error *err) {
    if (!path || !out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_model_load: path and out are required");
    *out = NULL;
    rwkv_model *m = calloc(1, sizeof *m);
    if (!m) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    rwkv_status s = checkpoint_read(path, &m->weights, err);
    if (s != RWKV_OK) {
        free(m);
        return s;
    }
    m->n_threads = default_threads();
    if (gpt_is_checkpoint(&m->weights)) {
        s = rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                      "%s: this is a GPT baseline checkpoint (rwkv train --arch gpt), not an RWKV model", path);
        rwkv_model_free(m);
        return s;
    }
    const char *version = model_detect_version(&m->weights);
    m->gn_eps = model_group_norm_eps(m->weights.format, version);
    if (strcmp(version, "4") == 0) {
        s = rwkv4_build(m, err);
    } else if (version[0] == '5') {
        s = rwkv5_build(m, err);
    } else if (strcmp(version, "6") == 0) {
        s = rwkv6_build(m, err);
    } else if (strcmp(version, "7") == 0) {
        s = rwkv7_build(m, err);
    } else {
        s = rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "RWKV-%s models are not supported yet", version);
    }
    if (s != RWKV_OK) {
        if (err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
        rwkv_model_free(m);
        return s;
    }
    m->info.format = m->weights.format;
    m->info.file_bytes = (int64_t)m->weights.file.size;
    /* parameter count and storage dtype over the checkpoint's tensors */
    dtype first = DT_COUNT;
    int mixed = 0;
    for (int i = 0; i < m->weights.count; i++) {
        const tensor *t = &m->weights.tensors[i];
        m->info.n_params += tensor_numel(t);
        m->info.weight_bytes += (int64_t)t->nbytes;
        if (t->ndim >= 2) {
            if (first == DT_COUNT) first = t->type;
            else if (first != t->type) mixed = 1;
        }
    }
    m->info.dtype = mixed ? "mixed" : dtype_name(first == DT_COUNT ? DT_F32 : first);
    *out = m;
    return rwkv_ok(err);
}

rwkv_status rwkv_checkpoint_arch(const char *path, rwkv_arch *arch, rwkv_error *err) {
    if (!path || !arch) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_checkpoint_arch: path and arch are required");
    tensor_set set;
    rwkv_status s = checkpoint_read(path, &set, err);
    if (s != RWKV_OK) return s;
    *arch = gpt_is_checkpoint(&set) ? RWKV_ARCH_GPT : RWKV_ARCH_RWKV;
    tensor_set_free(&set);
    return rwkv_ok(err);
}

void rwkv_model_free(rwkv_model *m) {
    if (!m) return;
    common_free(m->impl);
    tensor_set_free(&m->weights);
    free(m);
}

void rwkv_model_get_info(const rwkv_model *m, rwkv_model_info *info) { *info = m->info; }

void rwkv_model_set_threads(rwkv_model *m, int n_threads) {
    m->n_threads = n_threads > 0 ? n_threads : default_threads();
}

rwkv_status rwkv_state_new(const rwkv_model *m, rwkv_state **out, rwkv_error *err) {
    if (!m || !out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_new: model and out are required");
    rwkv_state *s = calloc(1, sizeof *s);
    float *d = malloc(m->info.state_floats * sizeof(float));
    if (!s || !d) {
        free(s);
        free(d);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    s->model = m;
    s->n = m->info.state_floats;
    s->data = d;
    common_state_init(m, d);
    *out = s;
    return rwkv_ok(err);
}

void rwkv_state_free(rwkv_state *s) {
    if (!s) return;
    free(s->data);
    free(s);
}

void rwkv_state_reset(rwkv_state *s) { common_state_init(s->model, s->data); }

rwkv_status rwkv_state_copy(rwkv_state *dst, const rwkv_state *src, rwkv_error *err) {
    if (dst->n != src->n)
        return rwkv_fail(err, RWKV_ERR_ARG, "state sizes differ (%zu vs %zu floats)", dst->n, src->n);
    memcpy(dst->data, src->data, src->n * sizeof(float));
    return rwkv_ok(err);
}

size_t rwkv_state_size(const rwkv_state *s) { return s->n; }
float *rwkv_state_data(rwkv_state *s) { return s->data; }

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
    if (state->n != m->info.state_floats)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval: the state belongs to a model of another shape");
    if (n == 0) return rwkv_ok(err);
    rwkv_status s = check_tokens(m, tokens, n, err);
    if (s != RWKV_OK) return s;
    return common_eval(m, state->data, tokens, n, logits, all_logits, err);
}

rwkv_status rwkv_convert_to_safetensors(const char *in_path, const char *out_path, rwkv_dtype dtype_req,
                                        rwkv_error *err) {
    static const dtype map[] = {[RWKV_DTYPE_KEEP] = DT_COUNT, [RWKV_DTYPE_F32] = DT_F32,
                                [RWKV_DTYPE_F16] = DT_F16, [RWKV_DTYPE_BF16] = DT_BF16};
    if ((unsigned)dtype_req > RWKV_DTYPE_BF16) return rwkv_fail(err, RWKV_ERR_ARG, "unknown output dtype");
    /* Loading the model validates the checkpoint before anything is written. */
    rwkv_model *m;
    rwkv_status s = rwkv_model_load(in_path, &m, err);
    if (s != RWKV_OK) return s;
    s = safetensors_write(out_path, m->weights.tensors, m->weights.count, map[dtype_req], err);
    rwkv_model_free(m);
    return s == RWKV_OK ? rwkv_ok(err) : s;
}
