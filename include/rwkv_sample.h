/*
 * rwkv_sample.h — token sampling with the semantics of the official ChatRWKV
 * pipeline (docs/generation.md; docs/model.md §6).
 *
 * One step of generation:
 *     tok = rwkv_sampler_sample(s, logits, n_vocab);   bans, penalties, draw
 *     rwkv_sampler_accept(s, tok, bytes, nbytes);        occurrence update
 *     rwkv_eval(model, state, tok, logits, ...);         next logits
 *
 * rwkv_sampler_sample:
 *   1. logits[b] = -inf for every banned id b;
 *   2. logits[j] -= alpha_presence + occ[j] * alpha_frequency for every id j
 *      that has an occurrence entry;
 *   3. temperature 0: the largest adjusted logit wins (the lowest id on exact
 *      ties; no random number is drawn). Otherwise p = softmax (float32),
 *      sorted descending (ties: lower id first), cumulative sum c;
 *      nucleus: cutoff = p at the first position where c >= top_p, every
 *      p < cutoff becomes 0 (ties at the cutoff survive; top_p >= 1, or no
 *      position reaching top_p, keeps everything);
 *      top-k: when 0 < top_k < n_vocab, all but the top_k first are zeroed;
 *      temperature (applied after the cut): p = p^(1/temperature);
 *      renormalise and draw one id with the sampler's seeded generator.
 *
 * rwkv_sampler_accept, after a token was chosen:
 *   occ[j] *= alpha_decay for every existing entry j; then
 *   occ[tok] += w, where w = 0 when the token's decoded bytes are a substring
 *   of " \t0123456789" (a space, a tab, digits, or nothing) and 1 otherwise.
 *   The entry is created even when w = 0, so the token gets alpha_presence
 *   from then on. With whitespace_exempt = 0 (the chat programs' rule) w is
 *   always 1.
 *
 * The random generator is xoshiro256** seeded through splitmix64: the same
 * seed, parameters and logits give the same tokens on every platform.
 * A sampler is not thread-safe; use one per generation stream.
 */
#ifndef RWKV_SAMPLE_H
#define RWKV_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "rwkv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rwkv_sampler rwkv_sampler;

typedef struct rwkv_sampler_params {
    double temperature;     /* 1.0; 0 = greedy (argmax after bans and penalties) */
    double top_p;           /* 0.85; >= 1 keeps everything, 0 keeps only the top token(s) */
    int top_k;              /* 0 = off */
    double alpha_frequency; /* 0.2 */
    double alpha_presence;  /* 0.2 */
    double alpha_decay;     /* 0.996 */
    const int *token_ban;   /* ids never sampled (copied by rwkv_sampler_new); may be NULL */
    size_t n_token_ban;
    int whitespace_exempt;  /* 1 (pipeline rule, default) or 0 (chat rule: every token counts 1) */
} rwkv_sampler_params;

/* Fills p with the ChatRWKV PIPELINE_ARGS defaults (listed above). */
RWKV_API void rwkv_sampler_params_default(rwkv_sampler_params *p);

/* Checks the parameters (temperature >= 0, top_p in [0, 1], top_k >= 0,
 * finite alphas, decay in [0, 1], ban ids >= 0) and makes a sampler with an
 * empty occurrence table, its generator seeded with `seed`. */
RWKV_API rwkv_status rwkv_sampler_new(const rwkv_sampler_params *params, uint64_t seed,
                             rwkv_sampler **out, rwkv_error *err);
RWKV_API void rwkv_sampler_free(rwkv_sampler *s);

/* Empties the occurrence table (a new, independent generation). */
RWKV_API void rwkv_sampler_reset(rwkv_sampler *s);
/* Re-seeds the generator. */
RWKV_API void rwkv_sampler_seed(rwkv_sampler *s, uint64_t seed);

/* Applies bans and penalties to a copy of the n_vocab logits and draws one
 * id in [0, n_vocab). logits are not modified. Returns -1 when no id can be
 * drawn: n_vocab <= 0, out of memory, a NaN or +inf logit, or every logit
 * -inf after the bans. */
RWKV_API int rwkv_sampler_sample(rwkv_sampler *s, const float *logits, int n_vocab);

