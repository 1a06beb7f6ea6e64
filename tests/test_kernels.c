/* Kernel variants against the scalar reference: every variant this CPU runs
 * (scalar, avx2, avx512) for matvec / matmul over f32, f16, bf16 and the
 * ggml block types, layer norm, token mix and the element-wise gates, the
 * f16/bf16 conversions, quantize -> dequantize error bounds, and the table
 * itself (tests/test_wkv.c has the WKV operators). */
#include <float.h>
#include <stdatomic.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "kernels/kquant_q8.h"
#include "kernels/row_groups.h"
#include "rwkv.h"
#include "rwkv_quant.h"
#include "test.h"
#include <time.h>
#include <unistd.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() & 0xffffff) / 16777216.0f; }
static float gauss(void) {
    float s = 0;
    for (int i = 0; i < 4; i++) s += uniform(-1, 1);
    return s * 0.866f;
}
static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ---- conversions -------------------------------------------------------- */

static void test_f16_all_patterns_round_trip(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((uint16_t)h);
        uint16_t back = f32_to_f16(f);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) { /* NaN: stays a NaN of the same sign */
            CHECK(isnan(f), "f16 %04x should decode to NaN", h);
            CHECK((back & 0x7c00) == 0x7c00 && (back & 0x3ff) && (back & 0x8000) == (h & 0x8000),
                  "NaN %04x came back as %04x", h, back);
            continue;
        }
        CHECK(back == h, "f16 %04x -> %g -> %04x", h, (double)f, back);
    }
    /* every SIMD variant decodes all patterns exactly like the scalar code */
    static uint16_t all[65536];
    static float got[65536];
    for (uint32_t h = 0; h < 65536; h++) all[h] = (uint16_t)h;
    for (const kernel_ops *const *k = kernels_all(); *k; k++) {
        if (!kernels_cpu_supports((*k)->name)) continue;
        (*k)->row_to_f32(DT_F16, all, got, 65536);
        for (uint32_t h = 0; h < 65536; h++) {
            float want = f16_to_f32((uint16_t)h);
            CHECK(f_bits(got[h]) == f_bits(want) || (isnan(got[h]) && isnan(want)),
                  "%s: f16 %04x decodes to %g, scalar %g", (*k)->name, h, (double)got[h], (double)want);
        }
    }
}

/* |f - decode(h)| must be minimal over h's neighbours, ties to the even code. */
static int nearest_ok(float f, uint32_t h, float (*dec)(uint16_t), uint32_t maxfinite) {
    uint32_t mag = h & 0x7fff;
    double e = fabs((double)f - (double)dec((uint16_t)h));
    if (mag > maxfinite) return fabs((double)f) >= (double)dec((uint16_t)maxfinite); /* inf */
    uint32_t nb[2] = {mag ? h - 1 : h, mag < maxfinite ? h + 1 : h};
    for (int i = 0; i < 2; i++) {
        double e2 = fabs((double)f - (double)dec((uint16_t)nb[i]));
        if (e2 < e) return 0;
        if (e2 == e && nb[i] != h && (h & 1)) return 0;
    }
    return 1;
}
static float bf16_dec(uint16_t h) { return bf16_to_f32(h); }

static void test_f32_to_f16_rounding(void) {
    struct {
        float in;
        uint16_t want;
    } cases[] = {
        {1.0f, 0x3c00},
        {1.0f + 0x1p-11f, 0x3c00},          /* tie: to even (down) */
        {1.0f + 3 * 0x1p-11f, 0x3c02},      /* tie: to even (up) */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}, /* above the tie */
        {0x1p-25f, 0x0000},                 /* half the smallest subnormal: tie to 0 */
        {3 * 0x1p-25f, 0x0002},             /* 1.5 subnormal steps: tie to 2 */
        {0x1p-24f, 0x0001},
        {0x1p-14f, 0x0400},                 /* smallest normal */
        {0x1p-14f - 0x1p-25f, 0x0400},      /* tie between largest subnormal and smallest normal: even */
        {65504.0f, 0x7bff},
        {65519.0f, 0x7bff},
        {65520.0f, 0x7c00}, /* tie past the largest finite: infinity */
        {-0.0f, 0x8000},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
        {1e-30f, 0x0000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(f32_to_f16(cases[i].in) == cases[i].want, "f32_to_f16(%a) = %04x, want %04x", (double)cases[i].in,
              f32_to_f16(cases[i].in), cases[i].want);
    uint16_t n = f32_to_f16(NAN);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff), "NaN must stay NaN (%04x)", n);
    for (int i = 0; i < 200000; i++) {
        float f = bits_f((next_u32() & 0x807fffffu) | ((0x60u + (next_u32() % 0x30u)) << 23));
        uint16_t h = f32_to_f16(f);
        CHECK(nearest_ok(f, h, f16_to_f32, 0x7bff), "f32_to_f16(%a) = %04x is not the nearest (even)", (double)f, h);
    }
}

static void test_f32_to_bf16_rounding(void) {
    CHECK(f32_to_bf16(1.0f) == 0x3f80, "1.0");
    CHECK(f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "tie to even (down)");
    CHECK(f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82, "tie to even (up)");
    CHECK(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81, "above the tie");
    CHECK(f32_to_bf16(0x1p-130f) == 0x0008, "subnormal");
    CHECK(f32_to_bf16(INFINITY) == 0x7f80 && f32_to_bf16(-INFINITY) == 0xff80, "inf");
    CHECK(f32_to_bf16(FLT_MAX) == 0x7f80, "FLT_MAX rounds to inf");
    uint16_t n = f32_to_bf16(NAN);
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f), "NaN must stay NaN (%04x)", n);
    for (int i = 0; i < 200000; i++) {
        float f = bits_f(next_u32());
        if (isnan(f)) continue;
        uint16_t h = f32_to_bf16(f);
        CHECK(nearest_ok(f, h, bf16_dec, 0x7f7f), "f32_to_bf16(%a) = %04x is not the nearest (even)", (double)f, h);
    }
}

/* ---- matrices ----------------------------------------------------------- */

static const dtype mat_types[] = {DT_F32,  DT_F16,  DT_BF16, DT_Q8_0, DT_Q4_0, DT_Q4_1,
                                  DT_Q5_0, DT_Q5_1, DT_Q4_K, DT_Q5_K, DT_Q6_K};

/* cols rounded up to whole blocks of t (32, or 256 for the k-quants) */
static int whole_blocks(dtype t, int cols) {
    int be = (int)dtype_block_elems(t);
    return (cols + be - 1) / be * be;
}

/* A random matrix stored as t (the caller frees data). */
static matrix make_matrix(dtype t, int rows, int cols) {
    size_t n = (size_t)rows * cols;
    float *f = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) f[i] = gauss();
    void *data = malloc(dtype_bytes_for(t, n) + 1);
    if (dtype_is_block(t)) quantize_row(t, f, data, n);
    else dtype_from_f32(t, f, data, n);
    free(f);
    matrix m = {.type = t, .rows = rows, .cols = cols, .data = data};
    return m;
}

