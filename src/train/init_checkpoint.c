/* `rwkv init` (include/rwkv_train.h): a freshly initialised model of any
 * trainable architecture, written as a checkpoint. */
#include "rwkv_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/arch.h"
#include "train/init_bench_model.h"

rwkv_status rwkv_init_checkpoint(const rwkv_init_options *o, const char *out_path, rwkv_error *err) {
    if (!o || !out_path || !*out_path) return rwkv_fail(err, RWKV_ERR_ARG, "--out is required");
    if (o->n_layer < 1 || o->n_layer > 1024)
        return rwkv_fail(err, RWKV_ERR_ARG, "--layers must be in [1, 1024], got %d", o->n_layer);
    if (o->n_embd < 1 || o->n_embd > 65536)
        return rwkv_fail(err, RWKV_ERR_ARG, "--embd must be in [1, 65536], got %d", o->n_embd);
    if (o->n_vocab < 1 || o->n_vocab > 1 << 24)
        return rwkv_fail(err, RWKV_ERR_ARG, "--vocab must be in [1, 16777216], got %d", o->n_vocab);
    if (o->n_ffn < 0 || o->n_ffn > 1 << 20)
        return rwkv_fail(err, RWKV_ERR_ARG, "--ffn must be in [0, 1048576] (0: 4 x embd), got %d", o->n_ffn);
    if (!(o->emb_scale >= 0 && isfinite(o->emb_scale)))
        return rwkv_fail(err, RWKV_ERR_ARG, "--emb-scale must be >= 0, got %g", o->emb_scale);
    if (o->arch && (strcmp(o->arch, "rwkv5") == 0 || strcmp(o->arch, "rwkv6") == 0)) {
        if (o->head_size < 0) return rwkv_fail(err, RWKV_ERR_ARG, "--head-size must not be negative");
        return init_bench_model(o, o->arch[4] - '0', out_path, err);
    }
    const train_arch *arch = train_arch_find(o->arch ? o->arch : "rwkv4");
    if (!arch) return rwkv_fail(err, RWKV_ERR_ARG, "--arch must be one of %s, got '%s'", train_arch_names(), o->arch);
    if (o->n_head < 0 || o->n_ctx < 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "--heads and --ctx must not be negative");
    if (o->uniform && strcmp(arch->name, "rwkv7") != 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "--uniform is for --arch rwkv5, rwkv6 and rwkv7");
    if (o->head_size < 0) return rwkv_fail(err, RWKV_ERR_ARG, "--head-size must not be negative");
    arch_shape shape = {.n_vocab = o->n_vocab, .n_embd = o->n_embd, .n_layer = o->n_layer, .n_ffn = o->n_ffn,
                        .n_head = o->n_head, .n_ctx = o->n_ctx ? o->n_ctx : 1024, .head_size = o->head_size,
                        .uniform = o->uniform};
    rwkv_status s = arch->shape_check(&shape, err);
    if (s != RWKV_OK) return s;
    param_layout lay;
    s = arch->layout(&shape, &lay, err);
    if (s != RWKV_OK) return s;
    float *params = malloc(lay.total * sizeof(float) + 1);
    if (!params) {
        size_t total = lay.total; /* param_layout_free clears it */
        param_layout_free(&lay);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu parameters (%zu bytes)", total,
                         total * sizeof(float));
    }
    s = arch->init(&shape, &lay, params, o->seed, (float)o->emb_scale, err);
    if (s == RWKV_OK) s = arch->save(out_path, &shape, &lay, params, err);
    free(params);
    param_layout_free(&lay);
    return s;
}
