/* Training the GPT baseline (train/gpt_grad.h). The backward walks the
 * layers of model/gpt_forward.c in reverse over the activations the forward
 * saved in the gpt_train_ctx; the layer backward passes come from
 * kernels/train_ops.h and kernels/transformer_ops.h. */
#include "train/gpt_grad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/train_ops.h"
#include "kernels/transformer_ops.h"
#include "model/gpt_forward.h"

double gpt_train_flops_per_token(const gpt_shape *s, int T) {
    const double C = s->n_embd, F = s->n_ffn, L = s->n_layer, V = s->n_vocab;
    const double matmul_params = L * (4 * C * C + 2 * C * F) + V * C;
    return 3.0 * (2.0 * matmul_params + 2.0 * L * (double)T * C);
}

/* ---- init ---------------------------------------------------------------- */

static double rng_normal(rng *r) {
    /* Box-Muller on two uniforms in (0, 1] and [0, 1) */
    double u1 = ((double)(rng_next(r) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = (double)(rng_next(r) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void gpt_init_tensor(const gpt_shape *shape, const param_info *p, float *w, rng *gen) {
    const double std = 0.02, std_res = 0.02 / sqrt(2.0 * shape->n_layer);
    const size_t len = strlen(p->name);
    if (p->ndim == 2) {
        const int residual = strstr(p->name, "c_proj.weight") != NULL;
        const double sd = residual ? std_res : std;
        for (size_t j = 0; j < p->numel; j++) w[j] = (float)(sd * rng_normal(gen));
    } else {
        const int is_ln_weight = len > 7 && strcmp(p->name + len - 7, ".weight") == 0;
        for (size_t j = 0; j < p->numel; j++) w[j] = is_ln_weight ? 1.0f : 0.0f;
    }
}

rwkv_status gpt_init_params(const gpt_shape *shape, float *params, uint64_t seed) {
    param_layout lay;
    rwkv_status st = gpt_layout_init(shape, &lay, NULL);
    if (st != RWKV_OK) return st;
    rng gen;
    rng_seed(&gen, seed);
    for (int i = 0; i < lay.count; i++) gpt_init_tensor(shape, &lay.params[i], params + lay.params[i].offset, &gen);
    free(lay.params);
    return RWKV_OK;
}

/* ---- backward ------------------------------------------------------------ */

rwkv_status gpt_forward_backward(gpt_train_ctx *c, const float *params, const int *inputs, const int *targets,
                                 float *grads, float *loss, rwkv_error *err) {
    if (!c || !params || !inputs || !targets || !grads)
        return rwkv_fail(err, RWKV_ERR_ARG, "gpt_forward_backward: null argument");
    rwkv_status s = gpt_check_tokens(inputs, (size_t)c->N, c->sh.n_vocab, "input", err);
    if (s == RWKV_OK) s = gpt_check_tokens(targets, (size_t)c->N, c->sh.n_vocab, "target", err);
    if (s != RWKV_OK) return s;
    const int N = c->N, C = c->sh.n_embd, F = c->sh.n_ffn, V = c->sh.n_vocab, L = c->sh.n_layer, nt = c->nt;
    gpt_forward_saved(c, params, inputs);
    const float l = gpt_mean_loss(c, targets);
    if (loss) *loss = l;
#define G(idx) (grads + c->lay.params[idx].offset)
    /* head and final LayerNorm; logits become dL/dlogits in place */
    cross_entropy_backward(c->logits, targets, c->lse, N, V, 0.0f, nt);
    linear_backward(gpt_param(c, params, IDX_HEAD(L)), V, C, c->lnf, c->logits, N, c->dln, G(IDX_HEAD(L)), nt);
    memset(c->dx, 0, sizeof(float) * (size_t)N * C);
    layernorm_backward(c->xin[L], gpt_param(c, params, IDX_LNF_W(L)), c->dln, N, C, c->dx, G(IDX_LNF_W(L)),
                       G(IDX_LNF_B(L)), c->norm_scratch, nt);
    for (int ly = L - 1; ly >= 0; ly--) {
#define LP(k) gpt_param(c, params, IDX_LAYER(ly, k))
#define LG(k) G(IDX_LAYER(ly, k))
        /* MLP: x_out = xmid + c_proj(gelu(c_fc(LN2(xmid)))) */
        bias_backward(c->dx, N, C, LG(P_FCP_B), nt);
        linear_backward(LP(P_FCP_W), C, F, c->hact[ly], c->dx, N, c->dh, LG(P_FCP_W), nt);
        gelu_backward(c->hpre[ly], c->dh, (size_t)N * F, nt);
        bias_backward(c->dh, N, F, LG(P_FC_B), nt);
        linear_backward(LP(P_FC_W), F, C, c->ln2[ly], c->dh, N, c->dln, LG(P_FC_W), nt);
        layernorm_backward(c->xmid[ly], LP(P_LN2_W), c->dln, N, C, c->dx, LG(P_LN2_W), LG(P_LN2_B), c->norm_scratch, nt);
        /* attention: xmid = x_in + c_proj(attn(c_attn(LN1(x_in)))) */
        bias_backward(c->dx, N, C, LG(P_PROJ_B), nt);
        linear_backward(LP(P_PROJ_W), C, C, c->y[ly], c->dx, N, c->dy, LG(P_PROJ_W), nt);
        attention_backward(c->qkv[ly], c->att[ly], c->dy, c->B, c->T, C, c->sh.n_head, c->dqkv, c->scratch, nt);
        bias_backward(c->dqkv, N, 3 * C, LG(P_QKV_B), nt);
        linear_backward(LP(P_QKV_W), 3 * C, C, c->ln1[ly], c->dqkv, N, c->dln, LG(P_QKV_W), nt);
        layernorm_backward(c->xin[ly], LP(P_LN1_W), c->dln, N, C, c->dx, LG(P_LN1_W), LG(P_LN1_B), c->norm_scratch, nt);
#undef LP
#undef LG
    }
    embedding_backward(c->dx, inputs, N, C, G(IDX_WTE), nt);
    embedding_backward(c->dx, c->pos, N, C, G(IDX_WPE), nt);
#undef G
    return RWKV_OK;
}
