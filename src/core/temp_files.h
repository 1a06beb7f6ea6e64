/* The temporary files of the writes in progress, remembered so that a signal
 * handler can remove them (rwkv_remove_temp_files, public in rwkv.h) before
 * the process ends: an interrupted write then leaves nothing behind. */
#ifndef RWKV_CORE_TEMP_FILES_H
#define RWKV_CORE_TEMP_FILES_H

/* Remembers path (copied) until temp_files_forget; returns a handle for it,
 * or -1 when it could not be remembered (too many writes at once, or a path
 * longer than FS_PATH_MAX: the file is then still removed on every error
 * path, only not by a signal handler). */
int temp_files_remember(const char *path);
/* Forgets the handle's path (after the file was renamed or removed); -1 is a
 * no-op. */
void temp_files_forget(int handle);

#endif
