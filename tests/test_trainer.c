/* Training pieces: Adam against hand-computed values, the LR schedule, the
 * data windows, checkpoints (bit-exact round trip, damage detection), the CPU
 * training engine against the direct math, and a tiny end-to-end run that is stopped, resumed and compared step by step. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/formats.h"
#include "rwkv_train.h"
#include "test.h"
#include "train/adam.h"
#include "train/model_file.h"
#include "train/run_config.h"
#include "train/run_files.h"
#include "train/train_state.h"
#include "train/data.h"
#include "train/engine.h"
#include "train/rwkv4_grad.h"
#include "train/schedule.h"

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rwkv_test_trainer_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void tpath(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/%s", tmpdir, name); }

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* ---- Adam ---- */

static void test_adam_hand_values(void) {
    /* p = 1, lr 0.1, b = (0.9, 0.99), eps 1e-8: g = 0.5 then g = -1 */
    float p = 1.0f, g = 0.5f, m = 0, v = 0;
    adam_group grp = {0, 1, 1.0f, 0};
    adam_hparams h = {0.9f, 0.99f, 1e-8f, 0.0f};
    adam_update(&p, &g, &m, &v, &grp, 1, 0.1f, 1.0f, 1, &h, 1);
    CHECK(fabsf(m - 0.05f) < 1e-7f && fabsf(v - 0.0025f) < 1e-8f, "moments after step 1: m %g v %g", m, v);
    CHECK(fabsf(p - 0.9f) < 1e-6f, "p after step 1 = %.9g, want 0.9", p);
    g = -1.0f;
    adam_update(&p, &g, &m, &v, &grp, 1, 0.1f, 1.0f, 2, &h, 1);
    CHECK(fabsf(m + 0.055f) < 1e-6f && fabsf(v - 0.012475f) < 1e-7f, "moments after step 2: m %g v %g", m, v);
    CHECK(fabsf(p - 0.93656077f) < 2e-6f, "p after step 2 = %.9g, want 0.93656077", p);
}

static void test_adam_scales_and_decay(void) {
    /* grad_scale halves the gradient (same as g = 0.5), lr_scale 2 doubles the step,
     * weight decay 0.1 adds lr*wd*p on a decayed group only */
    float p[2] = {1.0f, 1.0f}, g[2] = {1.0f, 1.0f}, m[2] = {0}, v[2] = {0};
    adam_group grp[2] = {{0, 1, 2.0f, 0}, {1, 1, 1.0f, 1}};
    adam_hparams h = {0.9f, 0.99f, 1e-8f, 0.1f};
    adam_update(p, g, m, v, grp, 2, 0.1f, 0.5f, 1, &h, 2);
    CHECK(fabsf(m[0] - 0.05f) < 1e-7f, "grad_scale not applied: m %g", m[0]);
    CHECK(fabsf(p[0] - 0.8f) < 1e-6f, "lr_scale 2: p %.9g, want 0.8", p[0]);
    CHECK(fabsf(p[1] - (1.0f - 0.1f * (1.0f + 0.1f))) < 1e-6f, "decayed group: p %.9g, want 0.89", p[1]);
}

static void test_grad_norm_and_clip(void) {
    size_t n = 100003;
    float *g = malloc(n * sizeof *g);
    CHECK(g, "oom");
    double want = 0;
    for (size_t i = 0; i < n; i++) {
        g[i] = (float)((double)((i * 7919) % 1000) / 1000.0 - 0.5);
        want += (double)g[i] * g[i];
    }
    want = sqrt(want);
    double n1 = grad_global_norm(g, n, 1), n2 = grad_global_norm(g, n, 2), n3 = grad_global_norm(g, n, 3);
    int same = memcmp(&n1, &n2, sizeof n1) == 0 && memcmp(&n1, &n3, sizeof n1) == 0;
    double err = fabs(n1 - want) / want;
    g[n / 2] = NAN;
    double nn = grad_global_norm(g, n, 2);
    free(g);
    CHECK(same, "norm depends on the thread count: %.17g %.17g %.17g", n1, n2, n3);
    CHECK(err < 1e-12, "norm %.17g, want %.17g", n1, want);
    CHECK(!isfinite(nn), "a NaN gradient gave a finite norm %g", nn);
    CHECK(grad_clip_scale(0.5, 1.0) == 1.0f, "no clip below the max");
    CHECK(fabsf(grad_clip_scale(4.0, 1.0) - 0.25f) < 1e-6f, "clip 4 -> 1: %g", grad_clip_scale(4.0, 1.0));
    CHECK(grad_clip_scale(4.0, 0.0) == 1.0f, "clip 0 must disable");
}

/* ---- schedule ---- */

