/* The training loop (include/rwkv_train.h): micro-batches with gradient
 * accumulation, the global-norm clip, Adam with the §3.3 schedule, the
 * non-finite guard, evaluation, the per-step log and checkpoints, and resume.
 * The model is reached only through its train_arch (train/arch.h), so RWKV-4
 * and the GPT baseline are trained by the same code.
 *
 * Reproducibility: a step's result depends only on the parameters, the Adam
 * moments, the step number and the data RNG, all of which a checkpoint holds
 * exactly; the training math is deterministic for a given thread count and
 * everything here is independent of it. So an interrupted and resumed run
 * logs the same per-step losses as an uninterrupted one. */
#include "core/atomic_write.h"
#include "rwkv_train.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "formats/formats.h"
#include "core/machine.h"
#include "train/adam.h"
#include "train/arch.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/schedule.h"

#define PATH_MAX_LEN 4096
#define DIR_MAX_LEN 3072 /* leaves room for the file names inside the run directory */

/* ------------------------------------------------------------------------ */
/* Defaults                                                                 */
/* ------------------------------------------------------------------------ */

rwkv_train_options rwkv_train_options_default(void) {
    rwkv_train_options o;
    memset(&o, 0, sizeof o);
    o.tokenizer = "bytes";
    o.arch = "rwkv4";
    o.val_fraction = 0.1;
    o.val_windows = 64;
    o.n_layer = 6;
    o.n_embd = 256;
    o.n_ffn = 0;
    o.ctx_len = 128;
    o.batch = 8;
    o.grad_accum = 1;
    o.steps = 1000;
    o.lr_init = 6e-4;
    o.lr_final = 1e-5;
    o.warmup_steps = 0;
    o.const_steps = -1;
    o.beta1 = 0.9;
    o.beta2 = 0.99;
    o.adam_eps = 1e-8;
    o.weight_decay = 0.0;
    o.grad_clip = 1.0;
    o.l2wrap = 1e-4;
    o.layerwise_lr = 1;
    o.emb_init = 0.0;
    o.eval_every = 100;
    o.save_every = 500;
    o.keep_checkpoints = 2;
    o.seed = 42;
    o.threads = 0;
    o.skip_nonfinite = 0;
    o.measure_peak = 1;
    return o;
}

rwkv_resume_options rwkv_resume_options_default(void) {
    rwkv_resume_options o;
    memset(&o, 0, sizeof o);
    o.skip_nonfinite = -1;
    o.measure_peak = 1;
    return o;
}

rwkv_init_options rwkv_init_options_default(void) {
    rwkv_init_options o;
    memset(&o, 0, sizeof o);
    o.n_layer = 6;
    o.n_embd = 256;
    o.n_vocab = 256;
    o.n_ffn = 0;
    o.seed = 42;
    o.emb_scale = 6e-4;
    o.arch = "rwkv4";
    return o;
}

double rwkv_fma_peak_gflops(int threads) { return machine_fma_peak_gflops(threads); }

rwkv_status rwkv_tokenize_file(const char *text_path, const char *token_path, rwkv_error *err) {
    if (!text_path || !token_path) return rwkv_fail(err, RWKV_ERR_ARG, "tokenize: a path is NULL");
    return tokenize_bytes_file(text_path, token_path, err);
}

rwkv_status rwkv_tokenize_file_with(const char *text_path, const char *tokenizer, const char *token_path,
                                    uint64_t *n_tokens, int *n_vocab, rwkv_error *err) {
    if (!text_path || !token_path) return rwkv_fail(err, RWKV_ERR_ARG, "tokenize: a path is NULL");
    return tokenize_text_file(text_path, tokenizer, token_path, n_tokens, n_vocab, err);
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static rwkv_status mkdir_p(const char *dir, rwkv_error *err) {
    char buf[PATH_MAX_LEN];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: path too long", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return rwkv_fail(err, RWKV_ERR_IO, "%s: not a directory", buf);
    return RWKV_OK;
}

/* An exclusive lock on DIR/.lock for the life of the run (released by the
 * kernel however the process ends). */
static rwkv_status lock_dir(const char *dir, int *fd_out, rwkv_error *err) {
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof path, "%s/.lock", dir);
    int fd = open(path, O_CREAT | O_RDWR, 0666);
    if (fd < 0) return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return rwkv_fail(err, RWKV_ERR_IO, "%s: another training process is using this directory", dir);
    }
    *fd_out = fd;
    return RWKV_OK;
}

static char *abs_path(const char *p) {
    char *r = realpath(p, NULL);
    return r ? r : strdup(p);
}

/* The token file a config names: a bare name lives in the run directory. */
static void resolve_tokens_path(const char *dir, const char *tokens, char *buf, size_t size) {
    int n = strchr(tokens, '/') ? snprintf(buf, size, "%s", tokens) : snprintf(buf, size, "%s/%s", dir, tokens);
    if (n < 0 || (size_t)n >= size) buf[0] = '\0'; /* too long: fails to open with a clear name */
}

