/* Shared pieces of the fuzz targets whose parser reads a file by its path
 * (state files, config.json, LAMBADA, token files) or text in memory
 * (tokenizers, HTTP bodies): the input is written to one temporary file per
 * process, and a failure must keep the library's error contract (a non-empty
 * one-line message; naming the file when there is one). A broken contract
 * aborts, so libFuzzer and the standalone driver both report it. */
#ifndef RWKV_FUZZ_FILE_H
#define RWKV_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rwkv.h"

static volatile unsigned fuzz_sink; /* keeps results from being optimised away */

/* The input as the file fuzz_path(); the same path for every input. */
static inline const char *fuzz_file(const uint8_t *data, size_t size) {
    static char path[256];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/rwkv-fuzz-%ld", dir && *dir ? dir : "/tmp", (long)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) abort();
    return path;
}

/* data[0, size) copied and NUL-terminated (the parsers take text). */
static inline char *fuzz_text(const uint8_t *data, size_t size) {
    char *t = malloc(size + 1);
    if (!t) abort();
    memcpy(t, data, size);
    t[size] = '\0';
    return t;
}

/* The error contract: s and err agree, one non-empty line naming `name`
 * (when not NULL). */
static inline void fuzz_check_error(rwkv_status s, const rwkv_error *err, const char *name) {
    if (s == RWKV_OK) return;
    if (err->code != s || !err->message[0] || strchr(err->message, '\n') || (name && !strstr(err->message, name)))
        abort();
}

#endif
