/* rwkv train: train an RWKV-4 model (or the GPT baseline) on a text or token file (include/rwkv_train.h). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "launch.h"
#include "rwkv_train.h"

/* ---- progress display ---- */

typedef struct display {
    int tty, quiet;
    long print_every;
    double last_draw;
    int line_open; /* a \r line is on screen */
    char dir[1024];
    int have_peak;
} display;

static void fmt_duration(double s, char *buf, size_t size) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, size, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, size, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
}

static void end_line(display *d) {
    if (d->line_open) {
        fputc('\n', stderr);
        d->line_open = 0;
    }
}

static int on_progress(const rwkv_train_progress *p, void *user) {
    display *d = user;
    if (d->quiet) return cli_interrupted();
    switch (p->event) {
    case RWKV_TRAIN_START: {
        if (p->n_head > 0)
            fprintf(stderr, "model: %s, %d layers x %d, %d heads, ffn %d, vocab %d, %lld parameters (%.3fM)\n",
                    p->arch, p->n_layer, p->n_embd, p->n_head, p->n_ffn, p->n_vocab, (long long)p->n_params,
                    (double)p->n_params / 1e6);
        else
            fprintf(stderr, "model: %s, %d layers x %d, ffn %d, vocab %d, %lld parameters (%.3fM)\n", p->arch,
                    p->n_layer, p->n_embd, p->n_ffn, p->n_vocab, (long long)p->n_params, (double)p->n_params / 1e6);
        fprintf(stderr, "data: %lld training tokens, %lld held out (%lld validation windows)\n",
                (long long)p->train_tokens, (long long)p->val_tokens, (long long)p->val_windows);
        fprintf(stderr, "batch: %d x %d tokens x %d accum, %ld steps, ", p->batch, p->ctx_len, p->grad_accum,
                p->steps);
        if (strcmp(p->device, "cpu") == 0) fprintf(stderr, "%d threads", p->threads);
        else fprintf(stderr, "%s, %s", p->device, p->precision);
        if (p->peak_gflops > 0) fprintf(stderr, ", %s peak %.1f %s", p->peak_kind,
                                        p->peak_gflops >= 1e4 ? p->peak_gflops / 1e3 : p->peak_gflops,
                                        p->peak_gflops >= 1e4 ? "TFLOP/s" : "GFLOP/s");
        fputc('\n', stderr);
        if (p->note && *p->note) fprintf(stderr, "%s\n", p->note);
        snprintf(d->dir, sizeof d->dir, "%s", p->path);
        d->have_peak = p->peak_gflops > 0;
        fprintf(stderr, "log: %s/train.jsonl\n", p->path);
        break;
    }
    case RWKV_TRAIN_STEP: {
        double now = cli_now();
        int evaluated = !isnan(p->val_loss);
        int draw;
        if (d->tty) draw = evaluated || p->step == p->steps || now - d->last_draw >= 0.1;
        else draw = evaluated || p->step == p->steps || (d->print_every > 0 && p->step % d->print_every == 0);
        if (!draw) break;
        d->last_draw = now;
        char eta[32], val[32];
        fmt_duration(p->eta_s, eta, sizeof eta);
        if (isnan(p->last_val_loss)) snprintf(val, sizeof val, "-");
        else snprintf(val, sizeof val, "%.4f", p->last_val_loss);
        char line[256], mfu[32] = "";
        if (d->have_peak) snprintf(mfu, sizeof mfu, " | MFU %.1f%%", 100.0 * p->mfu);
        snprintf(line, sizeof line, "step %ld/%ld | loss %.4f | val %s | lr %.3g | %.0f tok/s%s | ETA %s%s", p->step,
                 p->steps, p->loss, val, p->lr, p->avg_tokens_per_s, mfu, eta,
                 p->skipped ? " | batch skipped (non-finite)" : "");
        if (d->tty) {
            fprintf(stderr, "\r\033[K%s", line);
            d->line_open = 1;
            if (evaluated) end_line(d); /* keep the evaluated steps on screen */
        } else {
            fprintf(stderr, "%s\n", line);
        }
        break;
    }
    case RWKV_TRAIN_SAVED:
        if (d->tty && d->line_open) fputs("\r\033[K", stderr);
        d->line_open = 0;
        fprintf(stderr, "saved %s\n", p->path);
        break;
    case RWKV_TRAIN_DONE: {
        end_line(d);
        char el[32];
        fmt_duration(p->elapsed_s, el, sizeof el);
        if (p->stopped)
            fprintf(stderr, "stopped at step %ld (%s); continue with: rwkv train --resume %s\n", p->step, el,
                    d->dir);
        else if (isnan(p->last_val_loss))
            fprintf(stderr, "done: %ld steps in %s\n", p->step, el);
        else
            fprintf(stderr, "done: %ld steps in %s, validation loss %.4f nats/token\n", p->step, el,
                    p->last_val_loss);
        break;
    }
    }
    fflush(stderr);
    return cli_interrupted();
}

