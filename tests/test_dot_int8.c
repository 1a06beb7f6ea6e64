/* The integer decode path of the block formats (kernels/dot_int8.h): every
 * variant this CPU runs against the scalar reference (the quantized
 * activations bit for bit, the row products to fp32 reordering), the
 * threaded entry point in both activation modes, and the reference itself
 * against the float product within the bound the activation rounding allows. */
#include <stdint.h>
#include <string.h>

#include "kernels/dot_int8.h"
#include "kernels/kernels.h"
#include "kernels/row_groups.h"
#include "test.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float gauss(void) {
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        s += (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
    }
    return s * 0.866f;
}

static const dtype int8_types[] = {DT_Q8_0, DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1};

static matrix make_matrix(dtype t, int rows, int cols) {
    const size_t n = (size_t)rows * cols;
    float *f = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) f[i] = gauss();
    void *data = malloc(dtype_bytes_for(t, n));
    quantize_row(t, f, data, n);
    free(f);
    return (matrix){.type = t, .rows = rows, .cols = cols, .data = data};
}

/* x with an all-zero block, an outlier and a block of tiny values when long enough */
static float *make_x(int n) {
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) x[i] = gauss();
    if (n >= 96) {
        for (int i = 32; i < 64; i++) x[i] = 0.0f;
        x[70] = 40.0f;
        for (int i = 64; i < 96; i++) x[i] *= 1e-6f;
    }
    return x;
}

typedef struct quantized {
    act_q8 a;
    void *mem;
} quantized;

static quantized quantize_with(const int8_dot_ops *d, const float *x, int n) {
    quantized q = {.mem = aligned_alloc(64, act_q8_bytes(n))};
    act_q8_bind(&q.a, q.mem, n);
    d->quantize(x, &q.a);
    return q;
}

/* Σ_c |w_c x_c| per row: the scale of each output's float rounding */
static void row_magnitudes(const matrix *W, const float *x, double *mag) {
    float *w = malloc(sizeof(float) * (size_t)W->cols);
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)W->cols);
    for (int r = 0; r < W->rows; r++) {
        dtype_to_f32(W->type, (const uint8_t *)W->data + (size_t)r * rb, w, (size_t)W->cols);
        double m = 0;
        for (int c = 0; c < W->cols; c++) m += fabs((double)w[c] * x[c]);
        mag[r] = m;
    }
    free(w);
}

static int close_enough(const float *got, const float *want, const double *mag, int n) {
    for (int i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= 4e-6 * mag[i] + 1e-6)) return 0;
    return 1;
}

/* every variant quantizes x exactly as the reference (Σx: to reordering) */
static void test_quantize_variants(void) {
    const int lens[] = {32, 96, 768, 4160};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int n = lens[li];
        float *x = make_x(n);
        quantized want = quantize_with(&int8_dot_scalar, x, n);
        for (const int8_dot_ops *const *d = int8_dot_all(); *d; d++) {
            if (!int8_dot_supported(*d)) continue;
            quantized got = quantize_with(*d, x, n);
            int same = memcmp(got.a.q, want.a.q, (size_t)n + 32) == 0 &&
                       memcmp(got.a.d, want.a.d, sizeof(float) * (size_t)(n / 4 + 8)) == 0 &&
                       memcmp(got.a.qneg8, want.a.qneg8, sizeof(int32_t) * (size_t)(n / 4 + 8)) == 0;
            for (int l = 0; l < n / 4 + 8 && same; l++)
                same = fabsf(got.a.xsum[l] - want.a.xsum[l]) <= 1e-5f * (1.0f + fabsf(want.a.xsum[l]));
            free(got.mem);
            if (!same) free(want.mem), free(x);
            CHECK(same, "%s quantizes %d activations differently from the reference", (*d)->name, n);
        }
        /* the codes reproduce x within half a step of each block */
        for (int i = 0; i < n; i++) {
            const float d = want.a.d[8 * (i / 32)];
            if (!(fabsf(d * want.a.q[i] - x[i]) <= 0.5001f * d)) {
                const double xi = x[i];
                const int qi = want.a.q[i];
                free(want.mem), free(x);
                CHECK(0, "x[%d] = %g quantized to %d * %g", i, xi, qi, (double)d);
            }
        }
        free(want.mem), free(x);
    }
}

