/* The RWKV-5 block of GPU inference (model/rwkv5.c on the device; 5.2 and
 * the 5.0/5.1 previews): layer norm, the token-shift mixes, r/k/v (and g)
 * products, the RWKV-5/6 WKV with one decay vector continuing the state,
 * GroupNorm (⊙ silu(g) but in 5.0), the output product into the residual
 * stream, then the gated relu² channel mix. */
#include "cuda/rwkv_infer.cuh"

enum { MIX_K, MIX_V, MIX_R, MIX_G, N_MIX };
/* k, v, r, g side by side: the order of their products (one strided batch in a large pass) */
enum { LN1_W, LN1_B, LN2_W, LN2_B, MIX_K_W, MIX_V_W, MIX_R_W, MIX_G_W, DECAY, BONUS, ATT_K, ATT_V, ATT_R, ATT_G,
       ATT_O, LNX_W, LNX_B, FFN_MIX_K, FFN_MIX_R, FFN_K, FFN_R, FFN_V, N_SLOTS };

static int weight(const rwkv_infer_shape *sh, int l, int slot, infer_weight *out) {
    (void)l;
    const int C = sh->n_embd, A = sh->dim_att;
    static const char *const names[N_SLOTS] = {
        "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "att.time_mix_k", "att.time_mix_v", "att.time_mix_r",
        "att.time_mix_g", "att.time_decay", "att.time_faaaa", "att.key.weight", "att.value.weight",
        "att.receptance.weight", "att.gate.weight", "att.output.weight", "att.ln_x.weight", "att.ln_x.bias",
        "ffn.time_mix_k", "ffn.time_mix_r", "ffn.key.weight", "ffn.receptance.weight", "ffn.value.weight"};
    if (!sh->has_gate && (slot == MIX_G_W || slot == ATT_G)) return 0;
    infer_weight w = {names[slot], W_VEC, slot <= MIX_G_W || slot >= FFN_MIX_K ? C : A, 1, 1};
    if (slot == DECAY) w.kind = W_V5_DECAY;
    if (slot == BONUS) w.kind = W_V5_BONUS;
    *out = w;
    return 1;
}

/* xm [N_MIX][rows][C], r k v g y [rows][max(C, A)], h [rows][F] */
static size_t work_floats(const rwkv_infer_shape *sh, int rows) {
    return (size_t)rows * (N_MIX * (size_t)sh->n_embd + 5 * infer_wide(sh) + (size_t)sh->n_ffn);
}

static rwkv_status block(rwkv_infer *c, int l, const infer_rows *rows, rwkv_error *err) {
    const rwkv_infer_shape *sh = &c->sh;
    const int C = sh->n_embd, A = sh->dim_att, R = rows->n, n_mix = sh->has_gate ? 4 : 3;
    const size_t rc = (size_t)R * C, rw = (size_t)R * infer_wide(sh), off = (size_t)l * c->layer_state;
    float *xm = c->work, *k = xm + N_MIX * rc, *v = k + rw, *r = v + rw, *g = r + rw, *y = g + rw, *h = y + rw;
    const float *mu[] = {infer_vec(c, l, MIX_K_W), infer_vec(c, l, MIX_V_W), infer_vec(c, l, MIX_R_W),
                         infer_vec(c, l, MIX_G_W)};
    bf16 *m16 = (bf16 *)infer_mix16(c, R); /* a large bf16 pass: the mixes in bf16 for the GEMMs */
    infer_ln_shift(c, infer_vec(c, l, LN1_W), infer_vec(c, l, LN1_B), rows, off, SHIFT_MIX, n_mix, mu, xm, m16);
    cuda_gemv_op ops[] = {{infer_w(c, l, ATT_K), A, C, xm, C, k, 0, CUDA_ACT_NONE, NULL, NULL},
                          {infer_w(c, l, ATT_V), A, C, xm + rc, C, v, 0, CUDA_ACT_NONE, NULL, NULL},
                          {infer_w(c, l, ATT_R), A, C, xm + 2 * rc, C, r, 0, CUDA_ACT_NONE, NULL, NULL},
                          {infer_w(c, l, ATT_G), A, C, xm + 3 * rc, C, g, 0, CUDA_ACT_NONE, NULL, NULL}};
    for (int m = 0; m < n_mix && m16; m++) ops[m].X16 = m16 + m * rc;
    rwkv_status st = infer_products(c, ops, n_mix, R, err);
    if (st != RWKV_OK) return st;
    /* a long stream in chunks, whose matrices the mixes' memory (used up by then) holds */
    const int H = sh->n_head, N = sh->head_size;
    const wkv5_chunk_inputs in = {r, k, infer_vec(c, l, DECAY), 0, NULL, infer_vec(c, l, BONUS)};
    if (cuda_wkv5_chunked_fits(rows, off + C, H, N, &in, v, y, N_MIX * rc)) {
        if (cuda_wkv5_chunked(rows, off + C, H, N, &in, v, y, xm, N_MIX * rc, c->stream, &c->side) != cudaSuccess)
            return cuda_check("chunked WKV", err);
    } else {
        cuda_wkv5_state(rows, off + C, H, N, r, k, v, in.w, 0, in.u, y, c->stream);
    }
    infer_group_norm_gate(c, y, sh->has_gate ? g : NULL, infer_vec(c, l, LNX_W), infer_vec(c, l, LNX_B), R);
    if ((st = infer_linear(c, infer_w(c, l, ATT_O), C, A, y, A, R, c->x, 1, err)) != RWKV_OK) return st;
    const infer_ffn_weights f = {infer_vec(c, l, LN2_W), infer_vec(c, l, LN2_B),
                                 {infer_vec(c, l, FFN_MIX_K), infer_vec(c, l, FFN_MIX_R)},
                                 infer_w(c, l, FFN_K), infer_w(c, l, FFN_V), infer_w(c, l, FFN_R)};
    return infer_channel_mix(c, l, rows, SHIFT_MIX, &f, xm, h, v, r, err);
}

const infer_version rwkv5_infer_version = {N_SLOTS, weight, work_floats, block, ATT_K, 4, NULL};
