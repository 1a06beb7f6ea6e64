/*
 * rwkv_recall.h — a synthetic recall probe (docs/results.md): multi-query
 * associative recall (MQAR, as in Arora et al. 2023, "Zoology"). Each
 * example stores N key-value pairs, then asks for the value of every key,
 * in another order. Attention can look the queried key up by content in its
 * context however many pairs there are; a fixed-size recurrent state has to
 * hold all N pairs at once (docs/model.md §7.5, limitation 1),
 * so its accuracy is expected to fall as N grows.
 *
 * The examples are token sequences over a small vocabulary of their own (not
 * bytes), written as a token file that `rwkv train` reads directly:
 *
 *     token 0           END   ends an example
 *     token 1           ASK   a query follows
 *     2 .. 2+V-1        the values 0..V-1
 *     2+V .. 2+V+K-1    the keys k0..k(K-1)
 *
 * One example with N = 3 (echo on): the pairs, each as value, key, value
 * again; then every key once, in random order, each as ASK, key, value; END:
 *
 *     7 k12 7  3 k40 3  7 k5 7  ASK k40 3  ASK k12 7  ASK k5 7  END
 *
 * Keys are distinct within an example, values uniform (they may repeat).
 * The scored tokens are the values after the queried keys (teacher forcing:
 * the earlier answers are given). The second copy of a pair's value
 * ("echo") is predictable from the token before it; it rewards a model for
 * carrying the previous token to the key's position, the step that binds the
 * value to its key. RWKV-4's token shift does this built in; a transformer
 * has to learn it, and without the echo (pairs written key, value) the one
 * of docs/results.md does not within that probe's budget. With echo off a
 * pair is "key value".
 *
 * The question-first order (question_first = 1) tells the model what will be
 * asked before it reads the pairs: the example opens with ASK and the queried
 * keys in the order of the queries, then continues as above. With N = 3 and
 * two queries:
 *
 *     ASK k40 k5  7 k12 7  3 k40 3  7 k5 7  ASK k40 3  ASK k5 7  END
 *
 * A recurrent state then has to keep only the queried pairs; attention can
 * look them up either way. The examples of both orders draw the same random
 * numbers, so one seed gives the same pairs and queries in both.
 *
 * Baselines: 1/V for a model that kept nothing; rwkv_recall_unbound_score()
 * for one that knows which values occurred but not which key holds which.
 *
 * Same conventions as rwkv.h; deterministic for a seed.
 */
#ifndef RWKV_RECALL_H
#define RWKV_RECALL_H

#include <stddef.h>
#include <stdint.h>

#include "rwkv.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RWKV_RECALL_MAX_KEYS 1024
#define RWKV_RECALL_MAX_VALUES 64
#define RWKV_RECALL_END 0
#define RWKV_RECALL_ASK 1

typedef struct rwkv_recall_spec {
    int n_pairs;   /* N: key-value pairs per example, 1..n_keys (8) */
    int n_keys;    /* K: keys, 1..1024 (256) */
    int n_values;  /* V: values, 2..64 (10) */
    int n_queries; /* queries per example, 1..n_pairs (0: n_pairs) */
    int echo;      /* 1: pairs written value key value; 0: key value (1) */
    int question_first; /* 1: the queried keys are announced before the pairs (0) */
} rwkv_recall_spec;

RWKV_API rwkv_recall_spec rwkv_recall_spec_default(void);

/* Checks a spec (an n_queries of 0 stands for n_pairs). */
RWKV_API rwkv_status rwkv_recall_spec_check(const rwkv_recall_spec *spec, rwkv_error *err);

/* The vocabulary size, 2 + V + K, and the token ids of a spec. */
RWKV_API int rwkv_recall_vocab(const rwkv_recall_spec *spec);
RWKV_API int rwkv_recall_value_token(const rwkv_recall_spec *spec, int v);
RWKV_API int rwkv_recall_key_token(const rwkv_recall_spec *spec, int k);

/* Tokens of an example: (2 + echo) N + 3 Q + 1, plus 1 + Q question-first
 * (Q: the queries, n_queries or N). */
RWKV_API size_t rwkv_recall_example_len(const rwkv_recall_spec *spec);

/* The random source: any 64-bit value seeds it. */
typedef struct rwkv_recall_rng {
    uint64_t s;
} rwkv_recall_rng;
RWKV_API void rwkv_recall_seed(rwkv_recall_rng *rng, uint64_t seed);

/* One example's answers: for query i, answer[i] is the index of its value
 * token and source[i] the index of the (first) value token of the pair that
 * holds it. */
typedef struct rwkv_recall_answers {
    int n;
    size_t answer[RWKV_RECALL_MAX_KEYS];
    size_t source[RWKV_RECALL_MAX_KEYS];
} rwkv_recall_answers;

/* Writes one example into tokens[0 .. rwkv_recall_example_len() - 1]
 * (cap: room in tokens); answers may be NULL. Returns the length written,
 * 0 on a bad argument. */
RWKV_API size_t rwkv_recall_example(const rwkv_recall_spec *spec, rwkv_recall_rng *rng, int *tokens, size_t cap,
                           rwkv_recall_answers *answers);

/* Renders tokens of a spec as text, e.g. "7 k12 7 ASK k12 7 END" (tokens
 * outside the vocabulary as "?"); NUL-terminated, truncated to cap. Returns
 * the length the full text needs (as snprintf). */
RWKV_API size_t rwkv_recall_render(const rwkv_recall_spec *spec, const int *tokens, size_t n, char *buf, size_t cap);

/* A training token file (the format of `rwkv tokenize --out`, vocabulary
 * rwkv_recall_vocab()) of at least n_tokens: examples one after another,
 * each with its number of pairs drawn uniformly from [pairs_min, pairs_max];
 * spec gives K, V, echo and n_queries (0: every pair is queried, otherwise
 * min(n_queries, pairs)); its n_pairs is not used. Written atomically. */
RWKV_API rwkv_status rwkv_recall_write_corpus(const char *path, const rwkv_recall_spec *spec, int pairs_min, int pairs_max,
                                     size_t n_tokens, uint64_t seed, rwkv_error *err);

/* Scores one example given the model's predictions: logits [len-1][n_vocab],
 * row p the prediction for tokens[p + 1] after tokens[0..p]. For an example
 * at offset o of a longer sequence, pass tokens + o, len - o and the logits
 * from row o on. A query is correct when its value is the argmax of its row.
 * Returns the number of correct queries (0..answers->n). */
RWKV_API int rwkv_recall_score(const int *tokens, size_t len, const rwkv_recall_answers *answers, const float *logits,
                      int n_vocab);

/* The expected number of correct queries of the best model that knows the
 * values of the example as a multiset but not which key holds which: at each
 * query it names a most frequent value among those not yet answered (the
 * earlier answers are given), right with probability (its count) / (values
 * left). */
RWKV_API double rwkv_recall_unbound_score(const rwkv_recall_spec *spec, const int *tokens, size_t len,
                                 const rwkv_recall_answers *answers);

#ifdef __cplusplus
}
#endif
#endif /* RWKV_RECALL_H */
