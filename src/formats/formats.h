/* Checkpoint file formats: bytes on disk -> a tensor_set with the official
 * RWKV key names, shapes in PyTorch order and the raw parameter values.
 *
 * Every reader takes a set whose `file` is already mapped, checks every
 * size and offset it reads against the file length before using it, and
 * reports problems as "PATH: what is wrong (offset N)". */
#ifndef RWKV_FORMATS_H
#define RWKV_FORMATS_H

#include <stdio.h>

#include "core/tensor.h"

/* Maps `path`, detects the format from its first bytes and reads it. `path`
 * may also be a transformers model folder or shard index (formats/hf.h);
 * transformers' tensor names come back as the official ones. */
rwkv_status checkpoint_read(const char *path, tensor_set *set, rwkv_error *err);
/* The same; in_memory: the files are read into memory instead of mapped
 * (mapped_file_read), shards included. */
rwkv_status checkpoint_read_ex(const char *path, int in_memory, tensor_set *set, rwkv_error *err);
/* One weights file as it is stored: no folder, no shard index, no renaming. */
rwkv_status checkpoint_read_file(const char *path, tensor_set *set, rwkv_error *err);
/* One shard of an index, mapped or read into memory as the index was. */
rwkv_status checkpoint_read_shard(const char *path, int in_memory, tensor_set *set, rwkv_error *err);

rwkv_status safetensors_read(const char *path, tensor_set *set, rwkv_error *err);
rwkv_status pth_read(const char *path, tensor_set *set, rwkv_error *err);     /* formats/pth.c */
rwkv_status rwkvcpp_read(const char *path, tensor_set *set, rwkv_error *err); /* formats/rwkvcpp.c */
rwkv_status gguf_read(const char *path, tensor_set *set, rwkv_error *err);    /* formats/gguf_rwkv.c */

/* Writes the tensors as safetensors, converting float tensors to `to` unless
 * it is DT_COUNT (keep). Written to a temporary file, fsynced, then renamed
 * over `path`, so a crash never leaves a half-written file behind. */
rwkv_status safetensors_write(const char *path, const tensor *tensors, int count, dtype to,
                              rwkv_error *err);

/* Makes the float32 values of tensor `index` (its element count) for
 * safetensors_write_filled. */
typedef rwkv_status (*tensor_fill_fn)(void *ctx, int index, float *values, rwkv_error *err);
/* The same for a model that is never whole in memory: a tensor without data
 * gets its values from `fill`, called once per tensor in order, and is stored
 * as its `type` (F32, F16 or BF16); tensors with data are written as they
 * are. Memory holds one tensor at a time. */
rwkv_status safetensors_write_filled(const char *path, const tensor *tensors, int count, tensor_fill_fn fill,
                                     void *ctx, rwkv_error *err);


#endif
