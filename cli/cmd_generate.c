/* rwkv generate: prompt in sequence mode, then sample and stream tokens, with
 * an RWKV model or the GPT baseline (its KV cache, up to its context).
 * Also the sampling/feeding helpers shared with rwkv chat (cli.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "rwkv_sample.h"
#include "rwkv_tokenizer.h"

/* ---- shared helpers ------------------------------------------------------ */

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_sampling_init(cli_sampling *s) {
    memset(s, 0, sizeof *s);
    rwkv_sampler_params_default(&s->p);
}

void cli_sampling_free(cli_sampling *s) {
    free(s->ban);
    s->ban = NULL;
    s->n_ban = 0;
}

const char *cli_sampling_help =
    "sampling (ChatRWKV pipeline semantics, see docs/generation.md):\n"
    "  --temp T          temperature, applied after the top-p/top-k cut; 0 = greedy    [1.0]\n"
    "  --top-p P         nucleus: keep the most likely tokens up to total mass P       [0.85]\n"
    "  --top-k K         keep at most K tokens; 0 = off                                 [0]\n"
    "  --presence A      presence penalty                                              [0.2]\n"
    "  --frequency A     frequency penalty                                             [0.2]\n"
    "  --decay D         per-token decay of the occurrence counts                      [0.996]\n"
    "  --ban ID          never sample token ID (repeatable)\n"
    "  --seed N          random seed (default: from the clock; printed on stderr)\n";

static const char *opt_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_sampling_option(const char *cmd, int argc, char **argv, int *i, cli_sampling *s) {
    const char *o = argv[*i], *v;
    double d;
    long l;
    if (strcmp(o, "--temp") == 0 || strcmp(o, "--temperature") == 0) {
        if (!(v = opt_value(cmd, argc, argv, i)) || cli_parse_float(cmd, o, v, &d)) return -1;
        if (d < 0 || d > 1e6) return cli_usage_error(cmd, "%s must be >= 0, got '%s'", o, v), -1;
        s->p.temperature = d;
        s->set |= CLI_SET_TEMP;
    } else if (strcmp(o, "--top-p") == 0) {
        if (!(v = opt_value(cmd, argc, argv, i)) || cli_parse_float(cmd, o, v, &d)) return -1;
        if (d < 0 || d > 1) return cli_usage_error(cmd, "%s must be in [0, 1], got '%s'", o, v), -1;
        s->p.top_p = d;
        s->set |= CLI_SET_TOP_P;
    } else if (strcmp(o, "--top-k") == 0) {
        if (!(v = opt_value(cmd, argc, argv, i)) || cli_parse_int(cmd, o, v, 0, 1 << 30, &l)) return -1;
        s->p.top_k = (int)l;
    } else if (strcmp(o, "--presence") == 0) {
        if (!(v = opt_value(cmd, argc, argv, i)) || cli_parse_float(cmd, o, v, &d)) return -1;
        if (d < -1e6 || d > 1e6) return cli_usage_error(cmd, "%s out of range: '%s'", o, v), -1;
        s->p.alpha_presence = d;
        s->set |= CLI_SET_PRESENCE;
    } else if (strcmp(o, "--frequency") == 0) {
        if (!(v = opt_value(cmd, argc, argv, i)) || cli_parse_float(cmd, o, v, &d)) return -1;
        if (d < -1e6 || d > 1e6) return cli_usage_error(cmd, "%s out of range: '%s'", o, v), -1;
        s->p.alpha_frequency = d;
        s->set |= CLI_SET_FREQUENCY;
    } else if (strcmp(o, "--decay") == 0) {
        if (!(v = opt_value(cmd, argc, argv, i)) || cli_parse_float(cmd, o, v, &d)) return -1;
        if (d < 0 || d > 1) return cli_usage_error(cmd, "%s must be in [0, 1], got '%s'", o, v), -1;
        s->p.alpha_decay = d;
        s->set |= CLI_SET_DECAY;
    } else if (strcmp(o, "--ban") == 0) {
        if (!(v = opt_value(cmd, argc, argv, i)) || cli_parse_int(cmd, o, v, 0, 1 << 30, &l)) return -1;
        int *b = realloc(s->ban, (s->n_ban + 1) * sizeof *b);
        if (!b) return cli_usage_error(cmd, "out of memory"), -1;
        s->ban = b;
        s->ban[s->n_ban++] = (int)l;
    } else if (strcmp(o, "--seed") == 0) {
        if (!(v = opt_value(cmd, argc, argv, i))) return -1;
        char *end;
        errno = 0;
        unsigned long long u = strtoull(v, &end, 10);
        if (!*v || *end || errno || v[0] == '-')
            return cli_usage_error(cmd, "--seed expects a non-negative integer, got '%s'", v), -1;
        s->seed = (uint64_t)u;
        s->seed_set = 1;
    } else {
        return 0;
    }
    return 1;
}

