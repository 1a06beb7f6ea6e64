/* The run's settings as DIR/config.json, written atomically: every numeric
 * option, the paths, the tokenizer and the architecture, so a resume
 * continues with exactly the settings the run started with. */
#ifndef RWKV_TRAIN_RUN_CONFIG_H
#define RWKV_TRAIN_RUN_CONFIG_H

#include "core/error.h"
#include "rwkv_train.h"

/* The run's settings. Strings of `opt` point into this struct. config.json
 * holds "arch" ("rwkv4" when absent: runs written before the GPT baseline)
 * and "n_head" (0 when absent), "device" and "precision" besides every
 * numeric option. */
typedef struct train_config {
    rwkv_train_options opt;
    char *data_path, *out_dir, *init_path, *tokenizer, *arch;
    char *device, *precision; /* as trained ("cpu" and "fp32" when absent: runs from before the GPU) */
    char *tokens_path; /* the token file the run reads */
    int n_vocab;
} train_config;

rwkv_status train_config_write(const char *path, const train_config *c, rwkv_error *err);
/* Options absent from the file keep their defaults (rwkv_train_options_default). */
rwkv_status train_config_read(const char *path, train_config *c, rwkv_error *err);
void train_config_free(train_config *c);

#endif
