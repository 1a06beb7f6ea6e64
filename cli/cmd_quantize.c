#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "rwkv_quant.h"

static void help(void) {
    printf("usage: rwkv quantize IN OUT --type q8_0|q4_0|q4_1|q5_0|q5_1|f16|f32 [--head TYPE]\n\n"
           "Writes an RWKV-4 checkpoint (safetensors, .pth or rwkv.cpp file) as an rwkv.cpp model file\n"
           "(ggmf, version 101) whose layer matrices are block-quantized (docs/quantization.md);\n"
           "rwkv.cpp loads these files and rwkv.c loads them back. emb.weight keeps its float type,\n"
           "vectors stay f32, head.weight becomes q8_0 for the block types (--head overrides).\n"
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
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--type") == 0 || strcmp(argv[i], "--head") == 0) {
            const char *opt = argv[i], *v = i + 1 < argc ? argv[++i] : "";
            rwkv_quant_type t;
            if (rwkv_quant_type_parse(v, &t))
                return cli_usage_error("quantize", "%s expects q8_0, q4_0, q4_1, q5_0, q5_1, f16 or f32, got '%s'", opt, v);
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
    if (rwkv_quantize_ex(paths[0], paths[1], type, head, &err) != RWKV_OK) return cli_report(&err);
    fprintf(stderr, "wrote %s (%s)\n", paths[1], rwkv_quant_type_name(type));
    return 0;
}
