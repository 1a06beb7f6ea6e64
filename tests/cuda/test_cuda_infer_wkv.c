/* RWKV-5/6/7 inference on the GPU (--device cuda): the reference vectors of
 * every version in sequence and RNN mode within the cases' own tolerances,
 * GPU against CPU on those models and on random RWKV-7 models, the batched
 * decode against separate single-sequence runs, and a state saved on the GPU
 * continued on the CPU.
 *
 * Budgets:
 *   reference vectors, fp32   the case's tolerances (logits atol 1e-4 rtol 1e-4,
 *                             state 2e-4 / 3e-4) against the float64 reference
 *   GPU vs CPU                max |gpu - cpu| / max(1, max |cpu|): fp32 2e-4,
 *                             bf16 5e-2 (matrix inputs and weights rounded to bf16)
 *   batch vs separate runs    the same measure; 12 to 256 rows (GEMM products): fp32 1e-5,
 *                             bf16 5e-2 (the products of B rows and of one row sum
 *                             in other orders, and in bf16 a different last bit can
 *                             round a product's input the other way); 5 rows (the
 *                             GEMV's several-row path) fp32, bf16 and int8 exactly
 *                             equal: every row's sums run in the order they run alone */
#include "infer_check.h"
#include "kernels/kernels.h"
#include "rwkv_quant.h"

#define BF16_BUDGET 5e-2

static const char *vectors_root;

static int read_tolerance(const char *dir, const char *kind, double *atol, double *rtol) {
    char p[1400], line[256], k[32];
    snprintf(p, sizeof p, "%s/case.txt", dir);
    FILE *f = fopen(p, "r");
    int ok = 0;
    while (f && !ok && fgets(line, sizeof line, f))
        ok = sscanf(line, "tolerance %31s %lf %lf", k, atol, rtol) == 3 && strcmp(k, kind) == 0;
    if (f) fclose(f);
    return ok;
}

static float *read_floats(const char *dir, const char *file, size_t n) {
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "rb");
    float *x = malloc(n * sizeof(float));
    if (!f || !x || fread(x, sizeof(float), n, f) != n) free(x), x = NULL;
    if (f) fclose(f);
    return x;
}

/* One case: every row in sequence mode and token by token, logits and the
 * final state against the reference; then GPU against CPU in fp32 and bf16. */
static void check_case(const char *set, const char *name) {
    NEED_GPU();
    char dir[1300], path[1400];
    snprintf(dir, sizeof dir, "%s/%s/%s", vectors_root, set, name);
    int B, T, V = 0, *inputs = NULL;
    double la, lr, sa, sr;
    if (!read_case(dir, &B, &T, &V, &inputs)) SKIP("%s/%s: no reference case", set, name);
    CHECK(read_tolerance(dir, "logits", &la, &lr) && read_tolerance(dir, "state", &sa, &sr), "%s/%s: tolerances", set, name);
    snprintf(path, sizeof path, "%s/model.f32.safetensors", dir);
    if (access(path, R_OK) != 0) snprintf(path, sizeof path, "%s/model.bf16.safetensors", dir);
    rwkv_model *gpu = load_on(path, "cuda", "fp32");
    CHECK(gpu, "load");
    rwkv_model_info info;
    rwkv_model_get_info(gpu, &info);
    const size_t S = info.state_floats, TV = (size_t)T * V;
    float *want = read_floats(dir, "logits_parallel.f32", B * TV), *want_state = read_floats(dir, "state_final.f32", B * S);
    float *got = malloc(TV * 4);
    CHECK(want && want_state && got, "%s/%s: reference arrays", set, name);
    double worst_seq = 0, worst_rnn = 0, worst_state = 0;
    for (int b = 0; b < B; b++) {
        rwkv_state *st;
        CHECK(rwkv_state_new(gpu, &st, NULL) == RWKV_OK, "state");
        CHECK(rwkv_eval_sequence(gpu, st, inputs + b * T, T, got, 1, NULL) == RWKV_OK, "sequence");
        double r = tol_ratio(got, want + b * TV, TV, la, lr), rs = tol_ratio(rwkv_state_data(st), want_state + b * S, S, sa, sr);
        worst_seq = r > worst_seq ? r : worst_seq, worst_state = rs > worst_state ? rs : worst_state;
        rwkv_state_reset(st);
        for (int t = 0; t < T; t++) CHECK(rwkv_eval(gpu, st, inputs[b * T + t], got + (size_t)t * V, NULL) == RWKV_OK, "rnn");
        r = tol_ratio(got, want + b * TV, TV, la, lr);
        worst_rnn = r > worst_rnn ? r : worst_rnn;
        rwkv_state_free(st);
    }
    printf("  %s/%s: worst share of the tolerance: sequence %.3g, rnn %.3g, final state %.3g\n", set, name, worst_seq,
           worst_rnn, worst_state);
    CHECK(worst_seq <= 1 && worst_rnn <= 1 && worst_state <= 1, "%s/%s outside the case's tolerance", set, name);
    rwkv_model_free(gpu);
    compare_devices(path, "fp32", inputs, T, T, 2e-4);
    compare_devices(path, "bf16", inputs, T, T, BF16_BUDGET);
    free(want), free(want_state), free(got), free(inputs);
}

