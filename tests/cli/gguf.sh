#!/bin/sh
# End-to-end tests of GGUF files through the CLI: info, generate with the
# vocabulary inside the file (no --tokenizer), quantize to GGUF and back,
# and the refusals (k-quants into an rwkv.cpp file).
# Usage: tests/cli/gguf.sh ./rwkv
# Prints PASS/FAIL/SKIP lines; exits non-zero when anything failed.
RWKV=${1:-./rwkv}
SHARED=${RWKV_SHARED:-../shared}
CASE="$SHARED/testvectors/gguf-rwkv7/tiny"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }

if [ ! -f "$CASE/model.f16.gguf" ]; then
    echo "SKIP gguf cli: $CASE not found"
    exit 0
fi
if "$RWKV" info "$CASE/model.q8_0.gguf" >"$tmp/info" 2>&1 && grep -q "format: *gguf" "$tmp/info" &&
    grep -q "version: *RWKV-7" "$tmp/info"; then pass "gguf info"
else fail "gguf info" "$(head -c 300 "$tmp/info")"; fi

# the World vocabulary inside the file: the same ids as with the vocabulary file
if "$RWKV" generate -m "$CASE/model.f16.gguf" -p "Hello world" -n 4 --temp 0 -q >"$tmp/a" 2>"$tmp/err"; then
    vocab="$SHARED/reference/rwkv-cpp/rwkv_vocab_v20230424.txt"
    if [ -f "$vocab" ] && "$RWKV" generate -m "$CASE/model.f16.gguf" --tokenizer "$vocab" -p "Hello world" -n 4 \
        --temp 0 -q >"$tmp/b" 2>/dev/null && ! cmp -s "$tmp/a" "$tmp/b"; then
        fail "gguf generate, own vocabulary" "differs from --tokenizer $vocab"
    else pass "gguf generate, own vocabulary"; fi
else fail "gguf generate, own vocabulary" "$(head -c 300 "$tmp/err")"; fi

if "$RWKV" quantize "$CASE/model.f16.gguf" "$tmp/q4k.gguf" --type q4_k 2>"$tmp/err" &&
    "$RWKV" info "$tmp/q4k.gguf" >"$tmp/info" 2>&1 && grep -q "format: *gguf" "$tmp/info"; then
    pass "quantize gguf -> q4_k gguf"
else fail "quantize gguf -> q4_k gguf" "$(head -c 300 "$tmp/err")"; fi

v4="$SHARED/reference/rwkv-cpp/tiny-rwkv-4v0-660K-FP32.bin"
if [ -f "$v4" ]; then
    "$RWKV" quantize "$v4" "$tmp/x.bin" --type q4_k >/dev/null 2>"$tmp/err"
    rc=$?
    if [ $rc -ne 0 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "GGUF" "$tmp/err"; then pass "k-quants need GGUF"
    else fail "k-quants need GGUF" "status $rc: $(head -c 300 "$tmp/err")"; fi
fi
"$RWKV" quantize "$CASE/model.f16.pth" "$tmp/y.gguf" --type q8_0 >/dev/null 2>"$tmp/err"
if [ $? -ne 0 ] && grep -q "tokenizer" "$tmp/err"; then pass "GGUF output needs a vocabulary"
else fail "GGUF output needs a vocabulary" "$(head -c 300 "$tmp/err")"; fi
exit $failed
