#include "core/huge_pages.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

void *huge_pages_map(size_t bytes, size_t *mapped_bytes) {
    const size_t huge_page = (size_t)2 << 20, page = (size_t)sysconf(_SC_PAGESIZE);
    bytes = (bytes + page - 1) / page * page;
    if (bytes == 0) return NULL;
    /* a huge page more than asked, then the ends around the aligned part
     * given back (the head may be empty, the tail never is) */
    uint8_t *m = mmap(NULL, bytes + huge_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)m + huge_page - 1) & ~(uintptr_t)(huge_page - 1));
    if (p > m) munmap(m, (size_t)(p - m));
    munmap(p + bytes, huge_page - (size_t)(p - m));
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE); /* a hint: where it is refused the pages stay 4 KB */
#endif
    if (mapped_bytes) *mapped_bytes = bytes;
    return p;
}

void huge_pages_unmap(void *p, size_t mapped_bytes) {
    if (p) munmap(p, mapped_bytes);
}
