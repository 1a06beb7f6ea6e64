/* Checkpoint readers: .pth (zip + pickle), safetensors and rwkv.cpp files.
 *
 * Real files: every .pth of the shared vector cases must give exactly the
 * numbers of the case's safetensors files; rwkv.cpp FP32/FP16/Q5 files of one
 * model must agree within their rounding. Synthetic files, written here byte
 * by byte, cover what the real ones do not (strided views, storage offsets,
 * ZIP64, long memo indices, forbidden globals, broken headers). Finally every
 * reader is fed truncated and corrupted copies of real files: it must return
 * an error naming the file, never crash (this program also runs under
 * ASan+UBSan). */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "formats/formats.h"
#include "formats/undo.h"
#include "model/load.h"
#include "formats/pickle.h"
#include "formats/zip.h"
#include "pth_build.h"
#include "test.h"

/* ------------------------------------------------------------------------ */
/* Temp files                                                               */
/* ------------------------------------------------------------------------ */

/* Writes data to a fresh temp file; its name goes to path (>= 32 bytes). */
static int write_temp(const void *data, size_t n, char *path) {
    strcpy(path, "/tmp/rwkv-test-formats-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    int ok = write(fd, data, n) == (ssize_t)n;
    close(fd);
    return ok;
}

static int read_whole(const char *path, bytes *out) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) b_put(out, buf, n);
    fclose(f);
    return 1;
}

/* Loads bytes written to a temp file; the status, and the message in err. */
static rwkv_status load_bytes(const bytes *b, tensor_set *set, rwkv_error *err, char *path) {
    if (!write_temp(b->p, b->n, path)) return rwkv_fail(err, RWKV_ERR_IO, "cannot write temp file");
    return checkpoint_read(path, set, err);
}

/* An error result: a failure status and a one-line message naming the file. */
static int is_error_for(rwkv_status s, const rwkv_error *err, const char *path) {
    return s != RWKV_OK && err->code == s && err->message[0] && strstr(err->message, path) &&
           !strchr(err->message, '\n');
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static float *to_f32(const tensor *t) {
    size_t n = (size_t)tensor_numel(t);
    float *f = malloc(n * sizeof(float) + 4);
    if (f) dtype_to_f32(t->type, t->data, f, n);
    return f;
}

/* The synthetic state dict, over storage "0" = 0..9 (f32) and "1" = {1.5, -2} (f16):
 *   a      [2,3] offset 1, contiguous             -> 1 2 3 / 4 5 6
 *   b      [3,2] offset 1, strides (1,3): a.T     -> 1 4 / 2 5 / 3 6
 *   c      nn.Parameter over storage 1, [2]       -> 1.5 -2
 *   scalar 0-d, offset 9                          -> 9
 * plus non-tensor values (an int, a list) and a BUILD with module metadata. */
static void synthetic_pickle(bytes *b) {
    static const tdesc a = {"FloatStorage", "0", 10, 1, 2, {2, 3}, {3, 1}};
    static const tdesc bt = {"FloatStorage", "0", 10, 1, 2, {3, 2}, {1, 3}};
    static const tdesc c = {"HalfStorage", "1", 2, 0, 1, {2}, {1}};
    static const tdesc sc = {"FloatStorage", "0", 10, 9, 0, {0}, {0}};
    p_begin_odict(b);
    b_u8(b, '(');
    p_str(b, "a");
    p_tensor(b, &a, 1);
    p_str(b, "b");
    p_tensor(b, &bt, 0);
    p_str(b, "step");
    p_int(b, 5);
    p_str(b, "c");
    p_global(b, "torch._utils", "_rebuild_parameter");
    p_tensor(b, &c, 0);
    b_u8(b, 0x88);
    p_get(b, MEMO_ODICT);
    b_u8(b, ')');
    b_u8(b, 'R');
    b_u8(b, 0x87);
    b_u8(b, 'R');
    b_u8(b, 'u');
    p_str(b, "meta");
    b_u8(b, ']');
    b_u8(b, '(');
    p_int(b, 1);
    p_int(b, 100000);
    b_u8(b, 'N');
    b_u8(b, 'e');
    b_u8(b, 's');
    p_str(b, "scalar");
    p_tensor(b, &sc, 0);
    b_u8(b, 's');
    b_u8(b, '}'); /* BUILD state, as module.state_dict() writes _metadata */
    p_str(b, "_metadata");
    b_u8(b, '}');
    b_u8(b, 's');
    b_u8(b, 'b');
    b_u8(b, '.');
}

static void synthetic_storages(float s0[10], uint16_t s1[2]) {
    for (int i = 0; i < 10; i++) s0[i] = (float)i;
    s1[0] = f32_to_f16(1.5f);
    s1[1] = f32_to_f16(-2.0f);
}

/* A .pth zip around `pkl` with the synthetic storages and the usual extra records. */
static void synthetic_pth(bytes *z, const bytes *pkl, int zip64, const char *byteorder) {
    float s0[10];
    uint16_t s1[2];
    synthetic_storages(s0, s1);
    member m[] = {
        {"archive/data.pkl", pkl->p, pkl->n, 0},
        {"archive/byteorder", byteorder, strlen(byteorder), 0},
        {"archive/data/0", s0, sizeof s0, 0},
        {"archive/data/1", s1, sizeof s1, 0},
        {"archive/version", "3\n", 2, 0},
        {"archive/.data/serialization_id", "1234567890", 10, 0},
        {"archive/.format_version", "1", 1, 0},
        {"archive/.storage_alignment", "64", 2, 0},
    };
    zip_build(z, m, (int)(sizeof m / sizeof m[0]), zip64);
}

/* ------------------------------------------------------------------------ */
/* Real files: .pth against safetensors                                     */
/* ------------------------------------------------------------------------ */

static int compare_exact(const tensor_set *a, const tensor_set *b, char *msg, size_t msz) {
    if (a->count != b->count) {
        snprintf(msg, msz, "%d tensors vs %d", a->count, b->count);
        return 0;
    }
    for (int i = 0; i < a->count; i++) {
        const tensor *x = &a->tensors[i], *y = tensor_set_find(b, x->name);
        if (!y || x->ndim != y->ndim || memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim) != 0) {
            snprintf(msg, msz, "tensor '%s' missing or of another shape", x->name);
            return 0;
        }
        if (!dtype_is_float(x->type) || !dtype_is_float(y->type)) {
            snprintf(msg, msz, "tensor '%s' is not float", x->name);
            return 0;
        }
        size_t n = (size_t)tensor_numel(x);
        float *fx = to_f32(x), *fy = to_f32(y);
        int eq = fx && fy && memcmp(fx, fy, n * sizeof(float)) == 0;
        free(fx);
        free(fy);
        if (!eq) {
            snprintf(msg, msz, "tensor '%s' holds other numbers", x->name);
            return 0;
        }
    }
    return 1;
}

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Every model.*.pth of one case folder against every model.*.safetensors. */
static int compare_case(const char *dir, int *pairs, char *msg, size_t msz) {
    DIR *d = opendir(dir);
    if (!d) return 1;
    char names[32][256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 32)
        if (strncmp(e->d_name, "model.", 6) == 0 && strlen(e->d_name) < 256) strcpy(names[n++], e->d_name);
    closedir(d);
    for (int i = 0; i < n; i++) {
        if (!has_suffix(names[i], ".pth")) continue;
        for (int j = 0; j < n; j++) {
            if (!has_suffix(names[j], ".safetensors")) continue;
            char pa[1400], pb[1400];
            snprintf(pa, sizeof pa, "%.1000s/%.255s", dir, names[i]);
            snprintf(pb, sizeof pb, "%.1000s/%.255s", dir, names[j]);
            tensor_set a, b;
            rwkv_error err;
            if (checkpoint_read(pa, &a, &err) != RWKV_OK) {
                snprintf(msg, msz, "%s", err.message);
                return 0;
            }
            if (checkpoint_read(pb, &b, &err) != RWKV_OK) {
                tensor_set_free(&a);
                snprintf(msg, msz, "%s", err.message);
                return 0;
            }
            char why[300] = "";
            int ok = strcmp(a.format, "pth") == 0 && compare_exact(&a, &b, why, sizeof why);
            tensor_set_free(&a);
            tensor_set_free(&b);
            if (!ok) {
                snprintf(msg, msz, "%.200s vs %.200s: %.300s", pa, pb, why);
                return 0;
            }
            (*pairs)++;
        }
    }
    return 1;
}