/* mag[n][r] = sum_c |W[r][c] X[n][c]|, the scale of each output's rounding error */
static double *magnitudes(const matrix *W, const float *X, int N) {
    float *w = malloc(sizeof(float) * (size_t)W->cols);
    double *mag = malloc(sizeof(double) * (size_t)N * W->rows);
    size_t rb = dtype_bytes_for(W->type, (uint64_t)W->cols);
    for (int r = 0; r < W->rows; r++) {
        dtype_to_f32(W->type, (const uint8_t *)W->data + (size_t)r * rb, w, (size_t)W->cols);
        for (int n = 0; n < N; n++) {
            double m = 0;
            for (int c = 0; c < W->cols; c++) m += fabs((double)w[c] * X[(size_t)n * W->cols + c]);
            mag[(size_t)n * W->rows + r] = m;
        }
    }
    free(w);
    return mag;
}

/* |got - want| <= 2e-6 * mag + 1e-6 (+ allow[i], when given): fp32 reordering only */
static double mat_err_allow(const double *mag, const double *allow, size_t count, const float *got, const float *want) {
    double worst = 0;
    for (size_t i = 0; i < count; i++) {
        double e = fabs((double)got[i] - want[i]) / (2e-6 * mag[i] + 1e-6 + (allow ? allow[i] : 0));
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

static double mat_err(const double *mag, size_t count, const float *got, const float *want) {
    return mat_err_allow(mag, NULL, count, got, want);
}

/* The AVX-512 decode of Q4_K / Q5_K / Q6_K rows quantizes x to 8 bits per 256 as
 * llama.cpp does (kernels/kquant_q8_avx512.c): each element moves by at most
 * max|x| / 254 of its block, so output r may move by up to the sum over c of
 * |W[r][c]| times that (plus the float tolerance). Returns that allowance per
 * row, 0 for the other types and variants. */
static int is_kquant(dtype t) { return t == DT_Q4_K || t == DT_Q5_K || t == DT_Q6_K; }

static void act_quant_allowance(const kernel_ops *k, const matrix *W, const float *x, double *allow) {
    int applies = is_kquant(W->type) && kernels_int8_activations() &&
                  (strcmp(k->name, "avx512") == 0 || strcmp(k->name, "avx2") == 0);
    float *w = malloc(sizeof(float) * (size_t)W->cols);
    const size_t rb = dtype_bytes_for(W->type, (uint64_t)W->cols);
    for (int r = 0; r < W->rows; r++) {
        allow[r] = 0;
        if (!applies) continue;
        dtype_to_f32(W->type, (const uint8_t *)W->data + (size_t)r * rb, w, (size_t)W->cols);
        for (int b = 0; b < W->cols; b += 256) {
            double amax = 0, wsum = 0;
            for (int c = b; c < b + 256; c++) amax = fmax(amax, fabs(x[c])), wsum += fabs(w[c]);
            allow[r] += wsum * amax / 254 * 1.0001;
        }
    }
    free(w);
}

/* Every variant's decode product against the scalar reference, with float
 * activations and, for the k-quants, with their 8-bit activation path. */
static void test_matvec_variants(void) {
    const int rows_list[] = {1, 3, 16, 17, 45, 130};
    const int cols_list[] = {1, 5, 8, 15, 31, 32, 33, 64, 95, 100, 257, 768};
    for (size_t ti = 0; ti < 2 * (sizeof mat_types / sizeof mat_types[0]); ti++) {
        dtype t = mat_types[ti / 2];
        if (ti % 2 && !is_kquant(t)) continue;
        kernels_set_int8_activations((int)(ti % 2));
        for (size_t ri = 0; ri < sizeof rows_list / sizeof rows_list[0]; ri++)
            for (size_t ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++) {
                int rows = rows_list[ri], cols = cols_list[ci];
                cols = whole_blocks(t, cols);
                matrix W = make_matrix(t, rows, cols);
                float *x = malloc(sizeof(float) * cols), *want = malloc(sizeof(float) * rows),
                      *got = malloc(sizeof(float) * rows);
                for (int c = 0; c < cols; c++) x[c] = gauss();
                matvec_scalar(&W, x, want);
                double *mag = magnitudes(&W, x, 1);
                double *allow = malloc(sizeof(double) * (size_t)rows);
                /* and from the grouped copy, where a variant reads one (kernels/row_groups.h) */
                void *groups = NULL;
                if (row_groups_apply(&W) && (groups = aligned_alloc(64, (row_groups_bytes(&W) + 63) / 64 * 64)))
                    row_groups_pack(&W, groups, 2);
                for (const kernel_ops *const *k = kernels_all(); *k; k++) {
                    if (!kernels_cpu_supports((*k)->name)) continue;
                    act_quant_allowance(*k, &W, x, allow);
                    for (int nt = 1; nt <= 4; nt++) {
                        W.groups = nt > 2 ? groups : NULL;
                        if (nt > 2 && !groups) break;
                        for (int r = 0; r < rows; r++) got[r] = NAN;
                        matvec_with(*k, &W, x, got, (nt - 1) % 2 + 1);
                        double e = mat_err_allow(mag, allow, (size_t)rows, got, want);
                        if (!(e <= 1)) {
                            free(x), free(want), free(got), free((void *)W.data), free(mag);
                            free(allow), free(groups);
                            kernels_set_int8_activations(0);
                            CHECK(0, "%s matvec %s %dx%d threads %d%s%s: error %.3g of tolerance", (*k)->name,
                                  dtype_name(t), rows, cols, (nt - 1) % 2 + 1, ti % 2 ? " (8-bit activations)" : "",
                                  nt > 2 ? " grouped" : "", e);
                        }
                    }
                }
                free(x), free(want), free(got), free((void *)W.data), free(mag), free(allow), free(groups);
            }
    }
    kernels_set_int8_activations(0);
}

/* With activations that 8 bits hold exactly (integers in [-127, 127], 127
 * in every block of 256, so the scale is 1), the 8-bit Q4_K / Q5_K / Q6_K decode
 * must give the reference's products to float rounding: this pins every
 * scale, minimum and code of the integer path, which the allowance of
 * test_matvec_variants could hide. */
static void test_kquant_q8_exact_activations(void) {
    const dtype types[] = {DT_Q4_K, DT_Q5_K, DT_Q6_K};
    enum { ROWS = 37, COLS = 1024 };
    static float x[COLS], want[ROWS], got[ROWS];
    int ran = 0;
    kernels_set_int8_activations(1);
    for (const kernel_ops *const *k = kernels_all(); *k; k++) {
        if ((strcmp((*k)->name, "avx512") && strcmp((*k)->name, "avx2")) || !kernels_cpu_supports((*k)->name)) continue;
        ran++;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            matrix W = make_matrix(types[ti], ROWS, COLS);
            for (int c = 0; c < COLS; c++) x[c] = c % 256 == 7 ? (c % 512 ? -127.0f : 127.0f) : (float)(rand() % 255 - 127);
            matvec_scalar(&W, x, want);
            double *mag = magnitudes(&W, x, 1);
            matvec_with(*k, &W, x, got, 1);
            const double e = mat_err(mag, ROWS, got, want);
            free((void *)W.data), free(mag);
            if (!(e <= 1)) kernels_set_int8_activations(0);
            CHECK(e <= 1, "%s %s matvec with exact 8-bit activations: error %.3g of tolerance", (*k)->name,
                  dtype_name(types[ti]), e);
        }
    }
    kernels_set_int8_activations(0);
    if (!ran) SKIP("neither AVX-512 nor AVX2 on this CPU");
}

/* The AVX2 grouped k-quant products (kernels/kquant_q8_avx2_groups.h): the
 * vpmaddubsw build and the AVX-VNNI one give the same bits, and the
 * reference's products within the 8-bit activations' allowance, on groups of
 * every type at two widths. */
static void test_kquant_avx2_groups(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    const kernel_ops *k = kernels_get("avx2");
    if (!k) {
        SKIP("no AVX2 on this CPU");
        return;
    }
    const dtype types[] = {DT_Q4_K, DT_Q5_K, DT_Q6_K};
    const int vnni = kernels_cpu_supports("avxvnni"), cols_list[] = {256, 1280};
    enum { ROWS = 48 };
    kernels_set_int8_activations(1);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++) {
            const int cols = cols_list[ci];
            matrix W = make_matrix(types[ti], ROWS, cols);
            void *groups = aligned_alloc(64, (row_groups_bytes(&W) + 63) / 64 * 64);
            void *mem = aligned_alloc(64, kquant_bytes_avx2(cols));
            float *x = malloc(sizeof(float) * cols), want[ROWS], got[ROWS], got_vnni[ROWS];
            double allow[ROWS];
            CHECK(groups && mem && x, "out of memory");
            if (!groups || !mem || !x) return;
            row_groups_pack(&W, groups, 1);
            W.groups = groups;
            for (int c = 0; c < cols; c++) x[c] = gauss();
            matvec_scalar(&W, x, want);
            double *mag = magnitudes(&W, x, 1);
            act_quant_allowance(k, &W, x, allow);
            const void *acts = kquant_prepare_avx2(&W, x, mem);
            kquant_groups_avx2(&W, acts, got, 0, ROWS / ROW_GROUP);
            const double e = mat_err_allow(mag, allow, ROWS, got, want);
            CHECK(e <= 1, "avx2 grouped %s %dx%d: error %.3g of tolerance", dtype_name(types[ti]), ROWS, cols, e);
            if (vnni) {
                kquant_groups_avxvnni(&W, acts, got_vnni, 0, ROWS / ROW_GROUP);
                CHECK(memcmp(got, got_vnni, sizeof got) == 0, "avxvnni grouped %s %dx%d: not the vpmaddubsw build's bits",
                      dtype_name(types[ti]), ROWS, cols);
            }
            free((void *)W.data), free(groups), free(mem), free(x), free(mag);
        }
    kernels_set_int8_activations(0);
    if (!vnni) SKIP("no AVX-VNNI: its build not compared");
#else
    SKIP("not an x86 build");
#endif
}