/* Blocks too small for 1 / d (d below the smallest normal float) are zeros
 * in every variant, the reference included; a block just above that takes
 * its codes as any other; a NaN in a block gives the same codes everywhere.
 * (1 / d had overflowed to infinity: the SIMD variants stored -128 for
 * positive x, the reference 127, and summing the codes overflowed an int.) */
static void test_quantize_tiny_blocks(void) {
    enum { N = 160 };
    const float scales[N / 32] = {1e-38f, 1e-36f, 3e-36f, 1e-30f, 1e-44f};
    float *x = make_x(N);
    for (int i = 0; i < N; i++) x[i] *= scales[i / 32];
    x[N - 1] = NAN; /* with the denormals: a block whose d is NaN */
    quantized want = quantize_with(&int8_dot_scalar, x, N);
    for (const int8_dot_ops *const *d = int8_dot_all(); *d; d++) {
        if (!int8_dot_supported(*d)) continue;
        quantized got = quantize_with(*d, x, N);
        const int same = memcmp(got.a.q, want.a.q, (size_t)N + 32) == 0 &&
                         memcmp(got.a.qneg8, want.a.qneg8, sizeof(int32_t) * (size_t)(N / 4 + 8)) == 0;
        free(got.mem);
        if (!same) free(want.mem), free(x);
        CHECK(same, "%s quantizes tiny blocks differently from the reference", (*d)->name);
    }
    int bad = -1;
    for (int i = 0; i < N - 32 && bad < 0; i++) {
        const float d = want.a.d[8 * (i / 32)];
        const int ok = d < FLT_MIN ? want.a.q[i] == 0 : fabsf(d * want.a.q[i] - x[i]) <= 0.5001f * d;
        if (!ok) bad = i;
    }
    const int q = bad >= 0 ? want.a.q[bad] : 0;
    free(want.mem), free(x);
    CHECK(bad < 0, "x[%d] of a tiny block quantized to %d", bad, q);
}

/* Non-finite activations (a model gone wrong) give garbage, but never
 * wrapped integers: every code in [-127, 127] and each block's offset term
 * -8 Σq, in every variant, for infinities and NaNs in every lane pairing
 * (a vector maximum can miss an infinity beside a NaN). */
static void test_quantize_non_finite(void) {
    enum { N = 32 * 32 };
    float *x = make_x(N);
    for (int b = 0; b < N / 32; b++) { /* an infinity and a NaN 16 apart (one SIMD lane), either first */
        const int p = 32 * b + b % 16, inf_first = b < 16;
        x[inf_first ? p : p + 16] = b % 2 ? -INFINITY : INFINITY;
        x[inf_first ? p + 16 : p] = NAN;
    }
    for (const int8_dot_ops *const *d = int8_dot_all(); *d; d++) {
        if (!int8_dot_supported(*d)) continue;
        quantized got = quantize_with(*d, x, N);
        int bad = -1;
        for (int b = 0; b < N / 32 && bad < 0; b++) {
            int sum = 0;
            for (int j = 0; j < 32; j++) {
                const int q = got.a.q[32 * b + j];
                if (q < -127 || q > 127) bad = b;
                sum += q;
            }
            if (got.a.qneg8[8 * b] != -8 * sum) bad = b;
        }
        free(got.mem);
        if (bad >= 0) free(x);
        CHECK(bad < 0, "%s: block %d of non-finite activations has codes out of range", (*d)->name, bad);
    }
    free(x);
}

static void *make_groups(const matrix *W) {
    void *g = aligned_alloc(64, (row_groups_bytes(W) + 63) / 64 * 64);
    row_groups_pack(W, g, 1);
    return g;
}

/* every variant's rows (through int8_dot_rows: from the grouped copy where
 * the variant reads one, any row range) against the reference rows on the
 * same quantized x */