static void test_pth_matches_safetensors(void) {
    char root[1024];
    if (!shared_path(root, sizeof root, "testvectors")) SKIP("%.900s not found", root);
    DIR *d = opendir(root);
    CHECK(d, "cannot open %s", root);
    char dirs[64][512];
    int nd = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nd < 64) {
        if (strncmp(e->d_name, "rwkv", 4) != 0) continue;
        char vdir[1200];
        snprintf(vdir, sizeof vdir, "%.900s/%.255s", root, e->d_name);
        DIR *v = opendir(vdir);
        if (!v) continue;
        struct dirent *c;
        while ((c = readdir(v)) && nd < 64)
            if (c->d_name[0] != '.' && strlen(vdir) + strlen(c->d_name) + 2 < sizeof dirs[0])
                snprintf(dirs[nd++], sizeof dirs[0], "%.250s/%.250s", vdir, c->d_name);
        closedir(v);
    }
    closedir(d);
    int pairs = 0;
    for (int i = 0; i < nd; i++) {
        char msg[800] = "";
        CHECK(compare_case(dirs[i], &pairs, msg, sizeof msg), "%s", msg);
    }
    CHECK(pairs >= 10, "only %d pth/safetensors pairs compared", pairs);
}

/* ------------------------------------------------------------------------ */
/* Real files: rwkv.cpp                                                      */
/* ------------------------------------------------------------------------ */

static int load_cpp(const char *file, tensor_set *set, char *path, size_t psz, rwkv_error *err) {
    char rel[256];
    snprintf(rel, sizeof rel, "reference/rwkv-cpp/%s", file);
    if (!shared_path(path, psz, rel)) return -1;
    return checkpoint_read(path, set, err) == RWKV_OK;
}

/* d = -exp(θ) read straight from the file bytes (FP32 file, 1-D tensor: the
 * data follows the name). */
static int raw_decay(const char *path, const char *name, float *out, int n) {
    bytes f = {0};
    if (!read_whole(path, &f)) return 0;
    size_t nl = strlen(name);
    int ok = 0;
    for (size_t i = 0; i + nl + 4 * (size_t)n <= f.n; i++)
        if (memcmp(f.p + i, name, nl) == 0) {
            memcpy(out, f.p + i + nl, 4 * (size_t)n);
            ok = 1;
            break;
        }
    b_free(&f);
    return ok;
}

static void test_rwkvcpp_v4_official_form(void) {
    char path[1024];
    tensor_set s;
    rwkv_error err;
    int r = load_cpp("tiny-rwkv-4v0-660K-FP32.bin", &s, path, sizeof path, &err);
    if (r < 0) SKIP("%.900s not found", path);
    CHECK(r == 1, "%s", err.message);
    const tensor *emb = tensor_set_find(&s, "emb.weight"), *mix = tensor_set_find(&s, "blocks.2.att.time_mix_k"),
                 *fmix = tensor_set_find(&s, "blocks.1.ffn.time_mix_r"),
                 *dec = tensor_set_find(&s, "blocks.0.att.time_decay"),
                 *key = tensor_set_find(&s, "blocks.0.ffn.key.weight");
    int ok = strcmp(s.format, "rwkv.cpp") == 0 && s.count == 78 && emb && emb->ndim == 2 && emb->shape[0] == 256 &&
             emb->shape[1] == 128 && mix && mix->ndim == 3 && mix->shape[0] == 1 && mix->shape[1] == 1 &&
             mix->shape[2] == 128 && fmix && fmix->ndim == 3 && dec && dec->ndim == 1 && dec->shape[0] == 128 &&
             dec->type == DT_F32 && key && key->ndim == 2 && key->shape[0] == 256 && key->shape[1] == 128;
    float raw[128], theta[128];
    if (ok) memcpy(theta, dec->data, sizeof theta);
    tensor_set_free(&s);
    CHECK(ok, "unexpected names, shapes or types");
    CHECK(raw_decay(path, "blocks.0.att.time_decay", raw, 128), "time_decay not found in the file bytes");
    for (int i = 0; i < 128; i++) {
        float back = -expf(theta[i]);
        CHECK(isfinite(theta[i]) && fabsf(back - raw[i]) <= 1e-6f * fabsf(raw[i]) + 1e-30f,
              "time_decay[%d]: stored %g, theta %g gives %g", i, (double)raw[i], (double)theta[i], (double)back);
    }
}

/* Within fp16 rounding of the FP32 values (|e| <= 2^-11 |x|). */
static void test_rwkvcpp_fp16_matches_fp32(void) {
    char p32[1024], p16[1024];
    tensor_set a, b;
    rwkv_error err;
    int r = load_cpp("tiny-rwkv-4v0-660K-FP32.bin", &a, p32, sizeof p32, &err);
    if (r < 0) SKIP("%.900s not found", p32);
    CHECK(r == 1, "%s", err.message);
    r = load_cpp("tiny-rwkv-4v0-660K-FP16.bin", &b, p16, sizeof p16, &err);
    if (r != 1) tensor_set_free(&a);
    if (r < 0) SKIP("%.900s not found", p16);
    CHECK(r == 1, "%s", err.message);
    char msg[300] = "";
    int n16 = 0;
    for (int i = 0; i < a.count && !msg[0]; i++) {
        const tensor *x = &a.tensors[i], *y = tensor_set_find(&b, x->name);
        if (!y || y->ndim != x->ndim || memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim)) {
            snprintf(msg, sizeof msg, "'%s' missing or reshaped in the FP16 file", x->name);
            break;
        }
        n16 += y->type == DT_F16;
        float *fx = to_f32(x), *fy = to_f32(y);
        double worst = tol_ratio(fy, fx, (size_t)tensor_numel(x), 3e-8, 4.9e-4);
        if (!(worst <= 1)) snprintf(msg, sizeof msg, "'%s' differs beyond fp16 rounding (ratio %g)", x->name, worst);
        free(fx);
        free(fy);
    }
    int count_equal = a.count == b.count;
    tensor_set_free(&a);
    tensor_set_free(&b);
    CHECK(!msg[0], "%s", msg);
    CHECK(count_equal && n16 >= 20, "tensor counts differ or too few f16 tensors (%d)", n16);
}

