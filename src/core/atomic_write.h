/* Crash-safe file writes: a file is either the old one or the complete new
 * one, never a half-written mix. */
#ifndef RWKV_CORE_ATOMIC_WRITE_H
#define RWKV_CORE_ATOMIC_WRITE_H

#include <stdio.h>

#include "core/error.h"

/* Writes a file through `write_fn` into path atomically (temp file in the
 * same directory + fsync + rename + fsync of the directory). Shared by every
 * writer of the project. */
typedef rwkv_status (*atomic_write_fn)(FILE *f, void *ctx, rwkv_error *err);
rwkv_status atomic_write_file(const char *path, atomic_write_fn fn, void *ctx, rwkv_error *err);

#endif
