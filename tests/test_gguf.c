/* GGUF files (llama.cpp's converter): every case folder under
 * ../shared/testvectors/gguf-rwkv7 is run — each model.TYPE.gguf against its
 * model.TYPE.expected_logits.f32 (a float64 reference on the file's own
 * weights), RNN mode and sequence mode — and llama.cpp's own logits are
 * compared too. The reader must turn the f16 file into the same tensors as
 * the .pth it was converted from. Skips cleanly without ../shared. */
#include <jansson.h>
#include <stdint.h>

#include "formats/formats.h"
#include "formats/gguf_write.h"
#include "rwkv.h"
#include "rwkv_quant.h"
#include "rwkv_tokenizer.h"
#include "test.h"

#define CASES "testvectors/gguf-rwkv7"

typedef struct gguf_case {
    char dir[1024];
    int tokens[4096];
    int n_tokens;
    long vocab;
} gguf_case;

static int load_case(const char *dir, gguf_case *c) {
    char path[1100];
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    snprintf(path, sizeof path, "%s/case.json", dir);
    json_t *root = json_load_file(path, 0, NULL);
    json_t *toks = root ? json_object_get(root, "tokens") : NULL;
    c->n_tokens = 0;
    c->vocab = root ? (long)json_integer_value(json_object_get(root, "V")) : 0;
    for (size_t i = 0; json_is_array(toks) && i < json_array_size(toks) && i < 4096; i++)
        c->tokens[c->n_tokens++] = (int)json_integer_value(json_array_get(toks, i));
    json_decref(root);
    return c->n_tokens > 0 && c->vocab > 0;
}

/* The n_floats floats of a raw little-endian f32 file, or NULL. */
static float *read_f32(const char *path, size_t n_floats) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *v = malloc(n_floats * sizeof(float));
    size_t got = v ? fread(v, sizeof(float), n_floats, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != n_floats || extra) {
        free(v);
        return NULL;
    }
    return v;
}

/* Largest |got - want| over all positions, each divided by max(1, max |want|) of its position. */
static double scaled_err(const float *got, const float *want, int T, long V) {
    double worst = 0;
    for (int t = 0; t < T; t++) {
        double scale = 1, e = 0;
        for (long v = 0; v < V; v++) scale = fmax(scale, fabs(want[(size_t)t * V + v]));
        for (long v = 0; v < V; v++) e = fmax(e, fabs((double)got[(size_t)t * V + v] - want[(size_t)t * V + v]));
        if (!(e / scale <= worst)) worst = e / scale;
    }
    return worst;
}

/* Logits of the case's tokens from a fresh state: RNN mode, or one sequence call. */
static float *run_model(rwkv_model *m, const gguf_case *c, int sequence, char *msg, size_t msg_size) {
    rwkv_state *st = NULL;
    rwkv_error err;
    float *out = malloc(sizeof(float) * (size_t)c->n_tokens * c->vocab);
    if (!out || rwkv_state_new(m, &st, &err) != RWKV_OK) {
        snprintf(msg, msg_size, "state: %s", out ? err.message : "out of memory");
        free(out);
        return NULL;
    }
    rwkv_status s = RWKV_OK;
    if (sequence) s = rwkv_eval_sequence(m, st, c->tokens, (size_t)c->n_tokens, out, 1, &err);
    for (int t = 0; !sequence && s == RWKV_OK && t < c->n_tokens; t++)
        s = rwkv_eval(m, st, c->tokens[t], out + (size_t)t * c->vocab, &err);
    rwkv_state_free(st);
    if (s != RWKV_OK) {
        snprintf(msg, msg_size, "eval: %s", err.message);
        free(out);
        return NULL;
    }
    return out;
}

