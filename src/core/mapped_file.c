#include "core/mapped_file.h"

#include "core/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The files mapped now, for rwkv_mapped_file_at, which a signal handler may
 * call: lookups take no lock and only read slots whose base was published
 * (atomically) after their size and path were written. */
#define MAPPED_SLOTS 64
static struct mapped_slot {
    atomic_int claimed;
    _Atomic(const uint8_t *) base;
    size_t size;
    char path[1024];
} slots[MAPPED_SLOTS];

static void register_mapping(const uint8_t *base, size_t size, const char *path) {
    for (int i = 0; i < MAPPED_SLOTS; i++) {
        if (atomic_exchange(&slots[i].claimed, 1)) continue;
        slots[i].size = size;
        snprintf(slots[i].path, sizeof slots[i].path, "%s", path);
        atomic_store(&slots[i].base, base);
        return;
    } /* more files mapped at once than slots: such a file is not named, nothing else changes */
}

static void unregister_mapping(const uint8_t *base) {
    for (int i = 0; i < MAPPED_SLOTS; i++)
        if (atomic_load(&slots[i].base) == base) {
            atomic_store(&slots[i].base, NULL);
            atomic_store(&slots[i].claimed, 0);
            return;
        }
}

const char *rwkv_mapped_file_at(const void *addr) {
    const uint8_t *a = addr;
    for (int i = 0; i < MAPPED_SLOTS; i++) {
        const uint8_t *b = atomic_load(&slots[i].base);
        if (b && a >= b && (size_t)(a - b) < slots[i].size) return slots[i].path;
    }
    return NULL;
}

static rwkv_status open_nonempty(const char *path, int *fd, size_t *size, rwkv_error *err) {
    rwkv_status s = open_regular_file(path, fd, size, err);
    if (s == RWKV_OK && *size == 0) {
        close(*fd);
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: file is empty", path);
    }
    return s;
}

rwkv_status mapped_file_open(const char *path, mapped_file *mf, rwkv_error *err) {
    memset(mf, 0, sizeof *mf);
    int fd;
    size_t size;
    rwkv_status s = open_nonempty(path, &fd, &size, err);
    if (s != RWKV_OK) return s;
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
#ifdef MADV_HUGEPAGE
    /* A hint (refused where the kernel or file system has no large folios):
     * what the first use brings into the page cache comes in 2 MB folios,
     * mapped by 2 MB entries, so a decode reading the weights from the
     * mapping meets a TLB miss per 2 MB rather than per 4 KB page. Pages
     * already cached keep the size they came in with (docs/perf.md, change 57). */
    madvise(p, size, MADV_HUGEPAGE);
#endif
    mf->data = p;
    mf->size = size;
    mf->is_mapped = 1;
    register_mapping(p, size, path);
    return rwkv_ok(err);
}

rwkv_status mapped_file_read(const char *path, mapped_file *mf, rwkv_error *err) {
    memset(mf, 0, sizeof *mf);
    int fd;
    size_t size;
    rwkv_status s = open_nonempty(path, &fd, &size, err);
    if (s != RWKV_OK) return s;
    void *p = NULL;
    if (posix_memalign(&p, 4096, size) != 0) {
        close(fd);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t n = 0;
    while (n < size) {
        ssize_t got = read(fd, (char *)p + n, size - n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            int e = got < 0 ? errno : 0;
            close(fd);
            free(p);
            return e ? rwkv_fail(err, RWKV_ERR_IO, "%s: read failed: %s", path, strerror(e))
                     : rwkv_fail(err, RWKV_ERR_IO, "%s: the file shrank while it was read (%zu of %zu bytes)",
                                 path, n, size);
        }
        n += (size_t)got;
    }
    close(fd);
    mf->data = p;
    mf->size = size;
    mf->is_mapped = 2;
    return rwkv_ok(err);
}

void mapped_file_close(mapped_file *mf) {
    if (mf->is_mapped == 1) {
        unregister_mapping(mf->data);
        munmap((void *)mf->data, mf->size);
    } else if (mf->is_mapped == 2) {
        free((void *)mf->data);
    }
    memset(mf, 0, sizeof *mf);
}
