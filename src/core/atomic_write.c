#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/atomic_write.h"

/* Temp file in the target's directory (rename is atomic only within one file
 * system), fsync of the data before the rename and of the directory after it:
 * after a crash either the old file or the complete new one is there. */
rwkv_status atomic_write_file(const char *path, atomic_write_fn fn, void *ctx, rwkv_error *err) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 32);
    if (!tmp) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    snprintf(tmp, len + 32, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rwkv_status s = rwkv_fail(err, RWKV_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    rwkv_status s = fn(f, ctx, err);
    if (s == RWKV_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        s = rwkv_fail(err, RWKV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && s == RWKV_OK)
        s = rwkv_fail(err, RWKV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (s == RWKV_OK && rename(tmp, path) != 0)
        s = rwkv_fail(err, RWKV_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (s != RWKV_OK) {
        unlink(tmp);
    } else {
        /* make the rename itself durable */
        char *dir = strdup(path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            const char *d = ".";
            if (slash) {
                *slash = '\0';
                d = slash == dir ? "/" : dir;
            }
            int dfd = open(d, O_RDONLY);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            free(dir);
        }
    }
    free(tmp);
    return s;
}
