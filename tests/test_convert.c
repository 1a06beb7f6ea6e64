/* rwkv_convert_to_safetensors: every vector checkpoint converted to each
 * float dtype and read back holds the same numbers (the vector weights are
 * exactly representable in bf16 and f16 — see the vector README), tensor by
 * tensor, with the official names and shapes. */
#include <dirent.h>
#include <unistd.h>

#include "formats/formats.h"
#include "rwkv.h"
#include "test.h"

static int same_values(const tensor_set *a, const tensor_set *b, char *msg, size_t msz) {
    if (a->count != b->count) {
        snprintf(msg, msz, "%d tensors vs %d", a->count, b->count);
        return 0;
    }
    for (int i = 0; i < a->count; i++) {
        const tensor *x = &a->tensors[i], *y = tensor_set_find(b, x->name);
        if (!y || y->ndim != x->ndim || memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim)) {
            snprintf(msg, msz, "tensor '%s' missing or reshaped", x->name);
            return 0;
        }
        size_t n = (size_t)tensor_numel(x);
        float *fx = malloc(n * 4 + 4), *fy = malloc(n * 4 + 4);
        dtype_to_f32(x->type, x->data, fx, n);
        dtype_to_f32(y->type, y->data, fy, n);
        int eq = memcmp(fx, fy, n * 4) == 0;
        free(fx);
        free(fy);
        if (!eq) {
            snprintf(msg, msz, "tensor '%s' values differ", x->name);
            return 0;
        }
    }
    return 1;
}

static void convert_case_dir(const char *dir) {
    static const struct { rwkv_dtype req; dtype want; } outs[] = {
        {RWKV_DTYPE_F32, DT_F32}, {RWKV_DTYPE_F16, DT_F16}, {RWKV_DTYPE_BF16, DT_BF16}, {RWKV_DTYPE_KEEP, DT_COUNT}};
    DIR *d = opendir(dir);
    CHECK(d, "cannot open %s", dir);
    struct dirent *e;
    int seen = 0;
    char out[] = "/tmp/rwkv-convert-XXXXXX";
    int fd = mkstemp(out);
    CHECK(fd >= 0, "mkstemp failed");
    close(fd);
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "model.", 6) != 0) continue;
        char in[2400];
        snprintf(in, sizeof in, "%s/%s", dir, e->d_name);
        tensor_set orig;
        rwkv_error err;
        if (checkpoint_read(in, &orig, &err) != RWKV_OK) {
            closedir(d);
            unlink(out);
            CHECK(0, "%s", err.message);
        }
        for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++) {
            tensor_set back;
            char msg[512] = "";
            int ok = rwkv_convert_to_safetensors(in, out, outs[k].req, &err) == RWKV_OK &&
                     checkpoint_read(out, &back, &err) == RWKV_OK;
            if (!ok) snprintf(msg, sizeof msg, "%s", err.message);
            if (ok) {
                ok = same_values(&orig, &back, msg, sizeof msg);
                for (int i = 0; ok && i < back.count; i++) {
                    dtype want = outs[k].want == DT_COUNT ? tensor_set_find(&orig, back.tensors[i].name)->type
                                                          : outs[k].want;
                    if (back.tensors[i].type != want) {
                        snprintf(msg, sizeof msg, "'%s' is %s, expected %s", back.tensors[i].name,
                                 dtype_name(back.tensors[i].type), dtype_name(want));
                        ok = 0;
                    }
                }
                tensor_set_free(&back);
            }
            if (!ok) {
                tensor_set_free(&orig);
                closedir(d);
                unlink(out);
                CHECK(0, "%s -> dtype #%d: %s", in, (int)outs[k].req, msg);
            }
        }
        tensor_set_free(&orig);
        seen++;
    }
    closedir(d);
    unlink(out);
    CHECK(seen > 0, "no model.* checkpoints in %s", dir);
}

static void test_convert_roundtrip_vectors(void) {
    char root[1024];
    if (!shared_path(root, sizeof root, "testvectors/rwkv4")) SKIP("../shared/testvectors/rwkv4 not present");
    DIR *d = opendir(root);
    CHECK(d, "cannot open %s", root);
    struct dirent *e;
    int cases = 0;
    while ((e = readdir(d))) {
        char dir[2048], probe[2100];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        snprintf(probe, sizeof probe, "%s/case.txt", dir);
        if (e->d_name[0] == '.' || access(probe, R_OK) != 0) continue;
        convert_case_dir(dir);
        if (test_current_failed) break;
        cases++;
    }
    closedir(d);
    CHECK(cases > 0 || test_current_failed, "no cases found under %s", root);
}

static void test_convert_rejects_bad_dtype(void) {
    rwkv_error err;
    CHECK(rwkv_convert_to_safetensors("/nonexistent", "/tmp/x.safetensors", (rwkv_dtype)42, &err) == RWKV_ERR_ARG,
          "an unknown dtype must be rejected");
    CHECK(rwkv_convert_to_safetensors("/nonexistent/model.pth", "/tmp/x.safetensors", RWKV_DTYPE_F32, &err) ==
              RWKV_ERR_IO, "a missing input must be an I/O error");
    CHECK(strstr(err.message, "/nonexistent/model.pth") != NULL, "the message names the file: %s", err.message);
}

int main(void) {
    RUN(test_convert_roundtrip_vectors);
    RUN(test_convert_rejects_bad_dtype);
    return test_summary();
}
