/* transformers' RWKV-4 layout (RwkvForCausalLM): model folders, shard
 * indexes, pytorch_model.bin, config.json checks and `convert --layout hf`.
 *
 * Every case of the transformers-made vector set ships the same weights with
 * official names and, in hf/, as transformers saved them; each must read as
 * exactly the official tensors. The sharded and pytorch_model.bin folders are
 * made here from a case's hf/ weights. Broken indexes and configs must give
 * one-line errors that say what is wrong. Converting to the layout and back
 * is bit-exact, and what the converter writes is what transformers writes. */
#include <jansson.h>

#include "core/fs.h"
#include "formats/formats.h"
#include "formats/hf.h"
#include "pth_build.h"
#include "rwkv.h"
#include "rwkv_train.h"
#include "test.h"

#define HF_SET "../shared/testvectors/hf-rwkv4"
#define MAX_CASES 32

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* The case folders of the set that hold both an official file and hf/. */
static int list_cases(char dirs[][512], int max) {
    DIR *d = opendir(HF_SET);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (e->d_name[0] == '.') continue;
        char hf[600], off[600];
        snprintf(hf, sizeof hf, HF_SET "/%s/hf", e->d_name);
        snprintf(off, sizeof off, HF_SET "/%s/model.f32.safetensors", e->d_name);
        if (is_directory(hf) && file_exists(off)) snprintf(dirs[n++], 512, HF_SET "/%s", e->d_name);
    }
    closedir(d);
    return n;
}

/* Same names, dtypes, shapes and bytes (the order may differ). */
static int same_tensors(const tensor_set *a, const tensor_set *b, char *msg, size_t msz) {
    if (a->count != b->count) {
        snprintf(msg, msz, "%d tensors vs %d", a->count, b->count);
        return 0;
    }
    for (int i = 0; i < a->count; i++) {
        const tensor *x = &a->tensors[i], *y = tensor_set_find(b, x->name);
        if (!y) {
            snprintf(msg, msz, "'%s' missing", x->name);
            return 0;
        }
        int same_shape = x->ndim == y->ndim;
        for (int k = 0; same_shape && k < x->ndim; k++) same_shape = x->shape[k] == y->shape[k];
        if (x->type != y->type || !same_shape || x->nbytes != y->nbytes || memcmp(x->data, y->data, x->nbytes)) {
            snprintf(msg, msz, "'%s' differs", x->name);
            return 0;
        }
    }
    return 1;
}

static int read_official(const char *case_dir, tensor_set *set) {
    char path[700];
    snprintf(path, sizeof path, "%.511s/model.f32.safetensors", case_dir);
    return checkpoint_read(path, set, NULL) == RWKV_OK;
}

/* checkpoint_read(path) gives exactly the case's official tensors. */
static int reads_as_official(const char *path, const char *case_dir, char *msg, size_t msz) {
    tensor_set got, want;
    rwkv_error err;
    if (checkpoint_read(path, &got, &err) != RWKV_OK) {
        snprintf(msg, msz, "%.500s", err.message);
        return 0;
    }
    int ok = read_official(case_dir, &want);
    if (!ok) snprintf(msg, msz, "cannot read the official file of %s", case_dir);
    ok = ok && same_tensors(&got, &want, msg, msz);
    tensor_set_free(&got);
    tensor_set_free(&want);
    return ok;
}

static void make_temp_dir(char *dir) {
    strcpy(dir, "/tmp/rwkv-test-hf-XXXXXX");
    if (!mkdtemp(dir)) dir[0] = '\0';
}

