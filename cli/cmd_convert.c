#include <stdio.h>
#include <string.h>

#include "cli.h"

static void help(void) {
    printf("usage: rwkv convert IN OUT.safetensors [--dtype f32|f16|bf16]\n\n"
           "Writes any checkpoint rwkv.c can load (.pth, safetensors, rwkv.cpp) as safetensors with the\n"
           "official RWKV key names and raw parameter values. Without --dtype every tensor keeps its\n"
           "dtype (rwkv.cpp block-quantized tensors become f32). The output is written atomically.\n");
}

int cmd_convert(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    const char *paths[2] = {0};
    int np = 0;
    rwkv_dtype dt = RWKV_DTYPE_KEEP;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dtype") == 0) {
            const char *v = i + 1 < argc ? argv[++i] : "";
            if (strcmp(v, "f32") == 0) dt = RWKV_DTYPE_F32;
            else if (strcmp(v, "f16") == 0) dt = RWKV_DTYPE_F16;
            else if (strcmp(v, "bf16") == 0) dt = RWKV_DTYPE_BF16;
            else return cli_usage_error("convert", "--dtype expects f32, f16 or bf16, got '%s'", v);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("convert", "unknown option '%s'", argv[i]);
        } else if (np < 2) {
            paths[np++] = argv[i];
        } else {
            return cli_usage_error("convert", "too many arguments");
        }
    }
    if (np != 2) return cli_usage_error("convert", "expected IN and OUT paths");
    rwkv_error err;
    if (rwkv_convert_to_safetensors(paths[0], paths[1], dt, &err) != RWKV_OK) return cli_report(&err);
    fprintf(stderr, "wrote %s\n", paths[1]);
    return 0;
}
