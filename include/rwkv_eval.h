/*
 * rwkv_eval.h — language-model evaluation: perplexity over a text and the
 * LAMBADA last-word task, scored the way RWKV-LM and lm-evaluation-harness
 * (task lambada_openai) score it, for every model rwkv_model_load reads
 * (RWKV models and the GPT baseline) with the same arithmetic; only how the
 * text is cut into windows depends on whether the model's context is
 * bounded (info.n_ctx > 0, the GPT). docs/eval.md explains every number.
 *
 * Same conventions as rwkv.h: every fallible call returns an rwkv_status and
 * fills `err` (may be NULL); the library never prints and never exits.
 * Log-probabilities are computed in double from the float32 logits
 * (log-softmax with the row maximum subtracted).
 */
#ifndef RWKV_EVAL_H
#define RWKV_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "rwkv.h"
#include "rwkv_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Perplexity over a sequence of token ids                                  */
/* ------------------------------------------------------------------------ */

/* Called after every window with the tokens scored so far and the total to
 * score; a non-zero return stops the evaluation (the result then covers the
 * tokens scored so far and has `stopped` set). */
typedef int (*rwkv_eval_progress)(int64_t done, int64_t total, void *user);

typedef struct rwkv_ppl_options {
    size_t window;                   /* RWKV: tokens per rwkv_eval_sequence call (0: 512); the
                                        state is carried from window to window, so the result
                                        does not depend on it beyond float rounding.
                                        GPT: tokens fed per forward, the context of a window
                                        (0: the model's n_ctx; more is an error) */
    const rwkv_tokenizer *tokenizer; /* for the byte count (NULL: one byte per scored token,
                                        the byte-level case) */
    rwkv_eval_progress progress;     /* may be NULL */
    void *user;
    size_t stride;                   /* GPT only (RWKV: must be 0): tokens newly scored by each
                                        window after the first, 1..window (0: window - window/2,
                                        i.e. the last window/2 tokens are the next window's
                                        context) */
} rwkv_ppl_options;

typedef struct rwkv_ppl_result {
    double nll;           /* sum over scored tokens of -ln p(token | everything before it), nats */
    int64_t n_tokens;     /* scored tokens: n - 1 */
    int64_t n_bytes;      /* bytes of text those tokens decode to */
    int64_t n_top1;       /* scored tokens that were the argmax of their prediction */
    double loss;          /* nll / n_tokens: mean cross-entropy, nats per token */
    double perplexity;    /* exp(loss) */
    double bits_per_byte; /* nll / (n_bytes ln 2); NaN when n_bytes is 0 */
    int stopped;          /* the progress callback stopped it early */
    /* how the tokens were cut into windows (the first scores `window` tokens,
     * every later one `stride`): */
    int64_t window;       /* RWKV: tokens per call; GPT: tokens fed per forward */
    int64_t stride;       /* RWKV: = window; GPT: the stride used */
    int64_t context;      /* the most tokens one prediction saw: RWKV n - 1 (the whole
                             text is one context), GPT the window */
    int64_t n_windows;    /* model calls (RWKV) / forwards (GPT) */
} rwkv_ppl_result;

/* Scores tokens[1..n-1], each given every token before it, starting from a
 * fresh state fed tokens[0] (so the first token is context only; prepend an
 * end-of-text id to have the first text token scored too). n must be at
 * least 2.
 *
 * RWKV: the tokens are fed in sequence mode `window` at a time, the recurrent
 * state carried across windows: the whole text is one context.
 *
 * The GPT baseline, whose context is bounded by its n_ctx learned positions,
 * is scored with a sliding window. With W = window and S = stride:
 * the first window feeds tokens[0 .. W-1] and scores tokens[1 .. W]; every
 * later window scores the next S tokens, feeding the W tokens before each
 * scored block's last token (the W - S tokens before the block are context
 * only, scored by an earlier window); the last window scores what is left and
 * is still fed W tokens (more context). So every token after the first is
 * scored exactly once (n_tokens = n - 1), each from at least min(W - S + 1,
 * its position) tokens before it and at most W. Each window is one
 * whole-sequence forward from position 0; the progress callback runs after
 * each. */
RWKV_API rwkv_status rwkv_eval_perplexity(rwkv_model *model, const int *tokens, size_t n,
                                 const rwkv_ppl_options *opt, rwkv_ppl_result *out,
                                 rwkv_error *err);

/* The same evaluation for a sequence too long to hold: push the tokens in
 * pieces of any size (the first piece's first token is context only, as
 * above), then finish. Each window is scored as soon as a later token is
 * pushed, and only the tokens a later window still feeds are kept (RWKV: none
 * before the window; the GPT: the window's context), so memory does not grow
 * with the length of the text. The result is that of rwkv_eval_perplexity on
 * the concatenated pieces (same windows, same numbers). The progress
 * callback's total is 0 (not known) until the last call, from finish. */
