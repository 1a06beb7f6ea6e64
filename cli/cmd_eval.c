/* rwkv eval: perplexity / loss / bits per byte over a text file, or LAMBADA
 * last-word accuracy and perplexity (docs/eval.md), for an RWKV model or the
 * GPT baseline (rwkv_model_load reads both and says which it is). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
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
    "model's top-1 prediction. The file is read, tokenized and scored in pieces of 256 KiB cut at line\n"
    "breaks (giving the tokens of the whole), so any length fits in memory; a file with no line break\n"
    "for more than --max-input MiB is refused (the byte-level tokenizer cuts anywhere).\n"
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
    long window, stride, limit, bos, max_input;
    int threads, json, quiet, no_mmap;
    rwkv_model *m;
    rwkv_model_info info;
    rwkv_tokenizer *tok;
    char desc[160];
    rwkv_error err;
} eval_run;

static void ppl_print(const eval_run *e, const rwkv_ppl_result *r, size_t len, int limited, double secs) {
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
    printf("data:           %s (%zu bytes%s, tokenizer %s)\n", e->data, len, limited ? " read" : "",
           rwkv_tokenizer_kind(e->tok));
    printf("tokens scored:  %lld (%lld bytes)%s\n", (long long)r->n_tokens, (long long)r->n_bytes,
           limited ? ", limited by --limit" : "");
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

/* --data is read and tokenized in pieces of this many bytes, so that memory
 * does not grow with the corpus. */
#define EVAL_READ_BYTES ((size_t)256 << 10)

static int is_visible_ascii(char c) { return c > ' ' && c <= '~'; }

/* Where text[0, n) may be cut so that tokenizing the two sides apart gives
 * the tokens of the whole: anywhere for the byte-level tokenizer; else after
 * the last lone line break between printable ASCII characters: no World
 * token holds "\n" followed by such a character, and NeoX's pre-tokenizer
 * makes such a "\n" a piece of its own whether text follows or not (a run of
 * whitespace would not be: "\n\n" at the end of a piece is one pre-token,
 * before a word two). 0 when there is no such place. */
static size_t safe_cut(const rwkv_tokenizer *tok, const char *text, size_t n) {
    if (strcmp(rwkv_tokenizer_kind(tok), "bytes") == 0) return n;
    for (size_t i = n; i-- > 2;)
        if (text[i - 1] == '\n' && is_visible_ascii(text[i - 2]) && is_visible_ascii(text[i])) return i;
    return 0;
}

/* The --data run as it streams: the file, the pending text, the scorer. */
typedef struct data_stream {
    eval_run *e;
    progress *pr;
    FILE *f;
    size_t file_size; /* 0: not known (a pipe) */
    size_t bytes_read, bytes_scored, n_ids, max_ids;
    char *pending;
    size_t n_pending, cap_pending;
    rwkv_ppl_stream *ppl;
} data_stream;

/* Progress in tokens; the total is estimated from the share of the file read. */
static int stream_progress(int64_t done, int64_t total, void *user) {
    data_stream *d = user;
    if (total == 0 && d->file_size && d->bytes_scored)
        total = (int64_t)((double)done * (double)d->file_size / (double)d->bytes_scored);
    if (total < done) total = done + 1;
    progress_show(d->pr, done, total, "");
    return 0;
}

/* Tokenizes text[0, n) and pushes its tokens (up to --limit); 0 or 1. */
static int push_text(data_stream *d, const char *text, size_t n) {
    int *ids = NULL;
    size_t k = 0;
    if (rwkv_tokenize(d->e->tok, text, n, &ids, &k, &d->e->err) != RWKV_OK) return 1;
    size_t take = d->n_ids + k > d->max_ids ? d->max_ids - d->n_ids : k;
    d->bytes_scored += n;
    d->n_ids += take;
    rwkv_status s = rwkv_ppl_stream_push(d->ppl, ids, take, &d->e->err);
    rwkv_free(ids);
    return s != RWKV_OK;
}

/* Reads the file to its end (or to --limit tokens), pushing every piece that
 * can be tokenized on its own; 0 or 1. */