static void test_vectors_v5(void) { check_case("rwkv5", "tiny"), check_case("rwkv5", "hs64"); }
static void test_vectors_v6(void) { check_case("rwkv6", "tiny"), check_case("rwkv6", "hs64"); }
static void test_vectors_v7(void) { check_case("rwkv7", "tiny"), check_case("rwkv7", "hs64"); }

/* Random RWKV-7 models against the CPU: 2348 tokens cross the GPU's
 * 2048-row passes, its 256-row chunks of logits and the CPU's 256-token
 * chunks (the chunked WKV for heads of 64, its last chunk of the 300-token
 * pass partly past the end, and a 52-token prompt, 3¼ chunks: the mixes'
 * and hiddens' memory holds the matrices of passes that short; the
 * long-stream kernel for heads of 32 and 128; the general one for 48, four
 * rows a warp, and 34, one row a warp; rows of 34 channels, not a multiple
 * of 4, take the layer norm + shift without float4s; 32 heads of 64, too
 * many for two walks side by side, so that a prompt is walked in parts
 * while the later parts' matrices are built, as a 1.5B model's is). */
static void random_v7(const char *precision, double budget) {
    NEED_GPU();
    static const int shapes[][5] = {
        {97, 128, 3, 256, 32}, {300, 256, 2, 512, 64}, {61, 256, 1, 256, 128}, {50, 96, 1, 128, 48},
        {40, 68, 1, 128, 34}, {40, 34, 1, 128, 34}, {61, 2048, 1, 256, 64}};
    enum { N = 2348, SHAPES = sizeof shapes / sizeof shapes[0] };
    static int tok[N];
    for (int s = 0; s < SHAPES; s++) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/rwkv_infer7_%d_%d.safetensors", (int)getpid(), s);
        CHECK(write_random_arch(path, "rwkv7", shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4],
                                11 + s),
              "model");
        for (int i = 0; i < N; i++) tok[i] = (int)urand(0, (float)shapes[s][0] - 0.01f);
        compare_devices(path, precision, tok, N, 5, budget);
        if (shapes[s][4] == 64) compare_devices(path, precision, tok, 52, 5, budget);
        unlink(path);
    }
}

/* Random RWKV-5.2 and RWKV-6 models (`rwkv init --uniform`) against the CPU
 * over 2100 tokens, passes of 2048 and 52: the bf16 mixes of large passes;
 * heads of 64 (the chunked WKV in both passes, the last chunk partly past
 * the end; four state rows a warp in decode) and, for RWKV-6, of 34 (the
 * token-by-token WKV, one row a warp) and 32 heads of 64 (a prompt walked
 * in parts, not in two segments). */
static void test_random_v5_v6(void) {
    NEED_GPU();
    static const char *const arch[] = {"rwkv5", "rwkv6", "rwkv6", "rwkv6"};
    static const int width[] = {256, 256, 68, 2048}, head[] = {64, 64, 34, 64}, layers[] = {2, 2, 2, 1};
    enum { N = 2100 };
    static int tok[N];
    for (int v = 0; v < 4; v++) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/rwkv_infer56_%d_%d.safetensors", (int)getpid(), v);
        rwkv_init_options o = rwkv_init_options_default();
        o.arch = arch[v], o.n_layer = layers[v], o.n_embd = width[v], o.n_vocab = 151, o.uniform = 1, o.seed = 21 + v;
        o.head_size = head[v];
        CHECK(rwkv_init_checkpoint(&o, path, NULL) == RWKV_OK, "%s model", arch[v]);
        for (int i = 0; i < N; i++) tok[i] = (int)urand(0, 150.99f);
        compare_devices(path, "fp32", tok, N, 5, 2e-4);
        compare_devices(path, "bf16", tok, N, 5, BF16_BUDGET);
        unlink(path);
    }
}

