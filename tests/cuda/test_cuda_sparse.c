/* The products of mostly zero inputs (src/cuda/sparse_product.cu:
 * cuda_sparse_product, the channel mix's value product in decode) against
 * float64 sums on the host, for float32 and bf16 matrices stored transposed
 * and 1 to 8 rows, on shapes that take each of its plans: several tiles of
 * 32 packs across a row of Wt, tiles with idle lanes, inputs that are not
 * whole blocks; accumulated or not; launches one after another on one
 * scratch (each leaves its counters at zero for the next).
 * The inputs are relu²-like: about half of them zero, other zeros in each
 * row, and a stretch zero in every row (blocks that read nothing).
 *
 * Budget: |got - want| <= 1e-5 · Σ_j |x_j w_j| + 1e-6 (float32 sums of exact
 * products, any order). And the promise to batched decode: a row's result
 * is the same float whatever rows share the launch (each row of an 8-row
 * launch against that row alone, exactly). */
#include <math.h>

#include "cuda_test.h"

enum { MAX_ROWS = CUDA_GEMV_ROWS };

typedef struct sparse_case {
    int out, in, accumulate;
    float *Wt;     /* [in][out], the values the device multiplies by */
    float *X, *Y0; /* [MAX_ROWS][in], [MAX_ROWS][out] */
    void *d_Wt;
    float *d_X, *d_Y, *d_scratch;
} sparse_case;

/* Input j of row r: zero for half the inputs (a different half in each
 * row), and in every row for the inputs of [in/3, in/3 + 300). */
static void relu_like(float *X, int in) {
    for (int r = 0; r < MAX_ROWS; r++)
        for (int j = 0; j < in; j++) {
            const float v = urand(-1, 1);
            X[(size_t)r * in + j] = v > 0 && !(j >= in / 3 && j < in / 3 + 300) ? v * v : 0.0f;
        }
}

static int case_new(sparse_case *k, cuda_dtype t, int out, int in, int accumulate) {
    memset(k, 0, sizeof *k);
    k->out = out, k->in = in, k->accumulate = accumulate;
    k->Wt = random_floats((size_t)in * out, -1, 1);
    k->X = random_floats((size_t)MAX_ROWS * in, -1, 1);
    k->Y0 = random_floats((size_t)MAX_ROWS * out, -1, 1);
    if (!k->Wt || !k->X || !k->Y0) return 0;
    relu_like(k->X, in);
    if (t == CUDA_BF16) round_bf16(k->Wt, (size_t)in * out);
    k->d_Wt = to_device(t, k->Wt, (size_t)in * out);
    k->d_X = to_device(CUDA_F32, k->X, (size_t)MAX_ROWS * in);
    k->d_Y = poisoned(CUDA_F32, (size_t)MAX_ROWS * out);
    const size_t scratch = cuda_sparse_product_scratch(t, out, in);
    float *zeros = calloc(scratch, sizeof(float));
    k->d_scratch = zeros ? to_device(CUDA_F32, zeros, scratch) : NULL;
    free(zeros);
    return k->d_Wt && k->d_X && k->d_Y && k->d_scratch;
}

static void case_free(sparse_case *k) {
    free(k->Wt), free(k->X), free(k->Y0);
    cuda_free(k->d_Wt), cuda_free(k->d_X), cuda_free(k->d_Y), cuda_free(k->d_scratch);
}

/* X's rows from `first` on as the device's rows from 0 on; Y reset to Y0's
 * rows from `first` on where the product accumulates. Returns Y downloaded
 * (malloc'd, [rows][out]). */
static float *run_rows(cuda_dtype t, sparse_case *k, int rows, int first) {
    if (cuda_upload(k->d_X, k->X + (size_t)first * k->in, (size_t)rows * k->in * 4, NULL) != RWKV_OK) return NULL;
    if (k->accumulate && cuda_upload(k->d_Y, k->Y0 + (size_t)first * k->out, (size_t)rows * k->out * 4, NULL) != RWKV_OK)
        return NULL;
    cuda_sparse_product(t, k->d_Wt, k->out, k->in, k->d_X, k->in, rows, k->d_Y, k->accumulate, k->d_scratch, 0);
    return to_host(CUDA_F32, k->d_Y, (size_t)rows * k->out);
}

