/* Small filesystem helpers: existence, mkdir -p, an exclusive directory lock,
 * absolute paths, and the check that an output is not one of the inputs
 * (rwkv_check_output, public in rwkv.h). */
#ifndef RWKV_CORE_FS_H
#define RWKV_CORE_FS_H

#include "core/error.h"

/* The longest path the helpers and their callers build. */
#define FS_PATH_MAX 4096

int file_exists(const char *path);
int is_directory(const char *path);
/* Creates dir and its missing parents; RWKV_ERR_IO when one cannot be made
 * or the path exists and is not a directory. */
rwkv_status mkdir_p(const char *dir, rwkv_error *err);
/* An exclusive lock on DIR/.lock, held through *fd_out until it is closed
 * (the kernel releases it however the process ends); RWKV_ERR_IO when
 * another process holds it. */
rwkv_status lock_dir(const char *dir, int *fd_out, rwkv_error *err);
/* The absolute, resolved path (malloc'ed); p itself (strdup'ed) when it
 * cannot be resolved; NULL only when out of memory. */
char *abs_path(const char *p);

#endif
