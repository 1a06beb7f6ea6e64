/* Fuzz target for a training run's config.json (train_config_read), the
 * file `rwkv train --resume` trusts. See fuzz/README.md. */
#include "fuzz_file.h"
#include "train/run_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    train_config c;
    rwkv_error err;
    rwkv_status s = train_config_read(path, &c, &err);
    fuzz_check_error(s, &err, path);
    if (s == RWKV_OK) fuzz_sink += (unsigned)c.opt.n_layer;
    train_config_free(&c);
    return 0;
}
