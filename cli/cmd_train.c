/* rwkv train: train an RWKV-4 model (or the GPT baseline) on a text or token file (include/rwkv_train.h). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "rwkv_train.h"

static void help(void) {
    rwkv_train_options d = rwkv_train_options_default();
    printf("usage: rwkv train --data FILE --out DIR [options]\n"
           "       rwkv train --resume DIR [--steps N] [--threads N] [--skip-nonfinite]\n\n"
           "Trains an RWKV-4 model with Adam and the recipe of the RWKV-4 paper's code (docs/training.md),\n"
           "or, with --arch gpt, the GPT-2-style transformer baseline with the same data, optimizer and log.\n"
           "FILE is a text (tokenized with --tokenizer; byte level by default) or a token file (rwkv tokenize\n"
           "--out); the last --val-fraction of it is held out.\n"
           "DIR receives config.json, train.jsonl (one JSON object per step), checkpoints\n"
           "model-STEP.safetensors + train_state-STEP.bin, and model.safetensors at the end.\n"
           "--resume continues an interrupted run with its stored settings; with the same thread count the\n"
           "per-step losses are those of an uninterrupted run. Ctrl-C saves a checkpoint and stops.\n\n");
    printf("data and output:\n"
           "  --data FILE          text or token file (required)\n"
           "  --out DIR            run directory, created when missing (required)\n"
           "  --init M             start from this checkpoint instead of a fresh init (sets the model size)\n"
           "  --resume DIR         continue the run in DIR\n"
           "  --tokenizer FILE     how a text is tokenized: 'bytes' or a tokenizer.json / World vocabulary (%s)\n"
           "  --val-fraction X     held-out share at the end of the data (%g)\n"
           "  --val-windows N      validation windows of ctx tokens, evenly spread; 0 = all (%d)\n",
           d.tokenizer, d.val_fraction, d.val_windows);
    printf("model (fresh init, docs/rwkv-architecture.md 3.1-3.2):\n"
           "  --arch A             rwkv4 or gpt (the transformer baseline, src/model/gpt.h) (%s)\n"
           "  --layers N           layers (%d)\n"
           "  --embd N             width (%d)\n"
           "  --ffn N              channel-mix / MLP width, 0 = 4 x embd (%d)\n"
           "  --heads N            gpt: attention heads, 0 = embd/64 (a divisor of embd) (%d)\n"
           "  --emb-init X         rwkv4: emb.weight ~ U(-X, X); 0 = the initial LR (%g)\n",
           d.arch, d.n_layer, d.n_embd, d.n_ffn, d.n_head, d.emb_init);
    printf("batches:\n"
           "  --ctx N              tokens per sequence (%d)\n"
           "  --batch N            sequences per micro-batch (%d)\n"
           "  --accum N            micro-batches per optimizer step (gradient accumulation) (%d)\n"
           "  --steps N            optimizer steps (%ld)\n",
           d.ctx_len, d.batch, d.grad_accum, d.steps);
    printf("optimizer (Adam, paper values):\n"
           "  --lr X               initial LR (%g)\n"
           "  --lr-final X         LR at the last step, exponential decay (%g)\n"
           "  --const-steps N      constant-LR steps before the decay; -1 = steps x 361/8043 (%ld)\n"
           "  --warmup-steps N     linear warm-up from 0.2 x LR (%ld)\n"
           "  --beta1 X            (%g)\n"
           "  --beta2 X            (%g)\n"
           "  --adam-eps X         (%g)\n"
           "  --weight-decay X     decoupled, matrices only (%g)\n"
           "  --grad-clip X        global gradient norm; 0 = off (%g)\n"
           "  --l2wrap X           rwkv4: L2Wrap logit regulariser; 0 = off (%g)\n"
           "  --layerwise-lr 0|1   rwkv4: time_decay x2, time_first x3 (%d)\n",
           d.lr_init, d.lr_final, d.const_steps, d.warmup_steps, d.beta1, d.beta2, d.adam_eps, d.weight_decay,
           d.grad_clip, d.l2wrap, d.layerwise_lr);
    printf("run:\n"
           "  --eval-every N       validation every N steps and at the end; 0 = only at the end (%ld)\n"
           "  --save-every N       checkpoint every N steps and at the end; 0 = only at the end (%ld)\n"
           "  --keep N             newest checkpoints kept; 0 = all (%d)\n"
           "  --seed N             init and data order (%llu)\n"
           "  --threads N          worker threads; 0 = all cores (%d)\n"
           "  --skip-nonfinite     skip a batch whose loss or gradient is NaN/Inf instead of stopping\n"
           "  --no-peak            do not measure the FMA peak (no MFU figure)\n"
           "  --print-every N      progress line every N steps when stderr is not a terminal (10)\n"
           "  --quiet              no progress display\n",
           d.eval_every, d.save_every, d.keep_checkpoints, (unsigned long long)d.seed, d.threads);
}

/* ---- progress display ---- */

