/* Defaults and validation of the training options (train/options.h). */
#include "train/options.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rendezvous.h"
#include "train/arch.h"
#include "train/engine.h"

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
    o.device = "cpu";
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

int train_device_index(const char *device) {
    if (!device || strcmp(device, "cpu") == 0) return -1;
    if (strcmp(device, "cuda") == 0) return 0;
    if (strncmp(device, "cuda:", 5) != 0 || device[5] < '0' || device[5] > '9') return -2;
    char *end;
    long n = strtol(device + 5, &end, 10);
    return *end || n > INT_MAX / 2 ? -2 : (int)n;
}

const char *train_default_precision(const char *device) { return train_device_index(device) >= 0 ? "bf16" : "fp32"; }

/* --device and --precision: a known name, then whether it can run here. */
static rwkv_status check_device(const rwkv_train_options *o, rwkv_error *err) {
    const int index = train_device_index(o->device);
    if (index == -2)
        return rwkv_fail(err, RWKV_ERR_ARG, "--device must be cpu, cuda or cuda:N, got '%s'", o->device);
    if (o->precision && strcmp(o->precision, "fp32") != 0 && strcmp(o->precision, "bf16") != 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "--precision must be bf16 or fp32, got '%s'", o->precision);
    if (index < 0)
        return o->precision && strcmp(o->precision, "bf16") == 0
                   ? rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                               "--precision bf16: the CPU trains in fp32 only (bf16 needs --device cuda)")
                   : RWKV_OK;
    return train_cuda_check(o->arch ? o->arch : "rwkv4", index, err);
}

/* The data-parallel settings (world_size > 0): flags a launcher gives, so
 * their names are the CLI's. */
static rwkv_status check_dist(const rwkv_train_options *o, rwkv_error *err) {
    if (o->allreduce && strcmp(o->allreduce, "bf16") != 0 && strcmp(o->allreduce, "fp32") != 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "--allreduce must be bf16 or fp32, got '%s'", o->allreduce);
    if (!(o->dist_timeout_s >= 0 && isfinite(o->dist_timeout_s)))
        return rwkv_fail(err, RWKV_ERR_ARG, "the collective timeout must be >= 0 seconds, got %g", o->dist_timeout_s);
    if (o->world_size == 0)
        return o->allreduce ? rwkv_fail(err, RWKV_ERR_ARG, "--allreduce applies to a run on several GPUs (--gpus N)")
                            : RWKV_OK;
    if (o->world_size < 0 || o->world_size > 4096)
        return rwkv_fail(err, RWKV_ERR_ARG, "--world must be in [1, 4096], got %d", o->world_size);
    if (train_device_index(o->device) < 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "several GPUs (--gpus, --world) need --device cuda, not '%s'",
                         o->device ? o->device : "cpu");
    if (o->rank < 0 || o->rank >= o->world_size)
        return rwkv_fail(err, RWKV_ERR_ARG, "--rank must be in [0, %d] for --world %d, got %d", o->world_size - 1,
                         o->world_size, o->rank);
    if (o->batch % o->world_size != 0)
        return rwkv_fail(err, RWKV_ERR_ARG,
                         "--batch %d is not divisible by %d GPUs (each GPU takes an equal share of a micro-batch)",
                         o->batch, o->world_size);
    return rendezvous_check_spec(o->rendezvous, err);
}

rwkv_status train_options_check(const rwkv_train_options *o, int fresh, rwkv_error *err) {
#define BAD(...) return rwkv_fail(err, RWKV_ERR_ARG, __VA_ARGS__)
    if (fresh) {
        if (!o->data_path || !*o->data_path) BAD("--data is required (a text file or a token file)");
        if (!o->out_dir || !*o->out_dir) BAD("--out is required (the run directory)");
        if (o->tokenizer && !*o->tokenizer) BAD("--tokenizer expects 'bytes' or a tokenizer file");
    }
    if (!train_arch_find(o->arch ? o->arch : "rwkv4"))
        BAD("--arch must be one of %s, got '%s'", train_arch_names(), o->arch);
    if (o->n_head < 0 || o->n_head > 65536) BAD("--heads must be in [0, 65536] (0: embd/64), got %d", o->n_head);
    if (o->head_size < 0 || o->head_size > 65536)
        BAD("--head-size must be in [0, 65536] (0: 64, or embd when smaller), got %d", o->head_size);
    if (o->head_size > 0 && !o->init_path && o->n_embd % o->head_size != 0)
        BAD("--head-size %d does not divide --embd %d", o->head_size, o->n_embd);
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
    rwkv_status s = check_dist(o, err);
    return s == RWKV_OK ? check_device(o, err) : s;
}
