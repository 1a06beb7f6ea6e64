/* rwkv_eval_batch, the batched decode, through the public API:
 *  - the checks of tests/batch_check.h on RWKV-4 (the tiny reference model
 *    of ../shared when present, and a fresh init), RWKV-7 (a fresh init)
 *    and the GPT baseline (decoded row by row through its KV caches);
 *  - a batch of 300 streams (more than one 256-row chunk): every row the
 *    same bits as the stream alone;
 *  - a GPT stream whose context is full is refused before any row is fed.
 * (RWKV-5 and 6 get the same checks in tests/test_rwkv_versions.c.) */
#include <stdint.h>
#include <unistd.h>

#include "kernels/dot_int8.h"
#include "kernels/kernels.h"
#include "rwkv.h"
#include "rwkv_quant.h"
#include "rwkv_train.h"
#include "test.h"
#include "batch_check.h"
#include "init_model.h"

/* A freshly initialised model of `arch` (NULL with *why set). */
static rwkv_model *make_model(const char *arch, int n_ctx, char *why, size_t size) {
    rwkv_init_options o = rwkv_init_options_default();
    o.arch = arch;
    o.n_layer = 2;
    o.n_embd = 32;
    o.n_vocab = 64;
    o.n_head = 2;
    o.head_size = 16;
    o.n_ctx = n_ctx;
    o.seed = 5;
    o.emb_scale = 0.5; /* a visible embedding, so that the rows differ */
    return init_model(&o, why, size);
}

static void check_arch(const char *arch) {
    char why[512] = "";
    rwkv_model *m = make_model(arch, 64, why, sizeof why);
    CHECK(m, "%s", why);
    int ok = batch_check(m, why, sizeof why);
    rwkv_model_free(m);
    CHECK(ok, "%s: %s", arch, why);
}

static void test_batch_rwkv4_init(void) { check_arch("rwkv4"); }
static void test_batch_rwkv7_init(void) { check_arch("rwkv7"); }
static void test_batch_gpt(void) { check_arch("gpt"); }

/* The checks on a model file of ../shared (rel below it), at two threads:
 * every row the same bits as the stream alone, or (tol > 0) within tol. */
static void check_shared_model(const char *rel, double tol) {
    char path[800], why[512] = "";
    if (!shared_path(path, sizeof path, rel)) SKIP("%s not found", path);
    rwkv_model *m;
    rwkv_error err;
    CHECK(rwkv_model_load(path, &m, &err) == RWKV_OK, "%s", err.message);
    rwkv_model_set_threads(m, 2);
    int ok = tol > 0 ? batch_check_within(m, tol, tol, why, sizeof why) : batch_check(m, why, sizeof why);
    rwkv_model_free(m);
    CHECK(ok, "%s", why);
}

/* RWKV-7 wide enough that a decode step splits its heads over the threads
 * (kernels/pool.c's pinned loops): heads of 64, and heads of 40, whose
 * spans hold two heads so that they start on multiples of 16 channels. Every
 * batch check at two threads, and three steps at 1, 2 and 3 threads give
 * the same bits. */
static void check_rwkv7_split_heads(int n_embd, int head_size) {
    char why[512] = "";
    rwkv_init_options o = rwkv_init_options_default();
    o.arch = "rwkv7";
    o.n_layer = 2;
    o.n_embd = n_embd;
    o.head_size = head_size;
    o.n_vocab = 64;
    o.seed = 9;
    o.emb_scale = 0.5;
    rwkv_model *m = init_model(&o, why, sizeof why);
    CHECK(m, "%s", why);
    rwkv_model_set_threads(m, 2);
    int ok = batch_check(m, why, sizeof why), same = 1;
    CHECK(ok, "heads of %d: %s", head_size, why);
    rwkv_error err = {0};
    float *l = rwkv_logits_alloc(m, 4, &err);
    rwkv_state *st = NULL;
    for (int nt = 1; ok && nt <= 3; nt++) {
        rwkv_model_set_threads(m, nt);
        ok = l && rwkv_state_new(m, &st, &err) == RWKV_OK;
        for (int t = 0; ok && t < 3; t++) ok = rwkv_eval(m, st, 7 * t + 1, l + (size_t)(nt == 1 ? 0 : 1) * 64, &err) == RWKV_OK;
        if (ok && nt > 1) same = same && memcmp(l, l + 64, sizeof(float) * 64) == 0;
        rwkv_state_free(st);
        st = NULL;
    }
    rwkv_logits_free(m, l);
    rwkv_model_free(m);
    CHECK(ok, "%s", err.message);
    CHECK(same, "heads of %d: the logits depend on the number of threads", head_size);
}