typedef struct display {
    int tty, quiet;
    long print_every;
    double last_draw;
    int line_open; /* a \r line is on screen */
    char dir[1024];
    int have_peak;
} display;

static volatile sig_atomic_t stop_requested;
static void on_sigint(int sig) {
    (void)sig;
    stop_requested = 1;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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
    if (d->quiet) return stop_requested;
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
        fprintf(stderr, "batch: %d x %d tokens x %d accum, %ld steps, %d threads", p->batch, p->ctx_len,
                p->grad_accum, p->steps, p->threads);
        if (p->peak_gflops > 0) fprintf(stderr, ", fp32 FMA peak %.1f GFLOP/s", p->peak_gflops);
        fputc('\n', stderr);
        if (p->note && *p->note) fprintf(stderr, "%s\n", p->note);
        snprintf(d->dir, sizeof d->dir, "%s", p->path);
        d->have_peak = p->peak_gflops > 0;
        fprintf(stderr, "log: %s/train.jsonl\n", p->path);
        break;
    }
    case RWKV_TRAIN_STEP: {
        double now = mono_s();
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
    return stop_requested;
}

/* ---- options ---- */

typedef enum { O_STR, O_INT, O_LONG, O_DOUBLE, O_U64, O_FLAG } opt_kind;
typedef struct opt_def {
    const char *name;
    opt_kind kind;
    void *dst;
    long lo, hi;
    int resume_ok; /* allowed together with --resume */
} opt_def;

static int parse_value(const opt_def *od, const char *v) {
    switch (od->kind) {
    case O_STR: *(const char **)od->dst = v; return 0;
    case O_INT: {
        long x;
        if (cli_parse_int("train", od->name, v, od->lo, od->hi, &x)) return -1;
        *(int *)od->dst = (int)x;
        return 0;
    }
    case O_LONG: return cli_parse_int("train", od->name, v, od->lo, od->hi, (long *)od->dst);
    case O_U64: {
        long x;
        if (cli_parse_int("train", od->name, v, od->lo, od->hi, &x)) return -1;
        *(uint64_t *)od->dst = (uint64_t)x;
        return 0;
    }
    case O_DOUBLE: {
        double x;
        if (cli_parse_float("train", od->name, v, &x)) return -1;
        if (!isfinite(x)) {
            cli_usage_error("train", "%s expects a finite number, got '%s'", od->name, v);
            return -1;
        }
        *(double *)od->dst = x;
        return 0;
    }
    case O_FLAG: *(int *)od->dst = 1; return 0;
    }
    return -1;
}

static long env_long(const char *name) {
    const char *s = getenv(name);
    return s && *s ? strtol(s, NULL, 10) : 0;
}

