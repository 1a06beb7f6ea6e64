/* rwkv_quantize (include/rwkv_quant.h): checkpoint -> rwkv.cpp file with
 * block-quantized matrices. The values follow rwkv.cpp's converter (time_*
 * vectors squeezed to 1-D, RWKV-4 time_decay stored as -exp(θ), vectors
 * f32), so the file loads in rwkv.cpp and back in rwkv.c unchanged. */
#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "formats/rwkvcpp_write.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "rwkv_quant.h"

static const struct {
    const char *name;
    dtype type;
} quant_types[] = {
    [RWKV_QUANT_Q8_0] = {"q8_0", DT_Q8_0}, [RWKV_QUANT_Q4_0] = {"q4_0", DT_Q4_0}, [RWKV_QUANT_Q4_1] = {"q4_1", DT_Q4_1},
    [RWKV_QUANT_Q5_0] = {"q5_0", DT_Q5_0}, [RWKV_QUANT_Q5_1] = {"q5_1", DT_Q5_1}, [RWKV_QUANT_F16] = {"f16", DT_F16},
    [RWKV_QUANT_F32] = {"f32", DT_F32},
};

int rwkv_quant_type_parse(const char *name, rwkv_quant_type *out) {
    for (int i = 0; i <= RWKV_QUANT_F32; i++)
        if (name && strcasecmp(name, quant_types[i].name) == 0) {
            *out = (rwkv_quant_type)i;
            return 0;
        }
    return -1;
}

const char *rwkv_quant_type_name(rwkv_quant_type t) {
    if ((unsigned)t <= RWKV_QUANT_F32) return quant_types[t].name;
    return t == RWKV_QUANT_DEFAULT ? "default" : "?";
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

/* Converts (and quantizes) one tensor into an owned buffer. */
static rwkv_status convert_tensor(const tensor *in, dtype to, tensor *out, rwkv_error *err) {
    int64_t numel = tensor_numel(in);
    *out = *in;
    out->name = NULL;
    out->data = NULL;
    out->type = to;
    out->nbytes = dtype_bytes_for(to, (uint64_t)numel);
    out->name = strdup(in->name);
    void *buf = malloc(out->nbytes ? out->nbytes : 1);
    if (!out->name || !buf) {
        free(buf);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory converting '%s'", in->name);
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
    if (atomic_load(&j.bad)) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory converting '%s'", in->name);
    return RWKV_OK;
}

rwkv_status rwkv_quantize_ex(const char *in_path, const char *out_path, rwkv_quant_type type,
                             rwkv_quant_type head_type, rwkv_error *err) {
    if (!in_path || !out_path) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_quantize: paths are required");
    if ((unsigned)type > RWKV_QUANT_F32) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_quantize: unknown type");
    if ((unsigned)head_type > RWKV_QUANT_DEFAULT) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_quantize: unknown head type");
    const dtype mat = quant_types[type].type;
    const dtype head = head_type == RWKV_QUANT_DEFAULT ? (dtype_is_block(mat) ? DT_Q8_0 : mat)
                                                       : quant_types[head_type].type;
    rwkv_model *m;
    rwkv_status s = rwkv_model_load(in_path, &m, err);
    if (s != RWKV_OK) return s;
    if (strcmp(m->info.version, "4") != 0) {
        s = rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: quantization is implemented for RWKV-4 only (this is %s%s)",
                      in_path, m->info.arch == RWKV_ARCH_GPT ? "the GPT baseline" : "RWKV-",
                      m->info.arch == RWKV_ARCH_GPT ? "" : m->info.version);
        rwkv_model_free(m);
        return s;
    }
    const tensor_set *set = &m->weights;
    tensor *outs = calloc((size_t)set->count, sizeof *outs);
    int n = 0;
    if (!outs) s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    for (int i = 0; s == RWKV_OK && i < set->count; i++) {
        const tensor *t = &set->tensors[i];
        tensor in = *t;
        /* squeeze size-1 axes of the time_* vectors, as rwkv.cpp's converter does */
        if (strstr(t->name, ".time_")) {
            int nd = 0;
            for (int d = 0; d < t->ndim; d++)
                if (t->shape[d] != 1) in.shape[nd++] = t->shape[d];
            if (nd == 0) in.shape[nd++] = 1;
            in.ndim = nd;
        }
        dtype to;
        if (in.ndim != 2) to = DT_F32;
        else if (strcmp(t->name, "emb.weight") == 0) to = t->type == DT_F16 ? DT_F16 : DT_F32;
        else if (strcmp(t->name, "head.weight") == 0) to = head;
        else to = mat;
        if (dtype_is_block(to) && in.shape[in.ndim - 1] % 32) to = DT_F16; /* rows must be whole blocks */
        s = convert_tensor(&in, to, &outs[n], err);
        if (s != RWKV_OK) break;
        n++;
        if (ends_with(t->name, ".att.time_decay")) { /* rwkv.cpp stores d = -exp(θ) */
            float *d = (float *)outs[n - 1].data;
            for (int64_t j = 0; j < tensor_numel(&outs[n - 1]); j++) d[j] = -expf(d[j]);
        }
    }
    if (s == RWKV_OK)
        s = rwkvcpp_write(out_path, outs, n, m->info.n_vocab, m->info.n_embd, m->info.n_layer, mat, err);
    for (int i = 0; i < n; i++) {
        free(outs[i].name);
        free((void *)outs[i].data);
    }
    free(outs);
    rwkv_model_free(m);
    return s == RWKV_OK ? rwkv_ok(err) : s;
}

rwkv_status rwkv_quantize(const char *in_path, const char *out_path, rwkv_quant_type type, rwkv_error *err) {
    return rwkv_quantize_ex(in_path, out_path, type, RWKV_QUANT_DEFAULT, err);
}