static void test_rows_variants(void) {
    const int rows_list[] = {1, 3, 17, 48, 75};
    const int cols_list[] = {32, 64, 96, 160, 768, 4160};
    for (size_t ti = 0; ti < sizeof int8_types / sizeof int8_types[0]; ti++)
        for (size_t ri = 0; ri < sizeof rows_list / sizeof rows_list[0]; ri++)
            for (size_t ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++) {
                const int rows = rows_list[ri], cols = cols_list[ci];
                matrix W = make_matrix(int8_types[ti], rows, cols);
                if (row_groups_apply(&W)) W.groups = make_groups(&W);
                float *x = make_x(cols), want[75], got[75];
                double mag[75];
                row_magnitudes(&W, x, mag);
                quantized q = quantize_with(&int8_dot_scalar, x, cols);
                int8_dot_scalar.rows(&W, &q.a, want, 0, rows);
                const char *bad = NULL;
                const int ranges[][2] = {{0, rows}, {1, rows}, {16, rows}, {0, 16}, {16, rows - 1}};
                for (const int8_dot_ops *const *d = int8_dot_all(); *d && !bad; d++) {
                    if (!int8_dot_supported(*d)) continue;
                    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0] && !bad; k++) {
                        const int r0 = ranges[k][0], r1 = ranges[k][1] < rows ? ranges[k][1] : rows;
                        if (r1 <= r0) continue;
                        for (int r = 0; r < rows; r++) got[r] = NAN;
                        int8_dot_rows(*d, &W, &q.a, got, r0, r1);
                        if (!close_enough(got, want + r0, mag + r0, r1 - r0)) bad = (*d)->name;
                    }
                }
                free(q.mem), free(x), free((void *)W.data), free((void *)W.groups);
                CHECK(!bad, "%s rows %s %dx%d differ from the reference", bad, dtype_name(int8_types[ti]), rows, cols);
            }
}

/* the grouped copy holds every byte of its rows: each unpacks to the row itself */
static void test_groups_layout(void) {
    const int rows_list[] = {16, 33}, cols_list[] = {96, 256, 512, 768}; /* 96: an unpaired last column */
    const dtype types[] = {DT_Q8_0, DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1, DT_Q4_K, DT_Q5_K, DT_Q6_K};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t ri = 0; ri < 2; ri++)
            for (size_t ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++) {
                if (cols_list[ci] % (int)dtype_block_elems(types[ti])) continue;
                matrix W = make_matrix(types[ti], rows_list[ri], cols_list[ci]);
                const size_t rb = dtype_bytes_for(W.type, (uint64_t)W.cols);
                const size_t padded = W.type == DT_Q6_K ? (16 * rb + 63) / 64 * 64 : 16 * rb;
                CHECK(row_groups_apply(&W) && row_groups_bytes(&W) == (size_t)(W.rows / 16) * padded,
                      "%s %dx%d: grouped copy size", dtype_name(W.type), W.rows, W.cols);
                void *g = make_groups(&W);
                uint8_t *row = malloc(rb);
                int same = 1;
                for (int r = 0; r < W.rows / 16 * 16 && same; r++) {
                    row_groups_unpack_row(&W, g, r, row);
                    same = memcmp(row, (const uint8_t *)W.data + (size_t)r * rb, rb) == 0;
                }
                free(row), free(g), free((void *)W.data);
                CHECK(same, "%s %dx%d: a row of the grouped copy differs from the row", dtype_name(types[ti]),
                      rows_list[ri], cols_list[ci]);
            }
    matrix small = {.type = DT_Q4_0, .rows = 15, .cols = 64}, f16 = {.type = DT_F16, .rows = 32, .cols = 64};
    CHECK(!row_groups_apply(&small) && !row_groups_apply(&f16), "grouped copies only of whole groups of block rows");
}

/* Σ_b (d_b / 2) Σ_{c in b} |w_c|: how far rounding x can move a row's product */
static double rounding_bound(const matrix *W, int r, const act_q8 *a) {
    float *w = malloc(sizeof(float) * (size_t)W->cols);
    dtype_to_f32(W->type, (const uint8_t *)W->data + (size_t)r * dtype_bytes_for(W->type, (uint64_t)W->cols), w,
                 (size_t)W->cols);
    double bound = 0;
    for (int c = 0; c < W->cols; c++) bound += 0.5 * a->d[8 * (c / 32)] * fabs(w[c]);
    free(w);
    return bound;
}

/* matvec through both modes and the thread counts: int8 equals the
 * reference rows, f32 equals the float reference, and the two differ by no
 * more than the activation rounding allows */
