/* rwkv init: write a freshly initialised RWKV-4 or RWKV-7 model or the GPT
 * baseline, or a random RWKV-5/6 model for benchmarks (include/rwkv_train.h). */
#include <stdio.h>

#include "cli.h"
#include "rwkv_train.h"

int cmd_init(int argc, char **argv) {
    rwkv_init_options o = rwkv_init_options_default();
    const char *out = NULL, *dtype = NULL;
    if (!o.arch) o.arch = "rwkv4";
    cli_opt opts[] = {
        {"--arch", 0, CLI_CHOICE, &o.arch, 0, 0, "A",
         "rwkv4, rwkv7 (\"Goose\"), gpt: the transformer baseline;\n"
         "rwkv5, rwkv6: random RWKV-5.2 / RWKV-6 models for benchmarks (--uniform)",
         NULL, "rwkv4|rwkv5|rwkv6|rwkv7|gpt", NULL, NULL},
        CLI_OPT_HEADS(&o.n_head),
        {"--head-size", 0, CLI_INT, &o.head_size, 0, 65536, "N",
         "rwkv5, rwkv6, rwkv7: channels per head; 0 = 64 (embd when smaller)", NULL, NULL, NULL, NULL},
        {"--ctx", 0, CLI_INT, &o.n_ctx, 0, 1 << 20, "N", "gpt: learned positions, the longest context; 0 = 1024",
         NULL, NULL, NULL, NULL},
        CLI_OPT_LAYERS(&o.n_layer),
        CLI_OPT_EMBD(&o.n_embd),
        {"--vocab", 0, CLI_INT, &o.n_vocab, 1, 1 << 24, "V", "vocabulary size (256: byte level)", NULL, NULL, NULL,
         NULL},
        {"--ffn", 0, CLI_INT, &o.n_ffn, 0, 1 << 20, "N",
         "channel-mix / MLP width; 0 = 4 x embd\n(rwkv5, rwkv6: 3.5 x embd rounded down to a multiple of 32)", NULL,
         NULL, NULL, NULL},
        CLI_OPT_SEED(&o.seed, "random seed"),
        {"--emb-scale", 0, CLI_DOUBLE, &o.emb_scale, 0, 1e300, "X",
         "rwkv4: emb.weight ~ U(-X, X), the paper's initial LR", NULL, NULL, NULL, NULL},
        {"--uniform", 0, CLI_FLAG, &o.uniform, 0, 0, NULL,
         "rwkv7: matrices uniform with the orthogonal init's variance (no QR: fast at any size,\n"
         "for benchmarks); rwkv5, rwkv6: required (random values in a trained model's ranges)",
         "", NULL, NULL, NULL},
        {"--dtype", 0, CLI_CHOICE, &dtype, 0, 0, "T", "the tensors' type in the file", "f32", "f32|bf16|f16",
         NULL, NULL},
        CLI_OPT_OUT(&out, "FILE", "output file (required)"),
    };
    cli_spec spec = {"init",
                     "rwkv init --layers L --embd C --vocab V [--ffn F] [--seed S] [--emb-scale X] --out M.safetensors\n"
                     "       rwkv init --arch rwkv7 [--head-size N] [--uniform] ... --out M.safetensors\n"
                     "       rwkv init --arch rwkv5|rwkv6 --uniform [--head-size N] ... --out M.safetensors\n"
                     "       rwkv init --arch gpt [--heads H] [--ctx N] ... --out M.safetensors",
                     "Writes a freshly initialised RWKV-4 model (docs/model.md 3.1-3.2: the official\n"
                     "v4neo init) as safetensors with the official key names, atomically; with --arch rwkv7\n"
                     "an RWKV-7 \"Goose\" model with the official x070 init (docs/training-rwkv7.md); with --arch gpt\n"
                     "the GPT-2-style transformer baseline (N(0, 0.02) init, residual projections / sqrt(2L)).\n"
                     "--arch rwkv5 and rwkv6 write random RWKV-5.2 / RWKV-6 models of the official x052 / x060\n"
                     "layout with values in a trained model's ranges, for benchmarks and tests only: nothing\n"
                     "trains them (docs/training.md, \"Fresh and random models\").\n"
                     "Tensors are float32 unless --dtype says otherwise; the model is written a tensor at a time,\n"
                     "so memory holds one tensor, not the model.\n",
                     opts, CLI_N(opts), NULL, NULL, 0, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    if (!out) return cli_usage_error("init", "--out FILE is required");
    o.dtype = cli_dtype(dtype ? dtype : "f32");
    rwkv_error err;
    if (rwkv_init_checkpoint(&o, out, &err) != RWKV_OK) return cli_report(&err);
    fprintf(stderr, "wrote %s (%s, %d layers x %d, vocab %d, %s)\n", out, o.arch, o.n_layer, o.n_embd, o.n_vocab,
            dtype ? dtype : "f32");
    return 0;
}