typedef struct rwkv_ppl_stream rwkv_ppl_stream;
RWKV_API rwkv_status rwkv_ppl_stream_new(rwkv_model *model, const rwkv_ppl_options *opt, rwkv_ppl_stream **out,
                                         rwkv_error *err);
/* A token outside the model's vocabulary is RWKV_ERR_ARG naming its position
 * in the whole sequence. After the progress callback stopped the evaluation,
 * further tokens are ignored. */
RWKV_API rwkv_status rwkv_ppl_stream_push(rwkv_ppl_stream *s, const int *tokens, size_t n, rwkv_error *err);
/* Scores what is left; fewer than 2 tokens pushed in all is RWKV_ERR_ARG. */
RWKV_API rwkv_status rwkv_ppl_stream_finish(rwkv_ppl_stream *s, rwkv_ppl_result *out, rwkv_error *err);
RWKV_API void rwkv_ppl_stream_free(rwkv_ppl_stream *s);

/* ------------------------------------------------------------------------ */
/* LAMBADA (docs/eval.md)                                                   */
/* ------------------------------------------------------------------------ */

/* One passage: context = text[0, split), target = text[split, len), which
 * starts with the space that preceded the last word. */
typedef struct rwkv_lambada_example {
    char *text; /* NUL-terminated, the decoded JSON string (may hold newlines) */
    size_t len;
    size_t split;
} rwkv_lambada_example;

typedef struct rwkv_lambada_set {
    rwkv_lambada_example *items;
    size_t count;
} rwkv_lambada_set;

/* The split rule of RWKV-LM (Python text.rsplit(' ', 1)): the position of the
 * LAST space character (0x20) of text[0, len). Returns 1 and sets *split, or
 * 0 when the text holds no space. */
RWKV_API int rwkv_lambada_split(const char *text, size_t len, size_t *split);

/* Reads a JSON Lines file of objects with a string member "text" (the
 * lambada_openai file); blank lines are skipped. At most `limit` examples
 * are read (0: all). A line that is not such an object, or a text without a
 * space, is RWKV_ERR_FORMAT naming the line; so is a file without passages. */
RWKV_API rwkv_status rwkv_lambada_read(const char *path, size_t limit, rwkv_lambada_set **out,
                              rwkv_error *err);
RWKV_API void rwkv_lambada_free(rwkv_lambada_set *set);

/* Per-example report, after each passage. */
typedef struct rwkv_lambada_step {
    int64_t index, total;  /* 0-based index of the passage just scored, passages in all */
    double logprob;        /* its summed target log-probability (nats) */
    int n_target_tokens;
    int correct;           /* every target token was the argmax */
    double accuracy;       /* running, over index + 1 passages */
    double perplexity;     /* running */
} rwkv_lambada_step;
/* A non-zero return stops the evaluation after this passage. */
typedef int (*rwkv_lambada_callback)(const rwkv_lambada_step *step, void *user);

typedef struct rwkv_lambada_result {
    int64_t n_examples;      /* passages scored */
    int64_t n_correct;
    int64_t n_target_tokens; /* over all passages */
    double sum_logprob;      /* over all passages, nats */
    double accuracy;         /* n_correct / n_examples */
    double perplexity;       /* exp(-sum_logprob / n_examples) */
    int stopped;
    int64_t n_truncated;     /* GPT: passages whose input was longer than n_ctx (left-truncated) */
} rwkv_lambada_result;

/* Scores every passage: from a fresh state, feed token 0 then the tokens of
 * the context, then the target's tokens one at a time (context and target
 * are tokenized separately, as RWKV-LM and lm-evaluation-harness do). The
 * passage's log-probability is the sum over target tokens; it is correct
 * when each target token is the argmax (first maximum) of its prediction.
 * The GPT baseline: each passage is one whole-sequence forward of
 * [0] + context + target without its last token. When that is longer than
 * n_ctx, only its last n_ctx tokens are fed (token 0 and the start of the
 * context are dropped; counted in n_truncated). A target longer than n_ctx
 * tokens is RWKV_ERR_ARG. */
RWKV_API rwkv_status rwkv_eval_lambada(rwkv_model *model, const rwkv_tokenizer *tok,
                              const rwkv_lambada_set *set, rwkv_lambada_callback cb, void *user,
                              rwkv_lambada_result *out, rwkv_error *err);

/* rwkv_lambada_read + rwkv_eval_lambada. */
RWKV_API rwkv_status rwkv_eval_lambada_file(rwkv_model *model, const rwkv_tokenizer *tok,
                                   const char *path, size_t limit, rwkv_lambada_callback cb,
                                   void *user, rwkv_lambada_result *out, rwkv_error *err);

#ifdef __cplusplus
}
#endif
#endif /* RWKV_EVAL_H */
