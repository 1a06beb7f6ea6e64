/* Fuzz target for transformers' shard index reader: shard_index_read(), the
 * JSON that lists which shard file holds each tensor. Shards are looked up in
 * the current folder, so run it from an empty one.
 * Build and use: see fuzz/README.md. */
#include "formats/hf.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_run(shard_index_read, data, size); }