/* RWKV-5.2 and RWKV-6 decays without a floor: time_decay up to 6, so that
 * exp(-exp(·)) of many channels is 0 in float32 and of others near 1; a
 * 300-token prompt through the chunked WKV (heads of 64), whose sums of log
 * decays then span values far apart, against the CPU's token-by-token
 * products of the decays themselves. */
static void test_v5_v6_tiny_decays(void) {
    NEED_GPU();
    static const char *const arch[] = {"rwkv5", "rwkv6"};
    enum { N = 300 };
    static int tok[N];
    for (int v = 0; v < 2; v++) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/rwkv_infer_decay_%d_%d.safetensors", (int)getpid(), v);
        CHECK(write_random_decays(path, arch[v], 97, 256, 2, 512, 64, 41 + v, 6.0f), "%s model", arch[v]);
        for (int i = 0; i < N; i++) tok[i] = (int)urand(0, 96.99f);
        compare_devices(path, "fp32", tok, N, 5, 2e-4);
        unlink(path);
    }
}

/* Quantized weights on the GPU. int8 matrices from a float file against the
 * CPU's float model (the quantization error: about 1e-3 here), for RWKV-5.2,
 * 6 and 7; and rwkv.cpp files of RWKV-5.2 against the CPU running the same
 * file with float activations (both see the same dequantized weights): q8_0
 * as int8 (the codes taken as they are), q4_0 dequantized into bf16. 300
 * tokens (GEMM passes over dequantized copies) then 5 decode steps (the int8
 * GEMV). */
static void test_quantized(void) {
    NEED_GPU();
    static const char *const arch[] = {"rwkv5", "rwkv6", "rwkv7"};
    enum { N = 300 };
    static int tok[N];
    kernels_set_int8_activations(0);
    for (int v = 0; v < 3; v++) {
        char f32[64], q8[64], q4[64];
        snprintf(f32, sizeof f32, "/tmp/rwkv_infer_q_%d_%d.safetensors", (int)getpid(), v);
        snprintf(q8, sizeof q8, "/tmp/rwkv_infer_q8_%d_%d.bin", (int)getpid(), v);
        snprintf(q4, sizeof q4, "/tmp/rwkv_infer_q4_%d_%d.bin", (int)getpid(), v);
        rwkv_init_options o = rwkv_init_options_default();
        o.arch = arch[v], o.n_layer = 2, o.n_embd = 256, o.n_vocab = 160, o.uniform = 1, o.seed = 31 + v;
        rwkv_error err;
        CHECK(rwkv_init_checkpoint(&o, f32, &err) == RWKV_OK, "%s: %s", arch[v], err.message);
        for (int i = 0; i < N; i++) tok[i] = (int)urand(0, 159.99f);
        compare_devices(f32, "int8", tok, N, 5, BF16_BUDGET);
        if (v == 0) { /* RWKV-6/7 quantize to GGUF, which needs a vocabulary */
            CHECK(rwkv_quantize(f32, q8, RWKV_QUANT_Q8_0, &err) == RWKV_OK, "%s q8_0: %s", arch[v], err.message);
            CHECK(rwkv_quantize(f32, q4, RWKV_QUANT_Q4_0, &err) == RWKV_OK, "%s q4_0: %s", arch[v], err.message);
            compare_devices(q8, "int8", tok, N, 5, BF16_BUDGET);
            compare_devices(q4, "bf16", tok, N, 5, BF16_BUDGET);
            unlink(q8), unlink(q4);
        }
        unlink(f32);
    }
    kernels_set_int8_activations(1);
}

/* int8 matrices need rows of whole 32-weight blocks: a model of width 48 is
 * refused with one line naming the tensor; RWKV-4 is refused too. */
