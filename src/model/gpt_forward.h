/* The batched forward of the GPT baseline with its saved activations: the
 * inside of a gpt_train_ctx (model/gpt.h), shared by the forward here and the
 * backward in train/gpt_grad.c, which reads the activations the forward
 * saved. Also the index of each parameter in the layout (model/gpt.c). */
#ifndef RWKV_MODEL_GPT_FORWARD_H
#define RWKV_MODEL_GPT_FORWARD_H

#include "model/gpt.h"

/* Parameter indices: 0 wte, 1 wpe, then P_PER_LAYER per layer, then ln_f.weight,
 * ln_f.bias, lm_head.weight. */
enum {
    P_LN1_W, P_LN1_B, P_QKV_W, P_QKV_B, P_PROJ_W, P_PROJ_B,
    P_LN2_W, P_LN2_B, P_FC_W, P_FC_B, P_FCP_W, P_FCP_B, P_PER_LAYER
};
#define IDX_WTE 0
#define IDX_WPE 1
#define IDX_LAYER(l, k) (2 + (l) * P_PER_LAYER + (k))
#define IDX_LNF_W(L) (2 + (L) * P_PER_LAYER)
#define IDX_LNF_B(L) (3 + (L) * P_PER_LAYER)
#define IDX_HEAD(L) (4 + (L) * P_PER_LAYER)

/* Activations of B sequences of T tokens (N = B·T rows), carved out of one
 * block; the d* buffers are the backward's scratch. */
struct gpt_train_ctx {
    gpt_shape sh;
    param_layout lay;
    int B, T, N, nt;
    int *pos; /* [N]: position of each row */
    float **xin;                                   /* [L+1] residual stream entering layer l (L: final) */
    float **ln1, **qkv, **att, **y, **xmid, **ln2, **hpre, **hact; /* [L] */
    float *lnf, *logits, *lse, *rowloss;
    float *tmp, *dx, *dln, *dy, *dqkv, *dh, *norm_scratch, *scratch; /* norm_scratch: train_scratch_floats(C) */
    float *block;
    size_t bytes, block_bytes; /* the activations' size; as huge_pages_map mapped them */
};

/* The parameter (or gradient) `idx` inside a flat buffer. */
static inline const float *gpt_param(const gpt_train_ctx *c, const float *params, int idx) {
    return params + c->lay.params[idx].offset;
}

/* RWKV_ERR_ARG naming the first of the n tokens outside [0, V). */
rwkv_status gpt_check_tokens(const int *tok, size_t n, int V, const char *what, rwkv_error *err);
/* The forward over inputs [B][T], saving every activation; logits in c->logits. */
void gpt_forward_saved(gpt_train_ctx *c, const float *params, const int *inputs);
/* Mean cross-entropy of c->logits against targets (c->lse and c->rowloss written). */
float gpt_mean_loss(gpt_train_ctx *c, const int *targets);

#endif
