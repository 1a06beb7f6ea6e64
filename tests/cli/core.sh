#!/bin/sh
# End-to-end tests of the core commands (info, convert, help) and of bad input
# through the CLI. Usage: tests/cli/core.sh ./rwkv
# Prints PASS/FAIL/SKIP lines; exits non-zero when anything failed.
RWKV=${1:-./rwkv}
SHARED=${RWKV_SHARED:-../shared}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }
skip() { echo "SKIP $1: $2"; }

# expect_error NAME PATTERN CMD...: non-zero exit, exactly one line on stderr matching PATTERN
expect_error() {
    name=$1 pattern=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    lines=$(wc -l <"$tmp/err")
    if [ $rc -eq 0 ]; then fail "$name" "exit status 0"
    elif [ $rc -ge 128 ]; then fail "$name" "killed by signal $((rc - 128))"
    elif [ "$lines" -ne 1 ]; then fail "$name" "expected one error line, got $lines: $(head -c 300 "$tmp/err")"
    elif ! grep -q -- "$pattern" "$tmp/err"; then fail "$name" "message '$(cat "$tmp/err")' lacks '$pattern'"
    else pass "$name"; fi
}

if "$RWKV" --help | grep -q "info" && "$RWKV" info --help | grep -q "usage" && "$RWKV" convert --help | grep -q "usage"
then pass "help"; else fail "help" "rwkv --help / CMD --help"; fi
expect_error "unknown command" "unknown command" "$RWKV" frobnicate
expect_error "missing file" "/nonexistent/model.pth" "$RWKV" info /nonexistent/model.pth
echo "hello, this is not a model" >"$tmp/text.bin"
expect_error "unknown format" "unknown file format" "$RWKV" info "$tmp/text.bin"
: >"$tmp/empty.bin"
expect_error "empty file" "empty" "$RWKV" info "$tmp/empty.bin"
expect_error "convert bad dtype" "--dtype" "$RWKV" convert a b --dtype f8
expect_error "init bad arch" "--arch" "$RWKV" init --arch lstm --out "$tmp/x.safetensors"

# rwkv init writes a model that the inference side loads; a GPT baseline checkpoint is refused clearly
if "$RWKV" init --layers 2 --embd 64 --vocab 97 --out "$tmp/init.safetensors" 2>/dev/null &&
    "$RWKV" info "$tmp/init.safetensors" | grep -q "n_vocab: *97"; then pass "init then info"
else fail "init then info" "rwkv init output not loadable"; fi
if "$RWKV" init --arch gpt --layers 2 --embd 64 --vocab 97 --out "$tmp/gpt.safetensors" 2>/dev/null; then
    expect_error "info on a GPT checkpoint" "GPT baseline checkpoint" "$RWKV" info "$tmp/gpt.safetensors"
else fail "init --arch gpt" "failed"; fi

vec="$SHARED/testvectors/rwkv4/tiny"
if [ -d "$vec" ]; then
    for m in "$vec"/model.*; do
        name=$(basename "$m")
        if "$RWKV" info "$m" >"$tmp/info" 2>"$tmp/err" && grep -q "RWKV-4" "$tmp/info" &&
            grep -q "n_vocab: *64" "$tmp/info"; then pass "info $name"
        else fail "info $name" "$(cat "$tmp/err")"; fi
    done
    # a truncated checkpoint is a one-line error, never a crash
    for m in "$vec/model.f32.safetensors" "$vec/model.f32.pth"; do
        size=$(wc -c <"$m")
        for cut in 5 100 $((size / 2)) $((size - 1)); do
            head -c $cut "$m" >"$tmp/cut"
            expect_error "truncated $(basename "$m") at $cut" "$tmp/cut" "$RWKV" info "$tmp/cut"
        done
    done
    # convert to every dtype and back: the same logits-defining numbers, so info stays identical
    if "$RWKV" convert "$vec/model.f32.pth" "$tmp/a.safetensors" --dtype bf16 2>/dev/null &&
        "$RWKV" convert "$tmp/a.safetensors" "$tmp/b.safetensors" --dtype f32 2>/dev/null &&
        "$RWKV" convert "$tmp/b.safetensors" "$tmp/c.safetensors" --dtype bf16 2>/dev/null &&
        cmp -s "$tmp/a.safetensors" "$tmp/c.safetensors"; then pass "convert round trip bf16->f32->bf16 exact"
    else fail "convert round trip" "bf16 -> f32 -> bf16 differs or failed"; fi
    ls "$tmp"/*.tmp.* >/dev/null 2>&1 && fail "convert leaves no temp files" "found $(ls "$tmp"/*.tmp.*)"
else
    skip "vector models" "$vec not present"
fi
exit $failed