static void test_int8_refused(void) {
    NEED_GPU();
    char path[64];
    snprintf(path, sizeof path, "/tmp/rwkv_infer_i8_%d.safetensors", (int)getpid());
    CHECK(write_random_arch(path, "rwkv7", 50, 96, 1, 128, 48, 4), "model");
    rwkv_load_options lo = {.device = "cuda", .precision = "int8"};
    rwkv_model *m = NULL;
    rwkv_error err;
    CHECK(rwkv_model_load_ex(path, &lo, &m, &err) == RWKV_OK, "width 96 (3 blocks): %s", err.message);
    rwkv_model_free(m);
    CHECK(write_random_arch(path, "rwkv7", 50, 80, 1, 128, 16, 4), "model");
    CHECK(rwkv_model_load_ex(path, &lo, &m, &err) == RWKV_ERR_UNSUPPORTED && strstr(err.message, "multiple of 32"),
          "width 80 accepted as int8: %s", err.message);
    CHECK(write_random_arch(path, "rwkv4", 50, 64, 1, 128, 0, 4), "model");
    CHECK(rwkv_model_load_ex(path, &lo, &m, &err) == RWKV_ERR_UNSUPPORTED && strstr(err.message, "RWKV-5/6/7"),
          "RWKV-4 accepted as int8: %s", err.message);
    unlink(path);
}

static void test_random_v7_fp32(void) { random_v7("fp32", 2e-4); }
static void test_random_v7_bf16(void) { random_v7("bf16", BF16_BUDGET); }

/* B states warmed up on different prefixes, then 3 batched steps on the GPU
 * (its logits into page-locked rwkv_logits_alloc memory) against copies of
 * them stepped one by one on the GPU (logits and states), and in fp32
 * against the CPU's own batched step. B = 12 is more rows than the GEMV
 * takes (the GEMM path, through a graph); B = 40 also takes the layer norm
 * + shift of many rows (a block a row); B = 5 is the GEMV's several-row
 * path, where each row's sums run in the order they run alone. */
static void batch_equals_separate(const char *path, const char *precision, int B, double budget) {
    enum { MAX_B = 256, STEPS = 3 };
    rwkv_model *gpu = load_on(path, "cuda", precision), *cpu = load_on(path, "cpu", NULL);
    CHECK(gpu && cpu, "load");
    rwkv_model_info info;
    rwkv_model_get_info(gpu, &info);
    const int V = info.n_vocab;
    rwkv_state *bat[MAX_B], *sep[MAX_B], *ref[MAX_B];
    float *lb = rwkv_logits_alloc(gpu, B, NULL), *ls = malloc((size_t)V * 4), *lc = malloc((size_t)B * V * 4);
    CHECK(lb && ls && lc, "logits buffers");
    int prefix[MAX_B * 8], tok[MAX_B];
    for (int i = 0; i < B * 8; i++) prefix[i] = (int)urand(0, V - 0.01f);
    for (int i = 0; i < B; i++) {
        CHECK(rwkv_state_new(gpu, &bat[i], NULL) == RWKV_OK && rwkv_state_new(gpu, &sep[i], NULL) == RWKV_OK &&
                  rwkv_state_new(cpu, &ref[i], NULL) == RWKV_OK,
              "states");
        CHECK(rwkv_eval_sequence(gpu, bat[i], prefix + i * 8, 1 + i % 8, NULL, 0, NULL) == RWKV_OK, "warm-up");
        CHECK(rwkv_eval_sequence(cpu, ref[i], prefix + i * 8, 1 + i % 8, NULL, 0, NULL) == RWKV_OK, "cpu warm-up");
        CHECK(rwkv_state_copy(sep[i], bat[i], NULL) == RWKV_OK, "copy");
    }
    double worst = 0, worst_cpu = 0;
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < B; i++) tok[i] = (int)urand(0, V - 0.01f);
        CHECK(rwkv_eval_batch(gpu, bat, tok, B, lb, NULL) == RWKV_OK, "gpu batch");
        CHECK(rwkv_eval_batch(cpu, ref, tok, B, lc, NULL) == RWKV_OK, "cpu batch");
        const double ec = max_err(lb, lc, (size_t)B * V);
        worst_cpu = ec > worst_cpu ? ec : worst_cpu;
        for (int i = 0; i < B; i++) {
            CHECK(rwkv_eval(gpu, sep[i], tok[i], ls, NULL) == RWKV_OK, "separate");
            const double e = max_err(lb + (size_t)i * V, ls, V);
            worst = e > worst ? e : worst;
        }
    }
    for (int i = 0; i < B; i++) {
        const double e = max_err(rwkv_state_data(bat[i]), rwkv_state_data(sep[i]), rwkv_state_size(bat[i]));
        worst = e > worst ? e : worst;
    }
    printf("  %s %s, %d rows: batch vs separate %.3g, vs the cpu's batch %.3g\n", path, precision, B, worst, worst_cpu);
    CHECK(worst <= budget, "%s %s: the batch differs from separate runs by %g", path, precision, worst);
    CHECK(worst_cpu <= (strcmp(precision, "fp32") ? BF16_BUDGET : 2e-4), "the gpu batch differs from the cpu's by %g",
          worst_cpu);
    for (int i = 0; i < B; i++) rwkv_state_free(bat[i]), rwkv_state_free(sep[i]), rwkv_state_free(ref[i]);
    rwkv_logits_free(gpu, lb);
    free(ls), free(lc);
    rwkv_model_free(gpu), rwkv_model_free(cpu);
}

