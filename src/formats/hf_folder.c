/* transformers' model folders: which file holds the weights, and writing
 * a folder that RwkvForCausalLM.from_pretrained loads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "formats/formats.h"
#include "formats/hf.h"

/* transformers' own order: single safetensors first, then its index, then the
 * PyTorch files. A folder written by hf_folder_write holds model.safetensors,
 * which therefore always wins over files left over from something else. */
static const char *const weight_files[] = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                           "pytorch_model.bin.index.json"};

rwkv_status hf_folder_weights(const char *dir, char *out, size_t size, rwkv_error *err) {
    for (size_t i = 0; i < sizeof weight_files / sizeof weight_files[0]; i++) {
        if (snprintf(out, size, "%s/%s", dir, weight_files[i]) >= (int)size)
            return rwkv_fail(err, RWKV_ERR_ARG, "%s: path too long", dir);
        if (file_exists(out)) return rwkv_ok(err);
    }
    return rwkv_fail(err, RWKV_ERR_IO,
                     "%s: a folder without model.safetensors, model.safetensors.index.json or pytorch_model.bin", dir);
}

/* The dtype transformers should load the weights as: that of the matrices
 * as written (block-quantized ones are written as f32). */
static dtype written_dtype(const tensor_set *set, dtype to) {
    if (to != DT_COUNT) return to;
    const tensor *head = tensor_set_find(set, "head.weight");
    return head && !dtype_is_block(head->type) ? head->type : DT_F32;
}

rwkv_status hf_folder_write(const char *dir, const tensor_set *set, dtype to, rwkv_error *err) {
    hf_shape shape;
    rwkv_status s = hf_shape_of(dir, set, &shape, err);
    if (s != RWKV_OK) return s;
    if ((s = mkdir_p(dir, err)) != RWKV_OK) return s;
    enum { NAME_MAX_LEN = 160 };
    tensor *renamed = calloc((size_t)set->count + 1, sizeof *renamed);
    char *names = calloc((size_t)set->count + 1, NAME_MAX_LEN);
    if (!renamed || !names) s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    for (int i = 0; s == RWKV_OK && i < set->count; i++)
        s = hf_layout_tensor(&set->tensors[i], names + (size_t)i * NAME_MAX_LEN, NAME_MAX_LEN, &renamed[i], err);
    char path[FS_PATH_MAX];
    if (s == RWKV_OK && snprintf(path, sizeof path, "%s/model.safetensors", dir) >= (int)sizeof path)
        s = rwkv_fail(err, RWKV_ERR_ARG, "%s: path too long", dir);
    if (s == RWKV_OK) s = safetensors_write(path, renamed, set->count, to, err);
    free(renamed);
    free(names);
    /* config.json last: a folder with a config is a complete one */
    if (s == RWKV_OK && snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        s = rwkv_fail(err, RWKV_ERR_ARG, "%s: path too long", dir);
    if (s == RWKV_OK) s = hf_config_write(path, &shape, written_dtype(set, to), err);
    return s == RWKV_OK ? rwkv_ok(err) : s;
}