static void test_batch_rwkv7_split_heads(void) {
    check_rwkv7_split_heads(256, 64);
    check_rwkv7_split_heads(480, 40);
}

static void test_batch_rwkv4_reference(void) { check_shared_model("testvectors/rwkv4/tiny/model.f32.safetensors", 0); }

/* 300 rows: two chunks of the driver; each row as the stream alone. */
static void test_batch_many_rows(void) {
    enum { B = 300 };
    char why[512] = "";
    rwkv_model *m = make_model("rwkv7", 0, why, sizeof why);
    CHECK(m, "%s", why);
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    const int V = info.n_vocab;
    rwkv_state **st = calloc(B, sizeof *st), *one = NULL;
    int *tok = malloc(sizeof(int) * B), bad = -1;
    rwkv_error err = {0};
    float *l = rwkv_logits_alloc(m, B, &err), *l1 = malloc(sizeof(float) * (size_t)V);
    int ok = st && tok && l && l1;
    for (int i = 0; ok && i < B; i++) {
        tok[i] = (i * 13) % V;
        ok = rwkv_state_new(m, &st[i], &err) == RWKV_OK &&
             rwkv_eval(m, st[i], (i * 5) % V, NULL, &err) == RWKV_OK; /* histories of one token */
    }
    ok = ok && rwkv_eval_batch(m, st, tok, B, l, &err) == RWKV_OK;
    for (int i = 0; ok && i < B && bad < 0; i++) {
        int h = (i * 5) % V;
        ok = rwkv_state_new(m, &one, &err) == RWKV_OK && rwkv_eval(m, one, h, NULL, &err) == RWKV_OK &&
             rwkv_eval_batch(m, &one, &tok[i], 1, l1, &err) == RWKV_OK;
        if (ok && !batch_same_bits(st[i], one, l + (size_t)i * V, l1, V)) bad = i;
        rwkv_state_free(one);
        one = NULL;
    }
    for (int i = 0; st && i < B; i++) rwkv_state_free(st[i]);
    free(st);
    free(tok);
    rwkv_logits_free(m, l);
    free(l1);
    CHECK(ok, "%s", err.message[0] ? err.message : "out of memory");
    CHECK(bad < 0, "row %d of %d differs from the stream alone", bad, B);
    CHECK(!rwkv_logits_alloc(m, 0, &err) && err.code == RWKV_ERR_ARG, "0 rows of logits accepted");
    rwkv_model_free(m);
}

static void test_batch_gpt_full_context(void) {
    char why[512] = "";
    rwkv_model *m = make_model("gpt", 4, why, sizeof why);
    CHECK(m, "%s", why);
    rwkv_state *a = NULL, *b = NULL;
    rwkv_error err;
    const int fill[4] = {1, 2, 3, 4}, tok[2] = {5, 6};
    int ok = rwkv_state_new(m, &a, &err) == RWKV_OK && rwkv_state_new(m, &b, &err) == RWKV_OK &&
             rwkv_eval_sequence(m, b, fill, 4, NULL, 0, &err) == RWKV_OK;
    rwkv_state *both[2] = {a, b};
    rwkv_status s = ok ? rwkv_eval_batch(m, both, tok, 2, NULL, &err) : RWKV_OK;
    size_t pos_a = ok ? rwkv_state_pos(a) : 1;
    rwkv_state_free(a);
    rwkv_state_free(b);
    rwkv_model_free(m);
    CHECK(ok, "%s", err.message);
    CHECK(s == RWKV_ERR_ARG && strstr(err.message, "full"), "a full context gave %d: %s", (int)s, err.message);
    CHECK(pos_a == 0, "the other row was fed (position %zu)", pos_a);
}