/* 1 when the flag `name` of the table was given. */
static int was_given(const cli_opt *opts, size_t n, const int *given, const char *name) {
    for (size_t k = 0; k < n; k++)
        if (opts[k].name && strcmp(opts[k].name, name) == 0) return given[k];
    return 0;
}

static long env_long(const char *name) {
    const char *s = getenv(name);
    return s && *s ? strtol(s, NULL, 10) : 0;
}

static const char usage[] = "rwkv train --data FILE --out DIR [options]\n"
                            "       rwkv train --resume DIR [--steps N] [--threads N] [--device D] [--precision P]\n"
                            "                  [--skip-nonfinite] [--gpus N] [--restart]";
static const char about[] =
    "Trains an RWKV-4 model with Adam and the recipe of the RWKV-4 paper's code (docs/training.md);\n"
    "with --arch rwkv7 an RWKV-7 \"Goose\" model with the official x070 init and recipe\n"
    "(docs/training-rwkv7.md); with --arch gpt the GPT-2-style transformer baseline; the same data,\n"
    "optimizer, checkpoints and log for all three.\n"
    "FILE is a text (tokenized with --tokenizer; byte level by default) or a token file (rwkv tokenize\n"
    "--out); the last --val-fraction of it is held out.\n"
    "DIR receives config.json, train.jsonl (one JSON object per step), checkpoints\n"
    "model-STEP.safetensors + train_state-STEP.bin, and model.safetensors at the end.\n"
    "--resume continues an interrupted run with its stored settings; with the same thread count (or\n"
    "the same GPU and precision) the per-step losses are those of an uninterrupted run. A run may\n"
    "continue on another device: checkpoints do not depend on it. Ctrl-C saves a checkpoint and stops.\n"
    "When checkpoints exist but none can be resumed (damaged, or config.json no longer matches them),\n"
    "--resume stops with an error and leaves them; --restart starts the run over from step 0 instead.\n"
    "--device cuda trains RWKV-4 on an NVIDIA GPU (builds with the CUDA toolkit; docs/cuda.md);\n"
    "--gpus N on N GPUs of this machine, data parallel over NCCL (docs/multigpu.md).\n";

/* The flags that may come with --resume (the others are stored in the run). */
static int resume_ok(const char *name) {
    static const char *const ok[] = {"--resume",  "--steps",      "--threads",     "--device", "--precision",
                                     "--skip-nonfinite", "--no-peak", "--print-every", "--quiet", "--gpus",
                                     "--allreduce", "--rank", "--world", "--rendezvous", "--dist-timeout",
                                     "--restart"};
    for (size_t k = 0; k < CLI_N(ok); k++)
        if (strcmp(name, ok[k]) == 0) return 1;
    return 0;
}

#define BIG 2000000000L
#define REAL(name, dst, arg, help) {name, 0, CLI_DOUBLE, dst, -1e308, 1e308, arg, help, NULL, NULL, NULL, NULL}
#define COUNT(name, dst, lo, hi, help) {name, 0, CLI_LONG, dst, lo, hi, "N", help, NULL, NULL, NULL, NULL}
#define SECTION(title) {NULL, 0, CLI_SECTION, NULL, 0, 0, NULL, title, NULL, NULL, NULL, NULL}

/* The flags of a data-parallel run (docs/multigpu.md). */
typedef struct dist_flags {
    int gpus, world, rank;
    const char *rendezvous, *allreduce;
    double timeout_s;
} dist_flags;

