/* Crash-safe file writes: a file is either the old one or the complete new
 * one, never a half-written mix. */
#ifndef RWKV_CORE_ATOMIC_WRITE_H
#define RWKV_CORE_ATOMIC_WRITE_H

#include <stdio.h>

#include "core/error.h"

/* Writes a file through `write_fn` into path atomically (a temp file created
 * exclusively in the same directory, never through a link + fsync + rename +
 * fsync of the directory). The temp file is removed on every error and, while
 * the write is in progress, by rwkv_remove_temp_files (a signal handler's
 * call). Shared by every writer of the project. */
typedef rwkv_status (*atomic_write_fn)(FILE *f, void *ctx, rwkv_error *err);
rwkv_status atomic_write_file(const char *path, atomic_write_fn fn, void *ctx, rwkv_error *err);

#endif