static double worst_ratio(const sparse_case *k, const float *got, int rows) {
    double worst = 0;
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < k->out; o++) {
            const float *x = k->X + (size_t)r * k->in;
            double s = 0, mag = 0;
            for (int j = 0; j < k->in; j++) {
                const double p = (double)x[j] * k->Wt[(size_t)j * k->out + o];
                s += p, mag += fabs(p);
            }
            const double want = k->accumulate ? k->Y0[(size_t)r * k->out + o] + s : s;
            const double e = fabs(got[(size_t)r * k->out + o] - want) / (1e-5 * mag + 1e-6);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
    return worst;
}

static void check_case(cuda_dtype t, int out, int in, int accumulate) {
    sparse_case k;
    CHECK(cuda_sparse_product_fits(t, out, in), "%s %d x %d: fits", dtype_label(t), out, in);
    CHECK(case_new(&k, t, out, in, accumulate), "%s %d x %d: buffers", dtype_label(t), out, in);
    float *all = NULL;
    for (int rows = 1; rows <= MAX_ROWS; rows++) {
        float *got = run_rows(t, &k, rows, 0);
        CHECK(got, "%s %d x %d, %d rows: launch", dtype_label(t), out, in, rows);
        const double e = worst_ratio(&k, got, rows);
        CHECK(e <= 1.0, "%s %d x %d (accumulate %d), %d rows: worst error %.3g x the budget", dtype_label(t), out, in,
              accumulate, rows, e);
        if (rows == MAX_ROWS) all = got;
        else free(got);
    }
    for (int r = 0; r < MAX_ROWS; r++) {
        float *alone = run_rows(t, &k, 1, r);
        CHECK(alone && memcmp(alone, all + (size_t)r * out, (size_t)out * 4) == 0,
              "%s %d x %d: row %d of 8 differs from the row alone", dtype_label(t), out, in, r);
        free(alone);
    }
    free(all);
    case_free(&k);
}

/* {out, in, accumulate} */
static const int SHAPES[][3] = {
    {2048, 8192, 1},  /* the 1.5B channel mix, into the residual stream: 8 or 16 tiles */
    {768, 3072, 0},   /* 0.1B: 3 or 6 tiles */
    {2560, 10240, 1}, /* 10 or 20 tiles */
    {64, 256, 0},     /* one tile, 8 or 16 lanes of 32 busy */
    {40, 100, 1},     /* one tile of 5 or 10 lanes, inputs not whole blocks */
};

static void test_against_host(void) {
    NEED_GPU();
    for (int t = CUDA_F32; t <= CUDA_BF16; t++)
        for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++)
            check_case((cuda_dtype)t, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2]);
}

/* Every input zero: Y = 0 (or unchanged where it accumulates), nothing read. */
static void test_all_zero(void) {
    NEED_GPU();
    sparse_case k;
    CHECK(case_new(&k, CUDA_BF16, 2048, 8192, 1), "buffers");
    memset(k.X, 0, (size_t)MAX_ROWS * k.in * 4);
    float *got = run_rows(CUDA_BF16, &k, MAX_ROWS, 0);
    CHECK(got && memcmp(got, k.Y0, (size_t)MAX_ROWS * k.out * 4) == 0, "zero inputs leave Y as it was");
    free(got);
    k.accumulate = 0;
    got = run_rows(CUDA_BF16, &k, 3, 0);
    int zeros = got != NULL;
    for (int i = 0; got && i < 3 * k.out; i++) zeros &= got[i] == 0.0f;
    CHECK(zeros, "zero inputs give zeros");
    free(got);
    case_free(&k);
}

/* Shapes the product does not take: the caller keeps the dense layout. */
static void test_fits(void) {
    CHECK(!cuda_sparse_product_fits(CUDA_BF16, 2044, 8192), "outputs not a multiple of 8");
    CHECK(!cuda_sparse_product_fits(CUDA_Q8, 2048, 8192), "int8 matrices");
    CHECK(cuda_sparse_product_fits(CUDA_F32, 8, 1), "one input");
}

int main(void) {
    RUN(test_fits);
    RUN(test_against_host);
    RUN(test_all_zero);
    return test_summary();
}