/* x with an infinity or a NaN anywhere (the last element, the first, one
 * between) takes the float path: the 8-bit quantization is refused, and a
 * finite x of the same width is quantized. */
static void test_kquant_q8_refuses_non_finite(void) {
    enum { COLS = 1024 };
    static float x[COLS];
    const float bad[] = {INFINITY, -INFINITY, NAN};
    const int at[] = {0, 301, COLS - 1};
    int ran = 0;
    matrix W = make_matrix(DT_Q4_K, 16, COLS);
    for (const kernel_ops *const *k = kernels_all(); *k; k++) {
        if (!(*k)->kquant_prepare || !kernels_cpu_supports((*k)->name)) continue;
        ran++;
        void *mem = aligned_alloc(64, (*k)->kquant_bytes(COLS));
        CHECK(mem, "out of memory");
        if (!mem) continue;
        for (int c = 0; c < COLS; c++) x[c] = gauss();
        CHECK((*k)->kquant_prepare(&W, x, mem) == mem, "%s: a finite x was not quantized", (*k)->name);
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++)
            for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
                x[at[i]] = bad[b];
                CHECK(!(*k)->kquant_prepare(&W, x, mem), "%s: x with %g at %d was quantized", (*k)->name, bad[b],
                      at[i]);
                x[at[i]] = 0.5f;
            }
        free(mem);
    }
    free((void *)W.data);
    if (!ran) SKIP("no variant quantizes k-quant activations on this CPU");
}

/* f32 rows that start off a cache-line boundary (file-mapped weights) */
static void test_matvec_misaligned(void) {
    const int rows = 40, cols_list[] = {768, 100, 16};
    for (size_t ci = 0; ci < 3; ci++) {
        int cols = cols_list[ci];
        matrix src = make_matrix(DT_F32, rows, cols);
        uint8_t *raw = malloc(sizeof(float) * (size_t)rows * cols + 128);
        float *x = malloc(sizeof(float) * cols), *want = malloc(sizeof(float) * rows), *got = malloc(sizeof(float) * rows);
        for (int c = 0; c < cols; c++) x[c] = gauss();
        int bad = 0;
        char msg[160] = "";
        float *first[8] = {0}; /* each variant's results at offset 0: every offset must give them bit for bit */
        for (int off = 0; off < 64 && !bad; off += 4) {
            uint8_t *base = raw + (64 - ((uintptr_t)raw & 63)) % 64 + off;
            memcpy(base, src.data, sizeof(float) * (size_t)rows * cols);
            matrix W = {.type = DT_F32, .rows = rows, .cols = cols, .data = base};
            matvec_scalar(&W, x, want);
            double *mag = magnitudes(&W, x, 1);
            int kv = 0;
            for (const kernel_ops *const *k = kernels_all(); *k && !bad; k++, kv++) {
                if (!kernels_cpu_supports((*k)->name)) continue;
                (*k)->matvec_rows(&W, x, got, 0, rows);
                double e = mat_err(mag, (size_t)rows, got, want);
                if (!(e <= 1)) bad = 1, snprintf(msg, sizeof msg, "%s cols %d offset %d: %.3g", (*k)->name, cols, off, e);
                if (!first[kv]) {
                    first[kv] = malloc(sizeof(float) * rows);
                    memcpy(first[kv], got, sizeof(float) * rows);
                } else if (!bad && memcmp(first[kv], got, sizeof(float) * rows) != 0) {
                    bad = 1, snprintf(msg, sizeof msg, "%s cols %d: offset %d changes the results", (*k)->name, cols, off);
                }
            }
            free(mag);
        }
        for (int kv = 0; kv < 8; kv++) free(first[kv]);
        free((void *)src.data), free(raw), free(x), free(want), free(got);
        CHECK(!bad, "%s", msg);
    }
}

/* Block matrices at an odd address (tensor sets keep them where the file
 * has them), and 16-bit floats, whose kernels allow it too: every variant's
 * decode (N = 1) and prompt products give what they give for the same bytes
 * aligned, bit for bit. */
static void test_matmul_odd_address(void) {
    static const dtype types[] = {DT_F16, DT_BF16, DT_Q8_0, DT_Q4_0, DT_Q5_1, DT_Q4_K, DT_Q6_K};
    const int rows = 37, N_list[] = {1, 9};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const int cols = whole_blocks(types[ti], 300);
        matrix W = make_matrix(types[ti], rows, cols);
        const size_t bytes = dtype_bytes_for(types[ti], (uint64_t)rows * cols);
        uint8_t *raw = malloc(bytes + 2);
        matrix odd = W;
        odd.data = raw + 1 - (uintptr_t)raw % 2;
        memcpy((void *)odd.data, W.data, bytes);
        float *X = malloc(sizeof(float) * cols * 9), *want = malloc(sizeof(float) * rows * 9),
              *got = malloc(sizeof(float) * rows * 9);
        for (int i = 0; i < cols * 9; i++) X[i] = gauss();
        for (const kernel_ops *const *k = kernels_all(); *k; k++) {
            if (!kernels_cpu_supports((*k)->name)) continue;
            for (int ni = 0; ni < 2; ni++) {
                const int N = N_list[ni];
                matmul_with(*k, &W, X, N, want, 1);
                matmul_with(*k, &odd, X, N, got, 1);
                CHECK(memcmp(want, got, sizeof(float) * rows * N) == 0, "%s %s N=%d: an odd address changes the products",
                      (*k)->name, dtype_name(types[ti]), N);
            }
        }
        free(X), free(want), free(got), free(raw), free((void *)W.data);
    }
}

