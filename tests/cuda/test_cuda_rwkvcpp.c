/* rwkv.cpp's tiny float models of every version (4, 5.1, 5.2, 7) on the GPU
 * against the logits rwkv.cpp's own tests expect, as tests/test_rwkvcpp_reference.c
 * checks the CPU: bytes 34, 105, 110 ("in) from a fresh state, token by token
 * and as one sequence, the last logits compared elementwise.
 *
 * Bounds: fp32 on the GPU as on the CPU (FP32 files 5e-5, FP16 files 1e-2);
 * bf16 weights 5e-2, the bound the other GPU tests give bf16 (the tiny
 * models' logits are of order 1, so this is about 2-3 bf16 roundings of
 * the largest products). The quantized files are the GPU's to refuse or
 * run (tests/cuda/test_cuda_infer_wkv.c); they are not part of this check. */
#include "infer_check.h"

#include "rwkvcpp_refs.h"

enum { V = 256 };

static double max_abs_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN sticks */
    }
    return m;
}

/* The last logits of "in on `path` loaded on the GPU at `precision`, token by
 * token (rnn) and as one sequence (seq). */
static int run_gpu(const char *path, const char *precision, float *rnn, float *seq) {
    rwkv_model *m = load_on(path, "cuda", precision);
    if (!m) return 0;
    const int tokens[3] = {34, 105, 110};
    rwkv_state *st = NULL;
    int ok = rwkv_state_new(m, &st, NULL) == RWKV_OK;
    for (int t = 0; ok && t < 3; t++) ok = rwkv_eval(m, st, tokens[t], rnn, NULL) == RWKV_OK;
    if (ok) rwkv_state_reset(st);
    if (ok) ok = rwkv_eval_sequence(m, st, tokens, 3, seq, 0, NULL) == RWKV_OK;
    rwkv_state_free(st);
    rwkv_model_free(m);
    return ok;
}

static const ref_file *current;

static void test_reference_file(void) {
    NEED_GPU();
    char path[1024], exp_path[1024];
    if (!shared_path(path, sizeof path, "reference/rwkv-cpp")) SKIP("../shared/reference/rwkv-cpp not present");
    snprintf(path, sizeof path, "%s/reference/rwkv-cpp/%s", shared_dir(), current->model);
    snprintf(exp_path, sizeof exp_path, "%s/reference/rwkv-cpp/%s", shared_dir(), current->expected);
    if (access(path, R_OK) != 0) SKIP("%s not present", current->model);
    FILE *f = fopen(exp_path, "rb");
    CHECK(f, "cannot open %s", exp_path);
    float expected[V], rnn[V], seq[V];
    const size_t got = fread(expected, sizeof(float), V, f);
    fclose(f);
    CHECK(got == V, "%s: expected %d floats", exp_path, V);
    static const char *const precisions[] = {"fp32", "bf16"};
    for (int p = 0; p < 2; p++) {
        const double bound = p == 0 ? current->max_abs : 5e-2;
        CHECK(run_gpu(path, precisions[p], rnn, seq), "%s: the GPU run failed", current->model);
        const double d_rnn = max_abs_diff(rnn, expected, V), d_seq = max_abs_diff(seq, expected, V);
        printf("  %s %s: max |diff| RNN %.3g, sequence %.3g (bound %.3g)\n", current->model, precisions[p], d_rnn,
               d_seq, bound);
        CHECK(d_rnn <= bound && d_seq <= bound, "%s %s: max |diff| RNN %.3g, sequence %.3g > %.3g", current->model,
              precisions[p], d_rnn, d_seq, bound);
    }
}

int main(void) {
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        if (!strstr(refs[i].model, "-FP")) continue; /* the float files: quantized ones are the GPU's to refuse or run */
        current = &refs[i];
        char name[128];
        snprintf(name, sizeof name, "rwkvcpp on cuda %s", refs[i].model);
        test_run(name, test_reference_file);
    }
    return test_summary();
}
