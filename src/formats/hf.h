/* transformers' RWKV-4 layout (RwkvForCausalLM): a folder with config.json
 * and model.safetensors (or shards listed by model.safetensors.index.json,
 * or pytorch_model.bin), with transformers' tensor names. Read into and
 * written from a tensor_set with the official names (docs/formats.md). */
#ifndef RWKV_FORMATS_HF_H
#define RWKV_FORMATS_HF_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

/* ---- names (hf_layout.c) ---- */

/* When the set holds transformers' names (recognised from the names alone),
 * renames every tensor to its official name; an unknown name is an error.
 * A set with official names is left as it is. */
rwkv_status hf_layout_to_official(const char *path, tensor_set *set, rwkv_error *err);

/* `t` (an official name) as transformers stores it: *out views t's data under
 * the transformers name written into `name`, with transformers' shape. */
rwkv_status hf_layout_tensor(const tensor *t, char *name, size_t size, tensor *out, rwkv_error *err);

/* The shape an RWKV-4 config.json describes, read from official-name tensors. */
typedef struct hf_shape {
    int64_t n_vocab, n_embd, n_layer, dim_att, n_ffn;
} hf_shape;
rwkv_status hf_shape_of(const char *path, const tensor_set *set, hf_shape *out, rwkv_error *err);

/* ---- config.json (hf_config.c) ---- */

/* Reads DIR/config.json when present and, when it is transformers' (it has
 * model_type), checks every field that describes the model against the
 * tensors (official names); a mismatch is an error naming the field. With
 * tie_word_embeddings, head.weight becomes a view of emb.weight. */
rwkv_status hf_config_check(const char *dir, tensor_set *set, rwkv_error *err);

/* Writes the config.json transformers needs to build RwkvForCausalLM. */
rwkv_status hf_config_write(const char *path, const hf_shape *shape, dtype weights, rwkv_error *err);

/* ---- folders and shards (hf_folder.c) ---- */

/* The weights file of a transformers folder, in transformers' own order of
 * preference: model.safetensors, model.safetensors.index.json,
 * pytorch_model.bin, pytorch_model.bin.index.json. */
rwkv_status hf_folder_weights(const char *dir, char *out, size_t size, rwkv_error *err);

/* Reads the shard index already mapped in set->file ({"weight_map": {tensor:
 * shard file}}): every shard, a plain file in the index's folder, is read and
 * merged into the set, and every tensor must be where the index says. */
rwkv_status shard_index_read(const char *path, tensor_set *set, rwkv_error *err);

/* Writes `set` (official names, an RWKV-4 model) into folder `dir`:
 * model.safetensors with transformers' names, converted to `to` unless it is
 * DT_COUNT, then config.json. */
rwkv_status hf_folder_write(const char *dir, const tensor_set *set, dtype to, rwkv_error *err);

#endif
