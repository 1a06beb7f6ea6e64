/* What every RWKV version shares (docs/model.md §1.2, §4):
 * the embedding with ln0, the final LayerNorm and head, the squared-ReLU
 * channel mix, and the driver that runs the blocks over chunks of tokens.
 * A version file (rwkv4.c ... rwkv7.c) supplies only its block. */
#ifndef RWKV_MODEL_COMMON_H
#define RWKV_MODEL_COMMON_H

#include "model/load.h"

#define LN_EPS 1e-5f       /* every LayerNorm (docs §0) */
#define CHUNK_TOKENS 256   /* bounds scratch memory for long prompts (ChatRWKV uses 256 too) */

typedef struct rwkv_common {
    int V, C, L, F, A;       /* vocabulary, width, layers, FFN width, attention width */
    matrix emb, head;        /* [V, C], kept in the file's dtype */
    float *ln0_w, *ln0_b, *ln_out_w, *ln_out_b;
    size_t layer_state;      /* floats of one layer's recurrent state */
    void *layers;            /* the version's per-layer weights, freed with the model */
} rwkv_common;

/* Sizes from the tensors (docs §4.2): V, C from emb.weight, L from the
 * largest block index, A from att.key rows, F from ffn.key rows; then loads
 * emb, head, ln0 and ln_out. */
rwkv_status common_load(tensor_set *set, rwkv_common *c, rwkv_error *err);

/* Fills the shape fields of info that every version has. */
void common_fill_info(const rwkv_common *c, const char *version, rwkv_model_info *info);

/* The forward pass over n tokens in chunks of at most CHUNK_TOKENS: embed
 * (+ ln0), the version's block for every layer, then ln_out and the head for
 * all positions or the last one (docs §1.2). The same code is RNN mode
 * (n == 1). */
rwkv_status common_eval(const rwkv_model *m, float *state, const int *tokens, size_t n, float *logits,
                        int all_logits, rwkv_error *err);

/* The batched decode: token[i] fed to state i for i < n, logits [n][V]
 * (may be NULL). Every product runs as a matrix-matrix product, also for
 * n = 1 (block_matmul), so a row's result does not depend on n or on the
 * other rows, bit for bit. */
rwkv_status common_eval_batch(const rwkv_model *m, float *const *states, const int *tokens, size_t n, float *logits,
                              rwkv_error *err);

/* A fresh state: zeros, then the version's state_init. */
void common_state_init(const rwkv_model *m, float *state);

/* Frees an impl that begins with an rwkv_common, with its layers. */
void common_free(void *impl);

/* The row loops below split their T rows over the threads (parallel_rows,
 * kernels/pool.c); each row is computed the same way whichever thread does it. */

/* The token shift reads the previous token's z: z[t-1] within a sequence,
 * the state's slot (`off` floats into the layer state) for a sequence's
 * first row and for every row of a batch. shift_save then stores each
 * stream's last z into that slot. */
typedef struct shift_src {
    const block_states *st;
    size_t off;
} shift_src;
void shift_save(shift_src prev, const float *z, int T, int C);

/* The layer state of row t's stream. */
static inline float *row_state(const block_states *st, int t) { return st->layer[st->batched ? t : 0]; }

/* A block's products of its T rows (kernels.h): a batch's rows through the
 * matrix-matrix kernels whatever T (matmul_batch), a sequence's through
 * matmul, which takes decode's matrix-vector kernels for one token. */
static inline void block_matmul(const block_states *st, const matrix *W, const float *X, int T, float *Y, int nt) {
    if (st->batched) matmul_batch(W, X, T, Y, nt);
    else matmul(W, X, T, Y, nt);
}
static inline void block_matmul_group(const block_states *st, int n, const matrix *const *W, const float *const *X,
                                      int T, float *const *Y, int nt) {
    if (st->batched) matmul_group_batch(n, W, X, T, Y, nt);
    else matmul_group(n, W, X, T, Y, nt);
}

/* Token shift with n_mix mixes (docs §1.2, RWKV-4/5 form):
 * out[m][t] = token_mix(z[t], z[t-1], mu[m]). */
void shift_mix_rows(const float *z, shift_src prev, int T, int C, int n_mix, const float *const *mu,
                    float *const *out, int n_threads);
/* The same in the RWKV-6/7 form: out[m][t] = z[t] + (z[t-1] - z[t]) * mu[m]. */
void shift_lerp_rows(const float *z, shift_src prev, int T, int C, int n_mix, const float *const *mu,
                     float *const *out, int n_threads);

/* z[t] = LN(x[t]) for T rows of C (x and z may alias). */
void layernorm_rows(const float *x, const float *w, const float *b, int T, int C, float *z, int n_threads);

/* x += y over T rows of C. */
void add_rows(float *x, const float *y, int T, int C, int n_threads);

/* The channel mix's FFN from already-mixed inputs (docs §1.2, §4.3-4.5):
 *   x += sigmoid(W'r xr) ⊙ (W'v relu²(W'k xk))     (ffn_r NULL: no gate, RWKV-7)
 * h is [T][F] scratch, v and r are [T][C] scratch. */
void ffn_relu2(const block_states *st, const matrix *ffn_k, const matrix *ffn_v, const matrix *ffn_r, const float *xk,
               const float *xr, int T, float *h, float *v, float *r, float *x, int n_threads);

/* dz[t] = z[t-1] - z[t], the v6/v7 token-shift delta (docs §4.4). */
void shift_delta_rows(const float *z, shift_src prev, int T, int C, float *dz, int n_threads);

/* y[t] = GN_H(y[t]; ln_x) ⊙ silu(g[t]) over T rows of A = H*N (docs §4.3);
 * g NULL: no gate (RWKV-5.0). */
void group_norm_gate_rows(float *y, const float *g, const float *lnx_w, const float *lnx_b, int H, int N, float eps,
                          int T, int n_threads);

/* Refuses checkpoints holding a tensor whose name contains one of `keys`
 * (variants a version file does not implement), naming `variant`. */
rwkv_status reject_keys(const tensor_set *set, const char *const *keys, size_t n_keys, const char *variant,
                        rwkv_error *err);

/* Loading helpers for the version files: each returns from the calling
 * function with the error status when a tensor is missing or misshapen. */
#define LOAD_VEC(dst, name, n)                                                                     \
    do {                                                                                           \
        if (!((dst) = model_vector(set, (name), (n), err))) return err ? err->code : RWKV_ERR_SHAPE; \
    } while (0)
#define LOAD_MAT(dst, name, r, c)                                                                  \
    do {                                                                                           \
        rwkv_status ms_ = model_matrix(set, (name), (r), (c), &(dst), err);                        \
        if (ms_ == RWKV_OK) ms_ = model_pack_panels(set, &(dst), err);                             \
        if (ms_ == RWKV_OK) ms_ = model_align_rows(set, &(dst), err);                              \
        if (ms_ == RWKV_OK) ms_ = model_group_rows(set, &(dst), err);                              \
        if (ms_ != RWKV_OK) return ms_;                                                            \
    } while (0)
#define LOAD_LORA(dst, name, count, in, out)                                                       \
    do {                                                                                           \
        rwkv_status ls_ = model_lora(set, (name), (count), (in), (out), (dst), err);               \
        if (ls_ != RWKV_OK) return ls_;                                                            \
    } while (0)

#endif