int cmd_train(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    rwkv_train_options o = rwkv_train_options_default();
    const char *resume = NULL;
    int skip_nonfinite = 0, no_peak = 0, quiet = 0, threads_given = 0, steps_given = 0;
    long print_every = 10;
    const long BIG = 2000000000L;
    const opt_def defs[] = {
        {"--data", O_STR, &o.data_path, 0, 0, 0},
        {"--out", O_STR, &o.out_dir, 0, 0, 0},
        {"--init", O_STR, &o.init_path, 0, 0, 0},
        {"--resume", O_STR, &resume, 0, 0, 1},
        {"--tokenizer", O_STR, &o.tokenizer, 0, 0, 0},
        {"--arch", O_STR, &o.arch, 0, 0, 0},
        {"--heads", O_INT, &o.n_head, 0, 65536, 0},
        {"--val-fraction", O_DOUBLE, &o.val_fraction, 0, 0, 0},
        {"--val-windows", O_INT, &o.val_windows, 0, BIG, 0},
        {"--layers", O_INT, &o.n_layer, 1, 1024, 0},
        {"--embd", O_INT, &o.n_embd, 1, 65536, 0},
        {"--ffn", O_INT, &o.n_ffn, 0, 1 << 20, 0},
        {"--emb-init", O_DOUBLE, &o.emb_init, 0, 0, 0},
        {"--ctx", O_INT, &o.ctx_len, 1, 1 << 20, 0},
        {"--batch", O_INT, &o.batch, 1, 65536, 0},
        {"--accum", O_INT, &o.grad_accum, 1, 65536, 0},
        {"--steps", O_LONG, &o.steps, 1, BIG, 1},
        {"--lr", O_DOUBLE, &o.lr_init, 0, 0, 0},
        {"--lr-final", O_DOUBLE, &o.lr_final, 0, 0, 0},
        {"--const-steps", O_LONG, &o.const_steps, -1, BIG, 0},
        {"--warmup-steps", O_LONG, &o.warmup_steps, 0, BIG, 0},
        {"--beta1", O_DOUBLE, &o.beta1, 0, 0, 0},
        {"--beta2", O_DOUBLE, &o.beta2, 0, 0, 0},
        {"--adam-eps", O_DOUBLE, &o.adam_eps, 0, 0, 0},
        {"--weight-decay", O_DOUBLE, &o.weight_decay, 0, 0, 0},
        {"--grad-clip", O_DOUBLE, &o.grad_clip, 0, 0, 0},
        {"--l2wrap", O_DOUBLE, &o.l2wrap, 0, 0, 0},
        {"--layerwise-lr", O_INT, &o.layerwise_lr, 0, 1, 0},
        {"--eval-every", O_LONG, &o.eval_every, 0, BIG, 0},
        {"--save-every", O_LONG, &o.save_every, 0, BIG, 0},
        {"--keep", O_INT, &o.keep_checkpoints, 0, 1000000, 0},
        {"--seed", O_U64, &o.seed, 0, 0x7fffffffffffffffL, 0},
        {"--threads", O_INT, &o.threads, 0, 4096, 1},
        {"--skip-nonfinite", O_FLAG, &skip_nonfinite, 0, 0, 1},
        {"--no-peak", O_FLAG, &no_peak, 0, 0, 1},
        {"--print-every", O_LONG, &print_every, 0, BIG, 1},
        {"--quiet", O_FLAG, &quiet, 0, 0, 1},
    };
    const int n_defs = (int)(sizeof defs / sizeof defs[0]);
    const char *not_with_resume = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != '-') return cli_usage_error("train", "unexpected argument '%s'", a);
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const opt_def *od = NULL;
        for (int k = 0; k < n_defs; k++)
            if (strlen(defs[k].name) == nlen && strncmp(defs[k].name, a, nlen) == 0) od = &defs[k];
        if (!od) return cli_usage_error("train", "unknown option '%.*s'", (int)nlen, a);
        const char *v = NULL;
        if (od->kind == O_FLAG) {
            if (eq) return cli_usage_error("train", "%s takes no value", od->name);
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            return cli_usage_error("train", "%s expects a value", od->name);
        }
        if (od->kind == O_STR && (!v || !*v)) return cli_usage_error("train", "%s expects a non-empty value", od->name);
        if (parse_value(od, v)) return 2;
        if (!od->resume_ok && !not_with_resume) not_with_resume = od->name;
        if (od->dst == &o.threads) threads_given = 1;
        if (od->dst == &o.steps) steps_given = 1;
    }
    if (resume && not_with_resume)
        return cli_usage_error("train", "%s cannot be combined with --resume (the run's settings are stored in %s/config.json)",
                               not_with_resume, resume);
    if (!resume) {
        if (!o.data_path) return cli_usage_error("train", "--data FILE is required (or --resume DIR)");
        if (!o.out_dir) return cli_usage_error("train", "--out DIR is required");
    }

    display d = {isatty(2), quiet, print_every, 0, 0, "", 0};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C kills */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    rwkv_error err;
    rwkv_status s;
    if (resume) {
        rwkv_resume_options ro = rwkv_resume_options_default();
        if (steps_given) ro.steps = o.steps;
        if (threads_given) ro.threads = o.threads;
        if (skip_nonfinite) ro.skip_nonfinite = 1;
        ro.measure_peak = !no_peak;
        ro.debug_save_pause_ms = (int)env_long("RWKV_TRAIN_SAVE_PAUSE_MS");
        ro.debug_nan_step = env_long("RWKV_TRAIN_NAN_STEP");
        s = rwkv_train_resume(resume, &ro, on_progress, &d, &err);
    } else {
        o.skip_nonfinite = skip_nonfinite;
        o.measure_peak = !no_peak;
        o.debug_save_pause_ms = (int)env_long("RWKV_TRAIN_SAVE_PAUSE_MS");
        o.debug_nan_step = env_long("RWKV_TRAIN_NAN_STEP");
        s = rwkv_train_run(&o, on_progress, &d, &err);
    }
    end_line(&d);
    if (s != RWKV_OK) return cli_report(&err);
    return stop_requested ? 130 : 0;
}
