/* rwkv.cpp's tiny models against the logits rwkv.cpp's own tests expect
 * (../shared/reference/rwkv-cpp/README.md): feed bytes 34, 105, 110 ("in)
 * from a fresh state, once token by token and once as one sequence, and
 * compare the last logits elementwise (max |diff|, not rwkv.cpp's signed sum).
 *
 * Bounds: FP32 weights must land within 5e-5 (the README: a correct FP32
 * implementation is within ~1e-5 of these files); FP16 within 1e-2 (rwkv.cpp
 * itself: 3e-4 to 5e-3); quantized files within twice what rwkv.cpp itself
 * measured against the same FP32 logits (its table "max abs diff"), since the
 * quantization error, not the engine, dominates there. */
#include <dirent.h>

#include "rwkv.h"
#include "test.h"

#include "rwkvcpp_refs.h"


static double max_abs_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

static const ref_file *current;

static void test_reference_file(void) {
    char path[1024], exp_path[1024];
    if (!shared_path(path, sizeof path, "reference/rwkv-cpp")) SKIP("../shared/reference/rwkv-cpp not present");
    snprintf(path, sizeof path, "%s/reference/rwkv-cpp/%s", shared_dir(), current->model);
    snprintf(exp_path, sizeof exp_path, "%s/reference/rwkv-cpp/%s", shared_dir(), current->expected);
    FILE *f = fopen(exp_path, "rb");
    CHECK(f, "cannot open %s", exp_path);
    float expected[256];
    size_t got = fread(expected, sizeof(float), 256, f);
    fclose(f);
    CHECK(got == 256, "%s: expected 256 floats", exp_path);

    rwkv_error err;
    rwkv_model *m;
    rwkv_status s = rwkv_model_load(path, &m, &err);
    if (s == RWKV_ERR_UNSUPPORTED) SKIP("%s", err.message);
    CHECK(s == RWKV_OK, "%s", err.message);
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    CHECK(info.n_vocab == 256, "n_vocab %d", info.n_vocab);
    const int tokens[3] = {34, 105, 110};
    float rnn[256], seq[256];
    rwkv_state *st;
    int ok = rwkv_state_new(m, &st, &err) == RWKV_OK;
    for (int t = 0; ok && t < 3; t++) ok = rwkv_eval(m, st, tokens[t], rnn, &err) == RWKV_OK;
    if (ok) rwkv_state_reset(st);
    if (ok) ok = rwkv_eval_sequence(m, st, tokens, 3, seq, 0, &err) == RWKV_OK;
    rwkv_state_free(st);
    rwkv_model_free(m);
    CHECK(ok, "%s", err.message);
    double d_rnn = max_abs_diff(rnn, expected, 256), d_seq = max_abs_diff(seq, expected, 256);
    printf("# %s: max |diff| RNN %.3g, sequence %.3g (bound %.3g)\n", current->model, d_rnn, d_seq,
           current->max_abs);
    CHECK(d_rnn <= current->max_abs, "RNN mode max |diff| %.3g > %.3g", d_rnn, current->max_abs);
    CHECK(d_seq <= current->max_abs, "sequence mode max |diff| %.3g > %.3g", d_seq, current->max_abs);
}

int main(void) {
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        current = &refs[i];
        char name[128];
        snprintf(name, sizeof name, "rwkvcpp %s", refs[i].model);
        test_run(name, test_reference_file);
    }
    return test_summary();
}
