/* Fuzz target for models read from GGUF files and run: rwkv_model_load on
 * the input, then a fresh state, a two-token prompt in sequence mode and one
 * decode step on one thread. What the loader accepts (any shape, tensor type
 * or size a mutation leaves consistent) must evaluate without a crash or
 * undefined behaviour; what it refuses it refuses with the error contract,
 * and so does an evaluation that fails. Seeds: the fuzz_gguf corpus (a Q8_0
 * RWKV-7 file with its vocabulary). See fuzz/README.md. */
#include "fuzz_file.h"

static void run(rwkv_model *m) {
    rwkv_model_info info;
    rwkv_model_get_info(m, &info);
    rwkv_model_set_threads(m, 1);
    float *logits = malloc(sizeof(float) * (size_t)info.n_vocab);
    rwkv_state *st = NULL;
    rwkv_error err;
    if (!logits || rwkv_state_new(m, &st, &err) != RWKV_OK) abort();
    const int prompt[2] = {0, info.n_vocab - 1};
    rwkv_status s = rwkv_eval_sequence(m, st, prompt, 2, logits, 0, &err);
    fuzz_check_error(s, &err, NULL);
    if (s == RWKV_OK) {
        s = rwkv_eval(m, st, info.n_vocab / 2, logits, &err);
        fuzz_check_error(s, &err, NULL);
    }
    if (s == RWKV_OK) fuzz_sink += logits[0] > logits[info.n_vocab - 1];
    rwkv_state_free(st);
    free(logits);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    rwkv_model *m = NULL;
    rwkv_error err;
    rwkv_status s = rwkv_model_load(path, &m, &err);
    fuzz_check_error(s, &err, path);
    if (s == RWKV_OK) run(m);
    rwkv_model_free(m);
    return 0;
}
