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
    /* Logits predicting tokens[a .. b-1] (row i predicts tokens[a + i], from
     * the tokens before it), a >= 1; *rows points into `buf`. fresh: tokens
     * starts a new sequence (no earlier call of this sequence). */
    rwkv_status (*predict)(eval_lm *lm, const int *tokens, size_t a, size_t b, int fresh, const float **rows,
                           rwkv_error *err);
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

static rwkv_status rwkv_lm_predict(eval_lm *lm, const int *tokens, size_t a, size_t b, int fresh,
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
        s = rwkv_eval_sequence(r->model, r->state, tokens + r->fed, a - r->fed, buf, 0, err);
        if (s == RWKV_OK && b - a > 1)
            s = rwkv_eval_sequence(r->model, r->state, tokens + a, b - a - 1, buf + lm->n_vocab, 1, err);
    } else {
        s = rwkv_eval_sequence(r->model, r->state, tokens + a - 1, b - a, buf, 1, err);
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

static rwkv_status window_lm_predict(eval_lm *lm, const int *tokens, size_t a, size_t b, int fresh,
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
    s = model_forward(g->model, tokens + first, b - 1 - first, buf, err);
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

static rwkv_status check_vocab(const int *tokens, size_t n, int V, rwkv_error *err) {
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return rwkv_fail(err, RWKV_ERR_ARG, "token %d at position %zu is outside the vocabulary [0, %d)",
                             tokens[i], i, V);
    return RWKV_OK;
}

static void finish_ppl(rwkv_ppl_result *r) {
    r->loss = r->n_tokens ? r->nll / (double)r->n_tokens : NAN;
    r->perplexity = exp(r->loss);
    r->bits_per_byte = r->n_bytes ? r->nll / ((double)r->n_bytes * log(2.0)) : NAN;
}

/* Scores tokens[1 .. n-1] in windows: the first scores `first` tokens, each
 * later one the next `step` (the last one what is left). */
static rwkv_status perplexity(eval_lm *lm, const int *tokens, size_t n, size_t first, size_t step,
                              const rwkv_ppl_options *o, rwkv_ppl_result *out, rwkv_error *err) {
    const int V = lm->n_vocab;
    const size_t total = n - 1;
    out->window = (int64_t)(first < total ? first : total);
    out->stride = (int64_t)step;
    out->context = lm->context && lm->context < total ? (int64_t)lm->context : (int64_t)total;
    rwkv_status s = check_vocab(tokens, n, V, err);
    for (size_t done = 0, w = first; s == RWKV_OK && done < total; w = step) {
        if (w > total - done) w = total - done;
        const float *rows;
        s = lm->predict(lm, tokens, 1 + done, 1 + done + w, done == 0, &rows, err);
        if (s != RWKV_OK) break;
        out->nll -= score_rows(rows, V, tokens + 1 + done, w, &out->n_top1);
        done += w;
        out->n_tokens = (int64_t)done;
        out->n_windows++;
        if (o->progress && done < total && o->progress((int64_t)done, (int64_t)total, o->user)) {
            out->stopped = 1;
            break;
        }
    }
    if (s != RWKV_OK) return s;
    if (!out->stopped && o->progress) o->progress((int64_t)total, (int64_t)total, o->user);

    /* bytes of the scored tokens */
    if (o->tokenizer) {
        char *text;
        size_t len;
        s = rwkv_detokenize(o->tokenizer, tokens + 1, (size_t)out->n_tokens, &text, &len, err);
        if (s != RWKV_OK) return s;
        rwkv_free(text);
        out->n_bytes = (int64_t)len;
    } else {
        out->n_bytes = out->n_tokens;
    }
    finish_ppl(out);
    return rwkv_ok(err);
}

/* RWKV: windows that carry the recurrent state, the whole text one context. */
static rwkv_status perplexity_rnn(rwkv_model *model, const int *tokens, size_t n, const rwkv_ppl_options *o,
                                  rwkv_ppl_result *out, rwkv_error *err) {
    if (o->stride)
        return rwkv_fail(err, RWKV_ERR_ARG,
                         "rwkv_eval_perplexity: a stride applies to the GPT only (RWKV carries its state across "
                         "windows)");
    size_t window = o->window ? o->window : 512;
    if (window > n - 1) window = n - 1;
    rwkv_lm r;
    rwkv_status s = rwkv_lm_open(&r, model, err);
    if (s == RWKV_OK) s = perplexity(&r.base, tokens, n, window, window, o, out, err);
    free(r.base.buf);
    rwkv_state_free(r.state);
    return s;
}

/* A bounded context (the GPT): overlapping windows of at most n_ctx tokens. */
static rwkv_status perplexity_windows(rwkv_model *model, const int *tokens, size_t n, const rwkv_ppl_options *o,
                                      rwkv_ppl_result *out, rwkv_error *err) {
    const size_t n_ctx = (size_t)model->info.n_ctx;
    size_t window = o->window ? o->window : n_ctx;
    if (window > n_ctx)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_perplexity: window %zu exceeds the model's context of %zu",
                         window, n_ctx);
    size_t stride = o->stride ? o->stride : window - window / 2;
    if (stride > window)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_perplexity: stride %zu exceeds the window of %zu", stride,
                         window);
    window_lm g;
    window_lm_open(&g, model, window);
    rwkv_status s = perplexity(&g.base, tokens, n, window, stride, o, out, err);
    free(g.base.buf);
    return s;
}

rwkv_status rwkv_eval_perplexity(rwkv_model *model, const int *tokens, size_t n, const rwkv_ppl_options *opt,
                                 rwkv_ppl_result *out, rwkv_error *err) {
    if (!model || !tokens || !out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_perplexity: model, tokens and out are required");
    memset(out, 0, sizeof *out);
    rwkv_ppl_options o = {0};
    if (opt) o = *opt;
    if (n < 2) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_perplexity: need at least 2 tokens, got %zu", n);
    return model->info.n_ctx ? perplexity_windows(model, tokens, n, &o, out, err)
                             : perplexity_rnn(model, tokens, n, &o, out, err);
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
    int fd;
    size_t size;
    rwkv_status s = open_regular_file(path, &fd, &size, err);
    if (s != RWKV_OK) return s;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
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
    if (s == RWKV_OK && ferror(f)) s = rwkv_fail(err, RWKV_ERR_IO, "%s: read error", path);
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
            s = check_vocab(seq, len, V, err);
        }
        if (s == RWKV_OK) s = lm->predict(lm, seq, len - n_tgt, len, 1, &rows, err);
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
