/* rwkv — the command-line tool: one subcommand per file, dispatched here. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_command commands[] = {
    {"info", "print a checkpoint's format, version, shape, parameters and dtypes", cmd_info},
    {"convert", "write a checkpoint as safetensors (official key names) or a transformers folder", cmd_convert},
    {"init", "write a freshly initialised model (RWKV-4, RWKV-7 or the GPT baseline)", cmd_init},
    {"train", "train RWKV-4, RWKV-7 or the GPT baseline on a text or token file, CPU or CUDA (resumable)", cmd_train},
    {"tokenize", "text on stdin -> token ids on stdout (--tokenizer FILE)", cmd_tokenize},
    {"detokenize", "token ids on stdin -> bytes on stdout (--tokenizer FILE)", cmd_detokenize},
    {"generate", "generate text from a prompt (sampling, stop strings, state files)", cmd_generate},
    {"chat", "interactive chat (Raven or World format), state carried across turns", cmd_chat},
    {"eval", "perplexity / bits per byte over a text file, or LAMBADA accuracy and perplexity", cmd_eval},
    {"bench", "decode / prefill speed vs the machine's measured bandwidth and FMA peak", cmd_bench},
    {"serve", "an OpenAI-compatible HTTP server: batched decoding, cached conversation states", cmd_serve},
    {"quantize", "write a block-quantized model (Q8_0, Q4_K, ...): rwkv.cpp file (v4/v5) or GGUF (v6/v7)", cmd_quantize},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
    fprintf(f, "usage: rwkv COMMAND [options]   (rwkv COMMAND --help for details)\n\ncommands:\n");
    for (int i = 0; i < n_commands; i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    cli_signals_init();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    cli_catch_bus_errors();
    for (int i = 0; i < n_commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "rwkv: unknown command '%s' (see 'rwkv --help')\n", argv[1]);
    return 2;
}