static void test_matmul_variants(void) {
    const int shapes[][2] = {{37, 70}, {16, 32}, {5, 9}, {70, 385}, {33, 800}};
    for (size_t ti = 0; ti < sizeof mat_types / sizeof mat_types[0]; ti++) {
        dtype t = mat_types[ti];
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            int rows = shapes[si][0], cols = shapes[si][1];
            cols = whole_blocks(t, cols);
            matrix W = make_matrix(t, rows, cols);
            const int maxN = 65;
            float *X = malloc(sizeof(float) * cols * maxN), *want = malloc(sizeof(float) * rows * maxN),
                  *got = malloc(sizeof(float) * rows * maxN);
            for (int i = 0; i < cols * maxN; i++) X[i] = gauss();
            /* every N in 1..65 on the first shape; a few (tile edges) on the larger ones */
            static const int fewN[] = {2, 9, 17, 65};
            for (int ni = 0; ni < (si == 0 ? maxN : 4); ni++) {
                int N = si == 0 ? ni + 1 : fewN[ni];
                matmul_scalar(&W, X, N, want);
                double *mag = magnitudes(&W, X, N), *allow = malloc(sizeof(double) * (size_t)rows);
                for (const kernel_ops *const *k = kernels_all(); *k; k++) {
                    if (!kernels_cpu_supports((*k)->name)) continue;
                    act_quant_allowance(*k, &W, X, allow); /* N = 1 is a decode product */
                    /* two threads on a subset: each call is a fork/join, slow on a busy machine */
                    for (int nt = 1; nt <= (si > 0 || N % 8 == 1 ? 2 : 1); nt++) {
                        for (int i = 0; i < rows * N; i++) got[i] = NAN;
                        matmul_with(*k, &W, X, N, got, nt);
                        double e = mat_err_allow(mag, N == 1 ? allow : NULL, (size_t)rows * N, got, want);
                        if (!(e <= 1)) {
                            free(X), free(want), free(got), free((void *)W.data), free(mag), free(allow);
                            CHECK(0, "%s matmul %s %dx%d N=%d threads %d: error %.3g of tolerance", (*k)->name,
                                  dtype_name(t), rows, cols, N, nt, e);
                        }
                    }
                }
                free(mag), free(allow);
            }
            free(X), free(want), free(got), free((void *)W.data);
        }
    }
}

/* The bf16 prompt products (kernels/matmul_bf16.h) of block-quantized
 * weights: against the products of the bf16-rounded operands summed in
 * double (exact products; only the float sums' order differs), and
 * different from the float path's results (the bf16 path really ran). */
static void test_matmul_bf16(void) {
    const kernel_ops *k = kernels_get("avx512");
    if (!k || !k->mm.run_bf16 || !kernels_cpu_supports("avx512bf16")) SKIP("no AVX-512 BF16 on this CPU");
    const dtype types[] = {DT_Q8_0, DT_Q4_0, DT_Q5_1, DT_Q4_K, DT_Q6_K};
    const int shapes[][2] = {{37, 70}, {70, 385}, {33, 800}}, Ns[] = {2, 9, 17, 65};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int rows = shapes[si][0], cols = whole_blocks(types[ti], shapes[si][1]), maxN = 65;
            matrix W = make_matrix(types[ti], rows, cols);
            float *X = malloc(sizeof(float) * cols * maxN), *w = malloc(sizeof(float) * cols);
            float *got = malloc(sizeof(float) * rows * maxN), *flt = malloc(sizeof(float) * rows * maxN);
            double *want = malloc(sizeof(double) * rows * maxN), *mag = malloc(sizeof(double) * rows * maxN);
            for (int i = 0; i < cols * maxN; i++) X[i] = gauss();
            const size_t rb = dtype_bytes_for(W.type, (uint64_t)cols);
            for (int r = 0; r < rows; r++) {
                dtype_to_f32(W.type, (const uint8_t *)W.data + (size_t)r * rb, w, (size_t)cols);
                for (int n = 0; n < maxN; n++) {
                    double sum = 0, m = 0;
                    for (int c = 0; c < cols; c++) {
                        const double p = (double)bf16_to_f32(f32_to_bf16(w[c])) *
                                         bf16_to_f32(f32_to_bf16(X[(size_t)n * cols + c]));
                        sum += p, m += fabs(p);
                    }
                    want[(size_t)n * rows + r] = sum, mag[(size_t)n * rows + r] = m;
                }
            }
            int differs = 0;
            char msg[160] = "";
            for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0] && !msg[0]; ni++)
                for (int nt = 1; nt <= 2 && !msg[0]; nt++) {
                    const int N = Ns[ni];
                    kernels_set_int8_activations(0);
                    matmul_with(k, &W, X, N, flt, nt);
                    kernels_set_int8_activations(1);
                    matmul_with(k, &W, X, N, got, nt);
                    for (int i = 0; i < rows * N && !msg[0]; i++) {
                        if (!(fabs(got[i] - want[i]) <= 2e-6 * mag[i] + 1e-6))
                            snprintf(msg, sizeof msg, "%s %dx%d N=%d threads %d: output %d is %.9g, want %.9g",
                                     dtype_name(W.type), rows, cols, N, nt, i, got[i], want[i]);
                        differs |= got[i] != flt[i];
                    }
                }
            kernels_set_int8_activations(0);
            free(X), free(w), free(got), free(flt), free(want), free(mag), free((void *)W.data);
            CHECK(!msg[0], "%s", msg);
            CHECK(differs, "%s %dx%d: the bf16 path gave the float path's results", dtype_name(types[ti]), rows, cols);
        }
}

/* Weights packed once (matrix.panels) give exactly what packing on every
 * call gives: f32 and f16, every variant, several column slices and a
 * partial last panel, tile edges of N, one and two threads. */
static void test_matmul_packed_panels(void) {
    const dtype types[] = {DT_F32, DT_F16};
    const int rows = 70, cols = 800, Ns[] = {2, 7, 9, 33};
    for (int ti = 0; ti < 2; ti++) {
        matrix W = make_matrix(types[ti], rows, cols);
        float *X = malloc(sizeof(float) * cols * 33), *want = malloc(sizeof(float) * rows * 33),
              *got = malloc(sizeof(float) * rows * 33);
        for (int i = 0; i < cols * 33; i++) X[i] = gauss();
        int bad = 0;
        char msg[160] = "";
        for (const kernel_ops *const *k = kernels_all(); *k && !bad; k++) {
            if (!kernels_cpu_supports((*k)->name)) continue;
            uint8_t *raw = malloc(matmul_panel_bytes(*k, &W) + 64);
            matrix P = W;
            P.panels = raw + (64 - (uintptr_t)raw % 64) % 64;
            P.panel_nr = (*k)->mm.nr;
            matmul_pack_panels(*k, &W, (void *)P.panels);
            for (int ni = 0; ni < 4 && !bad; ni++)
                for (int nt = 1; nt <= 2 && !bad; nt++) {
                    const int N = Ns[ni];
                    matmul_with(*k, &W, X, N, want, nt);
                    for (int i = 0; i < rows * N; i++) got[i] = NAN;
                    matmul_with(*k, &P, X, N, got, nt);
                    if (memcmp(got, want, sizeof(float) * rows * N) != 0)
                        bad = 1, snprintf(msg, sizeof msg, "%s %s N=%d threads %d: packed panels differ", (*k)->name,
                                          dtype_name(types[ti]), N, nt);
                }
            free(raw);
        }
        free(X), free(want), free(got), free((void *)W.data);
        CHECK(!bad, "%s", msg);
    }
}

