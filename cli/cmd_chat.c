/* rwkv chat: an interactive conversation in the RWKV chat formats (docs §6),
 * reading stdin line by line (so it can be driven through a pipe). The
 * recurrent state is carried from turn to turn: only the new text is fed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "rwkv_sample.h"
#include "rwkv_tokenizer.h"

#define BIG_NEG (-999999999.0f)

static const char about[] =
    "Reads one message per line from stdin and streams the model's replies to stdout. The format\n"
    "follows the tokenizer: NeoX (RWKV-4 Pile/Raven) -> \"Bob: MSG\\n\\nAlice:\" with ChatRWKV's\n"
    "newline and end-of-text rules; World and bytes -> \"User: MSG\\n\\nAssistant:\". A reply ends at\n"
    "a blank line (\"\\n\\n\"). The state is carried across turns, so nothing is re-read.\n"
    "A literal \\n in a message is a newline. Ctrl-C ends the reply in progress (or the wait for\n"
    "the next line), saves --state-out and exits with status 130.\n\n"
    "commands (on a line of their own):\n"
    "  /reset         forget the conversation (back to the system prompt)\n"
    "  /save FILE     save the conversation state\n"
    "  /load FILE     restore a conversation state saved with /save or --state-out\n"
    "  /quit          leave (so does end of input)\n";
static const char footer[] =
    "chat defaults: Raven --temp 1.2 --top-p 0.5 --presence 0.4 --frequency 0.4;\n"
    "               World/bytes --temp 1.0 --top-p 0.3 --presence 0.5 --frequency 0.5.\n"
    "Every reply token counts 1 in the occurrence table (no whitespace exemption).\n";

typedef struct chat {
    rwkv_model *m;
    rwkv_tokenizer *tok;
    rwkv_state *st;
    rwkv_sampler *smp;
    rwkv_token_stream *stream;
    float *logits;
    int n_vocab, n_sample;
    int raven;         /* NeoX tokenizer: the Raven rules */
    int nl, nlnl, eos; /* ids of "\n", "\n\n" (-1 when not single tokens) and end-of-text */
    int avoid[8];      /* Raven: tokens whose logit is cut right after they were fed */
    int n_avoid;
    const char *user, *bot;
    const char *system;
    const char *inputs[2]; /* the model and tokenizer files, which /save must not overwrite */
    size_t chunk;
    long max_tokens, max_input;
    rwkv_error err;
} chat;

static rwkv_status chat_oom(chat *c) {
    snprintf(c->err.message, sizeof c->err.message, "out of memory");
    return c->err.code = RWKV_ERR_NOMEM;
}

/* The id of text when it is exactly one token, else -1. */
static int single_token(const rwkv_tokenizer *tok, const char *text) {
    int *ids = NULL;
    size_t n = 0;
    int id = -1;
    if (rwkv_tokenize(tok, text, strlen(text), &ids, &n, NULL) == RWKV_OK && n == 1) id = ids[0];
    rwkv_free(ids);
    return id;
}

/* Feeds tokens; the logits of the last one get the Raven adjustments. */
static rwkv_status feed_tokens(chat *c, const int *toks, size_t n, float newline_adj) {
    if (n == 0) return RWKV_OK;
    rwkv_status s = cli_feed(c->m, c->st, toks, n, c->chunk, c->logits, &c->err);
    if (s != RWKV_OK) return s;
    if (c->raven) {
        if (c->nl >= 0 && c->nl < c->n_vocab) c->logits[c->nl] += newline_adj;
        int last = toks[n - 1];
        for (int k = 0; k < c->n_avoid; k++)
            if (last == c->avoid[k]) c->logits[last] = BIG_NEG;
    }
    return RWKV_OK;
}

/* Tokenizes and feeds text; Raven: a trailing "\n\n" token becomes two "\n"
 * (the way the training data split it before the next line). */
