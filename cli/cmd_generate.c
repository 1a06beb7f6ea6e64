/* rwkv generate: prompt in sequence mode, then sample and stream tokens, with
 * an RWKV model or the GPT baseline (its KV cache, up to its context). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "rwkv_sample.h"
#include "rwkv_tokenizer.h"

/* ---- output -------------------------------------------------------------- */

typedef struct bytes {
    char *p;
    size_t n, cap;
} bytes;

static int bytes_add(bytes *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

static void json_string(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
    }
    fputc('"', f);
}

/* ---- the command --------------------------------------------------------- */

static const char about[] =
    "Feeds the prompt in sequence mode, then samples up to N tokens one at a time and streams\n"
    "them to stdout as they are produced (complete UTF-8 characters only). Timing goes to stderr.\n"
    "Ctrl-C stops after the current token: --state-out and the --json object are still written\n"
    "(stop reason \"interrupted\") and the exit status is 130; a second Ctrl-C ends it at once.\n\n"
    "A GPT baseline checkpoint (rwkv train --arch gpt; recognised from the file) is decoded token\n"
    "by token with its KV cache. Its context is its n_ctx learned positions: a longer prompt is an\n"
    "error, and generation stops (stop reason \"context\", with a note on stderr) when prompt and\n"
    "output fill it. It has no recurrent state, so --state-in, --state-out and --chunk are refused.\n";

typedef struct stop_list {
    cli_strs strs; /* --stop */
    cli_ints ids;  /* --stop-token */
} stop_list;

/* Position of the first stop string in text[from..n) (matches may start
 * before `from` only if they end after it: the caller passes the earliest
 * start a new match can have), or -1. */
static long find_stop(const stop_list *st, const char *text, size_t n, size_t from) {
    long best = -1;
    for (size_t k = 0; k < st->strs.n; k++) {
        size_t m = strlen(st->strs.v[k]);
        if (m == 0 || m > n) continue;
        for (size_t i = from; i + m <= n; i++)
            if (memcmp(text + i, st->strs.v[k], m) == 0) {
                if (best < 0 || (long)i < best) best = (long)i;
                break;
            }
    }
    return best;
}

/* Length of the longest suffix of text that is a proper prefix of a stop string. */
static size_t stop_holdback(const stop_list *st, const char *text, size_t n) {
    size_t best = 0;
    for (size_t k = 0; k < st->strs.n; k++) {
        size_t m = strlen(st->strs.v[k]);
        for (size_t l = m > 0 ? m - 1 : 0; l > best; l--)
            if (l <= n && memcmp(text + n - l, st->strs.v[k], l) == 0) {
                best = l;
                break;
            }
    }
    return best;
}

static size_t max_stop_len(const stop_list *st) {
    size_t m = 0;
    for (size_t k = 0; k < st->strs.n; k++)
        if (strlen(st->strs.v[k]) > m) m = strlen(st->strs.v[k]);
    return m;
}

/* What the flags ask for. */
typedef struct gen_args {
    const char *model_path, *tok_path, *prompt, *prompt_file, *state_in, *state_out, *device, *precision;
    long n_gen, chunk, max_input;
    int threads, json, quiet, ignore_eos, raw, chunk_set, no_mmap;
    stop_list stops;
    cli_sampling smp;
} gen_args;

/* One generation: the model and its state, the sampler and the output. */
typedef struct gen {
    rwkv_model *m;
    rwkv_state *st;
    rwkv_tokenizer *tok;
    rwkv_sampler *sampler;
    rwkv_token_stream *stream;
    float *logits;
    int *out_toks;
    size_t n_out, out_cap;
    bytes text;     /* the decoded output */
    size_t emitted; /* bytes of it written (or, with --json, kept) */
    int n_vocab, n_ctx, n_sample, eos;
    int device_draw; /* a GPU model: each token fed with rwkv_eval_batch_sample, which draws the next one there */
    int drawn;       /* the token so drawn (-1: none could be) */
    const char *stop_reason;
    rwkv_error err;
} gen;

static rwkv_status gen_fail(gen *g, rwkv_status code, const char *msg) {
    snprintf(g->err.message, sizeof g->err.message, "%s", msg);
    return g->err.code = code;
}

