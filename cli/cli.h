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

#endif