/* Test hook of the launcher's tests, in a rank process: RWKV_TRAIN_DEBUG_RANK_FAIL=R makes rank R exit
 * with status 3 (R:kill: killed by SIGKILL) at once, and every other rank wait as if stuck in a collective. */
static void debug_rank_failure(int rank) {
    const char *hook = getenv("RWKV_TRAIN_DEBUG_RANK_FAIL");
    if (!hook || !*hook) return;
    if (atoi(hook) != rank)
        for (;;) pause();
    if (strstr(hook, ":kill")) raise(SIGKILL);
    _exit(3);
}

/* Starts the ranks of --gpus N after the checks that need no GPU. */
static int launch(int argc, char **argv, const rwkv_train_options *o, const dist_flags *df, int fresh,
                  int device_given) {
    if (df->world || df->rendezvous)
        return cli_usage_error("train", "--gpus starts the ranks itself; --rank, --world and --rendezvous are for "
                                        "ranks that another launcher starts");
    const int first = cli_first_gpu(device_given ? o->device : NULL);
    if (first < 0) return cli_usage_error("train", "--gpus %d needs --device cuda (or cuda:N, the first GPU), not %s",
                                          df->gpus, o->device);
    if (fresh && o->batch % df->gpus != 0)
        return cli_usage_error("train", "--batch %d is not divisible by --gpus %d (each GPU takes an equal share)",
                               o->batch, df->gpus);
    static const char *const drop[] = {"--gpus", NULL};
    const cli_launch l = {"train", argc, argv, df->gpus, first, drop, NULL, "--quiet"};
    return cli_launch_ranks(&l);
}

static void set_dist(const dist_flags *df, int *world, int *rank, const char **rdv, const char **allreduce,
                     double *timeout_s) {
    *world = df->world, *rank = df->rank, *rdv = df->rendezvous, *allreduce = df->allreduce;
    *timeout_s = df->timeout_s;
}

/* Which of the flags that change a resumed run were given (restart: --restart). */
typedef struct resume_given {
    int steps, threads, device, restart;
} resume_given;

/* --resume DIR with the session's flags (o holds the parsed values). */
static rwkv_status resume_run(const char *dir, const rwkv_train_options *o, resume_given g, display *d,
                              rwkv_error *err) {
    rwkv_resume_options ro = rwkv_resume_options_default();
    if (g.steps) ro.steps = o->steps;
    if (g.threads) ro.threads = o->threads;
    if (g.device) ro.device = o->device;
    ro.precision = o->precision;
    if (o->skip_nonfinite) ro.skip_nonfinite = 1;
    ro.measure_peak = o->measure_peak;
    ro.restart = g.restart;
    ro.world_size = o->world_size, ro.rank = o->rank, ro.rendezvous = o->rendezvous;
    ro.allreduce = o->allreduce, ro.dist_timeout_s = o->dist_timeout_s;
    ro.debug_save_pause_ms = o->debug_save_pause_ms;
    ro.debug_nan_step = o->debug_nan_step;
    return rwkv_train_resume(dir, &ro, on_progress, d, err);
}

/* The run once its options are checked: a new run, or the one in `resume`
 * continued, with the progress display. */
static int train(rwkv_train_options *o, const char *resume, const resume_given *g, int quiet, long print_every) {
    display d = {isatty(2), quiet, print_every, 0, 0, "", 0};
    cli_catch_interrupt(); /* Ctrl-C saves a checkpoint and stops; a second one kills */
    rwkv_error err;
    o->debug_save_pause_ms = (int)env_long("RWKV_TRAIN_SAVE_PAUSE_MS");
    o->debug_nan_step = env_long("RWKV_TRAIN_NAN_STEP");
    const rwkv_status s = resume ? resume_run(resume, o, *g, &d, &err) : rwkv_train_run(o, on_progress, &d, &err);
    end_line(&d);
    if (s != RWKV_OK) return cli_report(&err);
    return cli_interrupted() ? 130 : 0;
}

