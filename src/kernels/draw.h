/* Drawing a token from one row of logits (include/rwkv_sample.h): the
 * sampler's steps after its penalties, on the CPU. The reference for the
 * GPU's draw (cuda/draw.cu), which follows the same rules over a batch of
 * rows without leaving the device.
 *
 *   draw_apply_bias    the penalties and bans as a list: logit += bias, or
 *                      -inf for a bias of -inf (a ban, whatever the logit)
 *   draw_distribution  temperature 0: the argmax (lowest id on ties); else
 *                      softmax, the nucleus cut at top_p, top_k, the power
 *                      1/temperature, renormalised
 *   draw_pick          the first id whose cumulative probability (in id
 *                      order, double) passes u times the total
 */
#ifndef RWKV_KERNELS_DRAW_H
#define RWKV_KERNELS_DRAW_H

#include <stddef.h>
#include <stdint.h>

typedef struct draw_rule {
    double temperature; /* 0: greedy */
    double top_p;       /* >= 1: off */
    int top_k;          /* 0: off */
} draw_rule;

/* Scratch of the sort behind the nucleus cut and top_k, grown on demand. */
typedef struct draw_work {
    int *order, *order2;
    uint32_t *keys; /* 2 * cap */
    size_t cap;
} draw_work;

/* 0, or -1 when out of memory. */
int draw_work_reserve(draw_work *w, size_t n);
void draw_work_free(draw_work *w);

void draw_apply_bias(float *logits, int n, const int *ids, const float *bias, size_t n_bias);

/* What draw_pick sums first: the probabilities in id order (double, zeros
 * skipped, which add nothing) and the last id whose probability is > 0. */
typedef struct draw_mass {
    double total;
    int last;
} draw_mass;

/* Turns the n logits in probs into the distribution the rule draws from.
 * Returns 0, or -1 when nothing can be drawn (a NaN or +inf logit, every
 * logit -inf). *greedy is the winner where the result is one-hot
 * (temperature 0, or every survivor underflowing), else -1, and then *mass
 * (may be NULL) is filled for draw_pick. w must hold n. */
int draw_distribution(const draw_rule *rule, draw_work *w, float *probs, int n, int *greedy, draw_mass *mass);

/* The id drawn from a distribution by u in [0, 1); -1 when every
 * probability is 0. mass: draw_distribution's (NULL: summed here). */
int draw_pick(const float *probs, int n, double u, const draw_mass *mass);

#endif
