#include <stdlib.h>
#include <string.h>

#include "core/strmap.h"

uint64_t hash_bytes(const void *data, size_t len) {
    /* FNV-1a over 8-byte words with a final avalanche (splitmix64 finaliser). */
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)len;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    while (len--) h = (h ^ *p++) * 0x100000001b3ull;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

int strmap_init(strmap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    m->key = calloc(cap, sizeof *m->key);
    m->klen = calloc(cap, sizeof *m->klen);
    m->val = calloc(cap, sizeof *m->val);
    m->cap = cap;
    m->n = 0;
    if (!m->key || !m->klen || !m->val) {
        strmap_free(m);
        return -1;
    }
    return 0;
}

void strmap_free(strmap *m) {
    free(m->key);
    free(m->klen);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static size_t find_slot(const strmap *m, const char *key, size_t len) {
    size_t mask = m->cap - 1;
    size_t i = (size_t)hash_bytes(key, len) & mask;
    while (m->key[i]) {
        if (m->klen[i] == len && memcmp(m->key[i], key, len) == 0) return i;
        i = (i + 1) & mask;
    }
    return i;
}

static int grow(strmap *m) {
    strmap big;
    if (strmap_init(&big, m->cap)) return -1; /* doubles the capacity */
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->key[i]) continue;
        size_t j = find_slot(&big, m->key[i], m->klen[i]);
        big.key[j] = m->key[i];
        big.klen[j] = m->klen[i];
        big.val[j] = m->val[i];
    }
    big.n = m->n;
    strmap_free(m);
    *m = big;
    return 0;
}

int strmap_put(strmap *m, const char *key, size_t len, int val, int *old) {
    /* An empty key needs a non-NULL pointer to mark the slot as used. */
    static const char empty[1] = {0};
    if (!key) key = empty;
    if (len > UINT32_MAX) return -1;
    if ((m->n + 1) * 2 > m->cap && grow(m)) return -1;
    size_t i = find_slot(m, key, len);
    if (m->key[i]) {
        if (old) *old = m->val[i];
        m->val[i] = val;
        return 0;
    }
    if (old) *old = -1;
    m->key[i] = key;
    m->klen[i] = (uint32_t)len;
    m->val[i] = val;
    m->n++;
    return 0;
}

int strmap_get(const strmap *m, const char *key, size_t len) {
    static const char empty[1] = {0};
    if (!m->cap) return -1;
    if (!key) key = empty;
    size_t i = find_slot(m, key, len);
    return m->key[i] ? m->val[i] : -1;
}
