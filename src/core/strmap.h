/* A map from byte strings to ints: open addressing, linear probing. Used for
 * tensor names in tensor sets and for vocabularies in the tokenizers. The
 * keys are not copied: they must outlive the map. */
#ifndef RWKV_STRMAP_H
#define RWKV_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct strmap {
    const char **key;
    uint32_t *klen;
    int *val;
    size_t cap, n; /* cap is a power of two */
} strmap;

int strmap_init(strmap *m, size_t expected); /* 0, or -1 when out of memory */
void strmap_free(strmap *m);
/* Inserts or overwrites; returns 0, or -1 when out of memory.
 * When old is not NULL it receives the previous value or -1. */
int strmap_put(strmap *m, const char *key, size_t len, int val, int *old);
/* The value, or -1 when absent (also for a map never initialised). */
int strmap_get(const strmap *m, const char *key, size_t len);
uint64_t hash_bytes(const void *data, size_t len);

#endif
