/* Language-model evaluation (include/rwkv_eval.h, docs/eval.md): perplexity
 * over a token sequence (RWKV: windows that carry the recurrent state; the
 * GPT: overlapping windows of its fixed context) and the LAMBADA last-word
 * task as RWKV-LM scores it, for both through one scoring path. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/error.h"
#include "core/fs.h"
#include "model/model.h"
#include "rwkv_eval.h"

/* ------------------------------------------------------------------------ */
/* The model as the scoring code sees it                                    */
/* ------------------------------------------------------------------------ */

/* Everything below scores through this interface, so the arithmetic (the
 * log-softmax, the accumulation, the LAMBADA argmax test) exists once for
 * RWKV and the GPT. */
typedef struct eval_lm eval_lm;
struct eval_lm {
    int n_vocab;
    size_t context; /* tokens one prediction can see at most; 0: unbounded (RWKV) */
    /* Logits predicting positions a .. b-1 of the sequence (row i predicts
     * position a + i, from the positions before it), a >= 1; *rows points
     * into `buf`. tokens[0] is position `origin` (a window of a longer
     * sequence: it holds every position the call feeds). fresh: the sequence
     * starts anew (no earlier call of this sequence). */
    rwkv_status (*predict)(eval_lm *lm, const int *tokens, size_t origin, size_t a, size_t b, int fresh,
                           const float **rows, rwkv_error *err);
    float *buf;
    size_t buf_rows;
};

/* *out = lm->buf with room for `rows` rows of logits. */
static rwkv_status lm_rows(eval_lm *lm, size_t rows, float **out, rwkv_error *err) {
    if (rows > lm->buf_rows) {
        if (rows > ((size_t)1 << 40) / (size_t)lm->n_vocab)
            return rwkv_fail(err, RWKV_ERR_ARG, "%zu x %d logits are too many", rows, lm->n_vocab);
        float *nb = realloc(lm->buf, rows * (size_t)lm->n_vocab * sizeof *nb);
        if (!nb) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu x %d logits", rows, lm->n_vocab);
        lm->buf = nb;
        lm->buf_rows = rows;
    }
    *out = lm->buf;
    return RWKV_OK;
}

/* RWKV: one state carried from call to call; a fresh sequence resets it. */
typedef struct rwkv_lm {
    eval_lm base;
    rwkv_model *model;
    rwkv_state *state;
    size_t fed; /* tokens of the current sequence the state holds */
} rwkv_lm;

static rwkv_status rwkv_lm_predict(eval_lm *lm, const int *tokens, size_t origin, size_t a, size_t b, int fresh,
                                   const float **rows, rwkv_error *err) {
    rwkv_lm *r = (rwkv_lm *)lm;
    if (fresh) {
        rwkv_state_reset(r->state);
        r->fed = 0;
    }
    float *buf;
    rwkv_status s = lm_rows(lm, b - a, &buf, err);
    if (s != RWKV_OK) return s;
    if (r->fed + 1 < a) {
        /* context the state does not hold yet: only its last prediction is kept */
        s = rwkv_eval_sequence(r->model, r->state, tokens + (r->fed - origin), a - r->fed, buf, 0, err);
        if (s == RWKV_OK && b - a > 1)
            s = rwkv_eval_sequence(r->model, r->state, tokens + (a - origin), b - a - 1, buf + lm->n_vocab, 1, err);
    } else {
        s = rwkv_eval_sequence(r->model, r->state, tokens + (a - 1 - origin), b - a, buf, 1, err);
    }
    r->fed = b - 1;
    *rows = buf;
    return s;
}

static rwkv_status rwkv_lm_open(rwkv_lm *r, rwkv_model *model, rwkv_error *err) {
    memset(r, 0, sizeof *r);
    rwkv_model_info info;
    rwkv_model_get_info(model, &info);
    r->base.n_vocab = info.n_vocab;
    r->base.predict = rwkv_lm_predict;
    r->model = model;
    return rwkv_state_new(model, &r->state, err);
}

/* A bounded-context model (the GPT): every call is a whole-sequence
 * forward of at most `context` tokens, the last ones before tokens[b-1]. */
typedef struct window_lm {
    eval_lm base;
    rwkv_model *model;
} window_lm;

