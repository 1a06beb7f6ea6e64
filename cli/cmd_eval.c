/* rwkv eval: perplexity / loss / bits per byte over a text file, or LAMBADA
 * last-word accuracy and perplexity (docs/eval.md), for an RWKV model or the
 * GPT baseline (rwkv_model_load reads both and says which it is). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "rwkv_eval.h"
#include "rwkv_tokenizer.h"

static const char about[] =
    "MODEL is an RWKV checkpoint or a GPT baseline checkpoint (rwkv train --arch gpt); which one\n"
    "is read from the file. Both are scored by the same code, so the numbers compare.\n\n"
    "--data: every token after the first is scored exactly once, from the tokens before it. Prints\n"
    "the tokens scored, the loss (mean cross-entropy, nats/token), perplexity = exp(loss), bits per\n"
    "token and bits per byte (total NLL / (bytes x ln 2)) and the share of tokens that were the\n"
    "model's top-1 prediction.\n"
    "  RWKV: the whole file is one context, fed in sequence mode WINDOW tokens at a time with the\n"
    "  state carried over (WINDOW only bounds memory).\n"
    "  GPT: its context is its n_ctx learned positions, so the text is scored with a sliding window:\n"
    "  each forward feeds WINDOW tokens (default and maximum n_ctx); the first scores tokens 1..WINDOW,\n"
    "  each later one the next STRIDE tokens (default WINDOW - WINDOW/2), with the WINDOW - STRIDE\n"
    "  tokens before them as context that is not scored again; the last one still feeds WINDOW tokens.\n"
    "  A token thus sees between WINDOW - STRIDE + 1 and WINDOW tokens (fewer only near the start).\n\n"
    "--lambada: LAMBADA (OpenAI's lambada_test.jsonl, lm-eval-harness task lambada_openai) scored\n"
    "as RWKV-LM does: each passage is split at its last space, token 0 + context tokens are fed,\n"
    "then the target (space + last word) is scored token by token. accuracy = share of passages\n"
    "whose every target token is the argmax; perplexity = exp(-mean summed target log-prob).\n"
    "GPT: when token 0 + context + target is longer than n_ctx, only its last n_ctx tokens are fed\n"
    "(the start of the context is dropped; the passages are counted as truncated).\n"
    "Perplexity depends on the tokenizer: quote it with the number.\n\n";

/* Progress on stderr: a redrawn bar on a terminal, otherwise a plain line at
 * every 10% (and at most every 30 s apart when it is slow). */
typedef struct progress {
    int enabled, tty;
    double start, last_print;
    int last_decile;
    const char *unit;
} progress;