static rwkv_status feed_text(chat *c, const char *text, size_t len, float newline_adj) {
    int *ids = NULL;
    size_t n = 0;
    rwkv_status s = rwkv_tokenize(c->tok, text, len, &ids, &n, &c->err);
    if (s != RWKV_OK) return s;
    if (c->raven && n > 0 && c->nlnl >= 0 && c->nl >= 0 && ids[n - 1] == c->nlnl) {
        int *more = realloc(ids, (n + 1) * sizeof *ids);
        if (!more) {
            rwkv_free(ids);
            return chat_oom(c);
        }
        ids = more;
        ids[n - 1] = c->nl;
        ids[n++] = c->nl;
    }
    s = feed_tokens(c, ids, n, newline_adj);
    free(ids);
    return s;
}

static rwkv_status start(chat *c) {
    if (!c->system || !*c->system) return RWKV_OK;
    size_t cap = strlen(c->system) + 64;
    char *t = malloc(cap);
    if (!t) {
        return chat_oom(c);
    }
    if (c->raven) snprintf(t, cap, "%s\n\n", c->system);
    else snprintf(t, cap, "System: %s\n\n", c->system);
    rwkv_status s = feed_text(c, t, strlen(t), 0);
    free(t);
    return s;
}

/* ChatRWKV's newline offset for the logits computed after reply token i. */
static float newline_adj(long i) {
    if (i <= 0) return BIG_NEG;
    if (i <= 40) return (float)(i - 40) / 10.0f;
    if (i <= 150) return 0;
    float a = 0.25f * (float)(i - 150);
    return a < 3 ? a : 3;
}

/* Message cleaning: literal \n -> newline, \r\n -> \n, runs of newlines ->
 * one, surrounding whitespace stripped. In place; returns the new length. */
static size_t clean_message(char *s) {
    size_t w = 0;
    for (size_t r = 0; s[r]; r++) {
        char ch = s[r];
        if (ch == '\\' && s[r + 1] == 'n') {
            ch = '\n';
            r++;
        } else if (ch == '\r' && s[r + 1] == '\n') {
            continue;
        }
        if (ch == '\n' && w > 0 && s[w - 1] == '\n') continue;
        s[w++] = ch;
    }
    s[w] = '\0';
    size_t b = 0;
    while (b < w && (s[b] == ' ' || s[b] == '\t' || s[b] == '\n' || s[b] == '\r')) b++;
    while (w > b && (s[w - 1] == ' ' || s[w - 1] == '\t' || s[w - 1] == '\n' || s[w - 1] == '\r')) w--;
    memmove(s, s + b, w - b);
    s[w - b] = '\0';
    return w - b;
}

/* Writes piece to stdout holding back newlines; returns 1 once two newlines
 * in a row were seen (the reply is complete). */
static int emit(const char *p, size_t n, int *pending_nl) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            if (++*pending_nl >= 2) return 1;
        } else {
            for (; *pending_nl > 0; --*pending_nl) fputc('\n', stdout);
            fputc(p[i], stdout);
        }
    }
    return 0;
}

static rwkv_status reply(chat *c, char *msg) {
    size_t mlen = clean_message(msg);
    if (mlen == 0) return RWKV_OK;
    size_t cap = mlen + strlen(c->user) + strlen(c->bot) + 16;
    char *turn = malloc(cap);
    if (!turn) {
        return chat_oom(c);
    }
    snprintf(turn, cap, "%s: %s\n\n%s:", c->user, msg, c->bot);
    rwkv_status s = feed_text(c, turn, strlen(turn), c->raven ? BIG_NEG : 0);
    free(turn);
    if (s != RWKV_OK) return s;

    rwkv_sampler_reset(c->smp);
    printf("%s:", c->bot);
    fflush(stdout);
    int pending_nl = 0, done = 0;
    for (long i = 0; i < c->max_tokens && !done && !cli_interrupted(); i++) {
        if (!c->raven && c->eos >= 0 && c->eos < c->n_vocab) c->logits[c->eos] -= 1e10f;
        int t = rwkv_sampler_sample(c->smp, c->logits, c->n_sample);
        if (t < 0) {
            snprintf(c->err.message, sizeof c->err.message,
                     "no token can be sampled (every logit banned or not finite)");
            return c->err.code = RWKV_ERR_NUMERIC;
        }
        if ((s = rwkv_sampler_accept(c->smp, t, NULL, 0, &c->err)) != RWKV_OK) return s;
        if ((s = feed_tokens(c, &t, 1, c->raven ? newline_adj(i) : 0)) != RWKV_OK) return s;
        if (c->raven && c->eos >= 0 && c->eos < c->n_vocab) c->logits[c->eos] = BIG_NEG;
        const char *piece;
        size_t plen;
        if ((s = rwkv_token_stream_push(c->stream, t, &piece, &plen, &c->err)) != RWKV_OK) return s;
        done = emit(piece, plen, &pending_nl);
        fflush(stdout);
    }
    const char *piece;
    size_t plen;
    rwkv_token_stream_flush(c->stream, &piece, &plen);
    if (!done) {
        emit(piece, plen, &pending_nl);
        /* cut at the length limit (or by Ctrl-C): close the turn the way a
         * finished reply would have, so that the next turn (or the saved
         * state) keeps the format */
        const char *tail = pending_nl >= 2 ? "" : pending_nl == 1 ? "\n" : "\n\n";
        if (*tail && (s = feed_text(c, tail, strlen(tail), 0)) != RWKV_OK) return s;
    }
    printf("\n");
    if (isatty(STDOUT_FILENO)) printf("\n");
    fflush(stdout);
    return RWKV_OK;
}