static rwkv_status check_options(const rwkv_train_options *o, int fresh, rwkv_error *err) {
#define BAD(...) return rwkv_fail(err, RWKV_ERR_ARG, __VA_ARGS__)
    if (fresh) {
        if (!o->data_path || !*o->data_path) BAD("--data is required (a text file or a token file)");
        if (!o->out_dir || !*o->out_dir) BAD("--out is required (the run directory)");
        if (o->tokenizer && !*o->tokenizer) BAD("--tokenizer expects 'bytes' or a tokenizer file");
    }
    if (!train_arch_find(o->arch ? o->arch : "rwkv4"))
        BAD("--arch must be one of %s, got '%s'", train_arch_names(), o->arch);
    if (o->n_head < 0 || o->n_head > 65536) BAD("--heads must be in [0, 65536] (0: embd/64), got %d", o->n_head);
    if (o->n_layer < 1 || o->n_layer > 1024) BAD("--layers must be in [1, 1024], got %d", o->n_layer);
    if (o->n_embd < 1 || o->n_embd > 65536) BAD("--embd must be in [1, 65536], got %d", o->n_embd);
    if (o->n_ffn < 0 || o->n_ffn > 1 << 20) BAD("--ffn must be in [0, 1048576] (0: 4 x embd), got %d", o->n_ffn);
    if (o->ctx_len < 1 || o->ctx_len > 1 << 20) BAD("--ctx must be in [1, 1048576], got %d", o->ctx_len);
    if (o->batch < 1 || o->batch > 1 << 16) BAD("--batch must be in [1, 65536], got %d", o->batch);
    if (o->grad_accum < 1 || o->grad_accum > 1 << 16)
        BAD("--accum must be in [1, 65536], got %d", o->grad_accum);
    if (o->steps < 1) BAD("--steps must be at least 1, got %ld", o->steps);
    if (!(o->lr_init > 0 && isfinite(o->lr_init))) BAD("--lr must be a positive number, got %g", o->lr_init);
    if (!(o->lr_final > 0 && isfinite(o->lr_final)))
        BAD("--lr-final must be a positive number, got %g", o->lr_final);
    if (o->warmup_steps < 0) BAD("--warmup-steps must not be negative, got %ld", o->warmup_steps);
    if (o->const_steps < -1) BAD("--const-steps must be >= 0 (or -1: default), got %ld", o->const_steps);
    if (!(o->beta1 >= 0 && o->beta1 < 1)) BAD("--beta1 must be in [0, 1), got %g", o->beta1);
    if (!(o->beta2 >= 0 && o->beta2 < 1)) BAD("--beta2 must be in [0, 1), got %g", o->beta2);
    if (!(o->adam_eps > 0 && isfinite(o->adam_eps))) BAD("--adam-eps must be positive, got %g", o->adam_eps);
    if (!(o->weight_decay >= 0 && isfinite(o->weight_decay)))
        BAD("--weight-decay must be >= 0, got %g", o->weight_decay);
    if (!(o->grad_clip >= 0 && isfinite(o->grad_clip))) BAD("--grad-clip must be >= 0, got %g", o->grad_clip);
    if (!(o->l2wrap >= 0 && isfinite(o->l2wrap))) BAD("--l2wrap must be >= 0, got %g", o->l2wrap);
    if (!(o->emb_init >= 0 && isfinite(o->emb_init))) BAD("--emb-init must be >= 0, got %g", o->emb_init);
    if (!(o->val_fraction >= 0 && o->val_fraction < 1))
        BAD("--val-fraction must be in [0, 1), got %g", o->val_fraction);
    if (o->val_windows < 0) BAD("--val-windows must be >= 0, got %d", o->val_windows);
    if (o->eval_every < 0) BAD("--eval-every must be >= 0, got %ld", o->eval_every);
    if (o->save_every < 0) BAD("--save-every must be >= 0, got %ld", o->save_every);
    if (o->keep_checkpoints < 0) BAD("--keep must be >= 0, got %d", o->keep_checkpoints);
    if (o->threads < 0 || o->threads > 4096) BAD("--threads must be in [0, 4096], got %d", o->threads);
    if ((int64_t)o->batch * o->ctx_len > (int64_t)1 << 26)
        BAD("--batch x --ctx = %lld tokens per micro-batch is too large", (long long)o->batch * o->ctx_len);
#undef BAD
    return RWKV_OK;
}

/* ------------------------------------------------------------------------ */
/* rwkv init                                                                */
/* ------------------------------------------------------------------------ */

rwkv_status rwkv_init_checkpoint(const rwkv_init_options *o, const char *out_path, rwkv_error *err) {
    if (!o || !out_path || !*out_path) return rwkv_fail(err, RWKV_ERR_ARG, "--out is required");
    if (o->n_layer < 1 || o->n_layer > 1024)
        return rwkv_fail(err, RWKV_ERR_ARG, "--layers must be in [1, 1024], got %d", o->n_layer);
    if (o->n_embd < 1 || o->n_embd > 65536)
        return rwkv_fail(err, RWKV_ERR_ARG, "--embd must be in [1, 65536], got %d", o->n_embd);
    if (o->n_vocab < 1 || o->n_vocab > 1 << 24)
        return rwkv_fail(err, RWKV_ERR_ARG, "--vocab must be in [1, 16777216], got %d", o->n_vocab);
    if (o->n_ffn < 0 || o->n_ffn > 1 << 20)
        return rwkv_fail(err, RWKV_ERR_ARG, "--ffn must be in [0, 1048576] (0: 4 x embd), got %d", o->n_ffn);
    if (!(o->emb_scale >= 0 && isfinite(o->emb_scale)))
        return rwkv_fail(err, RWKV_ERR_ARG, "--emb-scale must be >= 0, got %g", o->emb_scale);
    const train_arch *arch = train_arch_find(o->arch ? o->arch : "rwkv4");
    if (!arch) return rwkv_fail(err, RWKV_ERR_ARG, "--arch must be one of %s, got '%s'", train_arch_names(), o->arch);
    if (o->n_head < 0 || o->n_ctx < 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "--heads and --ctx must not be negative");
    arch_shape shape = {o->n_vocab, o->n_embd, o->n_layer, o->n_ffn, o->n_head, o->n_ctx ? o->n_ctx : 1024};
    rwkv_status s = arch->shape_check(&shape, err);
    if (s != RWKV_OK) return s;
    param_layout lay;
    s = arch->layout(&shape, &lay, err);
    if (s != RWKV_OK) return s;
    float *params = malloc(lay.total * sizeof(float) + 1);
    if (!params) {
        param_layout_free(&lay);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu parameters", lay.total);
    }
    s = arch->init(&shape, &lay, params, o->seed, (float)o->emb_scale, err);
    if (s == RWKV_OK) s = arch->save(out_path, &shape, &lay, params, err);
    free(params);
    param_layout_free(&lay);
    return s;
}

