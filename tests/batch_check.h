/* The checks of rwkv_eval_batch that every architecture gets (included by
 * tests/test_eval_batch.c and tests/test_rwkv_versions.c, which bring the
 * models):
 *  - each row of a batch of streams with different histories equals
 *    rwkv_eval of the same token on the same state alone, within
 *    BATCH_ATOL + BATCH_RTOL |x| (the matrix-matrix kernels sum in another
 *    order than the matrix-vector kernels of rwkv_eval), logits and state;
 *  - a row does not depend on the batch: the same stream alone (n = 1), in
 *    a batch in reverse order or in a smaller batch gives the same bits;
 *  - two batched steps equal rwkv_eval_sequence of the two tokens, bit for bit;
 *  - bad arguments: a repeated or NULL state, a token outside the vocabulary.
 * States are rebuilt by replaying a token history (the GPT's KV cache cannot
 * be copied); a replay is deterministic, so equal histories give equal bits. */
#ifndef RWKV_TEST_BATCH_CHECK_H
#define RWKV_TEST_BATCH_CHECK_H

#include <stdint.h>

#include "rwkv.h"
#include "test.h"

#define BATCH_ATOL 2e-5
#define BATCH_RTOL 2e-5
#define BATCH_MAX 8

/* Stream i's history: 3 i + (i % 2) tokens (stream 0 is fresh). */
static int batch_history(int i, int V, int *tok) {
    int n = 3 * i + (i % 2);
    uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    for (int t = 0; t < n; t++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        tok[t] = (int)(s % (uint64_t)V);
    }
    return n;
}

/* A new state that has read stream i's history (RNN mode or sequence mode). */
static rwkv_state *batch_state(rwkv_model *m, int i, rwkv_error *err) {
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    int tok[3 * BATCH_MAX + 1];
    int n = batch_history(i, info.n_vocab, tok);
    rwkv_state *st = NULL;
    if (rwkv_state_new(m, &st, err) != RWKV_OK) return NULL;
    if (rwkv_eval_sequence(m, st, tok, (size_t)n, NULL, 0, err) != RWKV_OK) {
        rwkv_state_free(st);
        return NULL;
    }
    return st;
}

static int batch_same_bits(rwkv_state *a, rwkv_state *b, const float *la, const float *lb, int V) {
    size_t n = rwkv_state_size(a);
    if (memcmp(la, lb, sizeof(float) * (size_t)V) != 0) return 0;
    return n == rwkv_state_size(b) && (n == 0 || memcmp(rwkv_state_data(a), rwkv_state_data(b), n * sizeof(float)) == 0);
}

/* Runs every check on model m, rows against rwkv_eval within atol + rtol
 * |x|; returns 1, or 0 with *why set. */
