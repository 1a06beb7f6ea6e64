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

static void help(void) {
    printf("usage: rwkv eval -m MODEL --data FILE [options]\n"
           "       rwkv eval -m MODEL --lambada FILE.jsonl [--tokenizer FILE] [options]\n\n"
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
           "Perplexity depends on the tokenizer: quote it with the number.\n\n"
           "options:\n"
           "  -m, --model FILE      checkpoint (any format rwkv info reads; RWKV or GPT)\n"
           "  --data FILE           text file for perplexity\n"
           "  --lambada FILE        LAMBADA JSON Lines file ({\"text\": ...} per line)\n"
           "  --tokenizer FILE      tokenizer.json (20B/NeoX), World vocabulary, or 'bytes'   [bytes]\n"
           "  --window N            --data: RWKV tokens per sequence-mode call [512];\n"
           "                        GPT tokens per window, at most n_ctx [n_ctx]\n"
           "  --stride N            --data, GPT only: tokens newly scored per window, 1..WINDOW\n"
           "                        [WINDOW - WINDOW/2]\n"
           "  --bos ID              --data: prepend this id so the first token is scored too\n"
           "  --limit N             --data: score at most N tokens; --lambada: first N passages\n"
           "  --threads N           worker threads                                       [all cores]\n"
           "  --json                print one JSON object on stdout instead of text\n"
           "  -q, --quiet           no progress display on stderr\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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
    double t = now_s(), el = t - p->start, frac = (double)done / (double)total;
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

static int read_file(const char *path, char **data, size_t *len, rwkv_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err->message, sizeof err->message, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err->message, sizeof err->message, "%s: read failed", path);
        return -1;
    }
    *data = buf;
    *len = n;
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

static const char *opt_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage_error("eval", "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cmd_eval(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    const char *model_path = NULL, *data = NULL, *lambada = NULL, *tok_path = "bytes";
    long window = 0, stride = 0, limit = 0, threads = 0, bos = -1;
    int json = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v;
        if (strcmp(o, "-m") == 0 || strcmp(o, "--model") == 0) {
            if (!(model_path = opt_value(argc, argv, &i))) return 2;
        } else if (strcmp(o, "--data") == 0) {
            if (!(data = opt_value(argc, argv, &i))) return 2;
        } else if (strcmp(o, "--lambada") == 0) {
            if (!(lambada = opt_value(argc, argv, &i))) return 2;
        } else if (strcmp(o, "--tokenizer") == 0) {
            if (!(tok_path = opt_value(argc, argv, &i))) return 2;
        } else if (strcmp(o, "--window") == 0) {
            if (!(v = opt_value(argc, argv, &i)) || cli_parse_int("eval", o, v, 1, 1 << 20, &window)) return 2;
        } else if (strcmp(o, "--stride") == 0) {
            if (!(v = opt_value(argc, argv, &i)) || cli_parse_int("eval", o, v, 1, 1 << 20, &stride)) return 2;
        } else if (strcmp(o, "--limit") == 0) {
            if (!(v = opt_value(argc, argv, &i)) || cli_parse_int("eval", o, v, 1, 1L << 40, &limit)) return 2;
        } else if (strcmp(o, "--bos") == 0) {
            if (!(v = opt_value(argc, argv, &i)) || cli_parse_int("eval", o, v, 0, 1 << 24, &bos)) return 2;
        } else if (strcmp(o, "--threads") == 0) {
            if (!(v = opt_value(argc, argv, &i)) || cli_parse_int("eval", o, v, 1, 4096, &threads)) return 2;
        } else if (strcmp(o, "--json") == 0) {
            json = 1;
        } else if (strcmp(o, "-q") == 0 || strcmp(o, "--quiet") == 0) {
            quiet = 1;
        } else {
            return cli_usage_error("eval", "unknown option '%s'", o);
        }
    }
    if (!model_path) return cli_usage_error("eval", "-m MODEL is required");
    if (!data == !lambada) return cli_usage_error("eval", "give exactly one of --data FILE and --lambada FILE");
    if (lambada && bos >= 0) return cli_usage_error("eval", "--bos applies to --data only (LAMBADA always starts with token 0)");
    if (lambada && stride) return cli_usage_error("eval", "--stride applies to --data only");

    rwkv_error err = {0};
    rwkv_model *m = NULL;
    rwkv_tokenizer *tok = NULL;
    int rc = 1, n_ctx = 0;
    char desc[160];
    if (rwkv_tokenizer_load(tok_path, &tok, &err) != RWKV_OK) return cli_report(&err);
    if (rwkv_model_load(model_path, &m, &err) != RWKV_OK) goto done;
    if (threads > 0) rwkv_model_set_threads(m, (int)threads);
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    const int g = info.arch == RWKV_ARCH_GPT;
    if (g) {
        n_ctx = info.n_ctx;
        snprintf(desc, sizeof desc, "GPT, %d layers, width %d, context %d", info.n_layer, info.n_embd, info.n_ctx);
        if (window > n_ctx) {
            rc = cli_usage_error("eval", "--window %ld exceeds the model's context of %d positions", window, n_ctx);
            goto done_quiet;
        }
        if (stride > (window ? window : n_ctx)) {
            rc = cli_usage_error("eval", "--stride %ld exceeds the window of %ld tokens", stride,
                                 window ? window : (long)n_ctx);
            goto done_quiet;
        }
    } else {
        if (stride) {
            rc = cli_usage_error("eval", "--stride applies to a GPT checkpoint (RWKV carries its state over the whole "
                                         "text)");
            goto done_quiet;
        }
        snprintf(desc, sizeof desc, "RWKV-%s, %d layers, width %d", info.version, info.n_layer, info.n_embd);
    }
    progress pr = {!quiet, isatty(2), now_s(), 0, -1, data ? "tokens" : "passages"};

    if (data) {
        char *text = NULL;
        size_t len = 0, n = 0;
        int *ids = NULL, *all = NULL;
        if (read_file(data, &text, &len, &err) != 0) goto done_data;
        if (rwkv_tokenize(tok, text, len, &ids, &n, &err) != RWKV_OK) goto done_data;
        size_t extra = bos >= 0 ? 1 : 0, total = n + extra;
        if (limit > 0 && (size_t)limit + 1 < total) total = (size_t)limit + 1;
        if (total < 2) {
            snprintf(err.message, sizeof err.message, "%s: too short to score (%zu tokens; need 2)", data, n + extra);
            goto done_data;
        }
        if (!(all = malloc(total * sizeof *all))) {
            snprintf(err.message, sizeof err.message, "out of memory");
            goto done_data;
        }
        if (extra) all[0] = (int)bos;
        memcpy(all + extra, ids, (total - extra) * sizeof *all);
        rwkv_ppl_options o = {.window = (size_t)window, .tokenizer = tok, .progress = ppl_progress, .user = &pr,
                              .stride = (size_t)stride};
        rwkv_ppl_result r;
        double t0 = now_s();
        rwkv_status st = rwkv_eval_perplexity(m, all, total, &o, &r, &err);
        if (st != RWKV_OK) goto done_data;
        double secs = now_s() - t0;
        double bpt = r.loss / log(2.0), top1 = (double)r.n_top1 / (double)r.n_tokens;
        if (json) {
            json_t *j = json_object();
            json_object_set_new(j, "model", json_string(model_path));
            json_object_set_new(j, "arch", json_string(g ? "gpt" : "rwkv"));
            json_object_set_new(j, "data", json_string(data));
            json_object_set_new(j, "tokenizer", json_string(rwkv_tokenizer_kind(tok)));
            json_object_set_new(j, "window", json_integer((json_int_t)r.window));
            json_object_set_new(j, "stride", json_integer((json_int_t)r.stride));
            json_object_set_new(j, "windows", json_integer((json_int_t)r.n_windows));
            json_object_set_new(j, "context", json_integer((json_int_t)r.context));
            json_object_set_new(j, "tokens", json_integer((json_int_t)r.n_tokens));
            json_object_set_new(j, "bytes", json_integer((json_int_t)r.n_bytes));
            json_object_set_new(j, "nll", json_num(r.nll));
            json_object_set_new(j, "loss", json_num(r.loss));
            json_object_set_new(j, "perplexity", json_num(r.perplexity));
            json_object_set_new(j, "bits_per_token", json_num(bpt));
            json_object_set_new(j, "bits_per_byte", json_num(r.bits_per_byte));
            json_object_set_new(j, "top1_accuracy", json_num(top1));
            json_object_set_new(j, "seconds", json_num(secs));
            json_object_set_new(j, "tokens_per_s", json_num((double)r.n_tokens / secs));
            print_json(j);
        } else {
            printf("model:          %s (%s)\n", model_path, desc);
            printf("data:           %s (%zu bytes, tokenizer %s)\n", data, len, rwkv_tokenizer_kind(tok));
            printf("tokens scored:  %lld (%lld bytes)%s\n", (long long)r.n_tokens, (long long)r.n_bytes,
                   limit > 0 && (size_t)limit + 1 < n + extra ? ", limited by --limit" : "");
            if (g && r.n_windows > 1)
                printf("context:        sliding window of %lld tokens, stride %lld (%lld windows): past the first "
                       "window every token sees %lld to %lld tokens\n",
                       (long long)r.window, (long long)r.stride, (long long)r.n_windows,
                       (long long)(r.window - r.stride + 1), (long long)r.window);
            else if (g)
                printf("context:        one window of %lld tokens (the model's context is %d)\n", (long long)r.window,
                       n_ctx);
            else
                printf("context:        the whole text (state carried over %lld calls of up to %lld tokens)\n",
                       (long long)r.n_windows, (long long)r.window);
            printf("loss:           %.6f nats/token\n", r.loss);
            printf("perplexity:     %.4f\n", r.perplexity);
            printf("bits per token: %.6f\n", bpt);
            printf("bits per byte:  %.6f\n", r.bits_per_byte);
            printf("top-1 accuracy: %.2f%%\n", 100.0 * top1);
            printf("time:           %.2f s (%.0f tokens/s)\n", secs, (double)r.n_tokens / secs);
        }
        rc = 0;
    done_data:
        free(text);
        rwkv_free(ids);
        free(all);
    } else {
        rwkv_lambada_result r;
        rwkv_lambada_set *set;
        if (rwkv_lambada_read(lambada, (size_t)limit, &set, &err) != RWKV_OK) goto done;
        double t0 = now_s();
        rwkv_status st = rwkv_eval_lambada(m, tok, set, lambada_progress, &pr, &r, &err);
        rwkv_lambada_free(set);
        if (st != RWKV_OK) goto done;
        double secs = now_s() - t0;
        if (json) {
            json_t *j = json_object();
            json_object_set_new(j, "model", json_string(model_path));
            json_object_set_new(j, "arch", json_string(g ? "gpt" : "rwkv"));
            json_object_set_new(j, "task", json_string("lambada_openai"));
            json_object_set_new(j, "data", json_string(lambada));
            json_object_set_new(j, "tokenizer", json_string(rwkv_tokenizer_kind(tok)));
            json_object_set_new(j, "examples", json_integer((json_int_t)r.n_examples));
            json_object_set_new(j, "correct", json_integer((json_int_t)r.n_correct));
            json_object_set_new(j, "accuracy", json_num(r.accuracy));
            json_object_set_new(j, "perplexity", json_num(r.perplexity));
            json_object_set_new(j, "target_tokens", json_integer((json_int_t)r.n_target_tokens));
            json_object_set_new(j, "sum_logprob", json_num(r.sum_logprob));
            json_object_set_new(j, "context", g ? json_integer(n_ctx) : json_null());
            json_object_set_new(j, "truncated", json_integer((json_int_t)r.n_truncated));
            json_object_set_new(j, "seconds", json_num(secs));
            print_json(j);
        } else {
            printf("model:       %s (%s)\n", model_path, desc);
            printf("task:        LAMBADA (lambada_openai), %s, tokenizer %s\n", lambada, rwkv_tokenizer_kind(tok));
            printf("passages:    %lld%s\n", (long long)r.n_examples, limit > 0 ? " (--limit)" : "");
            printf("accuracy:    %.2f%% (%lld correct)\n", 100.0 * r.accuracy, (long long)r.n_correct);
            printf("perplexity:  %.4f\n", r.perplexity);
            printf("target toks: %lld (%.2f per passage)\n", (long long)r.n_target_tokens,
                   r.n_examples ? (double)r.n_target_tokens / (double)r.n_examples : 0.0);
            if (g)
                printf("truncated:   %lld passages longer than the context of %d (their start dropped)\n",
                       (long long)r.n_truncated, n_ctx);
            printf("time:        %.2f s\n", secs);
        }
        rc = 0;
    }
done:
    if (rc) cli_report(&err);
done_quiet:
    rwkv_model_free(m);
    rwkv_tokenizer_free(tok);
    return rc;
}