/* A fresh temporary file at path (a mkstemp template) and, in other, its
 * name with suffix appended, for a second file made from it; 0 on failure. */
static int temp_file_pair(char *path, char *other, size_t size, const char *suffix) {
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    close(fd);
    snprintf(other, size, "%s%s", path, suffix);
    return 1;
}

/* A model loaded with pack_weights (f32, f16 and bf16 matrices packed once)
 * gives the bits of the same model loaded without it, batched and in
 * sequence mode, and passes every batch check. The FFN width (800) spans
 * three column slices and the vocabulary (70) ends in a partial panel. */
static void test_batch_packed_weights(void) {
    static const char *const archs[] = {"rwkv4", "rwkv7"};
    static const char *const names[] = {"f32", "f16", "bf16"};
    for (int a = 0; a < 2; a++)
        for (int half = 0; half < 3; half++) {
            char path[] = "/tmp/rwkv-test-packed-XXXXXX", path16[64], why[512] = "";
            CHECK(temp_file_pair(path, path16, sizeof path16, ".f16"), "mkstemp failed");
            rwkv_init_options o = rwkv_init_options_default();
            o.arch = archs[a];
            o.n_layer = 2, o.n_embd = 64, o.n_vocab = 70, o.n_ffn = 800, o.head_size = 32, o.seed = 9;
            o.emb_scale = 0.5;
            rwkv_error err = {0};
            rwkv_model *plain = NULL, *packed = NULL;
            const char *file = half ? path16 : path;
            int ok = rwkv_init_checkpoint(&o, path, &err) == RWKV_OK &&
                     (!half || rwkv_convert_to_safetensors(path, path16, half == 1 ? RWKV_DTYPE_F16 : RWKV_DTYPE_BF16,
                                                           &err) == RWKV_OK) &&
                     rwkv_model_load(file, &plain, &err) == RWKV_OK &&
                     rwkv_model_load_ex(file, &(rwkv_load_options){.pack_weights = 1}, &packed, &err) == RWKV_OK;
            unlink(path);
            unlink(path16);
            CHECK(ok, "%s: %s", archs[a], err.message);
            rwkv_model_set_threads(plain, 2);
            rwkv_model_set_threads(packed, 2);
            int checks = batch_check(packed, why, sizeof why), same = 1;
            enum { B = 5 };
            rwkv_state *sp[B] = {0}, *sq[B] = {0};
            float lp[B * 70], lq[B * 70];
            int tok[B];
            for (int i = 0; i < B; i++) {
                tok[i] = (i * 17 + 3) % 70;
                sp[i] = batch_state(plain, i, &err);
                sq[i] = batch_state(packed, i, &err);
                ok = ok && sp[i] && sq[i];
            }
            ok = ok && rwkv_eval_batch(plain, sp, tok, B, lp, &err) == RWKV_OK &&
                 rwkv_eval_batch(packed, sq, tok, B, lq, &err) == RWKV_OK;
            for (int i = 0; ok && i < B; i++) same = same && batch_same_bits(sp[i], sq[i], lp + i * 70, lq + i * 70, 70);
            for (int i = 0; i < B; i++) rwkv_state_free(sp[i]), rwkv_state_free(sq[i]);
            rwkv_model_free(plain);
            rwkv_model_free(packed);
            CHECK(ok, "%s: %s", archs[a], err.message);
            CHECK(checks, "%s %s packed: %s", archs[a], names[half], why);
            CHECK(same, "%s %s: packed weights change the bits of a batch", archs[a], names[half]);
        }
}

