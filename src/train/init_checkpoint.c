/* `rwkv init` (include/rwkv_train.h): a freshly initialised model of any
 * architecture of train/arch.h, made and written one tensor at a time
 * (safetensors_write_filled): a 7B model needs memory for its largest
 * tensor, not for the whole model (28 GB as float32). */
#include "rwkv_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats.h"
#include "model/gpt.h"
#include "train/arch.h"

/* What rwkv init writes: the trainable architectures, and RWKV-5/6, which
 * exist only as random models for benchmarks and tests (--uniform). */
static const struct {
    const train_arch *arch;
    int random_only;
} init_archs[] = {{&train_arch_rwkv4, 0}, {&train_arch_rwkv5, 1}, {&train_arch_rwkv6, 1},
                  {&train_arch_rwkv7, 0}, {&train_arch_gpt, 0}};

static rwkv_status check_sizes(const rwkv_init_options *o, rwkv_error *err) {
    if (o->n_layer < 1 || o->n_layer > 1024)
        return rwkv_fail(err, RWKV_ERR_ARG, "--layers must be in [1, 1024], got %d", o->n_layer);
    if (o->n_embd < 1 || o->n_embd > 65536)
        return rwkv_fail(err, RWKV_ERR_ARG, "--embd must be in [1, 65536], got %d", o->n_embd);
    if (o->n_vocab < 1 || o->n_vocab > 1 << 24)
        return rwkv_fail(err, RWKV_ERR_ARG, "--vocab must be in [1, 16777216], got %d", o->n_vocab);
    if (o->n_ffn < 0 || o->n_ffn > 1 << 20)
        return rwkv_fail(err, RWKV_ERR_ARG, "--ffn must be in [0, 1048576] (0: the architecture's default), got %d",
                         o->n_ffn);
    if (!(o->emb_scale >= 0 && isfinite(o->emb_scale)))
        return rwkv_fail(err, RWKV_ERR_ARG, "--emb-scale must be >= 0, got %g", o->emb_scale);
    if (o->n_head < 0 || o->n_ctx < 0) return rwkv_fail(err, RWKV_ERR_ARG, "--heads and --ctx must not be negative");
    if (o->head_size < 0) return rwkv_fail(err, RWKV_ERR_ARG, "--head-size must not be negative");
    if (o->dtype != RWKV_DTYPE_KEEP && o->dtype != RWKV_DTYPE_F32 && o->dtype != RWKV_DTYPE_F16 &&
        o->dtype != RWKV_DTYPE_BF16)
        return rwkv_fail(err, RWKV_ERR_ARG, "--dtype must be f32, bf16 or f16, got %d", (int)o->dtype);
    return RWKV_OK;
}

/* The architecture of the options, with --uniform where it is required or
 * has no meaning. */
static rwkv_status find_arch(const rwkv_init_options *o, const train_arch **out, rwkv_error *err) {
    const char *name = o->arch ? o->arch : "rwkv4";
    for (size_t i = 0; i < sizeof init_archs / sizeof init_archs[0]; i++) {
        const train_arch *a = init_archs[i].arch;
        if (strcmp(name, a->name) != 0) continue;
        if (init_archs[i].random_only && !o->uniform)
            return rwkv_fail(err, RWKV_ERR_ARG,
                             "--arch %s needs --uniform (a random model for benchmarks and tests: it cannot be "
                             "trained)", name);
        if (o->uniform && a != &train_arch_rwkv7 && !init_archs[i].random_only)
            return rwkv_fail(err, RWKV_ERR_ARG, "--uniform is for --arch rwkv5, rwkv6 and rwkv7");
        *out = a;
        return RWKV_OK;
    }
    return rwkv_fail(err, RWKV_ERR_ARG, "--arch must be one of rwkv4, rwkv5, rwkv6, rwkv7, gpt, got '%s'", name);
}

typedef struct init_job {
    const train_arch *arch;
    arch_shape shape;
    param_layout lay;
    uint64_t seed;
    float emb_scale;
    arch_init_state st;
} init_job;

static rwkv_status fill_tensor(void *ctx, int index, float *values, rwkv_error *err) {
    init_job *j = ctx;
    return j->arch->init_tensor(&j->shape, &j->lay, index, values, j->seed, j->emb_scale, &j->st, err);
}

/* The file's tensors: the layout's, in `type`, their values made by
 * fill_tensor; a GPT also carries its head count. */
static rwkv_status write_model(init_job *j, dtype type, const char *out_path, rwkv_error *err) {
    tensor *t = calloc((size_t)j->lay.count + 1, sizeof *t);
    if (!t) return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", out_path);
    for (int i = 0; i < j->lay.count; i++) {
        const param_info *p = &j->lay.params[i];
        t[i].name = (char *)p->name;
        t[i].type = type;
        t[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) t[i].shape[d] = p->shape[d];
        t[i].nbytes = dtype_bytes_for(t[i].type, p->numel);
    }
    int n = j->lay.count;
    const int64_t n_head = j->shape.n_head;
    if (j->arch == &train_arch_gpt) t[n++] = gpt_head_count_tensor(&n_head);
    rwkv_status s = safetensors_write_filled(out_path, t, n, fill_tensor, j, err);
    free(t);
    return s;
}

rwkv_status rwkv_init_checkpoint(const rwkv_init_options *o, const char *out_path, rwkv_error *err) {
    if (!o || !out_path || !*out_path) return rwkv_fail(err, RWKV_ERR_ARG, "--out is required");
    init_job j = {.seed = o->seed, .emb_scale = (float)o->emb_scale};
    rwkv_status s = check_sizes(o, err);
    if (s == RWKV_OK) s = find_arch(o, &j.arch, err);
    if (s != RWKV_OK) return s;
    j.shape = (arch_shape){.n_vocab = o->n_vocab, .n_embd = o->n_embd, .n_layer = o->n_layer, .n_ffn = o->n_ffn,
                           .n_head = o->n_head, .n_ctx = o->n_ctx ? o->n_ctx : 1024, .head_size = o->head_size,
                           .uniform = o->uniform};
    if ((s = j.arch->shape_check(&j.shape, err)) != RWKV_OK || (s = j.arch->layout(&j.shape, &j.lay, err)) != RWKV_OK)
        return s;
    const dtype type = o->dtype == RWKV_DTYPE_BF16 ? DT_BF16 : o->dtype == RWKV_DTYPE_F16 ? DT_F16 : DT_F32;
    s = write_model(&j, type, out_path, err);
    param_layout_free(&j.lay);
    return s;
}
