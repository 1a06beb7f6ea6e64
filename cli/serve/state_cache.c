/* The prefix state cache (serve/state_cache.h): a list in recency order,
 * most recent first. The budgets this serves hold tens to a few thousand
 * states, for which a scan of the entries' hashes is cheap next to one
 * decode step. */
#include <stdlib.h>
#include <string.h>

#include "state_cache.h"

typedef struct entry {
    struct entry *prev, *next;
    int *tokens;
    size_t n;
    uint64_t hash; /* of tokens[0..n) */
    rwkv_state *st;
    size_t bytes;
} entry;

struct state_cache {
    rwkv_model *m;
    size_t budget, bytes, count, state_bytes;
    entry *head, *tail;
};

/* FNV-1a over the token ids, extended one token at a time. */
#define HASH_SEED 0xcbf29ce484222325ull
static uint64_t hash_step(uint64_t h, int token) {
    uint32_t t = (uint32_t)token;
    for (int i = 0; i < 4; i++) {
        h ^= (t >> (8 * i)) & 0xff;
        h *= 0x100000001b3ull;
    }
    return h;
}

state_cache *state_cache_new(rwkv_model *m, size_t budget_bytes) {
    state_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->m = m;
    c->budget = budget_bytes;
    rwkv_state *probe;
    if (rwkv_state_new(m, &probe, NULL) != RWKV_OK) {
        free(c);
        return NULL;
    }
    c->state_bytes = rwkv_state_size(probe) * sizeof(float);
    rwkv_state_free(probe);
    return c;
}

static void unlink_entry(state_cache *c, entry *e) {
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(state_cache *c, entry *e) {
    e->next = c->head;
    e->prev = NULL;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static void drop(state_cache *c, entry *e) {
    unlink_entry(c, e);
    c->bytes -= e->bytes;
    c->count--;
    rwkv_state_free(e->st);
    free(e->tokens);
    free(e);
}

void state_cache_free(state_cache *c) {
    if (!c) return;
    while (c->head) drop(c, c->head);
    free(c);
}

static uint64_t hash_tokens(const int *tokens, size_t n) {
    uint64_t h = HASH_SEED;
    for (size_t i = 0; i < n; i++) h = hash_step(h, tokens[i]);
    return h;
}

void state_cache_put(state_cache *c, const int *tokens, size_t n, const rwkv_state *st) {
    size_t bytes = c->state_bytes + n * sizeof(int) + sizeof(entry);
    if (n == 0 || c->state_bytes == 0 || bytes > c->budget) return;
    uint64_t h = hash_tokens(tokens, n);
    for (entry *e = c->head; e; e = e->next)
        if (e->n == n && e->hash == h && memcmp(e->tokens, tokens, n * sizeof(int)) == 0) {
            rwkv_state_copy(e->st, st, NULL); /* the same tokens give the same state: refresh it */
            unlink_entry(c, e);
            push_front(c, e);
            return;
        }
    while (c->tail && c->bytes + bytes > c->budget) drop(c, c->tail);
    entry *e = calloc(1, sizeof *e);
    if (!e) return;
    e->tokens = malloc(n * sizeof(int));
    if (!e->tokens || rwkv_state_new(c->m, &e->st, NULL) != RWKV_OK || rwkv_state_copy(e->st, st, NULL) != RWKV_OK) {
        rwkv_state_free(e->st);
        free(e->tokens);
        free(e);
        return;
    }
    memcpy(e->tokens, tokens, n * sizeof(int));
    e->n = n;
    e->hash = h;
    e->bytes = bytes;
    push_front(c, e);
    c->bytes += bytes;
    c->count++;
}

size_t state_cache_get(state_cache *c, const int *tokens, size_t n, size_t max_len, rwkv_state *st) {
    if (max_len > n) max_len = n;
    if (!c->head || max_len == 0) return 0;
    uint64_t *prefix = malloc((max_len + 1) * sizeof *prefix); /* prefix[k]: hash of tokens[0..k) */
    if (!prefix) return 0;
    prefix[0] = HASH_SEED;
    for (size_t k = 0; k < max_len; k++) prefix[k + 1] = hash_step(prefix[k], tokens[k]);
    entry *best = NULL;
    for (entry *e = c->head; e; e = e->next)
        if (e->n <= max_len && (!best || e->n > best->n) && e->hash == prefix[e->n] &&
            memcmp(e->tokens, tokens, e->n * sizeof(int)) == 0)
            best = e;
    free(prefix);
    if (!best || rwkv_state_copy(st, best->st, NULL) != RWKV_OK) return 0;
    unlink_entry(c, best);
    push_front(c, best);
    return best->n;
}

size_t state_cache_bytes(const state_cache *c) { return c->bytes; }
size_t state_cache_entries(const state_cache *c) { return c->count; }
