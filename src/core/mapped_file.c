#include "core/mapped_file.h"

#include "core/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

rwkv_status mapped_file_open(const char *path, mapped_file *mf, rwkv_error *err) {
    memset(mf, 0, sizeof *mf);
    int fd;
    size_t size;
    rwkv_status s = open_regular_file(path, &fd, &size, err);
    if (s != RWKV_OK) return s;
    if (size == 0) {
        close(fd);
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: file is empty", path);
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    mf->data = p;
    mf->size = size;
    mf->is_mapped = 1;
    return rwkv_ok(err);
}

void mapped_file_close(mapped_file *mf) {
    if (mf->is_mapped) munmap((void *)mf->data, mf->size);
    memset(mf, 0, sizeof *mf);
}