/* Appends piece to the text and writes what no stop string can still claim;
 * `last`: no later token follows. Sets the stop reason when a stop string
 * appeared. */
static rwkv_status gen_emit(gen *g, const gen_args *a, const char *piece, size_t plen, int last) {
    size_t old = g->text.n;
    if (bytes_add(&g->text, piece, plen)) return gen_fail(g, RWKV_ERR_NOMEM, "out of memory");
    if (last) { /* the end: no later token can complete a character */
        rwkv_token_stream_flush(g->stream, &piece, &plen);
        if (bytes_add(&g->text, piece, plen)) return gen_fail(g, RWKV_ERR_NOMEM, "out of memory");
    }
    size_t limit = g->text.n, maxstop = max_stop_len(&a->stops);
    if (a->stops.strs.n) {
        size_t from = old + 1 > maxstop ? old + 1 - maxstop : 0;
        long at = find_stop(&a->stops, g->text.p, g->text.n, from);
        if (at >= 0) {
            limit = (size_t)at;
            g->stop_reason = "stop";
        } else if (!last) {
            limit = g->text.n - stop_holdback(&a->stops, g->text.p, g->text.n);
        }
    }
    if (!a->json && limit > g->emitted) {
        fwrite(g->text.p + g->emitted, 1, limit - g->emitted, stdout);
        fflush(stdout);
    }
    if (limit > g->emitted) g->emitted = limit;
    return RWKV_OK;
}

/* Feeds t and, with the sampler's rules, draws the next token where the
 * model is into g->drawn: on a GPU only the token crosses to the host, not
 * the row of logits (the same token rwkv_sampler_sample would draw from
 * them, up to rounding at a boundary; docs/generation.md). */
static rwkv_status feed_and_draw(gen *g, int t) {
    rwkv_draw d;
    rwkv_status s = rwkv_sampler_draw(g->sampler, g->n_vocab, &d, &g->err);
    d.n_ids = g->n_sample;
    return s == RWKV_OK ? rwkv_eval_batch_sample(g->m, &g->st, &t, 1, &d, &g->drawn, &g->err) : s;
}

/* Samples up to n_gen tokens from g->logits (or takes the token drawn with
 * the last one fed), feeding each back; Ctrl-C stops before the next token
 * (every token printed has then been fed). */
static rwkv_status gen_sample(gen *g, const gen_args *a) {
    g->stop_reason = "length";
    for (long i = 0; i < a->n_gen; i++) {
        if (cli_interrupted()) {
            g->stop_reason = "interrupted";
            break;
        }
        /* the first token from the prompt's logits; on a GPU the later ones were drawn with the token before */
        int t = g->device_draw && i > 0 ? g->drawn : rwkv_sampler_sample(g->sampler, g->logits, g->n_sample);
        if (t < 0) {
            snprintf(g->err.message, sizeof g->err.message,
                     "no token can be sampled at step %ld (every logit banned or not finite)", i);
            return g->err.code = RWKV_ERR_NUMERIC;
        }
        int is_stop = t == g->eos;
        for (size_t k = 0; k < a->stops.ids.n; k++) is_stop |= t == a->stops.ids.v[k];
        if (is_stop) {
            g->stop_reason = t == g->eos ? "eos" : "stop_token";
            break;
        }
        char *tb = NULL;
        size_t tl = 0;
        if (rwkv_detokenize(g->tok, &t, 1, &tb, &tl, &g->err) != RWKV_OK) return g->err.code;
        rwkv_status s = rwkv_sampler_accept(g->sampler, t, tb, tl, &g->err);
        rwkv_free(tb);
        if (s != RWKV_OK) return s;
        if (g->n_out == g->out_cap) {
            int *more = realloc(g->out_toks, 2 * g->out_cap * sizeof *more);
            if (!more) return gen_fail(g, RWKV_ERR_NOMEM, "out of memory");
            g->out_toks = more;
            g->out_cap *= 2;
        }
        g->out_toks[g->n_out++] = t;
        const char *piece;
        size_t plen;
        if (rwkv_token_stream_push(g->stream, t, &piece, &plen, &g->err) != RWKV_OK) return g->err.code;
        if ((s = gen_emit(g, a, piece, plen, i + 1 == a->n_gen)) != RWKV_OK) return s;
        /* feed the token: the next logits, or only the state for --state-out */
        int more = i + 1 < a->n_gen && strcmp(g->stop_reason, "stop") != 0;
        if (more && g->n_ctx && rwkv_state_pos(g->st) >= (size_t)g->n_ctx) { /* the context is full */
            g->stop_reason = "context";
            break;
        }
        if (more && g->device_draw ? feed_and_draw(g, t) != RWKV_OK
                                   : (more || a->state_out) &&
                                         rwkv_eval(g->m, g->st, t, more ? g->logits : NULL, &g->err) != RWKV_OK)
            return g->err.code;
        if (!more) break;
    }
    if (strcmp(g->stop_reason, "length") != 0 || a->n_gen == 0) {
        /* stopped early: whatever the decoder still holds is cut off with the rest */
        const char *piece;
        size_t plen;
        rwkv_token_stream_flush(g->stream, &piece, &plen);
        if (strcmp(g->stop_reason, "stop") != 0) {
            if (bytes_add(&g->text, piece, plen)) return gen_fail(g, RWKV_ERR_NOMEM, "out of memory");
            if (!a->json && g->text.n > g->emitted) fwrite(g->text.p + g->emitted, 1, g->text.n - g->emitted, stdout);
            g->emitted = g->text.n;
        }
    }
    if (!a->json) fflush(stdout);
    return RWKV_OK;
}