/* matmul_group gives exactly what one matmul per product gives (the same
 * row kernels and panels, only scheduled together), for decode (N = 1) and
 * sequence mode, mixed formats and shapes, any thread count. */
static void test_matmul_group(void) {
    const int shapes[][2] = {{300, 256}, {64, 96}, {1000, 128}, {7, 32}, {40, 512}};
    const dtype types[] = {DT_F32, DT_Q8_0, DT_Q5_0, DT_F16, DT_Q4_K};
    const int n = 5;
    matrix W[5];
    const matrix *Wp[5];
    float *X[5], *want[5], *got[5];
    for (int i = 0; i < n; i++) {
        W[i] = make_matrix(types[i], shapes[i][0], shapes[i][1]);
        Wp[i] = &W[i];
        X[i] = malloc(sizeof(float) * (size_t)shapes[i][1] * 9);
        want[i] = malloc(sizeof(float) * (size_t)shapes[i][0] * 9);
        got[i] = malloc(sizeof(float) * (size_t)shapes[i][0] * 9);
        for (int j = 0; j < shapes[i][1] * 9; j++) X[i][j] = gauss();
    }
    static const int Ns[] = {1, 9};
    for (int ni = 0; ni < 2; ni++)
        for (int nt = 1; nt <= 3; nt++) {
            int N = Ns[ni], bad = -1;
            for (int i = 0; i < n; i++) {
                matmul(&W[i], X[i], N, want[i], nt);
                for (int j = 0; j < shapes[i][0] * N; j++) got[i][j] = NAN;
            }
            matmul_group(n, Wp, (const float *const *)X, N, got, nt);
            for (int i = 0; i < n; i++)
                if (memcmp(got[i], want[i], sizeof(float) * (size_t)shapes[i][0] * N) != 0) bad = i;
            CHECK(bad < 0, "matmul_group N=%d threads %d: product %d differs from matmul", N, nt, bad);
        }
    for (int i = 0; i < n; i++) free((void *)W[i].data), free(X[i]), free(want[i]), free(got[i]);
}

/* Both decode splits cover a product's rows once, in order, each chunk
 * starting on a 16-row group; the even split has at most one chunk a thread
 * and no chunk shorter than another but the last. */
static void test_matvec_splits(void) {
    const int shapes[][2] = {{768, 768}, {3072, 768}, {300, 256}, {50277, 768}, {100, 64}, {2048, 2048}};
    for (int si = 0; si < 6; si++)
        for (int nt = 1; nt <= 5; nt++)
            for (int even = 0; even < 2; even++) {
                matrix W = {.rows = shapes[si][0], .cols = shapes[si][1], .type = DT_F32};
                const matvec_split s = even ? matvec_split_even(&W, nt) : matvec_split_for(&W, nt);
                int next = 0, ok = s.n_chunks >= 1 && (!even || s.n_chunks <= nt), longest = 0, shorter_at = -1;
                for (int c = 0; c < s.n_chunks && ok; c++) {
                    int r0, r1;
                    matvec_split_range(&s, c, &r0, &r1);
                    ok = r0 == next && r1 > r0 && r0 % 16 == 0;
                    if (r1 - r0 > longest) longest = r1 - r0;
                    if (r1 - r0 < longest && shorter_at < 0) shorter_at = c;
                    next = r1;
                }
                ok = ok && next == W.rows && (!even || shorter_at < 0 || shorter_at == s.n_chunks - 1);
                CHECK(ok, "matvec split (%s) of %d x %d at %d threads: %d chunks do not cover the rows as promised",
                      even ? "even" : "with a tail", W.rows, W.cols, nt, s.n_chunks);
            }
}

/* The rows of a batched step (matmul_batch, matmul_group_batch): one row
 * alone gives the bits it has in a product of several rows (the
 * matrix-matrix kernels, not decode's), with float and with int8
 * activations, on any thread count; with float activations it agrees with
 * decode's product (matmul of one row) to rounding. */
static void test_matmul_batch_one_row(void) {
    const dtype types[] = {DT_F32, DT_F16, DT_BF16, DT_Q8_0, DT_Q5_1, DT_Q4_K};
    enum { ROWS = 72, COLS = 256, N = 5 };
    float *X = malloc(sizeof(float) * COLS * N), *many = malloc(sizeof(float) * ROWS * N);
    float *one = malloc(sizeof(float) * ROWS), *grouped = malloc(sizeof(float) * ROWS), *decode = malloc(sizeof(float) * ROWS);
    for (int i = 0; i < COLS * N; i++) X[i] = gauss();
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (int int8 = 0; int8 <= 1; int8++) {
            matrix W = make_matrix(types[ti], ROWS, COLS);
            const matrix *Wp[] = {&W};
            const float *Xp[] = {X};
            float *const Yp[] = {grouped};
            kernels_set_int8_activations(int8);
            char msg[160] = "";
            for (int nt = 1; nt <= 2 && !msg[0]; nt++) {
                matmul_batch(&W, X, N, many, nt);
                matmul_batch(&W, X, 1, one, 3 - nt);
                matmul_group_batch(1, Wp, Xp, 1, Yp, nt);
                matmul(&W, X, 1, decode, nt);
                for (int r = 0; r < ROWS && !msg[0]; r++) {
                    if (memcmp(&one[r], &many[r], sizeof(float)) != 0 || memcmp(&grouped[r], &one[r], sizeof(float)) != 0)
                        snprintf(msg, sizeof msg, "output %d: alone %.9g, grouped %.9g, in a batch of %d %.9g", r,
                                 one[r], grouped[r], N, many[r]);
                    else if (!int8 && !(fabsf(one[r] - decode[r]) <= 1e-4f * (1.0f + fabsf(decode[r]))))
                        snprintf(msg, sizeof msg, "output %d: %.9g against decode's %.9g", r, one[r], decode[r]);
                }
            }
            kernels_set_int8_activations(0);
            free((void *)W.data);
            CHECK(!msg[0], "%s, int8 activations %d: %s", dtype_name(types[ti]), int8, msg);
        }
    free(X), free(many), free(one), free(grouped), free(decode);
}