static rwkv_status window_lm_predict(eval_lm *lm, const int *tokens, size_t origin, size_t a, size_t b, int fresh,
                                     const float **rows, rwkv_error *err) {
    (void)fresh;
    window_lm *g = (window_lm *)lm;
    size_t first = b - 1 > lm->context ? b - 1 - lm->context : 0; /* feed tokens[first .. b-2] */
    if (first > a - 1)
        return rwkv_fail(err, RWKV_ERR_ARG, "%zu predictions need more than the model's %zu positions", b - a,
                         lm->context);
    float *buf;
    rwkv_status s = lm_rows(lm, b - 1 - first, &buf, err);
    if (s != RWKV_OK) return s;
    s = model_forward(g->model, tokens + (first - origin), b - 1 - first, buf, err);
    *rows = buf + (a - 1 - first) * (size_t)lm->n_vocab;
    return s;
}

static void window_lm_open(window_lm *g, rwkv_model *model, size_t context) {
    memset(g, 0, sizeof *g);
    g->base.n_vocab = model->info.n_vocab;
    g->base.context = context ? context : (size_t)model->info.n_ctx;
    g->base.predict = window_lm_predict;
    g->model = model;
}

/* ------------------------------------------------------------------------ */
/* Scoring                                                                  */
/* ------------------------------------------------------------------------ */

/* ln softmax(logits)[target] in double; *top = target is the first maximum. */
static double row_logprob(const float *logits, int V, int target, int *top) {
    int arg = 0;
    float mx = logits[0];
    for (int i = 1; i < V; i++)
        if (logits[i] > mx) {
            mx = logits[i];
            arg = i;
        }
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - (double)mx);
    *top = arg == target;
    return ((double)logits[target] - (double)mx) - log(sum);
}

/* Σ ln p(targets[i]) under row i of `rows`; *n_top += the targets that were
 * their row's argmax. */
static double score_rows(const float *rows, int V, const int *targets, size_t n, int64_t *n_top) {
    double lp = 0.0;
    for (size_t i = 0; i < n; i++) {
        int top;
        lp += row_logprob(rows + i * (size_t)V, V, targets[i], &top);
        *n_top += top;
    }
    return lp;
}

/* tokens[i] is position origin + i of the sequence. */
static rwkv_status check_vocab(const int *tokens, size_t n, size_t origin, int V, rwkv_error *err) {
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return rwkv_fail(err, RWKV_ERR_ARG, "token %d at position %zu is outside the vocabulary [0, %d)",
                             tokens[i], origin + i, V);
    return RWKV_OK;
}

static void finish_ppl(rwkv_ppl_result *r) {
    r->loss = r->n_tokens ? r->nll / (double)r->n_tokens : NAN;
    r->perplexity = exp(r->loss);
    r->bits_per_byte = r->n_bytes ? r->nll / ((double)r->n_bytes * log(2.0)) : NAN;
}

/* Perplexity as a stream: tokens arrive in pieces and each window is scored
 * as soon as a later token shows it is not the last one, so only the tokens
 * a window still needs are held (RWKV: none before the window; the GPT: its
 * context). The windows, and so the numbers, are those of scoring the whole
 * sequence at once: the first window scores `first` positions, every later
 * one `step`, the last one what is left. */
struct rwkv_ppl_stream {
    rwkv_ppl_options o;
    rwkv_lm rnn;
    window_lm win;
    eval_lm *lm;
    size_t first, step;
    int *buf; /* positions [origin, origin + len) */
    size_t origin, len, cap;
    size_t done;       /* positions 1 .. done are scored */
    int64_t total;     /* positions to score, for the progress callback; 0: not known */
    rwkv_ppl_result r;
};

/* Scores positions done+1 .. done+w. */
static rwkv_status stream_window(rwkv_ppl_stream *ps, size_t w, int last, rwkv_error *err) {
    eval_lm *lm = ps->lm;
    const float *rows;
    size_t a = 1 + ps->done;
    rwkv_status s = lm->predict(lm, ps->buf, ps->origin, a, a + w, ps->done == 0, &rows, err);
    if (s != RWKV_OK) return s;
    const int *targets = ps->buf + (a - ps->origin);
    ps->r.nll -= score_rows(rows, lm->n_vocab, targets, w, &ps->r.n_top1);
    if (ps->o.tokenizer) { /* the bytes these tokens decode to: decoding concatenates */
        char *text;
        size_t len;
        s = rwkv_detokenize(ps->o.tokenizer, targets, w, &text, &len, err);
        if (s != RWKV_OK) return s;
        rwkv_free(text);
        ps->r.n_bytes += (int64_t)len;
    } else {
        ps->r.n_bytes += (int64_t)w;
    }
    ps->done += w;
    ps->r.n_tokens = (int64_t)ps->done;
    ps->r.n_windows++;
    if (!last && ps->o.progress && ps->o.progress((int64_t)ps->done, ps->total, ps->o.user)) ps->r.stopped = 1;
    return RWKV_OK;
}