/* One model file of a case: "model.f16" etc. (without .gguf). */
static void check_model(const gguf_case *c, const char *stem, char *msg, size_t msg_size) {
    char path[1400], ref_path[1400];
    snprintf(path, sizeof path, "%s/%s.gguf", c->dir, stem);
    snprintf(ref_path, sizeof ref_path, "%s/%s.expected_logits.f32", c->dir, stem);
    size_t n = (size_t)c->n_tokens * (size_t)c->vocab;
    float *want = read_f32(ref_path, n);
    if (!want) {
        snprintf(msg, msg_size, "%s: missing or wrong size", ref_path);
        return;
    }
    rwkv_model *m = NULL;
    rwkv_error err;
    if (rwkv_model_load(path, &m, &err) != RWKV_OK) {
        snprintf(msg, msg_size, "%s", err.message);
        free(want);
        return;
    }
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    for (int sequence = 0; sequence < 2 && !msg[0]; sequence++) {
        float *got = info.n_vocab == c->vocab ? run_model(m, c, sequence, msg, msg_size) : NULL;
        if (!got && !msg[0]) snprintf(msg, msg_size, "%s: n_vocab %d, case says %ld", path, info.n_vocab, c->vocab);
        if (!got) break;
        /* f32 activations against a float64 reference on the same weights */
        double e = scaled_err(got, want, c->n_tokens, c->vocab);
        printf("# %s %s: max error %.3g of the logit scale\n", path, sequence ? "sequence" : "rnn", e);
        if (!(e <= 1e-3)) snprintf(msg, msg_size, "%s (%s mode): error %.3g > 1e-3 of the logit scale", path,
                                   sequence ? "sequence" : "RNN", e);
        snprintf(ref_path, sizeof ref_path, "%s/%s.llamacpp_logits.f32", c->dir, stem);
        float *llama = sequence ? NULL : read_f32(ref_path, n);
        if (llama) { /* llama.cpp quantizes activations on its q8_0 path: a looser bound */
            double el = scaled_err(got, llama, c->n_tokens, c->vocab);
            printf("# %s: llama.cpp's logits differ by %.3g of the logit scale\n", path, el);
            if (!(el <= 0.05) && !msg[0])
                snprintf(msg, msg_size, "%s: %.3g from llama.cpp's logits (> 0.05 of the logit scale)", path, el);
        }
        free(llama);
        free(got);
    }
    rwkv_model_free(m);
    free(want);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Runs fn on every case folder (a folder with case.json); returns the count. */
static int for_each_case(void (*fn)(const gguf_case *c, char *msg, size_t msg_size), char *msg, size_t msg_size) {
    char root[512];
    shared_path(root, sizeof root, CASES);
    DIR *d = opendir(root);
    if (!d) return 0;
    int count = 0;
    static gguf_case c;
    struct dirent *e;
    while ((e = readdir(d)) && !msg[0]) {
        char dir[1024];
        if (e->d_name[0] == '.') continue;
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        if (!load_case(dir, &c)) continue;
        fn(&c, msg, msg_size);
        count++;
    }
    closedir(d);
    return count;
}

/* A test body: fn on every case folder; skipped when there is none. */
static void on_every_case(void (*fn)(const gguf_case *c, char *msg, size_t msg_size)) {
    char msg[1024] = "";
    int n = for_each_case(fn, msg, sizeof msg);
    CHECK(!msg[0], "%s", msg);
    if (n == 0) SKIP("no case folders under ../shared/" CASES);
}

static void case_models(const gguf_case *c, char *msg, size_t msg_size) {
    DIR *d = opendir(c->dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && !msg[0]) {
        if (!ends_with(e->d_name, ".gguf")) continue;
        char stem[256];
        snprintf(stem, sizeof stem, "%.*s", (int)(strlen(e->d_name) - 5), e->d_name);
        check_model(c, stem, msg, msg_size);
    }
    if (d) closedir(d);
}

static void test_gguf_cases(void) { on_every_case(case_models); }

/* Every tensor of the f16 GGUF equals the .pth's tensor of the same name
 * (values exactly, shape as the official checkpoint); the .pth has nothing
 * more but block 0's unused v0/v1/v2. */
static void compare_with_pth(const gguf_case *c, char *msg, size_t msg_size) {
    char gpath[1100], ppath[1100];
    snprintf(gpath, sizeof gpath, "%s/model.f16.gguf", c->dir);
    snprintf(ppath, sizeof ppath, "%s/model.f16.pth", c->dir);
    if (access(gpath, R_OK) != 0 || access(ppath, R_OK) != 0) return;
    tensor_set g, p;
    rwkv_error err;
    if (checkpoint_read(gpath, &g, &err) != RWKV_OK) {
        snprintf(msg, msg_size, "%s", err.message);
        return;
    }
    if (checkpoint_read(ppath, &p, &err) != RWKV_OK) {
        snprintf(msg, msg_size, "%s", err.message);
        tensor_set_free(&g);
        return;
    }
    for (int i = 0; i < p.count && !msg[0]; i++) {
        const tensor *pt = &p.tensors[i], *gt = tensor_set_find(&g, pt->name);
        if (!gt) {
            if (strcmp(pt->name, "blocks.0.att.v0") && strcmp(pt->name, "blocks.0.att.v1") &&
                strcmp(pt->name, "blocks.0.att.v2"))
                snprintf(msg, msg_size, "%s: '%s' is missing", gpath, pt->name);
            continue;
        }
        if (gt->ndim != pt->ndim || memcmp(gt->shape, pt->shape, sizeof(int64_t) * (size_t)pt->ndim) != 0) {
            char a[96], b[96];
            shape_format(gt->ndim, gt->shape, a, sizeof a);
            shape_format(pt->ndim, pt->shape, b, sizeof b);
            snprintf(msg, msg_size, "%s: '%s' is %s, the .pth has %s", gpath, pt->name, a, b);
            continue;
        }
        size_t n = (size_t)tensor_numel(pt);
        float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
        dtype_to_f32(gt->type, gt->data, a, n);
        dtype_to_f32(pt->type, pt->data, b, n);
        for (size_t k = 0; k < n && !msg[0]; k++)
            if (a[k] != b[k])
                snprintf(msg, msg_size, "%s: '%s'[%zu] = %g, the .pth has %g", gpath, pt->name, k, (double)a[k],
                         (double)b[k]);
        free(a), free(b);
    }
    if (!msg[0] && g.count != p.count - 3 && g.count != p.count)
        snprintf(msg, msg_size, "%s has %d tensors, the .pth %d", gpath, g.count, p.count);
    tensor_set_free(&g);
    tensor_set_free(&p);
}

static void test_gguf_same_model_as_pth(void) { on_every_case(compare_with_pth); }

/* The vocabulary inside the GGUF file is the World vocabulary: every id
 * decodes to the same bytes as from rwkv_vocab_v20230424.txt, and texts
 * tokenize the same. Files without a vocabulary are told apart. */
static void check_vocab(const gguf_case *c, char *msg, size_t msg_size) {
    char gpath[1100], vpath[512];
    snprintf(gpath, sizeof gpath, "%s/model.f16.gguf", c->dir);
    shared_path(vpath, sizeof vpath, "reference/rwkv-cpp/rwkv_vocab_v20230424.txt");
    if (access(gpath, R_OK) != 0 || access(vpath, R_OK) != 0) return;
    rwkv_tokenizer *a = NULL, *b = NULL;
    rwkv_error err;
    if (rwkv_tokenizer_from_model(gpath, &a, &err) != RWKV_OK || rwkv_tokenizer_load(vpath, &b, &err) != RWKV_OK) {
        snprintf(msg, msg_size, "%s", err.message);
        rwkv_tokenizer_free(a);
        return;
    }
    if (rwkv_tokenizer_vocab_size(a) != rwkv_tokenizer_vocab_size(b) || strcmp(rwkv_tokenizer_kind(a), "world"))
        snprintf(msg, msg_size, "%s: %s vocabulary of %d ids, the World file has %d", gpath, rwkv_tokenizer_kind(a),
                 rwkv_tokenizer_vocab_size(a), rwkv_tokenizer_vocab_size(b));
    for (int id = 0; id < rwkv_tokenizer_vocab_size(b) && !msg[0]; id++) {
        char *ta = NULL, *tb = NULL;
        size_t la = 0, lb = 0;
        rwkv_detokenize(a, &id, 1, &ta, &la, NULL);
        rwkv_detokenize(b, &id, 1, &tb, &lb, NULL);
        if (la != lb || memcmp(ta, tb, la) != 0) snprintf(msg, msg_size, "%s: id %d decodes differently", gpath, id);
        rwkv_free(ta), rwkv_free(tb);
    }
    const char *text = "Hello, world!\n\tcaf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 'quote' \"dq\" back\\slash \x01\xff";
    int *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    rwkv_tokenize(a, text, strlen(text), &ia, &na, NULL);
    rwkv_tokenize(b, text, strlen(text), &ib, &nb, NULL);
    if (!msg[0] && (na != nb || memcmp(ia, ib, na * sizeof(int)) != 0))
        snprintf(msg, msg_size, "%s: tokenizes differently from the World vocabulary file", gpath);
    rwkv_free(ia), rwkv_free(ib);
    rwkv_tokenizer_free(a), rwkv_tokenizer_free(b);
    if (!msg[0] && rwkv_tokenizer_from_model(vpath, &a, &err) != RWKV_ERR_UNSUPPORTED)
        snprintf(msg, msg_size, "a file without a vocabulary must give RWKV_ERR_UNSUPPORTED");
}

static void test_gguf_vocabulary(void) { on_every_case(check_vocab); }

/* Logits of 16 byte tokens, RNN mode (NULL on error, with msg). */
static float *logits16(const char *path, int *V, char *msg, size_t msg_size) {
    gguf_case c = {.n_tokens = 16};
    for (int t = 0; t < 16; t++) c.tokens[t] = (t * 37 + 11) % 256;
    rwkv_model *m = NULL;
    rwkv_error err;
    if (rwkv_model_load(path, &m, &err) != RWKV_OK) {
        snprintf(msg, msg_size, "%s", err.message);
        return NULL;
    }
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    c.vocab = *V = info.n_vocab;
    float *out = run_model(m, &c, 0, msg, msg_size);
    rwkv_model_free(m);
    return out;
}

/* |logits(a) - logits(b)| over 16 tokens, as a fraction of the logit scale. */
static double model_distance(const char *a, const char *b, char *msg, size_t msg_size) {
    int Va = 0, Vb = 0;
    float *la = logits16(a, &Va, msg, msg_size), *lb = la ? logits16(b, &Vb, msg, msg_size) : NULL;
    double e = la && lb && Va == Vb ? scaled_err(lb, la, 16, Va) : INFINITY;
    free(la), free(lb);
    return e;
}

/* The yardstick of a model's quantization error: how far rwkv.cpp's own
 * Q5_1 file of it lies from it (these tiny random models are sensitive),
 * at least 0.05 of the logit scale; 0.05 when there is no such file. */
static double yardstick(const char *src, char *msg, size_t msg_size) {
    const char *fp32 = strstr(src, "-FP32.bin");
    if (!fp32) return 0.05;
    char sibling[640];
    snprintf(sibling, sizeof sibling, "%.*s-Q5_1.bin", (int)(fp32 - src), src);
    if (access(sibling, R_OK) != 0) return 0.05;
    return fmax(0.05, model_distance(src, sibling, msg, msg_size));
}

/* A tensor's type as its file stores it: its stored rows' type where the
 * reader kept them (block types), else its own; DT_COUNT when absent. */
static dtype stored_type_of(const tensor_set *set, const char *name) {
    const tensor *t = tensor_set_find(set, name);
    return !t ? DT_COUNT : t->stored_rows ? t->stored_type : t->type;
}

/* An RWKV-7 file's LoRA factors as llama.cpp's tools leave them: a1 (and
 * v1, g1, a2 ...) in the file's type for q8_0, f16 beside the k-quants, w1
 * always f32. Files without an a1 (other versions) are left alone. */
static void check_lora_types(const char *src, const char *out, rwkv_quant_type type, char *msg, size_t msg_size) {
    tensor_set set;
    rwkv_error err;
    if (checkpoint_read(out, &set, &err) != RWKV_OK) {
        snprintf(msg, msg_size, "%.300s as %s: %.500s", src, rwkv_quant_type_name(type), err.message);
        return;
    }
    const dtype a1 = stored_type_of(&set, "blocks.1.att.a1"), w1 = stored_type_of(&set, "blocks.1.att.w1");
    tensor_set_free(&set);
    const dtype want = type == RWKV_QUANT_Q8_0 ? DT_Q8_0 : type == RWKV_QUANT_F32 ? DT_F32 : DT_F16;
    if (a1 != DT_COUNT && (a1 != want || w1 != DT_F32))
        snprintf(msg, msg_size, "%s as %s: the LoRA factors are %s (a1) and %s (w1), not %s and f32", src,
                 rwkv_quant_type_name(type), dtype_name(a1), w1 == DT_COUNT ? "missing" : dtype_name(w1),
                 dtype_name(want));
}

/* rwkv quantize on every RWKV version: the file it writes (rwkv.cpp for
 * v5, GGUF for v6/v7) loads back as the same model: to float rounding for
 * f32 and f16, and for the block types within a multiple of the yardstick
 * (8 and 6 bits: 1, 5 bits: 1.25, 4 bits: 3), RWKV-7's LoRA factors in the
 * types llama.cpp's tools write. The k-quants are refused for rwkv.cpp files. */
static void test_quantize_every_version(void) {
    static const struct {
        const char *src, *tokenizer;
    } sources[] = {
        {"reference/rwkv-cpp/tiny-rwkv-5v1-730K-FP32.bin", "bytes"},
        {"reference/rwkv-cpp/tiny-rwkv-5v2-730K-FP32.bin", "bytes"},
        {"reference/rwkv-cpp/tiny-rwkv-6v0-3m-Q5_1.bin", "bytes"},
        {"reference/rwkv-cpp/tiny-rwkv-7v0-834K-FP32.bin", "bytes"},
        {CASES "/tiny/model.f16.gguf", NULL},
    };
    static const struct {
        rwkv_quant_type type;
        double absolute, of_yardstick; /* the bound: absolute, or a multiple of the yardstick */
    } types[] = {{RWKV_QUANT_F32, 1e-4, 0}, {RWKV_QUANT_F16, 0.01, 0}, {RWKV_QUANT_Q8_0, 0, 1},
                 {RWKV_QUANT_Q6_K, 0, 1},   {RWKV_QUANT_Q5_1, 0, 1.25}, {RWKV_QUANT_Q4_K, 0, 3}};
    char msg[1024] = "";
    int ran = 0;
    for (size_t si = 0; si < sizeof sources / sizeof sources[0] && !msg[0]; si++) {
        char src[600], out[128];
        shared_path(src, sizeof src, sources[si].src);
        if (access(src, R_OK) != 0) continue;
        const double y = yardstick(src, msg, sizeof msg);
        for (size_t ti = 0; ti < sizeof types / sizeof types[0] && !msg[0]; ti++) {
            snprintf(out, sizeof out, "/tmp/rwkv-test-quant-%d.out", (int)getpid());
            rwkv_quant_options o = {types[ti].type, RWKV_QUANT_DEFAULT, sources[si].tokenizer};
            rwkv_error err;
            rwkv_status s = rwkv_quantize_opts(src, out, &o, &err);
            const char *name = rwkv_quant_type_name(types[ti].type);
            if (strstr(src, "5v") && (types[ti].type == RWKV_QUANT_Q4_K || types[ti].type == RWKV_QUANT_Q6_K)) {
                if (s != RWKV_ERR_UNSUPPORTED) snprintf(msg, sizeof msg, "%s: %s into an rwkv.cpp file must be refused", src, name);
                continue;
            }
            if (s != RWKV_OK) {
                snprintf(msg, sizeof msg, "quantize %.300s %s: %.500s", src, name, err.message);
                break;
            }
            double e = model_distance(src, out, msg, sizeof msg);
            double bound = types[ti].absolute > 0 ? types[ti].absolute : types[ti].of_yardstick * y;
            printf("# %s -> %s: logits within %.3g of the logit scale (bound %.3g)\n", sources[si].src, name, e, bound);
            if (!msg[0] && !(e <= bound))
                snprintf(msg, sizeof msg, "%s as %s: logits differ by %.3g of the logit scale (> %.3g)", src, name, e,
                         bound);
            if (!msg[0]) check_lora_types(src, out, types[ti].type, msg, sizeof msg);
            remove(out);
        }
        ran++;
    }
    CHECK(!msg[0], "%s", msg);
    if (!ran) SKIP("no source models under ../shared");
}

/* ---- malformed files --------------------------------------------------- */

/* A small valid GGUF file: architecture rwkv7, one f32 tensor [2, 32]. */
static size_t valid_file(const char *path, uint8_t **bytes) {
    static float data[64];
    gguf_out_kv kv[2] = {{.key = "general.architecture", .type = GGUF_STRING, .str = "rwkv7", .len = 5},
                         {.key = "rwkv7.wkv.head_size", .type = GGUF_U32, .u = 32}};
    tensor t = {.name = "token_embd.weight", .type = DT_F32, .ndim = 2, .shape = {2, 32}, .data = data,
                .nbytes = sizeof data};
    if (gguf_write(path, kv, 2, &t, 1, NULL) != RWKV_OK) return 0;
    FILE *f = fopen(path, "rb");
    *bytes = malloc(4096);
    size_t n = f && *bytes ? fread(*bytes, 1, 4096, f) : 0;
    if (f) fclose(f);
    return n;
}

static void put_u64_at(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static size_t find(const uint8_t *b, size_t n, const char *s) {
    size_t m = strlen(s);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(b + i, s, m) == 0) return i;
    return 0;
}

/* Writes b[0..n) to path and reads it: it must fail with a one-line message
 * naming the file and containing `want`. */
static int expect_error(const char *path, const uint8_t *b, size_t n, const char *want, char *msg, size_t msg_size) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) {
        if (f) fclose(f);
        snprintf(msg, msg_size, "cannot write %s", path);
        return 0;
    }
    fclose(f);
    tensor_set set;
    rwkv_error err;
    rwkv_status s = checkpoint_read(path, &set, &err);
    if (s == RWKV_OK) {
        tensor_set_free(&set);
        snprintf(msg, msg_size, "a broken file (expected '%s') was read", want);
        return 0;
    }
    if (!strstr(err.message, path) || strchr(err.message, '\n') || !strstr(err.message, want)) {
        snprintf(msg, msg_size, "message '%s' should name the file and say '%s'", err.message, want);
        return 0;
    }
    return 1;
}

