/* rwkv_quantize (include/rwkv_quant.h): checkpoint -> a file with
 * block-quantized matrices. RWKV-4/5 become rwkv.cpp files whose values
 * follow rwkv.cpp's converter (time_* vectors squeezed to 1-D, RWKV-4
 * time_decay stored as -exp(θ), RWKV-5 time_decay as exp(-exp(θ)) and
 * time_first as exp(u), vectors f32), so the file loads in rwkv.cpp and back
 * in rwkv.c unchanged; RWKV-6/7 become GGUF files (tools/quantize_gguf.c). */
#include <ctype.h>
#include <stdint.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "formats/rwkvcpp_write.h"
#include "kernels/kernels.h"
#include "tools/quantize.h"

static const struct {
    const char *name;
    dtype type;
} quant_types[] = {
    [RWKV_QUANT_Q8_0] = {"q8_0", DT_Q8_0}, [RWKV_QUANT_Q4_0] = {"q4_0", DT_Q4_0}, [RWKV_QUANT_Q4_1] = {"q4_1", DT_Q4_1},
    [RWKV_QUANT_Q5_0] = {"q5_0", DT_Q5_0}, [RWKV_QUANT_Q5_1] = {"q5_1", DT_Q5_1}, [RWKV_QUANT_Q4_K] = {"q4_k", DT_Q4_K},
    [RWKV_QUANT_Q5_K] = {"q5_k", DT_Q5_K}, [RWKV_QUANT_Q6_K] = {"q6_k", DT_Q6_K}, [RWKV_QUANT_F16] = {"f16", DT_F16},
    [RWKV_QUANT_F32] = {"f32", DT_F32}, [RWKV_QUANT_Q4_K_M] = {"q4_k_m", DT_Q4_K},
};
#define N_QUANT_TYPES (int)(sizeof quant_types / sizeof quant_types[0])

int rwkv_quant_type_parse(const char *name, rwkv_quant_type *out) {
    for (int i = 0; i < N_QUANT_TYPES; i++)
        if (name && quant_types[i].name && strcasecmp(name, quant_types[i].name) == 0) {
            *out = (rwkv_quant_type)i;
            return 0;
        }
    return -1;
}

