/*
 * rwkv_bench.h — the benchmark behind `rwkv bench` (same conventions as
 * rwkv.h: status + optional error, never prints, never exits).
 *
 * One run measures, on one thread count and in one process:
 *   - decode: milliseconds per token in RNN mode (median over many tokens,
 *     after a warm-up), and the weight bytes one token reads, hence GB/s;
 *   - prefill: tokens per second for a prompt of `prompt_tokens` tokens in
 *     sequence mode (median of `prefill_repeats` runs from a fresh state);
 *   - optionally a batched decode: `batch` sequences advanced one token each
 *     per rwkv_eval_batch step, as aggregate tokens per second, and the same
 *     with the next tokens drawn by rwkv_eval_batch_sample;
 *   - the machine: its read bandwidth (large buffer sum) and float32 FMA
 *     peak, both measured now with the same thread count, interleaved with
 *     the decode steps / prefill runs so that on a shared machine both
 *     sides of each fraction see the same conditions (medians of both),
 * and reports decode GB/s as a fraction of the measured bandwidth and
 * prefill GFLOP/s as a fraction of the measured FMA peak.
 */
#ifndef RWKV_BENCH_H
#define RWKV_BENCH_H

#include "rwkv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rwkv_bench_options {
    int threads;         /* <= 0: all cores */
    int decode_tokens;   /* timed decode steps (<= 0: 64) */
    int warmup_tokens;   /* untimed decode steps first (<= 0: 8) */
    int prompt_tokens;   /* prefill prompt length (<= 0: 512) */
    int prefill_repeats; /* prefill runs (<= 0: 5) */
    int skip_machine;    /* 1: do not measure bandwidth / FMA peak (fractions = 0) */
    const char *device;    /* NULL or "cpu"; "cuda[:N]": the model on the GPU, the
                              machine figures become the GPU's copy bandwidth and bf16 peak */
    const char *precision; /* the GPU's: NULL or "fp32", or "bf16" */
    int batch;             /* > 1: also a batched decode, one token into each of `batch` states per
                              rwkv_eval_batch step (median of decode_tokens / 4 steps, at least 5),
                              with the model loaded again as `rwkv serve` loads it (on the CPU:
                              pack_weights) after the decode and prefill measurements */
} rwkv_bench_options;

typedef struct rwkv_bench_result {
    int threads;
    char dtype[16];   /* weight storage type of the matrices, "mixed" when they differ */
    char kernels[16]; /* kernel variant used: "scalar", "avx2", "avx512"; "cuda" on the GPU */
    int n_vocab, n_embd, n_layer;
    double decode_ms_per_token;     /* median */
    double decode_ms_min, decode_ms_max;
    double prefill_tokens_per_s;    /* median */
    double prefill_gflops;          /* matrix FLOPs of the prompt / median time */
    double weight_bytes_per_token;  /* bytes of weights one decode step reads */
    double decode_gbps;             /* weight_bytes_per_token / decode time */
    double machine_read_gbps;       /* median of read passes interleaved with the decode steps */
    double machine_read_gbps_best;  /* best of those passes */
    double machine_fma_gflops;      /* median of FMA-peak runs interleaved with the prefill runs
                                       (on the GPU: its bf16 matrix-product peak, measured once) */
    double machine_fma_gflops_best; /* best of those runs */
    double decode_fraction_of_bandwidth; /* decode_gbps / machine_read_gbps */
    double prefill_fraction_of_peak;     /* prefill_gflops / machine_fma_gflops */
    /* the spread of the repeated runs: quartiles of the decode steps, the
     * slowest and fastest prefill run */
    double decode_ms_p25, decode_ms_p75;
    double prefill_tokens_per_s_min, prefill_tokens_per_s_max;
    /* what ran where: the CPU (brand string; x86 display family and model,
     * -1 elsewhere), the integer dot-product variant of the block formats
     * (of the k-quants: the kernel table; "" when the weights do not use
     * it), the activations of the block formats' and k-quants' decode
     * ("int8" or "f32"; "" for other weights), and the
     * 1-minute load average before and after the run (-1: unknown) */
    char cpu[64];
    int cpu_family, cpu_model;
    char int8_kernels[16];
    char activations[8];
    double load_start, load_end;
    int batch;                      /* the batched decode's sequences (0: not measured) */
    double batch_ms_per_step;       /* median time of one rwkv_eval_batch step */
    double batch_tokens_per_s;      /* batch / batch_ms_per_step: tokens/s of all sequences together */
    double batch_draw_ms_per_step;  /* the same with each row's next token drawn (rwkv_eval_batch_sample:
                                       temperature 1, top_p 0.85; on a GPU without the logits' download) */
    double batch_draw_tokens_per_s;
    /* the share of weight_bytes_per_token decode reads from the copies of
     * its matrices grouped 16 rows at a time at load (docs/quantization.md;
     * 0: none, always on the GPU) */
    double grouped_fraction;
} rwkv_bench_result;