/* Quantized blocks dequantise to within a fraction of each block's range. */
static void check_quantized(const char *file, dtype want) {
    char p32[1024], pq[1024];
    tensor_set a, q;
    rwkv_error err;
    int r = load_cpp("tiny-rwkv-4v0-660K-FP32.bin", &a, p32, sizeof p32, &err);
    if (r < 0) SKIP("%.900s not found", p32);
    CHECK(r == 1, "%s", err.message);
    r = load_cpp(file, &q, pq, sizeof pq, &err);
    if (r != 1) tensor_set_free(&a);
    if (r < 0) SKIP("%.900s not found", pq);
    CHECK(r == 1, "%s", err.message);
    char msg[300] = "";
    int nq = 0;
    for (int i = 0; i < a.count && !msg[0]; i++) {
        const tensor *x = &a.tensors[i], *y = tensor_set_find(&q, x->name);
        if (!y || y->ndim != x->ndim || memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim)) {
            snprintf(msg, sizeof msg, "'%s' missing or reshaped", x->name);
            break;
        }
        size_t n = (size_t)tensor_numel(x);
        float *fx = to_f32(x), *fy = to_f32(y);
        if (dtype_is_block(y->type)) {
            nq++;
            if (y->type != want) snprintf(msg, sizeof msg, "'%s' is %s", x->name, dtype_name(y->type));
            for (size_t blk = 0; blk < n / 32 && !msg[0]; blk++) {
                float m = 0;
                for (int j = 0; j < 32; j++) m = fmaxf(m, fabsf(fx[blk * 32 + j]));
                for (int j = 0; j < 32; j++) {
                    float d = fabsf(fy[blk * 32 + j] - fx[blk * 32 + j]);
                    if (!(d <= m / 8 + 1e-6f)) {
                        snprintf(msg, sizeof msg, "'%s'[%zu]: %g vs %g (block max %g)", x->name, blk * 32 + j,
                                 (double)fy[blk * 32 + j], (double)fx[blk * 32 + j], (double)m);
                        break;
                    }
                }
            }
        } else if (!(tol_ratio(fy, fx, n, 3e-8, 4.9e-4) <= 1)) {
            snprintf(msg, sizeof msg, "unquantized '%s' differs", x->name);
        }
        free(fx);
        free(fy);
    }
    tensor_set_free(&a);
    tensor_set_free(&q);
    CHECK(!msg[0], "%s: %s", file, msg);
    CHECK(nq >= 20, "%s: only %d quantized tensors", file, nq);
}
static void test_rwkvcpp_q5_0_near_fp32(void) { check_quantized("tiny-rwkv-4v0-660K-Q5_0.bin", DT_Q5_0); }
static void test_rwkvcpp_q5_1_near_fp32(void) { check_quantized("tiny-rwkv-4v0-660K-Q5_1.bin", DT_Q5_1); }

/* RWKV-5/6/7 rwkv.cpp files come back in the official checkpoint form
 * (rwkv.cpp README, "Transformations baked in by the converter"). */
static void test_rwkvcpp_later_versions_official_form(void) {
    char path[1024];
    tensor_set s;
    rwkv_error err;
    /* v7: packed mixes split, low-rank matrices back to [in, out] */
    int r = load_cpp("tiny-rwkv-7v0-834K-FP16.bin", &s, path, sizeof path, &err);
    if (r < 0) SKIP("%.900s not found", path);
    CHECK(r == 1, "%s", err.message);
    const tensor *xr = tensor_set_find(&s, "blocks.3.att.x_g"), *w1 = tensor_set_find(&s, "blocks.3.att.w1");
    const tensor *emb = tensor_set_find(&s, "emb.weight");
    int ok = xr && w1 && emb && !tensor_set_find(&s, "blocks.3.att.x_rwkvag") && xr->ndim == 3 &&
             xr->shape[2] == emb->shape[1] && w1->ndim == 2 && w1->shape[0] == emb->shape[1];
    tensor_set_free(&s);
    CHECK(ok, "v7: expected att.x_g [1, 1, C], att.w1 [C, D] and no att.x_rwkvag");
    /* v5.2: time_decay back to θ, i.e. exp(-exp(θ)) is what the file stores */
    r = load_cpp("tiny-rwkv-5v2-730K-FP32.bin", &s, path, sizeof path, &err);
    CHECK(r == 1, "%s", err.message);
    const tensor *td = tensor_set_find(&s, "blocks.0.att.time_decay");
    ok = td && td->type == DT_F32;
    for (int64_t i = 0; ok && i < tensor_numel(td); i++) {
        float w = expf(-expf(((const float *)td->data)[i]));
        ok = w > 0.0f && w < 1.0f;
    }
    tensor_set_free(&s);
    CHECK(ok, "v5.2: time_decay is not an official θ");
    /* v6: the token-shift LoRA back to [C, 5 Dm] */
    r = load_cpp("tiny-rwkv-6v0-3m-Q5_0.bin", &s, path, sizeof path, &err);
    CHECK(r == 1, "%s", err.message);
    const tensor *m1 = tensor_set_find(&s, "blocks.0.att.time_maa_w1");
    emb = tensor_set_find(&s, "emb.weight");
    ok = m1 && emb && m1->ndim == 2 && m1->shape[0] == emb->shape[1] && m1->type == DT_F32;
    tensor_set_free(&s);
    CHECK(ok, "v6: expected att.time_maa_w1 [C, 5 Dm] in f32");
}

/* ------------------------------------------------------------------------ */
/* Synthetic .pth files                                                      */
/* ------------------------------------------------------------------------ */

static void check_synthetic(int zip64) {
    bytes pkl = {0}, z = {0};
    synthetic_pickle(&pkl);
    synthetic_pth(&z, &pkl, zip64, "little");
    char path[64];
    tensor_set s;
    rwkv_error err;
    rwkv_status st = load_bytes(&z, &s, &err, path);
    unlink(path);
    b_free(&pkl);
    b_free(&z);
    CHECK(st == RWKV_OK, "%s", err.message);
    const tensor *a = tensor_set_find(&s, "a"), *b = tensor_set_find(&s, "b"), *c = tensor_set_find(&s, "c"),
                 *sc = tensor_set_find(&s, "scalar");
    int shapes = s.count == 4 && strcmp(s.format, "pth") == 0 && a && b && c && sc && a->type == DT_F32 &&
                 a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3 && b->ndim == 2 && b->shape[0] == 3 &&
                 b->shape[1] == 2 && c->type == DT_F16 && c->ndim == 1 && c->shape[0] == 2 && sc->ndim == 0 &&
                 sc->nbytes == 4;
    float av[6] = {0}, bv[6] = {0}, cv[2] = {0}, sv = 0;
    if (shapes) {
        memcpy(av, a->data, sizeof av);
        memcpy(bv, b->data, sizeof bv);
        dtype_to_f32(DT_F16, c->data, cv, 2);
        memcpy(&sv, sc->data, 4);
    }
    tensor_set_free(&s);
    CHECK(shapes, "unexpected tensor list, types or shapes");
    static const float want_a[6] = {1, 2, 3, 4, 5, 6}, want_b[6] = {1, 4, 2, 5, 3, 6};
    CHECK(memcmp(av, want_a, sizeof av) == 0, "a = %g %g %g %g %g %g", av[0], av[1], av[2], av[3], av[4], av[5]);
    CHECK(memcmp(bv, want_b, sizeof bv) == 0, "b = %g %g %g %g %g %g", bv[0], bv[1], bv[2], bv[3], bv[4], bv[5]);
    CHECK(cv[0] == 1.5f && cv[1] == -2.0f, "c = %g %g", cv[0], cv[1]);
    CHECK(sv == 9.0f, "scalar = %g", sv);
}
static void test_pth_views_offsets_memo(void) { check_synthetic(0); }
static void test_pth_zip64(void) { check_synthetic(1); }
static void test_pth_zip64_partial_extra(void) { check_synthetic(2); }

/* The synthetic file with `pkl` as its pickle must fail with `code` and a
 * message containing `needle`. */
static void expect_pth_error(const bytes *pkl, const char *byteorder, rwkv_status code, const char *needle,
                             char *msg, size_t msz) {
    bytes z = {0};
    synthetic_pth(&z, pkl, 0, byteorder);
    char path[64];
    tensor_set s;
    rwkv_error err;
    rwkv_status st = load_bytes(&z, &s, &err, path);
    unlink(path);
    b_free(&z);
    if (st == RWKV_OK) {
        tensor_set_free(&s);
        snprintf(msg, msz, "loaded, expected an error with '%s'", needle);
    } else if (st != code || !is_error_for(st, &err, path) || !strstr(err.message, needle)) {
        snprintf(msg, msz, "status %d, message: %s", (int)st, err.message);
    }
}

