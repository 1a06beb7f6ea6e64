/* The batched forward of the GPT baseline (model/gpt.h): the activation
 * memory of B sequences of T tokens, the forward that saves every activation
 * (for the backward in train/gpt_grad.c) and the forward loss. The layers
 * come from kernels/train_ops.h and kernels/transformer_ops.h. */
#include "model/gpt_forward.h"

#include <stdlib.h>
#include <string.h>

#include "core/huge_pages.h"
#include "core/machine.h"
#include "kernels/train_ops.h"
#include "kernels/transformer_ops.h"

void gpt_train_ctx_free(gpt_train_ctx *c) {
    if (!c) return;
    free(c->lay.params);
    free(c->pos);
    free(c->xin);
    free(c->ln1);
    huge_pages_unmap(c->block, c->block_bytes);
    free(c);
}

size_t gpt_train_ctx_bytes(const gpt_train_ctx *c) { return c->bytes; }

rwkv_status gpt_train_ctx_new(const gpt_shape *shape, int B, int T, int n_threads, gpt_train_ctx **out,
                              rwkv_error *err) {
    *out = NULL;
    gpt_shape s = *shape;
    rwkv_status st = gpt_shape_check(&s, err);
    if (st != RWKV_OK) return st;
    if (B <= 0 || T <= 0 || T > s.n_ctx || (int64_t)B * T > (1 << 24))
        return rwkv_fail(err, RWKV_ERR_ARG, "gpt: batch %d x context %d does not fit (n_ctx %d)", B, T, s.n_ctx);
    gpt_train_ctx *c = calloc(1, sizeof *c);
    if (!c) return rwkv_fail(err, RWKV_ERR_NOMEM, "gpt: out of memory");
    c->sh = s;
    c->B = B;
    c->T = T;
    c->N = B * T;
    c->nt = n_threads > 0 ? n_threads : machine_cores();
    st = gpt_layout_init(&s, &c->lay, err);
    if (st != RWKV_OK) {
        free(c);
        return st;
    }
    const size_t N = (size_t)c->N, C = (size_t)s.n_embd, F = (size_t)s.n_ffn, V = (size_t)s.n_vocab;
    const size_t L = (size_t)s.n_layer, H = (size_t)s.n_head;
    c->pos = malloc(N * sizeof *c->pos);
    c->xin = calloc(L + 1, sizeof *c->xin);
    c->ln1 = calloc(8 * L, sizeof *c->ln1); /* ln1 qkv att y xmid ln2 hpre hact, L each */
    if (!c->pos || !c->xin || !c->ln1) {
        gpt_train_ctx_free(c);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "gpt: out of memory");
    }
    c->qkv = c->ln1 + L;
    c->att = c->ln1 + 2 * L;
    c->y = c->ln1 + 3 * L;
    c->xmid = c->ln1 + 4 * L;
    c->ln2 = c->ln1 + 5 * L;
    c->hpre = c->ln1 + 6 * L;
    c->hact = c->ln1 + 7 * L;
    for (size_t n = 0; n < N; n++) c->pos[n] = (int)(n % (size_t)T);
    /* sizes of every buffer, rounded to 16 floats; carved out of one block */
    const size_t per_layer_sizes[8] = {N * C, 3 * N * C, (size_t)B * H * T * T, N * C, N * C, N * C, N * F, N * F};
#define R16(x) (((x) + 15) & ~(size_t)15)
    size_t per_layer = 0;
    for (int i = 0; i < 8; i++) per_layer += R16(per_layer_sizes[i]);
    const size_t rest[] = {N * C, N * V, N, N, N * C, N * C, N * C, N * C, 3 * N * C, N * F, train_scratch_floats((int)C),
                           (size_t)B * H * T};
    size_t total = (L + 1) * R16(N * C) + L * per_layer;
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) total += R16(rest[i]);
    if (total > ((size_t)1 << 36) / sizeof(float) ||
        !(c->block = huge_pages_map(total * sizeof(float), &c->block_bytes))) {
        gpt_train_ctx_free(c);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "gpt: cannot allocate %zu MB of activations",
                         total * sizeof(float) >> 20);
    }
    c->bytes = total * sizeof(float);
    float *p = c->block;
    for (size_t l = 0; l <= L; l++, p += R16(N * C)) c->xin[l] = p;
    for (size_t l = 0; l < L; l++)
        for (int i = 0; i < 8; i++) {
            c->ln1[(size_t)i * L + l] = p;
            p += R16(per_layer_sizes[i]);
        }
    float **dst[] = {&c->lnf, &c->logits, &c->lse, &c->rowloss, &c->tmp, &c->dx, &c->dln, &c->dy,
                     &c->dqkv, &c->dh, &c->norm_scratch, &c->scratch};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) {
        *dst[i] = p;
        p += R16(rest[i]);
    }
