/* The sampler rules the batched-draw tests give their rows (included by
 * tests/test_batch_sample.c and tests/cuda/test_cuda_draw.c): row i is
 * greedy, cold, plain or hot; its nucleus off, 0, 0.4 or 0.85; top-k off,
 * 3 or 40; every third row bans six ids. */
#ifndef RWKV_TEST_DRAW_RULES_H
#define RWKV_TEST_DRAW_RULES_H

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

#endif