static void test_schedule(void) {
    lr_schedule s = {6e-4, 1e-5, 101, 10, 0};
    CHECK(lr_at(&s, 0) == 6e-4 && lr_at(&s, 9) == 6e-4, "constant phase: %g %g", lr_at(&s, 0), lr_at(&s, 9));
    CHECK(fabs(lr_at(&s, 100) - 1e-5) < 1e-15, "last step: %g, want 1e-5", lr_at(&s, 100));
    /* step 55: progress (55-10+1)/91 = 0.5054..; geometric interpolation */
    double want = 6e-4 * exp(log(1e-5 / 6e-4) * (46.0 / 91.0));
    CHECK(fabs(lr_at(&s, 55) - want) < 1e-15, "mid: %g want %g", lr_at(&s, 55), want);
    CHECK(lr_at(&s, 1000) == lr_at(&s, 100), "after the end the LR stays at lr_final");
    lr_schedule w = {1e-3, 1e-3, 100, 0, 10};
    CHECK(fabs(lr_at(&w, 0) - 2e-4) < 1e-15, "warm-up start: %g, want 2e-4", lr_at(&w, 0));
    CHECK(fabs(lr_at(&w, 5) - 6e-4) < 1e-15, "warm-up middle: %g, want 6e-4", lr_at(&w, 5));
    CHECK(lr_at(&w, 10) == 1e-3, "after warm-up: %g", lr_at(&w, 10));
    CHECK(lr_default_const_steps(8043) == 361, "default constant phase of 8043 steps: %ld",
          lr_default_const_steps(8043));
}

/* ---- data ---- */

static const char *sample_text(size_t *n) {
    static char text[5000];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)('a' + (i * 31 + i / 7) % 26);
    *n = sizeof text;
    return text;
}

static void test_data_windows(void) {
    size_t n;
    const char *text = sample_text(&n);
    char tp[512], kp[512];
    tpath(tp, sizeof tp, "text.txt");
    tpath(kp, sizeof kp, "text.tok");
    CHECK(write_file(tp, text, n), "cannot write %s", tp);
    rwkv_error err;
    CHECK(rwkv_tokenize_file(tp, kp, &err) == RWKV_OK, "%s", err.message);
    token_data d;
    CHECK(token_data_open(kp, &d, &err) == RWKV_OK, "%s", err.message);
    CHECK(d.n_tokens == n && d.n_vocab == 256 && d.token_bytes == 2, "header: %llu tokens, vocab %d",
          (unsigned long long)d.n_tokens, d.n_vocab);
    CHECK(token_data_split(&d, 0.1, 16, kp, &err) == RWKV_OK, "%s", err.message);
    CHECK(d.n_val == 500 && d.n_train == 4500, "split %llu/%llu", (unsigned long long)d.n_train,
          (unsigned long long)d.n_val);
    int in1[4 * 16], tg1[4 * 16], in2[4 * 16], tg2[4 * 16];
    train_rng r1, r2;
    rng_seed(&r1, 7);
    rng_seed(&r2, 7);
    data_random_batch(&d, &r1, 4, 16, in1, tg1);
    data_random_batch(&d, &r2, 4, 16, in2, tg2);
    CHECK(!memcmp(in1, in2, sizeof in1) && !memcmp(tg1, tg2, sizeof tg1), "same seed, different windows");
    for (int b = 0; b < 4; b++) {
        for (int t = 0; t + 1 < 16; t++) CHECK(in1[b * 16 + t + 1] == tg1[b * 16 + t], "targets are not shifted inputs");
        /* the window is a substring of the training part */
        int found = 0;
        for (size_t s = 0; s + 17 <= 4500 && !found; s++) {
            int ok = 1;
            for (int t = 0; t < 16 && ok; t++) ok = (unsigned char)text[s + t] == in1[b * 16 + t];
            found = ok && (unsigned char)text[s + 16] == tg1[b * 16 + 15];
        }
        CHECK(found, "window %d is not in the training text", b);
    }
    /* a saved RNG state continues the same sequence */
    train_rng saved = r1;
    data_random_batch(&d, &r1, 4, 16, in1, tg1);
    data_random_batch(&d, &saved, 4, 16, in2, tg2);
    CHECK(!memcmp(in1, in2, sizeof in1), "restored RNG state drew different windows");
    rng_seed(&r2, 8);
    data_random_batch(&d, &r2, 4, 16, in2, tg2);
    CHECK(memcmp(in1, in2, sizeof in1) != 0, "seed 8 drew the same windows as seed 7");
    /* validation windows: fixed, inside the held-out part, non-overlapping */
    uint64_t *vs;
    int64_t k = data_val_windows(&d, 16, 0, &vs);
    CHECK(k == (500 - 1) / 16, "all validation windows: %lld", (long long)k);
    for (int64_t i = 0; i < k; i++) {
        CHECK(vs[i] >= 4500 && vs[i] + 17 <= 5000, "window %lld at %llu", (long long)i, (unsigned long long)vs[i]);
        if (i) CHECK(vs[i] >= vs[i - 1] + 16, "windows overlap");
    }
    free(vs);
    k = data_val_windows(&d, 16, 5, &vs);
    CHECK(k == 5 && vs[0] == 4500, "5 windows: %lld, first %llu", (long long)k, (unsigned long long)vs[0]);
    free(vs);
    /* too little data for a window */
    CHECK(token_data_split(&d, 0.1, 600, kp, &err) == RWKV_ERR_ARG && strstr(err.message, "validation"),
          "ctx 600 with 500 held-out tokens: %s", err.message);
    token_data_close(&d);
}

