/* Small filesystem helpers: existence, mkdir -p, an exclusive directory lock,
 * absolute paths, and the check that an output is not one of the inputs
 * (rwkv_check_output, public in rwkv.h). */
#ifndef RWKV_CORE_FS_H
#define RWKV_CORE_FS_H

#include <stdio.h>

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
/* Opens path read-only and checks that it is a regular file before anything
 * reads it: the open does not wait for a writer on a FIFO or for a device
 * (O_NONBLOCK, cleared again once the type is known), so a FIFO, socket,
 * device or directory is a prompt RWKV_ERR_IO naming what it is. On success
 * *fd_out is a blocking descriptor and *size the file's size. */
rwkv_status open_regular_file(const char *path, int *fd_out, size_t *size, rwkv_error *err);
/* open_regular_file as a stdio stream for reading. */
rwkv_status fopen_regular_file(const char *path, FILE **out, rwkv_error *err);
/* A whole regular file, read into memory (NUL-terminated; the NUL is not
 * counted in *len). A file larger than max bytes is RWKV_ERR_FORMAT naming
 * the limit and `what` the file was expected to be; nothing is allocated
 * beyond the file's size. */
rwkv_status read_regular_file(const char *path, size_t max, const char *what, char **data, size_t *len,
                              rwkv_error *err);
/* read_regular_file for a file that may also be a FIFO (a pipe from another
 * process, which may hold the reader until it writes): a FIFO is read as it
 * comes, up to max bytes, without knowing its size first. */
rwkv_status read_file_or_fifo(const char *path, size_t max, const char *what, char **data, size_t *len,
                              rwkv_error *err);
/* "a FIFO", "a directory", ... for a file type from stat's st_mode. */
const char *file_type_name(unsigned mode);
/* The absolute, resolved path (malloc'ed); p itself (strdup'ed) when it
 * cannot be resolved; NULL only when out of memory. */
char *abs_path(const char *p);

#endif