static int stream_file(data_stream *d) {
    const size_t max_pending = (size_t)d->e->max_input << 20;
    for (;;) {
        if (d->n_ids >= d->max_ids) return 0;
        if (d->cap_pending - d->n_pending < EVAL_READ_BYTES) {
            size_t cap = d->n_pending + 2 * EVAL_READ_BYTES;
            char *p = realloc(d->pending, cap);
            if (!p) return snprintf(d->e->err.message, sizeof d->e->err.message, "out of memory"), 1;
            d->pending = p;
            d->cap_pending = cap;
        }
        size_t got = fread(d->pending + d->n_pending, 1, EVAL_READ_BYTES, d->f);
        if (got == 0 && ferror(d->f))
            return snprintf(d->e->err.message, sizeof d->e->err.message, "%s: read failed: %s", d->e->data,
                            strerror(errno)), 1;
        if (d->bytes_read == 0 && got >= 8 && memcmp(d->pending, "RWKVTOK", 8) == 0)
            return snprintf(d->e->err.message, sizeof d->e->err.message,
                            "%s: is a token file (rwkv tokenize --out); eval --data reads text: give the text it "
                            "was made from", d->e->data), 1;
        d->bytes_read += got;
        d->n_pending += got;
        if (got == 0) return d->n_pending && push_text(d, d->pending, d->n_pending);
        size_t cut = safe_cut(d->e->tok, d->pending, d->n_pending);
        if (cut == 0 && d->n_pending > max_pending)
            return snprintf(d->e->err.message, sizeof d->e->err.message,
                            "%s: more than %ld MiB without a line break to tokenize apart at (raise the limit "
                            "with --max-input MB)", d->e->data, d->e->max_input), 1;
        if (cut == 0) continue;
        if (push_text(d, d->pending, cut)) return 1;
        memmove(d->pending, d->pending + cut, d->n_pending - cut);
        d->n_pending -= cut;
    }
}

/* --data: perplexity over the file, read, tokenized and scored in pieces;
 * 0 or 1 (the error is in e->err). */
static int eval_data(eval_run *e, progress *pr) {
    data_stream d = {.e = e, .pr = pr, .max_ids = e->limit > 0 ? (size_t)e->limit + 1 : SIZE_MAX};
    int is_stdin = strcmp(e->data, "-") == 0, rc = 1;
    d.f = is_stdin ? stdin : fopen(e->data, "rb");
    if (!d.f) {
        snprintf(e->err.message, sizeof e->err.message, "%s: cannot open: %s", e->data, strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fileno(d.f), &st) == 0 && S_ISREG(st.st_mode)) d.file_size = (size_t)st.st_size;
    rwkv_ppl_options o = {.window = (size_t)e->window, .tokenizer = e->tok, .progress = stream_progress, .user = &d,
                          .stride = (size_t)e->stride};
    if (rwkv_ppl_stream_new(e->m, &o, &d.ppl, &e->err) != RWKV_OK) goto done;
    double t0 = cli_now();
    if (e->bos >= 0) {
        int bos = (int)e->bos;
        d.n_ids = 1;
        if (rwkv_ppl_stream_push(d.ppl, &bos, 1, &e->err) != RWKV_OK) goto done;
    }
    if (stream_file(&d)) goto done;
    if (d.n_ids < 2) {
        snprintf(e->err.message, sizeof e->err.message, "%s: too short to score (%zu tokens; need 2)", e->data,
                 d.n_ids);
        goto done;
    }
    rwkv_ppl_result r;
    if (rwkv_ppl_stream_finish(d.ppl, &r, &e->err) != RWKV_OK) goto done;
    int limited = d.n_ids >= d.max_ids && (d.n_pending > 0 || fgetc(d.f) != EOF);
    ppl_print(e, &r, d.bytes_read, limited, cli_now() - t0);
    rc = 0;
done:
    if (!is_stdin) fclose(d.f);
    rwkv_ppl_stream_free(d.ppl);
    free(d.pending);
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
    eval_run e = {.bos = -1, .max_input = CLI_MAX_INPUT_MB_DEFAULT};
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
        CLI_OPT_MAX_INPUT(&e.max_input, "--data: longest stretch of text without a line break, in MiB"),
        CLI_OPT_NO_MMAP(&e.no_mmap),
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
        rwkv_model_load_ex(e.model_path, &(rwkv_load_options){.device = e.device, .precision = e.precision, .no_mmap = e.no_mmap}, &e.m, &e.err) == RWKV_OK) {
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