static char *command_arg(char *line, size_t cmdlen) {
    char *a = line + cmdlen;
    while (*a == ' ' || *a == '\t') a++;
    size_t n = strlen(a);
    while (n > 0 && (a[n - 1] == ' ' || a[n - 1] == '\t')) a[--n] = '\0';
    return a;
}

static int is_command(const char *line, const char *name) {
    size_t n = strlen(name);
    return strncmp(line, name, n) == 0 && (line[n] == '\0' || line[n] == ' ' || line[n] == '\t');
}

/* A line starting with '/': runs the command; 1 when it failed, -1 to quit. */
static int run_command(chat *c, char *line) {
    if (is_command(line, "/quit") || is_command(line, "/exit")) return -1;
    if (is_command(line, "/reset")) {
        rwkv_state_reset(c->st);
        if (start(c) != RWKV_OK) return cli_report(&c->err);
        fprintf(stderr, "[conversation reset]\n");
    } else if (is_command(line, "/save") || is_command(line, "/load")) {
        int save = line[1] == 's';
        const char *path = command_arg(line, 5);
        if (!*path) {
            fprintf(stderr, "rwkv chat: %s needs a file name\n", save ? "/save" : "/load");
            return 1;
        }
        if (save && rwkv_check_output(path, c->inputs, 2, &c->err) != RWKV_OK) return cli_report(&c->err);
        if ((save ? rwkv_state_save(c->st, path, &c->err) : rwkv_state_load(c->st, path, &c->err)) != RWKV_OK)
            return cli_report(&c->err);
        fprintf(stderr, "[state %s %s]\n", save ? "saved to" : "loaded from", path);
    } else if (is_command(line, "/help")) {
        fprintf(stderr, "commands: /reset, /save FILE, /load FILE, /quit\n");
    } else {
        fprintf(stderr, "rwkv chat: unknown command '%s' (try /help)\n", line);
        return 1;
    }
    return 0;
}

/* The conversation: messages from stdin until its end or /quit. 0; 1 when a
 * command failed; 2 when a reply could not be computed (that ends it). */
static int converse(chat *c, uint64_t seed) {
    int interactive = isatty(STDIN_FILENO), had_error = 0;
    if (interactive)
        fprintf(stderr, "rwkv chat: %s format, seed %llu; /reset /save FILE /load FILE /quit\n",
                c->raven ? "Raven" : "User/Assistant", (unsigned long long)seed);
    char *line = NULL;
    size_t line_cap = 0;
    for (;;) {
        if (interactive) {
            printf("%s: ", c->user);
            fflush(stdout);
        }
        errno = 0;
        long got = cli_read_line(&line, &line_cap, c->max_input);
        if (got == -2) {
            fprintf(stderr, "rwkv: a message is longer than %ld MiB (raise the limit with --max-input MB)\n",
                    c->max_input);
            had_error = 1;
            break;
        }
        if (got < 0) {
            if (ferror(stdin) && !cli_interrupted()) {
                fprintf(stderr, "rwkv: reading stdin: %s\n", strerror(errno));
                had_error = 1;
            }
            if (interactive) printf("\n");
            break;
        }
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (line[0] == '/') {
            int r = run_command(c, line);
            if (r < 0) break;
            had_error |= r;
        } else if (reply(c, line) != RWKV_OK) {
            fflush(stdout);
            cli_report(&c->err);
            had_error = 2;
            break;
        }
        if (cli_interrupted()) break;
    }
    free(line);
    return had_error;
}