const char *rwkv_quant_type_name(rwkv_quant_type t) {
    if (t == RWKV_QUANT_DEFAULT) return "default";
    return (unsigned)t < N_QUANT_TYPES && quant_types[t].name ? quant_types[t].name : "?";
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Rows are converted in chunks on the kernels' thread pool. */
#define CONVERT_CHUNK 64
typedef struct convert_job {
    const tensor *in;
    void *out;
    dtype to;
    int64_t cols;
    size_t in_rb, out_rb;
    int64_t rows;
    _Atomic int bad;
} convert_job;

static void convert_chunk(void *p, int chunk) {
    convert_job *j = p;
    float *row = malloc(sizeof(float) * (size_t)j->cols);
    if (!row) {
        atomic_store(&j->bad, 1);
        return;
    }
    int64_t r0 = (int64_t)chunk * CONVERT_CHUNK, r1 = r0 + CONVERT_CHUNK < j->rows ? r0 + CONVERT_CHUNK : j->rows;
    for (int64_t r = r0; r < r1; r++) {
        dtype_to_f32(j->in->type, (const uint8_t *)j->in->data + (size_t)r * j->in_rb, row, (size_t)j->cols);
        uint8_t *dst = (uint8_t *)j->out + (size_t)r * j->out_rb;
        if (dtype_is_block(j->to)) quantize_row(j->to, row, dst, (size_t)j->cols);
        else dtype_from_f32(j->to, row, dst, (size_t)j->cols);
    }
    free(row);
}

rwkv_status quantize_tensor(const tensor *in, const char *name, dtype to, tensor *out, rwkv_error *err) {
    int64_t numel = tensor_numel(in);
    *out = *in;
    out->data = NULL;
    out->type = to;
    out->nbytes = dtype_bytes_for(to, (uint64_t)numel);
    out->name = strdup(name);
    void *buf = malloc(out->nbytes ? out->nbytes : 1);
    if (!out->name || !buf) {
        free(buf);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory converting '%s'", name);
    }
    out->data = buf;
    if (to == in->type) {
        memcpy(buf, in->data, out->nbytes);
        return RWKV_OK;
    }
    int64_t cols = in->shape[in->ndim - 1];
    convert_job j = {in, buf, to, cols, dtype_bytes_for(in->type, (uint64_t)cols), dtype_bytes_for(to, (uint64_t)cols),
                     numel / cols, 0};
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    parallel_for(cores > 0 ? (int)cores : 1, (int)((j.rows + CONVERT_CHUNK - 1) / CONVERT_CHUNK), convert_chunk, &j);
    if (atomic_load(&j.bad)) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory converting '%s'", name);
    return RWKV_OK;
}

dtype quantize_fit(dtype to, int64_t cols) {
    if (!dtype_is_block(to) || cols % (int64_t)dtype_block_elems(to) == 0) return to;
    dtype fallback = to == DT_Q4_K ? DT_Q5_0 : to == DT_Q5_K ? DT_Q5_1 : to == DT_Q6_K ? DT_Q8_0 : DT_F16;
    return quantize_fit(fallback, cols);
}

/* rwkv.cpp's value conventions for RWKV-4/5 (docs/formats.md): decays and
 * bonuses as the converter stores them. */
static void to_rwkvcpp_values(const char *name, int v5, tensor *t) {
    float *d = (float *)t->data;
    const int64_t n = tensor_numel(t);
    if (ends_with(name, ".att.time_decay"))
        for (int64_t j = 0; j < n; j++) d[j] = v5 ? (float)exp(-exp((double)d[j])) : -expf(d[j]);
    else if (v5 && ends_with(name, ".att.time_first"))
        for (int64_t j = 0; j < n; j++) d[j] = expf(d[j]);
}

static rwkv_status write_rwkvcpp(const rwkv_model *m, const char *out_path, dtype mat, dtype head, rwkv_error *err) {
    if (dtype_block_elems(mat) > 32 || dtype_block_elems(head) > 32)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "the k-quants need a GGUF file, which holds RWKV-6 and RWKV-7 "
                         "models only; RWKV-%s is written as an rwkv.cpp file", m->info.version);
    const int v5 = m->info.version[0] == '5';
    const tensor_set *set = &m->weights;
    tensor *outs = calloc((size_t)set->count, sizeof *outs);
    int n = 0;
    rwkv_status s = outs ? RWKV_OK : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    for (int i = 0; s == RWKV_OK && i < set->count; i++) {
        const tensor *t = &set->tensors[i];
        tensor in = *t;
        /* squeeze size-1 axes of the time_* vectors, as rwkv.cpp's converter does */
        if (strstr(t->name, ".time_")) {
            int nd = 0;
            for (int d = 0; d < t->ndim; d++)
                if (t->shape[d] != 1) in.shape[nd++] = t->shape[d];
            if (nd == 0) in.shape[nd++] = 1;
            if (v5 && ends_with(t->name, ".att.time_faaaa") && nd < 3) in.shape[nd++] = 1; /* v5.2: [H, N, 1] */
            in.ndim = nd;
        }
        dtype to;
        if (in.ndim != 2 || strstr(t->name, ".time_")) to = DT_F32;
        else if (strcmp(t->name, "emb.weight") == 0) to = t->type == DT_F16 ? DT_F16 : DT_F32;
        else if (strcmp(t->name, "head.weight") == 0) to = head;
        else to = mat;
        if (dtype_is_block(to) && in.shape[in.ndim - 1] % 32) to = DT_F16; /* rows must be whole blocks */
        s = quantize_tensor(&in, t->name, to, &outs[n], err);
        if (s != RWKV_OK) break;
        to_rwkvcpp_values(t->name, v5, &outs[n++]);
    }
    if (s == RWKV_OK)
        s = rwkvcpp_write(out_path, outs, n, m->info.n_vocab, m->info.n_embd, m->info.n_layer, mat, err);
    for (int i = 0; i < n; i++) {
        free(outs[i].name);
        free((void *)outs[i].data);
    }
    free(outs);
    return s;
}