/* The JSON object or the timing line, after the generation. */
static void gen_report(const gen *g, const gen_args *a, size_t n_prompt, double tp, double tg) {
    double pps = tp > 0 ? (double)n_prompt / tp : 0, gps = tg > 0 ? (double)g->n_out / tg : 0;
    if (a->json) {
        printf("{\"text\": ");
        json_string(stdout, g->text.p ? g->text.p : "", g->emitted);
        printf(", \"tokens\": [");
        for (size_t k = 0; k < g->n_out; k++) printf("%s%d", k ? ", " : "", g->out_toks[k]);
        printf("], \"prompt_tokens\": %zu, \"generated_tokens\": %zu, \"stop_reason\": \"%s\", \"seed\": %llu, "
               "\"prompt_seconds\": %.6f, \"generate_seconds\": %.6f, \"prompt_tokens_per_second\": %.3f, "
               "\"generated_tokens_per_second\": %.3f}\n",
               n_prompt, g->n_out, g->stop_reason, (unsigned long long)a->smp.seed, tp, tg, pps, gps);
        fflush(stdout);
    }
    if (!a->quiet && !a->json && g->emitted > 0 && g->text.p[g->emitted - 1] != '\n' && isatty(STDOUT_FILENO))
        printf("\n");
    if (strcmp(g->stop_reason, "context") == 0)
        fprintf(stderr, "rwkv: generation stopped after %zu tokens: the prompt and the output fill the model's "
                        "context of %d positions\n", g->n_out, g->n_ctx);
    if (!a->quiet)
        fprintf(stderr,
                "prompt: %zu tokens in %.3f s (%.1f tokens/s); generated: %zu tokens in %.3f s (%.1f tokens/s); "
                "stop: %s; seed %llu\n",
                n_prompt, tp, pps, g->n_out, tg, gps, g->stop_reason, (unsigned long long)a->smp.seed);
}

/* Loads the tokenizer and the model and checks the flags against them;
 * 0, 1 after a reported failure, 2 after a usage error. */