/* ------------------------------------------------------------------------ */
/* The run                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct run {
    train_config cfg;
    const rwkv_train_options *o; /* = &cfg.opt */
    char dir[DIR_MAX_LEN];
    int lock_fd;
    int debug_save_pause_ms;
    long debug_nan_step;
    int measure_peak;

    token_data data;
    uint64_t *val_starts;
    int64_t n_val;

    const train_arch *arch;
    arch_shape shape; /* of the model being trained */
    param_layout lay;
    int have_layout;
    float *params, *grads, *m, *v;
    adam_group *groups;
    lr_schedule sched;
    adam_hparams hp;

    void *ctx, *ctx_rem; /* the architecture's training contexts (full batch, last validation batch) */
    int rem_B;
    int *inputs, *targets;

    train_rng rng;
    long step;
    uint64_t samples, tokens_seen, skipped;
    double elapsed_before; /* wall seconds of earlier sessions */
    double last_val;
    long last_saved;

    FILE *log;
    double peak_gflops;
} run;

static void run_free(run *r) {
    if (r->log) fclose(r->log);
    if (r->arch && r->ctx) r->arch->ctx_free(r->ctx);
    if (r->arch && r->ctx_rem) r->arch->ctx_free(r->ctx_rem);
    free(r->inputs);
    free(r->targets);
    free(r->params);
    free(r->grads);
    free(r->m);
    free(r->v);
    free(r->groups);
    free(r->val_starts);
    if (r->have_layout) param_layout_free(&r->lay);
    token_data_close(&r->data);
    train_config_free(&r->cfg);
    if (r->lock_fd >= 0) close(r->lock_fd);
    memset(r, 0, sizeof *r);
    r->lock_fd = -1;
}

