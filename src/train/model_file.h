/* A trained model as float32 safetensors under its layout's names (the
 * official RWKV-4 key names and shapes for RWKV-4): the master weights,
 * written atomically. */
#ifndef RWKV_TRAIN_MODEL_FILE_H
#define RWKV_TRAIN_MODEL_FILE_H

#include "core/error.h"
#include "core/param_layout.h"

rwkv_status train_save_model(const char *path, const param_layout *lay, const float *params,
                             rwkv_error *err);
/* Loads an RWKV-4 checkpoint of any format and float dtype into a flat f32
 * buffer (layout filled, params malloc'ed). */
rwkv_status train_load_model(const char *path, param_layout *lay, float **params, rwkv_error *err);

#endif
