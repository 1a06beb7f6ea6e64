/* Anonymous memory on 2 MB boundaries, marked for transparent huge pages:
 * long read-mostly buffers (a model's load-time copies, the read-bandwidth
 * probe) then take one TLB entry per 2 MB instead of 512 (docs/perf.md,
 * change 33), and so do the training step's activations and gradients, which
 * its products read and write a row apart (change 65). */
#ifndef RWKV_CORE_HUGE_PAGES_H
#define RWKV_CORE_HUGE_PAGES_H

#include <stddef.h>

/* `bytes` (rounded up to whole pages, *mapped_bytes: how many) zeroed and
 * aligned to 2 MB; NULL when bytes is 0 or the mapping fails. Where the
 * kernel refuses the hint the pages stay 4 KB: the memory is the same. */
void *huge_pages_map(size_t bytes, size_t *mapped_bytes);
/* Gives back what huge_pages_map returned (its *mapped_bytes); NULL is a no-op. */
void huge_pages_unmap(void *p, size_t mapped_bytes);

#endif