/* The distribution rwkv_sampler_sample draws from (probs: n_vocab floats,
 * summing to 1; one-hot at the argmax for temperature 0). Draws nothing.
 * Returns 0, or -1 as rwkv_sampler_sample does (probs then undefined). */
RWKV_API int rwkv_sampler_distribution(rwkv_sampler *s, const float *logits, int n_vocab, float *probs);

/* Steps 1-2 only: bans and penalties applied in place to n_vocab logits. */
RWKV_API void rwkv_sampler_penalize(const rwkv_sampler *s, float *logits, int n_vocab);

/* Records that `token` was generated; `text`/`len` are its decoded bytes
 * (rwkv_detokenize of the single id; text may be NULL when len is 0).
 * Returns RWKV_ERR_ARG for a negative token, RWKV_ERR_NOMEM when the table
 * cannot grow (the table is then unchanged). */
RWKV_API rwkv_status rwkv_sampler_accept(rwkv_sampler *s, int token, const char *text, size_t len,
                                rwkv_error *err);

/* The occurrence weight of `token` and whether it has an entry (*present may
 * be NULL). 0 for a token without an entry. */
RWKV_API double rwkv_sampler_occurrence(const rwkv_sampler *s, int token, int *present);

/* One raw draw of the generator, uniform in [0, 1) with 53 random bits. */
RWKV_API double rwkv_sampler_uniform(rwkv_sampler *s);

/* ---- Batched decode that draws the next tokens -------------------------- */

/* How one row's next token is drawn: step 3 above with its random number
 * given, after a list of biases that stands for steps 1-2. */
typedef struct rwkv_draw {
    double temperature;  /* 0: greedy */
    double top_p;        /* [0, 1]; 1 keeps everything */
    int top_k;           /* 0: off */
    double uniform;      /* the draw's number in [0, 1) (rwkv_sampler_uniform) */
    const int *bias_ids; /* n_bias ids (distinct; others are added in turn): */
    const float *bias;   /* bias[i] is added to logit bias_ids[i]; -INFINITY bans it */
    size_t n_bias;       /* ids outside the vocabulary are skipped */
    int n_ids;           /* > 0: draw among ids [0, n_ids) only, as rwkv_sampler_sample with
                            n_vocab = n_ids (a tokenizer's vocabulary smaller than the model's);
                            0: the whole vocabulary */
} rwkv_draw;

/* Fills d for the sampler's next token: its rule, its bans and penalties as
 * the bias list (memory the sampler owns, valid until its next call), and
 * one number from its generator (none at temperature 0, where no number is
 * used). With the same logits, rwkv_eval_batch_sample's token for d is the
 * token rwkv_sampler_sample would draw; the generator then differs only
 * where rwkv_sampler_sample would have drawn nothing (every survivor of the
 * nucleus underflowing at a tiny temperature: the top token wins). */
RWKV_API rwkv_status rwkv_sampler_draw(rwkv_sampler *s, int n_vocab, rwkv_draw *d, rwkv_error *err);

/* rwkv_eval_batch, then next[i] = the token drawn from row i's logits by
 * draws[i], or -1 where none can be (a NaN or +inf logit, everything
 * banned). The CPU draws exactly as rwkv_sampler_sample (the same token for
 * the same logits, rule and number); a GPU model (RWKV-5/6/7) draws on the
 * device, so that the logits of a large batch never cross to the host, with
 * the same rules in other summation orders: its token can differ only where
 * the number or top_p falls within float rounding of a boundary between two
 * tokens. RWKV_ERR_ARG for the errors of rwkv_eval_batch and for a rule out
 * of range (temperature < 0 or not finite, top_p outside [0, 1], top_k < 0,
 * uniform outside [0, 1), a NULL bias list of n_bias > 0, n_ids < 0),
 * checked before any row is fed. */
RWKV_API rwkv_status rwkv_eval_batch_sample(rwkv_model *model, rwkv_state *const *states, const int *tokens, size_t n,
                                            const rwkv_draw *draws, int *next, rwkv_error *err);

#ifdef __cplusplus
}
#endif
#endif /* RWKV_SAMPLE_H */
