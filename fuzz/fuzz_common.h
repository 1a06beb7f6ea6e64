/* Shared body of the fuzz targets: run one reader over the input bytes held
 * in memory (no temp file), as if they had been mapped from a file, and
 * check the reader's contract: OK with every tensor's bytes readable, or an
 * error whose one-line message names the file. A broken contract aborts, so
 * libFuzzer and the standalone driver both report it as a crash. */
#ifndef RWKV_FUZZ_COMMON_H
#define RWKV_FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats.h"

#define FUZZ_PATH "fuzz-input"

typedef rwkv_status (*fuzz_reader)(const char *path, tensor_set *set, rwkv_error *err);

static volatile unsigned fuzz_sink; /* keeps the reads below from being optimised away */

static int fuzz_run(fuzz_reader reader, const uint8_t *data, size_t size) {
    tensor_set set;
    rwkv_error err;
    tensor_set_init(&set);
    set.file.data = data; /* is_mapped = 0: the set does not own the bytes */
    set.file.size = size;
    rwkv_status s = reader(FUZZ_PATH, &set, &err);
    if (s == RWKV_OK) {
        unsigned sum = 0; /* every view must lie inside the input or a buffer of the set */
        for (int i = 0; i < set.count; i++) {
            const uint8_t *p = set.tensors[i].data;
            for (size_t k = 0; k < set.tensors[i].nbytes; k++) sum += p[k];
        }
        fuzz_sink += sum;
    } else if (err.code != s || !err.message[0] || !strstr(err.message, FUZZ_PATH) || strchr(err.message, '\n')) {
        abort();
    }
    tensor_set_free(&set);
    return 0;
}

#endif
