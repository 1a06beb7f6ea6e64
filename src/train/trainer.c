/* The training loop (include/rwkv_train.h): micro-batches with gradient
 * accumulation, the global-norm clip, Adam with the §3.3 schedule, the
 * non-finite guard, evaluation, the per-step log and checkpoints, for a new
 * run (train/start.c) and a resumed one (train/resume.c). The model is reached only through its train_arch
 * (train/arch.h) and the per-step math only through a train_engine
 * (train/engine.h), so RWKV-4 and the GPT baseline are trained by the same
 * code, on whatever the engine runs on.
 *
 * Reproducibility: a step's result depends only on the parameters, the Adam
 * moments, the step number and the data RNG, all of which a checkpoint holds
 * exactly; the training math is deterministic for a given thread count and
 * everything here is independent of it. So an interrupted and resumed run
 * logs the same per-step losses as an uninterrupted one. */
#include "rwkv_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/machine.h"
#include "train/run.h"
#include "train/run_files.h"
#include "train/train_log.h"

double rwkv_fma_peak_gflops(int threads) { return machine_fma_peak_gflops(threads); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Mean loss over the validation windows (NaN when there are none). */
static rwkv_status evaluate(run *r, double *out, rwkv_error *err) {
    const int B = r->o->batch, T = r->o->ctx_len;
    double sum = 0;
    for (int64_t done = 0; done < r->n_val;) {
        int nb = r->n_val - done >= B ? B : (int)(r->n_val % B);
        for (int b = 0; b < nb; b++)
            data_window(&r->data, r->val_starts[done + b], T, r->inputs + (size_t)b * T, r->targets + (size_t)b * T);
        float loss = 0;
        rwkv_status s = r->engine->ops->eval_loss(r->engine, r->inputs, r->targets, nb, &loss, err);
        if (s != RWKV_OK) return s;
        sum += (double)loss * nb;
        done += nb;
    }
    *out = r->n_val > 0 ? sum / (double)r->n_val : NAN;
    return RWKV_OK;
}

/* What one optimizer step reports. */
typedef struct step_result {
    double loss, grad_norm, lr;
    int skipped;
} step_result;

/* Gradients of A micro-batches, then the Adam update, or a skip (or an
 * error) when the loss or the gradient is not finite. */
static rwkv_status train_step(run *r, step_result *out, rwkv_error *err) {
    const rwkv_train_options *o = r->o;
    const int B = o->batch, T = o->ctx_len, A = o->grad_accum;
    train_engine *e = r->engine;
    e->ops->zero_grads(e);
    double loss_sum = 0;
    for (int a = 0; a < A; a++) {
        data_random_batch(&r->data, &r->rng, B, T, r->inputs, r->targets);
        r->samples += (uint64_t)B;
        float loss = 0;
        rwkv_status s = e->ops->accumulate(e, r->inputs, r->targets, a == A - 1, &loss, err);
        if (s == RWKV_ERR_NUMERIC) loss = NAN; /* handled by the non-finite guard below */
        else if (s != RWKV_OK) return s;
        loss_sum += (double)loss;
    }
    const double loss = loss_sum / A;
    if (r->debug_nan_step > 0 && r->step + 1 == r->debug_nan_step) e->ops->poison_grad(e);
    const float gscale = 1.0f / (float)A;
    const double gnorm = e->ops->grad_norm(e) * gscale;
    *out = (step_result){loss, gnorm, lr_at(&r->sched, r->step), 0};
    if (!isfinite(loss) || !isfinite(gnorm)) {
        char what[160];
        if (!isfinite(loss)) snprintf(what, sizeof what, "loss (%g)", loss);
        else snprintf(what, sizeof what, "gradient of %s (loss %.4f)", e->ops->nonfinite_param(e), loss);
        if (!o->skip_nonfinite) {
            char last[FS_PATH_MAX + 64] = "none yet";
            if (r->last_saved >= 0) ckpt_model_path(r->dir, r->last_saved, last, sizeof last);
            return rwkv_fail(err, RWKV_ERR_NUMERIC,
                             "step %ld: non-finite %s; the weights were not updated (last checkpoint: %s); "
                             "resume with --skip-nonfinite to skip such batches",
                             r->step + 1, what, last);
        }
        out->skipped = 1;
        r->skipped++;
    } else {
        float clip = grad_clip_scale(gnorm, o->grad_clip);
        long t = r->step + 1 - (long)r->skipped; /* updates applied, this one included */
        e->ops->adam_step(e, (float)out->lr, gscale * clip, t);
    }
    r->step++;
    r->tokens_seen += (uint64_t)((double)B * T * A);
    return RWKV_OK;
}

/* The START event: what the run is. */
static void progress_start(const run *r, const char *note, rwkv_train_progress *p) {
    const rwkv_train_options *o = r->o;
    memset(p, 0, sizeof *p);
    p->event = RWKV_TRAIN_START;
    p->step = r->step;
    p->steps = o->steps;
    p->loss = p->val_loss = NAN;
    p->last_val_loss = r->last_val;
    p->path = r->dir;
    p->note = note;
    p->n_params = (int64_t)r->lay.total;
    p->arch = r->arch->name;
    p->n_layer = r->shape.n_layer;
    p->n_embd = r->shape.n_embd;
    p->n_ffn = r->shape.n_ffn;
    p->n_vocab = r->shape.n_vocab;
    p->n_head = r->shape.n_head;
    p->ctx_len = o->ctx_len;
    p->batch = o->batch;
    p->grad_accum = o->grad_accum;
    p->threads = o->threads;
    p->start_step = r->step;
    p->train_tokens = (int64_t)r->data.n_train;
    p->val_tokens = (int64_t)r->data.n_val;
    p->val_windows = r->n_val;
    p->peak_gflops = r->peak_gflops;
    p->peak_kind = r->engine->ops->peak_kind;
    p->device = o->device ? o->device : "cpu";
    p->precision = o->precision;
    p->elapsed_s = r->elapsed_before;
}

/* The last checkpoint (unless the last step was just saved) and DIR/model.safetensors. */
static rwkv_status save_final(run *r, double elapsed, rwkv_error *err) {
    char final[FS_PATH_MAX], model_path[FS_PATH_MAX];
    snprintf(final, sizeof final, "%s/model.safetensors", r->dir);
    if (r->last_saved != r->step) {
        ckpt_model_path(r->dir, r->step, model_path, sizeof model_path);
        rwkv_status s = run_save_checkpoint(r, elapsed, model_path, err);
        if (s != RWKV_OK) return s;
    }
    const float *params;
    rwkv_status s = r->engine->ops->export_state(r->engine, &params, NULL, NULL, err);
    if (s == RWKV_OK && run_writes(r)) s = r->arch->save(final, &r->shape, &r->lay, params, err);
    return s;
}

rwkv_status train_loop(run *r, rwkv_train_callback cb, void *user, const char *note, rwkv_error *err) {
    const rwkv_train_options *o = r->o;
    const double tokens_per_step = (double)o->batch * o->ctx_len * o->grad_accum;
    const double flops_per_token = r->arch->flops_per_token(&r->shape, &r->lay, o->ctx_len);
    r->peak_gflops = r->measure_peak ? r->engine->ops->peak_gflops(r->engine) : 0.0;
    const double session_start = now_s();
    double train_time = 0; /* this session's seconds inside steps */
    long session_steps = 0;
    char model_path[FS_PATH_MAX];
    rwkv_train_progress p;
    progress_start(r, note, &p);
    int stop = cb && cb(&p, user);
    /* a stop (Ctrl-C reaches every rank, not always at the same step) takes effect on all ranks at once */
    rwkv_status s = run_any_rank(r, &stop, err);
    if (s != RWKV_OK) return s;

    while (!stop && r->step < o->steps) {
        double t0 = now_s();
        step_result sr;
        s = train_step(r, &sr, err);
        if (s != RWKV_OK) return s;
        double dt = now_s() - t0;
        train_time += dt;
        session_steps++;

        double val = NAN;
        int last = r->step == o->steps;
        if (r->n_val > 0 && ((o->eval_every > 0 && r->step % o->eval_every == 0) || last)) {
            s = evaluate(r, &val, err);
            if (s != RWKV_OK) return s;
            r->last_val = val;
        }
        double elapsed = r->elapsed_before + (now_s() - session_start);
        double tps = dt > 0 ? tokens_per_step / dt : 0;
        double avg_tps = train_time > 0 ? tokens_per_step * (double)session_steps / train_time : 0;
        double mfu = r->peak_gflops > 0 ? flops_per_token * avg_tps / (r->peak_gflops * 1e9) : 0;
        if (r->log)
            train_log_write(r->log, &(train_log_line){r->step, sr.loss, sr.lr, tps, sr.grad_norm, mfu, elapsed, val,
                                                  sr.skipped});

        p.event = RWKV_TRAIN_STEP;
        p.note = NULL;
        p.step = r->step;
        p.loss = sr.loss;
        p.val_loss = val;
        p.last_val_loss = r->last_val;
        p.lr = sr.lr;
        p.grad_norm = sr.grad_norm;
        p.tokens_per_s = tps;
        p.avg_tokens_per_s = avg_tps;
        p.mfu = mfu;
        p.elapsed_s = elapsed;
        p.eta_s = (now_s() - session_start) / (double)session_steps * (double)(o->steps - r->step);
        p.skipped = sr.skipped;
        if (cb && cb(&p, user)) stop = 1;
        if ((s = run_any_rank(r, &stop, err)) != RWKV_OK) return s;

        if ((o->save_every > 0 && r->step % o->save_every == 0) || last || stop) {
            ckpt_model_path(r->dir, r->step, model_path, sizeof model_path);
            s = run_save_checkpoint(r, r->elapsed_before + (now_s() - session_start), model_path, err);
            if (s != RWKV_OK) return s;
            p.event = RWKV_TRAIN_SAVED;
            p.path = model_path;
            if (cb && cb(&p, user)) stop = 1;
            if ((s = run_any_rank(r, &stop, err)) != RWKV_OK) return s;
        }
    }
    if (r->step >= o->steps) {
        s = save_final(r, r->elapsed_before + (now_s() - session_start), err);
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