static void test_token_file_errors(void) {
    char p[512];
    tpath(p, sizeof p, "bad.tok");
    uint8_t buf[40] = "RWKVTOK";
    buf[8] = 1;
    buf[12] = 2;
    buf[16] = 10; /* vocab 10 */
    buf[24] = 4;  /* 4 tokens, 8 bytes */
    buf[32] = 3;
    buf[34] = 9;
    buf[36] = 12; /* >= vocab */
    token_data d;
    rwkv_error err;
    CHECK(write_file(p, buf, 40), "write");
    CHECK(token_data_open(p, &d, &err) == RWKV_ERR_FORMAT && strstr(err.message, "index 2"),
          "token over the vocabulary: %s", err.message);
    CHECK(write_file(p, buf, 38), "write");
    CHECK(token_data_open(p, &d, &err) == RWKV_ERR_FORMAT && strstr(err.message, "offset 24"),
          "truncated: %s", err.message);
    buf[0] = 'X';
    CHECK(write_file(p, buf, 40), "write");
    CHECK(token_data_open(p, &d, &err) == RWKV_ERR_FORMAT && strstr(err.message, "not a token file"),
          "bad magic: %s", err.message);
}

/* ---- checkpoints ---- */

static void test_checkpoint_round_trip(void) {
    rwkv4_shape sh = {50, 8, 2, 32, 8};
    param_layout lay, lay2;
    rwkv_error err;
    CHECK(rwkv4_layout_init(&sh, &lay, &err) == RWKV_OK, "%s", err.message);
    size_t n = lay.total;
    float *p = malloc(n * 4), *m = malloc(n * 4), *v = malloc(n * 4), *p2 = NULL;
    CHECK(p && m && v, "oom");
    CHECK(rwkv4_init_params(&lay, p, 3, 1e-3f) == RWKV_OK, "init");
    for (size_t i = 0; i < n; i++) {
        p[i] += (float)i * 1e-7f; /* every value distinct */
        m[i] = (float)sin((double)i);
        v[i] = (float)i * 0.5f + 1e-30f;
    }
    char mp[512], sp[512];
    ckpt_model_path(tmpdir, 7, mp, sizeof mp);
    ckpt_state_path(tmpdir, 7, sp, sizeof sp);
    CHECK(train_save_model(mp, &lay, p, &err) == RWKV_OK, "%s", err.message);
    train_state st = {7, {1, 2, 3, UINT64_MAX}, 99, 12345, 1, 3.5, 2.25, params_hash(p, n), n, m, v};
    CHECK(train_state_write(sp, &st, 0, &err) == RWKV_OK, "%s", err.message);
    CHECK(train_load_model(mp, &lay2, &p2, &err) == RWKV_OK, "%s", err.message);
    int same_layout = lay2.total == n && lay2.count == lay.count;
    for (int i = 0; same_layout && i < lay.count; i++)
        same_layout = !strcmp(lay.params[i].name, lay2.params[i].name) && lay.params[i].ndim == lay2.params[i].ndim &&
                      lay.params[i].offset == lay2.params[i].offset;
    int same_params = same_layout && !memcmp(p, p2, n * 4);
    train_state back;
    rwkv_status rs = train_state_read(sp, &back, &err);
    int same_state = rs == RWKV_OK && back.step == 7 && back.n == n && back.rng[3] == UINT64_MAX &&
                     back.samples == 99 && back.tokens_seen == 12345 && back.skipped == 1 && back.elapsed_s == 3.5 &&
                     back.last_val_loss == 2.25 && back.params_hash == params_hash(p2, n) && !memcmp(back.m, m, n * 4) &&
                     !memcmp(back.v, v, n * 4);
    if (rs == RWKV_OK) train_state_free(&back);
    /* the model file keeps the official shapes */
    tensor_set set;
    int shapes_ok = 0;
    if (checkpoint_read(mp, &set, NULL) == RWKV_OK) {
        const tensor *tm = tensor_set_find(&set, "blocks.1.att.time_mix_k");
        const tensor *td = tensor_set_find(&set, "blocks.1.att.time_decay");
        const tensor *hd = tensor_set_find(&set, "head.weight");
        shapes_ok = tm && tm->ndim == 3 && tm->shape[0] == 1 && tm->shape[1] == 1 && tm->shape[2] == 8 && td &&
                    td->ndim == 1 && hd && hd->ndim == 2 && hd->shape[0] == 50 && hd->type == DT_F32;
        tensor_set_free(&set);
    }
    free(p);
    free(m);
    free(v);
    free(p2);
    param_layout_free(&lay);
    param_layout_free(&lay2);
    CHECK(same_layout, "layout differs after the round trip");
    CHECK(same_params, "weights differ after the round trip");
    CHECK(same_state, "training state differs after the round trip: %s", rs == RWKV_OK ? "values" : err.message);
    CHECK(shapes_ok, "official shapes/dtypes not kept (time_mix [1,1,C], f32)");
}

