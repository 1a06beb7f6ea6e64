/* The checkpoint files of a run directory:
 * DIR/model-SSSSSSSS.safetensors (the weights) and DIR/train_state-SSSSSSSS.bin
 * (train/train_state.h), a checkpoint being complete once its state file exists. */
#ifndef RWKV_TRAIN_RUN_FILES_H
#define RWKV_TRAIN_RUN_FILES_H

#include <stddef.h>

#include "core/error.h"

void ckpt_model_path(const char *dir, long step, char *buf, size_t size);
void ckpt_state_path(const char *dir, long step, char *buf, size_t size);
/* Steps that have a state file in dir, newest first; returns the count (-1 on error). */
int ckpt_list(const char *dir, long **steps, rwkv_error *err);
/* Deletes checkpoints older than the `keep` newest (keep <= 0: none) and stale temp files. */
void ckpt_prune(const char *dir, int keep);
/* Deletes leftover "NAME.tmp.XXXXXX" files of killed writers of run files in dir. */
void ckpt_remove_temps(const char *dir);
/* 1 when dir holds a file that a run writes (config.json, tokens.bin,
 * train.jsonl, model.safetensors, a checkpoint file), its name copied into
 * name; 0 when none (or dir cannot be read). A tokens.bin that is the file
 * data_path (may be NULL) does not count. */
int run_dir_find_run_file(const char *dir, const char *data_path, char *name, size_t size);

#endif