/* Block-quantized files (written by rwkv quantize) pass every batch check
 * too: in particular two batched steps give the bits of the same tokens fed
 * as a prompt, which the server's prefix cache relies on (a reply fed by
 * batched steps, the next turn equal to the conversation fed from the
 * start). Where the CPU's integer variant has the tiled kernel, the batch's
 * products are rwkv_eval's own (8-bit activations, the same integer
 * kernels): the rows agree with rwkv_eval as the float files' do. Elsewhere
 * the matrix-matrix kernels keep the activations in float, and the rows
 * agree to the rounding of rwkv_eval's 8-bit activations: within QUANT_TOL. */
#define QUANT_TOL 5e-2
static void test_batch_quantized(void) {
    static const rwkv_quant_type types[] = {RWKV_QUANT_Q4_0, RWKV_QUANT_Q5_1, RWKV_QUANT_Q8_0, RWKV_QUANT_Q4_K,
                                            RWKV_QUANT_Q6_K};
    static const char *const names[] = {"q4_0", "q5_1", "q8_0", "q4_k", "q6_k"};
    const int tiled = kernels_int8_activations() && int8_dot_for(kernels_active())->groups_tokens != NULL;
    const int tiled_k = kernels_int8_activations() && kernels_active()->kquant_tokens != NULL;
    printf("# batched products of the block formats: %s; of the k-quants: %s\n",
           tiled ? "the decode's integer kernels" : "float panels", tiled_k ? "the decode's integer kernels" : "float panels");
    for (int t = 0; t < 5; t++) {
        const int kquant = types[t] == RWKV_QUANT_Q4_K || types[t] == RWKV_QUANT_Q6_K;
        char path[] = "/tmp/rwkv-test-quant-XXXXXX", qpath[64], why[512] = "";
        CHECK(temp_file_pair(path, qpath, sizeof qpath, kquant ? ".gguf" : ".bin"), "mkstemp failed");
        rwkv_init_options o = rwkv_init_options_default();
        /* the k-quants: a GGUF file (RWKV-6/7, with a vocabulary) with rows of 256, their super-block */
        o.arch = kquant ? "rwkv7" : "rwkv4", o.n_layer = 2, o.n_embd = kquant ? 256 : 64, o.n_vocab = kquant ? 256 : 70;
        o.seed = 13, o.emb_scale = 0.5;
        const rwkv_quant_options q = {.type = types[t], .head_type = RWKV_QUANT_DEFAULT, .tokenizer = "bytes"};
        rwkv_error err = {0};
        rwkv_model *m = NULL;
        int ok = rwkv_init_checkpoint(&o, path, &err) == RWKV_OK &&
                 rwkv_quantize_opts(path, qpath, &q, &err) == RWKV_OK && rwkv_model_load(qpath, &m, &err) == RWKV_OK;
        unlink(path);
        unlink(qpath);
        CHECK(ok, "%s: %s", names[t], err.message);
        rwkv_model_set_threads(m, 2);
        ok = (kquant ? tiled_k : tiled) ? batch_check(m, why, sizeof why)
                                        : batch_check_within(m, QUANT_TOL, QUANT_TOL, why, sizeof why);
        rwkv_model_free(m);
        CHECK(ok, "%s: %s", names[t], why);
    }
}

/* llama.cpp's converter's q8_0 RWKV-7 file of ../shared: its in-context rate,
 * value and gate LoRAs are Q8_0, read from the file's rows (model_lora), so
 * batched steps take them through the integer tiles like the other matrices. */
static void test_batch_converter_q8_0(void) {
    const int tiled = kernels_int8_activations() && int8_dot_for(kernels_active())->groups_tokens != NULL;
    check_shared_model("testvectors/gguf-rwkv7/tiny/model.q8_0.gguf", tiled ? 0 : QUANT_TOL);
}

int main(void) {
    RUN(test_batch_rwkv4_reference);
    RUN(test_batch_rwkv4_init);
    RUN(test_batch_rwkv7_init);
    RUN(test_batch_rwkv7_split_heads);
    RUN(test_batch_gpt);
    RUN(test_batch_many_rows);
    RUN(test_batch_packed_weights);
    RUN(test_batch_quantized);
    RUN(test_batch_converter_q8_0);
    RUN(test_batch_gpt_full_context);
    return test_summary();
}