static void test_state_damage_detected(void) {
    char sp[512];
    ckpt_state_path(tmpdir, 7, sp, sizeof sp);
    FILE *f = fopen(sp, "r+b");
    CHECK(f, "no state file from the round-trip test");
    fseek(f, 200, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 200, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    train_state st;
    rwkv_error err;
    CHECK(train_state_read(sp, &st, &err) == RWKV_ERR_FORMAT && strstr(err.message, "checksum"),
          "a flipped bit was not detected: %s", err.message);
    CHECK(truncate(sp, 300) == 0, "truncate");
    CHECK(train_state_read(sp, &st, &err) == RWKV_ERR_FORMAT && strstr(err.message, "offset 24"),
          "a cut file was not detected: %s", err.message);
}

static void test_ckpt_list_and_prune(void) {
    char d[512], p[600];
    tpath(d, sizeof d, "prune");
    CHECK(mkdir(d, 0777) == 0, "mkdir");
    long steps[] = {10, 30, 20};
    for (int i = 0; i < 3; i++) {
        ckpt_state_path(d, steps[i], p, sizeof p);
        CHECK(write_file(p, "x", 1), "write");
        ckpt_model_path(d, steps[i], p, sizeof p);
        CHECK(write_file(p, "x", 1), "write");
    }
    ckpt_model_path(d, 5, p, sizeof p); /* an orphan model */
    CHECK(write_file(p, "x", 1), "write");
    snprintf(p, sizeof p, "%s/train_state-00000040.bin.tmp.123", d);
    CHECK(write_file(p, "x", 1), "write");
    long *s;
    int n = ckpt_list(d, &s, NULL);
    CHECK(n == 3 && s[0] == 30 && s[1] == 20 && s[2] == 10, "list: %d entries", n);
    free(s);
    ckpt_prune(d, 2);
    ckpt_remove_temps(d);
    n = ckpt_list(d, &s, NULL);
    free(s);
    CHECK(n == 2, "after pruning to 2: %d", n);
    ckpt_model_path(d, 10, p, sizeof p);
    CHECK(access(p, F_OK) != 0, "the pruned model is still there");
    ckpt_model_path(d, 5, p, sizeof p);
    CHECK(access(p, F_OK) != 0, "the orphan model is still there");
    snprintf(p, sizeof p, "%s/train_state-00000040.bin.tmp.123", d);
    CHECK(access(p, F_OK) != 0, "the temp file is still there");
}

static void test_config_round_trip(void) {
    char p[512];
    tpath(p, sizeof p, "config.json");
    train_config c;
    memset(&c, 0, sizeof c);
    c.opt = rwkv_train_options_default();
    c.opt.lr_init = 0.1 + 0.2; /* not exactly representable in short decimal */
    c.opt.seed = 123456789012345ull;
    c.opt.const_steps = 17;
    c.data_path = "/x/data.txt";
    c.tokens_path = "tokens.bin";
    c.tokenizer = "bytes";
    c.n_vocab = 256;
    rwkv_error err;
    CHECK(train_config_write(p, &c, &err) == RWKV_OK, "%s", err.message);
    train_config b;
    CHECK(train_config_read(p, &b, &err) == RWKV_OK, "%s", err.message);
    int ok = b.opt.lr_init == c.opt.lr_init && b.opt.seed == c.opt.seed && b.opt.const_steps == 17 &&
             b.n_vocab == 256 && !strcmp(b.tokens_path, "tokens.bin") && b.init_path == NULL &&
             !strcmp(b.opt.data_path, "/x/data.txt") && b.opt.beta2 == 0.99;
    train_config_free(&b);
    CHECK(ok, "config differs after the round trip");
    CHECK(write_file(p, "{\"version\": 1}", 14), "write");
    CHECK(train_config_read(p, &b, &err) == RWKV_ERR_FORMAT, "a config without fields was accepted");
}

/* ---- the CPU training engine ---- */

/* One optimizer step through the engine's table equals the same math called
 * directly (bit for bit), and the engine reports what the loop needs. */
static void test_engine_cpu_matches_direct_math(void) {
    const train_arch *arch = train_arch_find("rwkv4");
    arch_shape sh = {.n_vocab = 16, .n_embd = 8, .n_layer = 1};
    param_layout lay;
    rwkv_error err;
    CHECK(arch->shape_check(&sh, &err) == RWKV_OK && arch->layout(&sh, &lay, &err) == RWKV_OK, "%s", err.message);
    const size_t n = lay.total;
    float *ref = malloc(n * sizeof(float)), *grads = calloc(n, sizeof(float));
    float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float)), *mine = malloc(n * sizeof(float));
    adam_group *groups = calloc((size_t)lay.count, sizeof *groups);
    CHECK(train_arch_init(arch, &sh, &lay, ref, 7, 1e-3f, &err) == RWKV_OK, "%s", err.message);
    memcpy(mine, ref, n * sizeof(float));
    for (int i = 0; i < lay.count; i++) groups[i] = (adam_group){lay.params[i].offset, lay.params[i].numel, 1.0f, 0};
    const int B = 2, T = 4;
    int in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, tg[8] = {2, 3, 4, 5, 6, 7, 8, 9};
    adam_hparams hp = {0.9f, 0.99f, 1e-8f, 0.0f};

    void *ctx = NULL;
    float ref_loss[2], ref_val;
    CHECK(arch->ctx_new(&sh, &lay, B, T, 1, &ctx, &err) == RWKV_OK, "%s", err.message);
    for (int a = 0; a < 2; a++) arch->forward_backward(ctx, ref, in, tg, 1e-4f, grads, &ref_loss[a], &err);
    const double ref_norm = grad_global_norm(grads, n, 1);
    adam_update(ref, grads, m, v, groups, lay.count, 1e-3f, 0.5f, 1, &hp, 1);
    arch->forward_loss(ctx, ref, in, tg, &ref_val, &err);
    arch->ctx_free(ctx);

    train_engine_config cfg = {.arch = arch, .shape = &sh, .lay = &lay, .batch = B, .ctx_len = T, .threads = 1,
                               .groups = groups, .n_groups = lay.count, .hp = hp, .l2wrap = 1e-4f};
    train_engine *e = NULL;
    CHECK(train_engine_new_cpu(&cfg, mine, NULL, NULL, &e, &err) == RWKV_OK, "%s", err.message);
    if (e) {
        float loss[2], val = 0;
        e->ops->zero_grads(e);
        for (int a = 0; a < 2; a++) e->ops->accumulate(e, in, tg, a == 1, &loss[a], &err);
        const double norm = e->ops->grad_norm(e);
        CHECK(loss[0] == ref_loss[0] && loss[1] == ref_loss[1] && norm == ref_norm,
              "engine loss %.9g %.9g norm %.9g, direct %.9g %.9g %.9g", loss[0], loss[1], norm, ref_loss[0],
              ref_loss[1], ref_norm);
        CHECK(!strcmp(e->ops->nonfinite_param(e), "(none)"), "a finite gradient was reported as %s",
              e->ops->nonfinite_param(e));
        e->ops->adam_step(e, 1e-3f, 0.5f, 1);
        const float *ep, *em, *ev;
        CHECK(e->ops->export_state(e, &ep, &em, &ev, &err) == RWKV_OK, "%s", err.message);
        CHECK(!memcmp(ep, ref, n * sizeof(float)) && !memcmp(em, m, n * sizeof(float)) &&
                  !memcmp(ev, v, n * sizeof(float)),
              "parameters or moments after the engine's Adam step differ from the direct update");
        CHECK(e->ops->eval_loss(e, in, tg, B, &val, &err) == RWKV_OK && val == ref_val,
              "validation loss %.9g, direct %.9g", val, ref_val);
        e->ops->zero_grads(e);
        e->ops->poison_grad(e);
        CHECK(!isfinite(e->ops->grad_norm(e)) && !strcmp(e->ops->nonfinite_param(e), lay.params[0].name),
              "a NaN gradient was not reported (got %s)", e->ops->nonfinite_param(e));
        e->ops->free(e);
    }
    free(ref);
    free(grads);
    free(m);
    free(v);
    free(groups);
    param_layout_free(&lay);
}

