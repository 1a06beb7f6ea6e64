/* The GPT baseline behind the one model handle of rwkv.h, as the CLI, the
 * benchmarks and the recall probe use it: a model written by
 * rwkv_init_checkpoint / trained by rwkv_train loads with rwkv_model_load,
 * which says it is a GPT; feeding tokens through its state (the KV cache,
 * token by token or as a sequence) gives the logits of the whole-sequence
 * forward at every position (for several thread counts, and again after a
 * reset), the cache memory is reported, bad input, a token past the context
 * and the RNN-only state calls are refused, the architecture of a file is
 * told from its tensors, and a device other than the CPU is refused. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"
#include "rwkv.h"
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
    rwkv_model *g;
    CHECK(rwkv_model_load(path, &g, &err) == RWKV_OK, "%s", err.message);
    rwkv_model_set_threads(g, threads);
    rwkv_model_info info;
    rwkv_model_get_info(g, &info);
    const int V = info.n_vocab;
    int *tok = malloc(sizeof(int) * (size_t)T);
    float *full = malloc(sizeof(float) * (size_t)T * V), *one = malloc(sizeof(float) * (size_t)V);
    float *seq = malloc(sizeof(float) * (size_t)T * V);
    for (int t = 0; t < T; t++) tok[t] = (t * 7919 + 13) % V;
    rwkv_state *st = NULL;
    rwkv_status s = model_forward(g, tok, (size_t)T, full, &err);
    if (s == RWKV_OK) s = rwkv_state_new(g, &st, &err);
    double worst = 0;
    int pos_ok = 1;
    for (int t = 0; t < T && s == RWKV_OK; t++) {
        s = rwkv_eval(g, st, tok[t], one, &err);
        worst = fmax(worst, tol_ratio(one, full + (size_t)t * V, (size_t)V, 1e-5, 1e-4));
        pos_ok &= rwkv_state_pos(st) == (size_t)t + 1;
    }
    size_t used = 0, alloc = 0;
    if (st) rwkv_state_memory(st, &used, &alloc);
    rwkv_status again = RWKV_ERR_ARG, in_seq = RWKV_ERR_ARG;
    double first = INFINITY, seq_worst = INFINITY;
    if (st) {
        rwkv_state_reset(st);
        again = rwkv_eval(g, st, tok[0], one, NULL);
        first = tol_ratio(one, full, (size_t)V, 1e-5, 1e-4);
        rwkv_state_reset(st);
        in_seq = rwkv_eval_sequence(g, st, tok, (size_t)T, seq, 1, NULL);
        seq_worst = tol_ratio(seq, full, (size_t)T * V, 1e-5, 1e-4);
    }
    rwkv_state_free(st);
    rwkv_model_free(g);
    free(tok), free(full), free(one), free(seq);
    CHECK(s == RWKV_OK, "%s", err.message);
    CHECK(info.arch == RWKV_ARCH_GPT && strcmp(info.version, "gpt") == 0, "not recognised as a GPT: %s", info.version);
    CHECK(pos_ok, "rwkv_state_pos did not count the tokens");
    CHECK(worst <= 1.0, "decode logits differ from the full forward (ratio %.3g, %d threads)", worst, threads);
    CHECK(used == 2 * (size_t)info.n_layer * (size_t)T * (size_t)info.n_embd * sizeof(float) && alloc >= used,
          "cache bytes: used %zu allocated %zu", used, alloc);
    CHECK(again == RWKV_OK && first <= 1.0, "after reset the first logits differ (%.3g)", first);
    CHECK(in_seq == RWKV_OK && seq_worst <= 1.0, "rwkv_eval_sequence differs from the forward (%.3g)", seq_worst);
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
    char p[512], sp[512];
    tpath(p, sizeof p, "g2.safetensors");
    tpath(sp, sizeof sp, "g2.state");
    rwkv_error err;
    CHECK(write_gpt(p, 1, 32, 0, 50, 16, 1, &err), "%s", err.message);
    rwkv_model *g;
    CHECK(rwkv_model_load(p, &g, &err) == RWKV_OK, "%s", err.message);
    rwkv_model_info info;
    rwkv_model_get_info(g, &info);
    int shape_ok = info.n_layer == 1 && info.n_embd == 32 && info.n_head == 1 && info.head_size == 32 &&
                   info.n_vocab == 50 && info.n_ctx == 16 && info.n_ffn == 128 && info.n_params_pos == 16 * 32 &&
                   info.state_floats == 0 && strcmp(info.device, "cpu") == 0;
    float logits[50];
    rwkv_state *st, *other;
    CHECK(rwkv_state_new(g, &st, &err) == RWKV_OK && rwkv_state_new(g, &other, &err) == RWKV_OK, "%s", err.message);
    rwkv_status bad_tok = rwkv_eval(g, st, 50, logits, NULL);
    int tok[17] = {0};
    rwkv_status too_long = model_forward(g, tok, 17, logits, NULL);
    rwkv_status seq_long = rwkv_eval_sequence(g, st, tok, 17, NULL, 0, NULL);
    size_t pos_after = rwkv_state_pos(st);
    rwkv_status full = RWKV_OK;
    for (int t = 0; t < 16 && full == RWKV_OK; t++) full = rwkv_eval(g, st, 1, NULL, &err);
    rwkv_status past = rwkv_eval(g, st, 1, NULL, &err);
    int past_names_ctx = strstr(err.message, "context of 16") != NULL;
    /* the RNN-only calls */
    rwkv_status save = rwkv_state_save(st, sp, &err);
    int one_line = strchr(err.message, '\n') == NULL && strstr(err.message, "GPT") != NULL;
    rwkv_status load = rwkv_state_load(st, sp, NULL);
    rwkv_status copy = rwkv_state_copy(other, st, NULL);
    int no_data = rwkv_state_size(st) == 0 && rwkv_state_data(st) == NULL;
    rwkv_state_free(st);
    rwkv_state_free(other);
    rwkv_model_free(g);
    CHECK(shape_ok, "info: %d x %d, %d heads, vocab %d, ctx %d, ffn %d", info.n_layer, info.n_embd, info.n_head,
          info.n_vocab, info.n_ctx, info.n_ffn);
    CHECK(bad_tok == RWKV_ERR_ARG, "a token outside the vocabulary was accepted");
    CHECK(too_long == RWKV_ERR_ARG, "a forward longer than n_ctx was accepted");
    CHECK(seq_long == RWKV_ERR_ARG && pos_after == 0, "a sequence longer than n_ctx was fed (%d, pos %zu)", seq_long,
          pos_after);
    CHECK(full == RWKV_OK && past == RWKV_ERR_ARG && past_names_ctx, "the context limit: %d then %d (%s)", full, past,
          err.message);
    CHECK(save == RWKV_ERR_UNSUPPORTED && one_line && access(sp, F_OK) != 0, "a GPT state was saved: %d", save);
    CHECK(load == RWKV_ERR_UNSUPPORTED && copy == RWKV_ERR_UNSUPPORTED && no_data,
          "RNN-only state calls on a KV cache: load %d, copy %d", load, copy);
}

