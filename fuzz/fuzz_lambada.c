/* Fuzz target for the LAMBADA reader (JSON Lines of {"text": ...}):
 * rwkv_lambada_read on the input as a file. See fuzz/README.md. */
#include "fuzz_file.h"
#include "rwkv_eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    rwkv_lambada_set *set = NULL;
    rwkv_error err;
    rwkv_status s = rwkv_lambada_read(path, 0, &set, &err);
    fuzz_check_error(s, &err, path);
    if (s == RWKV_OK) {
        for (size_t i = 0; i < set->count; i++) /* the split lies inside the text */
            if (set->items[i].split >= set->items[i].len || set->items[i].text[set->items[i].split] != ' ') abort();
        fuzz_sink += (unsigned)set->count;
    }
    rwkv_lambada_free(set);
    return 0;
}