static void remove_dir(const char *dir) { /* flat or one level of folders: what the tests make */
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (is_directory(p)) remove_dir(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    int ok = in && out;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = 0;
    return ok;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    int ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    return ok;
}

/* The tensors of a case's hf/model.safetensors under transformers' names. */
static int read_hf_raw(const char *case_dir, tensor_set *set) {
    char path[700];
    snprintf(path, sizeof path, "%.511s/hf/model.safetensors", case_dir);
    return checkpoint_read_file(path, set, NULL) == RWKV_OK;
}

/* An error result: a failure, one line, naming `where` and holding `needle`. */
static int is_error(rwkv_status s, const rwkv_error *err, const char *where, const char *needle) {
    return s != RWKV_OK && err->message[0] && !strchr(err->message, '\n') && strstr(err->message, where) &&
           strstr(err->message, needle);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

static void test_folder_reads_as_official(void) {
    char cases[MAX_CASES][512], msg[600], path[700];
    int n = list_cases(cases, MAX_CASES);
    if (n == 0) SKIP("no case with hf/ in " HF_SET);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%.511s/hf", cases[i]);
        CHECK(reads_as_official(path, cases[i], msg, sizeof msg), "%s: %s", path, msg);
        snprintf(path, sizeof path, "%.511s/hf/model.safetensors", cases[i]);
        CHECK(reads_as_official(path, cases[i], msg, sizeof msg), "%s: %s", path, msg);
    }
}

/* The model API sees the folder as the RWKV-4 model it is, with the same logits. */
static void test_folder_loads_as_model(void) {
    char cases[MAX_CASES][512], path[700], off[700];
    if (list_cases(cases, MAX_CASES) == 0) SKIP("no case with hf/ in " HF_SET);
    snprintf(path, sizeof path, "%.511s/hf", cases[0]);
    snprintf(off, sizeof off, "%.511s/model.f32.safetensors", cases[0]);
    rwkv_model *a = NULL, *b = NULL;
    rwkv_error err;
    CHECK(rwkv_model_load(path, &a, &err) == RWKV_OK, "%.500s", err.message);
    rwkv_model_info ia, ib;
    rwkv_model_get_info(a, &ia);
    int ok = strcmp(ia.version, "4") == 0 && rwkv_model_load(off, &b, &err) == RWKV_OK;
    if (ok) rwkv_model_get_info(b, &ib);
    ok = ok && ia.n_layer == ib.n_layer && ia.n_embd == ib.n_embd && ia.n_vocab == ib.n_vocab &&
         strcmp(ia.layout, "transformers") == 0 && strcmp(ib.layout, "official") == 0;
    rwkv_state *sa = NULL, *sb = NULL;
    float *la = calloc((size_t)ia.n_vocab, sizeof(float)), *lb = calloc((size_t)ia.n_vocab, sizeof(float));
    int tokens[3] = {1, 2, 3};
    ok = ok && rwkv_state_new(a, &sa, &err) == RWKV_OK && rwkv_state_new(b, &sb, &err) == RWKV_OK &&
         rwkv_eval_sequence(a, sa, tokens, 3, la, 0, &err) == RWKV_OK &&
         rwkv_eval_sequence(b, sb, tokens, 3, lb, 0, &err) == RWKV_OK;
    /* the same weights; only where the kernels find them in memory differs, which
     * can change the last bit of a sum */
    for (int i = 0; ok && i < ia.n_vocab; i++) ok = fabsf(la[i] - lb[i]) <= 1e-5f * (1 + fabsf(lb[i]));
    rwkv_state_free(sa);
    rwkv_state_free(sb);
    free(la);
    free(lb);
    rwkv_model_free(a);
    rwkv_model_free(b);
    CHECK(ok, "the hf folder and the official file of %s differ (%.500s)", cases[0], err.message);
}

#define SHARD1 "model-00001-of-00002.safetensors"

/* pytorch_model.bin as torch.save writes a state dict: one storage per tensor. */
static int write_pytorch_bin(const tensor *tensors, int count, const char *path) {
    bytes pkl = {0}, zip = {0};
    member *m = calloc((size_t)count + 1, sizeof *m);
    char (*keys)[16] = calloc((size_t)count, sizeof *keys), (*names)[32] = calloc((size_t)count, sizeof *names);
    int ok = m && keys && names;
    p_begin_odict(&pkl);
    b_u8(&pkl, '(');
    for (int i = 0; ok && i < count; i++) {
        const tensor *t = &tensors[i];
        snprintf(keys[i], sizeof keys[i], "%d", i);
        tdesc d = {t->type == DT_F16 ? "HalfStorage" : t->type == DT_BF16 ? "BFloat16Storage" : "FloatStorage",
                   keys[i], (uint32_t)tensor_numel(t), 0, t->ndim, {0}, {0}};
        ok = t->type == DT_F32 || t->type == DT_F16 || t->type == DT_BF16;
        int64_t stride = 1;
        for (int k = t->ndim - 1; k >= 0; k--) {
            d.shape[k] = t->shape[k];
            d.stride[k] = stride;
            stride *= t->shape[k];
        }
        p_str(&pkl, t->name);
        p_tensor(&pkl, &d, i == 0);
        snprintf(names[i], sizeof names[i], "archive/data/%d", i);
        m[i + 1] = (member){names[i], t->data, t->nbytes, 0};
    }
    b_u8(&pkl, 'u');
    b_u8(&pkl, '.');
    m[0] = (member){"archive/data.pkl", pkl.p, pkl.n, 0};
    if (ok) zip_build(&zip, m, count + 1, 0);
    FILE *f = ok ? fopen(path, "wb") : NULL;
    ok = f && fwrite(zip.p, 1, zip.n, f) == zip.n;
    if (f && fclose(f) != 0) ok = 0;
    b_free(&pkl);
    b_free(&zip);
    free(m);
    free(keys);
    free(names);
    return ok;
}

/* Writes the case's transformers tensors as two shards and their index, as
 * safetensors or (pytorch) as pytorch_model-*.bin with pytorch_model.bin.index.json. */
static int write_shards(const char *case_dir, const char *dir, int pytorch) {
    tensor_set raw;
    if (!read_hf_raw(case_dir, &raw)) return 0;
    int half = raw.count / 2, ok = 1;
    const char *names[2] = {pytorch ? "pytorch_model-00001-of-00002.bin" : SHARD1,
                            pytorch ? "pytorch_model-00002-of-00002.bin" : "model-00002-of-00002.safetensors"};
    for (int k = 0; k < 2; k++) {
        char path[700];
        const tensor *t = raw.tensors + (k ? half : 0);
        int n = k ? raw.count - half : half;
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        ok = ok && (pytorch ? write_pytorch_bin(t, n, path) : safetensors_write(path, t, n, DT_COUNT, NULL) == RWKV_OK);
    }
    json_t *root = json_object(), *map = json_object(), *meta = json_object();
    json_object_set_new(meta, "total_size", json_integer(0));
    for (int i = 0; i < raw.count; i++) json_object_set_new(map, raw.tensors[i].name, json_string(names[i >= half]));
    json_object_set_new(root, "metadata", meta);
    json_object_set_new(root, "weight_map", map);
    char a[700], cfg_from[700], cfg_to[700];
    snprintf(a, sizeof a, "%s/%s", dir, pytorch ? "pytorch_model.bin.index.json" : "model.safetensors.index.json");
    ok = ok && json_dump_file(root, a, JSON_INDENT(2)) == 0;
    json_decref(root);
    tensor_set_free(&raw);
    snprintf(cfg_from, sizeof cfg_from, "%.511s/hf/config.json", case_dir);
    snprintf(cfg_to, sizeof cfg_to, "%s/config.json", dir);
    return ok && copy_file(cfg_from, cfg_to);
}

static void test_sharded_folder(void) {
    char cases[MAX_CASES][512], dir[64], msg[600], path[700];
    int n = list_cases(cases, MAX_CASES);
    if (n == 0) SKIP("no case with hf/ in " HF_SET);
    for (int i = 0; i < n; i++) {
        for (int pytorch = 0; pytorch <= 1; pytorch++) {
            make_temp_dir(dir);
            CHECK(dir[0] && write_shards(cases[i], dir, pytorch), "cannot write shards of %s", cases[i]);
            int ok = reads_as_official(dir, cases[i], msg, sizeof msg);
            snprintf(path, sizeof path, "%s/%s", dir, pytorch ? "pytorch_model.bin.index.json" : "model.safetensors.index.json");
            ok = ok && reads_as_official(path, cases[i], msg, sizeof msg);
            remove_dir(dir);
            CHECK(ok, "%s, sharded%s: %s", cases[i], pytorch ? " pytorch_model.bin" : "", msg);
        }
    }
}

static void test_pytorch_model_bin_folder(void) {
    char cases[MAX_CASES][512], dir[64], msg[600], path[700], cfg[700];
    int n = list_cases(cases, MAX_CASES);
    if (n == 0) SKIP("no case with hf/ in " HF_SET);
    for (int i = 0; i < n; i++) {
        tensor_set raw;
        CHECK(read_hf_raw(cases[i], &raw), "cannot read %s/hf", cases[i]);
        make_temp_dir(dir);
        snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
        int ok = dir[0] && write_pytorch_bin(raw.tensors, raw.count, path);
        tensor_set_free(&raw);
        snprintf(cfg, sizeof cfg, "%.511s/hf/config.json", cases[i]);
        snprintf(path, sizeof path, "%s/config.json", dir);
        ok = ok && copy_file(cfg, path);
        if (!ok) snprintf(msg, sizeof msg, "cannot write the folder");
        ok = ok && reads_as_official(dir, cases[i], msg, sizeof msg);
        remove_dir(dir);
        CHECK(ok, "%s, pytorch_model.bin: %s", cases[i], msg);
    }
}

/* ------------------------------------------------------------------------ */
/* Broken indexes and configs                                               */
/* ------------------------------------------------------------------------ */

/* Replaces the folder's index by `json` and expects an error holding `needle`. */
static int bad_index(const char *dir, const char *json, const char *needle, char *msg, size_t msz) {
    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    tensor_set set;
    rwkv_error err;
    if (!write_text(path, json)) {
        snprintf(msg, msz, "cannot write %s", path);
        return 0;
    }
    rwkv_status s = checkpoint_read(dir, &set, &err);
    if (s == RWKV_OK) tensor_set_free(&set);
    if (!is_error(s, &err, path, needle)) {
        snprintf(msg, msz, "index %.600s: got '%.500s', expected an error naming %s and '%s'", json,
                 s == RWKV_OK ? "ok" : err.message, path, needle);
        return 0;
    }
    return 1;
}

static void test_bad_indexes(void) {
    char cases[MAX_CASES][512], dir[64], msg[2400];
    if (list_cases(cases, MAX_CASES) == 0) SKIP("no case with hf/ in " HF_SET);
    make_temp_dir(dir);
    CHECK(dir[0] && write_shards(cases[0], dir, 0), "cannot write shards of %s", cases[0]);
    tensor_set raw;
    CHECK(read_hf_raw(cases[0], &raw), "cannot read %s/hf", cases[0]);
    /* the first shard holds raw.tensors[0 .. count/2) */
    char first[160], second[160], all_first[8192];
    snprintf(first, sizeof first, "%s", raw.tensors[0].name);
    snprintf(second, sizeof second, "%s", raw.tensors[raw.count - 1].name);
    int pos = snprintf(all_first, sizeof all_first, "{\"weight_map\": {");
    for (int i = 0; i < raw.count / 2 && pos < (int)sizeof all_first - 200; i++)
        pos += snprintf(all_first + pos, sizeof all_first - (size_t)pos, "%s\"%s\": \"" SHARD1 "\"", i ? ", " : "",
                        raw.tensors[i].name);
    tensor_set_free(&raw);
    struct {
        char json[8400];
        const char *needle;
    } bad[10];
    int nb = 0;
    snprintf(bad[nb].json, sizeof bad[nb].json, "{\"weight_map\": {\"%s\": \"model-00009-of-00009.safetensors\"}}", first);
    bad[nb++].needle = "model-00009-of-00009.safetensors"; /* a missing shard */
    snprintf(bad[nb].json, sizeof bad[nb].json, "{\"weight_map\": {\"%s\": \"" SHARD1 "\", \"%s\": \"" SHARD1 "\"}}", first,
             first);
    bad[nb++].needle = "duplicate"; /* a tensor listed twice */
    snprintf(bad[nb].json, sizeof bad[nb].json, "{\"weight_map\": {\"%s\": \"../hf/model.safetensors\"}}", first);
    bad[nb++].needle = "not a plain file name";
    snprintf(bad[nb].json, sizeof bad[nb].json, "{\"weight_map\": {\"%s\": \"/etc/passwd\"}}", first);
    bad[nb++].needle = "not a plain file name";
    snprintf(bad[nb].json, sizeof bad[nb].json, "{\"weight_map\": {\"%s\": \"..\"}}", first);
    bad[nb++].needle = "not a plain file name";
    snprintf(bad[nb].json, sizeof bad[nb].json, "{\"weight_map\": {\"%s\": \"model.safetensors.index.json\"}}", first);
    bad[nb++].needle = "unknown file format"; /* an index naming itself: no recursion */
    snprintf(bad[nb].json, sizeof bad[nb].json, "%s, \"%s\": \"" SHARD1 "\"}}", all_first, second);
    bad[nb++].needle = "does not hold it"; /* listed in a shard that lacks it */
    snprintf(bad[nb].json, sizeof bad[nb].json, "{\"weight_map\": {\"%s\": \"" SHARD1 "\"}}", first);
    bad[nb++].needle = "which weight_map does not list"; /* a shard holding more than listed */
    snprintf(bad[nb].json, sizeof bad[nb].json, "{\"weight_map\": {}}");
    bad[nb++].needle = "lists no tensors";
    snprintf(bad[nb].json, sizeof bad[nb].json, "{\"metadata\": {}}");
    bad[nb++].needle = "weight_map";
    int ok = 1;
    for (int i = 0; ok && i < nb; i++) ok = bad_index(dir, bad[i].json, bad[i].needle, msg, sizeof msg);
    remove_dir(dir);
    CHECK(ok, "%s", msg);
}

/* The case's hf/ folder with one config field replaced by `value` (JSON). */
static rwkv_status load_with_config_field(const char *case_dir, const char *dir, const char *field,
                                          const char *value, rwkv_error *err) {
    char path[700];
    snprintf(path, sizeof path, "%.511s/hf/config.json", case_dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    if (!cfg) return rwkv_fail(err, RWKV_ERR_IO, "cannot read %s", path);
    json_object_set_new(cfg, field, json_loads(value, JSON_DECODE_ANY, NULL));
    snprintf(path, sizeof path, "%s/config.json", dir);
    int ok = json_dump_file(cfg, path, JSON_INDENT(2)) == 0;
    json_decref(cfg);
    if (!ok) return rwkv_fail(err, RWKV_ERR_IO, "cannot write %s", path);
    rwkv_model *m = NULL;
    rwkv_status s = rwkv_model_load(dir, &m, err);
    rwkv_model_free(m);
    return s;
}

static void test_config_mismatch_names_the_field(void) {
    char cases[MAX_CASES][512], dir[64], from[700], to[700];
    if (list_cases(cases, MAX_CASES) == 0) SKIP("no case with hf/ in " HF_SET);
    tensor_set off;
    CHECK(read_official(cases[0], &off), "cannot read %s", cases[0]);
    hf_shape sh;
    CHECK(hf_shape_of(cases[0], &off, &sh, NULL) == RWKV_OK, "no RWKV-4 shape in %s", cases[0]);
    tensor_set_free(&off);
    make_temp_dir(dir);
    snprintf(from, sizeof from, "%.511s/hf/model.safetensors", cases[0]);
    snprintf(to, sizeof to, "%s/model.safetensors", dir);
    CHECK(dir[0] && copy_file(from, to), "cannot copy %s", from);
    char v[6][32];
    snprintf(v[0], 32, "%lld", (long long)sh.n_vocab + 1);
    snprintf(v[1], 32, "%lld", (long long)sh.n_embd * 2);
    snprintf(v[2], 32, "%lld", (long long)sh.n_layer + 1);
    snprintf(v[3], 32, "%lld", (long long)sh.dim_att + 8);
    snprintf(v[4], 32, "%lld", (long long)sh.n_ffn + 8);
    snprintf(v[5], 32, "\"%lld\"", (long long)sh.n_embd); /* right number, wrong type */
    const struct {
        const char *field, *value;
    } bad[] = {{"vocab_size", v[0]},         {"hidden_size", v[1]},           {"num_hidden_layers", v[2]},
               {"attention_hidden_size", v[3]}, {"intermediate_size", v[4]}, {"hidden_size", v[5]},
               {"model_type", "\"rwkv5\""},  {"layer_norm_epsilon", "1e-6"}, {"tie_word_embeddings", "1"}};
    char msg[1400] = "";
    rwkv_error err;
    snprintf(to, sizeof to, "%s/config.json", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0] && !msg[0]; i++) {
        rwkv_status s = load_with_config_field(cases[0], dir, bad[i].field, bad[i].value, &err);
        if (!is_error(s, &err, to, bad[i].field))
            snprintf(msg, sizeof msg, "%s = %s: got '%.500s'", bad[i].field, bad[i].value, s ? err.message : "ok");
    }
    /* the config as transformers wrote it, and absent fields at their defaults, load */
    if (!msg[0] && load_with_config_field(cases[0], dir, "use_cache", "false", &err) != RWKV_OK)
        snprintf(msg, sizeof msg, "a good config: %.500s", err.message);
    if (!msg[0] && sh.dim_att == sh.n_embd &&
        load_with_config_field(cases[0], dir, "attention_hidden_size", "null", &err) != RWKV_OK)
        snprintf(msg, sizeof msg, "attention_hidden_size at its default: %.500s", err.message);
    remove_dir(dir);
    CHECK(!msg[0], "%s", msg);
}

/* With tie_word_embeddings transformers saves the shared embedding once, as
 * rwkv.embeddings.weight: the head is read as that tensor. */
static void test_tied_head(void) {
    char cases[MAX_CASES][512], dir[64], path[700];
    if (list_cases(cases, MAX_CASES) == 0) SKIP("no case with hf/ in " HF_SET);
    tensor_set raw;
    CHECK(read_hf_raw(cases[0], &raw), "cannot read %s/hf", cases[0]);
    make_temp_dir(dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int ok = dir[0] && tensor_set_remove(&raw, "head.weight") == 0 &&
             safetensors_write(path, raw.tensors, raw.count, DT_COUNT, NULL) == RWKV_OK;
    tensor_set_free(&raw);
    rwkv_error err;
    rwkv_status untied = ok ? load_with_config_field(cases[0], dir, "tie_word_embeddings", "false", &err) : RWKV_OK;
    int untied_fails = untied != RWKV_OK && strstr(err.message, "head.weight");
    char untied_msg[600];
    snprintf(untied_msg, sizeof untied_msg, "%.500s", untied ? err.message : "ok");
    rwkv_status tied = ok ? load_with_config_field(cases[0], dir, "tie_word_embeddings", "true", &err) : RWKV_ERR_IO;
    tensor_set set;
    const tensor *head = NULL, *emb = NULL;
    int same = tied == RWKV_OK && checkpoint_read(dir, &set, &err) == RWKV_OK;
    if (same) {
        head = tensor_set_find(&set, "head.weight");
        emb = tensor_set_find(&set, "emb.weight");
        same = head && emb && head->nbytes == emb->nbytes && memcmp(head->data, emb->data, emb->nbytes) == 0;
        tensor_set_free(&set);
    }
    remove_dir(dir);
    CHECK(ok, "cannot write the tied folder");
    CHECK(untied_fails, "an untied folder without head.weight: '%s'", untied_msg);
    CHECK(same, "tied: the head is not the embedding (%.500s)", tied ? err.message : "loaded");
}

/* A set with transformers' names must hold only them, each parameter once. */
static void test_unknown_or_doubled_names(void) {
    static const float data[4] = {1, 2, 3, 4};
    const struct {
        const char *a, *b, *needle;
    } bad[] = {{"rwkv.embeddings.weight", "rwkv.blocks.0.attention.gate.weight", "attention.gate.weight"},
               {"rwkv.embeddings.weight", "emb.weight", "same parameter"},
               {"rwkv.blocks.00.ln1.weight", "rwkv.ln_out.bias", "blocks.00"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tensor t[2] = {{.name = (char *)bad[i].a, .type = DT_F32, .ndim = 1, .shape = {4}, .data = data},
                       {.name = (char *)bad[i].b, .type = DT_F32, .ndim = 1, .shape = {4}, .data = data}};
        t[0].nbytes = t[1].nbytes = sizeof data;
        char path[64];
        strcpy(path, "/tmp/rwkv-test-hf-XXXXXX");
        int fd = mkstemp(path);
        CHECK(fd >= 0, "no temp file");
        close(fd);
        CHECK(safetensors_write(path, t, 2, DT_COUNT, NULL) == RWKV_OK, "cannot write %s", path);
        tensor_set set;
        rwkv_error err;
        rwkv_status s = checkpoint_read(path, &set, &err);
        if (s == RWKV_OK) tensor_set_free(&set);
        unlink(path);
        CHECK(is_error(s, &err, path, bad[i].needle), "%s + %s: got '%s'", bad[i].a, bad[i].b,
              s ? err.message : "ok");
    }
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */
/* ------------------------------------------------------------------------ */

/* official -> hf -> official is bit-exact, for every file of every case. */
static void test_round_trip_bit_exact(void) {
    char cases[MAX_CASES][512], dir[64];
    int n = list_cases(cases, MAX_CASES);
    if (n == 0) SKIP("no case with hf/ in " HF_SET);
    static const char *const files[] = {"model.f32.safetensors", "model.f32.pth", "model.bf16.pth"};
    for (int i = 0; i < n; i++) {
        for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
            char in[700], hf[100], back[100], direct[100];
            snprintf(in, sizeof in, "%.511s/%s", cases[i], files[f]);
            if (!file_exists(in)) continue;
            make_temp_dir(dir);
            snprintf(hf, sizeof hf, "%s/hf", dir);
            snprintf(back, sizeof back, "%s/back.safetensors", dir);
            snprintf(direct, sizeof direct, "%s/direct.safetensors", dir);
            rwkv_error err;
            int ok = rwkv_convert_to_hf(in, hf, RWKV_DTYPE_KEEP, &err) == RWKV_OK &&
                     rwkv_convert_to_safetensors(hf, back, RWKV_DTYPE_KEEP, &err) == RWKV_OK &&
                     rwkv_convert_to_safetensors(in, direct, RWKV_DTYPE_KEEP, &err) == RWKV_OK;
            bytes a = {0}, b = {0};
            FILE *fa = ok ? fopen(back, "rb") : NULL, *fb = ok ? fopen(direct, "rb") : NULL;
            char buf[65536];
            size_t k;
            while (fa && (k = fread(buf, 1, sizeof buf, fa)) > 0) b_put(&a, buf, k);
            while (fb && (k = fread(buf, 1, sizeof buf, fb)) > 0) b_put(&b, buf, k);
            if (fa) fclose(fa);
            if (fb) fclose(fb);
            int same = ok && a.n > 0 && a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
            b_free(&a);
            b_free(&b);
            remove_dir(dir);
            CHECK(ok, "%s: %.500s", in, err.message);
            CHECK(same, "%s: official -> hf -> official differs from official -> official", in);
        }
    }
}

/* What the converter writes is what transformers' save_pretrained wrote for
 * the same weights: the same names, dtypes, shapes and bytes, and a config
 * with the same values for everything that describes the model. */
static void test_written_folder_matches_transformers(void) {
    char cases[MAX_CASES][512], dir[64], in[700], hf[100], path[700];
    int n = list_cases(cases, MAX_CASES);
    if (n == 0) SKIP("no case with hf/ in " HF_SET);
    for (int i = 0; i < n; i++) {
        make_temp_dir(dir);
        snprintf(in, sizeof in, "%.511s/model.f32.safetensors", cases[i]);
        snprintf(hf, sizeof hf, "%s/hf", dir);
        rwkv_error err;
        tensor_set ours, theirs;
        int ok = rwkv_convert_to_hf(in, hf, RWKV_DTYPE_KEEP, &err) == RWKV_OK;
        snprintf(path, sizeof path, "%.511s/model.safetensors", hf);
        char msg[600] = "cannot convert or read back";
        ok = ok && checkpoint_read_file(path, &ours, NULL) == RWKV_OK;
        if (ok && read_hf_raw(cases[i], &theirs)) {
            ok = same_tensors(&ours, &theirs, msg, sizeof msg);
            tensor_set_free(&theirs);
        } else {
            ok = 0;
        }
        if (ok) tensor_set_free(&ours);
        snprintf(path, sizeof path, "%.511s/config.json", hf);
        json_t *mine = ok ? json_load_file(path, 0, NULL) : NULL;
        snprintf(path, sizeof path, "%.511s/hf/config.json", cases[i]);
        json_t *ref = ok ? json_load_file(path, 0, NULL) : NULL;
        static const char *const fields[] = {"architectures",     "model_type",        "vocab_size",
                                             "hidden_size",       "num_hidden_layers", "attention_hidden_size",
                                             "intermediate_size", "layer_norm_epsilon", "tie_word_embeddings",
                                             "bos_token_id",      "eos_token_id"};
        for (size_t f = 0; ok && f < sizeof fields / sizeof fields[0]; f++) {
            json_t *x = json_object_get(mine, fields[f]), *y = json_object_get(ref, fields[f]);
            int same = x && y && (json_equal(x, y) || (json_is_number(x) && json_is_number(y) &&
                                                       json_number_value(x) == json_number_value(y)));
            if (!same) snprintf(msg, sizeof msg, "config field %s differs", fields[f]);
            ok = same;
        }
        json_decref(mine);
        json_decref(ref);
        remove_dir(dir);
        CHECK(ok, "%s: %s", cases[i], msg);
    }
}

/* A model rwkv.c makes itself (the trainer's file layout) goes out to the
 * layout and comes back as the same model. */
static void test_own_model_round_trip(void) {
    char dir[64], model[100], hf[100];
    make_temp_dir(dir);
    CHECK(dir[0], "no temp dir");
    snprintf(model, sizeof model, "%s/model.safetensors", dir);
    snprintf(hf, sizeof hf, "%s/hf", dir);
    rwkv_init_options opt = rwkv_init_options_default();
    opt.n_layer = 2;
    opt.n_embd = 32;
    opt.n_vocab = 50;
    opt.n_ffn = 96;
    rwkv_error err;
    int ok = rwkv_init_checkpoint(&opt, model, &err) == RWKV_OK && rwkv_convert_to_hf(model, hf, RWKV_DTYPE_KEEP, &err) == RWKV_OK;
    tensor_set a, b;
    char msg[600] = "";
    if (ok && checkpoint_read(model, &a, &err) == RWKV_OK) {
        if (checkpoint_read(hf, &b, &err) == RWKV_OK) {
            ok = same_tensors(&a, &b, msg, sizeof msg);
            tensor_set_free(&b);
        } else {
            ok = 0;
        }
        tensor_set_free(&a);
    } else {
        ok = 0;
    }
    /* a GPT has no place in the layout */
    snprintf(model, sizeof model, "%s/gpt.safetensors", dir);
    snprintf(hf, sizeof hf, "%s/gpt-hf", dir);
    opt.arch = "gpt";
    rwkv_error gerr;
    rwkv_status gs = rwkv_init_checkpoint(&opt, model, &gerr) == RWKV_OK ? rwkv_convert_to_hf(model, hf, RWKV_DTYPE_KEEP, &gerr)
                                                                       : RWKV_OK;
    remove_dir(dir);
    CHECK(ok, "%.500s%s", err.message, msg);
    CHECK(is_error(gs, &gerr, model, "RWKV-4 models only"), "converting a GPT: '%.500s'", gs ? gerr.message : "ok");
}

int main(void) {
    RUN(test_folder_reads_as_official);
    RUN(test_folder_loads_as_model);
    RUN(test_sharded_folder);
    RUN(test_pytorch_model_bin_folder);
    RUN(test_bad_indexes);
    RUN(test_config_mismatch_names_the_field);
    RUN(test_tied_head);
    RUN(test_unknown_or_doubled_names);
    RUN(test_round_trip_bit_exact);
    RUN(test_written_folder_matches_transformers);
    RUN(test_own_model_round_trip);
    return test_summary();
}