/* The model-dependent setup: format, special tokens, names, system prompt
 * (*persona owns a generated one) and the chat sampling defaults. */
static rwkv_status chat_setup(chat *c, cli_sampling *smp, const char *system, const char *user, const char *bot,
                              char **persona) {
    c->raven = strcmp(rwkv_tokenizer_kind(c->tok), "neox") == 0;
    c->nl = single_token(c->tok, "\n");
    c->nlnl = single_token(c->tok, "\n\n");
    c->eos = rwkv_tokenizer_eos(c->tok);
    if (c->raven) {
        static const char *const avoid[] = {"\xef\xbc\x8c", "\xef\xbc\x9a", "\xef\xbc\x9f", "\xef\xbc\x81"}; /* ，：？！ */
        for (size_t k = 0; k < sizeof avoid / sizeof avoid[0]; k++) {
            int id = single_token(c->tok, avoid[k]);
            if (id >= 0 && id < c->n_vocab) c->avoid[c->n_avoid++] = id;
        }
    }
    c->user = user ? user : c->raven ? "Bob" : "User";
    c->bot = bot ? bot : c->raven ? "Alice" : "Assistant";
    c->system = system;
    if (!system && c->raven) {
        const char *fmt = "%s: Hello %s, can you help me with a few questions?\n\n"
                          "%s: Of course! I am happy to help. I will answer as clearly and accurately as I can.";
        size_t cap = strlen(fmt) + 3 * 64 + strlen(c->user) * 2 + strlen(c->bot);
        if (!(*persona = malloc(cap))) return chat_oom(c);
        snprintf(*persona, cap, fmt, c->user, c->bot, c->bot);
        c->system = *persona;
    }
    /* chat sampling defaults (ChatRWKV's chat programs), unless given */
    if (!smp->temp_set) smp->p.temperature = c->raven ? 1.2 : 1.0;
    if (!smp->top_p_set) smp->p.top_p = c->raven ? 0.5 : 0.3;
    if (!smp->presence_set) smp->p.alpha_presence = c->raven ? 0.4 : 0.5;
    if (!smp->frequency_set) smp->p.alpha_frequency = c->raven ? 0.4 : 0.5;
    smp->p.whitespace_exempt = 0;
    if (cli_sampler_new(smp, c->n_vocab, &c->smp, &c->err) != RWKV_OK) return c->err.code;
    if (rwkv_state_new(c->m, &c->st, &c->err) != RWKV_OK) return c->err.code;
    if (rwkv_token_stream_new(c->tok, RWKV_STREAM_REPLACE, &c->stream, &c->err) != RWKV_OK) return c->err.code;
    if (!(c->logits = malloc((size_t)c->n_vocab * sizeof *c->logits))) return chat_oom(c);
    return RWKV_OK;
}

