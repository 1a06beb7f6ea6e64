#!/bin/sh
# End-to-end tests of transformers' RWKV-4 layout through the CLI: every
# command that takes a model takes a transformers folder; `rwkv convert
# --layout hf` writes one from a model rwkv.c trained, which then generates
# and trains exactly like the original; wrong input gives one error line.
#   sh tests/cli/hf.sh ./rwkv
# Prints PASS/FAIL/SKIP lines; exits non-zero when something failed.
RWKV=${1:-./rwkv}
SHARED=${RWKV_SHARED:-../shared}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failed=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }
skip() { echo "SKIP $1: $2"; }

# expect_error NAME PATTERN CMD...: non-zero exit, exactly one line on stderr matching PATTERN
expect_error() {
    name=$1 pattern=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    lines=$(wc -l <"$T/err")
    if [ $rc -eq 0 ]; then fail "$name" "exit status 0"
    elif [ $rc -ge 128 ]; then fail "$name" "killed by signal $((rc - 128))"
    elif [ "$lines" -ne 1 ]; then fail "$name" "expected one error line, got $lines: $(head -c 300 "$T/err")"
    elif ! grep -q -- "$pattern" "$T/err"; then fail "$name" "message '$(cat "$T/err")' lacks '$pattern'"
    else pass "$name"; fi
}

# a case made by transformers: info on its folder describes the official file's model
case_dir=$(ls -d "$SHARED"/testvectors/hf-rwkv4/*/hf 2>/dev/null | head -1)
if [ -n "$case_dir" ]; then
    "$RWKV" info "$case_dir" 2>&1 | grep -v -e '^file' >"$T/info.hf"
    "$RWKV" info "$(dirname "$case_dir")/model.f32.safetensors" 2>&1 | grep -v -e '^file' >"$T/info.official"
    if grep -q "RWKV-4" "$T/info.hf" && cmp -s "$T/info.hf" "$T/info.official"; then pass "info on a transformers folder"
    else fail "info on a transformers folder" "$(diff "$T/info.hf" "$T/info.official" | head -5)"; fi
else
    skip "info on a transformers folder" "no hf-rwkv4 case in $SHARED/testvectors"
fi

# a model rwkv.c trained, out to the layout: the same greedy text, and training goes on from it
awk 'BEGIN { for (i = 0; i < 400; i++) printf "line %d: the quick brown fox jumps over the lazy dog.\n", i }' >"$T/data.txt"
FLAGS="--layers 2 --embd 32 --ctx 16 --batch 2 --steps 4 --save-every 4 --eval-every 4 --val-windows 2 --threads 2 --seed 3 --quiet"
if "$RWKV" train --data "$T/data.txt" --out "$T/run" $FLAGS 2>"$T/train.err" &&
    "$RWKV" convert "$T/run/model.safetensors" "$T/hf" --layout hf 2>/dev/null; then
    if [ -f "$T/hf/config.json" ] && [ -f "$T/hf/model.safetensors" ] && grep -q '"RwkvForCausalLM"' "$T/hf/config.json"
    then pass "convert --layout hf of a trained model"; else fail "convert --layout hf" "no config.json + model.safetensors"; fi
    GEN="-p hello -n 24 --temp 0 --seed 1 -q --threads 2"
    "$RWKV" generate -m "$T/run/model.safetensors" $GEN >"$T/gen.official" 2>/dev/null
    "$RWKV" generate -m "$T/hf" $GEN >"$T/gen.hf" 2>/dev/null
    if [ -s "$T/gen.official" ] && cmp -s "$T/gen.official" "$T/gen.hf"; then pass "generate from the folder"
    else fail "generate from the folder" "output differs from the original model's"; fi
    if "$RWKV" train --data "$T/data.txt" --out "$T/run2" --init "$T/hf" --ctx 16 --batch 2 --steps 1 --threads 2 \
        --val-windows 2 --quiet 2>"$T/train2.err" && [ -f "$T/run2/model.safetensors" ]
    then pass "train --init a transformers folder"; else fail "train --init a transformers folder" "$(tail -1 "$T/train2.err")"; fi
    if "$RWKV" convert "$T/hf" "$T/back.safetensors" 2>/dev/null && cmp -s "$T/back.safetensors" "$T/run/model.safetensors"
    then pass "round trip of a trained model"; else fail "round trip of a trained model" "official -> hf -> official differs"; fi
    # a training run's folder holds rwkv.c's own config.json, which describes no model
    if "$RWKV" info "$T/run" >/dev/null 2>&1; then pass "info on a training run folder"
    else fail "info on a training run folder" "$("$RWKV" info "$T/run" 2>&1 | tail -1)"; fi
    # a wrong config names its field
    sed 's/"hidden_size": [0-9]*/"hidden_size": 48/' "$T/hf/config.json" >"$T/cfg" && cp "$T/cfg" "$T/hf/config.json"
    expect_error "config mismatch" "hidden_size" "$RWKV" info "$T/hf"
else
    fail "train a model to convert" "$(tail -1 "$T/train.err")"
fi

"$RWKV" init --arch gpt --layers 1 --embd 16 --vocab 50 --out "$T/gpt.safetensors" >/dev/null 2>&1
expect_error "convert a GPT to hf" "RWKV-4 models only" "$RWKV" convert "$T/gpt.safetensors" "$T/gpt-hf" --layout hf
mkdir -p "$T/empty"
expect_error "empty folder" "a folder without model.safetensors" "$RWKV" info "$T/empty"
expect_error "convert bad layout" "--layout" "$RWKV" convert a b --layout onnx
exit $failed
