/* rwkv init: write a freshly initialised RWKV-4 or RWKV-7 model, or the GPT baseline
 * (include/rwkv_train.h). */
#include <stdio.h>

#include "cli.h"
#include "rwkv_train.h"

int cmd_init(int argc, char **argv) {
    rwkv_init_options o = rwkv_init_options_default();
    const char *out = NULL;
    if (!o.arch) o.arch = "rwkv4";
    cli_opt opts[] = {
        {"--arch", 0, CLI_CHOICE, &o.arch, 0, 0, "A",
         "rwkv4, rwkv7 (\"Goose\"), gpt (the transformer baseline); rwkv5 (5.2), rwkv6: random models for\n"
         "benchmarks (--uniform)", NULL, "rwkv4|rwkv5|rwkv6|rwkv7|gpt", NULL, NULL},
        CLI_OPT_HEADS(&o.n_head),
        CLI_OPT_HEAD_SIZE(&o.head_size),
        {"--ctx", 0, CLI_INT, &o.n_ctx, 0, 1 << 20, "N", "gpt: learned positions, the longest context; 0 = 1024",
         NULL, NULL, NULL, NULL},
        CLI_OPT_LAYERS(&o.n_layer),
        CLI_OPT_EMBD(&o.n_embd),
        {"--vocab", 0, CLI_INT, &o.n_vocab, 1, 1 << 24, "V", "vocabulary size (256: byte level)", NULL, NULL, NULL,
         NULL},
        CLI_OPT_FFN(&o.n_ffn),
        CLI_OPT_SEED(&o.seed, "random seed"),
        {"--emb-scale", 0, CLI_DOUBLE, &o.emb_scale, 0, 1e300, "X", "emb.weight ~ U(-X, X), the paper's initial LR",
         NULL, NULL, NULL, NULL},
        {"--uniform", 0, CLI_FLAG, &o.uniform, 0, 0, NULL,
         "rwkv7: matrices uniform with the orthogonal init's variance (no QR: fast at any size, for benchmarks);\n"
         "rwkv5, rwkv6: required (random values in a trained model's ranges)", "",
         NULL, NULL, NULL},
        CLI_OPT_OUT(&out, "FILE", "output file (required)"),
    };
    cli_spec spec = {"init",
                     "rwkv init --layers L --embd C --vocab V [--ffn F] [--seed S] [--emb-scale X] --out M.safetensors\n"
                     "       rwkv init --arch rwkv7 [--head-size N] ... --out M.safetensors\n"
                     "       rwkv init --arch gpt [--heads H] [--ctx N] ... --out M.safetensors\n"
                     "       rwkv init --arch rwkv5|rwkv6 --uniform [--head-size N] ... --out M.safetensors",
                     "Writes a freshly initialised RWKV-4 model (docs/model.md 3.1-3.2: the official\n"
                     "v4neo init) as float32 safetensors with the official key names, atomically; with --arch rwkv7\n"
                     "an RWKV-7 \"Goose\" model with the official x070 init (docs/training-rwkv7.md); with --arch gpt\n"
                     "the GPT-2-style transformer baseline (N(0, 0.02) init, residual projections / sqrt(2L)); with\n"
                     "--arch rwkv5|rwkv6 --uniform a random RWKV-5.2 or RWKV-6 model with the official layout, for\n"
                     "benchmarks and tests (rwkv.c does not train these versions).\n",
                     opts, CLI_N(opts), NULL, NULL, 0, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    if (!out) return cli_usage_error("init", "--out FILE is required");
    rwkv_error err;
    if (rwkv_init_checkpoint(&o, out, &err) != RWKV_OK) return cli_report(&err);
    fprintf(stderr, "wrote %s (%s, %d layers x %d, vocab %d)\n", out, o.arch, o.n_layer, o.n_embd, o.n_vocab);
    return 0;
}
