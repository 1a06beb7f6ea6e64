/* The products of decode passes (src/cuda/gemv.cu: cuda_gemv_group) against
 * float64 sums on the host, for float32, bf16 and int8 (CUDA_Q8: codes, then
 * one fp16 scale per 32) weights and 1 to 8 rows, on shapes that take each of
 * its paths: long rows split over 2 or 4 warps, several outputs a warp, rows
 * of whole packs and rows that are not, one op and a group of ops of other
 * shapes in one launch, activations and accumulation into Y.
 *
 * Budgets: |got - want| <= 1e-5 · Σ_i |w_i x_i| + 1e-6 (float32 sums of
 * exact products; any order), after the activation where there is one. And
 * the GEMV's promise to batched decode: a row's result is the same float
 * whatever rows share the launch (each row of an 8-row launch against that
 * row alone, exactly). */
#include <math.h>

#include "core/dtype.h"
#include "cuda_test.h"

enum { MAX_ROWS = CUDA_GEMV_ROWS };

/* One product's host side: the weights as the device sees them (bf16
 * rounded, or the q8 codes times their scales), its device copy, X, Y. */
typedef struct product {
    int out, in, act, accumulate;
    float *W;      /* [out][in], the values the device multiplies by */
    void *d_W;     /* device storage in the launch's type */
    float *X, *Y0; /* [MAX_ROWS][in]; Y's values before the launch [MAX_ROWS][out] */
    float *d_X, *d_Y;
} product;

/* Device q8 storage of random codes with scales k / 4096 (exact in fp16). */
static void *q8_weights(float *W, int out, int in) {
    const size_t n = (size_t)out * in, blocks = n / 32;
    int8_t *codes = malloc(n);
    uint16_t *scales = malloc(blocks * 2);
    void *d = NULL;
    if (!codes || !scales) goto done;
    for (size_t b = 0; b < blocks; b++) {
        const float s = (float)(1 + (int)urand(0, 63.99f)) / 4096.0f;
        scales[b] = f32_to_f16(s);
        for (int j = 0; j < 32; j++) {
            codes[b * 32 + j] = (int8_t)(int)urand(-127, 127.99f);
            W[b * 32 + j] = s * (float)codes[b * 32 + j];
        }
    }
    if (cuda_alloc(&d, n + blocks * 2, "test", NULL) == RWKV_OK &&
        (cuda_upload(d, codes, n, NULL) != RWKV_OK || cuda_upload((int8_t *)d + n, scales, blocks * 2, NULL) != RWKV_OK)) {
        cuda_free(d);
        d = NULL;
    }
done:
    free(codes), free(scales);
    return d;
}

static int product_new(product *p, cuda_dtype t, int out, int in, int act, int accumulate) {
    memset(p, 0, sizeof *p);
    p->out = out, p->in = in, p->act = act, p->accumulate = accumulate;
    p->W = random_floats((size_t)out * in, -1, 1);
    p->X = random_floats((size_t)MAX_ROWS * in, -1, 1);
    p->Y0 = random_floats((size_t)MAX_ROWS * out, -1, 1);
    if (!p->W || !p->X || !p->Y0) return 0;
    if (t == CUDA_BF16) round_bf16(p->W, (size_t)out * in);
    p->d_W = t == CUDA_Q8 ? q8_weights(p->W, out, in) : to_device(t, p->W, (size_t)out * in);
    p->d_X = to_device(CUDA_F32, p->X, (size_t)MAX_ROWS * in);
    p->d_Y = poisoned(CUDA_F32, (size_t)MAX_ROWS * out);
    return p->d_W && p->d_X && p->d_Y;
}

static void product_free(product *p) {
    free(p->W), free(p->X), free(p->Y0);
    cuda_free(p->d_W), cuda_free(p->d_X), cuda_free(p->d_Y);
}

static double activated(double s, int act) {
    if (act == CUDA_ACT_TANH) return tanh(s);
    if (act == CUDA_ACT_SIGMOID) return 1.0 / (1.0 + exp(-s));
    if (act == CUDA_ACT_RELU2) return s > 0 ? s * s : 0;
    return s;
}

/* Runs the group on `rows` rows (where it accumulates, Y reset first to
 * Y0's rows from `first` on) and returns each product's Y, downloaded
 * (malloc'd, [rows][out]). */
static int run_group(cuda_dtype t, product *ps, int n, int rows, int first, float **got) {
    cuda_gemv_op ops[CUDA_GEMV_MAX_OPS];
    for (int k = 0; k < n; k++) {
        product *p = &ps[k];
        const float *y0 = p->Y0 + (size_t)first * p->out;
        if (p->accumulate && cuda_upload(p->d_Y, y0, (size_t)rows * p->out * 4, NULL) != RWKV_OK) return 0;
        ops[k] = (cuda_gemv_op){p->d_W, p->out, p->in, p->d_X, p->in, p->d_Y, p->accumulate, p->act, NULL, NULL};
    }
    cuda_gemv_group(t, ops, n, rows, 0);
    for (int k = 0; k < n; k++)
        if (!(got[k] = to_host(CUDA_F32, ps[k].d_Y, (size_t)rows * ps[k].out))) return 0;
    return 1;
}

