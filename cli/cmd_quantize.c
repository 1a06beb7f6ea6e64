#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "rwkv_quant.h"

static void help(void) {
    printf("usage: rwkv quantize IN OUT --type q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|q5_k|q6_k|f16|f32 [--head TYPE]\n"
           "                         [--tokenizer FILE]\n\n"
           "Writes a checkpoint (safetensors, .pth, rwkv.cpp or GGUF file) with block-quantized layer\n"
           "matrices (docs/quantization.md): RWKV-4/5 as an rwkv.cpp model file (ggmf, version 101),\n"
           "RWKV-6/7 as a GGUF file laid out as llama.cpp's converter writes it; rwkv.cpp / llama.cpp\n"
           "load these files and rwkv.c loads them back. The k-quants need GGUF. Vectors stay f32,\n"
           "head.weight becomes q8_0 (q6_k for the k-quants; --head overrides). A GGUF file carries\n"
           "the World vocabulary: --tokenizer names it when the input file carries none.\n"
           "The output is written atomically.\n");
}

int cmd_quantize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    const char *paths[2] = {0};
    int np = 0, have_type = 0;
    rwkv_quant_type type = RWKV_QUANT_Q8_0, head = RWKV_QUANT_DEFAULT;
    const char *tokenizer = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0) {
            if (i + 1 >= argc) return cli_usage_error("quantize", "--tokenizer expects a file");
            tokenizer = argv[++i];
        } else if (strcmp(argv[i], "--type") == 0 || strcmp(argv[i], "--head") == 0) {
            const char *opt = argv[i], *v = i + 1 < argc ? argv[++i] : "";
            rwkv_quant_type t;
            if (rwkv_quant_type_parse(v, &t))
                return cli_usage_error("quantize", "%s expects q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, f16 or f32, got '%s'", opt, v);
            if (opt[2] == 't') type = t, have_type = 1;
            else head = t;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("quantize", "unknown option '%s'", argv[i]);
        } else if (np < 2) {
            paths[np++] = argv[i];
        } else {
            return cli_usage_error("quantize", "too many arguments");
        }
    }
    if (np != 2) return cli_usage_error("quantize", "expected IN and OUT paths");
    if (!have_type) return cli_usage_error("quantize", "--type is required");
    rwkv_error err;
    rwkv_quant_options opts = {type, head, tokenizer};
    if (rwkv_quantize_opts(paths[0], paths[1], &opts, &err) != RWKV_OK) return cli_report(&err);
    fprintf(stderr, "wrote %s (%s)\n", paths[1], rwkv_quant_type_name(type));
    return 0;
}
