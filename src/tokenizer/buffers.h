/* Growable arrays shared by the tokenizer files (src/tokenizer/): the ids an
 * encoder appends, and byte buffers (decode tables, text being built). Every
 * function returns 0 on success and -1 when out of memory. */
#ifndef RWKV_TOKENIZER_BUFFERS_H
#define RWKV_TOKENIZER_BUFFERS_H

#include <stddef.h>

/* A growable array of ids. */
typedef struct tok_ids {
    int *v;
    size_t n, cap;
} tok_ids;
int tok_ids_reserve(tok_ids *a, size_t extra);
static inline int tok_ids_push(tok_ids *a, int id) {
    if (a->n == a->cap && tok_ids_reserve(a, 1)) return -1;
    a->v[a->n++] = id;
    return 0;
}

/* A growable byte buffer. */
typedef struct tok_buf {
    char *p;
    size_t n, cap;
} tok_buf;
int tok_buf_reserve(tok_buf *b, size_t extra);
int tok_buf_append(tok_buf *b, const void *data, size_t n);

#endif