static void fmt_time(double s, char *buf, size_t size) {
    if (!(s >= 0) || s > 360000) snprintf(buf, size, "?");
    else if (s < 60) snprintf(buf, size, "%.0fs", s);
    else if (s < 3600) snprintf(buf, size, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, size, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static void progress_show(progress *p, int64_t done, int64_t total, const char *extra) {
    if (!p->enabled || total <= 0) return;
    double t = cli_now(), el = t - p->start, frac = (double)done / (double)total;
    double eta = done > 0 ? el * (double)(total - done) / (double)done : -1;
    char es[32], ts[32];
    fmt_time(eta, es, sizeof es);
    fmt_time(el, ts, sizeof ts);
    if (p->tty) {
        if (done < total && t - p->last_print < 0.1) return;
        p->last_print = t;
        char bar[31];
        int fill = (int)(frac * 30.0);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r\033[K[%s] %5.1f%% %lld/%lld %s%s%s  elapsed %s eta %s", bar, 100.0 * frac,
                (long long)done, (long long)total, p->unit, *extra ? "  " : "", extra, ts, es);
        if (done >= total) fputc('\n', stderr);
    } else {
        int decile = (int)(frac * 10.0);
        if (done < total && decile <= p->last_decile && t - p->last_print < 30.0) return;
        p->last_decile = decile;
        p->last_print = t;
        fprintf(stderr, "eval: %lld/%lld %s (%.0f%%)%s%s  elapsed %s eta %s\n", (long long)done, (long long)total,
                p->unit, 100.0 * frac, *extra ? "  " : "", extra, ts, es);
    }
    fflush(stderr);
}

static int ppl_progress(int64_t done, int64_t total, void *user) {
    progress_show(user, done, total, "");
    return 0;
}

static int lambada_progress(const rwkv_lambada_step *s, void *user) {
    char extra[96];
    snprintf(extra, sizeof extra, "acc %.2f%% ppl %.3f", 100.0 * s->accuracy, s->perplexity);
    progress_show(user, s->index + 1, s->total, extra);
    return 0;
}

/* Prints a JSON object (takes the reference). */
static void print_json(json_t *o) {
    char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}

static json_t *json_num(double v) { return isfinite(v) ? json_real(v) : json_null(); }


/* What the flags ask for, and the loaded model and tokenizer. */
typedef struct eval_run {
    const char *model_path, *data, *lambada, *tok_path, *device, *precision;
    long window, stride, limit, bos;
    int threads, json, quiet;
    rwkv_model *m;
    rwkv_model_info info;
    rwkv_tokenizer *tok;
    char desc[160];
    rwkv_error err;
} eval_run;

static void ppl_print(const eval_run *e, const rwkv_ppl_result *r, size_t len, size_t n_ids, double secs) {
    const int gpt = e->info.arch == RWKV_ARCH_GPT;
    double bpt = r->loss / log(2.0), top1 = (double)r->n_top1 / (double)r->n_tokens;
    if (e->json) {
        json_t *j = json_object();
        json_object_set_new(j, "model", json_string(e->model_path));
        json_object_set_new(j, "arch", json_string(gpt ? "gpt" : "rwkv"));
        json_object_set_new(j, "data", json_string(e->data));
        json_object_set_new(j, "tokenizer", json_string(rwkv_tokenizer_kind(e->tok)));
        json_object_set_new(j, "window", json_integer((json_int_t)r->window));
        json_object_set_new(j, "stride", json_integer((json_int_t)r->stride));
        json_object_set_new(j, "windows", json_integer((json_int_t)r->n_windows));
        json_object_set_new(j, "context", json_integer((json_int_t)r->context));
        json_object_set_new(j, "tokens", json_integer((json_int_t)r->n_tokens));
        json_object_set_new(j, "bytes", json_integer((json_int_t)r->n_bytes));
        json_object_set_new(j, "nll", json_num(r->nll));
        json_object_set_new(j, "loss", json_num(r->loss));
        json_object_set_new(j, "perplexity", json_num(r->perplexity));
        json_object_set_new(j, "bits_per_token", json_num(bpt));
        json_object_set_new(j, "bits_per_byte", json_num(r->bits_per_byte));
        json_object_set_new(j, "top1_accuracy", json_num(top1));
        json_object_set_new(j, "seconds", json_num(secs));
        json_object_set_new(j, "tokens_per_s", json_num((double)r->n_tokens / secs));
        print_json(j);
        return;
    }
    printf("model:          %s (%s)\n", e->model_path, e->desc);
    printf("data:           %s (%zu bytes, tokenizer %s)\n", e->data, len, rwkv_tokenizer_kind(e->tok));
    printf("tokens scored:  %lld (%lld bytes)%s\n", (long long)r->n_tokens, (long long)r->n_bytes,
           e->limit > 0 && (size_t)e->limit + 1 < n_ids ? ", limited by --limit" : "");
    if (gpt && r->n_windows > 1)
        printf("context:        sliding window of %lld tokens, stride %lld (%lld windows): past the first "
               "window every token sees %lld to %lld tokens\n",
               (long long)r->window, (long long)r->stride, (long long)r->n_windows,
               (long long)(r->window - r->stride + 1), (long long)r->window);
    else if (gpt)
        printf("context:        one window of %lld tokens (the model's context is %d)\n", (long long)r->window,
               e->info.n_ctx);
    else
        printf("context:        the whole text (state carried over %lld calls of up to %lld tokens)\n",
               (long long)r->n_windows, (long long)r->window);
    printf("loss:           %.6f nats/token\n", r->loss);
    printf("perplexity:     %.4f\n", r->perplexity);
    printf("bits per token: %.6f\n", bpt);
    printf("bits per byte:  %.6f\n", r->bits_per_byte);
    printf("top-1 accuracy: %.2f%%\n", 100.0 * top1);
    printf("time:           %.2f s (%.0f tokens/s)\n", secs, (double)r->n_tokens / secs);
}

/* --data: perplexity over the file; 0 or 1 (the error is in e->err). */
static int eval_data(eval_run *e, progress *pr) {
    char *text = NULL;
    size_t len = 0, n = 0;
    int *ids = NULL, *all = NULL, rc = 1;
    if (cli_read_file(e->data, &text, &len) != 0) {
        snprintf(e->err.message, sizeof e->err.message, "%s: cannot read: %s", e->data, strerror(errno));
        goto done;
    }
    if (rwkv_tokenize(e->tok, text, len, &ids, &n, &e->err) != RWKV_OK) goto done;
    size_t extra = e->bos >= 0 ? 1 : 0, total = n + extra;
    if (e->limit > 0 && (size_t)e->limit + 1 < total) total = (size_t)e->limit + 1;
    if (total < 2) {
        snprintf(e->err.message, sizeof e->err.message, "%s: too short to score (%zu tokens; need 2)", e->data,
                 n + extra);
        goto done;
    }
    if (!(all = malloc(total * sizeof *all))) {
        snprintf(e->err.message, sizeof e->err.message, "out of memory");
        goto done;
    }
    if (extra) all[0] = (int)e->bos;
    memcpy(all + extra, ids, (total - extra) * sizeof *all);
    rwkv_ppl_options o = {.window = (size_t)e->window, .tokenizer = e->tok, .progress = ppl_progress, .user = pr,
                          .stride = (size_t)e->stride};
    rwkv_ppl_result r;
    double t0 = cli_now();
    if (rwkv_eval_perplexity(e->m, all, total, &o, &r, &e->err) != RWKV_OK) goto done;
    ppl_print(e, &r, len, n + extra, cli_now() - t0);
    rc = 0;
done:
    free(text);
    rwkv_free(ids);
    free(all);
    return rc;
}

/* --lambada: accuracy and perplexity over the passages; 0 or 1. */
static int eval_lambada(eval_run *e, progress *pr) {
    const int gpt = e->info.arch == RWKV_ARCH_GPT;
    rwkv_lambada_result r;
    rwkv_lambada_set *set;
    if (rwkv_lambada_read(e->lambada, (size_t)e->limit, &set, &e->err) != RWKV_OK) return 1;
    double t0 = cli_now();
    rwkv_status st = rwkv_eval_lambada(e->m, e->tok, set, lambada_progress, pr, &r, &e->err);
    rwkv_lambada_free(set);
    if (st != RWKV_OK) return 1;
    double secs = cli_now() - t0;
    if (e->json) {
        json_t *j = json_object();
        json_object_set_new(j, "model", json_string(e->model_path));
        json_object_set_new(j, "arch", json_string(gpt ? "gpt" : "rwkv"));
        json_object_set_new(j, "task", json_string("lambada_openai"));
        json_object_set_new(j, "data", json_string(e->lambada));
        json_object_set_new(j, "tokenizer", json_string(rwkv_tokenizer_kind(e->tok)));
        json_object_set_new(j, "examples", json_integer((json_int_t)r.n_examples));
        json_object_set_new(j, "correct", json_integer((json_int_t)r.n_correct));
        json_object_set_new(j, "accuracy", json_num(r.accuracy));
        json_object_set_new(j, "perplexity", json_num(r.perplexity));
        json_object_set_new(j, "target_tokens", json_integer((json_int_t)r.n_target_tokens));
        json_object_set_new(j, "sum_logprob", json_num(r.sum_logprob));
        json_object_set_new(j, "context", gpt ? json_integer(e->info.n_ctx) : json_null());
        json_object_set_new(j, "truncated", json_integer((json_int_t)r.n_truncated));
        json_object_set_new(j, "seconds", json_num(secs));
        print_json(j);
        return 0;
    }
    printf("model:       %s (%s)\n", e->model_path, e->desc);
    printf("task:        LAMBADA (lambada_openai), %s, tokenizer %s\n", e->lambada, rwkv_tokenizer_kind(e->tok));
    printf("passages:    %lld%s\n", (long long)r.n_examples, e->limit > 0 ? " (--limit)" : "");
    printf("accuracy:    %.2f%% (%lld correct)\n", 100.0 * r.accuracy, (long long)r.n_correct);
    printf("perplexity:  %.4f\n", r.perplexity);
    printf("target toks: %lld (%.2f per passage)\n", (long long)r.n_target_tokens,
           r.n_examples ? (double)r.n_target_tokens / (double)r.n_examples : 0.0);
    if (gpt)
        printf("truncated:   %lld passages longer than the context of %d (their start dropped)\n",
               (long long)r.n_truncated, e->info.n_ctx);
    printf("time:        %.2f s\n", secs);
    return 0;
}

/* The flags that depend on the model; 0, or 2 after a usage error. */
static int check_against_model(eval_run *e) {
    const rwkv_model_info *i = &e->info;
    if (i->arch != RWKV_ARCH_GPT) {
        if (e->stride)
            return cli_usage_error("eval", "--stride applies to a GPT checkpoint (RWKV carries its state over the "
                                           "whole text)");
        snprintf(e->desc, sizeof e->desc, "RWKV-%s, %d layers, width %d", i->version, i->n_layer, i->n_embd);
        return 0;
    }
    snprintf(e->desc, sizeof e->desc, "GPT, %d layers, width %d, context %d", i->n_layer, i->n_embd, i->n_ctx);
    if (e->window > i->n_ctx)
        return cli_usage_error("eval", "--window %ld exceeds the model's context of %d positions", e->window,
                               i->n_ctx);
    long window = e->window ? e->window : i->n_ctx;
    if (e->stride > window)
        return cli_usage_error("eval", "--stride %ld exceeds the window of %ld tokens", e->stride, window);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    eval_run e = {.bos = -1};
    cli_opt opts[] = {
        CLI_OPT_MODEL(&e.model_path, "checkpoint (any format rwkv info reads; RWKV or GPT)"),
        {"--data", 0, CLI_STR, &e.data, 0, 0, "FILE", "text file for perplexity", "", NULL, NULL, NULL},
        {"--lambada", 0, CLI_STR, &e.lambada, 0, 0, "FILE", "LAMBADA JSON Lines file ({\"text\": ...} per line)", "",
         NULL, NULL, NULL},
        CLI_OPT_MODEL_TOKENIZER(&e.tok_path),
        {"--window", 0, CLI_LONG, &e.window, 1, 1 << 20, "N",
         "--data: RWKV tokens per sequence-mode call [512];\nGPT tokens per window, at most n_ctx [n_ctx]", "", NULL,
         NULL, NULL},
        {"--stride", 0, CLI_LONG, &e.stride, 1, 1 << 20, "N",
         "--data, GPT only: tokens newly scored per window, 1..WINDOW", "WINDOW - WINDOW/2", NULL, NULL, NULL},
        {"--bos", 0, CLI_LONG, &e.bos, 0, 1 << 24, "ID", "--data: prepend this id so the first token is scored too",
         "", NULL, NULL, NULL},
        {"--limit", 0, CLI_LONG, &e.limit, 1, 1099511627776.0, "N", "--data: score at most N tokens; --lambada: first N passages",
         "", NULL, NULL, NULL},
        CLI_OPT_THREADS(&e.threads),
        CLI_OPT_DEVICE(&e.device),
        CLI_OPT_RUN_PRECISION(&e.precision),
        CLI_OPT_JSON(&e.json, "print one JSON object on stdout instead of text"),
        CLI_OPT_QUIET(&e.quiet, "no progress display on stderr"),
    };
    cli_spec spec = {"eval",
                     "rwkv eval -m MODEL --data FILE [options]\n"
                     "       rwkv eval -m MODEL --lambada FILE.jsonl [--tokenizer FILE] [options]",
                     about, opts, CLI_N(opts), NULL, NULL, 0, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    if (!e.model_path) return cli_usage_error("eval", "-m MODEL is required");
    if (!e.data == !e.lambada) return cli_usage_error("eval", "give exactly one of --data FILE and --lambada FILE");
    if (e.lambada && e.bos >= 0)
        return cli_usage_error("eval", "--bos applies to --data only (LAMBADA always starts with token 0)");
    if (e.lambada && e.stride) return cli_usage_error("eval", "--stride applies to --data only");
    rc = 1;
    if (cli_tokenizer_for_model(e.tok_path, e.model_path, &e.tok, &e.err) == RWKV_OK &&
        rwkv_model_load_ex(e.model_path, &(rwkv_load_options){.device = e.device, .precision = e.precision}, &e.m, &e.err) == RWKV_OK) {
        rwkv_model_set_threads(e.m, e.threads);
        rwkv_model_get_info(e.m, &e.info);
        rc = check_against_model(&e);
        progress pr = {!e.quiet, isatty(2), cli_now(), 0, -1, e.data ? "tokens" : "passages"};
        if (rc == 0) rc = e.data ? eval_data(&e, &pr) : eval_lambada(&e, &pr);
        if (rc == 1) cli_report(&e.err);
    } else {
        cli_report(&e.err);
    }
    rwkv_model_free(e.m);
    rwkv_tokenizer_free(e.tok);
    return rc;
}