/* rwkv_model_load tells the architectures apart from the file; a file that is
 * not a checkpoint or is missing is an error naming it; only the CPU device
 * exists. */
static void test_architecture_detected(void) {
    char p[512], r[512], t[512];
    tpath(p, sizeof p, "arch_gpt.safetensors");
    tpath(r, sizeof r, "arch_rwkv.safetensors");
    tpath(t, sizeof t, "arch.txt");
    rwkv_error err;
    CHECK(write_gpt(p, 1, 16, 1, 20, 8, 3, &err), "%s", err.message);
    CHECK(write_rwkv(r, &err), "%s", err.message);
    FILE *f = fopen(t, "wb");
    CHECK(f && fputs("not a checkpoint\n", f) >= 0 && fclose(f) == 0, "cannot write %s", t);
    rwkv_model *m = NULL;
    rwkv_model_info a = {0}, b = {0};
    CHECK(rwkv_model_load(p, &m, &err) == RWKV_OK, "%s", err.message);
    rwkv_model_get_info(m, &a);
    rwkv_model_free(m);
    CHECK(rwkv_model_load_ex(r, &(rwkv_load_options){.device = "cpu"}, &m, &err) == RWKV_OK, "%s", err.message);
    rwkv_model_get_info(m, &b);
    rwkv_model_free(m);
    CHECK(a.arch == RWKV_ARCH_GPT && a.n_ctx == 8, "GPT file: arch %d, n_ctx %d", a.arch, a.n_ctx);
    CHECK(b.arch == RWKV_ARCH_RWKV && b.n_ctx == 0 && strcmp(b.version, "4") == 0 && b.state_floats > 0,
          "RWKV file: arch %d, version %s", b.arch, b.version);
    CHECK(rwkv_model_load(t, &m, &err) == RWKV_ERR_FORMAT && m == NULL, "a text file: %s", err.message);
    CHECK(rwkv_model_load("/nonexistent.safetensors", &m, &err) == RWKV_ERR_IO &&
              strstr(err.message, "/nonexistent.safetensors"),
          "a missing file: %s", err.message);
    rwkv_status cuda = rwkv_model_load_ex(p, &(rwkv_load_options){.device = "cuda"}, &m, &err);
    CHECK(cuda == RWKV_ERR_UNSUPPORTED && m == NULL && strstr(err.message, "cuda") && strstr(err.message, "cpu"),
          "another device: %d %s", cuda, err.message);
}

/* rwkv train --arch gpt writes checkpoints that rwkv_model_load reads and
 * that decode like the forward. */
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
    RUN(test_architecture_detected);
    RUN(test_trained_checkpoint_decodes);
    remove_tree(tmpdir);
    return test_summary();
}
