/* Fuzz target for the World vocabulary reader (lines "<id> <literal>
 * <nbytes>"), then encoding and decoding a fixed text with what it read.
 * See fuzz/README.md. */
#include "fuzz_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_tokenizer(tok_world_load, data, size); }