static void test_matvec_modes(void) {
    const int rows = 130, cols = 768;
    const int was = kernels_int8_activations();
    for (size_t ti = 0; ti < sizeof int8_types / sizeof int8_types[0]; ti++) {
        matrix W = make_matrix(int8_types[ti], rows, cols);
        W.groups = make_groups(&W);
        float *x = make_x(cols), want8[130], want32[130], got[130];
        double mag[130];
        row_magnitudes(&W, x, mag);
        quantized q = quantize_with(&int8_dot_scalar, x, cols);
        int8_dot_scalar.rows(&W, &q.a, want8, 0, rows);
        matvec_scalar(&W, x, want32);
        const char *bad = NULL;
        int bad_mode = 0;
        for (const kernel_ops *const *k = kernels_all(); *k && !bad; k++) {
            if (!kernels_cpu_supports((*k)->name)) continue;
            for (int mode = 0; mode <= 1 && !bad; mode++) {
                kernels_set_int8_activations(mode);
                for (int nt = 1; nt <= 2 && !bad; nt++) {
                    matvec_with(*k, &W, x, got, nt);
                    if (!close_enough(got, mode ? want8 : want32, mag, rows)) bad = (*k)->name, bad_mode = mode;
                }
            }
        }
        /* a group of decode products shares x's quantization across its chunks too */
        kernels_set_int8_activations(1);
        float got2[130];
        const matrix *Ws[2] = {&W, &W};
        const float *Xs[2] = {x, x};
        float *Ys[2] = {got, got2};
        matmul_group(2, Ws, Xs, 1, Ys, 2);
        if (!bad && (!close_enough(got, want8, mag, rows) || !close_enough(got2, want8, mag, rows)))
            bad = "matmul_group", bad_mode = 1;
        kernels_set_int8_activations(was);
        int within = 1;
        for (int r = 0; r < rows && within; r++)
            within = fabs((double)want8[r] - want32[r]) <= rounding_bound(&W, r, &q.a) + 4e-6 * mag[r] + 1e-6;
        free(q.mem), free(x), free((void *)W.data), free((void *)W.groups);
        CHECK(!bad, "%s matvec %s with %s activations differs", bad, dtype_name(int8_types[ti]),
              bad_mode ? "int8" : "f32");
        CHECK(within, "%s: int8 activations moved a product by more than their rounding allows",
              dtype_name(int8_types[ti]));
    }
}

/* The tiled kernel (several tokens a pass over a group) against the
 * decode's group kernel token by token: bit for bit, for every format,
 * odd block counts (an unpaired last column), token counts around the
 * tile (64) and every variant that has it. */
static void test_groups_tokens_variants(void) {
    const int shapes[][2] = {{16, 32}, {48, 96}, {32, 768}, {16, 4160}}, Ns[] = {1, 2, 5, 17, 64, 70};
    enum { MAX_N = 70, MAX_ROWS = 48 };
    int ran = 0;
    for (size_t ti = 0; ti < sizeof int8_types / sizeof int8_types[0]; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int rows = shapes[si][0], cols = shapes[si][1];
            matrix W = make_matrix(int8_types[ti], rows, cols);
            W.groups = make_groups(&W);
            quantized q[MAX_N];
            act_q8 a[MAX_N];
            for (int n = 0; n < MAX_N; n++) {
                float *x = make_x(cols);
                x[n % cols] += (float)n; /* every token different */
                q[n] = quantize_with(&int8_dot_scalar, x, cols);
                a[n] = q[n].a;
                free(x);
            }
            float want[MAX_N * MAX_ROWS], got[MAX_N * MAX_ROWS];
            const char *bad = NULL;
            int bad_n = 0;
            for (const int8_dot_ops *const *d = int8_dot_all(); *d && !bad; d++) {
                if (!int8_dot_supported(*d) || !(*d)->groups_tokens) continue;
                ran = 1;
                for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0] && !bad; ni++) {
                    const int N = Ns[ni], g1 = rows / ROW_GROUP;
                    for (int n = 0; n < N; n++) (*d)->groups(&W, &a[n], want + n * rows, 0, g1);
                    for (int i = 0; i < N * rows; i++) got[i] = NAN;
                    void *tokens = aligned_alloc(64, ((*d)->tokens_bytes(cols, N) + 63) / 64 * 64);
                    CHECK(tokens, "out of memory");
                    (*d)->tokens_gather(a, N, tokens);
                    (*d)->groups_tokens(&W, tokens, N, got, (size_t)rows, 0, g1);
                    if (memcmp(got, want, sizeof(float) * (size_t)(N * rows)) != 0) bad = (*d)->name, bad_n = N;
                    /* a range of groups that does not start at the first */
                    if (!bad && g1 > 1) {
                        (*d)->groups_tokens(&W, tokens, N, got, (size_t)rows, 1, g1);
                        for (int n = 0; n < N && !bad; n++)
                            if (memcmp(got + n * rows, want + n * rows + ROW_GROUP,
                                       sizeof(float) * (size_t)(rows - ROW_GROUP)) != 0)
                                bad = (*d)->name, bad_n = N;
                    }
                    free(tokens);
                }
            }
            for (int n = 0; n < MAX_N; n++) free(q[n].mem);
            free((void *)W.data), free((void *)W.groups);
            CHECK(!bad, "%s groups_tokens %s %dx%d N=%d differ from the token-by-token groups", bad,
                  dtype_name(int8_types[ti]), rows, cols, bad_n);
        }
    if (!ran) printf("# no variant with a tiled kernel runs on this CPU\n");
}

