/* checkpoint_read (formats/formats.h): any checkpoint format, detected by the
 * file's first bytes, never by its name; transformers' layout is recognised
 * from the tensor names, whatever the container. */
#include <string.h>

#include "core/fs.h"
#include "formats/formats.h"
#include "formats/hf.h"

/* One file; a shard index (JSON) only when index_allowed, so that an index
 * can never lead to another one. */
static rwkv_status read_file(const char *path, tensor_set *set, int index_allowed, int in_memory, rwkv_error *err) {
    tensor_set_init(set);
    rwkv_status s = in_memory ? mapped_file_read(path, &set->file, err) : mapped_file_open(path, &set->file, err);
    if (s != RWKV_OK) return s;
    const uint8_t *p = set->file.data;
    size_t n = set->file.size;
    if (n >= 4 && memcmp(p, "PK\x03\x04", 4) == 0) {
        s = pth_read(path, set, err);
    } else if (n >= 4 && rd_u32(p) == 0x67676d66u) { /* "fmgg" on disk: rwkv.cpp's ggmf */
        s = rwkvcpp_read(path, set, err);
    } else if (n >= 4 && memcmp(p, "GGUF", 4) == 0) { /* llama.cpp's container */
        s = gguf_read(path, set, err);
    } else if (n >= 2 && p[0] == 0x80 && p[1] == 0x02) {
        s = rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                      "%s: legacy (pre-1.6) PyTorch serialization is not supported; re-save it with "
                      "torch.save (zip format)", path);
    } else if (n >= 9 && p[8] == '{' && rd_u64(p) < ((uint64_t)1 << 32)) { /* u64 length + JSON */
        s = safetensors_read(path, set, err);
    } else if (index_allowed && n >= 1 && p[0] == '{') { /* a shard index (text: never safetensors) */
        s = shard_index_read(path, set, err);
    } else {
        s = rwkv_fail(err, RWKV_ERR_FORMAT,
                      "%s: unknown file format (expected safetensors, a PyTorch .pth zip, an rwkv.cpp or a GGUF "
                      "file, or a shard index)",
                      path);
    }
    if (s != RWKV_OK) tensor_set_free(set);
    return s;
}

rwkv_status checkpoint_read_file(const char *path, tensor_set *set, rwkv_error *err) {
    return read_file(path, set, 0, 0, err);
}

rwkv_status checkpoint_read_shard(const char *path, int in_memory, tensor_set *set, rwkv_error *err) {
    return read_file(path, set, 0, in_memory, err);
}

rwkv_status checkpoint_read(const char *path, tensor_set *set, rwkv_error *err) {
    return checkpoint_read_ex(path, 0, set, err);
}

rwkv_status checkpoint_read_ex(const char *path, int in_memory, tensor_set *set, rwkv_error *err) {
    char weights[FS_PATH_MAX];
    int folder = is_directory(path);
    tensor_set_init(set);
    rwkv_status s = folder ? hf_folder_weights(path, weights, sizeof weights, err) : RWKV_OK;
    if (s == RWKV_OK) s = read_file(folder ? weights : path, set, 1, in_memory, err);
    if (s == RWKV_OK) s = hf_layout_to_official(folder ? weights : path, set, err);
    /* a folder's config.json, when present, has to agree with the tensors */
    if (s == RWKV_OK && folder) s = hf_config_check(path, set, err);
    if (s != RWKV_OK) tensor_set_free(set);
    return s;
}