static void test_pth_forbidden_global(void) {
    bytes pkl = {0};
    b_u8(&pkl, 0x80);
    b_u8(&pkl, 2);
    p_global(&pkl, "os", "system");
    p_str(&pkl, "echo pwned");
    b_u8(&pkl, 0x85);
    b_u8(&pkl, 'R');
    b_u8(&pkl, '.');
    char msg[600] = "";
    expect_pth_error(&pkl, "little", RWKV_ERR_UNSUPPORTED, "'os system'", msg, sizeof msg);
    if (!msg[0]) expect_pth_error(&pkl, "little", RWKV_ERR_UNSUPPORTED, "(offset 2)", msg, sizeof msg);
    b_free(&pkl);
    CHECK(!msg[0], "%s", msg);
}

static void test_pth_strategy_rejected(void) {
    static const tdesc a = {"FloatStorage", "0", 10, 0, 1, {10}, {1}};
    bytes pkl = {0};
    p_begin_odict(&pkl);
    b_u8(&pkl, '(');
    p_str(&pkl, "a");
    p_tensor(&pkl, &a, 1);
    p_str(&pkl, "_strategy");
    p_str(&pkl, "cuda fp16i8");
    b_u8(&pkl, 'u');
    b_u8(&pkl, '.');
    char msg[600] = "";
    expect_pth_error(&pkl, "little", RWKV_ERR_UNSUPPORTED, "ChatRWKV", msg, sizeof msg);
    b_free(&pkl);
    CHECK(!msg[0], "%s", msg);
}

static void test_pth_rebuild_v3_rejected(void) {
    bytes pkl = {0};
    p_begin_odict(&pkl);
    p_str(&pkl, "a");
    p_global(&pkl, "torch._utils", "_rebuild_tensor_v3");
    b_u8(&pkl, '.');
    char msg[600] = "";
    expect_pth_error(&pkl, "little", RWKV_ERR_UNSUPPORTED, "_rebuild_tensor_v3", msg, sizeof msg);
    b_free(&pkl);
    CHECK(!msg[0], "%s", msg);
}

static void test_pth_bad_storages_and_views(void) {
    static const struct { tdesc t; rwkv_status code; const char *needle; } cases[] = {
        {{"FloatStorage", "0", 9, 0, 1, {9}, {1}}, RWKV_ERR_FORMAT, "has 40 bytes"},   /* record != numel*4 */
        {{"FloatStorage", "0", 10, 8, 1, {3}, {1}}, RWKV_ERR_FORMAT, "past the end"},  /* 8 + 3 > 10 */
        {{"FloatStorage", "0", 10, 0, 2, {4, 4}, {1, 3}}, RWKV_ERR_FORMAT, "past the end"},
        {{"FloatStorage", "7", 10, 0, 1, {10}, {1}}, RWKV_ERR_FORMAT, "is missing"},
        {{"FloatStorage", "0", 10, 0, 2, {5, 4}, {0, 1}}, RWKV_ERR_UNSUPPORTED, "broadcast"},
        {{"FloatStorage", "0", 10, 0, 5, {1, 1, 1, 1, 1}, {1, 1, 1, 1, 1}}, RWKV_ERR_UNSUPPORTED, "dimensions"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes pkl = {0};
        p_begin_odict(&pkl);
        p_str(&pkl, "w");
        p_tensor(&pkl, &cases[i].t, 1);
        b_u8(&pkl, 's');
        b_u8(&pkl, '.');
        char msg[600] = "";
        expect_pth_error(&pkl, "little", cases[i].code, cases[i].needle, msg, sizeof msg);
        b_free(&pkl);
        CHECK(!msg[0], "case %zu: %s", i, msg);
    }
}

/* Keys are printed in one-line messages: control characters are refused. */
static void test_pth_key_with_newline_rejected(void) {
    static const tdesc a = {"FloatStorage", "0", 10, 0, 1, {10}, {1}};
    bytes pkl = {0};
    p_begin_odict(&pkl);
    p_str(&pkl, "bad\nkey");
    p_tensor(&pkl, &a, 1);
    b_u8(&pkl, 's');
    b_u8(&pkl, '.');
    char msg[600] = "";
    expect_pth_error(&pkl, "little", RWKV_ERR_FORMAT, "control character", msg, sizeof msg);
    b_free(&pkl);
    CHECK(!msg[0], "%s", msg);
}

static void test_pth_big_endian_rejected(void) {
    bytes pkl = {0};
    synthetic_pickle(&pkl);
    char msg[600] = "";
    expect_pth_error(&pkl, "big", RWKV_ERR_UNSUPPORTED, "big-endian", msg, sizeof msg);
    b_free(&pkl);
    CHECK(!msg[0], "%s", msg);
}

static void test_pth_compressed_member_rejected(void) {
    bytes pkl = {0}, z = {0};
    synthetic_pickle(&pkl);
    member m[] = {{"archive/data.pkl", pkl.p, pkl.n, 8}};
    zip_build(&z, m, 1, 0);
    char path[64];
    tensor_set s;
    rwkv_error err;
    rwkv_status st = load_bytes(&z, &s, &err, path);
    unlink(path);
    b_free(&pkl);
    b_free(&z);
    if (st == RWKV_OK) tensor_set_free(&s);
    CHECK(st == RWKV_ERR_UNSUPPORTED && is_error_for(st, &err, path) && strstr(err.message, "method 8"), "%s",
          err.message);
}

static void test_legacy_pth_rejected(void) {
    static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8,
                                     0x50, 0x19, 0x2e, 0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e};
    bytes b = {0};
    b_put(&b, legacy, sizeof legacy);
    char path[64];
    tensor_set s;
    rwkv_error err;
    rwkv_status st = load_bytes(&b, &s, &err, path);
    unlink(path);
    b_free(&b);
    if (st == RWKV_OK) tensor_set_free(&s);
    CHECK(st == RWKV_ERR_UNSUPPORTED && is_error_for(st, &err, path) && strstr(err.message, "legacy"), "%s",
          err.message);
}

/* ------------------------------------------------------------------------ */
/* The pickle VM and the zip reader on their own                             */
/* ------------------------------------------------------------------------ */

static rwkv_status run_pickle(const bytes *b, rwkv_error *err) {
    pickle_state_dict sd;
    rwkv_status s = pickle_read_state_dict(b->p, b->n, &sd, err);
    if (s == RWKV_OK) pickle_state_dict_free(&sd);
    return s;
}