static int gen_open(gen *g, gen_args *a) {
    const char *inputs[] = {a->model_path, a->tok_path, a->prompt_file};
    if (a->state_out && rwkv_check_output(a->state_out, inputs, 3, &g->err) != RWKV_OK) return cli_report(&g->err);
    if (cli_tokenizer_for_model(a->tok_path, a->model_path, &g->tok, &g->err) != RWKV_OK) return cli_report(&g->err);
    rwkv_load_options lo = {.device = a->device, .precision = a->precision, .no_mmap = a->no_mmap};
    if (rwkv_model_load_ex(a->model_path, &lo, &g->m, &g->err) != RWKV_OK) return cli_report(&g->err);
    rwkv_model_set_threads(g->m, a->threads);
    rwkv_model_info info;
    rwkv_model_get_info(g->m, &info);
    g->n_vocab = info.n_vocab;
    g->n_ctx = info.n_ctx;
    if (info.arch == RWKV_ARCH_GPT && (a->state_in || a->state_out || a->chunk_set))
        return cli_usage_error("generate", "%s needs an RWKV model; %s is a GPT baseline checkpoint (no recurrent state)",
                               a->state_in ? "--state-in" : a->state_out ? "--state-out" : "--chunk", a->model_path);
    for (size_t k = 0; k < a->stops.ids.n; k++)
        if (a->stops.ids.v[k] >= g->n_vocab) {
            fprintf(stderr, "rwkv: --stop-token %d is outside the model's vocabulary [0, %d)\n", a->stops.ids.v[k],
                    g->n_vocab);
            return 1;
        }
    if (rwkv_state_new(g->m, &g->st, &g->err) != RWKV_OK) return cli_report(&g->err);
    if (a->state_in && rwkv_state_load(g->st, a->state_in, &g->err) != RWKV_OK) return cli_report(&g->err);
    if (cli_sampler_new(&a->smp, g->n_vocab, &g->sampler, &g->err) != RWKV_OK) return cli_report(&g->err);
    int mode = a->raw ? RWKV_STREAM_RAW : RWKV_STREAM_REPLACE;
    if (rwkv_token_stream_new(g->tok, mode, &g->stream, &g->err) != RWKV_OK) return cli_report(&g->err);
    g->out_cap = a->n_gen < 4096 ? (size_t)a->n_gen + 1 : 4096;
    g->logits = malloc((size_t)g->n_vocab * sizeof *g->logits);
    g->out_toks = malloc(g->out_cap * sizeof *g->out_toks);
    if (!g->logits || !g->out_toks) return fprintf(stderr, "rwkv: out of memory\n"), 1;
    /* only ids the tokenizer can print are sampled (a 256-byte tokenizer on a
     * larger model, the unused rows of World models) */
    int tv = rwkv_tokenizer_vocab_size(g->tok);
    g->n_sample = tv > 0 && tv < g->n_vocab ? tv : g->n_vocab;
    g->eos = a->ignore_eos ? -1 : rwkv_tokenizer_eos(g->tok);
    g->device_draw = a->device && strcmp(a->device, "cpu") != 0;
    return 0;
}

static void gen_close(gen *g) {
    free(g->text.p);
    free(g->logits);
    free(g->out_toks);
    rwkv_token_stream_free(g->stream);
    rwkv_sampler_free(g->sampler);
    rwkv_state_free(g->st);
    rwkv_model_free(g->m);
    rwkv_tokenizer_free(g->tok);
}

