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