/* Every weight must be finite: a NaN or infinity would be written into the
 * blocks' scales, giving a file that loads as garbage or not at all. */
static rwkv_status check_finite(const tensor_set *set, const char *path, rwkv_error *err) {
    enum { CHUNK = 1 << 16 }; /* a multiple of every block size */
    float *buf = malloc(CHUNK * sizeof *buf);
    if (!buf) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    rwkv_status s = RWKV_OK;
    for (int i = 0; s == RWKV_OK && i < set->count; i++) {
        const tensor *t = &set->tensors[i];
        if (!dtype_is_float(t->type) && !dtype_is_block(t->type)) continue;
        const size_t n = (size_t)tensor_numel(t);
        for (size_t at = 0; s == RWKV_OK && at < n; at += CHUNK) {
            size_t k = n - at < CHUNK ? n - at : CHUNK;
            dtype_to_f32(t->type, (const uint8_t *)t->data + dtype_bytes_for(t->type, at), buf, k);
            for (size_t j = 0; j < k; j++)
                if (!isfinite(buf[j])) {
                    s = rwkv_fail(err, RWKV_ERR_NUMERIC,
                                  "%s: tensor '%s' holds %s at element %zu: a model with non-finite weights "
                                  "cannot be quantized",
                                  path, t->name, isnan(buf[j]) ? "NaN" : "an infinity", at + j);
                    break;
                }
        }
    }
    free(buf);
    return s;
}

rwkv_status rwkv_quantize_opts(const char *in_path, const char *out_path, const rwkv_quant_options *o,
                               rwkv_error *err) {
    if (!in_path || !out_path || !o) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_quantize: paths are required");
    if ((unsigned)o->type >= N_QUANT_TYPES || !quant_types[o->type].name)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_quantize: unknown type");
    if ((unsigned)o->head_type > RWKV_QUANT_DEFAULT)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_quantize: unknown head type (q4_k_m is a mix, not one type)");
    const int mix = o->type == RWKV_QUANT_Q4_K_M;
    const dtype mat = quant_types[o->type].type;
    const dtype head = o->head_type != RWKV_QUANT_DEFAULT ? quant_types[o->head_type].type
                       : !dtype_is_block(mat)          ? mat
                       : dtype_block_elems(mat) > 32   ? DT_Q6_K
                                                       : DT_Q8_0;
    const char *inputs[] = {in_path, o->tokenizer};
    rwkv_status s = rwkv_check_output(out_path, inputs, 2, err);
    if (s != RWKV_OK) return s;
    rwkv_model *m;
    s = rwkv_model_load(in_path, &m, err);
    if (s != RWKV_OK) return s;
    const char v = m->info.version[0];
    s = check_finite(&m->weights, in_path, err);
    if (s == RWKV_OK && m->info.arch == RWKV_ARCH_GPT)
        s = rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: the GPT baseline cannot be quantized", in_path);
    else if (s == RWKV_OK && (v == '4' || v == '5')) s = write_rwkvcpp(m, out_path, mat, head, err);
    else if (s == RWKV_OK && (v == '6' || v == '7'))
        s = quantize_gguf(m, in_path, out_path, mat, head, mix, o->tokenizer, err);
    else if (s == RWKV_OK)
        s = rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: RWKV-%s cannot be quantized", in_path, m->info.version);
    if (s != RWKV_OK && err && strncmp(err->message, out_path, strlen(out_path)) != 0 &&
        strncmp(err->message, in_path, strlen(in_path)) != 0)
        rwkv_error_prefix(err, in_path);
    rwkv_model_free(m);
    return s == RWKV_OK ? rwkv_ok(err) : s;
}

rwkv_status rwkv_quantize_ex(const char *in_path, const char *out_path, rwkv_quant_type type,
                             rwkv_quant_type head_type, rwkv_error *err) {
    rwkv_quant_options o = {type, head_type, NULL};
    return rwkv_quantize_opts(in_path, out_path, &o, err);
}

rwkv_status rwkv_quantize(const char *in_path, const char *out_path, rwkv_quant_type type, rwkv_error *err) {
    return rwkv_quantize_ex(in_path, out_path, type, RWKV_QUANT_DEFAULT, err);
}
