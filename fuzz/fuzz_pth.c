/* Fuzz target for the PyTorch .pth (zip + pickle) reader: pth_read().
 * Build and use: see fuzz/README.md. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_run(pth_read, data, size); }