static void test_matrix_row(void) {
    for (size_t ti = 0; ti < sizeof mat_types / sizeof mat_types[0]; ti++) {
        const int cols = whole_blocks(mat_types[ti], 96);
        matrix W = make_matrix(mat_types[ti], 3, cols);
        float want[256], got[256];
        size_t rb = dtype_bytes_for(W.type, (uint64_t)cols);
        for (const kernel_ops *const *k = kernels_all(); *k; k++) {
            if (!kernels_cpu_supports((*k)->name)) continue;
            (*k)->row_to_f32(W.type, (const uint8_t *)W.data + 2 * rb, got, cols);
            dtype_to_f32(W.type, (const uint8_t *)W.data + 2 * rb, want, (size_t)cols);
            for (int i = 0; i < cols; i++)
                if (got[i] != want[i]) {
                    free((void *)W.data);
                    CHECK(0, "%s row_to_f32 %s element %d: %g vs %g", (*k)->name, dtype_name(W.type), i,
                          (double)got[i], (double)want[i]);
                }
        }
        free((void *)W.data);
    }
}

/* ---- layer norm, token mix ---------------------------------------------- */

static void test_layernorm_variants(void) {
    const int sizes[] = {1, 7, 8, 15, 16, 17, 33, 768, 1001};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int n = sizes[si];
        float *x = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n),
              *want = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
        float offset = si % 2 ? 1000.0f : 0.0f;
        for (int i = 0; i < n; i++) x[i] = offset + gauss() * 3, w[i] = gauss(), b[i] = gauss();
        layernorm_scalar(x, w, b, n, 1e-5f, want);
        for (const kernel_ops *const *k = kernels_all(); *k; k++) {
            if (!kernels_cpu_supports((*k)->name)) continue;
            (*k)->layernorm(x, w, b, n, 1e-5f, got);
            double e = tol_ratio(got, want, (size_t)n, offset ? 2e-3 : 2e-5, 1e-5);
            if (!(e <= 1)) {
                free(x), free(w), free(b), free(want), free(got);
                CHECK(0, "%s layernorm n=%d: %.3g of tolerance", (*k)->name, n, e);
            }
            memcpy(got, x, sizeof(float) * n); /* in place */
            (*k)->layernorm(got, w, b, n, 1e-5f, got);
            e = tol_ratio(got, want, (size_t)n, offset ? 2e-3 : 2e-5, 1e-5);
            if (!(e <= 1)) {
                free(x), free(w), free(b), free(want), free(got);
                CHECK(0, "%s layernorm in place n=%d: %.3g of tolerance", (*k)->name, n, e);
            }
            float *tm = malloc(sizeof(float) * n);
            (*k)->token_mix(x, b, w, n, got);
            token_mix_scalar(x, b, w, n, tm);
            e = tol_ratio(got, tm, (size_t)n, 1e-6, 1e-6);
            free(tm);
            if (!(e <= 1)) {
                free(x), free(w), free(b), free(want), free(got);
                CHECK(0, "%s token_mix n=%d: %.3g of tolerance", (*k)->name, n, e);
            }
        }
        free(x), free(w), free(b), free(want), free(got);
    }
}

static void test_elementwise_variants(void) {
    const size_t sizes[] = {1, 7, 8, 9, 16, 31, 33, 3072};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        float *r = malloc(sizeof(float) * n), *v = malloc(sizeof(float) * n), *a = malloc(sizeof(float) * n),
              *b = malloc(sizeof(float) * n), *x0 = malloc(sizeof(float) * n);
        for (size_t i = 0; i < n; i++) {
            r[i] = i % 7 == 0 ? uniform(-120, 120) : gauss() * 4; /* includes saturated gates */
            v[i] = gauss();
            x0[i] = gauss() * 2;
        }
        int bad = 0;
        char msg[128] = "";
        for (const kernel_ops *const *k = kernels_all(); *k && !bad; k++) {
            if (!kernels_cpu_supports((*k)->name)) continue;
            memcpy(a, x0, sizeof(float) * n), memcpy(b, x0, sizeof(float) * n);
            (*k)->relu_square(a, n);
            relu_square_scalar(b, n);
            if (tol_ratio(a, b, n, 0, 1e-7) > 1) bad = 1, snprintf(msg, sizeof msg, "%s relu_square n=%zu", (*k)->name, n);
            memcpy(a, x0, sizeof(float) * n), memcpy(b, x0, sizeof(float) * n);
            (*k)->sigmoid_mul(a, r, n);
            sigmoid_mul_scalar(b, r, n);
            if (!bad && tol_ratio(a, b, n, 1e-30, 4e-7) > 1)
                bad = 1, snprintf(msg, sizeof msg, "%s sigmoid_mul n=%zu: %.3g", (*k)->name, n, tol_ratio(a, b, n, 1e-30, 4e-7));
            memcpy(a, r, sizeof(float) * n), memcpy(b, r, sizeof(float) * n);
            (*k)->sigmoid(a, n);
            sigmoid_scalar(b, n);
            if (!bad && tol_ratio(a, b, n, 1e-30, 4e-7) > 1) bad = 1, snprintf(msg, sizeof msg, "%s sigmoid n=%zu", (*k)->name, n);
            memcpy(a, r, sizeof(float) * n), memcpy(b, r, sizeof(float) * n);
            (*k)->exp(a, n);
            exp_scalar(b, n);
            if (!bad && tol_ratio(a, b, n, 1e-37, 4e-7) > 1) bad = 1, snprintf(msg, sizeof msg, "%s exp n=%zu", (*k)->name, n);
            memcpy(a, x0, sizeof(float) * n), memcpy(b, x0, sizeof(float) * n);
            (*k)->add_sigmoid_mul(a, r, v, n);
            add_sigmoid_mul_scalar(b, r, v, n);
            if (!bad && tol_ratio(a, b, n, 1e-6, 1e-6) > 1) bad = 1, snprintf(msg, sizeof msg, "%s add_sigmoid_mul n=%zu", (*k)->name, n);
        }
        free(r), free(v), free(a), free(b), free(x0);
        CHECK(!bad, "%s", msg);
    }
}

/* ---- quantization ------------------------------------------------------- */

static void test_quantize_error_bounds(void) {
    const dtype types[] = {DT_Q8_0, DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1};
    /* worst |x - deq| in units of the block's range (max|x| for the symmetric types, max-min for _1) */
    const double bound[] = {0.5 / 127 + 1e-3, 1.0 / 8 + 1e-3, 0.5 / 15 + 1e-3, 1.0 / 16 + 1e-3, 0.5 / 31 + 1e-3};
    enum { N = 32 * 64 };
    static float x[N], back[N];
    static uint8_t q[N * 2];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        for (int trial = 0; trial < 3; trial++) {
            for (int i = 0; i < N; i++) x[i] = trial == 2 ? (i % 64 < 32 ? 0.0f : gauss() * 1e-3f) : gauss() * (trial + 1);
            CHECK(quantize_row(types[ti], x, q, N) == 0, "quantize_row %s", dtype_name(types[ti]));
            dtype_to_f32(types[ti], q, back, N);
            double sq = 0, sx = 0;
            for (int b = 0; b < N / 32; b++) {
                float mx = 0, mn = x[b * 32], am = 0;
                for (int j = 0; j < 32; j++) {
                    float v = x[b * 32 + j];
                    mx = v > mx || j == 0 ? v : mx;
                    mn = v < mn ? v : mn;
                    am = fabsf(v) > am ? fabsf(v) : am;
                }
                double range = ti == 2 || ti == 4 ? (double)mx - mn : am;
                for (int j = 0; j < 32; j++) {
                    double e = fabs((double)x[b * 32 + j] - back[b * 32 + j]);
                    sq += e * e;
                    sx += (double)x[b * 32 + j] * x[b * 32 + j];
                    CHECK(e <= bound[ti] * range + 1e-12, "%s block %d element %d: error %g > %g", dtype_name(types[ti]),
                          b, j, e, bound[ti] * range);
                }
            }
            if (trial < 2) {
                double rel = sqrt(sq / sx); /* typical relative RMS error for gaussian data */
                const double rel_max[] = {0.006, 0.12, 0.1, 0.06, 0.05};
                CHECK(rel < rel_max[ti], "%s relative RMS error %.4f", dtype_name(types[ti]), rel);
            }
        }
    }
    /* exactly representable values survive Q8_0 unchanged */
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) * 0.25f;
    x[5] = -127 * 0.25f;
    quantize_row(DT_Q8_0, x, q, 32);
    dtype_to_f32(DT_Q8_0, q, back, 32);
    for (int i = 0; i < 32; i++) CHECK(back[i] == x[i], "Q8_0 exact value %d: %g vs %g", i, (double)back[i], (double)x[i]);
    CHECK(quantize_row(DT_F16, x, q, 32) == -1, "non-block type must be refused");
}

