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

static void help(void) {
    printf("usage: rwkv chat -m MODEL [--tokenizer FILE] [options]\n\n"
           "Reads one message per line from stdin and streams the model's replies to stdout. The format\n"
           "follows the tokenizer: NeoX (RWKV-4 Pile/Raven) -> \"Bob: MSG\\n\\nAlice:\" with ChatRWKV's\n"
           "newline and end-of-text rules; World and bytes -> \"User: MSG\\n\\nAssistant:\". A reply ends at\n"
           "a blank line (\"\\n\\n\"). The state is carried across turns, so nothing is re-read.\n"
           "A literal \\n in a message is a newline.\n\n"
           "commands (on a line of their own):\n"
           "  /reset         forget the conversation (back to the system prompt)\n"
           "  /save FILE     save the conversation state\n"
           "  /load FILE     restore a conversation state saved with /save or --state-out\n"
           "  /quit          leave (so does end of input)\n\n"
           "options:\n"
           "  -m, --model FILE      checkpoint\n"
           "  --tokenizer FILE      tokenizer.json (NeoX), World vocabulary, or 'bytes'         [bytes]\n"
           "  --system TEXT         system prompt (World: \"System: TEXT\"; Raven: a persona paragraph,\n"
           "                        a short default one when not given; '' for none)\n"
           "  --user NAME, --bot NAME   speaker names       [Raven: Bob, Alice; else User, Assistant]\n"
           "  -n, --max-tokens N    longest reply, in tokens                                  [1000]\n"
           "  --state-in FILE       start from a saved conversation state\n"
           "  --state-out FILE      save the conversation state at the end\n"
           "  --chunk N             tokens per sequence-mode call when feeding text           [256]\n"
           "  --threads N           worker threads                                      [all cores]\n\n"
           "%s"
           "  chat defaults: Raven --temp 1.2 --top-p 0.5 --presence 0.4 --frequency 0.4;\n"
           "                 World/bytes --temp 1.0 --top-p 0.3 --presence 0.5 --frequency 0.5.\n"
           "  Every reply token counts 1 in the occurrence table (no whitespace exemption).\n",
           cli_sampling_help);
}

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
    size_t chunk;
    long max_tokens;
    rwkv_error err;
} chat;

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
            snprintf(c->err.message, sizeof c->err.message, "out of memory");
            return c->err.code = RWKV_ERR_NOMEM;
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
        snprintf(c->err.message, sizeof c->err.message, "out of memory");
        return c->err.code = RWKV_ERR_NOMEM;
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
        snprintf(c->err.message, sizeof c->err.message, "out of memory");
        return c->err.code = RWKV_ERR_NOMEM;
    }
    snprintf(turn, cap, "%s: %s\n\n%s:", c->user, msg, c->bot);
    rwkv_status s = feed_text(c, turn, strlen(turn), c->raven ? BIG_NEG : 0);
    free(turn);
    if (s != RWKV_OK) return s;

    rwkv_sampler_reset(c->smp);
    printf("%s:", c->bot);
    fflush(stdout);
    int pending_nl = 0, done = 0;
    for (long i = 0; i < c->max_tokens && !done; i++) {
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
        /* cut at the length limit: close the turn the way a finished reply
         * would have, so that the next turn keeps the format */
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

int cmd_chat(int argc, char **argv) {
    const char *cmd = "chat";
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    const char *model_path = NULL, *tok_path = "bytes", *system = NULL, *user = NULL, *bot = NULL;
    const char *state_in = NULL, *state_out = NULL;
    long max_tokens = 1000, chunk = 256, threads = 0;
    cli_sampling smp;
    cli_sampling_init(&smp);
    const char *v;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int r = cli_sampling_option(cmd, argc, argv, &i, &smp);
        if (r < 0) goto usage;
        if (r > 0) continue;
        if (i + 1 >= argc && o[0] == '-' && strcmp(o, "-") != 0) {
            static const char *const takes[] = {"-m", "--model", "--tokenizer", "--system", "--user", "--bot",
                                                "-n", "--max-tokens", "--state-in", "--state-out", "--chunk",
                                                "--threads"};
            for (size_t k = 0; k < sizeof takes / sizeof takes[0]; k++)
                if (strcmp(o, takes[k]) == 0) {
                    cli_usage_error(cmd, "%s needs a value", o);
                    goto usage;
                }
        }
        if (strcmp(o, "-m") == 0 || strcmp(o, "--model") == 0) model_path = argv[++i];
        else if (strcmp(o, "--tokenizer") == 0) tok_path = argv[++i];
        else if (strcmp(o, "--system") == 0) system = argv[++i];
        else if (strcmp(o, "--user") == 0) user = argv[++i];
        else if (strcmp(o, "--bot") == 0) bot = argv[++i];
        else if (strcmp(o, "--state-in") == 0) state_in = argv[++i];
        else if (strcmp(o, "--state-out") == 0) state_out = argv[++i];
        else if (strcmp(o, "-n") == 0 || strcmp(o, "--max-tokens") == 0) {
            v = argv[++i];
            if (cli_parse_int(cmd, o, v, 1, 100000000, &max_tokens)) goto usage;
        } else if (strcmp(o, "--chunk") == 0) {
            v = argv[++i];
            if (cli_parse_int(cmd, o, v, 1, 1 << 20, &chunk)) goto usage;
        } else if (strcmp(o, "--threads") == 0) {
            v = argv[++i];
            if (cli_parse_int(cmd, o, v, 1, 4096, &threads)) goto usage;
        } else if (o[0] == '-' && o[1]) {
            cli_usage_error(cmd, "unknown option '%s'", o);
            goto usage;
        } else {
            cli_usage_error(cmd, "unexpected argument '%s'", o);
            goto usage;
        }
    }
    if (!model_path) {
        cli_usage_error(cmd, "a model is required (-m MODEL)");
        goto usage;
    }
    if ((user && (!*user || strpbrk(user, "\n\r"))) || (bot && (!*bot || strpbrk(bot, "\n\r")))) {
        cli_usage_error(cmd, "--user and --bot must be non-empty single-line names");
        goto usage;
    }

    chat c;
    memset(&c, 0, sizeof c);
    int rc = 1, had_error = 0;
    char *line = NULL;
    size_t line_cap = 0;
    char *persona = NULL;
    if (rwkv_tokenizer_load(tok_path, &c.tok, &c.err) != RWKV_OK) goto fail;
    if (rwkv_model_load(model_path, &c.m, &c.err) != RWKV_OK) goto fail;
    if (threads > 0) rwkv_model_set_threads(c.m, (int)threads);
    rwkv_model_info info;
    rwkv_model_get_info(c.m, &info);
    if (info.arch != RWKV_ARCH_RWKV) {
        fprintf(stderr, "rwkv: %s is a GPT baseline checkpoint: chat needs an RWKV model (its state is copied and "
                        "saved across turns); use 'rwkv generate'\n", model_path);
        goto done;
    }
    c.n_vocab = info.n_vocab;
    c.n_sample = info.n_vocab;
    int tv = rwkv_tokenizer_vocab_size(c.tok);
    if (tv > 0 && tv < c.n_sample) c.n_sample = tv;
    c.raven = strcmp(rwkv_tokenizer_kind(c.tok), "neox") == 0;
    c.nl = single_token(c.tok, "\n");
    c.nlnl = single_token(c.tok, "\n\n");
    c.eos = rwkv_tokenizer_eos(c.tok);
    if (c.raven) {
        static const char *const avoid[] = {"\xef\xbc\x8c", "\xef\xbc\x9a", "\xef\xbc\x9f", "\xef\xbc\x81"}; /* ，：？！ */
        for (size_t k = 0; k < sizeof avoid / sizeof avoid[0]; k++) {
            int id = single_token(c.tok, avoid[k]);
            if (id >= 0 && id < c.n_vocab) c.avoid[c.n_avoid++] = id;
        }
    }
    c.user = user ? user : c.raven ? "Bob" : "User";
    c.bot = bot ? bot : c.raven ? "Alice" : "Assistant";
    c.chunk = (size_t)chunk;
    c.max_tokens = max_tokens;
    if (system) {
        c.system = system;
    } else if (c.raven) {
        const char *fmt = "%s: Hello %s, can you help me with a few questions?\n\n"
                          "%s: Of course! I am happy to help. I will answer as clearly and accurately as I can.";
        size_t cap = strlen(fmt) + 3 * 64 + strlen(c.user) * 2 + strlen(c.bot);
        persona = malloc(cap);
        if (!persona) goto oom;
        snprintf(persona, cap, fmt, c.user, c.bot, c.bot);
        c.system = persona;
    }
    /* chat sampling defaults (ChatRWKV's chat programs), unless given */
    if (!(smp.set & CLI_SET_TEMP)) smp.p.temperature = c.raven ? 1.2 : 1.0;
    if (!(smp.set & CLI_SET_TOP_P)) smp.p.top_p = c.raven ? 0.5 : 0.3;
    if (!(smp.set & CLI_SET_PRESENCE)) smp.p.alpha_presence = c.raven ? 0.4 : 0.5;
    if (!(smp.set & CLI_SET_FREQUENCY)) smp.p.alpha_frequency = c.raven ? 0.4 : 0.5;
    smp.p.whitespace_exempt = 0;
    if (cli_sampler_new(&smp, c.m, &c.smp, &c.err) != RWKV_OK) goto fail;
    if (rwkv_state_new(c.m, &c.st, &c.err) != RWKV_OK) goto fail;
    if (rwkv_token_stream_new(c.tok, RWKV_STREAM_REPLACE, &c.stream, &c.err) != RWKV_OK) goto fail;
    c.logits = malloc((size_t)c.n_vocab * sizeof *c.logits);
    if (!c.logits) goto oom;
    if (state_in) {
        if (rwkv_state_load(c.st, state_in, &c.err) != RWKV_OK) goto fail;
    } else if (start(&c) != RWKV_OK) {
        goto fail;
    }
    int interactive = isatty(STDIN_FILENO);
    if (interactive)
        fprintf(stderr, "rwkv chat: %s format, seed %llu; /reset /save FILE /load FILE /quit\n",
                c.raven ? "Raven" : "User/Assistant", (unsigned long long)smp.seed);

    for (;;) {
        if (interactive) {
            printf("%s: ", c.user);
            fflush(stdout);
        }
        errno = 0;
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) {
            if (ferror(stdin)) {
                fprintf(stderr, "rwkv: reading stdin: %s\n", strerror(errno));
                had_error = 1;
            }
            if (interactive) printf("\n");
            break;
        }
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (line[0] == '/') {
            if (is_command(line, "/quit") || is_command(line, "/exit")) break;
            if (is_command(line, "/reset")) {
                rwkv_state_reset(c.st);
                if (start(&c) != RWKV_OK) goto fail;
                fprintf(stderr, "[conversation reset]\n");
            } else if (is_command(line, "/save") || is_command(line, "/load")) {
                int save = line[1] == 's';
                const char *path = command_arg(line, 5);
                if (!*path) {
                    fprintf(stderr, "rwkv chat: %s needs a file name\n", save ? "/save" : "/load");
                    had_error = 1;
                } else if ((save ? rwkv_state_save(c.st, path, &c.err) : rwkv_state_load(c.st, path, &c.err)) !=
                           RWKV_OK) {
                    cli_report(&c.err);
                    had_error = 1;
                } else {
                    fprintf(stderr, "[state %s %s]\n", save ? "saved to" : "loaded from", path);
                }
            } else if (is_command(line, "/help")) {
                fprintf(stderr, "commands: /reset, /save FILE, /load FILE, /quit\n");
            } else {
                fprintf(stderr, "rwkv chat: unknown command '%s' (try /help)\n", line);
                had_error = 1;
            }
            continue;
        }
        if (reply(&c, line) != RWKV_OK) goto fail;
    }
    if (state_out && rwkv_state_save(c.st, state_out, &c.err) != RWKV_OK) goto fail;
    rc = had_error ? 1 : 0;
    goto done;
oom:
    fprintf(stderr, "rwkv: out of memory\n");
    goto done;
fail:
    fflush(stdout);
    cli_report(&c.err);
done:
    free(line);
    free(persona);
    free(c.logits);
    rwkv_token_stream_free(c.stream);
    rwkv_state_free(c.st);
    rwkv_sampler_free(c.smp);
    rwkv_model_free(c.m);
    rwkv_tokenizer_free(c.tok);
    cli_sampling_free(&smp);
    return rc;
usage:
    cli_sampling_free(&smp);
    return 2;
}
