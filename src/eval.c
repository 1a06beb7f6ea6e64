/* Language-model evaluation (include/rwkv_eval.h, docs/eval.md): perplexity
 * over a token sequence in windows that carry the recurrent state, and the
 * LAMBADA last-word task as RWKV-LM scores it. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "rwkv_eval.h"

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

static void finish_ppl(rwkv_ppl_result *r) {
    r->loss = r->n_tokens ? r->nll / (double)r->n_tokens : NAN;
    r->perplexity = exp(r->loss);
    r->bits_per_byte = r->n_bytes ? r->nll / ((double)r->n_bytes * log(2.0)) : NAN;
}

rwkv_status rwkv_eval_perplexity(rwkv_model *model, const int *tokens, size_t n,
                                 const rwkv_ppl_options *opt, rwkv_ppl_result *out,
                                 rwkv_error *err) {
    if (!model || !tokens || !out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_perplexity: model, tokens and out are required");
    memset(out, 0, sizeof *out);
    if (n < 2)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_perplexity: need at least 2 tokens, got %zu", n);
    rwkv_ppl_options o = {0};
    if (opt) o = *opt;
    size_t window = o.window ? o.window : 512;
    rwkv_model_info info;
    rwkv_model_get_info(model, &info);
    const int V = info.n_vocab;
    if (window > n - 1) window = n - 1;
    if (window > ((size_t)1 << 40) / (size_t)V)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_perplexity: window %zu is too large", window);

    rwkv_state *st;
    rwkv_status s = rwkv_state_new(model, &st, err);
    if (s != RWKV_OK) return s;
    float *logits = malloc(window * (size_t)V * sizeof(float));
    if (!logits) {
        rwkv_state_free(st);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "rwkv_eval_perplexity: out of memory for %zu x %d logits",
                         window, V);
    }
    const size_t total = n - 1;
    for (size_t start = 0; start < total;) {
        size_t w = total - start < window ? total - start : window;
        s = rwkv_eval_sequence(model, st, tokens + start, w, logits, 1, err);
        if (s != RWKV_OK) break;
        for (size_t i = 0; i < w; i++) {
            int target = tokens[start + i + 1], top;
            if (target < 0 || target >= V) {
                s = rwkv_fail(err, RWKV_ERR_ARG, "token %d at position %zu is outside the vocabulary [0, %d)",
                              target, start + i + 1, V);
                break;
            }
            out->nll -= row_logprob(logits + i * (size_t)V, V, target, &top);
            out->n_top1 += top;
        }
        if (s != RWKV_OK) break;
        start += w;
        out->n_tokens = (int64_t)start;
        if (o.progress && start < total && o.progress((int64_t)start, (int64_t)total, o.user)) {
            out->stopped = 1;
            break;
        }
    }
    free(logits);
    rwkv_state_free(st);
    if (s != RWKV_OK) return s;
    if (!out->stopped && o.progress) o.progress((int64_t)total, (int64_t)total, o.user);

    /* bytes of the scored tokens */
    if (o.tokenizer) {
        char *text;
        size_t len;
        s = rwkv_detokenize(o.tokenizer, tokens + 1, (size_t)out->n_tokens, &text, &len, err);
        if (s != RWKV_OK) return s;
        rwkv_free(text);
        out->n_bytes = (int64_t)len;
    } else {
        out->n_bytes = out->n_tokens;
    }
    finish_ppl(out);
    return rwkv_ok(err);
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
    FILE *f = fopen(path, "rb");
    if (!f) return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    rwkv_lambada_set *set = calloc(1, sizeof *set);
    size_t cap = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t got;
    long line_no = 0;
    rwkv_status s = set ? RWKV_OK : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
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

rwkv_status rwkv_eval_lambada(rwkv_model *model, const rwkv_tokenizer *tok, const rwkv_lambada_set *set,
                              rwkv_lambada_callback cb, void *user, rwkv_lambada_result *out,
                              rwkv_error *err) {
    if (!model || !tok || !set || !out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_eval_lambada: model, tokenizer, set and out are required");
    memset(out, 0, sizeof *out);
    rwkv_model_info info;
    rwkv_model_get_info(model, &info);
    const int V = info.n_vocab;
    rwkv_state *st;
    rwkv_status s = rwkv_state_new(model, &st, err);
    if (s != RWKV_OK) return s;
    float *logits = NULL;
    size_t logits_rows = 0;
    int *src = NULL;
    size_t src_cap = 0;
    for (size_t e = 0; e < set->count && s == RWKV_OK; e++) {
        const rwkv_lambada_example *ex = &set->items[e];
        int *ctx = NULL, *tgt = NULL;
        size_t n_ctx = 0, n_tgt = 0;
        s = rwkv_tokenize(tok, ex->text, ex->split, &ctx, &n_ctx, err);
        if (s == RWKV_OK) s = rwkv_tokenize(tok, ex->text + ex->split, ex->len - ex->split, &tgt, &n_tgt, err);
        if (s == RWKV_OK && n_tgt == 0)
            s = rwkv_fail(err, RWKV_ERR_ARG, "passage %zu: the target tokenized to nothing", e);
        /* src = [0] + context; rows of logits needed: 1 + (n_tgt - 1) */
        if (s == RWKV_OK && n_ctx + 1 > src_cap) {
            size_t nc = (n_ctx + 1) * 2;
            int *ns = realloc(src, nc * sizeof *ns);
            if (!ns) s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
            else {
                src = ns;
                src_cap = nc;
            }
        }
        if (s == RWKV_OK && n_tgt > logits_rows) {
            float *nl = realloc(logits, n_tgt * (size_t)V * sizeof *nl);
            if (!nl) s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
            else {
                logits = nl;
                logits_rows = n_tgt;
            }
        }
        if (s == RWKV_OK) {
            src[0] = 0;
            if (n_ctx) memcpy(src + 1, ctx, n_ctx * sizeof *src);
            rwkv_state_reset(st);
            /* the last context position predicts the first target token ... */
            s = rwkv_eval_sequence(model, st, src, n_ctx + 1, logits, 0, err);
            /* ... and target token i predicts target token i+1 */
            if (s == RWKV_OK && n_tgt > 1)
                s = rwkv_eval_sequence(model, st, tgt, n_tgt - 1, logits + V, 1, err);
        }
        if (s == RWKV_OK) {
            double lp = 0.0;
            int correct = 1;
            for (size_t i = 0; i < n_tgt; i++) {
                int top;
                lp += row_logprob(logits + i * (size_t)V, V, tgt[i], &top);
                correct &= top;
            }
            out->n_examples++;
            out->n_correct += correct;
            out->n_target_tokens += (int64_t)n_tgt;
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
    free(logits);
    free(src);
    rwkv_state_free(st);
    if (s != RWKV_OK) return s;
    if (out->n_examples == 0) {
        out->accuracy = NAN;
        out->perplexity = NAN;
    }
    return rwkv_ok(err);
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
