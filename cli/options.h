/* The one option parser of the CLI: every command describes its flags in a
 * table (cli_opt: name, short name, type, range, default, help text) and
 * cli_parse reads argv against it. `rwkv CMD --help` is printed from the same
 * table, and a bad value is one line naming the flag and what it accepts
 * (exit status 2). Flags that several commands share are defined once below
 * (CLI_OPT_THREADS, ...), so they mean the same and accept the same range
 * everywhere. */
#ifndef RWKV_CLI_OPTIONS_H
#define RWKV_CLI_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

typedef enum cli_type {
    CLI_SECTION, /* not a flag: a heading in the help (help = the heading) */
    CLI_FLAG,    /* int: set to 1 */
    CLI_STR,     /* const char *: a non-empty value */
    CLI_TEXT,    /* const char *: any value, "" included */
    CLI_CHOICE,  /* const char *: one of `choices` ("a|b|c") */
    CLI_INT,     /* int in [lo, hi] */
    CLI_LONG,    /* long in [lo, hi] */
    CLI_U64,     /* uint64_t, any non-negative value */
    CLI_DOUBLE,  /* double in [lo, hi], finite */
    CLI_INTS,    /* cli_ints: repeatable, each in [lo, hi] */
    CLI_STRS     /* cli_strs: repeatable, each non-empty */
} cli_type;

typedef struct cli_ints {
    int *v;
    size_t n;
} cli_ints;
typedef struct cli_strs {
    const char **v;
    size_t n;
} cli_strs;

typedef struct cli_opt {
    const char *name;    /* "--threads" */
    char short_name;     /* 't' for -t; 0: none */
    cli_type type;
    void *dst;           /* where the value goes (its type above); holds the default before parsing */
    double lo, hi;       /* numeric range, inclusive */
    const char *arg;     /* the value's name in the help: "N", "FILE" */
    const char *help;    /* one line; '\n' continues it on the next line */
    const char *def;     /* the default as the help shows it; NULL: the value dst holds; "": none */
    const char *choices; /* CLI_CHOICE: the accepted values, "f32|f16|bf16" */
    int *given;          /* set to 1 when the flag is given (may be NULL) */
    const char *alias;   /* another long name ("--temperature"), may be NULL */
} cli_opt;

typedef struct cli_spec {
    const char *cmd;    /* "generate" */
    const char *usage;  /* the usage line(s), each starting with "rwkv CMD" */
    const char *about;  /* what the command does (printed before the flags; may be NULL) */
    cli_opt *opts;
    size_t n_opts;
    const char *footer; /* printed after the flags (may be NULL) */
    const char **args;  /* positional arguments are stored here (NULL: none accepted) */
    int max_args, n_args;
} cli_spec;

#define CLI_N(a) (sizeof(a) / sizeof((a)[0]))

/* Parses argv[1..argc-1]. Returns 1 when the command should go on; 0 when it
 * should return *exit_status: 0 after --help / -h was printed, 2 after a
 * usage error was printed on one line. */
int cli_parse(cli_spec *spec, int argc, char **argv, int *exit_status);
/* Prints the help generated from the table on stdout. */
void cli_print_help(const cli_spec *spec);
/* Frees the values of the repeatable flags (CLI_INTS, CLI_STRS). */
void cli_opts_free(cli_spec *spec);

/* ---- flags shared by several commands --------------------------------------- */
#define CLI_OPT_MODEL(dst, what) {"--model", 'm', CLI_STR, (dst), 0, 0, "FILE", (what), "", NULL, NULL, NULL}
#define CLI_OPT_TOKENIZER(dst)                                                                                     \
    {"--tokenizer", 0, CLI_STR, (dst), 0, 0, "FILE", "tokenizer.json (NeoX), World vocabulary, or 'bytes'", NULL, \
     NULL, NULL, NULL}
/* The same for commands that run a model: without the flag, the model file's own vocabulary. */
#define CLI_OPT_MODEL_TOKENIZER(dst)                                                                         \
    {"--tokenizer", 0, CLI_STR, (dst), 0, 0, "FILE", "tokenizer.json (NeoX), World vocabulary, or 'bytes'", \
     "the vocabulary inside MODEL (GGUF), else 'bytes'", NULL, NULL, NULL}
/* Text inputs held whole in memory (a prompt file, stdin of tokenize,
 * detokenize and chat) stop at this many MiB unless --max-input raises it. */
