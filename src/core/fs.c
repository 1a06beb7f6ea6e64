#include "core/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

rwkv_status mkdir_p(const char *dir, rwkv_error *err) {
    char buf[FS_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: path too long", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return rwkv_fail(err, RWKV_ERR_IO, "%s: not a directory", buf);
    return RWKV_OK;
}

rwkv_status lock_dir(const char *dir, int *fd_out, rwkv_error *err) {
    char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "%s/.lock", dir);
    int fd = open(path, O_CREAT | O_RDWR, 0666);
    if (fd < 0) return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return rwkv_fail(err, RWKV_ERR_IO, "%s: another training process is using this directory", dir);
    }
    *fd_out = fd;
    return RWKV_OK;
}

const char *file_type_name(unsigned mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISREG(mode)) return "a regular file";
    return "not a regular file";
}

rwkv_status open_regular_file(const char *path, int *fd_out, size_t *size, rwkv_error *err) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rwkv_fail(err, RWKV_ERR_IO, "%s: is %s, not a regular file", path, file_type_name(st.st_mode));
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *fd_out = fd;
    *size = (size_t)st.st_size;
    return RWKV_OK;
}

rwkv_status fopen_regular_file(const char *path, FILE **out, rwkv_error *err) {
    int fd;
    size_t size;
    rwkv_status s = open_regular_file(path, &fd, &size, err);
    if (s != RWKV_OK) return s;
    *out = fdopen(fd, "rb");
    if (!*out) {
        int e = errno;
        close(fd);
        return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    return RWKV_OK;
}

rwkv_status read_regular_file(const char *path, size_t max, const char *what, char **data, size_t *len,
                              rwkv_error *err) {
    int fd;
    size_t size;
    rwkv_status s = open_regular_file(path, &fd, &size, err);
    if (s != RWKV_OK) return s;
    if (size > max) {
        close(fd);
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: %zu bytes, more than the %zu a %s may have", path, size, max,
                         what);
    }
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory for %zu bytes", path, size + 1);
    }
    size_t n = 0; /* a file that shrank meanwhile is read as it now is; one that grew, up to its size then */
    while (n < size) {
        ssize_t got = read(fd, buf + n, size - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return rwkv_fail(err, RWKV_ERR_IO, "%s: read failed: %s", path, strerror(e));
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return RWKV_OK;
}

rwkv_status read_file_or_fifo(const char *path, size_t max, const char *what, char **data, size_t *len,
                              rwkv_error *err) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISFIFO(st.st_mode)) return read_regular_file(path, max, what, data, len, err);
    FILE *f = fopen(path, "rb");
    if (!f) return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) { /* grow by doubling, never past max + 1 bytes */
            size_t next = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *b = n > max ? NULL : realloc(buf, next + 1);
            if (!b) break;
            buf = b;
            cap = next;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f), e = errno;
    fclose(f);
    rwkv_status s = !buf ? rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path)
                    : n > max ? rwkv_fail(err, RWKV_ERR_FORMAT, "%s: more than the %zu bytes a %s may have", path, max,
                                          what)
                    : bad ? rwkv_fail(err, RWKV_ERR_IO, "%s: read failed: %s", path, strerror(e))
                          : RWKV_OK;
    if (s != RWKV_OK) {
        free(buf);
        return s;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return RWKV_OK;
}

rwkv_status rwkv_check_output(const char *out_path, const char *const *inputs, size_t n_inputs, rwkv_error *err) {
    struct stat out, in;
    if (!out_path || stat(out_path, &out) != 0) return RWKV_OK; /* nothing there yet: nothing to replace */
    for (size_t i = 0; i < n_inputs; i++) {
        if (!inputs[i] || stat(inputs[i], &in) != 0) continue;
        if (in.st_dev != out.st_dev || in.st_ino != out.st_ino) continue;
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: is the same file as the input %s; writing it would destroy the input "
                         "(choose another output path)", out_path, inputs[i]);
    }
    return RWKV_OK;
}

char *abs_path(const char *p) {
    char *r = realpath(p, NULL);
    return r ? r : strdup(p);
}