static void test_pickle_rejects_malformed(void) {
    struct { const char *what; bytes b; rwkv_status code; } cases[12];
    int n = 0;
    memset(cases, 0, sizeof cases);
    /* 10000 nested MARKs: more than the MARK-depth cap */
    cases[n].what = "deep marks";
    for (int i = 0; i < 10000; i++) b_u8(&cases[n].b, '(');
    cases[n++].code = RWKV_ERR_FORMAT;
    /* 100000 pushes without MARK: more than the stack cap */
    cases[n].what = "deep stack";
    for (int i = 0; i < 100000; i++) b_u8(&cases[n].b, 'N');
    cases[n++].code = RWKV_ERR_FORMAT;
    cases[n].what = "huge memo index";
    b_u8(&cases[n].b, 'N');
    b_u8(&cases[n].b, 'r');
    b_u32(&cases[n].b, 0xfffffff0u);
    cases[n++].code = RWKV_ERR_FORMAT;
    cases[n].what = "unset memo";
    b_u8(&cases[n].b, 'h');
    b_u8(&cases[n].b, 3);
    cases[n++].code = RWKV_ERR_FORMAT;
    cases[n].what = "string past the end";
    b_u8(&cases[n].b, 'X');
    b_u32(&cases[n].b, 0xffffffffu);
    b_str(&cases[n].b, "abc");
    cases[n++].code = RWKV_ERR_FORMAT;
    cases[n].what = "negative BINSTRING length";
    b_u8(&cases[n].b, 'T');
    b_u32(&cases[n].b, 0xfffffffeu);
    cases[n++].code = RWKV_ERR_FORMAT;
    cases[n].what = "unknown opcode";
    b_u8(&cases[n].b, 0xff);
    cases[n++].code = RWKV_ERR_UNSUPPORTED;
    cases[n].what = "no STOP";
    b_u8(&cases[n].b, '}');
    cases[n++].code = RWKV_ERR_FORMAT;
    cases[n].what = "underflow";
    b_u8(&cases[n].b, 'R');
    cases[n++].code = RWKV_ERR_FORMAT;
    cases[n].what = "pop below mark";
    b_u8(&cases[n].b, 'N');
    b_u8(&cases[n].b, '(');
    b_u8(&cases[n].b, 0x85);
    cases[n++].code = RWKV_ERR_FORMAT;
    cases[n].what = "not a dict";
    b_u8(&cases[n].b, ']');
    b_u8(&cases[n].b, '.');
    cases[n++].code = RWKV_ERR_UNSUPPORTED;
    cases[n].what = "GLOBAL without newline";
    b_str(&cases[n].b, "ctorch");
    cases[n++].code = RWKV_ERR_FORMAT;
    char msg[700] = "";
    for (int i = 0; i < n; i++) {
        rwkv_error err;
        rwkv_status s = run_pickle(&cases[i].b, &err);
        if (!msg[0] && (s != cases[i].code || !strstr(err.message, "(offset ")))
            snprintf(msg, sizeof msg, "%s: status %d, message: %s", cases[i].what, (int)s,
                     s == RWKV_OK ? "" : err.message);
        b_free(&cases[i].b);
    }
    CHECK(!msg[0], "%s", msg);
}

/* Protocol-4 spellings: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, LONG1, BINFLOAT. */
static void test_pickle_protocol4_opcodes(void) {
    bytes b = {0};
    b_u8(&b, 0x80);
    b_u8(&b, 4);
    b_u8(&b, 0x95);
    b_u64(&b, 0);
    b_u8(&b, '}');
    b_u8(&b, 0x94);
    b_u8(&b, '(');
    b_u8(&b, 0x8c);
    b_u8(&b, 1);
    b_str(&b, "w");
    b_u8(&b, 0x8c);
    b_u8(&b, 12);
    b_str(&b, "torch._utils");
    b_u8(&b, 0x8c);
    b_u8(&b, 18);
    b_str(&b, "_rebuild_tensor_v2");
    b_u8(&b, 0x93);
    b_u8(&b, 0x94);
    b_u8(&b, '(');
    b_u8(&b, '(');
    b_u8(&b, 0x8c);
    b_u8(&b, 7);
    b_str(&b, "storage");
    p_global(&b, "torch", "DoubleStorage");
    b_u8(&b, 0x8c);
    b_u8(&b, 3);
    b_str(&b, "k42");
    b_u8(&b, 'N');
    b_u8(&b, 0x8a); /* LONG1 3 bytes: 0x010000 = 65536 */
    b_u8(&b, 3);
    b_u8(&b, 0);
    b_u8(&b, 0);
    b_u8(&b, 1);
    b_u8(&b, 't');
    b_u8(&b, 'Q');
    b_u8(&b, 0x8a); /* LONG1 0 bytes: 0 */
    b_u8(&b, 0);
    b_u8(&b, 'M');
    b_u16(&b, 256);
    b_u8(&b, 'K');
    b_u8(&b, 256 / 2);
    b_u8(&b, 0x86);
    b_u8(&b, 'K');
    b_u8(&b, 128);
    b_u8(&b, 'K');
    b_u8(&b, 1);
    b_u8(&b, 0x86);
    b_u8(&b, 0x89);
    b_u8(&b, 'G');
    b_u64(&b, 0);
    b_u8(&b, 'N');
    b_u8(&b, 't');
    b_u8(&b, 'R');
    b_u8(&b, 'u');
    b_u8(&b, '.');
    pickle_state_dict sd;
    rwkv_error err;
    rwkv_status s = pickle_read_state_dict(b.p, b.n, &sd, &err);
    b_free(&b);
    CHECK(s == RWKV_OK, "%s", err.message);
    int ok = sd.count == 1 && strcmp(sd.tensors[0].name, "w") == 0 && strcmp(sd.tensors[0].storage_key, "k42") == 0 &&
             sd.tensors[0].type == DT_F64 && sd.tensors[0].storage_numel == 65536 && sd.tensors[0].ndim == 2 &&
             sd.tensors[0].shape[0] == 256 && sd.tensors[0].shape[1] == 128 && sd.tensors[0].stride[0] == 128;
    pickle_state_dict_free(&sd);
    CHECK(ok, "unexpected tensor description");
}

static void test_zip_rejects_bad_directories(void) {
    bytes z = {0};
    member m[] = {{"r/a", "hello", 5, 0}, {"r/b", "world", 5, 0}};
    zip_build(&z, m, 2, 0);
    zip_archive za;
    rwkv_error err;
    CHECK(zip_open(z.p, z.n, &za, &err) == RWKV_OK, "%s", err.message);
    const zip_entry *e = zip_find(&za, "r/b");
    const uint8_t *d = NULL;
    uint64_t n = 0;
    int ok = e && zip_entry_data(&za, e, &d, &n, &err) == RWKV_OK && n == 5 && memcmp(d, "world", 5) == 0 &&
             !zip_find(&za, "r/c") && !zip_find(&za, "r/");
    zip_close(&za);
    CHECK(ok, "lookup failed");
    /* claim 65535 entries in a 2-entry directory */
    bytes bad = {0};
    b_put(&bad, z.p, z.n);
    bad.p[bad.n - 12] = 0xff;
    bad.p[bad.n - 11] = 0xff;
    bad.p[bad.n - 14] = 0xff;
    bad.p[bad.n - 13] = 0xff;
    rwkv_status s = zip_open(bad.p, bad.n, &za, &err);
    CHECK(s == RWKV_ERR_FORMAT && strstr(err.message, "entries"), "count: %s", s ? err.message : "opened");
    /* central directory offset past its end */
    memcpy(bad.p, z.p, z.n);
    bad.p[bad.n - 5] = 0x7f;
    s = zip_open(bad.p, bad.n, &za, &err);
    CHECK(s == RWKV_ERR_FORMAT, "offset: %s", s ? err.message : "opened");
    /* a comment that does not end at the end of the file: no EOCD */
    memcpy(bad.p, z.p, z.n);
    bad.p[bad.n - 2] = 5;
    s = zip_open(bad.p, bad.n, &za, &err);
    CHECK(s == RWKV_ERR_FORMAT && strstr(err.message, "end-of-central-directory"), "comment: %s",
          s ? err.message : "opened");
    b_free(&bad);
    b_free(&z);
}

/* ------------------------------------------------------------------------ */
/* Broken safetensors and rwkv.cpp headers                                   */
/* ------------------------------------------------------------------------ */

static void safetensors_bytes(bytes *b, const char *json, size_t data_len) {
    b_u64(b, strlen(json));
    b_str(b, json);
    for (size_t i = 0; i < data_len; i++) b_u8(b, 0);
}