#undef R16
    *out = c;
    return RWKV_OK;
}

rwkv_status gpt_check_tokens(const int *tok, size_t n, int V, const char *what, rwkv_error *err) {
    for (size_t i = 0; i < n; i++)
        if (tok[i] < 0 || tok[i] >= V)
            return rwkv_fail(err, RWKV_ERR_ARG, "gpt: %s token %d at index %zu is outside [0, %d)", what, tok[i],
                             i, V);
    return RWKV_OK;
}

void gpt_forward_saved(gpt_train_ctx *c, const float *params, const int *inputs) {
    const int N = c->N, C = c->sh.n_embd, F = c->sh.n_ffn, V = c->sh.n_vocab, L = c->sh.n_layer, nt = c->nt;
    embedding_forward(gpt_param(c, params, IDX_WTE), inputs, N, C, c->xin[0], nt);
    add_rows_of(c->xin[0], gpt_param(c, params, IDX_WPE), c->pos, N, C, nt); /* + learned positions */
    for (int l = 0; l < L; l++) {
#define LP(k) gpt_param(c, params, IDX_LAYER(l, k))
        layernorm_forward(c->xin[l], LP(P_LN1_W), LP(P_LN1_B), N, C, c->ln1[l], nt);
        linear_forward(LP(P_QKV_W), 3 * C, C, c->ln1[l], N, c->qkv[l], nt);
        add_bias(c->qkv[l], LP(P_QKV_B), N, 3 * C, nt);
        attention_forward(c->qkv[l], c->B, c->T, C, c->sh.n_head, c->att[l], c->y[l], nt);
        linear_forward(LP(P_PROJ_W), C, C, c->y[l], N, c->tmp, nt);
        add_bias(c->tmp, LP(P_PROJ_B), N, C, nt);
        residual_forward(c->xin[l], c->tmp, c->xmid[l], (size_t)N * C, nt);
        layernorm_forward(c->xmid[l], LP(P_LN2_W), LP(P_LN2_B), N, C, c->ln2[l], nt);
        linear_forward(LP(P_FC_W), F, C, c->ln2[l], N, c->hpre[l], nt);
        add_bias(c->hpre[l], LP(P_FC_B), N, F, nt);
        gelu_forward(c->hpre[l], c->hact[l], (size_t)N * F, nt);
        linear_forward(LP(P_FCP_W), C, F, c->hact[l], N, c->tmp, nt);
        add_bias(c->tmp, LP(P_FCP_B), N, C, nt);
        residual_forward(c->xmid[l], c->tmp, c->xin[l + 1], (size_t)N * C, nt);
#undef LP
    }
    layernorm_forward(c->xin[L], gpt_param(c, params, IDX_LNF_W(L)), gpt_param(c, params, IDX_LNF_B(L)), N, C, c->lnf, nt);
    linear_forward(gpt_param(c, params, IDX_HEAD(L)), V, C, c->lnf, N, c->logits, nt);
}

float gpt_mean_loss(gpt_train_ctx *c, const int *targets) {
    cross_entropy_forward(c->logits, targets, c->N, c->sh.n_vocab, c->rowloss, c->lse, c->nt);
    double sum = 0.0;
    for (int n = 0; n < c->N; n++) sum += c->rowloss[n];
    return (float)(sum / c->N);
}

rwkv_status gpt_forward_loss(gpt_train_ctx *c, const float *params, const int *inputs, const int *targets,
                             float *logits, float *loss, rwkv_error *err) {
    if (!c || !params || !inputs) return rwkv_fail(err, RWKV_ERR_ARG, "gpt_forward_loss: null argument");
    rwkv_status s = gpt_check_tokens(inputs, (size_t)c->N, c->sh.n_vocab, "input", err);
    if (s == RWKV_OK && targets) s = gpt_check_tokens(targets, (size_t)c->N, c->sh.n_vocab, "target", err);
    if (s != RWKV_OK) return s;
    gpt_forward_saved(c, params, inputs);
    if (logits) memcpy(logits, c->logits, sizeof(float) * (size_t)c->N * (size_t)c->sh.n_vocab);
    if (targets && loss) *loss = gpt_mean_loss(c, targets);
    return RWKV_OK;
}