/* ---- end to end through the public API ---- */

typedef struct stopper {
    long stop_at;
} stopper;

static int stop_cb(const rwkv_train_progress *p, void *user) {
    stopper *s = user;
    return p->event == RWKV_TRAIN_STEP && s->stop_at > 0 && p->step == s->stop_at;
}

/* "step loss val_loss" of every line of DIR/train.jsonl, concatenated. */
static int read_losses(const char *dir, char *out, size_t size) {
    char p[600], line[1024];
    snprintf(p, sizeof p, "%s/train.jsonl", dir);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    int n = 0;
    out[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        long step;
        char loss[64] = "", val[64] = "-";
        if (sscanf(line, "{\"step\":%ld,\"loss\":%63[^,]", &step, loss) != 2) continue;
        const char *vl = strstr(line, "\"val_loss\":");
        if (vl) sscanf(vl + 11, "%63[^,}]", val);
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%ld %s %s\n", step, loss, val);
        n++;
    }
    fclose(f);
    return n;
}


static void test_train_stop_resume_identical(void) {
    size_t n;
    const char *text = sample_text(&n);
    char tp[512], d1[512], d2[512];
    tpath(tp, sizeof tp, "e2e.txt");
    tpath(d1, sizeof d1, "run_a");
    tpath(d2, sizeof d2, "run_b");
    CHECK(write_file(tp, text, n), "write");
    rwkv_train_options o = rwkv_train_options_default();
    o.data_path = tp;
    o.n_layer = 2;
    o.n_embd = 16;
    o.ctx_len = 8;
    o.batch = 2;
    o.grad_accum = 2;
    o.steps = 6;
    o.lr_init = 1e-2;
    o.eval_every = 2;
    o.val_windows = 3;
    o.save_every = 2;
    o.threads = 2;
    o.measure_peak = 0;
    rwkv_error err;
    o.out_dir = d1;
    CHECK(rwkv_train_run(&o, NULL, NULL, &err) == RWKV_OK, "uninterrupted run: %s", err.message);
    o.out_dir = d2;
    stopper s = {3};
    CHECK(rwkv_train_run(&o, stop_cb, &s, &err) == RWKV_OK, "first part: %s", err.message);
    char a[4096], b[4096];
    CHECK(read_losses(d2, b, sizeof b) == 3, "the stopped run logged other than 3 steps");
    rwkv_resume_options ro = rwkv_resume_options_default();
    ro.measure_peak = 0;
    CHECK(rwkv_train_resume(d2, &ro, NULL, NULL, &err) == RWKV_OK, "resume: %s", err.message);
    int na = read_losses(d1, a, sizeof a), nb = read_losses(d2, b, sizeof b);
    CHECK(na == 6 && nb == 6, "steps logged: %d and %d", na, nb);
    CHECK(strcmp(a, b) == 0, "per-step losses differ:\n%s---\n%s", a, b);
    /* a second run into the same directory is refused */
    CHECK(rwkv_train_run(&o, NULL, NULL, &err) == RWKV_ERR_ARG && strstr(err.message, "--resume"),
          "a second run into a used directory: %s", err.message);
    /* both final models load with the inference API */
    char mp[600];
    snprintf(mp, sizeof mp, "%s/model.safetensors", d2);
    rwkv_model *model;
    CHECK(rwkv_model_load(mp, &model, &err) == RWKV_OK, "%s", err.message);
    rwkv_model_free(model);
}

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = 0;
    return ok;
}