int cmd_chat(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *system = NULL, *user = NULL, *bot = NULL;
    const char *state_in = NULL, *state_out = NULL, *device = NULL, *precision = NULL;
    long max_tokens = 1000, chunk = 256, max_input = CLI_MAX_INPUT_MB_DEFAULT;
    int threads = 0, no_mmap = 0;
    cli_sampling smp;
    cli_sampling_init(&smp);
    cli_opt opts[] = {
        CLI_OPT_MODEL(&model_path, "checkpoint (an RWKV model)"),
        CLI_OPT_MODEL_TOKENIZER(&tok_path),
        {"--system", 0, CLI_TEXT, &system, 0, 0, "TEXT", "system prompt (World: \"System: TEXT\"; Raven: a persona\n"
         "paragraph, a short default one when not given; '' for none)", "", NULL, NULL, NULL},
        {"--user", 0, CLI_STR, &user, 0, 0, "NAME", "the user's name", "Raven: Bob; else User", NULL, NULL, NULL},
        {"--bot", 0, CLI_STR, &bot, 0, 0, "NAME", "the bot's name", "Raven: Alice; else Assistant", NULL, NULL, NULL},
        CLI_OPT_MAX_TOKENS(&max_tokens, "longest reply, in tokens"),
        CLI_OPT_STATE_IN(&state_in, "start from a saved conversation state"),
        CLI_OPT_STATE_OUT(&state_out, "save the conversation state at the end"),
        CLI_OPT_CHUNK(&chunk, "tokens per sequence-mode call when feeding text"),
        CLI_OPT_MAX_INPUT(&max_input, "longest message on stdin, in MiB"),
        CLI_OPT_NO_MMAP(&no_mmap),
        CLI_OPT_THREADS(&threads),
        CLI_OPT_DEVICE(&device),
        CLI_OPT_RUN_PRECISION(&precision),
        CLI_SAMPLING_OPTS(&smp),
    };
    cli_spec spec = {"chat", "rwkv chat -m MODEL [--tokenizer FILE] [options]", about, opts, CLI_N(opts), footer,
                     NULL, 0, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) goto out;
    rc = 2;
    if (!model_path) {
        cli_usage_error("chat", "a model is required (-m MODEL)");
        goto out;
    }
    if ((user && strpbrk(user, "\n\r")) || (bot && strpbrk(bot, "\n\r"))) {
        cli_usage_error("chat", "--user and --bot must be non-empty single-line names");
        goto out;
    }
    chat c = {.chunk = (size_t)chunk, .max_tokens = max_tokens, .max_input = max_input, .inputs = {model_path, tok_path}};
    char *persona = NULL;
    rc = 1;
    if (state_out && rwkv_check_output(state_out, c.inputs, 2, &c.err) != RWKV_OK) goto fail;
    if (cli_tokenizer_for_model(tok_path, model_path, &c.tok, &c.err) != RWKV_OK) goto fail;
    const rwkv_load_options lo = {.device = device, .precision = precision, .no_mmap = no_mmap};
    if (rwkv_model_load_ex(model_path, &lo, &c.m, &c.err) != RWKV_OK) goto fail;
    rwkv_model_set_threads(c.m, threads);
    rwkv_model_info info;
    rwkv_model_get_info(c.m, &info);
    if (info.arch != RWKV_ARCH_RWKV) {
        fprintf(stderr, "rwkv: %s is a GPT baseline checkpoint: chat needs an RWKV model (its state is copied and "
                        "saved across turns); use 'rwkv generate'\n", model_path);
        goto done;
    }
    c.n_vocab = info.n_vocab;
    int tv = rwkv_tokenizer_vocab_size(c.tok);
    c.n_sample = tv > 0 && tv < c.n_vocab ? tv : c.n_vocab;
    if (chat_setup(&c, &smp, system, user, bot, &persona) != RWKV_OK) goto fail;
    if (state_in ? rwkv_state_load(c.st, state_in, &c.err) != RWKV_OK : start(&c) != RWKV_OK) goto fail;
    cli_catch_interrupt(); /* Ctrl-C: end the reply in progress, save --state-out, exit 130 */
    int had_error = converse(&c, smp.seed);
    if (had_error == 2) goto done;
    if (state_out && rwkv_state_save(c.st, state_out, &c.err) != RWKV_OK) goto fail;
    rc = had_error ? 1 : cli_interrupted() ? 130 : 0;
    goto done;
fail:
    fflush(stdout);
    cli_report(&c.err);
done:
    free(persona);
    free(c.logits);
    rwkv_token_stream_free(c.stream);
    rwkv_state_free(c.st);
    rwkv_sampler_free(c.smp);
    rwkv_model_free(c.m);
    rwkv_tokenizer_free(c.tok);
out:
    cli_opts_free(&spec);
    return rc;
}
