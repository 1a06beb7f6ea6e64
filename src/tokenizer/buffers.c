/* The growable id arrays and byte buffers every tokenizer file uses
 * (src/tokenizer/buffers.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/buffers.h"

int tok_ids_reserve(tok_ids *a, size_t extra) {
    if (a->cap - a->n >= extra) return 0;
    size_t cap = a->cap ? a->cap : 64;
    while (cap - a->n < extra) {
        if (cap > SIZE_MAX / 2 / sizeof *a->v) return -1;
        cap *= 2;
    }
    int *v = realloc(a->v, cap * sizeof *v);
    if (!v) return -1;
    a->v = v;
    a->cap = cap;
    return 0;
}

int tok_buf_reserve(tok_buf *b, size_t extra) {
    if (b->cap - b->n >= extra) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n < extra) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tok_buf_append(tok_buf *b, const void *data, size_t n) {
    if (tok_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    return 0;
}