#define CLI_MAX_INPUT_MB_DEFAULT 256
#define CLI_OPT_MAX_INPUT(dst, what) \
    {"--max-input", 0, CLI_LONG, (dst), 1, 1 << 20, "MB", (what), NULL, NULL, NULL, NULL}
#define CLI_OPT_NO_MMAP(dst)                                                                                   \
    {"--no-mmap", 0, CLI_FLAG, (dst), 0, 0, NULL,                                                                \
     "read the weights into memory instead of mapping the file\n(the file may then change on disk while in use)", \
     "", NULL, NULL, NULL}
#define CLI_OPT_THREADS(dst) \
    {"--threads", 't', CLI_INT, (dst), 0, 4096, "N", "worker threads; 0 = all cores", NULL, NULL, NULL, NULL}
#define CLI_OPT_SEED(dst, what) {"--seed", 0, CLI_U64, (dst), 0, 0, "N", (what), NULL, NULL, NULL, NULL}
#define CLI_OPT_JSON(dst, what) {"--json", 0, CLI_FLAG, (dst), 0, 0, NULL, (what), "", NULL, NULL, NULL}
#define CLI_OPT_QUIET(dst, what) {"--quiet", 'q', CLI_FLAG, (dst), 0, 0, NULL, (what), "", NULL, NULL, NULL}
#define CLI_OPT_MAX_TOKENS(dst, what) \
    {"--max-tokens", 'n', CLI_LONG, (dst), 0, 100000000, "N", (what), NULL, NULL, NULL, NULL}
#define CLI_OPT_CHUNK(dst, what) {"--chunk", 0, CLI_LONG, (dst), 1, 1 << 20, "N", (what), NULL, NULL, NULL, NULL}
#define CLI_OPT_STATE_IN(dst, what) {"--state-in", 0, CLI_STR, (dst), 0, 0, "FILE", (what), "", NULL, NULL, NULL}
#define CLI_OPT_STATE_OUT(dst, what) {"--state-out", 0, CLI_STR, (dst), 0, 0, "FILE", (what), "", NULL, NULL, NULL}
#define CLI_OPT_OUT(dst, arg, what) {"--out", 0, CLI_STR, (dst), 0, 0, (arg), (what), "", NULL, NULL, NULL}
/* where a loaded model runs (rwkv_load_options): eval, generate, bench */
#define CLI_OPT_DEVICE(dst) \
    {"--device", 0, CLI_STR, (dst), 0, 0, "D", "cpu, cuda or cuda:N (an NVIDIA GPU; RWKV models)", "cpu", NULL, NULL, NULL}
#define CLI_OPT_RUN_PRECISION(dst)                                                                            \
    {"--precision", 0, CLI_CHOICE, (dst), 0, 0, "P",                                                       \
     "cuda: fp32, bf16 matrices, or int8 matrices (q8_0 blocks; RWKV-5/6/7); fp32 accumulation and state",     \
     "fp32", "fp32|bf16|int8", NULL, NULL}
/* the model shape of init and train */
#define CLI_OPT_ARCH(dst) \
    {"--arch", 0, CLI_CHOICE, (dst), 0, 0, "A", "rwkv4, rwkv7 (\"Goose\"), or gpt: the transformer baseline", NULL, \
     "rwkv4|rwkv7|gpt", NULL, NULL}
#define CLI_OPT_LAYERS(dst) {"--layers", 0, CLI_INT, (dst), 1, 1024, "N", "layers", NULL, NULL, NULL, NULL}
#define CLI_OPT_EMBD(dst) {"--embd", 0, CLI_INT, (dst), 1, 65536, "N", "width", NULL, NULL, NULL, NULL}
#define CLI_OPT_FFN(dst) \
    {"--ffn", 0, CLI_INT, (dst), 0, 1 << 20, "N", "channel-mix / MLP width; 0 = 4 x embd", NULL, NULL, NULL, NULL}
#define CLI_OPT_HEADS(dst) \
    {"--heads", 0, CLI_INT, (dst), 0, 65536, "N", "gpt: attention heads; 0 = embd/64", NULL, NULL, NULL, NULL}
#define CLI_OPT_HEAD_SIZE(dst)                                                                                        \
    {"--head-size", 0, CLI_INT, (dst), 0, 65536, "N", "rwkv7: channels per head; 0 = 64 (embd when smaller)", NULL,  \
     NULL, NULL, NULL}

#endif
