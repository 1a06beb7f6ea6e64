/*
 * rwkv_recall.h — a synthetic long-range recall probe (docs/results.md): byte
 * strings in which key-value pairs are followed by D bytes of random filler
 * and then by queries that must be answered with the values. A model trained
 * on such text answers a query only if it kept the pairs across the filler:
 * attention can look them up at any distance inside its context, a
 * fixed-size recurrent state has to carry them (docs/rwkv-architecture.md
 * §7.5, limitation 1).
 *
 * One example (byte-level text, '\n' terminated):
 *
 *     K4 Q0 X9 B1 T7 M2|qwv ozkeh ... (D filler bytes) ...|X9 B1 M2 K4 T7 Q0\n
 *
 * keys: distinct capital letters; values: `value_len` decimal digits right
 * after their key; filler: uniform over "abcdefghijklmnopqrstuvwxyz " (27
 * symbols, so it cannot be compressed away); queries: `n_queries` of the keys
 * in random order, each followed by its value. The answer bytes are the
 * value digits of the queries; the prediction for them is scored. A model
 * that keeps nothing across the filler is right about 1 time in 10^value_len
 * (1 in n_pairs if it only learned which values occurred).
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

#define RWKV_RECALL_MAX_PAIRS 26
#define RWKV_RECALL_MAX_VALUE 8

typedef struct rwkv_recall_spec {
    int n_pairs;   /* key-value pairs per example, 1..26 (6) */
    int value_len; /* digits per value, 1..8 (1) */
    int n_queries; /* queries per example, 1..n_pairs (0: n_pairs) */
} rwkv_recall_spec;

rwkv_recall_spec rwkv_recall_spec_default(void);

/* Checks a spec (and fills n_queries = n_pairs when it is 0). */
rwkv_status rwkv_recall_spec_check(rwkv_recall_spec *spec, rwkv_error *err);

/* Bytes of an example with `distance` filler bytes. */
size_t rwkv_recall_example_len(const rwkv_recall_spec *spec, int distance);

/* The random source: any 64-bit value seeds it. */
typedef struct rwkv_recall_rng {
    uint64_t s;
} rwkv_recall_rng;
void rwkv_recall_seed(rwkv_recall_rng *rng, uint64_t seed);

/* One example's answers: for query i, answer[i] is the offset in the text of
 * the first digit of its value (the digits are text[answer[i] ..
 * answer[i] + value_len - 1]) and source[i] the offset of the same value in
 * the pair list. */
typedef struct rwkv_recall_answers {
    int n;
    size_t answer[RWKV_RECALL_MAX_PAIRS];
    size_t source[RWKV_RECALL_MAX_PAIRS];
} rwkv_recall_answers;

/* Writes one example with `distance` (>= 0) filler bytes into buf, which
 * must hold rwkv_recall_example_len() bytes (no NUL is added); answers may be
 * NULL. Returns the length written, 0 on a bad argument. */
size_t rwkv_recall_example(const rwkv_recall_spec *spec, rwkv_recall_rng *rng, int distance, char *buf,
                           size_t cap, rwkv_recall_answers *answers);

/* A training text of at least n_bytes: examples one after another, each
 * with a distance drawn from [dmin, dmax]: uniformly, or with log_uniform
 * as dmin - 1 + floor((dmax - dmin + 2)^u), u uniform in [0, 1) (as many
 * examples in [dmin, dmin+2] as in the upper half, so short, dense examples
 * teach the task and long ones stretch it). Written atomically. */
rwkv_status rwkv_recall_write_corpus(const char *path, const rwkv_recall_spec *spec, size_t n_bytes, int dmin,
                                     int dmax, int log_uniform, uint64_t seed, rwkv_error *err);

/* Scores one example given the model's predictions: logits [len-1][n_vocab],
 * row p the prediction for text[p + 1] after text[0..p] (byte-level tokens).
 * A query is correct when every digit of its value is the argmax of its row
 * (teacher forcing: the earlier digits are given). Returns the number of
 * correct queries (0..answers->n). */
int rwkv_recall_score(const rwkv_recall_spec *spec, const char *text, size_t len,
                      const rwkv_recall_answers *answers, const float *logits, int n_vocab);

#ifdef __cplusplus
}
#endif
#endif /* RWKV_RECALL_H */
