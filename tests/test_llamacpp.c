/* llama.cpp reads the GGUF files rwkv.c writes and computes the same model:
 * `rwkv quantize` turns the shared RWKV-7 .pth into GGUF files of every type,
 * llama.cpp (the prebuilt library of the npm package node-llama-cpp@3.21.1,
 * installed into build/node-llama-cpp on first use, never committed) loads
 * each one and gives its next-token probabilities for the case's tokens, and
 * those must match rwkv.c's on the same file. Skips cleanly without
 * ../shared, node/npm, or the package (no network). */
#include <jansson.h>
#include <stdint.h>

#include "rwkv.h"
#include "rwkv_quant.h"
#include "rwkv_train.h"
#include "test.h"

#define NPM_DIR "build/node-llama-cpp"
#define PACKAGE "node-llama-cpp@3.21.1"

static int have_llamacpp(char *why, size_t why_size) {
    if (system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1") != 0) {
        snprintf(why, why_size, "node and npm are not installed");
        return 0;
    }
    if (access(NPM_DIR "/node_modules/node-llama-cpp/package.json", R_OK) != 0 &&
        system("mkdir -p " NPM_DIR " && npm i -E --prefix " NPM_DIR " --ignore-scripts --no-audit --no-fund " PACKAGE
               " >/dev/null 2>&1") != 0) {
        snprintf(why, why_size, "npm could not install %s", PACKAGE);
        return 0;
    }
    /* the script resolves the package from its own folder */
    if (system("cp tests/llamacpp/probs.mjs " NPM_DIR "/probs.mjs") != 0) {
        snprintf(why, why_size, "cannot copy tests/llamacpp/probs.mjs (run from the repository root)");
        return 0;
    }
    return 1;
}

static int read_tokens(const char *case_dir, int *tokens, int max) {
    char path[600];
    snprintf(path, sizeof path, "%s/case.json", case_dir);
    json_t *root = json_load_file(path, 0, NULL), *toks = root ? json_object_get(root, "tokens") : NULL;
    int n = 0;
    for (size_t i = 0; json_is_array(toks) && i < json_array_size(toks) && n < max; i++)
        tokens[n++] = (int)json_integer_value(json_array_get(toks, i));
    json_decref(root);
    return n;
}

/* rwkv.c's next-token probabilities [T][V] for the tokens, RNN mode. */
static float *our_probs(const char *path, const int *tokens, int T, int *V, char *msg, size_t msg_size) {
    rwkv_model *m = NULL;
    rwkv_state *st = NULL;
    rwkv_error err;
    if (rwkv_model_load(path, &m, &err) != RWKV_OK || rwkv_state_new(m, &st, &err) != RWKV_OK) {
        snprintf(msg, msg_size, "%s", err.message);
        rwkv_model_free(m);
        return NULL;
    }
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    *V = info.n_vocab;
    float *p = malloc(sizeof(float) * (size_t)T * (size_t)*V);
    for (int t = 0; t < T && p; t++) {
        float *row = p + (size_t)t * *V;
        if (rwkv_eval(m, st, tokens[t], row, &err) != RWKV_OK) {
            snprintf(msg, msg_size, "%s", err.message);
            free(p);
            p = NULL;
            break;
        }
        double mx = row[0], sum = 0;
        for (int v = 1; v < *V; v++) mx = fmax(mx, row[v]);
        for (int v = 0; v < *V; v++) sum += exp(row[v] - mx);
        for (int v = 0; v < *V; v++) row[v] = (float)(exp(row[v] - mx) / sum);
    }
    rwkv_state_free(st);
    rwkv_model_free(m);
    return p;
}

static float *llama_probs(const char *path, const int *tokens, int T, int V, char *msg, size_t msg_size) {
    char cmd[2048], out[96];
    snprintf(out, sizeof out, "/tmp/rwkv-test-llamacpp-%d.f32", (int)getpid());
    int n = snprintf(cmd, sizeof cmd, "cd " NPM_DIR " && node probs.mjs '%s' ", path);
    for (int t = 0; t < T; t++) n += snprintf(cmd + n, sizeof cmd - (size_t)n, "%s%d", t ? "," : "", tokens[t]);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " %d %s 2>&1", V, out);
    if (system(cmd) != 0) {
        snprintf(msg, msg_size, "llama.cpp could not run %s", path);
        return NULL;
    }
    FILE *f = fopen(out, "rb");
    float *p = malloc(sizeof(float) * (size_t)T * (size_t)V);
    size_t got = f && p ? fread(p, sizeof(float), (size_t)T * (size_t)V, f) : 0;
    if (f) fclose(f);
    remove(out);
    if (got != (size_t)T * (size_t)V) {
        snprintf(msg, msg_size, "llama.cpp's output for %s is short", path);
        free(p);
        return NULL;
    }
    return p;
}

/* Largest probability difference at any position, relative to that position's top probability. */
static double prob_distance(const float *ours, const float *theirs, int T, int V) {
    double worst = 0;
    for (int t = 0; t < T; t++) {
        double top = 0, d = 0;
        for (int v = 0; v < V; v++) {
            top = fmax(top, ours[(size_t)t * V + v]);
            d = fmax(d, fabs((double)ours[(size_t)t * V + v] - theirs[(size_t)t * V + v]));
        }
        worst = fmax(worst, d / top);
    }
    return worst;
}

