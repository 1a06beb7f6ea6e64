/* The sampler rules the batched-draw tests give their rows (included by
 * tests/test_batch_sample.c and tests/cuda/test_cuda_draw.c): row i is
 * greedy, cold, plain or hot; its nucleus off, 0, 0.4 or 0.85; top-k off,
 * 3 or 40; every third row bans six ids. Rules at the edges of their
 * ranges, with what they must draw. And exact_accepts, the check of a
 * device's token against the rules in exact arithmetic, and
 * spread_draws_ok, which puts it to rows of widely spread probabilities. */
#ifndef RWKV_TEST_DRAW_RULES_H
#define RWKV_TEST_DRAW_RULES_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The draw's rules in double precision over ids [0, n): the biased softmax
 * p, the ids sorted by (p descending, id ascending). */
typedef struct exact_row {
    double *p;
    int *order, n;
} exact_row;

static const double *sort_p;
static int by_p_then_id(const void *x, const void *y) {
    const int i = *(const int *)x, j = *(const int *)y;
    return sort_p[i] > sort_p[j] ? -1 : sort_p[i] < sort_p[j] ? 1 : (i > j) - (i < j);
}

static void exact_softmax(const rwkv_draw *d, const float *logits, int n, exact_row *e) {
    double mx = -INFINITY, z = 0;
    e->n = n;
    for (int j = 0; j < n; j++) e->p[j] = logits[j];
    for (size_t b = 0; b < d->n_bias; b++)
        if (d->bias_ids[b] >= 0 && d->bias_ids[b] < n)
            e->p[d->bias_ids[b]] = d->bias[b] == -INFINITY ? -INFINITY : e->p[d->bias_ids[b]] + d->bias[b];
    for (int j = 0; j < n; j++) mx = e->p[j] > mx ? e->p[j] : mx;
    for (int j = 0; j < n; j++) z += exp(e->p[j] - mx);
    for (int j = 0; j < n; j++) e->p[j] = exp(e->p[j] - mx) / z, e->order[j] = j;
    sort_p = e->p;
    qsort(e->order, n, sizeof *e->order, by_p_then_id);
}

/* 1 when `got` is the token of the walk over the kept ids order[0..last],
 * or within eps of a step's end there. */
static int walk_gives(const rwkv_draw *d, const exact_row *e, int last, int got, double eps) {
    char *kept = calloc(e->n, 1);
    for (int k = 0; k <= last; k++) kept[e->order[k]] = 1;
    double total = 0, c = 0;
    for (int j = 0; j < e->n; j++)
        if (kept[j] && e->p[j] > 0) total += d->temperature == 1 ? e->p[j] : pow(e->p[j], 1.0 / d->temperature);
    int ok = 0;
    for (int j = 0; j < e->n && !ok && total > 0; j++) {
        if (!kept[j] || !(e->p[j] > 0)) continue;
        const double q = (d->temperature == 1 ? e->p[j] : pow(e->p[j], 1.0 / d->temperature)) / total, before = c;
        c += q;
        if (j == got) ok = (before <= d->uniform + eps && c > d->uniform - eps) || fabs(before - d->uniform) < eps;
    }
    free(kept);
    return ok;
}

/* Whether the device's token is one the rules give in exact arithmetic, where
 * the nucleus may end at any position whose cumulative mass lies within eps
 * of top_p (the CPU sums in float, the device in fixed point) and the
 * number may move by eps: the summation orders differ, the rules do not. */
