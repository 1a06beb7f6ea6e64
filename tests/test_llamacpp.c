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

static void test_llamacpp_reads_our_gguf(void) {
    char dir[512], pth[600], vocab[512], why[160];
    shared_path(dir, sizeof dir, "testvectors/gguf-rwkv7/tiny");
    snprintf(pth, sizeof pth, "%s/model.f16.pth", dir);
    shared_path(vocab, sizeof vocab, "reference/rwkv-cpp/rwkv_vocab_v20230424.txt");
    if (access(pth, R_OK) != 0 || access(vocab, R_OK) != 0) SKIP("%s or the World vocabulary not found", pth);
    if (!have_llamacpp(why, sizeof why)) SKIP("%s", why);
    int tokens[64], T = read_tokens(dir, tokens, 64);
    CHECK(T > 0, "%s/case.json: no tokens", dir);
    static const rwkv_quant_type types[] = {RWKV_QUANT_F32,  RWKV_QUANT_F16,  RWKV_QUANT_Q8_0, RWKV_QUANT_Q4_0,
                                            RWKV_QUANT_Q5_1, RWKV_QUANT_Q4_K, RWKV_QUANT_Q5_K, RWKV_QUANT_Q6_K};
    char msg[1024] = "";
    for (size_t i = 0; i < sizeof types / sizeof types[0] && !msg[0]; i++) {
        char out[128];
        snprintf(out, sizeof out, "/tmp/rwkv-test-llamacpp-%d-%s.gguf", (int)getpid(), rwkv_quant_type_name(types[i]));
        rwkv_quant_options o = {types[i], RWKV_QUANT_DEFAULT, vocab};
        rwkv_error err;
        if (rwkv_quantize_opts(pth, out, &o, &err) != RWKV_OK) {
            snprintf(msg, sizeof msg, "quantize %s: %s", rwkv_quant_type_name(types[i]), err.message);
            break;
        }
        int V = 0;
        float *ours = our_probs(out, tokens, T, &V, msg, sizeof msg);
        float *theirs = ours ? llama_probs(out, tokens, T, V, msg, sizeof msg) : NULL;
        double worst = 0; /* largest probability difference, relative to the position's top probability */
        for (int t = 0; theirs && t < T; t++) {
            double top = 0, d = 0;
            for (int v = 0; v < V; v++) {
                top = fmax(top, ours[(size_t)t * V + v]);
                d = fmax(d, fabs((double)ours[(size_t)t * V + v] - theirs[(size_t)t * V + v]));
            }
            worst = fmax(worst, d / top);
        }
        if (theirs) printf("# %s: llama.cpp's probabilities within %.3g of the top probability\n",
                           rwkv_quant_type_name(types[i]), worst);
        /* f32 is the same arithmetic up to summation order; llama.cpp computes in f16 on its f16
         * path and quantizes the activations on its quantized paths (q8_0 / q8_K), which moves the
         * logits by up to ~0.05 at logit scale 5, the probabilities by up to ~5% of their size */
        const double bound = types[i] == RWKV_QUANT_F32 ? 1e-3 : types[i] == RWKV_QUANT_F16 ? 0.01 : 0.1;
        if (theirs && !(worst <= bound))
            snprintf(msg, sizeof msg, "%s: llama.cpp's probabilities differ by %.3g of the top probability",
                     rwkv_quant_type_name(types[i]), worst);
        free(ours), free(theirs);
        remove(out);
    }
    CHECK(!msg[0], "%s", msg);
}

int main(void) {
    RUN(test_llamacpp_reads_our_gguf);
    return test_summary();
}