rwkv_status rwkv_ppl_stream_new(rwkv_model *model, const rwkv_ppl_options *opt, rwkv_ppl_stream **out,
                                rwkv_error *err) {
    if (!model || !out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_ppl_stream_new: model and out are required");
    *out = NULL;
    rwkv_ppl_options o = {0};
    if (opt) o = *opt;
    const size_t n_ctx = (size_t)model->info.n_ctx;
    size_t window = o.window ? o.window : n_ctx ? n_ctx : 512, stride = window;
    if (!n_ctx && o.stride)
        return rwkv_fail(err, RWKV_ERR_ARG,
                         "perplexity: a stride applies to the GPT only (RWKV carries its state across windows)");
    if (n_ctx && window > n_ctx)
        return rwkv_fail(err, RWKV_ERR_ARG, "perplexity: window %zu exceeds the model's context of %zu", window,
                         n_ctx);
    if (n_ctx) stride = o.stride ? o.stride : window - window / 2;
    if (stride > window)
        return rwkv_fail(err, RWKV_ERR_ARG, "perplexity: stride %zu exceeds the window of %zu", stride, window);
    rwkv_ppl_stream *ps = calloc(1, sizeof *ps);
    if (!ps) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    ps->o = o;
    ps->first = window;
    ps->step = stride;
    if (n_ctx) {
        window_lm_open(&ps->win, model, window);
        ps->lm = &ps->win.base;
    } else {
        rwkv_status s = rwkv_lm_open(&ps->rnn, model, err);
        ps->lm = &ps->rnn.base;
        if (s != RWKV_OK) {
            rwkv_ppl_stream_free(ps);
            return s;
        }
    }
    *out = ps;
    return rwkv_ok(err);
}

rwkv_status rwkv_ppl_stream_push(rwkv_ppl_stream *ps, const int *tokens, size_t n, rwkv_error *err) {
    if (!ps || (!tokens && n)) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_ppl_stream_push: stream and tokens are required");
    if (ps->r.stopped || n == 0) return rwkv_ok(err);
    rwkv_status s = check_vocab(tokens, n, ps->origin + ps->len, ps->lm->n_vocab, err);
    if (s != RWKV_OK) return s;
    /* drop the positions no later window feeds: before the next window (RWKV),
     * or before its context (the GPT) */
    size_t keep = ps->done - (ps->done < ps->lm->context ? ps->done : ps->lm->context);
    if (keep > ps->origin) {
        memmove(ps->buf, ps->buf + (keep - ps->origin), (ps->len - (keep - ps->origin)) * sizeof *ps->buf);
        ps->len -= keep - ps->origin;
        ps->origin = keep;
    }
    if (ps->len + n > ps->cap) {
        size_t cap = (ps->len + n) * 2;
        int *nb = cap < SIZE_MAX / sizeof *nb ? realloc(ps->buf, cap * sizeof *nb) : NULL;
        if (!nb) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu tokens", cap);
        ps->buf = nb;
        ps->cap = cap;
    }
    memcpy(ps->buf + ps->len, tokens, n * sizeof *tokens);
    ps->len += n;
    /* a window whose last position is not the sequence's last one (a later
     * position is held) is scored now; the last is left to finish */
    for (;;) {
        size_t w = ps->done ? ps->step : ps->first, avail = ps->origin + ps->len;
        if (ps->r.stopped || ps->done + w + 1 >= avail) break;
        s = stream_window(ps, w, 0, err);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}

rwkv_status rwkv_ppl_stream_finish(rwkv_ppl_stream *ps, rwkv_ppl_result *out, rwkv_error *err) {
    if (!ps || !out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_ppl_stream_finish: stream and out are required");
    size_t n = ps->origin + ps->len;
    if (n < 2) return rwkv_fail(err, RWKV_ERR_ARG, "perplexity: need at least 2 tokens, got %zu", n);
    const size_t total = n - 1;
    if (!ps->r.stopped && ps->done < total) {
        rwkv_status s = stream_window(ps, total - ps->done, 1, err);
        if (s != RWKV_OK) return s;
    }
    if (!ps->r.stopped && ps->o.progress) ps->o.progress((int64_t)total, (int64_t)total, ps->o.user);
    rwkv_ppl_result *r = &ps->r;
    r->window = (int64_t)(ps->first < total ? ps->first : total);
    r->stride = (int64_t)ps->step;
    r->context = ps->lm->context && ps->lm->context < total ? (int64_t)ps->lm->context : (int64_t)total;
    finish_ppl(r);
    *out = *r;
    return rwkv_ok(err);
}

void rwkv_ppl_stream_free(rwkv_ppl_stream *ps) {
    if (!ps) return;
    if (ps->lm) free(ps->lm->buf);
    rwkv_state_free(ps->rnn.state);
    free(ps->buf);
    free(ps);
}

rwkv_status rwkv_eval_perplexity(rwkv_model *model, const int *tokens, size_t n, const rwkv_ppl_options *opt,
                                 rwkv_ppl_result *out, rwkv_error *err) {
    if (!model || !tokens || !out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_perplexity: model, tokens and out are required");
    memset(out, 0, sizeof *out);
    if (n < 2) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_perplexity: need at least 2 tokens, got %zu", n);
    rwkv_ppl_stream *ps;
    rwkv_status s = rwkv_ppl_stream_new(model, opt, &ps, err);
    if (s != RWKV_OK) return s;
    ps->total = (int64_t)(n - 1);
    s = rwkv_ppl_stream_push(ps, tokens, n, err);
    if (s == RWKV_OK) s = rwkv_ppl_stream_finish(ps, out, err);
    rwkv_ppl_stream_free(ps);
    return s;
}

/* ------------------------------------------------------------------------ */
/* LAMBADA                                                                  */
/* ------------------------------------------------------------------------ */

int rwkv_lambada_split(const char *text, size_t len, size_t *split) {
    for (size_t i = len; i-- > 0;)
        if (text[i] == ' ') {
            *split = i;
            return 1;
        }
    return 0;
}

void rwkv_lambada_free(rwkv_lambada_set *set) {
    if (!set) return;
    for (size_t i = 0; i < set->count; i++) free(set->items[i].text);
    free(set->items);
    free(set);
}

static int blank_line(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

rwkv_status rwkv_lambada_read(const char *path, size_t limit, rwkv_lambada_set **out, rwkv_error *err) {
    if (!path || !out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_lambada_read: path and out are required");
    *out = NULL;
    FILE *f;
    rwkv_status s = fopen_regular_file(path, &f, err);
    if (s != RWKV_OK) return s;
    rwkv_lambada_set *set = calloc(1, sizeof *set);
    size_t cap = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t got;
    long line_no = 0;
    s = set ? RWKV_OK : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    while (s == RWKV_OK && (limit == 0 || set->count < limit) && (got = getline(&line, &line_cap, f)) >= 0) {
        line_no++;
        if (blank_line(line, (size_t)got)) continue;
        json_error_t jerr;
        json_t *root = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &jerr);
        json_t *jt = root && json_is_object(root) ? json_object_get(root, "text") : NULL;
        if (!root) {
            s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: line %ld: invalid JSON: %s (column %d)", path, line_no,
                          jerr.text, jerr.column);
            break;
        }
        if (!jt || !json_is_string(jt)) {
            json_decref(root);
            s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: line %ld: expected an object with a string \"text\"", path,
                          line_no);
            break;
        }
        size_t len = json_string_length(jt), split;
        const char *txt = json_string_value(jt);
        if (!rwkv_lambada_split(txt, len, &split)) {
            json_decref(root);
            s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: line %ld: the text has no space to split the last word at",
                          path, line_no);
            break;
        }
        if (set->count == cap) {
            size_t nc = cap ? cap * 2 : 1024;
            rwkv_lambada_example *ni = realloc(set->items, nc * sizeof *ni);
            if (!ni) {
                json_decref(root);
                s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
                break;
            }
            set->items = ni;
            cap = nc;
        }
        char *copy = malloc(len + 1);
        if (!copy) {
            json_decref(root);
            s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(copy, txt, len);
        copy[len] = '\0';
        set->items[set->count++] = (rwkv_lambada_example){copy, len, split};
        json_decref(root);
    }
    if (s == RWKV_OK && ferror(f)) s = rwkv_fail_errno(err, RWKV_ERR_IO, "%s: read error", path);
    if (s == RWKV_OK && set->count == 0) /* an accuracy over no passages is not a result */
        s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: no passages (the file is empty or holds only blank lines)", path);
    free(line);
    fclose(f);
    if (s != RWKV_OK) {
        rwkv_lambada_free(set);
        return s;
    }
    *out = set;
    return rwkv_ok(err);
}

/* Every passage from a fresh start: the model reads [0] + context + target
 * (all but the last target token) and each target token is scored by the
 * prediction before it. */
static rwkv_status lambada(eval_lm *lm, const rwkv_tokenizer *tok, const rwkv_lambada_set *set,
                           rwkv_lambada_callback cb, void *user, rwkv_lambada_result *out, rwkv_error *err) {
    const int V = lm->n_vocab;
    rwkv_status s = RWKV_OK;
    int *seq = NULL;
    size_t seq_cap = 0;
    for (size_t e = 0; e < set->count && s == RWKV_OK; e++) {
        const rwkv_lambada_example *ex = &set->items[e];
        int *ctx = NULL, *tgt = NULL;
        size_t n_ctx = 0, n_tgt = 0;
        s = rwkv_tokenize(tok, ex->text, ex->split, &ctx, &n_ctx, err);
        if (s == RWKV_OK) s = rwkv_tokenize(tok, ex->text + ex->split, ex->len - ex->split, &tgt, &n_tgt, err);
        if (s == RWKV_OK && n_tgt == 0) s = rwkv_fail(err, RWKV_ERR_ARG, "the target tokenized to nothing");
        if (s == RWKV_OK && lm->context && n_tgt > lm->context)
            s = rwkv_fail(err, RWKV_ERR_ARG, "the target is %zu tokens, more than the model's context of %zu", n_tgt,
                          lm->context);
        const size_t len = 1 + n_ctx + n_tgt;
        if (s == RWKV_OK && len > seq_cap) {
            int *ns = realloc(seq, len * 2 * sizeof *ns);
            if (!ns) s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
            else {
                seq = ns;
                seq_cap = len * 2;
            }
        }
        const float *rows = NULL;
        if (s == RWKV_OK) {
            seq[0] = 0;
            if (n_ctx) memcpy(seq + 1, ctx, n_ctx * sizeof *seq);
            memcpy(seq + 1 + n_ctx, tgt, n_tgt * sizeof *seq);
            s = check_vocab(seq, len, 0, V, err);
        }
        if (s == RWKV_OK) s = lm->predict(lm, seq, 0, len - n_tgt, len, 1, &rows, err);
        if (s == RWKV_OK) {
            int64_t hits = 0;
            double lp = score_rows(rows, V, seq + len - n_tgt, n_tgt, &hits);
            int correct = hits == (int64_t)n_tgt;
            out->n_examples++;
            out->n_correct += correct;
            out->n_target_tokens += (int64_t)n_tgt;
            out->n_truncated += lm->context && len - 1 > lm->context;
            out->sum_logprob += lp;
            out->accuracy = (double)out->n_correct / (double)out->n_examples;
            out->perplexity = exp(-out->sum_logprob / (double)out->n_examples);
            if (cb) {
                rwkv_lambada_step step = {(int64_t)e, (int64_t)set->count, lp, (int)n_tgt, correct,
                                          out->accuracy, out->perplexity};
                if (cb(&step, user) && e + 1 < set->count) out->stopped = 1;
            }
        }
        rwkv_free(ctx);
        rwkv_free(tgt);
        if (s != RWKV_OK && err) {
            char where[64];
            snprintf(where, sizeof where, "LAMBADA passage %zu", e + 1);
            rwkv_error_prefix(err, where);
        }
        if (out->stopped) break;
    }
    free(seq);
    if (s != RWKV_OK) return s;
    if (out->n_examples == 0) {
        out->accuracy = NAN;
        out->perplexity = NAN;
    }
    return rwkv_ok(err);
}

rwkv_status rwkv_eval_lambada(rwkv_model *model, const rwkv_tokenizer *tok, const rwkv_lambada_set *set,
                              rwkv_lambada_callback cb, void *user, rwkv_lambada_result *out, rwkv_error *err) {
    if (!model || !tok || !set || !out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_lambada: model, tokenizer, set and out are required");
    memset(out, 0, sizeof *out);
    rwkv_status s = RWKV_OK;
    if (model->info.n_ctx) {
        window_lm g;
        window_lm_open(&g, model, 0);
        s = lambada(&g.base, tok, set, cb, user, out, err);
        free(g.base.buf);
    } else {
        rwkv_lm r;
        s = rwkv_lm_open(&r, model, err);
        if (s == RWKV_OK) s = lambada(&r.base, tok, set, cb, user, out, err);
        free(r.base.buf);
        rwkv_state_free(r.state);
    }
    return s;
}

rwkv_status rwkv_eval_lambada_file(rwkv_model *model, const rwkv_tokenizer *tok, const char *path,
                                   size_t limit, rwkv_lambada_callback cb, void *user,
                                   rwkv_lambada_result *out, rwkv_error *err) {
    rwkv_lambada_set *set;
    rwkv_status s = rwkv_lambada_read(path, limit, &set, err);
    if (s != RWKV_OK) return s;
    s = rwkv_eval_lambada(model, tok, set, cb, user, out, err);
    rwkv_lambada_free(set);
    return s;
}