static void test_safetensors_bad_headers(void) {
    static const struct { const char *json; size_t data; rwkv_status code; } cases[] = {
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]", 8, RWKV_ERR_FORMAT}, /* bad JSON */
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4, RWKV_ERR_FORMAT}, /* past end */
        {"{\"a\": {\"dtype\": \"F8_E4M3\", \"shape\": [2], \"data_offsets\": [0, 2]}}", 2, RWKV_ERR_UNSUPPORTED},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8, RWKV_ERR_FORMAT}, /* 3*4 != 8 */
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8, RWKV_ERR_FORMAT},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 8, RWKV_ERR_FORMAT},
        {"{\"a\": 5}", 0, RWKV_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes b = {0};
        safetensors_bytes(&b, cases[i].json, cases[i].data);
        char path[64];
        tensor_set s;
        rwkv_error err;
        rwkv_status st = load_bytes(&b, &s, &err, path);
        unlink(path);
        b_free(&b);
        if (st == RWKV_OK) tensor_set_free(&s);
        CHECK(st == cases[i].code && is_error_for(st, &err, path), "case %zu: status %d: %s", i, (int)st,
              st ? err.message : "loaded");
    }
}

static void cpp_record(bytes *b, uint32_t type, int nd, const uint32_t *dims, const char *name, size_t data) {
    b_u32(b, (uint32_t)nd);
    b_u32(b, (uint32_t)strlen(name));
    b_u32(b, type);
    for (int i = 0; i < nd; i++) b_u32(b, dims[i]);
    b_str(b, name);
    for (size_t i = 0; i < data; i++) b_u8(b, 0);
}

static void test_rwkvcpp_bad_headers(void) {
    static const uint32_t d64[] = {64, 2}, d33[] = {33, 2}, d4[] = {1, 1, 1, 1};
    static const struct { uint32_t version, file_type, type; int nd; const uint32_t *dims; size_t data;
                          rwkv_status code; const char *needle; } cases[] = {
        {100, 7, 7, 2, d64, 2 * 44, RWKV_ERR_UNSUPPORTED, "version 100"},  /* quantized in a v100 file */
        {101, 0, 5, 2, d64, 64, RWKV_ERR_UNSUPPORTED, "removed"},           /* Q4_2 */
        {101, 0, 12, 2, d64, 64, RWKV_ERR_UNSUPPORTED, "unknown"},
        {101, 0, 8, 2, d33, 48, RWKV_ERR_FORMAT, "multiple of 32"},
        {101, 0, 0, 4, d4, 4, RWKV_ERR_FORMAT, "dimensions"},
        {102, 0, 0, 2, d64, 512, RWKV_ERR_UNSUPPORTED, "file version"},
        {101, 0, 0, 2, d64, 511, RWKV_ERR_FORMAT, "past the end"},
        {101, 0, 0, 2, d64, 512, RWKV_ERR_FORMAT, "emb.weight"}, /* one valid tensor, the rest missing */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes b = {0};
        b_u32(&b, 0x67676d66u);
        b_u32(&b, cases[i].version);
        b_u32(&b, 2);
        b_u32(&b, 64);
        b_u32(&b, 1);
        b_u32(&b, cases[i].file_type);
        cpp_record(&b, cases[i].type, cases[i].nd, cases[i].dims, "blocks.0.att.key.weight", cases[i].data);
        char path[64];
        tensor_set s;
        rwkv_error err;
        rwkv_status st = load_bytes(&b, &s, &err, path);
        unlink(path);
        b_free(&b);
        if (st == RWKV_OK) tensor_set_free(&s);
        CHECK(st == cases[i].code && is_error_for(st, &err, path) && strstr(err.message, cases[i].needle),
              "case %zu: status %d: %s", i, (int)st, st ? err.message : "loaded");
    }
}

/* ------------------------------------------------------------------------ */
/* Truncated and corrupted real files                                        */
/* ------------------------------------------------------------------------ */

/* Reads every byte of every tensor, so that ASan sees any view that points
 * outside the file or the set's buffers. */
static unsigned touch_all(const tensor_set *s) {
    unsigned sum = 0;
    for (int i = 0; i < s->count; i++) {
        const uint8_t *p = s->tensors[i].data;
        for (size_t k = 0; k < s->tensors[i].nbytes; k++) sum += p[k];
    }
    return sum;
}

static int cmp_desc(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Cuts the file at: every offset below 300, 200 offsets spread through it,
 * and every offset in the last 200 bytes. Each must give an error naming the
 * file. Offsets go downwards so that one temp file is shrunk in place. */
static int truncation_sweep(const char *src, char *msg, size_t msz) {
    bytes f = {0};
    if (!read_whole(src, &f)) {
        snprintf(msg, msz, "cannot read %.300s", src);
        return 0;
    }
    size_t *offs = malloc(sizeof(size_t) * 800), n = 0;
    for (size_t o = 0; o < 300 && o < f.n; o++) offs[n++] = o;
    for (size_t k = 1; k < 200; k++) offs[n++] = f.n * k / 200;
    for (size_t o = f.n > 200 ? f.n - 200 : 0; o < f.n; o++) offs[n++] = o;
    qsort(offs, n, sizeof *offs, cmp_desc);
    char path[64];
    int ok = write_temp(f.p, f.n, path), fd = open(path, O_WRONLY);
    for (size_t i = 0; ok && i < n; i++) {
        if (i > 0 && offs[i] == offs[i - 1]) continue;
        if (ftruncate(fd, (off_t)offs[i]) != 0) {
            snprintf(msg, msz, "ftruncate failed");
            ok = 0;
            break;
        }
        tensor_set s;
        rwkv_error err;
        rwkv_status st = checkpoint_read(path, &s, &err);
        if (st == RWKV_OK) {
            tensor_set_free(&s);
            snprintf(msg, msz, "%.300s cut at %zu of %zu bytes loaded without error", src, offs[i], f.n);
            ok = 0;
        } else if (!is_error_for(st, &err, path)) {
            snprintf(msg, msz, "%.300s cut at %zu: bad error message: %.400s", src, offs[i], err.message);
            ok = 0;
        }
    }
    if (fd >= 0) close(fd);
    unlink(path);
    free(offs);
    b_free(&f);
    return ok;
}

static void test_truncated_files_fail_cleanly(void) {
    static const char *files[] = {
        "testvectors/rwkv4/tiny/model.f32.pth",
        "testvectors/rwkv7/tiny/model.bf16.pth",
        "testvectors/rwkv4/tiny/model.f32.safetensors",
        "reference/rwkv-cpp/tiny-rwkv-4v0-660K-Q5_0.bin",
    };
    int done = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024], msg[800] = "";
        if (!shared_path(path, sizeof path, files[i])) continue;
        CHECK(truncation_sweep(path, msg, sizeof msg), "%s", msg);
        done++;
    }
    if (!done) SKIP("no shared files found under %s", shared_dir());
}

/* Byte ranges worth corrupting: where a reader takes sizes and offsets. */
typedef struct span {
    size_t start, len;
} span;

static int header_spans(const char *rel, const bytes *f, span *sp) {
    int n = 0;
    sp[n++] = (span){0, f->n < 256 ? f->n : 256};
    if (has_suffix(rel, ".safetensors") && f->n >= 8) {
        uint64_t h = 0;
        memcpy(&h, f->p, 8); /* little-endian host assumed, as the readers do */
        sp[n++] = (span){0, (size_t)(h + 8 < f->n ? h + 8 : f->n)};
    } else if (has_suffix(rel, ".pth")) {
        sp[n++] = (span){0, f->n < 8192 ? f->n : 8192};                  /* local header + data.pkl */
        sp[n++] = (span){f->n > 4096 ? f->n - 4096 : 0, f->n < 4096 ? f->n : 4096}; /* central directory */
    } else { /* rwkv.cpp: record headers sit before each tensor name */
        static const char *names[] = {"blocks.0.att.time_decay", "blocks.1.att.key.weight", "head.weight",
                                      "blocks.3.ffn.value.weight", "ln_out.bias"};
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            size_t nl = strlen(names[k]);
            for (size_t i = 24; i + nl <= f->n; i++)
                if (memcmp(f->p + i, names[k], nl) == 0) {
                    sp[n++] = (span){i - 24, 24 + nl};
                    break;
                }
        }
    }
    return n;
}

