/* A freshly initialised model for a test: rwkv_init_checkpoint writes it to
 * a temporary file, which is loaded (2 threads) and removed. Returns NULL
 * with *why set on failure. */
#ifndef RWKV_TEST_INIT_MODEL_H
#define RWKV_TEST_INIT_MODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "rwkv.h"
#include "rwkv_train.h"

__attribute__((unused)) static rwkv_model *init_model(const rwkv_init_options *o, char *why, size_t size) {
    char path[] = "/tmp/rwkv-test-model-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(why, size, "mkstemp failed");
        return NULL;
    }
    close(fd);
    rwkv_error err;
    rwkv_model *m = NULL;
    if (rwkv_init_checkpoint(o, path, &err) != RWKV_OK || rwkv_model_load(path, &m, &err) != RWKV_OK) {
        snprintf(why, size, "%s", err.message);
        m = NULL;
    }
    unlink(path);
    if (m) rwkv_model_set_threads(m, 2);
    return m;
}

#endif
