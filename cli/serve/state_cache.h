/* The prefix state cache of `rwkv serve`: recurrent states kept at the end
 * of prompts and replies, keyed by the token sequence that produced them.
 * A request whose prompt starts with a cached sequence starts from that
 * state and feeds only the rest, so a conversation's next turn never re-reads
 * the earlier turns. Entries are evicted least recently used first when the
 * total size passes the budget.
 *
 * Lookup compares a 64-bit hash of each entry's tokens with the hash of the
 * prompt's prefix of the same length (all prefix hashes are computed in one
 * pass), then the tokens themselves: O(entries + prompt length).
 * Not thread-safe: the scheduler thread owns it. */
#ifndef RWKV_SERVE_STATE_CACHE_H
#define RWKV_SERVE_STATE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "rwkv.h"

typedef struct state_cache state_cache;

/* A cache of at most budget_bytes (states + keys) for states of model m;
 * budget 0 keeps nothing. NULL when out of memory. */
state_cache *state_cache_new(rwkv_model *m, size_t budget_bytes);
void state_cache_free(state_cache *c);

/* Stores a copy of st under tokens[0..n) (replacing an entry of the same
 * key); entries are evicted to make room. Does nothing when one state alone
 * is larger than the budget, n is 0, or memory runs out. */
void state_cache_put(state_cache *c, const int *tokens, size_t n, const rwkv_state *st);

/* Copies into st the state of the longest cached sequence that is a prefix
 * of tokens[0..n) and at most max_len long; returns its length (0: nothing
 * found, st untouched). */
size_t state_cache_get(state_cache *c, const int *tokens, size_t n, size_t max_len, rwkv_state *st);

/* Bytes held and entries. */
size_t state_cache_bytes(const state_cache *c);
size_t state_cache_entries(const state_cache *c);

#endif
