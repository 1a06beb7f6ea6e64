#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "launch.h"
#include "rwkv_bench.h"

/* `--device cuda --train`: the training table of the shapes asked for. */
/* --quick: 169M only, batch 8, 3 steps, unless given. */
static void quick_defaults(rwkv_train_bench_options *to, const char **only) {
    to->batch = to->batch > 0 ? to->batch : 8;
    to->steps = to->steps > 0 ? to->steps : 3;
    *only = *only ? *only : "169M";
}

/* The flags of the data-parallel training benchmark. */
typedef struct bench_dist {
    int gpus;
    double one_gpu_tps; /* given to the ranks by --gpus: the figure efficiency is quoted against */
} bench_dist;

/* A rank of `--gpus N` (or of another launcher): rank 0 prints the row. */
static int bench_train_rank(const rwkv_train_bench_options *o, const char *only, const bench_dist *bd) {
    rwkv_train_bench_result r;
    rwkv_error err;
    if (rwkv_train_bench_run(only ? only : "169M", o, 0, &r, &err) != RWKV_OK) return cli_report(&err);
    if (o->rank != 0) return 0;
    const double ideal = bd->one_gpu_tps * o->world_size;
    printf("| %s | %s | %d | %d x %d | %.1f | %.0f | %.0f | %.1f%% |\n", r.shape, r.precision, o->world_size, r.batch,
           r.ctx, r.step_ms, r.tokens_per_s, ideal, ideal > 0 ? 100 * r.tokens_per_s / ideal : 0.0);
    fflush(stdout);
    return 0;
}

