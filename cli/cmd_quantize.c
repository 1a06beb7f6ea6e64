/* rwkv quantize: an RWKV-4 checkpoint -> an rwkv.cpp file with block-quantized matrices. */
#include <stdio.h>

#include "cli.h"
#include "rwkv_quant.h"

#define QUANT_TYPES "q8_0|q4_0|q4_1|q5_0|q5_1|f16|f32"

int cmd_quantize(int argc, char **argv) {
    const char *type_name = NULL, *head_name = NULL, *paths[2] = {0};
    cli_opt opts[] = {
        {"--type", 0, CLI_CHOICE, &type_name, 0, 0, "T", "type of the layer matrices (required)", "", QUANT_TYPES,
         NULL, NULL},
        {"--head", 0, CLI_CHOICE, &head_name, 0, 0, "T", "type of head.weight", "q8_0 for the block types",
         QUANT_TYPES, NULL, NULL},
    };
    cli_spec spec = {"quantize", "rwkv quantize IN OUT --type " QUANT_TYPES " [--head TYPE]",
                     "Writes an RWKV-4 checkpoint (safetensors, .pth or rwkv.cpp file) as an rwkv.cpp model file\n"
                     "(ggmf, version 101) whose layer matrices are block-quantized (docs/quantization.md);\n"
                     "rwkv.cpp loads these files and rwkv.c loads them back. emb.weight keeps its float type,\n"
                     "vectors stay f32, head.weight becomes q8_0 for the block types (--head overrides).\n"
                     "The output is written atomically.\n",
                     opts, CLI_N(opts), NULL, paths, 2, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    if (spec.n_args != 2) return cli_usage_error("quantize", "expected IN and OUT paths");
    if (!type_name) return cli_usage_error("quantize", "--type is required");
    rwkv_quant_type type, head = RWKV_QUANT_DEFAULT;
    rwkv_quant_type_parse(type_name, &type); /* the table accepted only names it parses */
    if (head_name) rwkv_quant_type_parse(head_name, &head);
    rwkv_error err;
    if (rwkv_quantize_ex(paths[0], paths[1], type, head, &err) != RWKV_OK) return cli_report(&err);
    fprintf(stderr, "wrote %s (%s)\n", paths[1], rwkv_quant_type_name(type));
    return 0;
}