/* The k-quants' max-scale quantizer: every weight within half a step of the sub-block scale the
 * quantizer could reach, from the super-block's range (quant.c):
 * Q4_K/Q5_K (ceil-rounded scales) |e| <= 0.52 R / top with R the largest
 * sub-block range [min(0, x), max(0, x)]; Q6_K |e| <= A (1/32 + 1/256 + 2^-13)
 * with A = max|x| of the super-block (one step at the clipped extreme, as Q4_0,
 * plus the sub-scale rounding); both plus 32 f16 subnormal steps. */
static void test_kquant_error_bounds(void) {
    const dtype types[] = {DT_Q4_K, DT_Q5_K, DT_Q6_K};
    enum { N = 256 * 16 };
    static float x[N], back[N];
    static uint8_t q[N];
    for (size_t ti = 0; ti < 3; ti++) {
        const dtype t = types[ti];
        for (int trial = 0; trial < 4; trial++) {
            for (int i = 0; i < N; i++)
                x[i] = trial == 2 ? (i % 64 < 32 ? 0.0f : gauss() * 1e-3f)
                     : trial == 3 ? gauss() * (float)(1 + (i / 32) % 8) + 0.5f /* uneven sub-blocks, offset */
                                  : gauss() * (float)(trial + 1);
            CHECK(quantize_row_scales(t, x, q, N, KQUANT_MAX_SCALE) == 0, "quantize_row %s", dtype_name(t));
            dtype_to_f32(t, q, back, N);
            double sq = 0, sx = 0;
            for (int b = 0; b < N / 256; b++) {
                const float *xb = x + 256 * b;
                double R = 0, A = 0;
                for (int j = 0; j < 8; j++) {
                    float mn = 0, mx = 0;
                    for (int l = 0; l < 32; l++) mn = fminf(mn, xb[32 * j + l]), mx = fmaxf(mx, xb[32 * j + l]);
                    R = fmax(R, (double)mx - mn);
                }
                for (int l = 0; l < 256; l++) A = fmax(A, fabs(xb[l]));
                double bound = t == DT_Q6_K ? A * (1.0 / 32 + 1.0 / 256 + 1.0 / 8192) : 0.52 * R / (t == DT_Q4_K ? 15 : 31);
                bound += 32.0 / 16777216.0; /* 32 codes of an f16 scale's subnormal step (tiny blocks) */
                for (int l = 0; l < 256; l++) {
                    double e = fabs((double)xb[l] - back[256 * b + l]);
                    sq += e * e;
                    sx += (double)xb[l] * xb[l];
                    CHECK(e <= bound, "%s trial %d super-block %d element %d: error %g > %g", dtype_name(t),
                          trial, b, l, e, bound);
                }
            }
            if (trial < 2) {
                const double rel_max[] = {0.1, 0.05, 0.03};
                CHECK(sqrt(sq / sx) < rel_max[ti], "%s relative RMS error %.4f", dtype_name(t), sqrt(sq / sx));
            }
        }
        CHECK(quantize_row(t, x, q, 128) == -1, "%s: 128 values are not a whole super-block", dtype_name(t));
    }
}

/* RMS error of t's round trip of x (n values). */
static double kquant_rms(dtype t, const float *x, int n, kquant_scales how, uint8_t *q, float *back) {
    quantize_row_scales(t, x, q, (size_t)n, how);
    dtype_to_f32(t, q, back, (size_t)n);
    double sq = 0;
    for (int i = 0; i < n; i++) sq += ((double)x[i] - back[i]) * ((double)x[i] - back[i]);
    return sqrt(sq / n);
}

/* The searched k-quant scales (what quantize_row writes) against the plain
 * max-scale ones on weight-like data (Gaussian, heavy-tailed with outliers,
 * offset sub-blocks): never worse in RMS error on any of them, and lower
 * overall by a clear margin (about 10-20% on Q4_K/Q5_K, 5% on Q6_K, whose
 * sub-blocks of 16 leave less to gain). */
static void test_kquant_search_beats_max_scale(void) {
    const dtype types[] = {DT_Q4_K, DT_Q5_K, DT_Q6_K};
    enum { N = 256 * 64 };
    static float x[N], back[N];
    static uint8_t q[N];
    for (size_t ti = 0; ti < 3; ti++) {
        const dtype t = types[ti];
        double sum_max = 0, sum_search = 0;
        for (int trial = 0; trial < 3; trial++) {
            for (int i = 0; i < N; i++) {
                const float g = gauss();
                x[i] = trial == 0   ? g
                     : trial == 1 ? g * g * g /* heavy tails: a few outliers per block */
                                  : g * (float)(1 + (i / 32) % 8) + 0.5f;
            }
            const double e_max = kquant_rms(t, x, N, KQUANT_MAX_SCALE, q, back);
            const double e_search = kquant_rms(t, x, N, KQUANT_SEARCH, q, back);
            printf("# %s trial %d: RMS error max-scale %.5g, searched %.5g (%+.1f%%)\n", dtype_name(t), trial, e_max,
                   e_search, 100 * (e_search / e_max - 1));
            CHECK(e_search <= e_max, "%s trial %d: the search (%g) is worse than the max scale (%g)", dtype_name(t),
                  trial, e_search, e_max);
            sum_max += e_max, sum_search += e_search;
        }
        const double margin = t == DT_Q6_K ? 0.02 : 0.05;
        CHECK(sum_search < (1 - margin) * sum_max, "%s: the search gains less than %.0f%% (%g vs %g)", dtype_name(t),
              100 * margin, sum_search, sum_max);
    }
}

/* rwkv_quantize writes an rwkv.cpp file that loads back: f32 bit-exact,
 * q8_0 close to the source model's logits (rwkv.cpp's tiny RWKV-4). */
