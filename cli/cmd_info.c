#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char about[] =
    "Prints the checkpoint's format (detected from its bytes), RWKV version, vocabulary size V,\n"
    "width C, layers L, FFN width F, attention width A, for RWKV-5/6/7 the heads (count x size),\n"
    "the low-rank (LoRA) sizes and the ln_x GroupNorm epsilon, parameter count, weight dtype and file size.\n\n"
    "For a GPT baseline checkpoint (rwkv train --arch gpt; recognised from the file): the vocabulary,\n"
    "width, layers, heads, MLP width, context (positions of the learned position table), the\n"
    "parameter count (of which the position table) and the KV cache per position.\n";

static void gpt_info(const char *path, const rwkv_model_info *mi) {
    const rwkv_model_info i = *mi;
    size_t kv = 2 * (size_t)i.n_layer * (size_t)i.n_embd * sizeof(float);
    printf("file:        %s\n", path);
    printf("arch:        GPT baseline (GPT-2-style transformer)\n");
    printf("n_vocab:     %d\n", i.n_vocab);
    printf("n_embd:      %d\n", i.n_embd);
    printf("n_layer:     %d\n", i.n_layer);
    printf("heads:       %d x %d (n_head x head_size)\n", i.n_head, i.n_embd / i.n_head);
    printf("n_ffn:       %d\n", i.n_ffn);
    printf("n_ctx:       %d (learned positions: the longest context)\n", i.n_ctx);
    printf("parameters:  %lld (%.2fM), of which the position table %lld\n", (long long)i.n_params,
           (double)i.n_params / 1e6, (long long)i.n_params_pos);
    printf("dtype:       f32 (in memory)\n");
    printf("file size:   %lld bytes\n", (long long)i.file_bytes);
    printf("kv cache:    %zu bytes per position, %zu at the full context\n", kv, kv * (size_t)i.n_ctx);
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    cli_spec spec = {"info", "rwkv info MODEL", about, NULL, 0, NULL, &path, 1, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    if (spec.n_args != 1) return cli_usage_error("info", "expected exactly one MODEL path");
    rwkv_error err;
    rwkv_model *m;
    if (rwkv_model_load(path, &m, &err) != RWKV_OK) return cli_report(&err);
    rwkv_model_info i;
    rwkv_model_get_info(m, &i);
    if (i.arch == RWKV_ARCH_GPT) {
        gpt_info(path, &i);
        rwkv_model_free(m);
        return 0;
    }
    printf("file:        %s\n", path);
    printf("format:      %s%s\n", i.format, strcmp(i.layout, "official") ? " (transformers layout)" : "");
    printf("version:     RWKV-%s\n", i.version);
    printf("n_vocab:     %d\n", i.n_vocab);
    printf("n_embd:      %d\n", i.n_embd);
    printf("n_layer:     %d\n", i.n_layer);
    printf("n_ffn:       %d\n", i.n_ffn);
    printf("dim_att:     %d\n", i.dim_att);
    if (i.n_head) printf("heads:       %d x %d (n_head x head_size)\n", i.n_head, i.head_size);
    if (i.d_mix_lora) printf("lora mix:    %d\n", i.d_mix_lora);
    if (i.d_decay_lora) printf("lora decay:  %d\n", i.d_decay_lora);
    if (i.d_aaa_lora) printf("lora a:      %d\n", i.d_aaa_lora);
    if (i.d_mv_lora) printf("lora v:      %d\n", i.d_mv_lora);
    if (i.d_gate_lora) printf("lora gate:   %d\n", i.d_gate_lora);
    if (i.gn_eps > 0) printf("ln_x eps:    %g\n", (double)i.gn_eps);
    printf("parameters:  %lld (%.2fM)\n", (long long)i.n_params, (double)i.n_params / 1e6);
    printf("dtype:       %s\n", i.dtype);
    printf("file size:   %lld bytes\n", (long long)i.file_bytes);
    printf("state:       %zu floats\n", i.state_floats);
    rwkv_model_free(m);
    return 0;
}