/* Reads and tokenizes the prompt, feeds it, samples, reports. */
static int gen_run(gen *g, const gen_args *a) {
    char *file_prompt = NULL;
    const char *prompt = a->prompt ? a->prompt : "";
    size_t prompt_len = strlen(prompt), n_prompt = 0;
    int *ptoks = NULL, rc = 1;
    if (a->prompt_file) {
        if (cli_read_input(a->prompt_file, a->max_input, "prompt file", &file_prompt, &prompt_len)) return 1;
        prompt = file_prompt;
    }
    if (rwkv_tokenize(g->tok, prompt, prompt_len, &ptoks, &n_prompt, &g->err) != RWKV_OK) {
        cli_report(&g->err);
    } else if (n_prompt == 0) {
        fprintf(stderr, "rwkv: the prompt is empty: give -p TEXT or --prompt-file FILE (the next token is "
                        "predicted from the last prompt token)\n");
    } else if (g->n_ctx && n_prompt > (size_t)g->n_ctx) {
        fprintf(stderr, "rwkv: the prompt is %zu tokens, longer than the model's context of %d positions\n", n_prompt,
                g->n_ctx);
    } else {
        double t0 = cli_now();
        rwkv_status s = cli_feed(g->m, g->st, ptoks, n_prompt, (size_t)a->chunk, g->logits, &g->err);
        double t1 = cli_now();
        if (s == RWKV_OK) s = gen_sample(g, a);
        double t2 = cli_now();
        if (s == RWKV_OK && a->state_out) s = rwkv_state_save(g->st, a->state_out, &g->err);
        if (s == RWKV_OK) {
            gen_report(g, a, n_prompt, t1 - t0, t2 - t1);
            rc = cli_interrupted() ? 130 : 0;
        } else {
            cli_report(&g->err);
        }
    }
    rwkv_free(ptoks);
    free(file_prompt);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    gen_args a = {.n_gen = 200, .chunk = 256, .max_input = CLI_MAX_INPUT_MB_DEFAULT};
    cli_sampling_init(&a.smp);
    cli_opt opts[] = {
        CLI_OPT_MODEL(&a.model_path, "checkpoint (safetensors, .pth, rwkv.cpp, GGUF or a transformers folder; RWKV or GPT)"),
        CLI_OPT_MODEL_TOKENIZER(&a.tok_path),
        {"--prompt", 'p', CLI_TEXT, &a.prompt, 0, 0, "TEXT", "the prompt", "", NULL, NULL, NULL},
        {"--prompt-file", 0, CLI_STR, &a.prompt_file, 0, 0, "FILE", "read the prompt from FILE ('-' = stdin)", "",
         NULL, NULL, NULL},
        CLI_OPT_MAX_INPUT(&a.max_input, "largest --prompt-file, in MiB"),
        CLI_OPT_NO_MMAP(&a.no_mmap),
        CLI_OPT_MAX_TOKENS(&a.n_gen, "tokens to generate"),
        {"--stop", 0, CLI_STRS, &a.stops.strs, 0, 0, "STR", "stop when the output contains STR, which is not printed",
         "", NULL, NULL, NULL},
        {"--stop-token", 0, CLI_INTS, &a.stops.ids, 0, 1 << 30, "ID", "stop when token ID is sampled; not printed", "",
         NULL, NULL, NULL},
        {"--ignore-eos", 0, CLI_FLAG, &a.ignore_eos, 0, 0, NULL, "do not stop at the tokenizer's end-of-text token",
         "", NULL, NULL, NULL},
        CLI_OPT_STATE_IN(&a.state_in, "RWKV: start from a saved state (the prompt continues it)"),
        CLI_OPT_STATE_OUT(&a.state_out, "RWKV: save the state after the prompt and the generated tokens"),
        CLI_OPT_CHUNK(&a.chunk, "RWKV: prompt tokens per sequence-mode call; 1 = token by token"),
        CLI_OPT_THREADS(&a.threads),
        CLI_OPT_DEVICE(&a.device),
        CLI_OPT_RUN_PRECISION(&a.precision),
        CLI_OPT_JSON(&a.json, "print one JSON object at the end instead of streaming"),
        {"--raw", 0, CLI_FLAG, &a.raw, 0, 0, NULL,
         "write the tokens' bytes unchanged (default: an invalid UTF-8\nsequence is replaced by U+FFFD)", "", NULL,
         NULL, NULL},
        CLI_OPT_QUIET(&a.quiet, "no timing line on stderr"),
        CLI_SAMPLING_OPTS(&a.smp),
    };
    for (size_t k = 0; k < CLI_N(opts); k++) /* --chunk is refused for a GPT only when given */
        if (opts[k].name && strcmp(opts[k].name, "--chunk") == 0) opts[k].given = &a.chunk_set;
    cli_spec spec = {"generate", "rwkv generate -m MODEL (-p TEXT | --prompt-file FILE) [options]", about, opts,
                     CLI_N(opts), NULL, NULL, 0, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) goto out;
    rc = 2;
    if (!a.model_path) cli_usage_error("generate", "a model is required (-m MODEL)");
    else if (a.raw && a.json)
        cli_usage_error("generate", "--raw and --json exclude each other (JSON text is UTF-8; its tokens array is exact)");
    else if (a.prompt && a.prompt_file) cli_usage_error("generate", "give either -p or --prompt-file, not both");
    else rc = 0;
    if (rc) goto out;
    gen g = {0};
    rc = gen_open(&g, &a);
    if (rc == 0) {
        cli_catch_interrupt(); /* from here Ctrl-C stops after the current token, then saves and reports */
        rc = gen_run(&g, &a);
    }
    gen_close(&g);
out:
    cli_opts_free(&spec);
    return rc;
}
