/* The benchmark behind `rwkv bench` (include/rwkv_bench.h). Timings use
 * CLOCK_MONOTONIC; decode steps are timed one by one and the median is
 * reported, so a step disturbed by another process does not move it. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/dot_int8.h"
#include "kernels/kernels.h"
#include "core/machine.h"
#include "model/load.h"
#include "model/model.h"
#include "rwkv_sample.h"
#include "rwkv_bench.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* OpenMP threads (the machine measurements use OpenMP) spin for a while after
 * their parallel region ends; let them go to sleep before timing the model,
 * whose kernels run on their own thread pool, or the two sets of threads
 * would compete for the cores. */
static void settle(void) {
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The q-quantile of sorted v (linear between neighbours). */
static double quantile(const double *v, int n, double q) {
    const double pos = q * (n - 1);
    const int i = (int)pos;
    return i + 1 < n ? v[i] + (pos - i) * (v[i + 1] - v[i]) : v[n - 1];
}

/* The CPU, the kernels and the activations the run used (rwkv_bench_result). */
static void describe_machine(rwkv_bench_result *out, int gpu, int uses_int8) {
    machine_cpu_info cpu;
    machine_cpu(&cpu);
    snprintf(out->cpu, sizeof out->cpu, "%s", cpu.name);
    for (char *c = out->cpu; *c; c++) /* the name goes into JSON as is */
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 32) *c = ' ';
    out->cpu_family = cpu.family;
    out->cpu_model = cpu.model;
    const kernel_ops *k = kernels_active();
    snprintf(out->kernels, sizeof out->kernels, "%s", gpu ? "cuda" : k->name);
    if (!gpu && uses_int8) {
        const int on = kernels_int8_activations();
        snprintf(out->activations, sizeof out->activations, "%s", on ? "int8" : "f32");
        /* the k-quants' 8-bit products exist for the avx512 and avx2 tables (kernels/kquant_q8.h) */
        const int kq8 = !strcmp(k->name, "avx512") || !strcmp(k->name, "avx2");
        if (uses_int8 == 2 && !kq8) snprintf(out->activations, sizeof out->activations, "f32");
        else if (on) snprintf(out->int8_kernels, sizeof out->int8_kernels, "%s", uses_int8 == 2 ? k->name : int8_dot_for(k)->name);
    }
}

/* The bytes of tensor t the CPU model holds: a LoRA read from its file's
 * rows (model_lora) holds those. */
static double held_bytes(const tensor *t) {
    return model_lora_reads_stored(t) ? (double)dtype_bytes_for(t->stored_type, (uint64_t)tensor_numel(t))
                                      : (double)t->nbytes;
}

/* Bytes of weights one decode step reads, and matrix FLOPs per token of the
 * layers (head excluded: prefill computes logits for the last token only). */
/* elem_bytes: bytes a matrix element takes where the model runs (0: as stored). */
static void model_costs(const rwkv_model *m, double elem_bytes, double *bytes, double *layer_flops, double *head_flops,
                        char *dtype, size_t dsize, int *uses_int8) {
    *uses_int8 = 0;
    *bytes = *layer_flops = *head_flops = 0;
    snprintf(dtype, dsize, "%s", "?");
    for (int i = 0; i < m->weights.count; i++) {
        const tensor *t = &m->weights.tensors[i];
        int64_t numel = tensor_numel(t);
        const double nbytes = elem_bytes > 0 ? elem_bytes * (double)numel : held_bytes(t);
        if (t->ndim < 2) {
            *bytes += 4.0 * (double)numel; /* vectors are held as f32 */
            continue;
        }
        if (strcmp(t->name, "emb.weight") == 0) {
            /* one row per token (the GPU keeps the embedding in float32) */
            *bytes += (elem_bytes > 0 ? 4.0 * (double)numel : (double)t->nbytes) / (double)t->shape[0];
        } else if (strcmp(t->name, "head.weight") == 0) {
            *bytes += nbytes;
            *head_flops += 2.0 * (double)numel;
        } else {
            *bytes += nbytes;
            *layer_flops += 2.0 * (double)numel;
        }
        if (strcmp(t->name, "blocks.0.att.key.weight") == 0) {
            snprintf(dtype, dsize, "%s", dtype_name(t->type));
            /* 1: the 32-weight block formats' int8 path, 2: the k-quants' 8-bit path */
            *uses_int8 = int8_dot_handles(t->type) ? 1 : (t->type == DT_Q4_K || t->type == DT_Q5_K || t->type == DT_Q6_K) ? 2 : 0;
        }
    }
}