/* src quantized to each type, read by both: msg set on the first failure. */
static void compare_types(const char *src, const char *vocab, const rwkv_quant_type *types, size_t n_types,
                          const int *tokens, int T, char *msg, size_t msg_size) {
    for (size_t i = 0; i < n_types && !msg[0]; i++) {
        const char *name = rwkv_quant_type_name(types[i]);
        char out[128];
        snprintf(out, sizeof out, "/tmp/rwkv-test-llamacpp-%d-%s.gguf", (int)getpid(), name);
        rwkv_quant_options o = {types[i], RWKV_QUANT_DEFAULT, vocab};
        rwkv_error err;
        if (rwkv_quantize_opts(src, out, &o, &err) != RWKV_OK) {
            snprintf(msg, msg_size, "quantize %s: %s", name, err.message);
            return;
        }
        int V = 0;
        float *ours = our_probs(out, tokens, T, &V, msg, msg_size);
        float *theirs = ours ? llama_probs(out, tokens, T, V, msg, msg_size) : NULL;
        if (theirs) {
            /* f32 is the same arithmetic up to summation order; llama.cpp computes in f16 on its f16
             * path and quantizes the activations on its quantized paths (q8_0 / q8_K), which moves
             * the logits by up to ~0.05 at logit scale 5, the probabilities by up to ~5% of their size */
            const double worst = prob_distance(ours, theirs, T, V);
            const double bound = types[i] == RWKV_QUANT_F32 ? 1e-3 : types[i] == RWKV_QUANT_F16 ? 0.01 : 0.1;
            printf("# %s as %s: llama.cpp's probabilities within %.3g of the top probability\n", src, name, worst);
            if (!(worst <= bound))
                snprintf(msg, msg_size, "%s as %s: llama.cpp's probabilities differ by %.3g of the top probability",
                         src, name, worst);
        }
        free(ours), free(theirs);
        remove(out);
    }
}

/* RWKV-7 (the GGUF case's .pth, World vocabulary) in every type; RWKV-6 and
 * another RWKV-7 (rwkv.cpp's tiny models, byte-level vocabularies). */
static void test_llamacpp_reads_our_gguf(void) {
    char dir[512], pth[600], vocab[512], why[160];
    shared_path(dir, sizeof dir, "testvectors/gguf-rwkv7/tiny");
    snprintf(pth, sizeof pth, "%s/model.f16.pth", dir);
    shared_path(vocab, sizeof vocab, "reference/rwkv-cpp/rwkv_vocab_v20230424.txt");
    if (access(pth, R_OK) != 0 || access(vocab, R_OK) != 0) SKIP("%s or the World vocabulary not found", pth);
    if (!have_llamacpp(why, sizeof why)) SKIP("%s", why);
    int tokens[64], T = read_tokens(dir, tokens, 64);
    CHECK(T > 0, "%s/case.json: no tokens", dir);
    static const rwkv_quant_type all[] = {RWKV_QUANT_F32,  RWKV_QUANT_F16,  RWKV_QUANT_Q8_0, RWKV_QUANT_Q4_0,
                                          RWKV_QUANT_Q5_1, RWKV_QUANT_Q4_K, RWKV_QUANT_Q5_K, RWKV_QUANT_Q6_K,
                                          RWKV_QUANT_Q4_K_M};
    static const rwkv_quant_type few[] = {RWKV_QUANT_F32, RWKV_QUANT_Q8_0, RWKV_QUANT_Q4_K};
    char msg[1024] = "";
    compare_types(pth, vocab, all, sizeof all / sizeof all[0], tokens, T, msg, sizeof msg);
    static const char *const byte_models[] = {"reference/rwkv-cpp/tiny-rwkv-6v0-3m-Q5_1.bin",
                                              "reference/rwkv-cpp/tiny-rwkv-7v0-834K-FP32.bin"};
    for (int t = 0; t < T; t++) tokens[t] %= 256;
    for (size_t i = 0; i < 2 && !msg[0]; i++) {
        char src[600];
        shared_path(src, sizeof src, byte_models[i]);
        if (access(src, R_OK) == 0) compare_types(src, "bytes", few, sizeof few / sizeof few[0], tokens, T, msg, sizeof msg);
    }
    CHECK(!msg[0], "%s", msg);
}

/* A fresh RWKV-7 of the released 0.1B width (768: LoRA ranks 64/64/32/128,
 * the value rank differing from the others; rows whole k-quant super-blocks,
 * so Q4_K_M really mixes Q4_K and Q6_K), two layers, byte vocabulary. */
static void test_llamacpp_reads_released_width(void) {
    char why[160];
    if (!have_llamacpp(why, sizeof why)) SKIP("%s", why);
    char src[96];
    snprintf(src, sizeof src, "/tmp/rwkv-test-llamacpp-%d-768.safetensors", (int)getpid());
    rwkv_init_options o = rwkv_init_options_default();
    o.arch = "rwkv7", o.n_layer = 2, o.n_embd = 768, o.n_ffn = 1024, o.n_vocab = 256;
    rwkv_error err;
    CHECK(rwkv_init_checkpoint(&o, src, &err) == RWKV_OK, "init: %s", err.message);
    static const int tokens[] = {72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100};
    static const rwkv_quant_type types[] = {RWKV_QUANT_Q8_0, RWKV_QUANT_Q4_K_M};
    char msg[1024] = "";
    compare_types(src, "bytes", types, 2, tokens, (int)(sizeof tokens / sizeof tokens[0]), msg, sizeof msg);
    remove(src);
    CHECK(!msg[0], "%s", msg);
}

int main(void) {
    RUN(test_llamacpp_reads_our_gguf);
    RUN(test_llamacpp_reads_released_width);
    return test_summary();
}
