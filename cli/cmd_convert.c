/* rwkv convert: any loadable checkpoint -> safetensors with the official key
 * names, or (--layout hf) a Hugging Face transformers model folder. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_convert(int argc, char **argv) {
    const char *dtype = NULL, *layout = NULL, *paths[2] = {0};
    cli_opt opts[] = {
        {"--dtype", 0, CLI_CHOICE, &dtype, 0, 0, "T", "convert every float tensor to this type", "keep each tensor's",
         "f32|f16|bf16", NULL, NULL},
        {"--layout", 0, CLI_CHOICE, &layout, 0, 0, "L",
         "official: one safetensors file; hf: a transformers folder (RWKV-4)", "official", "official|hf", NULL, NULL},
    };
    cli_spec spec = {"convert", "rwkv convert IN OUT [--dtype f32|f16|bf16] [--layout official|hf]",
                     "Writes any checkpoint rwkv.c can load (.pth, safetensors, rwkv.cpp, a transformers folder)\n"
                     "as safetensors with the official RWKV key names and raw parameter values. With --layout hf,\n"
                     "OUT is a folder (created when missing) that transformers loads with\n"
                     "RwkvForCausalLM.from_pretrained: config.json and model.safetensors with transformers' names;\n"
                     "RWKV-4 models only. Without --dtype every tensor keeps its dtype (rwkv.cpp block-quantized\n"
                     "tensors become f32). Files are written atomically.\n",
                     opts, CLI_N(opts), NULL, paths, 2, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    if (spec.n_args != 2) return cli_usage_error("convert", "expected IN and OUT paths");
    rwkv_dtype dt = cli_dtype(dtype);
    rwkv_error err;
    int hf = layout && strcmp(layout, "hf") == 0;
    rwkv_status s = hf ? rwkv_convert_to_hf(paths[0], paths[1], dt, &err)
                       : rwkv_convert_to_safetensors(paths[0], paths[1], dt, &err);
    if (s != RWKV_OK) return cli_report(&err);
    fprintf(stderr, "wrote %s\n", paths[1]);
    return 0;
}