static int flip_sweep(const char *src, const char *rel, int rounds, char *msg, size_t msz) {
    bytes f = {0};
    if (!read_whole(src, &f)) {
        snprintf(msg, msz, "cannot read %.300s", src);
        return 0;
    }
    span sp[8];
    int nsp = header_spans(rel, &f, sp);
    char path[64];
    int ok = write_temp(f.p, f.n, path), fd = open(path, O_WRONLY);
    unsigned sink = 0;
    for (int r = 0; ok && r < rounds; r++) {
        const span *s = &sp[rng() % (uint64_t)nsp];
        size_t pos[3];
        int nflip = 1 + (int)(rng() % 3);
        for (int k = 0; k < nflip; k++) {
            pos[k] = s->start + (size_t)(rng() % (s->len ? s->len : 1));
            uint8_t v = (uint8_t)(f.p[pos[k]] ^ (uint8_t)(1 + rng() % 255));
            if (pwrite(fd, &v, 1, (off_t)pos[k]) != 1) ok = 0;
        }
        tensor_set set;
        rwkv_error err;
        rwkv_status st = checkpoint_read(path, &set, &err);
        if (st == RWKV_OK) {
            sink += touch_all(&set);
            tensor_set_free(&set);
        } else if (!is_error_for(st, &err, path)) {
            snprintf(msg, msz, "%.300s round %d: bad error: %.400s", src, r, err.message);
            ok = 0;
        }
        for (int k = 0; k < nflip; k++)
            if (pwrite(fd, f.p + pos[k], 1, (off_t)pos[k]) != 1) ok = 0;
    }
    if (fd >= 0) close(fd);
    unlink(path);
    b_free(&f);
    if (sink == 1) printf("# %u\n", sink); /* keep the reads */
    return ok;
}

static void test_corrupted_headers_never_crash(void) {
    static const char *files[] = {
        "testvectors/rwkv4/tiny/model.f16.pth",
        "testvectors/rwkv6/tiny/model.f32.pth",
        "testvectors/rwkv4/tiny/model.bf16.safetensors",
        "reference/rwkv-cpp/tiny-rwkv-4v0-660K-Q5_1.bin",
    };
    int done = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024], msg[800] = "";
        if (!shared_path(path, sizeof path, files[i])) continue;
        CHECK(flip_sweep(path, files[i], 400, msg, sizeof msg), "%s", msg);
        done++;
    }
    if (!done) SKIP("no shared files found under %s", shared_dir());
}

/* The synthetic pth with random corruption anywhere (it is small enough). */
static void test_corrupted_synthetic_pth_never_crash(void) {
    bytes pkl = {0}, z = {0};
    synthetic_pickle(&pkl);
    synthetic_pth(&z, &pkl, 1, "little");
    char path[64];
    int ok = write_temp(z.p, z.n, path), fd = open(path, O_WRONLY);
    char msg[800] = "";
    unsigned sink = 0;
    for (int r = 0; ok && r < 3000 && !msg[0]; r++) {
        size_t pos = (size_t)(rng() % z.n);
        uint8_t v = (uint8_t)(z.p[pos] ^ (uint8_t)(1 + rng() % 255));
        if (pwrite(fd, &v, 1, (off_t)pos) != 1) ok = 0;
        tensor_set set;
        rwkv_error err;
        rwkv_status st = checkpoint_read(path, &set, &err);
        if (st == RWKV_OK) {
            sink += touch_all(&set);
            tensor_set_free(&set);
        } else if (!is_error_for(st, &err, path)) {
            snprintf(msg, sizeof msg, "byte %zu: bad error: %s", pos, err.message);
        }
        if (pwrite(fd, z.p + pos, 1, (off_t)pos) != 1) ok = 0;
    }
    if (fd >= 0) close(fd);
    unlink(path);
    b_free(&pkl);
    b_free(&z);
    if (sink == 1) printf("# %u\n", sink);
    CHECK(ok, "temp file I/O failed");
    CHECK(!msg[0], "%s", msg);
}

/* ------------------------------------------------------------------------ */
/* Buffers a tensor set owns                                                */
/* ------------------------------------------------------------------------ */

/* A large load-time copy: 2 MB-aligned, zeroed, writable to its last byte,
 * handed on by a merge with the set's other buffers, gone with the set. */
static void test_large_copies(void) {
    tensor_set a, b;
    tensor_set_init(&a), tensor_set_init(&b);
    const size_t sizes[] = {((size_t)2 << 20) + 1, (size_t)5 << 20, 4096 * 3 + 7};
    for (int i = 0; i < 3; i++) {
        uint8_t *p = tensor_set_alloc_large(i % 2 ? &b : &a, sizes[i]);
        CHECK(p != NULL, "alloc of %zu bytes", sizes[i]);
        CHECK((uintptr_t)p % ((uintptr_t)2 << 20) == 0, "%zu bytes: not 2 MB-aligned", sizes[i]);
        size_t nonzero = 0;
        for (size_t j = 0; j < sizes[i]; j++) nonzero += p[j] != 0;
        CHECK(nonzero == 0, "%zu bytes: %zu not zero", sizes[i], nonzero);
        memset(p, 0xA5, sizes[i]);
    }
    rwkv_error err;
    CHECK(tensor_set_merge(&a, &b, &err) == RWKV_OK, "merge: %s", err.message);
    CHECK(a.owned_count == 3 && b.owned_count == 0, "the merge moved %d of 3 buffers", a.owned_count);
    tensor_set_free(&a);
    tensor_set_free(&b);
}

/* Buffers of every size, the arena's (from 64 KB) across several arenas
 * included: zeroed, 64-byte aligned from 64 KB on, none overlapping another
 * (each filled with its own byte, then all checked). */
static void test_set_buffers(void) {
    tensor_set set;
    tensor_set_init(&set);
    enum { N = 700 };
    static uint8_t *buf[N];
    static size_t size[N];
    for (int i = 0; i < N; i++) {
        size[i] = i % 7 == 0 ? (size_t)(i % 5 + 1) * 3000 : (size_t)65536 + (size_t)i * 997;
        if (i == N - 1) size[i] = (size_t)9 << 20; /* past the arena's largest piece */
        buf[i] = tensor_set_alloc(&set, size[i]);
        CHECK(buf[i] != NULL, "buffer %d of %zu bytes", i, size[i]);
        CHECK(size[i] < 65536 || (uintptr_t)buf[i] % 64 == 0, "buffer %d of %zu bytes not 64-byte aligned", i, size[i]);
        size_t nonzero = 0;
        for (size_t j = 0; j < size[i]; j++) nonzero += buf[i][j] != 0;
        CHECK(nonzero == 0, "buffer %d: %zu bytes not zero", i, nonzero);
        memset(buf[i], i % 251 + 1, size[i]);
    }
    for (int i = 0; i < N; i++) {
        size_t wrong = 0;
        for (size_t j = 0; j < size[i]; j++) wrong += buf[i][j] != (uint8_t)(i % 251 + 1);
        CHECK(wrong == 0, "buffer %d: %zu bytes overwritten by another", i, wrong);
    }
    tensor_set_free(&set);
}

/* A view at an address its element type does not divide (rwkv.cpp and
 * safetensors files do not pad): floats are copied to an aligned buffer
 * with the same bytes; blocks, read byte by byte or by unaligned loads,
 * stay where they are. */
