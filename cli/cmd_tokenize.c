/* rwkv tokenize / rwkv detokenize: text <-> token ids through stdin/stdout;
 * rwkv tokenize --out: a text file -> a token file for rwkv train. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rwkv_tokenizer.h"
#include "rwkv_train.h"

static const char tokenizer_help[] =
    "a Hugging Face tokenizer.json with a BPE model (GPT-NeoX-20B:\n"
    "20B_tokenizer.json), a RWKV World vocabulary (rwkv_vocab_v20230424.txt),\n"
    "or 'bytes' for the byte-level tokenizer (ids 0..255). The kind is detected\n"
    "from the file's content";

int cmd_tokenize(int argc, char **argv) {
    const char *path = "bytes", *out = NULL, *in = NULL;
    long max_input = CLI_MAX_INPUT_MB_DEFAULT;
    cli_opt opts[] = {
        {"--tokenizer", 0, CLI_STR, &path, 0, 0, "FILE", tokenizer_help, NULL, NULL, NULL, NULL},
        CLI_OPT_OUT(&out, "TOKENS", "write the token file TOKENS for rwkv train (needs TEXTFILE)"),
        CLI_OPT_MAX_INPUT(&max_input, "largest text on stdin, in MiB"),
    };
    cli_spec spec = {"tokenize",
                     "rwkv tokenize [--tokenizer FILE] < text\n"
                     "       rwkv tokenize [--tokenizer FILE] --out TOKENS TEXTFILE",
                     "Reads text on stdin and prints its token ids, separated by spaces, then a newline.\n"
                     "With --out, tokenizes TEXTFILE into the token file TOKENS that 'rwkv train --data' reads\n"
                     "(header \"RWKVTOK\", the tokenizer's vocabulary size, uint16 or uint32 ids; docs/training.md)\n"
                     "and prints the token count on stderr.\n",
                     opts, CLI_N(opts), NULL, &in, 1, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    if (in && !out) return cli_usage_error("tokenize", "a TEXTFILE argument needs --out TOKENS");
    if (out && !in) return cli_usage_error("tokenize", "--out needs the TEXTFILE to tokenize");
    rwkv_error err;
    if (out) {
        uint64_t n_tokens = 0;
        int n_vocab = 0;
        if (rwkv_tokenize_file_with(in, path, out, &n_tokens, &n_vocab, &err)) return cli_report(&err);
        fprintf(stderr, "%s: %llu tokens, vocabulary %d\n", out, (unsigned long long)n_tokens, n_vocab);
        return 0;
    }
    rwkv_tokenizer *tok;
    if (rwkv_tokenizer_load(path, &tok, &err)) return cli_report(&err);
    size_t len;
    char *text;
    if (cli_read_input("-", max_input, "text", &text, &len)) {
        rwkv_tokenizer_free(tok);
        return 1;
    }
    int *ids;
    size_t n;
    rwkv_status st = rwkv_tokenize(tok, text, len, &ids, &n, &err);
    free(text);
    rwkv_tokenizer_free(tok);
    if (st) return cli_report(&err);
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    rwkv_free(ids);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "rwkv tokenize: write error: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

int cmd_detokenize(int argc, char **argv) {
    const char *path = "bytes";
    long max_input = CLI_MAX_INPUT_MB_DEFAULT;
    cli_opt opts[] = {
        {"--tokenizer", 0, CLI_STR, &path, 0, 0, "FILE", tokenizer_help, NULL, NULL, NULL, NULL},
        CLI_OPT_MAX_INPUT(&max_input, "largest input on stdin, in MiB"),
    };
    cli_spec spec = {"detokenize", "rwkv detokenize [--tokenizer FILE] < ids",
                     "Reads token ids (decimal, separated by spaces, commas or newlines) on stdin and writes\n"
                     "the bytes they decode to on stdout, unchanged (possibly invalid UTF-8 when the ids\n"
                     "split a character). End-of-text tokens decode to nothing.\n",
                     opts, CLI_N(opts), NULL, NULL, 0, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    rwkv_error err;
    rwkv_tokenizer *tok;
    if (rwkv_tokenizer_load(path, &tok, &err)) return cli_report(&err);
    size_t len;
    char *in;
    if (cli_read_input("-", max_input, "token ids", &in, &len)) {
        rwkv_tokenizer_free(tok);
        return 1;
    }
    size_t n = 0, cap = 1024;
    int *ids = malloc(cap * sizeof *ids);
    char *p = in, *end = in + len;
    rc = 0;
    while (ids && !rc) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',')) p++;
        if (p >= end) break;
        char *q = p;
        while (q < end && *q != ' ' && *q != '\t' && *q != '\n' && *q != '\r' && *q != ',') q++;
        char *stop;
        errno = 0;
        long v = strtol(p, &stop, 10);
        if (stop != q || errno || v < INT_MIN || v > INT_MAX || !(*p == '-' || (*p >= '0' && *p <= '9'))) {
            fprintf(stderr, "rwkv detokenize: not a token id: '%.*s' (item %zu of the input)\n",
                    (int)(q - p > 40 ? 40 : q - p), p, n + 1);
            rc = 1;
            break;
        }
        if (n == cap) {
            int *more = realloc(ids, 2 * cap * sizeof *ids);
            if (!more) {
                free(ids);
                ids = NULL;
                break;
            }
            ids = more;
            cap *= 2;
        }
        ids[n++] = (int)v;
        p = q;
    }
    free(in);
    if (!ids) {
        rwkv_tokenizer_free(tok);
        fprintf(stderr, "rwkv detokenize: out of memory\n");
        return 1;
    }
    if (rc) {
        free(ids);
        rwkv_tokenizer_free(tok);
        return rc;
    }
    char *text;
    size_t tl;
    rwkv_status st = rwkv_detokenize(tok, ids, n, &text, &tl, &err);
    free(ids);
    rwkv_tokenizer_free(tok);
    if (st) return cli_report(&err);
    size_t wrote = fwrite(text, 1, tl, stdout);
    rwkv_free(text);
    if (wrote != tl || fflush(stdout) != 0) {
        fprintf(stderr, "rwkv detokenize: write error: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