uint64_t cli_sampling_seed(cli_sampling *s) {
    if (!s->seed_set) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s->seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
        s->seed %= 1000000000000ull; /* short enough to retype */
        s->seed_set = 1;
    }
    return s->seed;
}

/* cli_sampler_new for a model of n_vocab tokens. */
static rwkv_status sampler_new(cli_sampling *s, int n_vocab, rwkv_sampler **out, rwkv_error *err) {
    for (size_t i = 0; i < s->n_ban; i++)
        if (s->ban[i] >= n_vocab) {
            snprintf(err->message, sizeof err->message, "--ban %d is outside the model's vocabulary [0, %d)",
                     s->ban[i], n_vocab);
            return err->code = RWKV_ERR_ARG;
        }
    s->p.token_ban = s->ban;
    s->p.n_token_ban = s->n_ban;
    return rwkv_sampler_new(&s->p, cli_sampling_seed(s), out, err);
}

rwkv_status cli_sampler_new(cli_sampling *s, const rwkv_model *m, rwkv_sampler **out, rwkv_error *err) {
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    return sampler_new(s, info.n_vocab, out, err);
}

rwkv_status cli_feed(rwkv_model *m, rwkv_state *st, const int *toks, size_t n, size_t chunk, float *logits,
                     rwkv_error *err) {
    if (chunk == 0) chunk = 256;
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        int last = i + k == n;
        rwkv_status s = k == 1 ? rwkv_eval(m, st, toks[i], last ? logits : NULL, err)
                               : rwkv_eval_sequence(m, st, toks + i, k, last ? logits : NULL, 0, err);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}