static void test_misaligned_views(void) {
    static uint8_t file[4096 + 8];
    for (size_t i = 0; i < sizeof file; i++) file[i] = (uint8_t)(i * 37 + 11);
    const struct {
        dtype type;
        int64_t n;
        int kept;
    } cases[] = {{DT_F32, 64, 0}, {DT_F16, 64, 0}, {DT_BF16, 64, 0}, {DT_Q8_0, 64, 1}, {DT_Q5_1, 64, 1}, {DT_Q4_K, 256, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tensor_set set;
        tensor_set_init(&set);
        const uint8_t *at = file + 1 - (uintptr_t)file % 2; /* an odd address */
        int64_t shape[1] = {cases[c].n};
        size_t bytes = dtype_bytes_for(cases[c].type, (uint64_t)cases[c].n);
        rwkv_error err = {0};
        CHECK(tensor_set_add(&set, "w", cases[c].type, 1, shape, at, bytes, &err) == RWKV_OK, "%s: %s",
              dtype_name(cases[c].type), err.message);
        const tensor *t = tensor_set_find(&set, "w");
        if (cases[c].kept) CHECK(t->data == at, "%s at an odd address was copied", dtype_name(cases[c].type));
        else
            CHECK(t->data != at && (uintptr_t)t->data % dtype_block_bytes(cases[c].type) == 0 &&
                      memcmp(t->data, at, bytes) == 0,
                  "%s at an odd address: not an aligned copy of the same bytes", dtype_name(cases[c].type));
        tensor_set_free(&set);
    }
}


/* transpose_last2 on 2- and 4-byte values; a file's transposed LoRA back in
 * the official [in, out] order: an f16 one stays f16, a Q8_0 one becomes
 * float32 with its stored rows kept beside it, which model_lora then takes
 * as the [out, in] matrix itself (row r of it is column r of the official
 * tensor). */
static void test_transposed_loras(void) {
    enum { BATCH = 2, IN = 64, OUT = 32, MAX = BATCH * 70 * 130 };
    static uint16_t h[MAX], ht[MAX];
    static float f[MAX], ft[MAX];
    const int shapes[][2] = {{3, 5}, {70, 130}}; /* within one 64 x 64 tile, and across partial tiles */
    int wrong = 0;
    for (int sh = 0; sh < 2; sh++) {
        const int A = shapes[sh][0], B = shapes[sh][1];
        for (int i = 0; i < BATCH * A * B; i++) h[i] = (uint16_t)(1000 + i), f[i] = (float)i;
        transpose_last2(h, ht, 2, BATCH, A, B);
        transpose_last2(f, ft, 4, BATCH, A, B);
        for (int k = 0; k < BATCH; k++)
            for (int i = 0; i < A; i++)
                for (int j = 0; j < B; j++) {
                    const int from = (k * A + i) * B + j, to = (k * B + j) * A + i;
                    wrong += ht[to] != h[from] || ft[to] != f[from];
                }
    }
    CHECK(wrong == 0, "transpose_last2: %d values out of place", wrong);

    /* the file's [OUT][IN] rows: Q8_0 blocks of scale 1 (f16 0x3c00) and codes, and the same as f16 */
    static uint8_t q8[OUT * IN / 32 * 34];
    static uint16_t f16[OUT * IN];
    for (int b = 0; b < OUT * IN / 32; b++) {
        q8[34 * b] = 0x00, q8[34 * b + 1] = 0x3c;
        for (int e = 0; e < 32; e++) q8[34 * b + 2 + e] = (uint8_t)(int8_t)((b * 7 + e * 3) % 41 - 20);
    }
    for (int i = 0; i < OUT * IN; i++) f16[i] = (uint16_t)(0x3c00 + i % 512);
    tensor_set set;
    tensor_set_init(&set);
    rwkv_error err = {0};
    const int64_t stored[2] = {OUT, IN};
    CHECK(tensor_set_add(&set, "q", DT_Q8_0, 2, stored, q8, sizeof q8, &err) == RWKV_OK, "%s", err.message);
    CHECK(tensor_set_add(&set, "h", DT_F16, 2, stored, f16, sizeof f16, &err) == RWKV_OK, "%s", err.message);
    CHECK(undo_transpose_last2("t", &set, &set.tensors[0], &err) == RWKV_OK, "%s", err.message);
    CHECK(undo_transpose_last2("t", &set, &set.tensors[1], &err) == RWKV_OK, "%s", err.message);
    const tensor *q = tensor_set_find(&set, "q"), *hh = tensor_set_find(&set, "h");
    CHECK(q->type == DT_F32 && q->shape[0] == IN && q->shape[1] == OUT && q->stored_rows == (const void *)q8 &&
              q->stored_type == DT_Q8_0 && model_lora_reads_stored(q),
          "Q8_0: %s [%lld, %lld], stored rows %p", dtype_name(q->type), (long long)q->shape[0],
          (long long)q->shape[1], q->stored_rows);
    CHECK(hh->type == DT_F16 && hh->shape[0] == IN && hh->shape[1] == OUT && !hh->stored_rows, "f16: %s [%lld, %lld]",
          dtype_name(hh->type), (long long)hh->shape[0], (long long)hh->shape[1]);
    matrix mq = {0}, mh = {0};
    CHECK(model_lora(&set, "q", 1, IN, OUT, &mq, &err) == RWKV_OK, "%s", err.message);
    CHECK(model_lora(&set, "h", 1, IN, OUT, &mh, &err) == RWKV_OK, "%s", err.message);
    CHECK(mq.type == DT_Q8_0 && mq.data == (const void *)q8 && mq.rows == OUT && mq.cols == IN && mh.type == DT_F16 &&
              mh.rows == OUT && mh.cols == IN,
          "model_lora: %s %dx%d, %s %dx%d", dtype_name(mq.type), mq.rows, mq.cols, dtype_name(mh.type), mh.rows,
          mh.cols);
    float row[IN], official[IN * OUT], hrow[IN], hofficial[IN * OUT];
    dtype_to_f32(DT_F32, q->data, official, IN * OUT);
    dtype_to_f32(DT_F16, hh->data, hofficial, IN * OUT);
    wrong = 0;
    for (int r = 0; r < OUT; r++) {
        matrix_row_f32(&mq, r, row);
        matrix_row_f32(&mh, r, hrow);
        for (int c = 0; c < IN; c++) wrong += row[c] != official[c * OUT + r] || hrow[c] != hofficial[c * OUT + r];
    }
    tensor_set_free(&set);
    CHECK(wrong == 0, "model_lora: %d weights differ from the official tensor's", wrong);
}

int main(void) {
    RUN(test_large_copies);
    RUN(test_set_buffers);
    RUN(test_misaligned_views);
    RUN(test_transposed_loras);
    RUN(test_pth_matches_safetensors);
    RUN(test_rwkvcpp_v4_official_form);
    RUN(test_rwkvcpp_fp16_matches_fp32);
    RUN(test_rwkvcpp_q5_0_near_fp32);
    RUN(test_rwkvcpp_q5_1_near_fp32);
    RUN(test_rwkvcpp_later_versions_official_form);
    RUN(test_pth_views_offsets_memo);
    RUN(test_pth_zip64);
    RUN(test_pth_zip64_partial_extra);
    RUN(test_pth_forbidden_global);
    RUN(test_pth_strategy_rejected);
    RUN(test_pth_rebuild_v3_rejected);
    RUN(test_pth_bad_storages_and_views);
    RUN(test_pth_key_with_newline_rejected);
    RUN(test_pth_big_endian_rejected);
    RUN(test_pth_compressed_member_rejected);
    RUN(test_legacy_pth_rejected);
    RUN(test_pickle_rejects_malformed);
    RUN(test_pickle_protocol4_opcodes);
    RUN(test_zip_rejects_bad_directories);
    RUN(test_safetensors_bad_headers);
    RUN(test_rwkvcpp_bad_headers);
    RUN(test_truncated_files_fail_cleanly);
    RUN(test_corrupted_headers_never_crash);
    RUN(test_corrupted_synthetic_pth_never_crash);
    return test_summary();
}
