/* Shared pieces of the command-line tool. The CLI is built only on the
 * public API in include/. */
#ifndef RWKV_CLI_H
#define RWKV_CLI_H

#include <stdio.h>

#include "rwkv.h"

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
} cli_command;

/* Prints "rwkv: <message>" for a failed call and returns exit status 1. */
int cli_report(const rwkv_error *err);
/* Prints "rwkv CMD: <formatted message>" and returns exit status 2 (usage error). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 1 if argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);
/* Parses a whole decimal integer / float option value; 0 on success, prints the error otherwise. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *cmd, const char *opt, const char *s, double *out);

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

/* Generation helpers shared by generate and chat (cli/cmd_generate.c). */
#include "rwkv_sample.h"
enum { CLI_SET_TEMP = 1, CLI_SET_TOP_P = 2, CLI_SET_PRESENCE = 4, CLI_SET_FREQUENCY = 8, CLI_SET_DECAY = 16 };
typedef struct cli_sampling {
    rwkv_sampler_params p; /* ChatRWKV defaults, then the options given */
    int *ban;
    size_t n_ban;
    uint64_t seed;
    int seed_set;
    unsigned set; /* CLI_SET_* bits of the options that were given */
} cli_sampling;
extern const char *cli_sampling_help; /* the options' help text */
void cli_sampling_init(cli_sampling *s);
void cli_sampling_free(cli_sampling *s);
/* argv[*i] is a sampling option (--temp --top-p --top-k --presence --frequency --decay --ban
 * --seed): consumes it and its value and returns 1; 0 if it is not one; -1 after a usage error. */
int cli_sampling_option(const char *cmd, int argc, char **argv, int *i, cli_sampling *s);
/* The seed given, or one from the clock (remembered in s->seed). */
uint64_t cli_sampling_seed(cli_sampling *s);
/* A sampler for model m (checks --ban ids against its vocabulary). */
rwkv_status cli_sampler_new(cli_sampling *s, const rwkv_model *m, rwkv_sampler **out, rwkv_error *err);
/* Feeds n tokens in sequence-mode chunks of `chunk` (1 = RNN mode, token by token);
 * logits (may be NULL) receives the last token's logits. */
rwkv_status cli_feed(rwkv_model *m, rwkv_state *st, const int *toks, size_t n, size_t chunk, float *logits,
                     rwkv_error *err);
/* Reads a whole file ('-' = stdin), NUL-terminated; 0 or -1 (errno set). */
int cli_read_file(const char *path, char **data, size_t *len);
double cli_now(void); /* monotonic seconds */

#endif