static void test_gguf_bad_files(void) {
    char path[64], msg[1024] = "";
    snprintf(path, sizeof path, "/tmp/rwkv-test-gguf-%d.gguf", (int)getpid());
    uint8_t *good = NULL, *b = malloc(4096);
    size_t n = valid_file(path, &good);
    CHECK(n > 0 && b, "cannot write a GGUF file");
    tensor_set set;
    rwkv_error err;
    CHECK(checkpoint_read(path, &set, &err) == RWKV_OK, "the valid file must read: %s", err.message);
    CHECK(set.count == 1 && strcmp(set.tensors[0].name, "emb.weight") == 0, "token_embd.weight becomes emb.weight");
    tensor_set_free(&set);
    /* every truncation */
    for (size_t cut = 4; cut < n && !msg[0]; cut++) expect_error(path, good, cut, "GGUF", msg, sizeof msg);
    const size_t info = find(good, n, "token_embd.weight") + strlen("token_embd.weight"); /* ndim, dims, type, offset */
    const size_t arch = find(good, n, "rwkv7");
    static const struct {
        const char *what, *want;
    } cases[] = {
        {"magic", "unknown file format"},          {"version", "GGUF version 2"},
        {"tensor count", "more than the file"}, {"key count", "more than the file"},
        {"string length", "runs past the end"}, {"tensor type", "ggml type 10"},
        {"tensor offset", "not a multiple"},    {"offset past end", "runs past the end"},
        {"dimension", "dimension 0"},           {"architecture", "not one rwkv.c runs"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0] && !msg[0]; c++) {
        memcpy(b, good, n);
        switch (c) {
        case 0: b[0] = 'X'; break;
        case 1: b[4] = 2; break;
        case 2: put_u64_at(b + 8, (uint64_t)1 << 60); break;
        case 3: put_u64_at(b + 16, (uint64_t)1 << 40); break;
        case 4: put_u64_at(b + 24, (uint64_t)1 << 50); break; /* the first key's length */
        case 5: b[info + 4 + 16] = 10; break;                 /* Q2_K */
        case 6: put_u64_at(b + info + 4 + 16 + 4, 3); break;
        case 7: put_u64_at(b + info + 4 + 16 + 4, 1u << 20); break;
        case 8: put_u64_at(b + info + 4, 0); break;
        case 9: memcpy(b + arch, "llama", 5); break;
        }
        if (!expect_error(path, b, n, cases[c].want, msg, sizeof msg)) {
            remove(path);
            free(good), free(b);
            CHECK(0, "%s: %s", cases[c].what, msg);
        }
    }
    remove(path);
    free(good), free(b);
    CHECK(!msg[0], "%s", msg);
}

int main(void) {
    /* these tests check that files are read right, against logits of the
     * dequantized weights: block formats decode with float activations here
     * (the int8 path has its own tests, tests/test_dot_int8.c) */
    setenv("RWKV_ACTIVATIONS", "f32", 1);
    RUN(test_gguf_bad_files);
    RUN(test_gguf_cases);
    RUN(test_gguf_same_model_as_pth);
    RUN(test_gguf_vocabulary);
    RUN(test_quantize_every_version);
    return test_summary();
}