/* A product of several tokens (a prompt, a batched step) with int8
 * activations: every row of every token bit for bit the decode product of
 * that token alone, whatever N and the thread counts of either, for the
 * 32-weight formats and the k-quants — where the table has the tiled kernels
 * (else the panels run). */
static void test_matmul_rows_are_decode_steps(void) {
    const int rows = 130, Ns[] = {2, 7, 70}; /* 8 whole groups and 2 rows past them; tiles of 32 and 64 tokens */
    enum { MAX_N = 70 };
    const dtype types[] = {DT_Q8_0, DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1, DT_Q4_K, DT_Q5_K, DT_Q6_K};
    const int was = kernels_int8_activations();
    kernels_set_int8_activations(1);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (int wide = 0; wide <= 1; wide++) {
            const int kq = dtype_block_elems(types[ti]) == 256, cols = kq ? 256 + 512 * wide : 96 + 672 * wide;
            matrix W = make_matrix(types[ti], rows, cols);
            W.groups = make_groups(&W);
            float *X = malloc(sizeof(float) * (size_t)cols * MAX_N);
            float *want = malloc(sizeof(float) * (size_t)rows * MAX_N), *got = malloc(sizeof(float) * (size_t)rows * MAX_N);
            for (int i = 0; i < cols * MAX_N; i++) X[i] = gauss();
            const char *bad = NULL;
            int bad_n = 0, bad_nt = 0;
            for (const kernel_ops *const *k = kernels_all(); *k && !bad; k++) {
                /* where the variant multiplies several tokens through the decode's kernels */
                if (!kernels_cpu_supports((*k)->name) ||
                    !(kq ? (*k)->kquant_tokens && matvec_reads_groups(*k, &W)
                         : int8_dot_for(*k)->groups_tokens != NULL))
                    continue;
                for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0] && !bad; ni++)
                    for (int nt = 1; nt <= 3 && !bad; nt++) {
                        const int N = Ns[ni];
                        for (int n = 0; n < N; n++)
                            matvec_with(*k, &W, X + (size_t)n * cols, want + (size_t)n * rows, 4 - nt);
                        matmul_with(*k, &W, X, N, got, nt);
                        if (memcmp(got, want, sizeof(float) * (size_t)rows * N) != 0)
                            bad = (*k)->name, bad_n = N, bad_nt = nt;
                    }
                /* a batch's single row (matmul_batch: the active table) takes the same kernels */
                for (int nt = 1; nt <= 2 && !bad && *k == kernels_active(); nt++) {
                    matvec_with(*k, &W, X, want, nt);
                    matmul_batch(&W, X, 1, got, 3 - nt);
                    if (memcmp(got, want, sizeof(float) * (size_t)rows) != 0) bad = (*k)->name, bad_n = 1, bad_nt = 3 - nt;
                }
            }
            free(X), free(want), free(got), free((void *)W.data), free((void *)W.groups);
            CHECK(!bad, "%s %s %dx%d: a product of N=%d tokens on %d threads differs from their decode steps", bad,
                  dtype_name(types[ti]), rows, cols, bad_n, bad_nt);
        }
    kernels_set_int8_activations(was);
}

static void test_choice(void) {
    for (const kernel_ops *const *k = kernels_all(); *k; k++) {
        if (!kernels_cpu_supports((*k)->name)) continue;
        const int8_dot_ops *d = int8_dot_for(*k);
        CHECK(d && int8_dot_supported(d), "table %s got an unsupported integer variant", (*k)->name);
        printf("# table %s: integer products %s\n", (*k)->name, d->name);
    }
    CHECK(int8_dot_for(kernels_get("scalar")) == &int8_dot_scalar, "the scalar table uses the reference");
    CHECK(int8_dot_handles(DT_Q5_1) && !int8_dot_handles(DT_F16) && !int8_dot_handles(DT_Q4_K), "handled types");
}

/* W . x as one thread computes it alone through table k's kernels, x
 * quantized here (the float path for a k-quant the table has no 8-bit path for) */