/* Opens the token file and sets the split and the validation windows. */
static rwkv_status run_open_data(run *r, rwkv_error *err) {
    char path[PATH_MAX_LEN];
    resolve_tokens_path(r->dir, r->cfg.tokens_path, path, sizeof path);
    rwkv_status s = token_data_open(path, &r->data, err);
    if (s != RWKV_OK) return s;
    s = token_data_split(&r->data, r->o->val_fraction, r->o->ctx_len, path, err);
    if (s != RWKV_OK) return s;
    if (r->o->val_fraction > 0) {
        r->n_val = data_val_windows(&r->data, r->o->ctx_len, r->o->val_windows, &r->val_starts);
        if (r->n_val < 0) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    return RWKV_OK;
}

/* The model's shape as the run's settings give it (the position table of a
 * transformer is ctx_len rows). */
static arch_shape options_shape(const run *r) {
    const rwkv_train_options *o = r->o;
    arch_shape sh = {r->cfg.n_vocab, o->n_embd, o->n_layer, o->n_ffn, o->n_head, o->ctx_len};
    return sh;
}

/* Fresh parameters: the --init checkpoint or the architecture's initialisation. */
static rwkv_status run_fresh_params(run *r, rwkv_error *err) {
    const rwkv_train_options *o = r->o;
    rwkv_status s;
    if (r->cfg.init_path) {
        r->shape = options_shape(r);
        s = r->arch->load(r->cfg.init_path, &r->shape, &r->lay, &r->params, err);
        if (s != RWKV_OK) return s;
        r->have_layout = 1;
    } else {
        r->shape = options_shape(r);
        s = r->arch->shape_check(&r->shape, err);
        if (s == RWKV_OK) s = r->arch->layout(&r->shape, &r->lay, err);
        if (s != RWKV_OK) return s;
        r->have_layout = 1;
        r->params = malloc(r->lay.total * sizeof(float) + 1);
        if (!r->params) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu parameters", r->lay.total);
        s = r->arch->init(&r->shape, &r->lay, r->params, o->seed,
                          (float)(o->emb_init > 0 ? o->emb_init : o->lr_init), err);
        if (s != RWKV_OK) return s;
    }
    return RWKV_OK;
}

/* Checks a model's shape against the run's settings (which hold the
 * resolved sizes: n_ffn and n_head are stored filled in). */
static rwkv_status check_shape(const run *r, const arch_shape *sh, const char *what, rwkv_error *err) {
    const rwkv_train_options *o = r->o;
    int ffn = o->n_ffn ? o->n_ffn : 4 * o->n_embd;
    if (sh->n_vocab != r->cfg.n_vocab || sh->n_embd != o->n_embd || sh->n_layer != o->n_layer || sh->n_ffn != ffn ||
        (o->n_head > 0 && sh->n_head != o->n_head))
        return rwkv_fail(err, RWKV_ERR_SHAPE,
                         "%s: model is %d layers x %d (ffn %d, vocab %d, heads %d) but the run is %d x %d (ffn %d, "
                         "vocab %d, heads %d)",
                         what, sh->n_layer, sh->n_embd, sh->n_ffn, sh->n_vocab, sh->n_head, o->n_layer, o->n_embd,
                         ffn, r->cfg.n_vocab, o->n_head);
    if (sh->n_ctx > 0 && sh->n_ctx < o->ctx_len)
        return rwkv_fail(err, RWKV_ERR_SHAPE, "%s: the model has %d positions, fewer than --ctx %d", what, sh->n_ctx,
                         o->ctx_len);
    return RWKV_OK;
}

/* Buffers, optimizer groups, schedule and the training contexts. */
static rwkv_status run_alloc(run *r, rwkv_error *err) {
    const rwkv_train_options *o = r->o;
    size_t n = r->lay.total;
    r->grads = calloc(n + 1, sizeof(float));
    if (!r->m) r->m = calloc(n + 1, sizeof(float));
    if (!r->v) r->v = calloc(n + 1, sizeof(float));
    r->groups = calloc((size_t)r->lay.count + 1, sizeof *r->groups);
    size_t bt = (size_t)o->batch * (size_t)o->ctx_len;
    r->inputs = malloc(bt * sizeof(int));
    r->targets = malloc(bt * sizeof(int));
    if (!r->grads || !r->m || !r->v || !r->groups || !r->inputs || !r->targets)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu parameters' gradients and moments", n);
    for (int i = 0; i < r->lay.count; i++) {
        const param_info *p = &r->lay.params[i];
        int big_dims = 0;
        for (int d = 0; d < p->ndim; d++) big_dims += p->shape[d] > 1;
        r->groups[i].offset = p->offset;
        r->groups[i].count = p->numel;
        r->groups[i].lr_scale = o->layerwise_lr ? p->lr_scale : 1.0f;
        r->groups[i].decay = big_dims >= 2; /* matrices only */
    }
    r->hp.beta1 = (float)o->beta1;
    r->hp.beta2 = (float)o->beta2;
    r->hp.eps = (float)o->adam_eps;
    r->hp.weight_decay = (float)o->weight_decay;
    r->sched.lr_init = o->lr_init;
    r->sched.lr_final = o->lr_final;
    r->sched.total_steps = o->steps;
    r->sched.const_steps = o->const_steps;
    r->sched.warmup_steps = o->warmup_steps;
    rwkv_status s = r->arch->ctx_new(&r->shape, &r->lay, o->batch, o->ctx_len, o->threads, &r->ctx, err);
    if (s != RWKV_OK) {
        char what[96];
        snprintf(what, sizeof what, "--batch %d x --ctx %d", o->batch, o->ctx_len);
        if (err) rwkv_error_prefix(err, what);
        return s;
    }
    r->rem_B = r->n_val > 0 ? (int)(r->n_val % o->batch) : 0;
    if (r->rem_B > 0) s = r->arch->ctx_new(&r->shape, &r->lay, r->rem_B, o->ctx_len, o->threads, &r->ctx_rem, err);
    return s;
}

static rwkv_status evaluate(run *r, double *out, rwkv_error *err) {
    const int B = r->o->batch, T = r->o->ctx_len;
    double sum = 0;
    for (int64_t done = 0; done < r->n_val;) {
        int nb = r->n_val - done >= B ? B : r->rem_B;
        void *ctx = nb == B ? r->ctx : r->ctx_rem;
        for (int b = 0; b < nb; b++)
            data_window(&r->data, r->val_starts[done + b], T, r->inputs + (size_t)b * T, r->targets + (size_t)b * T);
        float loss = 0;
        rwkv_status s = r->arch->forward_loss(ctx, r->params, r->inputs, r->targets, &loss, err);
        if (s != RWKV_OK) return s;
        sum += (double)loss * nb;
        done += nb;
    }
    *out = r->n_val > 0 ? sum / (double)r->n_val : NAN;
    return RWKV_OK;
}

static rwkv_status save_checkpoint(run *r, double elapsed, const char *model_path, rwkv_error *err) {
    char state_path[PATH_MAX_LEN];
    ckpt_state_path(r->dir, r->step, state_path, sizeof state_path);
    /* model first, then the state that completes the checkpoint */
    rwkv_status s = r->arch->save(model_path, &r->shape, &r->lay, r->params, err);
    if (s != RWKV_OK) return s;
    train_state st;
    memset(&st, 0, sizeof st);
    st.step = (uint64_t)r->step;
    memcpy(st.rng, r->rng.s, sizeof st.rng);
    st.samples = r->samples;
    st.tokens_seen = r->tokens_seen;
    st.skipped = r->skipped;
    st.elapsed_s = elapsed;
    st.last_val_loss = r->last_val;
    st.params_hash = params_hash(r->params, r->lay.total);
    st.n = r->lay.total;
    st.m = r->m;
    st.v = r->v;
    s = train_state_write(state_path, &st, r->debug_save_pause_ms, err);
    if (s != RWKV_OK) return s;
    r->last_saved = r->step;
    ckpt_prune(r->dir, r->o->keep_checkpoints);
    return RWKV_OK;
}

static void json_num(FILE *f, const char *key, const char *fmt, double x) {
    fprintf(f, ",\"%s\":", key);
    if (isfinite(x)) fprintf(f, fmt, x);
    else fputs("null", f);
}

static void log_step(run *r, double loss, double lr, double tps, double gnorm, double mfu, double elapsed,
                     double val, int skipped) {
    FILE *f = r->log;
    fprintf(f, "{\"step\":%ld", r->step);
    json_num(f, "loss", "%.9g", loss);
    json_num(f, "lr", "%.9g", lr);
    json_num(f, "tokens_per_s", "%.1f", tps);
    json_num(f, "grad_norm", "%.6g", gnorm);
    json_num(f, "mfu", "%.5f", mfu);
    json_num(f, "elapsed_s", "%.3f", elapsed);
    if (!isnan(val)) json_num(f, "val_loss", "%.9g", val);
    if (skipped) fputs(",\"skipped\":true", f);
    fputs("}\n", f);
    fflush(f);
}

/* The name of the first parameter whose gradient holds a non-finite value. */
static const char *nonfinite_param(const run *r) {
    for (int i = 0; i < r->lay.count; i++) {
        const param_info *p = &r->lay.params[i];
        for (size_t j = 0; j < p->numel; j++)
            if (!isfinite(r->grads[p->offset + j])) return p->name;
    }
    return "(none)";
}

static rwkv_status train_loop(run *r, rwkv_train_callback cb, void *user, const char *note, rwkv_error *err) {
    const rwkv_train_options *o = r->o;
    const int B = o->batch, T = o->ctx_len, A = o->grad_accum;
    const double tokens_per_step = (double)B * T * A;
    const double flops_per_token = r->arch->flops_per_token(&r->shape, &r->lay, T);
    r->peak_gflops = r->measure_peak ? machine_fma_peak_gflops(o->threads) : 0.0;
    const double session_start = now_s();
    double train_time = 0; /* this session's seconds inside steps */
    long session_steps = 0;
    int stop = 0;
    char model_path[PATH_MAX_LEN];

    rwkv_train_progress p;
    memset(&p, 0, sizeof p);
    p.event = RWKV_TRAIN_START;
    p.step = r->step;
    p.steps = o->steps;
    p.loss = p.val_loss = NAN;
    p.last_val_loss = r->last_val;
    p.path = r->dir;
    p.note = note;
    p.n_params = (int64_t)r->lay.total;
    p.arch = r->arch->name;
    p.n_layer = r->shape.n_layer;
    p.n_embd = r->shape.n_embd;
    p.n_ffn = r->shape.n_ffn;
    p.n_vocab = r->shape.n_vocab;
    p.n_head = r->shape.n_head;
    p.ctx_len = T;
    p.batch = B;
    p.grad_accum = A;
    p.threads = o->threads;
    p.start_step = r->step;
    p.train_tokens = (int64_t)r->data.n_train;
    p.val_tokens = (int64_t)r->data.n_val;
    p.val_windows = r->n_val;
    p.peak_gflops = r->peak_gflops;
    p.elapsed_s = r->elapsed_before;
    if (cb && cb(&p, user)) stop = 1;

    while (!stop && r->step < o->steps) {
        double t0 = now_s();
        memset(r->grads, 0, r->lay.total * sizeof(float));
        double loss_sum = 0;
        for (int a = 0; a < A; a++) {
            data_random_batch(&r->data, &r->rng, B, T, r->inputs, r->targets);
            r->samples += (uint64_t)B;
            float loss = 0;
            rwkv_status s = r->arch->forward_backward(r->ctx, r->params, r->inputs, r->targets, (float)o->l2wrap,
                                                      r->grads, &loss, err);
            if (s == RWKV_ERR_NUMERIC) loss = NAN; /* handled by the non-finite guard below */
            else if (s != RWKV_OK) return s;
            loss_sum += (double)loss;
        }
        double loss = loss_sum / A;
        if (r->debug_nan_step > 0 && r->step + 1 == r->debug_nan_step) r->grads[0] = NAN;
        const float gscale = 1.0f / (float)A;
        double gnorm = grad_global_norm(r->grads, r->lay.total, o->threads) * gscale;
        double lr = lr_at(&r->sched, r->step);
        int skipped = 0;
        if (!isfinite(loss) || !isfinite(gnorm)) {
            char what[160];
            if (!isfinite(loss)) snprintf(what, sizeof what, "loss (%g)", loss);
            else snprintf(what, sizeof what, "gradient of %s (loss %.4f)", nonfinite_param(r), loss);
            if (!o->skip_nonfinite) {
                char last[PATH_MAX_LEN + 64] = "none yet";
                if (r->last_saved >= 0) ckpt_model_path(r->dir, r->last_saved, last, sizeof last);
                return rwkv_fail(err, RWKV_ERR_NUMERIC,
                                 "step %ld: non-finite %s; the weights were not updated (last checkpoint: %s); "
                                 "resume with --skip-nonfinite to skip such batches",
                                 r->step + 1, what, last);
            }
            skipped = 1;
            r->skipped++;
        } else {
            float clip = grad_clip_scale(gnorm, o->grad_clip);
            long t = r->step + 1 - (long)r->skipped; /* updates applied, this one included */
            adam_update(r->params, r->grads, r->m, r->v, r->groups, r->lay.count, (float)lr, gscale * clip, t,
                        &r->hp, o->threads);
        }
        r->step++;
        r->tokens_seen += (uint64_t)tokens_per_step;
        double dt = now_s() - t0;
        train_time += dt;
        session_steps++;

        double val = NAN;
        int last = r->step == o->steps;
        if (r->n_val > 0 && ((o->eval_every > 0 && r->step % o->eval_every == 0) || last)) {
            rwkv_status s = evaluate(r, &val, err);
            if (s != RWKV_OK) return s;
            r->last_val = val;
        }
        double elapsed = r->elapsed_before + (now_s() - session_start);
        double tps = dt > 0 ? tokens_per_step / dt : 0;
        double avg_tps = train_time > 0 ? tokens_per_step * (double)session_steps / train_time : 0;
        double mfu = r->peak_gflops > 0 ? flops_per_token * avg_tps / (r->peak_gflops * 1e9) : 0;
        log_step(r, loss, lr, tps, gnorm, mfu, elapsed, val, skipped);

        p.event = RWKV_TRAIN_STEP;
        p.note = NULL;
        p.step = r->step;
        p.loss = loss;
        p.val_loss = val;
        p.last_val_loss = r->last_val;
        p.lr = lr;
        p.grad_norm = gnorm;
        p.tokens_per_s = tps;
        p.avg_tokens_per_s = avg_tps;
        p.mfu = mfu;
        p.elapsed_s = elapsed;
        p.eta_s = (now_s() - session_start) / (double)session_steps * (double)(o->steps - r->step);
        p.skipped = skipped;
        if (cb && cb(&p, user)) stop = 1;

        if ((o->save_every > 0 && r->step % o->save_every == 0) || last || stop) {
            ckpt_model_path(r->dir, r->step, model_path, sizeof model_path);
            rwkv_status s = save_checkpoint(r, r->elapsed_before + (now_s() - session_start), model_path, err);
            if (s != RWKV_OK) return s;
            p.event = RWKV_TRAIN_SAVED;
            p.path = model_path;
            if (cb && cb(&p, user)) stop = 1;
        }
    }
    if (r->step >= o->steps) {
        char final[PATH_MAX_LEN];
        snprintf(final, sizeof final, "%s/model.safetensors", r->dir);
        if (r->last_saved != r->step) {
            ckpt_model_path(r->dir, r->step, model_path, sizeof model_path);
            rwkv_status s = save_checkpoint(r, r->elapsed_before + (now_s() - session_start), model_path, err);
            if (s != RWKV_OK) return s;
        }
        rwkv_status s = r->arch->save(final, &r->shape, &r->lay, r->params, err);
        if (s != RWKV_OK) return s;
        p.path = NULL;
    }
    p.event = RWKV_TRAIN_DONE;
    p.step = r->step;
    p.stopped = r->step < o->steps;
    p.elapsed_s = r->elapsed_before + (now_s() - session_start);
    p.last_val_loss = r->last_val;
    p.eta_s = 0;
    if (cb) cb(&p, user);
    return RWKV_OK;
}

static rwkv_status open_log(run *r, const char *mode, rwkv_error *err) {
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof path, "%s/train.jsonl", r->dir);
    r->log = fopen(path, mode);
    if (!r->log) return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return RWKV_OK;
}