/* The share of weight_bytes decode reads from grouped copies: the matrices
 * the load's test (matvec_reads_groups) gave one. */
static double grouped_share(const rwkv_model *m, double weight_bytes) {
    double grouped = 0;
    for (int i = 0; i < m->weights.count; i++) {
        const tensor *t = &m->weights.tensors[i];
        if (t->ndim != 2 || strcmp(t->name, "emb.weight") == 0 || t->shape[0] > INT_MAX || t->shape[1] > INT_MAX) continue;
        const int stored = model_lora_reads_stored(t); /* [out][in]: the file's rows */
        const matrix probe = {.type = stored ? t->stored_type : t->type, .rows = (int)t->shape[stored ? 1 : 0],
                              .cols = (int)t->shape[stored ? 0 : 1]};
        if (matvec_reads_groups(kernels_active(), &probe))
            grouped += held_bytes(t);
    }
    return weight_bytes > 0 ? grouped / weight_bytes : 0;
}

/* The GPU's bandwidth and bf16 peak, and the fractions against them. */
static rwkv_status device_fractions(const char *device, rwkv_bench_result *out, rwkv_error *err) {
    double gbps, gflops;
    rwkv_status s = rwkv_bench_device_peaks(device, &gbps, &gflops, err);
    if (s != RWKV_OK) return s;
    out->machine_read_gbps = out->machine_read_gbps_best = gbps;
    out->machine_fma_gflops = out->machine_fma_gflops_best = gflops;
    out->decode_fraction_of_bandwidth = out->decode_gbps / gbps;
    out->prefill_fraction_of_peak = out->prefill_gflops / gflops;
    return RWKV_OK;
}

/* One timed batched step: rwkv_eval_batch into logits, or (draw)
 * rwkv_eval_batch_sample, whose tokens are fed to the next step. */
static rwkv_status batch_step(rwkv_model *m, rwkv_state **st, int *tok, int batch, float *logits, rwkv_draw *draw,
                              uint64_t *lcg, rwkv_error *err) {
    if (!draw) return rwkv_eval_batch(m, st, tok, (size_t)batch, logits, err);
    for (int i = 0; i < batch; i++) {
        *lcg = *lcg * 6364136223846793005ull + 1442695040888963407ull;
        const rwkv_draw d = {1.0, 0.85, 0, (double)(*lcg >> 11) * 0x1p-53, NULL, NULL, 0, 0};
        draw[i] = d;
    }
    rwkv_status s = rwkv_eval_batch_sample(m, st, tok, (size_t)batch, draw, tok, err);
    for (int i = 0; i < batch && s == RWKV_OK; i++)
        if (tok[i] < 0) tok[i] = 0;
    return s;
}

/* `batch` states advanced one token each per step: a few untimed steps,
 * then the median of `steps` timed ones. The logits go to rwkv_logits_alloc
 * memory, as a server on a GPU would use; with draw, they stay where the
 * model is and only the drawn tokens come back. */
static rwkv_status batch_decode(rwkv_model *m, int batch, int steps, const int *tokens, int n_tokens, int draw,
                                double *ms_per_step, rwkv_error *err) {
    rwkv_state **st = calloc((size_t)batch, sizeof *st);
    int *tok = malloc(sizeof(int) * (size_t)batch);
    float *logits = draw ? NULL : rwkv_logits_alloc(m, (size_t)batch, err);
    rwkv_draw *draws = draw ? malloc(sizeof *draws * (size_t)batch) : NULL;
    double *times = malloc(sizeof(double) * (size_t)steps);
    uint64_t lcg = 42;
    rwkv_status s = st && tok && (logits || draws) && times ? RWKV_OK
                                                           : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for a batch");
    for (int i = 0; i < batch && s == RWKV_OK; i++) s = rwkv_state_new(m, &st[i], err);
    for (int i = 0; i < batch; i++) tok[i] = tokens[(size_t)i % (size_t)n_tokens];
    for (int k = -3; k < steps && s == RWKV_OK; k++) {
        if (!draw)
            for (int i = 0; i < batch; i++) tok[i] = tokens[(size_t)(i + 31 * (k + 3)) % (size_t)n_tokens];
        double t0 = now_s();
        s = batch_step(m, st, tok, batch, logits, draws, &lcg, err);
        if (k >= 0) times[k] = now_s() - t0;
    }
    if (s == RWKV_OK) *ms_per_step = 1e3 * median(times, steps);
    for (int i = 0; st && i < batch; i++) rwkv_state_free(st[i]);
    free(st);
    free(tok);
    rwkv_logits_free(m, logits);
    free(draws);
    free(times);
    return s;
}

