/* The public GPT API (include/rwkv_gpt.h) that the benchmarks and the recall
 * probe use: a model written by rwkv_init_checkpoint / trained by rwkv_train
 * loads, its one-token KV-cache decode gives the logits of the whole-sequence
 * forward at every position (for several thread counts, and again after a
 * reset), the cache memory is reported, bad input is refused, and
 * rwkv_checkpoint_arch tells a GPT checkpoint from an RWKV one. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rwkv.h"
#include "rwkv_gpt.h"
#include "rwkv_train.h"
#include "test.h"

static char tmpdir[256];

static void tpath(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/%s", tmpdir, name); }

static int write_gpt(const char *path, int layers, int embd, int heads, int vocab, int n_ctx, uint64_t seed,
                     rwkv_error *err) {
    rwkv_init_options o = rwkv_init_options_default();
    o.arch = "gpt";
    o.n_layer = layers;
    o.n_embd = embd;
    o.n_head = heads;
    o.n_vocab = vocab;
    o.n_ctx = n_ctx;
    o.seed = seed;
    return rwkv_init_checkpoint(&o, path, err) == RWKV_OK;
}

/* A small RWKV-4 checkpoint. */
static int write_rwkv(const char *path, rwkv_error *err) {
    rwkv_init_options o = rwkv_init_options_default();
    o.n_layer = 1;
    o.n_embd = 16;
    o.n_vocab = 20;
    return rwkv_init_checkpoint(&o, path, err) == RWKV_OK;
}

static void decode_matches_forward(const char *path, int T, int threads) {
    rwkv_error err;
    rwkv_gpt *g;
    CHECK(rwkv_gpt_load(path, &g, &err) == RWKV_OK, "%s", err.message);
    rwkv_gpt_set_threads(g, threads);
    rwkv_gpt_info info;
    rwkv_gpt_get_info(g, &info);
    const int V = info.n_vocab;
    int *tok = malloc(sizeof(int) * (size_t)T);
    float *full = malloc(sizeof(float) * (size_t)T * V), *one = malloc(sizeof(float) * (size_t)V);
    for (int t = 0; t < T; t++) tok[t] = (t * 7919 + 13) % V;
    rwkv_status s = rwkv_gpt_forward(g, tok, (size_t)T, full, &err);
    double worst = 0;
    int pos_ok = 1;
    for (int t = 0; t < T && s == RWKV_OK; t++) {
        s = rwkv_gpt_eval(g, tok[t], one, &err);
        worst = fmax(worst, tol_ratio(one, full + (size_t)t * V, (size_t)V, 1e-5, 1e-4));
        pos_ok &= rwkv_gpt_pos(g) == t + 1;
    }
    size_t used = 0, alloc = 0;
    rwkv_gpt_cache_bytes(g, &used, &alloc);
    rwkv_gpt_reset(g);
    rwkv_status again = rwkv_gpt_eval(g, tok[0], one, NULL);
    double first = tol_ratio(one, full, (size_t)V, 1e-5, 1e-4);
    rwkv_gpt_free(g);
    free(tok), free(full), free(one);
    CHECK(s == RWKV_OK, "%s", err.message);
    CHECK(pos_ok, "rwkv_gpt_pos did not count the tokens");
    CHECK(worst <= 1.0, "decode logits differ from the full forward (ratio %.3g, %d threads)", worst, threads);
    CHECK(used == 2 * (size_t)info.n_layer * (size_t)T * (size_t)info.n_embd * sizeof(float) && alloc >= used,
          "cache bytes: used %zu allocated %zu", used, alloc);
    CHECK(again == RWKV_OK && first <= 1.0, "after reset the first logits differ (%.3g)", first);
}

static void test_decode_equals_forward(void) {
    char p[512];
    tpath(p, sizeof p, "g.safetensors");
    rwkv_error err;
    /* 4 heads of 16; 80 positions so the cache grows 16 -> 32 -> 64 -> 80 */
    CHECK(write_gpt(p, 2, 64, 4, 61, 80, 5, &err), "%s", err.message);
    decode_matches_forward(p, 80, 1);
    decode_matches_forward(p, 80, 2);
    decode_matches_forward(p, 37, 3);
}

static void test_long_context_heads_in_parallel(void) {
    /* past (t+1) * C >= 32768 the heads of the decode run in parallel */
    char p[512];
    tpath(p, sizeof p, "glong.safetensors");
    rwkv_error err;
    CHECK(write_gpt(p, 1, 256, 4, 40, 160, 9, &err), "%s", err.message);
    decode_matches_forward(p, 160, 2);
}