/* Loads the model at `path` and benchmarks it (opts may be NULL). */
RWKV_API rwkv_status rwkv_bench_run(const char *path, const rwkv_bench_options *opts, rwkv_bench_result *out,
                           rwkv_error *err);

/* The GPU's memory bandwidth (a device copy, bytes read + written per
 * second) and bf16 matrix-product peak, measured now. */
RWKV_API rwkv_status rwkv_bench_device_peaks(const char *device, double *read_gbps, double *bf16_gflops,
                                             rwkv_error *err);

/* The result as one JSON object (no newline) into buf; returns the length
 * snprintf would have written. */
RWKV_API int rwkv_bench_json(const rwkv_bench_result *r, char *buf, size_t size);

/* ---- training on a GPU (`rwkv bench --device cuda --train`, docs/cuda.md) ----
 * Full RWKV-4 training steps (zero gradients, forward, backward, gradient
 * norm, clipped Adam; nothing waits for the device inside a step) on random
 * parameters and tokens, after two warm-up steps, at the shapes of the
 * RWKV-4 Pile models. Needs a build with CUDA and a device
 * (RWKV_ERR_UNSUPPORTED otherwise, one line saying which). */
typedef struct rwkv_train_bench_options {
    const char *device;    /* "cuda" (NULL) or "cuda:N" */
    const char *precision; /* "bf16" (NULL) or "fp32" */
    int batch, ctx, steps; /* <= 0: 32, 1024, 5 timed steps */
    /* Data parallel (docs/multigpu.md): world_size > 0 makes this process rank `rank` of that many,
     * meeting at `rendezvous`; every rank trains `batch` sequences per step (the batch is per GPU),
     * the gradients all-reduced as by `rwkv train --gpus`, and tokens/s counts every rank's tokens.
     * The device-time split and device memory are not measured then (zeros). */
    int world_size, rank;
    const char *rendezvous;
} rwkv_train_bench_options;

typedef struct rwkv_train_bench_result {
    const char *shape; /* "169M", "430M", "1.5B" */
    int n_vocab, n_embd, n_layer, batch, ctx;
    const char *precision;
    double step_ms, tokens_per_s;
    double mfu; /* tokens/s x 6 (V C + 13 C^2 L) / the peak given */
    /* device time of one more step's forward + backward (CUDA events) */
    double gemm_ms, wkv_ms, other_ms;            /* other = everything else */
    double norm_ms, shift_ms, elem_ms, loss_ms;  /* parts of other: layer norms, token shifts,
                                                     element-wise and embedding, cross-entropy */
    double device_gib; /* device memory of the training context */
    double loss;       /* of the last step (random data: about ln V) */
} rwkv_train_bench_result;

/* The name of benchmark shape i (0, 1, 2), NULL past the last. */
RWKV_API const char *rwkv_train_bench_shape(int i);
/* The bf16 matrix-product peak of the device (GFLOP/s), measured now. */
RWKV_API rwkv_status rwkv_train_bench_peak(const char *device, double *gflops, rwkv_error *err);
/* Benchmarks the named shape; MFU is quoted against peak_gflops. */
RWKV_API rwkv_status rwkv_train_bench_run(const char *shape, const rwkv_train_bench_options *opts, double peak_gflops,
                                          rwkv_train_bench_result *out, rwkv_error *err);

#ifdef __cplusplus
}
#endif
#endif /* RWKV_BENCH_H */