typedef struct start_note {
    char text[1024];
    long start_step;
} start_note;

static int keep_start_note(const rwkv_train_progress *p, void *user) {
    start_note *n = user;
    if (p->event == RWKV_TRAIN_START) {
        snprintf(n->text, sizeof n->text, "%s", p->note ? p->note : "");
        n->start_step = p->start_step;
    }
    return 0;
}

/* A checkpoint copied under another step's name (train_state-00000006.bin
 * holding step 4, with its model): resume says why it skips it, continues
 * from the real checkpoint 4, and frees the moments it read from the
 * misnamed one (the ASan run's leak check fails otherwise). */
static void test_resume_skips_misnamed_checkpoint(void) {
    size_t n;
    const char *text = sample_text(&n);
    char tp[512], d[512], from[700], to[700];
    tpath(tp, sizeof tp, "misnamed.txt");
    tpath(d, sizeof d, "misnamed_run");
    CHECK(write_file(tp, text, n), "write");
    rwkv_train_options o = rwkv_train_options_default();
    o.data_path = tp;
    o.out_dir = d;
    o.n_layer = 1;
    o.n_embd = 16;
    o.ctx_len = 8;
    o.batch = 2;
    o.steps = 8;
    o.save_every = 2;
    o.val_windows = 2;
    o.threads = 2;
    o.measure_peak = 0;
    rwkv_error err;
    stopper s = {4};
    CHECK(rwkv_train_run(&o, stop_cb, &s, &err) == RWKV_OK, "first part: %s", err.message);
    ckpt_state_path(d, 4, from, sizeof from);
    ckpt_state_path(d, 6, to, sizeof to);
    CHECK(copy_file(from, to), "copy %s", from);
    ckpt_model_path(d, 4, from, sizeof from);
    ckpt_model_path(d, 6, to, sizeof to);
    CHECK(copy_file(from, to), "copy %s", from);
    rwkv_resume_options ro = rwkv_resume_options_default();
    ro.measure_peak = 0;
    start_note note = {"", -1};
    CHECK(rwkv_train_resume(d, &ro, keep_start_note, &note, &err) == RWKV_OK, "resume: %s", err.message);
    CHECK(strstr(note.text, "ignored checkpoint 6") && strstr(note.text, "holds step 4") &&
              strstr(note.text, "resuming from checkpoint 4") && note.start_step == 4,
          "start step %ld, note: %s", note.start_step, note.text);
}

