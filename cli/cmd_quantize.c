/* rwkv quantize: a checkpoint -> block-quantized matrices, as an rwkv.cpp file (RWKV-4/5) or GGUF (RWKV-6/7). */
#include <stdio.h>

#include "cli.h"
#include "rwkv_quant.h"

#define HEAD_TYPES "q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|q5_k|q6_k|f16|f32"
#define QUANT_TYPES HEAD_TYPES "|q4_k_m"

int cmd_quantize(int argc, char **argv) {
    const char *type_name = NULL, *head_name = NULL, *tokenizer = NULL, *paths[2] = {0};
    cli_opt opts[] = {
        {"--type", 0, CLI_CHOICE, &type_name, 0, 0, "T", "type of the layer matrices (required)", "", QUANT_TYPES,
         NULL, NULL},
        {"--head", 0, CLI_CHOICE, &head_name, 0, 0, "T", "type of head.weight",
         "q8_0 for the block types, q6_k for the k-quants", HEAD_TYPES, NULL, NULL},
        {"--tokenizer", 0, CLI_STR, &tokenizer, 0, 0, "FILE",
         "GGUF output: the World vocabulary to store (or 'bytes')", "the one IN carries", NULL, NULL, NULL},
    };
    cli_spec spec = {"quantize", "rwkv quantize IN OUT --type TYPE [--head TYPE] [--tokenizer FILE]",
                     "Writes a checkpoint (safetensors, .pth, rwkv.cpp or GGUF file) with block-quantized layer\n"
                     "matrices (docs/quantization.md): RWKV-4/5 as an rwkv.cpp model file (ggmf, version 101),\n"
                     "RWKV-6/7 as a GGUF file laid out as llama.cpp's converter writes it; rwkv.cpp / llama.cpp\n"
                     "load these files and rwkv.c loads them back. The k-quants (q4_k, q5_k, q6_k and q4_k_m,\n"
                     "llama.cpp's Q4_K_M mix of Q4_K and Q6_K) need GGUF.\n"
                     "Vectors stay f32; a GGUF file carries the World vocabulary (--tokenizer names it when IN\n"
                     "carries none). The output is written atomically.\n",
                     opts, CLI_N(opts), NULL, paths, 2, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    if (spec.n_args != 2) return cli_usage_error("quantize", "expected IN and OUT paths");
    if (!type_name) return cli_usage_error("quantize", "--type is required");
    rwkv_quant_options o = {RWKV_QUANT_Q8_0, RWKV_QUANT_DEFAULT, tokenizer};
    rwkv_quant_type_parse(type_name, &o.type); /* the table accepted only names it parses */
    if (head_name) rwkv_quant_type_parse(head_name, &o.head_type);
    rwkv_error err;
    if (rwkv_quantize_opts(paths[0], paths[1], &o, &err) != RWKV_OK) return cli_report(&err);
    fprintf(stderr, "wrote %s (%s)\n", paths[1], rwkv_quant_type_name(o.type));
    return 0;
}