__attribute__((unused)) static int batch_check_within(rwkv_model *m, double atol, double rtol, char *why, size_t wsz) {
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    const int V = info.n_vocab, B = BATCH_MAX;
    rwkv_state *st[BATCH_MAX] = {0}, *one = NULL, *rev[BATCH_MAX] = {0};
    int tok[BATCH_MAX], rtok[BATCH_MAX], ok = 0;
    float *lb = malloc(sizeof(float) * (size_t)V * B), *lr = malloc(sizeof(float) * (size_t)V * B);
    float *l1 = malloc(sizeof(float) * (size_t)V * 2);
    rwkv_error err = {0};
    if (!lb || !lr || !l1) goto out;
    for (int i = 0; i < B; i++) {
        tok[i] = (7 * i + 3) % V;
        if (!(st[i] = batch_state(m, i, &err)) || !(rev[i] = batch_state(m, B - 1 - i, &err))) goto out;
        rtok[i] = (7 * (B - 1 - i) + 3) % V;
    }
    if (rwkv_eval_batch(m, st, tok, (size_t)B, lb, &err) != RWKV_OK) goto out;
    if (rwkv_eval_batch(m, rev, rtok, (size_t)B, lr, &err) != RWKV_OK) goto out;
    for (int i = 0; i < B; i++) {
        /* rwkv_eval alone: equal within the tolerance */
        if (!(one = batch_state(m, i, &err)) || rwkv_eval(m, one, tok[i], l1, &err) != RWKV_OK) goto out;
        double r = tol_ratio(lb + (size_t)i * V, l1, (size_t)V, atol, rtol);
        double rs = info.state_floats
                        ? tol_ratio(rwkv_state_data(st[i]), rwkv_state_data(one), info.state_floats, atol, rtol)
                        : 0;
        if (!(r <= 1 && rs <= 1)) {
            snprintf(why, wsz, "row %d vs rwkv_eval: logits ratio %.3g, state ratio %.3g", i, r, rs);
            goto out;
        }
        if (rwkv_state_pos(st[i]) != rwkv_state_pos(one)) {
            snprintf(why, wsz, "row %d: position %zu, rwkv_eval %zu", i, rwkv_state_pos(st[i]), rwkv_state_pos(one));
            goto out;
        }
        rwkv_state_free(one);
        /* alone in a batch of one, and in reverse order: the same bits */
        if (!(one = batch_state(m, i, &err)) || rwkv_eval_batch(m, &one, &tok[i], 1, l1, &err) != RWKV_OK) goto out;
        if (!batch_same_bits(st[i], one, lb + (size_t)i * V, l1, V) ||
            !batch_same_bits(st[i], rev[B - 1 - i], lb + (size_t)i * V, lr + (size_t)(B - 1 - i) * V, V)) {
            snprintf(why, wsz, "row %d differs between batches of %d, 1 and reversed", i, B);
            goto out;
        }
        rwkv_state_free(one);
        one = NULL;
    }
    /* a smaller batch (rows 2..4) gives the rows of the big one */
    for (int i = 0; i < 3; i++) {
        rwkv_state_free(rev[i]);
        if (!(rev[i] = batch_state(m, 2 + i, &err))) goto out;
    }
    if (rwkv_eval_batch(m, rev, tok + 2, 3, lr, &err) != RWKV_OK) goto out;
    for (int i = 0; i < 3; i++)
        if (!batch_same_bits(st[2 + i], rev[i], lb + (size_t)(2 + i) * V, lr + (size_t)i * V, V)) {
            snprintf(why, wsz, "row %d differs in a batch of 3", 2 + i);
            goto out;
        }
    /* two batched steps == rwkv_eval_sequence of both tokens (all logits) */
    const int two[2] = {1 % V, 4 % V};
    rwkv_state_free(rev[0]);
    rwkv_state_free(rev[1]);
    if (!(rev[0] = batch_state(m, 3, &err)) || !(rev[1] = batch_state(m, 3, &err))) goto out;
    if (rwkv_eval_sequence(m, rev[0], two, 2, lr, 1, &err) != RWKV_OK ||
        rwkv_eval_batch(m, &rev[1], &two[0], 1, l1, &err) != RWKV_OK ||
        rwkv_eval_batch(m, &rev[1], &two[1], 1, l1 + V, &err) != RWKV_OK)
        goto out;
    if (memcmp(lr, l1, sizeof(float) * 2 * (size_t)V) != 0 || !batch_same_bits(rev[0], rev[1], lr, l1, V)) {
        snprintf(why, wsz, "two batched steps differ from rwkv_eval_sequence of the two tokens");
        goto out;
    }
    /* refusals, before anything is fed */
    rwkv_state *dup[2] = {st[0], st[0]}, *null_state[2] = {st[0], NULL};
    const int bad_tok[2] = {0, V};
    size_t pos0 = rwkv_state_pos(st[0]);
    if (rwkv_eval_batch(m, dup, tok, 2, NULL, &err) != RWKV_ERR_ARG ||
        rwkv_eval_batch(m, null_state, tok, 2, NULL, &err) != RWKV_ERR_ARG ||
        rwkv_eval_batch(m, st, bad_tok, 2, NULL, &err) != RWKV_ERR_ARG || rwkv_state_pos(st[0]) != pos0 ||
        rwkv_eval_batch(m, st, tok, 0, NULL, &err) != RWKV_OK) {
        snprintf(why, wsz, "a bad batch was not refused with RWKV_ERR_ARG (or fed a row)");
        goto out;
    }
    ok = 1;
out:
    if (!ok && !why[0]) snprintf(why, wsz, "%s", err.message[0] ? err.message : "out of memory");
    for (int i = 0; i < B; i++) {
        rwkv_state_free(st[i]);
        rwkv_state_free(rev[i]);
    }
    rwkv_state_free(one);
    free(lb);
    free(lr);
    free(l1);
    return ok;
}

/* batch_check_within the float kernels' tolerance (BATCH_ATOL, BATCH_RTOL). */
__attribute__((unused)) static int batch_check(rwkv_model *m, char *why, size_t wsz) {
    return batch_check_within(m, BATCH_ATOL, BATCH_RTOL, why, wsz);
}

#endif
