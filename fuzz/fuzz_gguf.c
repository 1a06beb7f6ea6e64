/* Fuzz target for the GGUF reader: gguf_read() (container, tensor infos,
 * llama.cpp's RWKV names and transforms), then the World vocabulary reader
 * gguf_world_vocab() on the same bytes. Build and use: see fuzz/README.md. */
#include "fuzz_common.h"
#include "formats/gguf_rwkv.h"

static rwkv_status read_gguf_and_vocab(const char *path, tensor_set *set, rwkv_error *err) {
    char *bytes = NULL;
    uint32_t *offsets = NULL;
    int n_ids = 0;
    rwkv_error vocab_err;
    rwkv_status vs = gguf_world_vocab(path, set->file.data, set->file.size, &bytes, &offsets, &n_ids, &vocab_err);
    if (vs == RWKV_OK) {
        unsigned sum = 0; /* every token's bytes must be readable */
        for (uint32_t k = 0; k < offsets[n_ids]; k++) sum += (unsigned char)bytes[k];
        fuzz_sink += sum;
    } else if (!vocab_err.message[0] || !strstr(vocab_err.message, path) || strchr(vocab_err.message, '\n')) {
        abort();
    }
    free(bytes);
    free(offsets);
    return gguf_read(path, set, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_run(read_gguf_and_vocab, data, size); }