/* --gpus N: per shape, the one-GPU figure here, then N ranks. */
static int bench_train_gpus(int argc, char **argv, const rwkv_train_bench_options *o, const char *only,
                            const bench_dist *bd) {
    const int first = cli_first_gpu(o->device);
    if (first < 0) return cli_usage_error("bench", "--gpus needs --device cuda or cuda:N, not %s", o->device);
    printf("| shape | precision | GPUs | B x T per GPU | step ms | tokens/s | N x one GPU | efficiency |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    int found = 0;
    for (int i = 0; rwkv_train_bench_shape(i); i++) {
        const char *name = rwkv_train_bench_shape(i);
        if (only && strcmp(only, name) != 0) continue;
        found = 1;
        rwkv_train_bench_result r1;
        rwkv_error err;
        if (rwkv_train_bench_run(name, o, 0, &r1, &err) != RWKV_OK) return cli_report(&err);
        printf("| %s | %s | 1 | %d x %d | %.1f | %.0f | %.0f | 100%% |\n", r1.shape, r1.precision, r1.batch, r1.ctx,
               r1.step_ms, r1.tokens_per_s, r1.tokens_per_s);
        fflush(stdout);
        char tps[32];
        snprintf(tps, sizeof tps, "%.1f", r1.tokens_per_s);
        static const char *const drop[] = {"--gpus", "--shape", "--one-gpu-tps", NULL};
        const char *extra[] = {"--shape", name, "--one-gpu-tps", tps, NULL};
        const cli_launch l = {"bench", argc, argv, bd->gpus, first, drop, extra, NULL};
        const int rc = cli_launch_ranks(&l);
        if (rc != 0) return rc;
    }
    if (!found) return cli_usage_error("bench", "--shape must be 169M, 430M or 1.5B, got '%s'", only);
    return 0;
}

static int bench_train(const rwkv_train_bench_options *o, const char *only, int quick) {
    rwkv_train_bench_options to = *o;
    if (quick) quick_defaults(&to, &only);
    rwkv_error err;
    double peak = 0;
    if (rwkv_train_bench_peak(o->device, &peak, &err) != RWKV_OK) return cli_report(&err);
    printf("bf16 GEMM peak (cuBLASLt, 8192^3, random data): %.0f TFLOP/s\n\n", peak * 1e-3);
    printf("| shape | precision | B x T | step ms | tokens/s | MFU | GEMM / WKV / rest ms | rest: LN / shift / "
           "elementwise / loss ms | device GiB | loss |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    int found = 0;
    for (int i = 0; rwkv_train_bench_shape(i); i++) {
        const char *name = rwkv_train_bench_shape(i);
        if (only && strcmp(only, name) != 0) continue;
        found = 1;
        rwkv_train_bench_result r;
        if (rwkv_train_bench_run(name, &to, peak, &r, &err) != RWKV_OK) return cli_report(&err);
        printf("| %s | %s | %d x %d | %.1f | %.0f | %.1f%% | %.1f / %.1f / %.1f | %.1f / %.1f / %.1f / %.1f | %.1f | "
               "%.2f |\n",
               r.shape, r.precision, r.batch, r.ctx, r.step_ms, r.tokens_per_s, 100 * r.mfu, r.gemm_ms, r.wkv_ms,
               r.other_ms, r.norm_ms, r.shift_ms, r.elem_ms, r.loss_ms, r.device_gib, r.loss);
        fflush(stdout);
    }
    if (!found) return cli_usage_error("bench", "--shape must be 169M, 430M or 1.5B, got '%s'", only);
    return 0;
}

/* The table of an inference benchmark: the model, the CPU, decode, prefill,
 * the batched decode, and the machine's figures with the fractions. */
static void print_result(const rwkv_bench_result *r, const char *model, const char *device, int on_gpu) {
    if (on_gpu)
        printf("model            %s (V=%d C=%d L=%d), weights %s on %s\n", model, r->n_vocab, r->n_embd, r->n_layer,
               r->dtype, device);
    else {
        char acts[64] = "";
        if (r->int8_kernels[0])
            snprintf(acts, sizeof acts, ", int8 activations (%s dots%s)", r->int8_kernels,
                     r->grouped_fraction > 0 ? ", 16-row groups" : "");
        else if (r->activations[0]) snprintf(acts, sizeof acts, ", %s activations", r->activations);
        printf("model            %s (V=%d C=%d L=%d), weights %s, kernels %s%s, %d thread%s\n", model, r->n_vocab,
               r->n_embd, r->n_layer, r->dtype, r->kernels, acts, r->threads, r->threads == 1 ? "" : "s");
    }
    printf("cpu              %s (family %d, model %d), load average %.2f -> %.2f\n", r->cpu, r->cpu_family,
           r->cpu_model, r->load_start, r->load_end);
    printf("decode           %.3f ms/token (median; quartiles %.3f-%.3f, min %.3f, max %.3f)\n", r->decode_ms_per_token,
           r->decode_ms_p25, r->decode_ms_p75, r->decode_ms_min, r->decode_ms_max);
    printf("weights/token    %.1f MB -> %.2f GB/s\n", r->weight_bytes_per_token * 1e-6, r->decode_gbps);
    printf("prefill          %.1f tokens/s (%.1f GFLOP/s; runs %.1f-%.1f tokens/s)\n", r->prefill_tokens_per_s,
           r->prefill_gflops, r->prefill_tokens_per_s_min, r->prefill_tokens_per_s_max);
    if (r->batch > 1) {
        printf("batch decode     %d sequences: %.3f ms/step, %.0f tokens/s in all\n", r->batch, r->batch_ms_per_step,
               r->batch_tokens_per_s);
        printf("batch + draw     %d sequences: %.3f ms/step, %.0f tokens/s in all (next tokens drawn %s)\n", r->batch,
               r->batch_draw_ms_per_step, r->batch_draw_tokens_per_s,
               on_gpu ? "on the device, no logits copied" : "from the logits");
    }
    if (r->machine_read_gbps > 0 && on_gpu) {
        printf("device           %s: copy bandwidth %.1f GB/s, bf16 matrix-product peak %.1f TFLOP/s\n", device,
               r->machine_read_gbps, r->machine_fma_gflops * 1e-3);
        printf("fractions        decode %.1f%% of the bandwidth floor, prefill %.2f%% of the bf16 peak\n",
               100 * r->decode_fraction_of_bandwidth, 100 * r->prefill_fraction_of_peak);
    } else if (r->machine_read_gbps > 0) {
        printf("machine          read %.2f GB/s (best %.2f), fp32 FMA peak %.1f GFLOP/s (best %.1f)\n",
               r->machine_read_gbps, r->machine_read_gbps_best, r->machine_fma_gflops, r->machine_fma_gflops_best);
        printf("fractions        decode %.1f%% of the bandwidth floor, prefill %.1f%% of the FMA peak\n",
               100 * r->decode_fraction_of_bandwidth, 100 * r->prefill_fraction_of_peak);
    }
}

int cmd_bench(int argc, char **argv) {
    const char *model = NULL, *device = NULL, *shape = NULL, *precision = NULL;
    int json = 0, train = 0, quick = 0, batch = 0;
    rwkv_bench_options o = {0};
    rwkv_train_bench_options to = {0};
    bench_dist bd = {0, 0.0};
    cli_opt opts[] = {
        CLI_OPT_MODEL(&model, "checkpoint (safetensors, .pth, rwkv.cpp file or transformers folder)"),
        CLI_OPT_THREADS(&o.threads),
        CLI_OPT_JSON(&json, "print one JSON object instead of the table"),
        {"--tokens", 0, CLI_INT, &o.decode_tokens, 1, 1000000, "N", "timed decode tokens", "64", NULL, NULL, NULL},
        {"--prompt", 0, CLI_INT, &o.prompt_tokens, 1, 1000000, "N", "prefill prompt length", "512", NULL, NULL, NULL},
        {"--no-machine", 0, CLI_FLAG, &o.skip_machine, 0, 0, NULL, "skip the bandwidth / FMA measurements", "", NULL,
         NULL, NULL},
        {"--device", 0, CLI_STR, &device, 0, 0, "D", "cpu, cuda or cuda:N (-m: the model on the GPU; or --train)",
         "cpu", NULL, NULL, NULL},
        {"--batch", 0, CLI_INT, &batch, 1, 65536, "N",
         "-m: also a batched decode of N sequences (aggregate tokens/s); --train: sequences per step (32)", "1",
         NULL, NULL, NULL},
        {"--precision", 0, CLI_CHOICE, &precision, 0, 0, "P", "the GPU's matrices: fp32, bf16 or int8 (for --train: bf16)",
         "fp32", "bf16|fp32|int8", NULL, NULL},
        {NULL, 0, CLI_SECTION, NULL, 0, 0, NULL, "training on a GPU (--device cuda --train; no model needed)", NULL,
         NULL, NULL, NULL},
        {"--train", 0, CLI_FLAG, &train, 0, 0, NULL, "RWKV-4 training steps at the 169M, 430M and 1.5B shapes", "",
         NULL, NULL, NULL},
        {"--shape", 0, CLI_CHOICE, &shape, 0, 0, "S", "only this shape", "all", "169M|430M|1.5B", NULL, NULL},
        {"--ctx", 0, CLI_INT, &to.ctx, 1, 1 << 20, "N", "tokens per sequence", "1024", NULL, NULL, NULL},
        {"--steps", 0, CLI_INT, &to.steps, 1, 100000, "N", "timed steps", "5", NULL, NULL, NULL},
        {"--quick", 0, CLI_FLAG, &quick, 0, 0, NULL, "169M only, batch 8, 3 steps (a smoke run)", "", NULL, NULL,
         NULL},
        {"--gpus", 0, CLI_INT, &bd.gpus, 1, 4096, "N", "data parallel on N GPUs from --device cuda:K on (--batch per\n"
         "GPU): tokens/s against N x one GPU's (docs/multigpu.md)", "", NULL, NULL, NULL},
        {"--rank", 0, CLI_INT, &to.rank, 0, 4095, "R", "with --world, --rendezvous: a rank another launcher started",
         NULL, NULL, NULL, NULL},
        {"--world", 0, CLI_INT, &to.world_size, 1, 4096, "N", "the number of ranks", "", NULL, NULL, NULL},
        {"--rendezvous", 0, CLI_STR, &to.rendezvous, 0, 0, "ADDR", "HOST:PORT or file:PATH where the ranks meet", "",
         NULL, NULL, NULL},
        {"--one-gpu-tps", 0, CLI_DOUBLE, &bd.one_gpu_tps, 0, 1e12, "X", "a rank's reference: one GPU's tokens/s",
         "", NULL, NULL, NULL},
    };
    cli_spec spec = {"bench",
                     "rwkv bench -m MODEL [-t THREADS] [--json] [--tokens N] [--prompt N] [--no-machine]\n"
                     "       rwkv bench -m MODEL --device cuda[:N] [--precision P] [--batch N] [--tokens N] [--prompt N]\n"
                     "       rwkv bench --device cuda[:N] --train [--shape S] [--batch N] [--ctx N] [--steps N]\n"
                     "                  [--precision P] [--quick] [--gpus N]",
                     "Measures decode (RNN mode, ms/token: median of N timed tokens after a warm-up), prefill\n"
                     "(sequence mode, tokens/s for an N-token prompt), the weight bytes one token reads, and in\n"
                     "the same run the machine's read bandwidth and float32 FMA peak at the same thread count;\n"
                     "prints decode as a fraction of the bandwidth floor and prefill as a fraction of the peak.\n"
                     "The kernel variant follows RWKV_KERNELS=scalar|avx2|avx512 (default: the best the CPU has);\n"
                     "the block formats (q8_0, q4_0, q4_1, q5_0, q5_1) decode with int8 activations unless\n"
                     "RWKV_ACTIVATIONS=f32. Also reported: the CPU, the spread of the timed runs and the load average.\n"
                     "-m MODEL --device cuda runs the same on the GPU (any RWKV version), against the GPU's copy\n"
                     "bandwidth and bf16 matrix-product peak measured in the same run. --batch N adds a batched\n"
                     "decode: N sequences advanced one token each per step, as aggregate tokens/s, with the model\n"
                     "loaded again as `rwkv serve` loads it (on the CPU its f32/f16/bf16 matrices packed once).\n"
                     "--device cuda --train times full RWKV-4 training steps on the GPU (random weights and tokens):\n"
                     "tokens/s, MFU against the bf16 matrix-product peak measured in the same run, the device time\n"
                     "of a step split into GEMM / WKV / the rest, and device memory (docs/cuda.md).\n",
                     opts, CLI_N(opts), NULL, NULL, 0, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    const int on_gpu = device && strcmp(device, "cpu") != 0;
    if (train && !on_gpu) return cli_usage_error("bench", "--train needs --device cuda (the GPU training benchmark)");
    if (on_gpu && !train && !model)
        return cli_usage_error("bench", "--device %s needs -m MODEL (inference) or --train", device);
    if ((bd.gpus || to.world_size) && !train)
        return cli_usage_error("bench", "--gpus and --world need --train (the GPU training benchmark)");
    if (train) {
        to.batch = batch;
        to.device = device;
        to.precision = precision;
        if (quick && (bd.gpus || to.world_size)) quick_defaults(&to, &shape);
        if (bd.gpus) return bench_train_gpus(argc, argv, &to, shape, &bd);
        if (to.world_size) return bench_train_rank(&to, shape, &bd);
        return bench_train(&to, shape, quick);
    }
    if (!model) return cli_usage_error("bench", "-m MODEL is required");
    o.device = device;
    o.precision = precision;
    o.batch = batch;
    rwkv_bench_result r;
    rwkv_error err;
    if (rwkv_bench_run(model, &o, &r, &err) != RWKV_OK) return cli_report(&err);
    if (json) {
        char buf[2048];
        rwkv_bench_json(&r, buf, sizeof buf);
        printf("%s\n", buf);
        return 0;
    }
    print_result(&r, model, device, on_gpu);
    return 0;
}