rwkv_status rwkv_train_run(const rwkv_train_options *opt, rwkv_train_callback cb, void *user, rwkv_error *err) {
    if (!opt) return rwkv_fail(err, RWKV_ERR_ARG, "no options");
    rwkv_status s = check_options(opt, 1, err);
    if (s != RWKV_OK) return s;
    run r;
    memset(&r, 0, sizeof r);
    r.lock_fd = -1;
    r.last_saved = -1;
    r.last_val = NAN;
    if (snprintf(r.dir, sizeof r.dir, "%s", opt->out_dir) >= (int)sizeof r.dir)
        return rwkv_fail(err, RWKV_ERR_ARG, "--out: path too long");
    r.cfg.opt = *opt;
    r.o = &r.cfg.opt;
    r.debug_save_pause_ms = opt->debug_save_pause_ms;
    r.debug_nan_step = opt->debug_nan_step;
    r.measure_peak = opt->measure_peak;
    rwkv_train_options *o = &r.cfg.opt;
    char path[PATH_MAX_LEN];

    s = mkdir_p(r.dir, err);
    if (s == RWKV_OK) s = lock_dir(r.dir, &r.lock_fd, err);
    snprintf(path, sizeof path, "%s/config.json", r.dir);
    if (s == RWKV_OK && file_exists(path))
        s = rwkv_fail(err, RWKV_ERR_ARG,
                      "%s: already holds a training run (config.json); continue it with --resume %s or choose "
                      "another --out",
                      r.dir, r.dir);
    if (s != RWKV_OK) {
        run_free(&r);
        return s;
    }
    ckpt_remove_temps(r.dir);

    /* the data: a token file is used in place, a text is tokenized into DIR/tokens.bin */
    const int bytes_tok = !opt->tokenizer || strcmp(opt->tokenizer, "bytes") == 0;
    r.cfg.data_path = abs_path(opt->data_path);
    r.cfg.tokenizer = bytes_tok ? strdup("bytes") : abs_path(opt->tokenizer);
    r.cfg.init_path = opt->init_path ? abs_path(opt->init_path) : NULL;
    r.cfg.arch = strdup(opt->arch ? opt->arch : "rwkv4");
    r.arch = train_arch_find(r.cfg.arch);
    if (!r.cfg.data_path || !r.cfg.tokenizer || !r.cfg.arch || (opt->init_path && !r.cfg.init_path)) {
        run_free(&r);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    mapped_file mf;
    s = mapped_file_open(opt->data_path, &mf, err);
    if (s != RWKV_OK) {
        rwkv_error_prefix(err, "--data");
        run_free(&r);
        return s;
    }
    int is_tokens = token_file_detect(mf.data, mf.size);
    mapped_file_close(&mf);
    if (is_tokens) {
        r.cfg.tokens_path = strdup(r.cfg.data_path);
    } else {
        snprintf(path, sizeof path, "%s/tokens.bin", r.dir);
        s = tokenize_text_file(opt->data_path, r.cfg.tokenizer, path, NULL, NULL, err);
        r.cfg.tokens_path = strdup("tokens.bin");
    }
    if (s == RWKV_OK && !r.cfg.tokens_path) s = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    if (s == RWKV_OK) s = run_open_data(&r, err);
    if (s == RWKV_OK) {
        r.cfg.n_vocab = r.data.n_vocab;
        if (o->threads == 0) o->threads = machine_cores();
        if (o->const_steps < 0) o->const_steps = lr_default_const_steps(o->steps);
        s = run_fresh_params(&r, err);
    }
    if (s == RWKV_OK && r.cfg.init_path) {
        /* the model decides the shape; its vocabulary must cover the data's */
        if (r.shape.n_vocab < r.data.n_vocab)
            s = rwkv_fail(err, RWKV_ERR_SHAPE, "%s: vocabulary %d is smaller than the data's %d", r.cfg.init_path,
                          r.shape.n_vocab, r.data.n_vocab);
        else if (r.shape.n_ctx > 0 && r.shape.n_ctx < o->ctx_len)
            s = rwkv_fail(err, RWKV_ERR_SHAPE, "%s: the model has %d positions, fewer than --ctx %d",
                          r.cfg.init_path, r.shape.n_ctx, o->ctx_len);
        r.cfg.n_vocab = r.shape.n_vocab;
        o->n_layer = r.shape.n_layer;
        o->n_embd = r.shape.n_embd;
        o->n_ffn = r.shape.n_ffn;
    }
    /* the resolved sizes are stored, so a resume checks against exactly them */
    if (s == RWKV_OK) {
        o->n_ffn = r.shape.n_ffn;
        o->n_head = r.shape.n_head;
    }
    if (s == RWKV_OK) {
        rng_seed(&r.rng, o->seed);
        s = run_alloc(&r, err);
    }
    /* the settings, then the log; from here on --resume works */
    if (s == RWKV_OK) {
        snprintf(path, sizeof path, "%s/config.json", r.dir);
        s = train_config_write(path, &r.cfg, err);
    }
    if (s == RWKV_OK) s = open_log(&r, "w", err);
    if (s == RWKV_OK) s = train_loop(&r, cb, user, NULL, err);
    run_free(&r);
    return s;
}

/* Keeps the complete lines of train.jsonl whose step is <= `step`. */
static rwkv_status truncate_log(const char *dir, long step, rwkv_error *err);

typedef struct log_keep {
    const char *data;
    size_t len;
} log_keep;

static rwkv_status write_log_keep(FILE *f, void *ctx, rwkv_error *err) {
    log_keep *k = ctx;
    if (k->len && fwrite(k->data, 1, k->len, f) != k->len) return rwkv_fail(err, RWKV_ERR_IO, "write failed");
    return RWKV_OK;
}

static rwkv_status truncate_log(const char *dir, long step, rwkv_error *err) {
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return RWKV_OK; /* no log yet */
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    size_t keep = 0;
    for (size_t i = 0; i < len;) {
        char *nl = memchr(buf + i, '\n', len - i);
        if (!nl) break; /* a partial last line */
        long s;
        if (sscanf(buf + i, "{\"step\":%ld", &s) != 1 || s > step) break;
        i = (size_t)(nl - buf) + 1;
        keep = i;
    }
    rwkv_status st = RWKV_OK;
    if (keep != len) {
        log_keep k = {buf, keep};
        st = atomic_write_file(path, write_log_keep, &k, err);
    }
    free(buf);
    return st;
}

rwkv_status rwkv_train_resume(const char *dir, const rwkv_resume_options *ro, rwkv_train_callback cb, void *user,
                              rwkv_error *err) {
    rwkv_resume_options def = rwkv_resume_options_default();
    if (!ro) ro = &def;
    if (!dir || !*dir) return rwkv_fail(err, RWKV_ERR_ARG, "--resume needs the run directory");
    if (ro->steps < 0) return rwkv_fail(err, RWKV_ERR_ARG, "--steps must be at least 1, got %ld", ro->steps);
    if (ro->threads < 0 || ro->threads > 4096)
        return rwkv_fail(err, RWKV_ERR_ARG, "--threads must be in [0, 4096], got %d", ro->threads);
    run r;
    memset(&r, 0, sizeof r);
    r.lock_fd = -1;
    r.last_saved = -1;
    r.last_val = NAN;
    if (snprintf(r.dir, sizeof r.dir, "%s", dir) >= (int)sizeof r.dir)
        return rwkv_fail(err, RWKV_ERR_ARG, "--resume: path too long");
    char path[PATH_MAX_LEN];
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return rwkv_fail(err, RWKV_ERR_IO, "%s: not a directory (--resume expects a run directory)", dir);
    rwkv_status s = lock_dir(r.dir, &r.lock_fd, err);
    if (s != RWKV_OK) return s;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!file_exists(path)) {
        run_free(&r);
        return rwkv_fail(err, RWKV_ERR_IO, "%s: no config.json here, so this is not a training run directory", dir);
    }
    s = train_config_read(path, &r.cfg, err);
    if (s != RWKV_OK) {
        run_free(&r);
        return s;
    }
    r.o = &r.cfg.opt;
    rwkv_train_options *o = &r.cfg.opt;
    r.arch = train_arch_find(r.cfg.arch);
    if (!r.arch) {
        s = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: unknown \"arch\" '%s' (expected one of %s)", path, r.cfg.arch,
                      train_arch_names());
        run_free(&r);
        return s;
    }
    int changed = 0;
    if (ro->steps > 0 && ro->steps != o->steps) {
        o->steps = ro->steps;
        changed = 1;
    }
    if (ro->skip_nonfinite >= 0 && ro->skip_nonfinite != o->skip_nonfinite) {
        o->skip_nonfinite = ro->skip_nonfinite;
        changed = 1;
    }
    if (o->threads == 0) o->threads = machine_cores();
    r.debug_save_pause_ms = ro->debug_save_pause_ms;
    r.debug_nan_step = ro->debug_nan_step;
    r.measure_peak = ro->measure_peak;
    s = check_options(o, 0, err);
    if (s == RWKV_OK && o->const_steps < 0) o->const_steps = lr_default_const_steps(o->steps);
    /* a longer (or shorter) run and the non-finite policy are stored for later resumes;
     * a thread count given here applies to this session only */
    if (s == RWKV_OK && changed) s = train_config_write(path, &r.cfg, err);
    if (ro->threads > 0) o->threads = ro->threads;
    if (s == RWKV_OK) s = run_open_data(&r, err);
    if (s != RWKV_OK) {
        run_free(&r);
        return s;
    }
    ckpt_remove_temps(dir);

    /* the newest complete checkpoint */
    char note[1024] = "";
    size_t nl = 0;
    long *steps = NULL;
    int n = ckpt_list(dir, &steps, err);
    if (n < 0) {
        run_free(&r);
        return err ? err->code : RWKV_ERR_IO;
    }
    long resumed = -1;
    int first_ok = n;
    for (int i = 0; i < n && resumed < 0; i++) {
        char mpath[PATH_MAX_LEN], spath[PATH_MAX_LEN];
        ckpt_model_path(dir, steps[i], mpath, sizeof mpath);
        ckpt_state_path(dir, steps[i], spath, sizeof spath);
        rwkv_error e;
        train_state ts;
        param_layout lay;
        arch_shape sh = options_shape(&r);
        float *params = NULL;
        rwkv_status cs = train_state_read(spath, &ts, &e);
        if (cs == RWKV_OK && ts.step != (uint64_t)steps[i])
            cs = rwkv_fail(&e, RWKV_ERR_FORMAT, "%s: holds step %llu", spath, (unsigned long long)ts.step);
        if (cs == RWKV_OK) {
            cs = r.arch->load(mpath, &sh, &lay, &params, &e);
            if (cs == RWKV_OK) {
                cs = check_shape(&r, &sh, mpath, &e);
                if (cs == RWKV_OK && (lay.total != ts.n || params_hash(params, lay.total) != ts.params_hash))
                    cs = rwkv_fail(&e, RWKV_ERR_FORMAT, "%s: does not match %s (weights hash)", mpath, spath);
                if (cs != RWKV_OK) {
                    free(params);
                    param_layout_free(&lay);
                }
            }
            if (cs != RWKV_OK) train_state_free(&ts);
        }
        if (cs != RWKV_OK) {
            if (nl < sizeof note - 1)
                nl += (size_t)snprintf(note + nl, sizeof note - nl, "ignored checkpoint %ld (%s); ", steps[i],
                                       e.message);
            continue;
        }
        resumed = steps[i];
        first_ok = i;
        r.shape = sh;
        r.lay = lay;
        r.have_layout = 1;
        r.params = params;
        r.m = ts.m;
        r.v = ts.v;
        memcpy(r.rng.s, ts.rng, sizeof ts.rng);
        r.step = (long)ts.step;
        r.samples = ts.samples;
        r.tokens_seen = ts.tokens_seen;
        r.skipped = ts.skipped;
        r.elapsed_before = ts.elapsed_s;
        r.last_val = ts.last_val_loss;
        r.last_saved = r.step;
    }
    /* checkpoints newer than the one taken are damaged: the run rewrites them */
    for (int i = 0; i < first_ok && i < n; i++) {
        char p2[PATH_MAX_LEN];
        ckpt_state_path(dir, steps[i], p2, sizeof p2);
        unlink(p2);
        ckpt_model_path(dir, steps[i], p2, sizeof p2);
        unlink(p2);
    }
    free(steps);
    if (resumed < 0) {
        /* nothing saved yet: start over exactly as the first session did */
        s = run_fresh_params(&r, err);
        if (s == RWKV_OK) s = check_shape(&r, &r.shape, r.cfg.init_path ? r.cfg.init_path : "fresh model", err);
        rng_seed(&r.rng, o->seed);
        if (nl < sizeof note - 1) snprintf(note + nl, sizeof note - nl, "no complete checkpoint: starting from step 0");
    } else if (nl < sizeof note - 1) {
        snprintf(note + nl, sizeof note - nl, "resuming from checkpoint %ld", resumed);
    }
    if (s == RWKV_OK && resumed > o->steps)
        s = rwkv_fail(err, RWKV_ERR_ARG, "--steps %ld is below the step of the checkpoint to resume from (%ld)",
                      o->steps, resumed);
    if (s == RWKV_OK) s = run_alloc(&r, err);
    if (s == RWKV_OK) s = truncate_log(dir, resumed < 0 ? 0 : resumed, err);
    if (s == RWKV_OK) s = open_log(&r, "a", err);
    if (s == RWKV_OK) s = train_loop(&r, cb, user, note, err);
    run_free(&r);
    return s;
}
