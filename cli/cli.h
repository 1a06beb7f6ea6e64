/* Shared pieces of the command-line tool. The CLI is built only on the
 * public API in include/. */
#ifndef RWKV_CLI_H
#define RWKV_CLI_H

#include <stdio.h>

#include "options.h"
#include "rwkv.h"
#include "rwkv_sample.h"
#include "rwkv_tokenizer.h"

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
} cli_command;

/* ---- cli/common.c ---------------------------------------------------------- */
/* Writes s with its control characters escaped (\n, \t, \x1b...): names
 * from a file (tensors, keys) can neither break a line nor drive the terminal. */
void cli_print_escaped(FILE *f, const char *s);
/* Prints "rwkv: <message>" (escaped) for a failed call and returns exit status 1. */
int cli_report(const rwkv_error *err);
/* Prints "rwkv CMD: <formatted message> (see 'rwkv CMD --help')" and returns exit status 2 (usage error). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Feeds n tokens in sequence-mode chunks of `chunk` (1 = RNN mode, token by token);
 * logits (may be NULL) receives the last token's logits. */
rwkv_status cli_feed(rwkv_model *m, rwkv_state *st, const int *toks, size_t n, size_t chunk, float *logits,
                     rwkv_error *err);
/* Reads a whole file ('-' = stdin), NUL-terminated, of at most max_mb MiB;
 * 0, or 1 after printing why not ("rwkv: PATH: ..."; a larger input names
 * the limit and --max-input). `what` says what the file is ("prompt file"). */
int cli_read_input(const char *path, long max_mb, const char *what, char **data, size_t *len);
/* One line of stdin of at most max_mb MiB, without its line break, into
 * *line (grown as needed): its length, -1 at the end of the input or on a
 * read error (ferror tells), -2 when the line is longer than the limit (the
 * rest of it is not read). */
long cli_read_line(char **line, size_t *cap, long max_mb);
double cli_now(void); /* monotonic seconds */
/* A --dtype value ("f32", "f16" or "bf16", a CLI_CHOICE) as rwkv_dtype; NULL: RWKV_DTYPE_KEEP. */
rwkv_dtype cli_dtype(const char *name);
/* Turns SIGBUS from a file rwkv.c maps (a model truncated on disk by another
 * process while in use) into one line naming the file and exit status 1. */
void cli_catch_bus_errors(void);
/* The tokenizer of a model: the file --tokenizer names (tok_path), else the
 * vocabulary the model file carries (GGUF), else the byte-level one. */
rwkv_status cli_tokenizer_for_model(const char *tok_path, const char *model_path, rwkv_tokenizer **out,
                                    rwkv_error *err);

/* ---- cli/signals.c --------------------------------------------------------- */
/* At start (main): SIGINT, SIGTERM, SIGHUP and SIGQUIT remove the library's
 * temporary files and end the process by that signal (unless the signal was
 * ignored when the process started); SIGXFSZ is ignored (a write past the
 * file-size limit is an error with a message). */
void cli_signals_init(void);
/* For a command that stops cleanly: from now on the first SIGINT or SIGTERM
 * (even one ignored at start) only sets cli_interrupted() and interrupts a
 * blocking read; the second ends the process as above. Exit status 130 after
 * such a stop. */
void cli_catch_interrupt(void);
int cli_interrupted(void);

/* ---- cli/sampling.c: the sampling flags of generate and chat ---------------- */
typedef struct cli_sampling {
    rwkv_sampler_params p; /* ChatRWKV defaults, then the flags given */
    cli_ints ban;
    uint64_t seed;
    int seed_set;
    int temp_set, top_p_set, presence_set, frequency_set; /* chat changes the defaults of those not given */
} cli_sampling;
void cli_sampling_init(cli_sampling *s);
/* The seed given, or one from the clock (remembered in s->seed). */
uint64_t cli_sampling_seed(cli_sampling *s);
/* A sampler for a model of n_vocab tokens (checks the --ban ids against it). */
rwkv_status cli_sampler_new(cli_sampling *s, int n_vocab, rwkv_sampler **out, rwkv_error *err);
/* The sampling flags, as entries of a command's option table. */
#define CLI_SAMPLING_OPTS(s)                                                                                         \
    {NULL, 0, CLI_SECTION, NULL, 0, 0, NULL, "sampling (ChatRWKV pipeline semantics, see docs/generation.md)", NULL, \
     NULL, NULL, NULL},                                                                                              \
        {"--temp", 0, CLI_DOUBLE, &(s)->p.temperature, 0, 1e6, "T",                                                  \
         "temperature, applied after the top-p/top-k cut; 0 = greedy", NULL, NULL, &(s)->temp_set, "--temperature"}, \
        {"--top-p", 0, CLI_DOUBLE, &(s)->p.top_p, 0, 1, "P", "nucleus: keep the most likely tokens up to mass P",    \
         NULL, NULL, &(s)->top_p_set, NULL},                                                                         \
        {"--top-k", 0, CLI_INT, &(s)->p.top_k, 0, 1 << 30, "K", "keep at most K tokens; 0 = off", NULL, NULL, NULL,  \
         NULL},                                                                                                      \
        {"--presence", 0, CLI_DOUBLE, &(s)->p.alpha_presence, -1e6, 1e6, "A", "presence penalty", NULL, NULL,        \
         &(s)->presence_set, NULL},                                                                                  \
        {"--frequency", 0, CLI_DOUBLE, &(s)->p.alpha_frequency, -1e6, 1e6, "A", "frequency penalty", NULL, NULL,     \
         &(s)->frequency_set, NULL},                                                                                 \
        {"--decay", 0, CLI_DOUBLE, &(s)->p.alpha_decay, 0, 1, "D", "per-token decay of the occurrence counts", NULL, \
         NULL, NULL, NULL},                                                                                          \
        {"--ban", 0, CLI_INTS, &(s)->ban, 0, 1 << 30, "ID", "never sample token ID", "", NULL, NULL, NULL},          \
        {"--seed", 0, CLI_U64, &(s)->seed, 0, 0, "N", "random seed", "from the clock; printed on stderr", NULL,      \
         &(s)->seed_set, NULL}

/* Commands, one file each (cli/cmd_*.c). */
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