/* The batched decode with the logits to the host, then with drawn tokens. */
static rwkv_status batch_decodes(rwkv_model *m, int batch, int steps, const int *tokens, int n_tokens,
                                 rwkv_bench_result *out, rwkv_error *err) {
    double plain, drawn;
    rwkv_status s = batch_decode(m, batch, steps, tokens, n_tokens, 0, &plain, err);
    if (s == RWKV_OK) s = batch_decode(m, batch, steps, tokens, n_tokens, 1, &drawn, err);
    if (s != RWKV_OK) return s;
    out->batch = batch;
    out->batch_ms_per_step = plain;
    out->batch_tokens_per_s = batch / (1e-3 * plain);
    out->batch_draw_ms_per_step = drawn;
    out->batch_draw_tokens_per_s = batch / (1e-3 * drawn);
    return RWKV_OK;
}

/* The machine is measured interleaved with the model's work (a read pass
 * every few decode tokens, an FMA-peak run after each prefill), so both see
 * the same conditions on a shared machine; medians of both. */

/* Decode: warm-up, then every step timed on its own (times: decode_tokens
 * entries of scratch). */
static rwkv_status bench_decode(rwkv_model *m, rwkv_state *st, const int *tokens, const rwkv_bench_options *o,
                                float *logits, double *times, rwkv_bench_result *out, rwkv_error *err) {
    machine_read_buffer *mb = o->skip_machine ? NULL : machine_read_buffer_new(o->threads, 0);
    int n_bw = 0;
    double *bw = malloc(sizeof(double) * (size_t)(o->decode_tokens / 4 + 2));
    if (!bw) {
        machine_read_buffer_free(mb);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    rwkv_status s = RWKV_OK;
    for (int i = 0; i < o->warmup_tokens; i++)
        if ((s = rwkv_eval(m, st, tokens[i % o->prompt_tokens], logits, err)) != RWKV_OK) break;
    for (int i = 0; s == RWKV_OK && i < o->decode_tokens; i++) {
        if (mb && i % 4 == 0) {
            bw[n_bw++] = machine_read_pass_gbps(mb);
            settle();
        }
        double t0 = now_s();
        s = rwkv_eval(m, st, tokens[(i + 7) % o->prompt_tokens], logits, err);
        times[i] = now_s() - t0;
    }
    machine_read_buffer_free(mb);
    if (s == RWKV_OK) {
        double med = median(times, o->decode_tokens);
        out->decode_ms_per_token = 1e3 * med;
        out->decode_ms_min = 1e3 * times[0];
        out->decode_ms_max = 1e3 * times[o->decode_tokens - 1];
        out->decode_ms_p25 = 1e3 * quantile(times, o->decode_tokens, 0.25);
        out->decode_ms_p75 = 1e3 * quantile(times, o->decode_tokens, 0.75);
        out->decode_gbps = out->weight_bytes_per_token / med * 1e-9;
        if (n_bw) {
            out->machine_read_gbps = median(bw, n_bw);
            out->machine_read_gbps_best = bw[n_bw - 1];
            if (out->machine_read_gbps > 0)
                out->decode_fraction_of_bandwidth = out->decode_gbps / out->machine_read_gbps;
        }
    }
    free(bw);
    return s;
}

/* Prefill: the whole prompt in sequence mode from a fresh state, last
 * logits only (times: prefill_repeats entries of scratch). */
static rwkv_status bench_prefill(rwkv_model *m, rwkv_state *st, const int *tokens, const rwkv_bench_options *o,
                                 float *logits, double *times, double layer_flops, double head_flops,
                                 rwkv_bench_result *out, rwkv_error *err) {
    double *fma = malloc(sizeof(double) * (size_t)o->prefill_repeats);
    if (!fma) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    rwkv_status s = RWKV_OK;
    for (int r = 0; s == RWKV_OK && r < o->prefill_repeats; r++) {
        rwkv_state_reset(st);
        double t0 = now_s();
        s = rwkv_eval_sequence(m, st, tokens, (size_t)o->prompt_tokens, logits, 0, err);
        times[r] = now_s() - t0;
        if (!o->skip_machine) {
            fma[r] = machine_fma_peak_gflops(o->threads);
            settle();
        }
    }
    if (s == RWKV_OK) {
        double pmed = median(times, o->prefill_repeats);
        out->prefill_tokens_per_s = o->prompt_tokens / pmed;
        out->prefill_tokens_per_s_min = o->prompt_tokens / times[o->prefill_repeats - 1];
        out->prefill_tokens_per_s_max = o->prompt_tokens / times[0];
        out->prefill_gflops = (layer_flops * o->prompt_tokens + head_flops) / pmed * 1e-9;
        if (!o->skip_machine) {
            out->machine_fma_gflops = median(fma, o->prefill_repeats);
            out->machine_fma_gflops_best = fma[o->prefill_repeats - 1];
        }
        if (out->machine_fma_gflops > 0) out->prefill_fraction_of_peak = out->prefill_gflops / out->machine_fma_gflops;
    }
    free(fma);
    return s;
}

/* The batched decode with the model as `rwkv serve` loads it: on the CPU
 * with its f32, f16 and bf16 matrices packed once (rwkv_load_options.pack_weights),
 * so that a step of a few rows costs what a server's does (as stored, every
 * step repacks them: a lone f16 stream 3-4 times a decode step). *m is
 * replaced by that load, the first freed before, so that the two are never
 * in memory together; *m is NULL when the load fails. */
static rwkv_status batch_as_served(const char *path, const rwkv_bench_options *o, int gpu, rwkv_model **m,
                                   const int *tokens, rwkv_bench_result *out, rwkv_error *err) {
    if (!gpu) {
        rwkv_model_free(*m);
        *m = NULL;
        const rwkv_load_options lo = {.device = o->device, .precision = o->precision, .pack_weights = 1};
        rwkv_status s = rwkv_model_load_ex(path, &lo, m, err);
        if (s != RWKV_OK) return s;
        rwkv_model_set_threads(*m, o->threads);
    }
    const int steps = o->decode_tokens / 4 > 5 ? o->decode_tokens / 4 : 5;
    return batch_decodes(*m, o->batch, steps, tokens, o->prompt_tokens, out, err);
}

rwkv_status rwkv_bench_run(const char *path, const rwkv_bench_options *opts, rwkv_bench_result *out,
                           rwkv_error *err) {
    rwkv_bench_options o = {0};
    if (opts) o = *opts;
    if (!out) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_bench_run: out is required");
    if (o.threads <= 0) o.threads = machine_cores();
    if (o.decode_tokens <= 0) o.decode_tokens = 64;
    if (o.warmup_tokens <= 0) o.warmup_tokens = 8;
    if (o.prompt_tokens <= 0) o.prompt_tokens = 512;
    if (o.prefill_repeats <= 0) o.prefill_repeats = 5;
    memset(out, 0, sizeof *out);

    rwkv_model *m;
    rwkv_load_options lo = {.device = o.device, .precision = o.precision};
    rwkv_status s = rwkv_model_load_ex(path, &lo, &m, err);
    if (s != RWKV_OK) return s;
    const int gpu = o.device && strcmp(o.device, "cpu") != 0;
    const int gpu_skip_machine = o.skip_machine;
    if (gpu) o.skip_machine = 1; /* the CPU's figures mean nothing here; the GPU's come at the end */
    rwkv_model_set_threads(m, o.threads);
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    if (info.arch != RWKV_ARCH_RWKV) {
        rwkv_model_free(m);
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                         "%s: the benchmark models RWKV's weight traffic; this is a GPT baseline checkpoint", path);
    }
    out->threads = o.threads;
    out->n_vocab = info.n_vocab;
    out->n_embd = info.n_embd;
    out->n_layer = info.n_layer;
    out->load_start = machine_load_avg();
    double layer_flops, head_flops;
    /* the GPU's bytes per matrix element: bf16, int8 codes + one fp16 scale per 32, or f32 */
    const char *prec = o.precision ? o.precision : "fp32";
    const int bf16 = strcmp(prec, "bf16") == 0, int8 = strcmp(prec, "int8") == 0;
    int uses_int8;
    model_costs(m, !gpu ? 0 : bf16 ? 2 : int8 ? 1 + 2.0 / 32 : 4, &out->weight_bytes_per_token, &layer_flops,
                &head_flops, out->dtype, sizeof out->dtype, &uses_int8);
    describe_machine(out, gpu, uses_int8);
    if (!gpu) out->grouped_fraction = grouped_share(m, out->weight_bytes_per_token);
    if (gpu) snprintf(out->dtype, sizeof out->dtype, "%s", bf16 ? "bf16" : int8 ? "int8" : "f32");

    rwkv_state *st = NULL;
    float *logits = malloc(sizeof(float) * (size_t)info.n_vocab);
    int *tokens = malloc(sizeof(int) * (size_t)o.prompt_tokens);
    double *times = malloc(sizeof(double) * (size_t)(o.decode_tokens > o.prefill_repeats ? o.decode_tokens : o.prefill_repeats));
    if (!logits || !tokens || !times) {
        s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((s = rwkv_state_new(m, &st, err)) != RWKV_OK) goto done;
    uint32_t x = 12345;
    for (int i = 0; i < o.prompt_tokens; i++) {
        x = x * 1664525u + 1013904223u;
        tokens[i] = (int)((x >> 8) % (uint32_t)info.n_vocab);
    }

    if (s == RWKV_OK) s = bench_decode(m, st, tokens, &o, logits, times, out, err);
    if (s == RWKV_OK) s = bench_prefill(m, st, tokens, &o, logits, times, layer_flops, head_flops, out, err);
    rwkv_state_free(st); /* the batch has states of its own, maybe of another load of the model */
    st = NULL;
    if (s == RWKV_OK && o.batch > 1) s = batch_as_served(path, &o, gpu, &m, tokens, out, err);
    if (s == RWKV_OK && gpu && !gpu_skip_machine) s = device_fractions(o.device, out, err);
    if (s != RWKV_OK) goto done;
    out->load_end = machine_load_avg();
    s = rwkv_ok(err);
done:
    rwkv_state_free(st);
    free(logits);
    free(tokens);
    free(times);
    rwkv_model_free(m);
    return s;
}

int rwkv_bench_json(const rwkv_bench_result *r, char *buf, size_t size) {
    return snprintf(buf, size,
                    "{\"decode_ms_per_token\": %.4f, \"prefill_tokens_per_s\": %.2f, \"weight_bytes_per_token\": %.0f, "
                    "\"decode_gbps\": %.3f, \"machine_read_gbps\": %.3f, \"machine_fma_gflops\": %.2f, "
                    "\"decode_fraction_of_bandwidth\": %.4f, \"prefill_gflops\": %.3f, \"prefill_fraction_of_peak\": %.4f, "
                    "\"threads\": %d, \"dtype\": \"%s\", \"kernels\": \"%s\", \"decode_ms_min\": %.4f, "
                    "\"decode_ms_max\": %.4f, \"machine_read_gbps_best\": %.3f, \"machine_fma_gflops_best\": %.2f, "
                    "\"n_vocab\": %d, \"n_embd\": %d, \"n_layer\": %d, \"decode_ms_p25\": %.4f, \"decode_ms_p75\": %.4f, "
                    "\"prefill_tokens_per_s_min\": %.2f, \"prefill_tokens_per_s_max\": %.2f, \"cpu\": \"%s\", "
                    "\"cpu_family\": %d, \"cpu_model\": %d, \"int8_kernels\": \"%s\", \"activations\": \"%s\", "
                    "\"load_start\": %.2f, \"load_end\": %.2f, \"batch\": %d, \"batch_ms_per_step\": %.4f, "
                    "\"batch_tokens_per_s\": %.1f, \"batch_draw_ms_per_step\": %.4f, \"batch_draw_tokens_per_s\": %.1f, "
                    "\"grouped_fraction\": %.4f}",
                    r->decode_ms_per_token, r->prefill_tokens_per_s, r->weight_bytes_per_token, r->decode_gbps,
                    r->machine_read_gbps, r->machine_fma_gflops, r->decode_fraction_of_bandwidth, r->prefill_gflops,
                    r->prefill_fraction_of_peak, r->threads, r->dtype, r->kernels, r->decode_ms_min, r->decode_ms_max,
                    r->machine_read_gbps_best, r->machine_fma_gflops_best, r->n_vocab, r->n_embd, r->n_layer,
                    r->decode_ms_p25, r->decode_ms_p75, r->prefill_tokens_per_s_min, r->prefill_tokens_per_s_max, r->cpu,
                    r->cpu_family, r->cpu_model, r->int8_kernels, r->activations, r->load_start, r->load_end, r->batch,
                    r->batch_ms_per_step, r->batch_tokens_per_s, r->batch_draw_ms_per_step, r->batch_draw_tokens_per_s,
                    r->grouped_fraction);
}