/* The GPT baseline through the same trainer: the loss falls, and a run
 * stopped after step 3 and resumed logs the same losses as an uninterrupted
 * one (checkpoints hold the GPT's weights and Adam moments exactly). */
static void test_gpt_train_and_resume(void) {
    size_t n;
    const char *text = sample_text(&n);
    char tp[512], d1[512], d2[512], cp[600];
    tpath(tp, sizeof tp, "gpt.txt");
    tpath(d1, sizeof d1, "gpt_a");
    tpath(d2, sizeof d2, "gpt_b");
    CHECK(write_file(tp, text, n), "write");
    rwkv_train_options o = rwkv_train_options_default();
    o.arch = "gpt";
    o.data_path = tp;
    o.n_layer = 2;
    o.n_embd = 32;
    o.n_head = 2;
    o.ctx_len = 16;
    o.batch = 4;
    o.steps = 12;
    o.lr_init = 1e-2;
    o.lr_final = 1e-3;
    o.eval_every = 4;
    o.val_windows = 4;
    o.save_every = 4;
    o.threads = 2;
    o.measure_peak = 0;
    rwkv_error err;
    o.out_dir = d1;
    CHECK(rwkv_train_run(&o, NULL, NULL, &err) == RWKV_OK, "uninterrupted gpt run: %s", err.message);
    o.out_dir = d2;
    stopper s = {6};
    CHECK(rwkv_train_run(&o, stop_cb, &s, &err) == RWKV_OK, "first part: %s", err.message);
    rwkv_resume_options ro = rwkv_resume_options_default();
    ro.measure_peak = 0;
    CHECK(rwkv_train_resume(d2, &ro, NULL, NULL, &err) == RWKV_OK, "resume: %s", err.message);
    char a[4096], b[4096];
    int na = read_losses(d1, a, sizeof a), nb = read_losses(d2, b, sizeof b);
    CHECK(na == 12 && nb == 12, "steps logged: %d and %d", na, nb);
    CHECK(strcmp(a, b) == 0, "per-step losses differ:\n%s---\n%s", a, b);
    /* the validation loss fell from the first evaluation to the last */
    double v4 = 0, v12 = 0;
    const char *l4 = strstr(a, "\n4 "), *l12 = strstr(a, "\n12 ");
    CHECK(l4 && l12 && sscanf(strchr(l4 + 3, ' ') + 1, "%lf", &v4) == 1 &&
              sscanf(strchr(l12 + 4, ' ') + 1, "%lf", &v12) == 1,
          "no validation losses in:\n%s", a);
    CHECK(v12 < 0.9 * v4, "validation loss %g at step 4 -> %g at step 12", v4, v12);
    /* the config says gpt and the head count; an RWKV-4 init file is refused for a gpt run */
    snprintf(cp, sizeof cp, "%s/config.json", d1);
    train_config c;
    CHECK(train_config_read(cp, &c, &err) == RWKV_OK, "%s", err.message);
    int cfg_ok = c.arch && !strcmp(c.arch, "gpt") && c.opt.n_head == 2 && c.opt.n_ffn == 128;
    train_config_free(&c);
    CHECK(cfg_ok, "config.json does not record arch gpt, 2 heads, ffn 128");
    char ip[512], d3[512];
    tpath(ip, sizeof ip, "r4init.safetensors");
    tpath(d3, sizeof d3, "gpt_c");
    rwkv_init_options io = rwkv_init_options_default();
    io.n_layer = 1;
    io.n_embd = 16;
    CHECK(rwkv_init_checkpoint(&io, ip, &err) == RWKV_OK, "%s", err.message);
    o.out_dir = d3;
    o.init_path = ip;
    CHECK(rwkv_train_run(&o, NULL, NULL, &err) == RWKV_ERR_SHAPE && strstr(err.message, "not a GPT checkpoint"),
          "an RWKV-4 --init for a gpt run: %s", err.message);
}

/* A text tokenized with a tokenizer file: rwkv_tokenize_file_with writes the
 * tokenizer's ids and vocabulary, and a run with opt.tokenizer trains on the
 * same token file. */
