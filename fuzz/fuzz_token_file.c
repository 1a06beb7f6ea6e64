/* Fuzz target for the token-file reader of training (header "RWKVTOK", then
 * the ids): token_data_open on the input as a file, then every token read.
 * See fuzz/README.md. */
#include "fuzz_file.h"
#include "train/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    token_data d;
    rwkv_error err;
    rwkv_status s = token_data_open(path, &d, &err);
    fuzz_check_error(s, &err, path);
    if (s == RWKV_OK) {
        unsigned sum = 0; /* every token lies in the file and below the vocabulary */
        for (uint64_t i = 0; i < d.n_tokens; i++) {
            int t = token_at(&d, i);
            if (t < 0 || t >= d.n_vocab) abort();
            sum += (unsigned)t;
        }
        if (d.n_train + d.n_val != d.n_tokens) abort();
        fuzz_sink += sum;
        token_data_close(&d);
    }
    return 0;
}