static void test_info_and_errors(void) {
    char p[512], r[512];
    tpath(p, sizeof p, "g2.safetensors");
    tpath(r, sizeof r, "rwkv.safetensors");
    rwkv_error err;
    CHECK(write_gpt(p, 1, 32, 0, 50, 16, 1, &err), "%s", err.message);
    rwkv_gpt *g;
    CHECK(rwkv_gpt_load(p, &g, &err) == RWKV_OK, "%s", err.message);
    rwkv_gpt_info info;
    rwkv_gpt_get_info(g, &info);
    int shape_ok = info.n_layer == 1 && info.n_embd == 32 && info.n_head == 1 && info.n_vocab == 50 &&
                   info.n_ctx == 16 && info.n_ffn == 128 && info.n_params_pos == 16 * 32;
    float logits[50];
    rwkv_status bad_tok = rwkv_gpt_eval(g, 50, logits, NULL);
    int tok[17] = {0};
    rwkv_status too_long = rwkv_gpt_forward(g, tok, 17, logits, NULL);
    rwkv_status full = RWKV_OK;
    for (int t = 0; t < 16 && full == RWKV_OK; t++) full = rwkv_gpt_eval(g, 1, NULL, &err);
    rwkv_status past = rwkv_gpt_eval(g, 1, NULL, NULL);
    rwkv_gpt_free(g);
    CHECK(shape_ok, "info: %d x %d, %d heads, vocab %d, ctx %d, ffn %d", info.n_layer, info.n_embd, info.n_head,
          info.n_vocab, info.n_ctx, info.n_ffn);
    CHECK(bad_tok == RWKV_ERR_ARG, "a token outside the vocabulary was accepted");
    CHECK(too_long == RWKV_ERR_ARG, "a sequence longer than n_ctx was accepted");
    CHECK(full == RWKV_OK && past == RWKV_ERR_ARG, "the context limit: %d then %d", full, past);
    /* an RWKV-4 checkpoint is not a GPT one, and the reverse */
    CHECK(write_rwkv(r, &err), "%s", err.message);
    CHECK(rwkv_gpt_load(r, &g, &err) == RWKV_ERR_SHAPE && strstr(err.message, "not a GPT checkpoint"),
          "an RWKV file loaded as GPT: %s", err.message);
    CHECK(rwkv_gpt_load("/nonexistent.safetensors", &g, &err) != RWKV_OK, "a missing file loaded");
}

/* rwkv_checkpoint_arch tells the two apart from the file; a file that is not
 * a checkpoint is the error rwkv_model_load gives. */
static void test_checkpoint_arch(void) {
    char p[512], r[512], t[512];
    tpath(p, sizeof p, "arch_gpt.safetensors");
    tpath(r, sizeof r, "arch_rwkv.safetensors");
    tpath(t, sizeof t, "arch.txt");
    rwkv_error err;
    CHECK(write_gpt(p, 1, 16, 1, 20, 8, 3, &err), "%s", err.message);
    CHECK(write_rwkv(r, &err), "%s", err.message);
    FILE *f = fopen(t, "wb");
    CHECK(f && fputs("not a checkpoint\n", f) >= 0 && fclose(f) == 0, "cannot write %s", t);
    rwkv_arch a = RWKV_ARCH_RWKV, b = RWKV_ARCH_GPT;
    CHECK(rwkv_checkpoint_arch(p, &a, &err) == RWKV_OK && a == RWKV_ARCH_GPT, "GPT file: %d %s", a, err.message);
    CHECK(rwkv_checkpoint_arch(r, &b, &err) == RWKV_OK && b == RWKV_ARCH_RWKV, "RWKV file: %d %s", b, err.message);
    rwkv_model *m = NULL;
    rwkv_error merr;
    rwkv_status text = rwkv_checkpoint_arch(t, &a, &err);
    rwkv_status load = rwkv_model_load(t, &m, &merr);
    CHECK(text == RWKV_ERR_FORMAT && load == text && strcmp(err.message, merr.message) == 0,
          "a text file: %d '%s' vs rwkv_model_load %d '%s'", text, err.message, load, merr.message);
    CHECK(rwkv_checkpoint_arch("/nonexistent.safetensors", &a, &err) == RWKV_ERR_IO &&
              strstr(err.message, "/nonexistent.safetensors"),
          "a missing file: %s", err.message);
    CHECK(rwkv_checkpoint_arch(p, NULL, NULL) == RWKV_ERR_ARG, "a NULL arch was accepted");
}

/* rwkv train --arch gpt writes checkpoints that this API loads and that
 * decode like the forward. */
static void test_trained_checkpoint_decodes(void) {
    char text[3000];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)('a' + (i * 7 + i / 5) % 23);
    char tp[512], dir[512], mp[600];
    tpath(tp, sizeof tp, "t.txt");
    tpath(dir, sizeof dir, "run");
    FILE *f = fopen(tp, "wb");
    CHECK(f && fwrite(text, 1, sizeof text, f) == sizeof text, "write");
    fclose(f);
    rwkv_train_options o = rwkv_train_options_default();
    o.arch = "gpt";
    o.data_path = tp;
    o.out_dir = dir;
    o.n_layer = 1;
    o.n_embd = 32;
    o.n_head = 2;
    o.ctx_len = 24;
    o.batch = 2;
    o.steps = 3;
    o.val_windows = 2;
    o.threads = 2;
    o.measure_peak = 0;
    rwkv_error err;
    CHECK(rwkv_train_run(&o, NULL, NULL, &err) == RWKV_OK, "%s", err.message);
    snprintf(mp, sizeof mp, "%s/model.safetensors", dir);
    decode_matches_forward(mp, 24, 2);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rwkv_test_gpt_api_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_decode_equals_forward);
    RUN(test_long_context_heads_in_parallel);
    RUN(test_info_and_errors);
    RUN(test_checkpoint_arch);
    RUN(test_trained_checkpoint_decodes);
    remove_tree(tmpdir);
    return test_summary();
}
