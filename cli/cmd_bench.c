#include <stdio.h>

#include "cli.h"
#include "rwkv_bench.h"

int cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    int json = 0;
    rwkv_bench_options o = {0};
    cli_opt opts[] = {
        CLI_OPT_MODEL(&model, "checkpoint (safetensors, .pth or rwkv.cpp file)"),
        CLI_OPT_THREADS(&o.threads),
        CLI_OPT_JSON(&json, "print one JSON object instead of the table"),
        {"--tokens", 0, CLI_INT, &o.decode_tokens, 1, 1000000, "N", "timed decode tokens", "64", NULL, NULL, NULL},
        {"--prompt", 0, CLI_INT, &o.prompt_tokens, 1, 1000000, "N", "prefill prompt length", "512", NULL, NULL, NULL},
        {"--no-machine", 0, CLI_FLAG, &o.skip_machine, 0, 0, NULL, "skip the bandwidth / FMA measurements", "", NULL,
         NULL, NULL},
    };
    cli_spec spec = {"bench", "rwkv bench -m MODEL [-t THREADS] [--json] [--tokens N] [--prompt N] [--no-machine]",
                     "Measures decode (RNN mode, ms/token: median of N timed tokens after a warm-up), prefill\n"
                     "(sequence mode, tokens/s for an N-token prompt), the weight bytes one token reads, and in\n"
                     "the same run the machine's read bandwidth and float32 FMA peak at the same thread count;\n"
                     "prints decode as a fraction of the bandwidth floor and prefill as a fraction of the peak.\n"
                     "The kernel variant follows RWKV_KERNELS=scalar|avx2|avx512 (default: the best the CPU has).\n",
                     opts, CLI_N(opts), NULL, NULL, 0, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    if (!model) return cli_usage_error("bench", "-m MODEL is required");
    rwkv_bench_result r;
    rwkv_error err;
    if (rwkv_bench_run(model, &o, &r, &err) != RWKV_OK) return cli_report(&err);
    if (json) {
        char buf[2048];
        rwkv_bench_json(&r, buf, sizeof buf);
        printf("%s\n", buf);
        return 0;
    }
    printf("model            %s (V=%d C=%d L=%d), weights %s, kernels %s, %d thread%s\n", model, r.n_vocab, r.n_embd,
           r.n_layer, r.dtype, r.kernels, r.threads, r.threads == 1 ? "" : "s");
    printf("decode           %.3f ms/token (median; min %.3f, max %.3f)\n", r.decode_ms_per_token, r.decode_ms_min,
           r.decode_ms_max);
    printf("weights/token    %.1f MB -> %.2f GB/s\n", r.weight_bytes_per_token * 1e-6, r.decode_gbps);
    printf("prefill          %.1f tokens/s (%.1f GFLOP/s)\n", r.prefill_tokens_per_s, r.prefill_gflops);
    if (r.machine_read_gbps > 0) {
        printf("machine          read %.2f GB/s (best %.2f), fp32 FMA peak %.1f GFLOP/s (best %.1f)\n",
               r.machine_read_gbps, r.machine_read_gbps_best, r.machine_fma_gflops, r.machine_fma_gflops_best);
        printf("fractions        decode %.1f%% of the bandwidth floor, prefill %.1f%% of the FMA peak\n",
               100 * r.decode_fraction_of_bandwidth, 100 * r.prefill_fraction_of_peak);
    }
    return 0;
}