static void test_batch(void) {
    NEED_GPU();
    char path[64];
    snprintf(path, sizeof path, "/tmp/rwkv_infer7_b_%d.safetensors", (int)getpid());
    CHECK(write_random_arch(path, "rwkv7", 120, 128, 2, 256, 64, 5), "model");
    batch_equals_separate(path, "fp32", 12, 1e-5);
    batch_equals_separate(path, "bf16", 12, BF16_BUDGET); /* 8+ rows round the products' inputs to bf16 */
    batch_equals_separate(path, "fp32", 40, 1e-5);
    batch_equals_separate(path, "bf16", 40, BF16_BUDGET);
    batch_equals_separate(path, "fp32", 5, 0);
    batch_equals_separate(path, "bf16", 5, 0);
    batch_equals_separate(path, "int8", 5, 0);
    unlink(path);
    /* rows of 34 channels: the norm + shift of many rows without float4s */
    CHECK(write_random_arch(path, "rwkv7", 60, 34, 1, 128, 34, 6), "model");
    batch_equals_separate(path, "fp32", 40, 1e-5);
    unlink(path);
    /* 8 heads of 64 and 256 rows, a server's batch: several waves of the
     * fused step's blocks (a block per row and head) */
    CHECK(write_random_arch(path, "rwkv7", 120, 512, 2, 1024, 64, 7), "model");
    batch_equals_separate(path, "fp32", 256, 1e-5);
    batch_equals_separate(path, "bf16", 256, BF16_BUDGET);
    unlink(path);
    /* the 1.5B shape's channel mix (a 33.5 MB bf16 value matrix): large
     * enough for the sparse decode product, which skips the weight rows of
     * the zero hiddens. 5 rows (its several-row launch) still equal separate
     * runs exactly; 12 rows take the GEMM on the transposed matrix */
    CHECK(write_random_arch(path, "rwkv7", 120, 2048, 1, 8192, 64, 8), "model");
    batch_equals_separate(path, "fp32", 5, 0);
    batch_equals_separate(path, "bf16", 5, 0);
    batch_equals_separate(path, "fp32", 12, 1e-5);
    batch_equals_separate(path, "bf16", 12, BF16_BUDGET);
    unlink(path);
    static const char *const sets[] = {"rwkv5", "rwkv6"};
    for (int i = 0; i < 2; i++) {
        char p[1400];
        snprintf(p, sizeof p, "%s/%s/hs64/model.bf16.safetensors", vectors_root, sets[i]);
        if (access(p, R_OK) != 0) SKIP("%s/hs64: no reference model", sets[i]);
        batch_equals_separate(p, "fp32", 12, 1e-5);
        batch_equals_separate(p, "bf16", 12, BF16_BUDGET);
        batch_equals_separate(p, "fp32", 40, 1e-5);
        batch_equals_separate(p, "bf16", 5, 0);
    }
}

static void test_state_round_trip_v7(void) {
    NEED_GPU();
    char path[64];
    snprintf(path, sizeof path, "/tmp/rwkv_infer7_rt_%d.safetensors", (int)getpid());
    CHECK(write_random_arch(path, "rwkv7", 97, 64, 2, 128, 32, 3), "model");
    check_state_round_trip(path, 97);
    unlink(path);
}

int main(void) {
    static char root[1300];
    snprintf(root, sizeof root, "%s/testvectors", shared_dir());
    vectors_root = root;
    RUN(test_vectors_v5);
    RUN(test_vectors_v6);
    RUN(test_vectors_v7);
    RUN(test_random_v7_fp32);
    RUN(test_random_v5_v6);
    RUN(test_quantized);
    RUN(test_int8_refused);
    RUN(test_random_v7_bf16);
    RUN(test_v5_v6_tiny_decays);
    RUN(test_batch);
    RUN(test_state_round_trip_v7);
    return test_summary();
}
