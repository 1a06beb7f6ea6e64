/* Loading helpers of the RWKV version files (model/load.h) and the choice
 * of the version file for a checkpoint of the RWKV family. */
#include "model/load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/machine.h"
#include "kernels/row_groups.h"

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

/* bytes owned by the set, 64-byte aligned; NULL + err (naming `what`) when out of memory */
static void *owned_lines(tensor_set *set, size_t bytes, const char *what, rwkv_error *err) {
    uint8_t *buf = tensor_set_alloc(set, bytes + 64);
    if (!buf) {
        rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu bytes of %s", bytes, what);
        return NULL;
    }
    return buf + (64 - (uintptr_t)buf % 64) % 64;
}

rwkv_status model_pack_panels(tensor_set *set, matrix *m, rwkv_error *err) {
    const kernel_ops *k = kernels_active();
    if (!set->pack_panels || !matmul_packs(k, m)) return RWKV_OK;
    void *dst = owned_lines(set, matmul_panel_bytes(k, m), "packed weights", err);
    if (!dst) return RWKV_ERR_NOMEM;
    matmul_pack_panels(k, m, dst);
    m->panels = dst;
    m->panel_nr = k->mm.nr;
    return RWKV_OK;
}

rwkv_status model_align_rows(tensor_set *set, matrix *m, rwkv_error *err) {
    const size_t row = (size_t)m->cols * sizeof(float);
    if (!set->group_rows || m->type != DT_F32 || (uintptr_t)m->data % 64 == 0 || row % 64) return RWKV_OK;
    void *dst = owned_lines(set, row * (size_t)m->rows, "aligned weights", err);
    if (!dst) return RWKV_ERR_NOMEM;
    memcpy(dst, m->data, row * (size_t)m->rows);
    m->data = dst;
    return RWKV_OK;
}

rwkv_status model_group_rows(tensor_set *set, matrix *m, rwkv_error *err) {
    if (!set->group_rows || !matvec_reads_groups(kernels_active(), m)) return RWKV_OK;
    void *dst = owned_lines(set, row_groups_bytes(m), "grouped weights", err);
    if (!dst) return RWKV_ERR_NOMEM;
    row_groups_pack(m, dst, machine_cores());
    m->groups = dst;
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

int model_lora_reads_stored(const tensor *t) {
    return t->stored_rows && t->ndim >= 2 && t->shape[t->ndim - 2] % (int64_t)dtype_block_elems(t->stored_type) == 0;
}

/* The [out, in] rows of `count` LoRA matrices stored [in, out], and their
 * type: the file's own rows where its reader kept them (a block type: GGUF
 * and rwkv.cpp files store LoRAs transposed); f16 and bf16 transposed in
 * their type; anything else as float32. Every token reads the LoRAs: as
 * floats they were 3.8% more of a bf16 1.5B model's bytes, 7% more of a
 * llama.cpp q8_0 file's. NULL + err when out of memory. */
static const uint8_t *lora_rows(tensor_set *set, const tensor *t, int count, int64_t in, int64_t out, dtype *type,
                                rwkv_error *err) {
    if (model_lora_reads_stored(t)) {
        *type = t->stored_type;
        return t->stored_rows;
    }
    *type = transposed_type(t->type);
    /* on whole lines: the decode kernels read rows that start on one at
     * full speed (model_align_rows) */
    const size_t n = (size_t)in * (size_t)out * (size_t)count;
    uint8_t *dst = owned_lines(set, n * dtype_block_bytes(*type), "LoRA weights", err);
    if (dst && transpose_last2_to(t->type, t->data, dst, count, in, out) != 0) {
        rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return dst;
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
    dtype type;
    const uint8_t *rows = lora_rows(set, t, count, in, out, &type, err);
    if (!rows) return err ? err->code : RWKV_ERR_NOMEM;
    const size_t bytes = dtype_bytes_for(type, (uint64_t)in * (uint64_t)out); /* one matrix's */
    rwkv_status st = RWKV_OK;
    for (int c = 0; c < count && st == RWKV_OK; c++) {
        outm[c].type = type;
        outm[c].rows = (int)out;
        outm[c].cols = (int)in;
        outm[c].data = rows + (size_t)c * bytes;
        st = model_pack_panels(set, &outm[c], err); /* a batched step of a few rows would repack them every call */
        if (st == RWKV_OK && type != DT_F32) st = model_group_rows(set, &outm[c], err);
    }
    return st;
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

rwkv_status model_build_rwkv(rwkv_model *m, rwkv_error *err) {
    const char *version = model_detect_version(&m->weights);
    m->gn_eps = model_group_norm_eps(m->weights.format, version);
    if (strcmp(version, "4") == 0) return rwkv4_build(m, err);
    if (version[0] == '5') return rwkv5_build(m, err);
    if (strcmp(version, "6") == 0) return rwkv6_build(m, err);
    if (strcmp(version, "7") == 0) return rwkv7_build(m, err);
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "RWKV-%s models are not supported yet", version);
}
