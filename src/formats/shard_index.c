/* Sharded checkpoints: model.safetensors.index.json (or
 * pytorch_model.bin.index.json), as transformers writes them:
 *   {"metadata": {...}, "weight_map": {"tensor name": "shard file", ...}}
 * Each shard is a weights file of its own in the index's folder; the index
 * must describe the shards exactly (docs/formats.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "core/strmap.h"
#include "formats/formats.h"
#include "formats/hf.h"
#include "formats/json_bounds.h"

#define MAX_SHARDS 4096
#define MAX_SHARD_NAME 255
/* Real indexes list a few thousand tensors (a few hundred kB); the bounds are
 * checked before the JSON is parsed (docs/limits.md). */
#define MAX_INDEX_BYTES ((size_t)64 << 20)
#define MAX_INDEX_VALUES ((size_t)1 << 20)

static int has_control_chars(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
    return 0;
}

/* A shard must be a file directly in the index's folder: no path separators,
 * no "." or "..", so that an index can never reach outside its folder. */
static int is_plain_file_name(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n <= MAX_SHARD_NAME && !strchr(s, '/') && !strchr(s, '\\') && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0 && !has_control_chars(s);
}

/* The folder of `path` (without a trailing slash; "." for a bare name). */
static void folder_of(const char *path, char *out, size_t size) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, size, ".");
    else if (slash == path) snprintf(out, size, "/");
    else snprintf(out, size, "%.*s", (int)(slash - path), path);
}

/* The distinct shard names of weight_map, in order of first appearance. */
static rwkv_status list_shards(const char *path, json_t *map, const char **shards, int *n, rwkv_error *err) {
    const char *tensor;
    json_t *v;
    *n = 0;
    strmap seen; /* shard name -> index in shards: linear in the number of tensors */
    if (strmap_init(&seen, 64) != 0) return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    rwkv_status s = RWKV_OK;
    json_object_foreach(map, tensor, v) {
        if (has_control_chars(tensor)) {
            s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: a tensor name in weight_map holds control characters", path);
            break;
        }
        if (!json_is_string(v)) {
            s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: weight_map entry '%s' is not a file name", path, tensor);
            break;
        }
        const char *shard = json_string_value(v);
        if (!is_plain_file_name(shard)) {
            s = rwkv_fail(err, RWKV_ERR_FORMAT,
                          "%s: the shard of tensor '%s' is not a plain file name in the index's folder", path, tensor);
            break;
        }
        if (strmap_get(&seen, shard, strlen(shard)) >= 0) continue;
        if (*n == MAX_SHARDS) {
            s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: more than %d shards", path, MAX_SHARDS);
            break;
        }
        if (strmap_put(&seen, shard, strlen(shard), *n, NULL) != 0) {
            s = rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        shards[(*n)++] = shard;
    }
    strmap_free(&seen);
    if (s == RWKV_OK && *n == 0) s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: weight_map lists no tensors", path);
    return s;
}

/* Reads one shard and checks that it holds only tensors the index gives to it. */
static rwkv_status read_shard(const char *path, const char *dir, const char *shard, json_t *map, int in_memory,
                              tensor_set *out, rwkv_error *err) {
    char file[FS_PATH_MAX];
    if (snprintf(file, sizeof file, "%s/%s", dir, shard) >= (int)sizeof file)
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: shard path too long", path);
    rwkv_status s = checkpoint_read_shard(file, in_memory, out, err);
    if (s != RWKV_OK) {
        if (err) rwkv_error_prefix(err, path);
        return s;
    }
    for (int i = 0; i < out->count; i++) {
        const char *name = out->tensors[i].name;
        const char *listed = json_string_value(json_object_get(map, name));
        if (!listed)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: shard '%s' holds tensor '%s', which weight_map does not list",
                             path, shard, name);
        if (strcmp(listed, shard) != 0)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: weight_map puts tensor '%s' in '%s', but shard '%s' holds it",
                             path, name, listed, shard);
    }
    return RWKV_OK;
}

static rwkv_status read_shards(const char *path, json_t *map, tensor_set *set, rwkv_error *err) {
    const char **shards = calloc(json_object_size(map) + 1, sizeof *shards);
    if (!shards) return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    int n;
    rwkv_status s = list_shards(path, map, shards, &n, err);
    char dir[FS_PATH_MAX];
    folder_of(path, dir, sizeof dir);
    for (int i = 0; s == RWKV_OK && i < n; i++) {
        tensor_set shard;
        s = read_shard(path, dir, shards[i], map, set->file.is_mapped == 2, &shard, err);
        if (s == RWKV_OK && !set->format) set->format = shard.format;
        if (s == RWKV_OK && (s = tensor_set_merge(set, &shard, err)) != RWKV_OK && err) rwkv_error_prefix(err, path);
        tensor_set_free(&shard);
    }
    free(shards);
    if (s != RWKV_OK) return s;
    const char *tensor;
    json_t *v;
    json_object_foreach(map, tensor, v) {
        if (!tensor_set_find(set, tensor))
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: weight_map puts tensor '%s' in '%s', which does not hold it",
                             path, tensor, json_string_value(v));
    }
    return RWKV_OK;
}

rwkv_status shard_index_read(const char *path, tensor_set *set, rwkv_error *err) {
    json_counts counts = json_count((const char *)set->file.data, set->file.size);
    if (set->file.size > MAX_INDEX_BYTES || counts.values > MAX_INDEX_VALUES)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: a shard index of %zu bytes and %zu JSON values is larger than rwkv.c accepts (%zu "
                         "bytes, %zu values)",
                         path, set->file.size, counts.values, MAX_INDEX_BYTES, MAX_INDEX_VALUES);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)set->file.data, set->file.size, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) /* a tensor listed twice in weight_map is a duplicate key */
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: bad shard index at line %d: %.*s", path, jerr.line,
                         (int)strcspn(jerr.text, "\r\n"), jerr.text);
    json_t *map = json_object_get(root, "weight_map");
    rwkv_status s = json_is_object(map) ? read_shards(path, map, set, err)
                                        : rwkv_fail(err, RWKV_ERR_FORMAT, "%s: no \"weight_map\" object", path);
    json_decref(root);
    return s == RWKV_OK ? rwkv_ok(err) : s;
}