static void test_tokenizer_file(void) {
    char vocab[512];
    if (!shared_path(vocab, sizeof vocab, "reference/rwkv-cpp/rwkv_vocab_v20230424.txt"))
        SKIP("%s not found", vocab);
    const char *text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n";
    char tp[512], kp[512], dir[600], rp[700];
    tpath(tp, sizeof tp, "world.txt");
    tpath(kp, sizeof kp, "world.tok");
    tpath(dir, sizeof dir, "world_run");
    /* repeated so that the split leaves windows on both sides */
    FILE *f = fopen(tp, "wb");
    CHECK(f, "open");
    for (int i = 0; i < 20; i++) fputs(text, f);
    fclose(f);
    rwkv_error err;
    uint64_t n_tokens = 0;
    int n_vocab = 0;
    CHECK(rwkv_tokenize_file_with(tp, vocab, kp, &n_tokens, &n_vocab, &err) == RWKV_OK, "%s", err.message);
    token_data d;
    CHECK(token_data_open(kp, &d, &err) == RWKV_OK, "%s", err.message);
    int ok = d.n_vocab == 65530 && n_vocab == 65530 && d.token_bytes == 2 && d.n_tokens == n_tokens &&
             n_tokens < 20 * strlen(text) / 2; /* far fewer tokens than bytes */
    int t0 = token_at(&d, 0);
    token_data_close(&d);
    CHECK(ok, "token file: %llu tokens, vocabulary %d", (unsigned long long)n_tokens, n_vocab);
    CHECK(t0 > 255, "the first token %d looks like a byte, not a World token", t0);
    /* "bytes" gives one token per byte, vocabulary 256 */
    CHECK(rwkv_tokenize_file_with(tp, "bytes", kp, &n_tokens, &n_vocab, &err) == RWKV_OK, "%s", err.message);
    CHECK(n_tokens == 20 * strlen(text) && n_vocab == 256, "bytes: %llu tokens, vocabulary %d",
          (unsigned long long)n_tokens, n_vocab);
    rwkv_train_options o = rwkv_train_options_default();
    o.data_path = tp;
    o.tokenizer = vocab;
    o.out_dir = dir;
    o.arch = "gpt";
    o.n_layer = 1;
    o.n_embd = 8;
    o.ctx_len = 8;
    o.batch = 2;
    o.steps = 2;
    o.val_windows = 1;
    o.eval_every = 0;
    o.threads = 2;
    o.measure_peak = 0;
    CHECK(rwkv_train_run(&o, NULL, NULL, &err) == RWKV_OK, "%s", err.message);
    snprintf(rp, sizeof rp, "%s/tokens.bin", dir);
    CHECK(token_data_open(rp, &d, &err) == RWKV_OK, "%s", err.message);
    ok = d.n_vocab == 65530 && token_at(&d, 0) == t0;
    token_data_close(&d);
    CHECK(ok, "the run's tokens.bin is not the World tokenization");
    o.tokenizer = "/nonexistent/vocab.txt";
    snprintf(rp, sizeof rp, "%s2", dir);
    o.out_dir = rp;
    CHECK(rwkv_train_run(&o, NULL, NULL, &err) != RWKV_OK && strstr(err.message, "/nonexistent/vocab.txt"),
          "a missing tokenizer: %s", err.message);
}

static void test_bad_options(void) {
    rwkv_train_options o = rwkv_train_options_default();
    rwkv_error err;
    o.data_path = "/nonexistent";
    o.out_dir = tmpdir;
    o.ctx_len = 0;
    CHECK(rwkv_train_run(&o, NULL, NULL, &err) == RWKV_ERR_ARG && strstr(err.message, "--ctx"), "ctx 0: %s",
          err.message);
    o.ctx_len = 8;
    o.beta2 = 1.0;
    CHECK(rwkv_train_run(&o, NULL, NULL, &err) == RWKV_ERR_ARG && strstr(err.message, "--beta2"), "beta2 1: %s",
          err.message);
    CHECK(rwkv_train_resume("/nonexistent/dir", NULL, NULL, NULL, &err) == RWKV_ERR_IO, "resume of nothing: %s",
          err.message);
    o.beta2 = 0.99;
    o.arch = "lstm";
    CHECK(rwkv_train_run(&o, NULL, NULL, &err) == RWKV_ERR_ARG && strstr(err.message, "--arch"), "arch lstm: %s",
          err.message);
    o.arch = "gpt";
    o.n_head = -1;
    CHECK(rwkv_train_run(&o, NULL, NULL, &err) == RWKV_ERR_ARG && strstr(err.message, "--heads"), "heads -1: %s",
          err.message);
}

int main(void) {
    make_tmpdir();
    RUN(test_adam_hand_values);
    RUN(test_adam_scales_and_decay);
    RUN(test_grad_norm_and_clip);
    RUN(test_schedule);
    RUN(test_data_windows);
    RUN(test_token_file_errors);
    RUN(test_checkpoint_round_trip);
    RUN(test_state_damage_detected);
    RUN(test_ckpt_list_and_prune);
    RUN(test_config_round_trip);
    RUN(test_engine_cpu_matches_direct_math);
    RUN(test_train_stop_resume_identical);
    RUN(test_resume_skips_misnamed_checkpoint);
    RUN(test_gpt_train_and_resume);
    RUN(test_tokenizer_file);
    RUN(test_bad_options);
    remove_tree(tmpdir);
    return test_summary();
}
