/* rwkv convert: any loadable checkpoint -> safetensors with the official key names. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_convert(int argc, char **argv) {
    const char *dtype = NULL, *paths[2] = {0};
    cli_opt opts[] = {
        {"--dtype", 0, CLI_CHOICE, &dtype, 0, 0, "T", "convert every float tensor to this type", "keep each tensor's",
         "f32|f16|bf16", NULL, NULL},
    };
    cli_spec spec = {"convert", "rwkv convert IN OUT.safetensors [--dtype f32|f16|bf16]",
                     "Writes any checkpoint rwkv.c can load (.pth, safetensors, rwkv.cpp) as safetensors with the\n"
                     "official RWKV key names and raw parameter values. Without --dtype every tensor keeps its\n"
                     "dtype (rwkv.cpp block-quantized tensors become f32). The output is written atomically.\n",
                     opts, CLI_N(opts), NULL, paths, 2, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    if (spec.n_args != 2) return cli_usage_error("convert", "expected IN and OUT paths");
    rwkv_dtype dt = !dtype                     ? RWKV_DTYPE_KEEP
                    : strcmp(dtype, "f32") == 0 ? RWKV_DTYPE_F32
                    : strcmp(dtype, "f16") == 0 ? RWKV_DTYPE_F16
                                                : RWKV_DTYPE_BF16;
    rwkv_error err;
    if (rwkv_convert_to_safetensors(paths[0], paths[1], dt, &err) != RWKV_OK) return cli_report(&err);
    fprintf(stderr, "wrote %s\n", paths[1]);
    return 0;
}
