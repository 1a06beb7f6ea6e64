#!/bin/sh
# Runs every fuzz target (fuzz/fuzz_*.c, built by `make fuzz-gcc` with the
# standalone driver under ASan/UBSan) over its seed corpus (fuzz/corpus/TARGET)
# and a few thousand mutations of it, so that a parser regression shows up in
# `make test`. The long runs are documented in docs/fuzzing.md.
# Usage: tests/cli/fuzz.sh [./rwkv]   (the argument is not used)
BUILD=${BUILD:-build}
SHARED=${RWKV_SHARED:-../shared}
MUTATIONS=${FUZZ_MUTATIONS:-1000} # per seed file
failed=0
for src in fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    bin=$BUILD/fuzz/gcc/$t
    if [ ! -x "$bin" ]; then echo "SKIP fuzz $t: $bin not built (make fuzz-gcc)"; continue; fi
    seeds=$(ls fuzz/corpus/"$t"/* 2>/dev/null)
    # the PyTorch reader's seeds are the shared test vectors (rwkv.c writes no .pth files)
    [ -z "$seeds" ] && [ "$t" = fuzz_pth ] && seeds=$(ls "$SHARED"/testvectors/rwkv4/tiny/model.f32.pth 2>/dev/null)
    # models read from GGUF start from the GGUF reader's seeds
    [ -z "$seeds" ] && [ "$t" = fuzz_gguf_model ] && seeds=$(ls fuzz/corpus/fuzz_gguf/* 2>/dev/null)
    if [ -z "$seeds" ]; then echo "SKIP fuzz $t: no seeds"; continue; fi
    n=$(echo "$seeds" | wc -l)
    # shellcheck disable=SC2086
    if out=$("$bin" -n "$MUTATIONS" -s 1 $seeds 2>&1) && echo "$out" | grep -q "inputs ran without a contract violation"; then
        echo "PASS fuzz $t: $(echo "$out" | tail -1 | cut -d' ' -f1) inputs from $n seeds"
    else
        echo "FAIL fuzz $t: $(echo "$out" | grep -m1 -E 'ERROR|runtime error|Abort' | head -c 300)"
        failed=1
    fi
done
exit $failed