static void test_quantize_file_round_trip(void) {
    char src[512];
    if (!shared_path(src, sizeof src, "reference/rwkv-cpp/tiny-rwkv-4v0-660K-FP32.bin")) SKIP("%s not found", src);
    const char *types[] = {"f32", "q8_0", "q4_0"};
    const double max_err[] = {1e-5, 0.05, 0.5};
    float ref[256], got[256];
    const int toks[] = {34, 105, 110, 32, 116, 104, 101};
    rwkv_error err;
    for (int ti = 0; ti < 3; ti++) {
        char out[64];
        snprintf(out, sizeof out, "/tmp/rwkv-test-quant-%d-%s.bin", (int)getpid(), types[ti]);
        rwkv_quant_type qt;
        CHECK(rwkv_quant_type_parse(types[ti], &qt) == 0, "parse %s", types[ti]);
        CHECK(rwkv_quantize(src, out, qt, &err) == RWKV_OK, "quantize %s: %s", types[ti], err.message);
        const char *paths[2] = {src, out};
        float *dst[2] = {ref, got};
        for (int m = 0; m < 2; m++) {
            rwkv_model *model;
            rwkv_state *st;
            CHECK(rwkv_model_load(paths[m], &model, &err) == RWKV_OK, "load %s: %s", paths[m], err.message);
            rwkv_model_set_threads(model, 1);
            CHECK(rwkv_state_new(model, &st, &err) == RWKV_OK, "state");
            rwkv_status s = rwkv_eval_sequence(model, st, toks, 7, dst[m], 0, &err);
            rwkv_state_free(st);
            rwkv_model_free(model);
            CHECK(s == RWKV_OK, "eval %s", paths[m]);
        }
        remove(out);
        double worst = 0;
        for (int i = 0; i < 256; i++) worst = fmax(worst, fabs((double)got[i] - ref[i]));
        CHECK(worst <= max_err[ti], "%s: max |logit difference| %g > %g", types[ti], worst, max_err[ti]);
    }
}

/* The pool's loops run every chunk (and every row of the row loops) exactly
 * once, dynamic and pinned alike, at any number of threads and chunks
 * (pinned loops of more chunks than their mask holds included), call after
 * call. */
typedef struct run_counts {
    _Atomic int runs[300]; /* per chunk or row */
} run_counts;

static void count_run(void *p, int i) {
    run_counts *k = p;
    atomic_fetch_add(&k->runs[i], 1);
}

static void test_pool_loops(void) {
    int bad = 0;
    for (int pinned = 0; pinned < 2; pinned++) /* rows: large enough to be shared (PARALLEL_MIN_WORK) */
        for (int nt = 1; nt <= 12; nt++)
            for (int n = 1; n <= 300; n += 13) {
                run_counts k;
                for (int r = 0; r < n; r++) atomic_init(&k.runs[r], 0);
                if (pinned) parallel_rows_pinned(nt, n, PARALLEL_MIN_WORK, count_run, &k);
                else parallel_rows(nt, n, PARALLEL_MIN_WORK, count_run, &k);
                for (int r = 0; r < n; r++)
                    if (atomic_load(&k.runs[r]) != 1 && !bad++)
                        CHECK(0, "%s rows, %d threads, %d rows: row %d ran %d times", pinned ? "pinned" : "dynamic", nt, n,
                              r, atomic_load(&k.runs[r]));
            }
    for (int pinned = 0; pinned < 2; pinned++)
        for (int nt = 1; nt <= 4; nt++)
            for (int n = 1; n <= PARALLEL_PINNED_MAX + 8; n++)
                for (int rep = 0; rep < 20; rep++) {
                    run_counts k;
                    for (int c = 0; c < n; c++) atomic_init(&k.runs[c], 0);
                    if (pinned) parallel_for_pinned(nt, n, count_run, &k);
                    else parallel_for(nt, n, count_run, &k);
                    for (int c = 0; c < n; c++)
                        if (atomic_load(&k.runs[c]) != 1 && !bad++)
                            CHECK(0, "%s loop, %d threads, %d chunks: chunk %d ran %d times",
                                  pinned ? "pinned" : "dynamic", nt, n, c, atomic_load(&k.runs[c]));
                }
    CHECK(!bad, "%d chunk counts wrong", bad);
}

/* A chunk that takes c + 1 ms: the caller, done with its own chunk, waits
 * longer than it spins and sleeps, and the worker that finishes the last
 * chunk must wake it (a missed wake-up hangs here). */
static void slow_chunk(void *p, int c) {
    run_counts *k = p;
    const struct timespec ts = {0, (long)(c + 1) * 1000000L};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&k->runs[c], 1);
}

static void test_pool_caller_sleeps(void) {
    int bad = 0;
    for (int rep = 0; rep < 20; rep++)
        for (int pinned = 0; pinned < 2; pinned++) {
            run_counts k;
            for (int c = 0; c < 2; c++) atomic_init(&k.runs[c], 0);
            if (pinned) parallel_for_pinned(2, 2, slow_chunk, &k);
            else parallel_for(2, 2, slow_chunk, &k);
            bad += atomic_load(&k.runs[0]) != 1 || atomic_load(&k.runs[1]) != 1;
        }
    CHECK(!bad, "%d loops with long chunks ran a chunk other than once", bad);
}

static void test_dispatch(void) {
    CHECK(kernels_get("scalar") != NULL, "scalar always available");
    CHECK(kernels_get("nonsense") == NULL, "unknown variant");
    const kernel_ops *a = kernels_active();
    CHECK(kernels_select("scalar") == 0 && kernels_active() == kernels_get("scalar"), "select scalar");
    CHECK(kernels_select(a->name) == 0, "restore %s", a->name);
    printf("# active kernels: %s\n", a->name);
    for (const kernel_ops *const *k = kernels_all(); *k; k++) {
        const kernel_ops *t = *k;
        CHECK(t->matvec_rows && t->row_to_f32 && t->mm.run && t->mm.mr > 0 && t->mm.nr > 0 && t->pack &&
                  t->layernorm && t->token_mix && t->relu_square && t->sigmoid_mul && t->sigmoid && t->exp && t->add_sigmoid_mul &&
                  t->wkv4_forward && t->wkv5_row && t->wkv7_row,
              "table %s leaves a slot empty", t->name);
    }
}

/* RUN plus the test's CPU time on a comment line (the suite must stay fast, also under ASan) */
#define TIMED(fn)                                                                                  \
    do {                                                                                           \
        clock_t c0_ = clock();                                                                     \
        RUN(fn);                                                                                   \
        printf("# %s: %.2f s\n", #fn, (double)(clock() - c0_) / CLOCKS_PER_SEC);                  \
    } while (0)

int main(void) {
    /* the float-activation decode kernels (the integer path of the block
     * formats has its own tests: tests/test_dot_int8.c) */
    kernels_set_int8_activations(0);
    TIMED(test_dispatch);
    TIMED(test_pool_loops);
    TIMED(test_pool_caller_sleeps);
    TIMED(test_f16_all_patterns_round_trip);
    TIMED(test_f32_to_f16_rounding);
    TIMED(test_f32_to_bf16_rounding);
    TIMED(test_matrix_row);
    TIMED(test_matvec_variants);
    TIMED(test_matvec_misaligned);
    TIMED(test_matmul_odd_address);
    TIMED(test_matmul_variants);
    TIMED(test_matmul_bf16);
    TIMED(test_matmul_packed_panels);
    TIMED(test_matmul_group);
    TIMED(test_matvec_splits);
    TIMED(test_matmul_batch_one_row);
    TIMED(test_layernorm_variants);
    TIMED(test_elementwise_variants);
    TIMED(test_quantize_error_bounds);
    TIMED(test_kquant_error_bounds);
    TIMED(test_kquant_q8_exact_activations);
    TIMED(test_kquant_q8_refuses_non_finite);
    TIMED(test_kquant_avx2_groups);
    TIMED(test_kquant_search_beats_max_scale);
    TIMED(test_quantize_file_round_trip);
    return test_summary();
}