/* Uploads X's rows from `first` on to the device's rows from 0 on. */
static int load_rows(product *ps, int n, int first, int rows) {
    for (int k = 0; k < n; k++)
        if (cuda_upload(ps[k].d_X, ps[k].X + (size_t)first * ps[k].in, (size_t)rows * ps[k].in * 4, NULL) != RWKV_OK)
            return 0;
    return 1;
}

/* Worst |got - want| / budget over the rows and outputs of product p. */
static double worst_ratio(const product *p, const float *got, int rows) {
    double worst = 0;
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < p->out; o++) {
            const float *w = p->W + (size_t)o * p->in, *x = p->X + (size_t)r * p->in;
            double s = 0, mag = 0;
            for (int i = 0; i < p->in; i++) s += (double)w[i] * x[i], mag += fabs((double)w[i] * x[i]);
            double want = p->accumulate ? p->Y0[(size_t)r * p->out + o] + s : activated(s, p->act);
            double budget = 1e-5 * (p->act == CUDA_ACT_RELU2 ? mag * (fabs(s) + mag) : mag) + 1e-6;
            double e = fabs(got[(size_t)r * p->out + o] - want) / budget;
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
    return worst;
}

/* The group on 1..8 rows against the host, then each row of the 8-row
 * launch against that row launched alone (X row r moved to row 0). */
static void check_group(cuda_dtype t, const char *name, const int (*shape)[4], int n) {
    product ps[CUDA_GEMV_MAX_OPS];
    int ok = 1;
    for (int k = 0; k < n; k++) ok &= product_new(&ps[k], t, shape[k][0], shape[k][1], shape[k][2], shape[k][3]);
    CHECK(ok, "%s: buffers", name);
    static const char *const label[] = {"fp32", "bf16", "int8"};
    for (int rows = 1; rows <= MAX_ROWS; rows++) {
        float *got[CUDA_GEMV_MAX_OPS] = {0};
        CHECK(run_group(t, ps, n, rows, 0, got), "%s %s, %d rows: launch", label[t], name, rows);
        for (int k = 0; k < n; k++) {
            const double e = worst_ratio(&ps[k], got[k], rows);
            CHECK(e <= 1.0, "%s %s, %d rows, op %d (%d x %d): worst error %.3g x the budget", label[t], name, rows, k,
                  ps[k].out, ps[k].in, e);
        }
        for (int r = 0; rows == MAX_ROWS && r < MAX_ROWS; r++) {
            float *alone[CUDA_GEMV_MAX_OPS] = {0};
            CHECK(load_rows(ps, n, r, 1) && run_group(t, ps, n, 1, r, alone), "%s %s: row %d alone", label[t], name, r);
            for (int k = 0; k < n; k++) {
                CHECK(memcmp(alone[k], got[k] + (size_t)r * ps[k].out, (size_t)ps[k].out * 4) == 0,
                      "%s %s, op %d: row %d of 8 differs from the row alone", label[t], name, k, r);
                free(alone[k]);
            }
        }
        CHECK(load_rows(ps, n, 0, MAX_ROWS), "upload");
        for (int k = 0; k < n; k++) free(got[k]);
    }
    for (int k = 0; k < n; k++) product_free(&ps[k]);
}

/* {out, in, act, accumulate}: one op a launch */
static const int SINGLE[][4] = {
    {2048, 8192, CUDA_ACT_NONE, 1},   /* long rows: four warps a row; accumulated */
    {2048, 2048, CUDA_ACT_NONE, 0},   /* two warps a row */
    {8192, 2048, CUDA_ACT_RELU2, 0},  /* many rows: two warps a row, up to 16384 warps */
    {64, 2048, CUDA_ACT_TANH, 0},     /* few outputs */
    {2048, 64, CUDA_ACT_SIGMOID, 0},  /* short rows */
    {96, 544, CUDA_ACT_NONE, 0},      /* rows of whole packs, not of whole rounds */
};
/* a group like a time mix's first products: same input width, other outputs */
static const int GROUP[][4] = {
    {512, 1024, CUDA_ACT_NONE, 0}, {512, 1024, CUDA_ACT_NONE, 0}, {512, 1024, CUDA_ACT_NONE, 1},
    {32, 1024, CUDA_ACT_TANH, 0},  {64, 1024, CUDA_ACT_SIGMOID, 0}, {128, 1024, CUDA_ACT_NONE, 0},
};
/* rows that are not whole 16-byte packs of bf16 (the element-wise path) */
static const int ODD[][4] = {{37, 100, CUDA_ACT_NONE, 0}, {5, 36, CUDA_ACT_TANH, 0}};

static void test_single(void) {
    NEED_GPU();
    for (int t = CUDA_F32; t <= CUDA_Q8; t++)
        for (size_t s = 0; s < sizeof SINGLE / sizeof SINGLE[0]; s++) check_group((cuda_dtype)t, "single", &SINGLE[s], 1);
}

static void test_group(void) {
    NEED_GPU();
    for (int t = CUDA_F32; t <= CUDA_Q8; t++) check_group((cuda_dtype)t, "group", GROUP, 6);
}

static void test_unpacked(void) {
    NEED_GPU();
    for (int t = CUDA_F32; t <= CUDA_BF16; t++) check_group((cuda_dtype)t, "unpacked", ODD, 2);
}

int main(void) {
    RUN(test_single);
    RUN(test_group);
    RUN(test_unpacked);
    return test_summary();
}
