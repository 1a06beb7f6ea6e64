#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/atomic_write.h"
#include "core/rng.h"
#include "core/temp_files.h"

/* Creates "<path>.tmp.XXXXXX" exclusively: O_EXCL fails on any existing name,
 * a symbolic link included (O_NOFOLLOW makes that explicit), so nothing
 * planted there is ever written through. Mode 0666 as for any new file: the
 * umask applies. The suffix is random, so that the name cannot be taken in
 * advance; a taken name is skipped. Returns the descriptor, or -1 (errno set). */
static int create_temp(const char *path, char *tmp, size_t size) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static atomic_uint_fast64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 16 ^
                    (uint64_t)(uintptr_t)tmp ^ atomic_fetch_add(&counter, 1) << 48;
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t r = splitmix64(&seed);
        char suffix[7];
        for (int i = 0; i < 6; i++, r /= 62) suffix[i] = alphabet[r % 62];
        suffix[6] = '\0';
        snprintf(tmp, size, "%s.tmp.%s", path, suffix);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1; /* errno is EEXIST */
}

/* fsync of the directory holding path, so that the rename itself survives a crash. */
static void sync_parent_dir(const char *path) {
    char *dir = strdup(path);
    if (!dir) return;
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

/* Temp file in the target's directory (rename is atomic only within one file
 * system), fsync of the data before the rename and of the directory after it:
 * after a crash either the old file or the complete new one is there. The
 * temp file is removed on every error, and by rwkv_remove_temp_files while
 * the write is in progress. */
rwkv_status atomic_write_file(const char *path, atomic_write_fn fn, void *ctx, rwkv_error *err) {
    size_t size = strlen(path) + 16;
    char *tmp = malloc(size);
    if (!tmp) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    int fd = create_temp(path, tmp, size);
    if (fd < 0) {
        rwkv_status s = rwkv_fail(err, RWKV_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    int handle = temp_files_remember(tmp);
    rwkv_status s = RWKV_OK;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        s = rwkv_fail(err, RWKV_ERR_IO, "%s: cannot open: %s", tmp, strerror(errno));
        close(fd);
    } else {
        s = fn(f, ctx, err);
        if (s == RWKV_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
            s = rwkv_fail(err, RWKV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        if (fclose(f) != 0 && s == RWKV_OK)
            s = rwkv_fail(err, RWKV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    }
    if (s == RWKV_OK && rename(tmp, path) != 0)
        s = rwkv_fail(err, RWKV_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (s != RWKV_OK) unlink(tmp);
    temp_files_forget(handle);
    if (s == RWKV_OK) sync_parent_dir(path);
    free(tmp);
    return s;
}
