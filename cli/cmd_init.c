/* rwkv init: write a freshly initialised RWKV-4 model, or the GPT baseline
 * (include/rwkv_train.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "rwkv_train.h"

static void help(void) {
    rwkv_init_options d = rwkv_init_options_default();
    printf("usage: rwkv init --layers L --embd C --vocab V [--ffn F] [--seed S] [--emb-scale X] --out M.safetensors\n"
           "       rwkv init --arch gpt [--heads H] [--ctx N] ... --out M.safetensors\n\n"
           "Writes a freshly initialised RWKV-4 model (docs/rwkv-architecture.md 3.1-3.2: the official\n"
           "v4neo init) as float32 safetensors with the official key names, atomically; with --arch gpt\n"
           "the GPT-2-style transformer baseline (N(0, 0.02) init, residual projections / sqrt(2L)).\n\n"
           "  --arch A         rwkv4 or gpt (rwkv4)\n"
           "  --heads H        gpt: attention heads, 0 = embd/64 (0)\n"
           "  --ctx N          gpt: learned positions, the longest context, 0 = 1024 (0)\n"
           "  --layers L       layers (%d)\n"
           "  --embd C         width (%d)\n"
           "  --vocab V        vocabulary size (%d: byte level)\n"
           "  --ffn F          channel-mix width, 0 = 4 x embd (%d)\n"
           "  --seed S         random seed (%llu)\n"
           "  --emb-scale X    emb.weight ~ U(-X, X), the paper's initial LR (%g)\n"
           "  --out FILE       output file (required)\n",
           d.n_layer, d.n_embd, d.n_vocab, d.n_ffn, (unsigned long long)d.seed, d.emb_scale);
}

int cmd_init(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    rwkv_init_options o = rwkv_init_options_default();
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != '-') return cli_usage_error("init", "unexpected argument '%s'", a);
        if (i + 1 >= argc) return cli_usage_error("init", "%s expects a value", a);
        const char *v = argv[++i];
        long x;
        if (strcmp(a, "--arch") == 0) {
            if (strcmp(v, "rwkv4") != 0 && strcmp(v, "gpt") != 0)
                return cli_usage_error("init", "--arch expects rwkv4 or gpt, got '%s'", v);
            o.arch = v;
        } else if (strcmp(a, "--heads") == 0) {
            if (cli_parse_int("init", a, v, 0, 65536, &x)) return 2;
            o.n_head = (int)x;
        } else if (strcmp(a, "--ctx") == 0) {
            if (cli_parse_int("init", a, v, 0, 1 << 20, &x)) return 2;
            o.n_ctx = (int)x;
        } else if (strcmp(a, "--layers") == 0) {
            if (cli_parse_int("init", a, v, 1, 1024, &x)) return 2;
            o.n_layer = (int)x;
        } else if (strcmp(a, "--embd") == 0) {
            if (cli_parse_int("init", a, v, 1, 65536, &x)) return 2;
            o.n_embd = (int)x;
        } else if (strcmp(a, "--vocab") == 0) {
            if (cli_parse_int("init", a, v, 1, 1 << 24, &x)) return 2;
            o.n_vocab = (int)x;
        } else if (strcmp(a, "--ffn") == 0) {
            if (cli_parse_int("init", a, v, 0, 1 << 20, &x)) return 2;
            o.n_ffn = (int)x;
        } else if (strcmp(a, "--seed") == 0) {
            if (cli_parse_int("init", a, v, 0, 0x7fffffffffffffffL, &x)) return 2;
            o.seed = (uint64_t)x;
        } else if (strcmp(a, "--emb-scale") == 0) {
            double d;
            if (cli_parse_float("init", a, v, &d)) return 2;
            if (!(d >= 0) || !isfinite(d)) return cli_usage_error("init", "--emb-scale expects a number >= 0, got '%s'", v);
            o.emb_scale = d;
        } else if (strcmp(a, "--out") == 0) {
            if (!*v) return cli_usage_error("init", "--out expects a file name");
            out = v;
        } else {
            return cli_usage_error("init", "unknown option '%s'", a);
        }
    }
    if (!out) return cli_usage_error("init", "--out FILE is required");
    rwkv_error err;
    if (rwkv_init_checkpoint(&o, out, &err) != RWKV_OK) return cli_report(&err);
    fprintf(stderr, "wrote %s (%s, %d layers x %d, vocab %d)\n", out, o.arch ? o.arch : "rwkv4", o.n_layer,
            o.n_embd, o.n_vocab);
    return 0;
}
