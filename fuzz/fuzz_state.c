/* Fuzz target for state files (rwkv_state_load): the input as a state file
 * for a tiny RWKV-7 model kept with the fuzz targets (fuzz/models/; another
 * model through RWKV_FUZZ_STATE_MODEL), whose seeds were saved from it so
 * that mutations get past the shape and fingerprint checks. Run it from the
 * repository root. See fuzz/README.md. */
#include "fuzz_file.h"

static rwkv_model *fuzz_model(void) {
    static rwkv_model *m;
    if (!m) {
        const char *path = getenv("RWKV_FUZZ_STATE_MODEL");
        rwkv_error err;
        if (rwkv_model_load(path ? path : "fuzz/models/state-model.safetensors", &m, &err) != RWKV_OK) {
            fprintf(stderr, "fuzz_state: %s (run from the repository root)\n", err.message);
            exit(2);
        }
    }
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rwkv_model *m = fuzz_model();
    const char *path = fuzz_file(data, size);
    rwkv_state *st;
    rwkv_error err;
    if (rwkv_state_new(m, &st, &err) != RWKV_OK) abort();
    rwkv_status s = rwkv_state_load(st, path, &err);
    fuzz_check_error(s, &err, path);
    if (s == RWKV_OK) { /* a loaded state is usable */
        float logits[16];
        if (rwkv_eval(m, st, 1, logits, &err) != RWKV_OK) abort();
        fuzz_sink += logits[0] > 0;
    }
    rwkv_state_free(st);
    return 0;
}
