/* Fuzz target for the rwkv.cpp (ggmf) reader: rwkvcpp_read().
 * Build and use: see fuzz/README.md. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_run(rwkvcpp_read, data, size); }