int cmd_train(int argc, char **argv) {
    rwkv_train_options o = rwkv_train_options_default();
    const char *resume = NULL;
    int skip_nonfinite = 0, no_peak = 0, quiet = 0, restart = 0;
    long print_every = 10;
    dist_flags df = {0, 0, 0, NULL, NULL, 0.0};
    cli_opt opts[] = {
        SECTION("data and output"),
        {"--data", 0, CLI_STR, &o.data_path, 0, 0, "FILE", "text or token file (required)", "", NULL, NULL, NULL},
        CLI_OPT_OUT(&o.out_dir, "DIR", "run directory, created when missing (required)"),
        {"--init", 0, CLI_STR, &o.init_path, 0, 0, "M", "start from this checkpoint instead of a fresh init\n"
         "(sets the model size)", "", NULL, NULL, NULL},
        {"--resume", 0, CLI_STR, &resume, 0, 0, "DIR", "continue the run in DIR", "", NULL, NULL, NULL},
        {"--restart", 0, CLI_FLAG, &restart, 0, 0, NULL,
         "with --resume: start the run over from step 0 with its stored\nsettings, deleting its checkpoints", "",
         NULL, NULL, NULL},
        CLI_OPT_TOKENIZER(&o.tokenizer),
        REAL("--val-fraction", &o.val_fraction, "X", "held-out share at the end of the data"),
        {"--val-windows", 0, CLI_INT, &o.val_windows, 0, BIG, "N",
         "validation windows of ctx tokens, evenly spread; 0 = all", NULL, NULL, NULL, NULL},
        SECTION("model (fresh init, docs/model.md 3.1-3.2)"),
        CLI_OPT_ARCH(&o.arch),
        CLI_OPT_LAYERS(&o.n_layer),
        CLI_OPT_EMBD(&o.n_embd),
        CLI_OPT_FFN(&o.n_ffn),
        CLI_OPT_HEADS(&o.n_head),
        CLI_OPT_HEAD_SIZE(&o.head_size),
        REAL("--emb-init", &o.emb_init, "X", "rwkv4: emb.weight ~ U(-X, X); 0 = the initial LR"),
        SECTION("batches"),
        {"--ctx", 0, CLI_INT, &o.ctx_len, 1, 1 << 20, "N", "tokens per sequence", NULL, NULL, NULL, NULL},
        {"--batch", 0, CLI_INT, &o.batch, 1, 65536, "N", "sequences per micro-batch", NULL, NULL, NULL, NULL},
        {"--accum", 0, CLI_INT, &o.grad_accum, 1, 65536, "N", "micro-batches per optimizer step", NULL, NULL, NULL,
         NULL},
        COUNT("--steps", &o.steps, 1, BIG, "optimizer steps"),
        SECTION("optimizer (Adam, paper values)"),
        REAL("--lr", &o.lr_init, "X", "initial LR"),
        REAL("--lr-final", &o.lr_final, "X", "LR at the last step, exponential decay"),
        COUNT("--const-steps", &o.const_steps, -1, BIG, "constant-LR steps before the decay; -1 = steps x 361/8043"),
        COUNT("--warmup-steps", &o.warmup_steps, 0, BIG, "linear warm-up from 0.2 x LR"),
        REAL("--beta1", &o.beta1, "X", "Adam beta1"),
        REAL("--beta2", &o.beta2, "X", "Adam beta2"),
        REAL("--adam-eps", &o.adam_eps, "X", "Adam epsilon"),
        REAL("--weight-decay", &o.weight_decay, "X", "decoupled, matrices only"),
        REAL("--grad-clip", &o.grad_clip, "X", "global gradient norm; 0 = off"),
        REAL("--l2wrap", &o.l2wrap, "X", "rwkv4, rwkv7: L2Wrap logit regulariser; 0 = off"),
        {"--layerwise-lr", 0, CLI_INT, &o.layerwise_lr, 0, 1, "0|1", "rwkv4: time_decay x2, time_first x3; rwkv7: w0 x2", NULL,
         NULL, NULL, NULL},
        SECTION("run"),
        COUNT("--eval-every", &o.eval_every, 0, BIG, "validation every N steps and at the end; 0 = only at the end"),
        COUNT("--save-every", &o.save_every, 0, BIG, "checkpoint every N steps and at the end; 0 = only at the end"),
        {"--keep", 0, CLI_INT, &o.keep_checkpoints, 0, 1000000, "N", "newest checkpoints kept; 0 = all", NULL, NULL,
         NULL, NULL},
        CLI_OPT_SEED(&o.seed, "init and data order"),
        {"--device", 0, CLI_STR, &o.device, 0, 0, "D", "cpu, cuda or cuda:N (an NVIDIA GPU; rwkv4 only)", NULL, NULL,
         NULL, NULL},
        {"--precision", 0, CLI_CHOICE, &o.precision, 0, 0, "P", "cuda: bf16 (mixed) or fp32; the cpu trains in fp32",
         "bf16 on cuda", "bf16|fp32", NULL, NULL},
        CLI_OPT_THREADS(&o.threads),
        {"--skip-nonfinite", 0, CLI_FLAG, &skip_nonfinite, 0, 0, NULL,
         "skip a batch whose loss or gradient is NaN/Inf instead of stopping", "", NULL, NULL, NULL},
        {"--no-peak", 0, CLI_FLAG, &no_peak, 0, 0, NULL, "do not measure the FMA (or GPU matmul) peak: no MFU figure",
         "", NULL, NULL, NULL},
        COUNT("--print-every", &print_every, 0, BIG, "progress line every N steps when stderr is not a terminal"),
        CLI_OPT_QUIET(&quiet, "no progress display"),
        SECTION("several GPUs (data parallel over NCCL, docs/multigpu.md)"),
        {"--gpus", 0, CLI_INT, &df.gpus, 1, 4096, "N", "train on N GPUs of this machine (from --device cuda:K on),\n"
         "one process each; --batch is split among them", "1", NULL, NULL, NULL},
        {"--allreduce", 0, CLI_CHOICE, &df.allreduce, 0, 0, "W", "the gradients on the wire", "as --precision",
         "bf16|fp32", NULL, NULL},
        {"--rank", 0, CLI_INT, &df.rank, 0, 4095, "R", "this process's rank (ranks started by another launcher)",
         NULL, NULL, NULL, NULL},
        {"--world", 0, CLI_INT, &df.world, 1, 4096, "N", "the number of ranks (with --rank and --rendezvous)", "",
         NULL, NULL, NULL},
        {"--rendezvous", 0, CLI_STR, &df.rendezvous, 0, 0, "ADDR",
         "HOST:PORT where rank 0 listens, or file:PATH on a shared file system", "", NULL, NULL, NULL},
        REAL("--dist-timeout", &df.timeout_s, "S", "seconds before a stuck collective ends the run; 0 = 600"),
    };
    int given[CLI_N(opts)];
    memset(given, 0, sizeof given);
    for (size_t k = 0; k < CLI_N(opts); k++) opts[k].given = &given[k];
    cli_spec spec = {"train", usage, about, opts, CLI_N(opts), NULL, NULL, 0, 0};
    int rc;
    if (!cli_parse(&spec, argc, argv, &rc)) return rc;
    for (size_t k = 0; resume && k < CLI_N(opts); k++)
        if (given[k] && !resume_ok(opts[k].name))
            return cli_usage_error("train",
                                   "%s cannot be combined with --resume (the run's settings are stored in "
                                   "%s/config.json)",
                                   opts[k].name, resume);
    if (!resume) {
        if (restart) return cli_usage_error("train", "--restart needs --resume DIR (the run to start over)");
        if (!o.data_path) return cli_usage_error("train", "--data FILE is required (or --resume DIR)");
        if (!o.out_dir) return cli_usage_error("train", "--out DIR is required");
    }
    if (!df.world && (df.rendezvous || was_given(opts, CLI_N(opts), given, "--rank")))
        return cli_usage_error("train", "--rank and --rendezvous need --world N");
    if (df.gpus > 0) return launch(argc, argv, &o, &df, !resume, was_given(opts, CLI_N(opts), given, "--device"));
    if (df.world > 0) {
        debug_rank_failure(df.rank);
        if (df.rank > 0) quiet = 1;
    }
    o.skip_nonfinite = skip_nonfinite;
    o.measure_peak = !no_peak;
    set_dist(&df, &o.world_size, &o.rank, &o.rendezvous, &o.allreduce, &o.dist_timeout_s);
    const resume_given g = {was_given(opts, CLI_N(opts), given, "--steps"),
                            was_given(opts, CLI_N(opts), given, "--threads"),
                            was_given(opts, CLI_N(opts), given, "--device"), restart};
    return train(&o, resume, &g, quiet, print_every);
}
