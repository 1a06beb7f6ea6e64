/* The sampler rules the batched-draw tests give their rows (included by
 * tests/test_batch_sample.c and tests/cuda/test_cuda_draw.c): row i is
 * greedy, cold, plain or hot; its nucleus off, 0, 0.4 or 0.85; top-k off,
 * 3 or 40; every third row bans six ids. And rules at the edges of their
 * ranges, with what they must draw. */
#ifndef RWKV_TEST_DRAW_RULES_H
#define RWKV_TEST_DRAW_RULES_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rwkv_sample.h"

static void row_params(int i, rwkv_sampler_params *p) {
    static const double temp[] = {0, 0.3, 1.0, 1.7}, top_p[] = {1.0, 0.0, 0.4, 0.85};
    static const int top_k[] = {0, 3, 40};
    static const int ban[] = {1, 2, 3, 5, 8, 13};
    rwkv_sampler_params_default(p);
    p->temperature = temp[i % 4];
    p->top_p = top_p[(i / 2) % 4];
    p->top_k = top_k[i % 3];
    if (i % 3 == 1) p->token_ban = ban, p->n_token_ban = 6;
}

/* Rules at the edges of their ranges for a vocabulary of V ids (the lists
 * are static: one set at a time). */
enum { EDGE_DRAWS = 8 };
static void edge_draws(int V, rwkv_draw *d) {
    static int ids[5], three[] = {3};
    static const float odd[] = {-INFINITY, 1e30f, -INFINITY, 2.0f, -1e30f}, nan_bias[] = {NAN};
    const int id_list[] = {-5, 0, V, V + 7, 3};
    memcpy(ids, id_list, sizeof ids);
    const rwkv_draw rows[EDGE_DRAWS] = {
        {1e-30, 0.5, 0, 0.3, ids, odd, 5, 0},       /* every survivor underflows: the top id (0, raised by 1e30) */
        {1e30, 1.0, 0, 0.999, ids, odd, 5, 0},      /* near uniform */
        {1.0, 1.0, V * 4, 0.5, NULL, NULL, 0, 0},   /* top_k past the vocabulary: off */
        {1.0, 0.0, 1, 0.0, NULL, NULL, 0, V * 3},   /* n_ids past the vocabulary: all of it */
        {0.7, 0.9, 0, 0.9999999, NULL, NULL, 0, 1}, /* one candidate */
        {1.0, 0.85, 0, 0.2, three, nan_bias, 1, 0}, /* a NaN bias: nothing to draw */
        {0.0, 1.0, 0, 0.0, ids, odd, 5, 2},         /* greedy over two ids, id 0 raised by 1e30 */
        {1.0, 1e-12, 0, 0.5, NULL, NULL, 0, 0}};    /* a tiny nucleus: the top id and its ties */
    memcpy(d, rows, sizeof rows);
}

/* 1 when the edge rows drew what they must: ids in range, -1 for the NaN,
 * id 0 where it was raised by 1e30 or is the only candidate. */
static int edge_draws_ok(const rwkv_draw *d, const int *next, int V, char *why, size_t size) {
    for (int i = 0; i < EDGE_DRAWS; i++) {
        const int limit = d[i].n_ids > 0 && d[i].n_ids < V ? d[i].n_ids : V;
        const int ok = i == 5 ? next[i] == -1 : i == 0 || i == 4 || i == 6 ? next[i] == 0 : next[i] >= 0 && next[i] < limit;
        if (!ok) {
            snprintf(why, size, "edge row %d drew %d (of %d)", i, next[i], limit);
            return 0;
        }
    }
    return 1;
}

#endif
