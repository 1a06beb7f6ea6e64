#!/bin/sh
# Hostile inputs through the CLI: files that are not regular files, inputs
# without an end, damaged or oversized headers, files changed while in use,
# and the messages each of them must produce (docs/limits.md).
# Usage: tests/cli/inputs.sh ./rwkv
# Prints PASS/FAIL/SKIP lines; exits non-zero when anything failed.
RWKV=${1:-./rwkv}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }

# expect_error NAME PATTERN CMD...: within 10 s, a non-zero exit that is not a
# signal and exactly one line on stderr matching PATTERN
expect_error() {
    name=$1 pattern=$2
    shift 2
    timeout 10 "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
    lines=$(wc -l <"$tmp/err")
    if [ $rc -eq 0 ]; then fail "$name" "exit status 0: $(head -c 300 "$tmp/out")"
    elif [ $rc -eq 124 ]; then fail "$name" "still running after 10 s"
    elif [ $rc -ge 128 ]; then fail "$name" "killed by signal $((rc - 128))"
    elif [ "$lines" -ne 1 ]; then fail "$name" "expected one error line, got $lines: $(head -c 300 "$tmp/err")"
    elif ! grep -q -- "$pattern" "$tmp/err"; then fail "$name" "message '$(cat "$tmp/err")' lacks '$pattern'"
    else pass "$name"; fi
}

"$RWKV" init --layers 2 --embd 32 --vocab 256 --out "$tmp/m.safetensors" 2>/dev/null ||
    fail "init" "rwkv init failed"

# ---- files that are not regular files: refused at once, never opened for reading
mkfifo "$tmp/fifo"
expect_error "info FIFO" "FIFO" "$RWKV" info "$tmp/fifo"
expect_error "generate -m FIFO" "FIFO" "$RWKV" generate -m "$tmp/fifo" -p x -n 1
expect_error "--tokenizer FIFO" "FIFO" "$RWKV" generate -m "$tmp/m.safetensors" --tokenizer "$tmp/fifo" -p x -n 1
expect_error "--state-in FIFO" "FIFO" "$RWKV" generate -m "$tmp/m.safetensors" --state-in "$tmp/fifo" -p x -n 1
expect_error "--lambada FIFO" "FIFO" "$RWKV" eval -m "$tmp/m.safetensors" --lambada "$tmp/fifo"
expect_error "info /dev/zero" "character device" "$RWKV" info /dev/zero

# ---- headers that declare more than any real file holds: refused before parsing
# safetensors_header FILE N: a safetensors file whose header lists N empty tensors
safetensors_header() {
    awk -v n="$2" 'BEGIN { printf "{"; for (i = 0; i < n; i++) printf "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}", i ? "," : "", i; printf "}" }' >"$tmp/hdr"
    len=$(wc -c <"$tmp/hdr")
    { printf "$(printf '\\%03o' $((len & 255)) $((len >> 8 & 255)) $((len >> 16 & 255)) $((len >> 24 & 255)) 0 0 0 0)"; cat "$tmp/hdr"; } >"$1"
}
safetensors_header "$tmp/many.safetensors" 100000
expect_error "safetensors header: 100000 tensors" "at most 65536 tensors" "$RWKV" info "$tmp/many.safetensors"
safetensors_header "$tmp/few.safetensors" 3
expect_error "safetensors header: 3 empty tensors" "missing tensor" "$RWKV" info "$tmp/few.safetensors"
# a shard index whose weight_map is too large to be a real one
awk 'BEGIN { printf "{\"weight_map\": {"; for (i = 0; i < 1100000; i++) printf "%s\"t%d\": \"a\"", i ? "," : "", i; print "}}" }' \
    >"$tmp/model.safetensors.index.json"
expect_error "shard index: 1.1M tensors" "larger than rwkv.c accepts" "$RWKV" info "$tmp/model.safetensors.index.json"

exit $failed