int cli_read_file(const char *path, char **data, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = !buf || ferror(f);
    if (f != stdin) fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

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

static void help(void) {
    printf("usage: rwkv generate -m MODEL (-p TEXT | --prompt-file FILE) [options]\n\n"
           "Feeds the prompt in sequence mode, then samples up to N tokens one at a time and streams\n"
           "them to stdout as they are produced (complete UTF-8 characters only). Timing goes to stderr.\n\n"
           "A GPT baseline checkpoint (rwkv train --arch gpt; recognised from the file) is decoded token\n"
           "by token with its KV cache. Its context is its n_ctx learned positions: a longer prompt is an\n"
           "error, and generation stops (stop reason \"context\", with a note on stderr) when prompt and\n"
           "output fill it. It has no recurrent state, so --state-in, --state-out and --chunk are refused.\n\n"
           "  -m, --model FILE      checkpoint (safetensors, .pth or rwkv.cpp; RWKV or GPT)\n"
           "  --tokenizer FILE      tokenizer.json (NeoX), World vocabulary, or 'bytes'         [bytes]\n"
           "  -p, --prompt TEXT     the prompt\n"
           "  --prompt-file FILE    read the prompt from FILE ('-' = stdin)\n"
           "  -n, --max-tokens N    tokens to generate                                       [200]\n"
           "  --stop STR            stop when the output contains STR, which is not printed (repeatable)\n"
           "  --stop-token ID       stop when token ID is sampled; it is not printed (repeatable)\n"
           "  --ignore-eos          do not stop at the tokenizer's end-of-text token\n"
           "  --state-in FILE       RWKV: start from a saved state (the prompt continues it)\n"
           "  --state-out FILE      RWKV: save the state after the prompt and the generated tokens\n"
           "  --chunk N             RWKV: prompt tokens per sequence-mode call; 1 = token by token [256]\n"
           "  --threads N           worker threads                                      [all cores]\n"
           "  --json                print one JSON object at the end instead of streaming\n"
           "  --raw                 write the tokens' bytes unchanged (default: an invalid UTF-8\n"
           "                        sequence is replaced by U+FFFD)\n"
           "  --quiet               no timing line on stderr\n\n%s",
           cli_sampling_help);
}

typedef struct stop_list {
    const char **s;
    size_t n;
    int *ids;
    size_t n_ids;
} stop_list;

/* Position of the first stop string in text[from..n) (matches may start
 * before `from` only if they end after it: the caller passes the earliest
 * start a new match can have), or -1. */
static long find_stop(const stop_list *st, const char *text, size_t n, size_t from) {
    long best = -1;
    for (size_t k = 0; k < st->n; k++) {
        size_t m = strlen(st->s[k]);
        if (m == 0 || m > n) continue;
        for (size_t i = from; i + m <= n; i++)
            if (memcmp(text + i, st->s[k], m) == 0) {
                if (best < 0 || (long)i < best) best = (long)i;
                break;
            }
    }
    return best;
}

/* Length of the longest suffix of text that is a proper prefix of a stop string. */
static size_t stop_holdback(const stop_list *st, const char *text, size_t n) {
    size_t best = 0;
    for (size_t k = 0; k < st->n; k++) {
        size_t m = strlen(st->s[k]);
        for (size_t l = m > 0 ? m - 1 : 0; l > best; l--)
            if (l <= n && memcmp(text + n - l, st->s[k], l) == 0) {
                best = l;
                break;
            }
    }
    return best;
}

static size_t max_stop_len(const stop_list *st) {
    size_t m = 0;
    for (size_t k = 0; k < st->n; k++)
        if (strlen(st->s[k]) > m) m = strlen(st->s[k]);
    return m;
}

/* The model being sampled and its state (the GPT's: its KV cache). */
typedef struct gen_model {
    rwkv_model *m;
    rwkv_state *st;
    int n_vocab;
    int n_ctx; /* GPT: positions; 0 for RWKV (unbounded) */
} gen_model;

int cmd_generate(int argc, char **argv) {
    const char *cmd = "generate";
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    const char *model_path = NULL, *tok_path = "bytes", *prompt = NULL, *prompt_file = NULL;
    const char *state_in = NULL, *state_out = NULL, *chunk_opt = NULL;
    long n_gen = 200, chunk = 256, threads = 0;
    int json = 0, quiet = 0, ignore_eos = 0, raw = 0, rc = 1;
    cli_sampling smp;
    cli_sampling_init(&smp);
    stop_list stops = {0};
    const char *v;
    long l;

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int r = cli_sampling_option(cmd, argc, argv, &i, &smp);
        if (r < 0) goto usage;
        if (r > 0) continue;
        if (strcmp(o, "-m") == 0 || strcmp(o, "--model") == 0) {
            if (!(model_path = opt_value(cmd, argc, argv, &i))) goto usage;
        } else if (strcmp(o, "--tokenizer") == 0) {
            if (!(tok_path = opt_value(cmd, argc, argv, &i))) goto usage;
        } else if (strcmp(o, "-p") == 0 || strcmp(o, "--prompt") == 0) {
            if (!(prompt = opt_value(cmd, argc, argv, &i))) goto usage;
        } else if (strcmp(o, "--prompt-file") == 0) {
            if (!(prompt_file = opt_value(cmd, argc, argv, &i))) goto usage;
        } else if (strcmp(o, "-n") == 0 || strcmp(o, "--max-tokens") == 0) {
            if (!(v = opt_value(cmd, argc, argv, &i)) || cli_parse_int(cmd, o, v, 0, 100000000, &n_gen)) goto usage;
        } else if (strcmp(o, "--stop") == 0) {
            if (!(v = opt_value(cmd, argc, argv, &i))) goto usage;
            if (!*v) {
                cli_usage_error(cmd, "--stop needs a non-empty string");
                goto usage;
            }
            const char **s = realloc(stops.s, (stops.n + 1) * sizeof *s);
            if (!s) goto oom;
            stops.s = s;
            stops.s[stops.n++] = v;
        } else if (strcmp(o, "--stop-token") == 0) {
            if (!(v = opt_value(cmd, argc, argv, &i)) || cli_parse_int(cmd, o, v, 0, 1 << 30, &l)) goto usage;
            int *s = realloc(stops.ids, (stops.n_ids + 1) * sizeof *s);
            if (!s) goto oom;
            stops.ids = s;
            stops.ids[stops.n_ids++] = (int)l;
        } else if (strcmp(o, "--ignore-eos") == 0) {
            ignore_eos = 1;
        } else if (strcmp(o, "--state-in") == 0) {
            if (!(state_in = opt_value(cmd, argc, argv, &i))) goto usage;
        } else if (strcmp(o, "--state-out") == 0) {
            if (!(state_out = opt_value(cmd, argc, argv, &i))) goto usage;
        } else if (strcmp(o, "--chunk") == 0) {
            if (!(v = opt_value(cmd, argc, argv, &i)) || cli_parse_int(cmd, o, v, 1, 1 << 20, &chunk)) goto usage;
            chunk_opt = o;
        } else if (strcmp(o, "--threads") == 0) {
            if (!(v = opt_value(cmd, argc, argv, &i)) || cli_parse_int(cmd, o, v, 1, 4096, &threads)) goto usage;
        } else if (strcmp(o, "--json") == 0) {
            json = 1;
        } else if (strcmp(o, "--raw") == 0) {
            raw = 1;
        } else if (strcmp(o, "--quiet") == 0) {
            quiet = 1;
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
    if (raw && json) {
        cli_usage_error(cmd, "--raw and --json exclude each other (JSON text is UTF-8; its tokens array is exact)");
        goto usage;
    }
    if (prompt && prompt_file) {
        cli_usage_error(cmd, "give either -p or --prompt-file, not both");
        goto usage;
    }

    rwkv_error err = {0};
    gen_model gm = {0};
    rwkv_tokenizer *tok = NULL;
    rwkv_sampler *sampler = NULL;
    rwkv_token_stream *stream = NULL;
    char *file_prompt = NULL;
    size_t prompt_len = 0;
    int *ptoks = NULL, *out_toks = NULL;
    size_t n_ptoks = 0, n_out = 0;
    float *logits = NULL;
    bytes text = {0};

    if (prompt_file) {
        if (cli_read_file(prompt_file, &file_prompt, &prompt_len)) {
            fprintf(stderr, "rwkv: %s: cannot read the prompt file: %s\n", prompt_file, strerror(errno));
            goto done;
        }
        prompt = file_prompt;
    } else if (prompt) {
        prompt_len = strlen(prompt);
    } else {
        prompt = "";
    }
    if (rwkv_tokenizer_load(tok_path, &tok, &err) != RWKV_OK) goto fail;
    if (rwkv_model_load(model_path, &gm.m, &err) != RWKV_OK) goto fail;
    if (threads > 0) rwkv_model_set_threads(gm.m, (int)threads);
    rwkv_model_info info;
    rwkv_model_get_info(gm.m, &info);
    gm.n_vocab = info.n_vocab;
    gm.n_ctx = info.n_ctx;
    if (info.arch == RWKV_ARCH_GPT) {
        if (state_in || state_out || chunk_opt) {
            cli_usage_error(cmd, "%s needs an RWKV model; %s is a GPT baseline checkpoint (no recurrent state)",
                            state_in ? "--state-in" : state_out ? "--state-out" : "--chunk", model_path);
            rc = 2;
            goto done;
        }
    }
    for (size_t k = 0; k < stops.n_ids; k++)
        if (stops.ids[k] >= gm.n_vocab) {
            fprintf(stderr, "rwkv: --stop-token %d is outside the model's vocabulary [0, %d)\n", stops.ids[k],
                    gm.n_vocab);
            goto done;
        }
    if (rwkv_state_new(gm.m, &gm.st, &err) != RWKV_OK) goto fail;
    if (state_in && rwkv_state_load(gm.st, state_in, &err) != RWKV_OK) goto fail;
    if (rwkv_tokenize(tok, prompt, prompt_len, &ptoks, &n_ptoks, &err) != RWKV_OK) goto fail;
    if (n_ptoks == 0) {
        fprintf(stderr, "rwkv: the prompt is empty: give -p TEXT or --prompt-file FILE (the next token is "
                        "predicted from the last prompt token)\n");
        goto done;
    }
    if (gm.n_ctx && n_ptoks > (size_t)gm.n_ctx) {
        fprintf(stderr, "rwkv: the prompt is %zu tokens, longer than the model's context of %d positions\n", n_ptoks,
                gm.n_ctx);
        goto done;
    }
    if (sampler_new(&smp, gm.n_vocab, &sampler, &err) != RWKV_OK) goto fail;
    if (rwkv_token_stream_new(tok, raw ? RWKV_STREAM_RAW : RWKV_STREAM_REPLACE, &stream, &err) != RWKV_OK) goto fail;
    logits = malloc((size_t)gm.n_vocab * sizeof *logits);
    size_t out_cap = n_gen < 4096 ? (size_t)n_gen + 1 : 4096;
    out_toks = malloc(out_cap * sizeof *out_toks);
    if (!logits || !out_toks) goto oom_locals;
    /* only ids the tokenizer can print are sampled (a 256-byte tokenizer on a
     * larger model, the unused rows of World models) */
    int n_sample = gm.n_vocab;
    int tv = rwkv_tokenizer_vocab_size(tok);
    if (tv > 0 && tv < n_sample) n_sample = tv;
    int eos = ignore_eos ? -1 : rwkv_tokenizer_eos(tok);

    double t0 = cli_now();
    if (cli_feed(gm.m, gm.st, ptoks, n_ptoks, (size_t)chunk, logits, &err) != RWKV_OK) goto fail;
    double t1 = cli_now();

    const char *stop_reason = "length";
    size_t emitted = 0, maxstop = max_stop_len(&stops);
    int stopped = 0;
    for (long i = 0; i < n_gen && !stopped; i++) {
        int t = rwkv_sampler_sample(sampler, logits, n_sample);
        if (t < 0) {
            fprintf(stderr, "rwkv: no token can be sampled at step %ld (every logit banned or not finite)\n", i);
            goto done;
        }
        int is_stop = t == eos;
        for (size_t k = 0; k < stops.n_ids; k++) is_stop |= t == stops.ids[k];
        if (is_stop) {
            stop_reason = t == eos ? "eos" : "stop_token";
            break;
        }
        char *tb = NULL;
        size_t tl = 0;
        if (rwkv_detokenize(tok, &t, 1, &tb, &tl, &err) != RWKV_OK) goto fail;
        rwkv_status as = rwkv_sampler_accept(sampler, t, tb, tl, &err);
        rwkv_free(tb);
        if (as != RWKV_OK) goto fail;
        if (n_out == out_cap) {
            int *more = realloc(out_toks, 2 * out_cap * sizeof *more);
            if (!more) goto oom_locals;
            out_toks = more;
            out_cap *= 2;
        }
        out_toks[n_out++] = t;
        const char *piece;
        size_t plen;
        if (rwkv_token_stream_push(stream, t, &piece, &plen, &err) != RWKV_OK) goto fail;
        size_t old = text.n;
        if (bytes_add(&text, piece, plen)) goto oom_locals;
        if (i + 1 == n_gen) { /* the end: no later token can complete a character */
            rwkv_token_stream_flush(stream, &piece, &plen);
            if (bytes_add(&text, piece, plen)) goto oom_locals;
        }
        size_t limit = text.n;
        if (stops.n) {
            size_t from = old + 1 > maxstop ? old + 1 - maxstop : 0;
            long at = find_stop(&stops, text.p, text.n, from);
            if (at >= 0) {
                limit = (size_t)at;
                stop_reason = "stop";
                stopped = 1;
            } else if (i + 1 < n_gen) {
                limit = text.n - stop_holdback(&stops, text.p, text.n);
            }
        }
        if (!json && limit > emitted) {
            fwrite(text.p + emitted, 1, limit - emitted, stdout);
            fflush(stdout);
        }
        if (limit > emitted) emitted = limit;
        /* feed the token: the next logits, or only the state for --state-out */
        int more = i + 1 < n_gen && !stopped;
        if (more && gm.n_ctx && rwkv_state_pos(gm.st) >= (size_t)gm.n_ctx) { /* the context is full */
            stop_reason = "context";
            break;
        }
        if ((more || state_out) && rwkv_eval(gm.m, gm.st, t, more ? logits : NULL, &err) != RWKV_OK) goto fail;
    }
    if (strcmp(stop_reason, "length") != 0 || n_gen == 0) {
        /* stopped early: whatever the decoder still holds is cut off with the rest */
        const char *piece;
        size_t plen;
        rwkv_token_stream_flush(stream, &piece, &plen);
        if (strcmp(stop_reason, "stop") != 0) {
            if (bytes_add(&text, piece, plen)) goto oom_locals;
            if (!json && text.n > emitted) fwrite(text.p + emitted, 1, text.n - emitted, stdout);
            emitted = text.n;
        }
    }
    if (!json) fflush(stdout);
    double t2 = cli_now();
    if (state_out && rwkv_state_save(gm.st, state_out, &err) != RWKV_OK) goto fail;

    double tp = t1 - t0, tg = t2 - t1;
    double pps = tp > 0 ? (double)n_ptoks / tp : 0, gps = tg > 0 ? (double)n_out / tg : 0;
    if (json) {
        printf("{\"text\": ");
        json_string(stdout, text.p ? text.p : "", emitted);
        printf(", \"tokens\": [");
        for (size_t k = 0; k < n_out; k++) printf("%s%d", k ? ", " : "", out_toks[k]);
        printf("], \"prompt_tokens\": %zu, \"generated_tokens\": %zu, \"stop_reason\": \"%s\", \"seed\": %llu, "
               "\"prompt_seconds\": %.6f, \"generate_seconds\": %.6f, \"prompt_tokens_per_second\": %.3f, "
               "\"generated_tokens_per_second\": %.3f}\n",
               n_ptoks, n_out, stop_reason, (unsigned long long)smp.seed, tp, tg, pps, gps);
        fflush(stdout);
    }
    if (!quiet && !json && emitted > 0 && text.p[emitted - 1] != '\n' && isatty(STDOUT_FILENO)) printf("\n");
    if (strcmp(stop_reason, "context") == 0)
        fprintf(stderr, "rwkv: generation stopped after %zu tokens: the prompt and the output fill the model's "
                        "context of %d positions\n", n_out, gm.n_ctx);
    if (!quiet) {
        fprintf(stderr,
                "prompt: %zu tokens in %.3f s (%.1f tokens/s); generated: %zu tokens in %.3f s (%.1f tokens/s); "
                "stop: %s; seed %llu\n",
                n_ptoks, tp, pps, n_out, tg, gps, stop_reason, (unsigned long long)smp.seed);
    }
    rc = 0;
    goto done;

oom_locals:
    fprintf(stderr, "rwkv: out of memory\n");
    goto done;
fail:
    cli_report(&err);
done:
    free(text.p);
    free(logits);
    free(out_toks);
    rwkv_free(ptoks);
    free(file_prompt);
    rwkv_token_stream_free(stream);
    rwkv_sampler_free(sampler);
    rwkv_state_free(gm.st);
    rwkv_model_free(gm.m);
    rwkv_tokenizer_free(tok);
    cli_sampling_free(&smp);
    free(stops.s);
    free(stops.ids);
    return rc;
oom:
    fprintf(stderr, "rwkv: out of memory\n");
    rc = 1;
    goto cleanup_args;
usage:
    rc = 2;
cleanup_args:
    cli_sampling_free(&smp);
    free(stops.s);
    free(stops.ids);
    return rc;
}