static int exact_accepts(const rwkv_draw *d, const float *logits, int n, int got) {
    const double eps = 1e-5;
    exact_row e = {malloc(sizeof(double) * n), malloc(sizeof(int) * n), n};
    exact_softmax(d, logits, n, &e);
    int ok = 0;
    double c = 0;
    for (int k = 0; k < n && !ok; k++) {
        c += e.p[e.order[k]];
        const int last_possible = k == n - 1 || d->top_p >= 1; /* no cut: everything */
        const int cut_here = d->top_p < 1 && c >= d->top_p - eps && c - e.p[e.order[k]] < d->top_p + eps;
        if (!cut_here && !last_possible) continue;
        int last = d->top_p >= 1 ? n - 1 : k; /* the nucleus keeps the ties of its last probability; top-k then keeps its first top_k */
        while (last + 1 < n && e.p[e.order[last + 1]] == e.p[e.order[k]]) last++;
        if (d->top_k > 0 && d->top_k < n && last >= d->top_k) last = d->top_k - 1;
        ok = walk_gives(d, &e, last, got, eps);
        if (d->top_p >= 1) break;
    }
    free(e.p), free(e.order);
    return ok;
}

/* Rows whose biases spread their probabilities over dozens of binades, as
 * a trained model's rows are spread (a flat random model puts a row's
 * probabilities under one or two exponents, so the cuts never choose among
 * many), under rules from greedy to hot: the tokens rwkv_eval_batch_sample
 * draws against the logits rwkv_eval_batch gives twin states, by the exact
 * check, and greedy rows exactly (float sums of logit and bias, the lowest
 * id of a tie). 1 when every row passes; else 0, and why. */
enum { SPREAD_ROWS = 16 };
static int spread_draws_ok(rwkv_model *m, int V, char *why, size_t size) {
    static const double temp[] = {0, 0.3, 1.0, 1.7}, top_p[] = {0.5, 0.85, 0.95, 1.0};
    static const int top_k[] = {0, 5, 40};
    rwkv_error err = {0};
    rwkv_state *a[SPREAD_ROWS] = {0}, *b[SPREAD_ROWS] = {0};
    rwkv_draw d[SPREAD_ROWS];
    int tok[SPREAD_ROWS], next[SPREAD_ROWS];
    int *ids = malloc(sizeof(int) * (size_t)V);
    float *bias = malloc(sizeof(float) * (size_t)V), *logits = rwkv_logits_alloc(m, SPREAD_ROWS, &err);
    int ok = ids && bias && logits;
    for (int j = 0; ok && j < V; j++) ids[j] = j, bias[j] = -0.35f * (float)(j % 97);
    for (int i = 0; i < SPREAD_ROWS && ok; i++) {
        ok = rwkv_state_new(m, &a[i], &err) == RWKV_OK && rwkv_state_new(m, &b[i], &err) == RWKV_OK;
        d[i] = (rwkv_draw){temp[i % 4], top_p[(i / 4) % 4], top_k[i % 3], (i * 37 % 100 + 0.5) / 100, ids, bias,
                           (size_t)V, 0};
        tok[i] = (11 * i + 5) % V;
    }
    if (!ok) snprintf(why, size, "spread rows: setup failed: %.200s", err.message);
    else if (rwkv_eval_batch_sample(m, a, tok, SPREAD_ROWS, d, next, &err) != RWKV_OK ||
             rwkv_eval_batch(m, b, tok, SPREAD_ROWS, logits, &err) != RWKV_OK)
        ok = 0, snprintf(why, size, "spread rows: %.200s", err.message);
    for (int i = 0; i < SPREAD_ROWS && ok; i++) {
        const float *row = logits + (size_t)i * V;
        if (d[i].temperature == 0) {
            int best = 0;
            for (int j = 1; j < V; j++) best = row[j] + bias[j] > row[best] + bias[best] ? j : best;
            ok = next[i] == best;
        } else {
            ok = next[i] >= 0 && next[i] < V && exact_accepts(&d[i], row, V, next[i]);
        }
        if (!ok)
            snprintf(why, size, "spread row %d (T %g, top_p %g, top_k %d, u %g) drew %d", i, d[i].temperature,
                     d[i].top_p, d[i].top_k, d[i].uniform, next[i]);
    }
    for (int i = 0; i < SPREAD_ROWS; i++) rwkv_state_free(a[i]), rwkv_state_free(b[i]);
    if (logits) rwkv_logits_free(m, logits);
    free(ids), free(bias);
    return ok;
}

#endif