static void product_alone(const kernel_ops *k, const matrix *W, const float *x, float *y) {
    if (dtype_block_elems(W->type) != 256) {
        quantized q = quantize_with(int8_dot_for(k), x, W->cols);
        int8_dot_rows(int8_dot_for(k), W, &q.a, y, 0, W->rows);
        free(q.mem);
        return;
    }
    void *mem = k->kquant_prepare ? aligned_alloc(64, k->kquant_bytes(W->cols)) : NULL;
    const void *a = mem ? k->kquant_prepare(W, x, mem) : NULL;
    if (a) k->kquant_rows(W, a, y, 0, W->rows);
    else k->matvec_rows(W, x, y, 0, W->rows);
    free(mem);
}

/* Every thread that runs rows of a product quantizes its x for itself and
 * keeps copies of the last few products (int8_product): a product never
 * reads another's copy, though x changes in place between products, the
 * formats and widths change (a thread's buffers grow), or a group of
 * MATMUL_GROUP_MAX products runs as one job. At 1-4 threads each product
 * gives exactly the bits of a one-thread product on its own x. */
static void test_products_quantize_their_own_x(void) {
    enum { ROWS = 160, TYPES = 4, MAX_COLS = 3072 };
    const dtype types[TYPES] = {DT_Q5_1, DT_Q8_0, DT_Q4_K, DT_Q4_0};
    const int cols[TYPES] = {768, 3072, 1024, 96};
    const kernel_ops *k = kernels_active();
    const int was = kernels_int8_activations();
    kernels_set_int8_activations(1);
    matrix W[TYPES];
    for (int i = 0; i < TYPES; i++) {
        W[i] = make_matrix(types[i], ROWS, cols[i]);
        W[i].groups = row_groups_apply(&W[i]) ? make_groups(&W[i]) : NULL;
    }
    float *x = malloc(sizeof(float) * MAX_COLS * MATMUL_GROUP_MAX);
    float *want = malloc(sizeof(float) * ROWS * MATMUL_GROUP_MAX);
    float *got = malloc(sizeof(float) * ROWS * MATMUL_GROUP_MAX);
    int bad = -1;
    for (int round = 0; round < 32 && bad < 0; round++) { /* one x buffer, rewritten for each product */
        const int i = round % TYPES, nt = 1 + round / TYPES % 4;
        for (int c = 0; c < cols[i]; c++) x[c] = gauss();
        product_alone(k, &W[i], x, want);
        matvec_with(k, &W[i], x, got, nt);
        if (memcmp(got, want, sizeof(float) * ROWS) != 0) bad = round;
    }
    CHECK(bad < 0, "%s: product %d of a sequence differs from the product alone", k->name, bad);
    const matrix *Wg[MATMUL_GROUP_MAX];
    const float *Xg[MATMUL_GROUP_MAX];
    float *Yg[MATMUL_GROUP_MAX];
    for (int nt = 2; nt <= 4; nt++) {
        for (int p = 0; p < MATMUL_GROUP_MAX; p++) {
            Wg[p] = &W[(p + nt) % TYPES];
            Xg[p] = x + (size_t)p * MAX_COLS, Yg[p] = got + (size_t)p * ROWS;
            for (int c = 0; c < Wg[p]->cols; c++) x[(size_t)p * MAX_COLS + c] = gauss();
            product_alone(k, Wg[p], Xg[p], want + (size_t)p * ROWS);
        }
        matmul_group(MATMUL_GROUP_MAX, Wg, Xg, 1, Yg, nt);
        CHECK(memcmp(got, want, sizeof(float) * ROWS * MATMUL_GROUP_MAX) == 0,
              "%s: a group of %d products on %d threads differs from the products alone", k->name,
              MATMUL_GROUP_MAX, nt);
    }
    kernels_set_int8_activations(was);
    for (int i = 0; i < TYPES; i++) free((void *)W[i].data), free((void *)W[i].groups);
    free(x), free(want), free(got);
}

int main(void) {
    RUN(test_choice);
    RUN(test_quantize_variants);
    RUN(test_quantize_tiny_blocks);
    RUN(test_quantize_non_finite);
    RUN(test_rows_variants);
    RUN(test_groups_layout);
    RUN(test_matvec_modes);
    RUN(test_groups_tokens_variants);
    RUN(test_matmul_rows_are_decode_steps);
    RUN(test_products_quantize_their_own_x);
    return test_summary();
}
