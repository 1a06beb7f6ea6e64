#!/bin/sh
# End-to-end tests of the core commands (info, convert, help, init of random
# RWKV-5/6 models and bench on them), of info and eval on the GPT baseline,
# of transformers' RWKV-4 folders (read by every command that takes a model,
# written by convert --layout hf), and of bad input through the CLI.
# Usage: tests/cli/core.sh ./rwkv
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

# rwkv init writes a model that the inference side loads
if "$RWKV" init --layers 2 --embd 64 --vocab 97 --out "$tmp/init.safetensors" 2>/dev/null &&
    "$RWKV" info "$tmp/init.safetensors" | grep -q "n_vocab: *97"; then pass "init then info"
else fail "init then info" "rwkv init output not loadable"; fi

# random RWKV-5.2 / RWKV-6 models (benchmarks and tests): info reads their shape, bench runs them,
# --dtype bf16 halves the file (the bytes convert makes of the f32 one); only --uniform makes them,
# a bad combination is one line
for a in rwkv5 rwkv6; do
    v=$([ $a = rwkv5 ] && echo "RWKV-5.2" || echo "RWKV-6")
    if "$RWKV" init --arch $a --uniform --layers 2 --embd 128 --vocab 300 --out "$tmp/$a.safetensors" 2>/dev/null &&
        "$RWKV" init --arch $a --uniform --layers 2 --embd 128 --vocab 300 --dtype bf16 --out "$tmp/$a-bf16.safetensors" \
            2>/dev/null && "$RWKV" info "$tmp/$a.safetensors" >"$tmp/info" 2>&1 && grep -q "version: *$v\$" "$tmp/info" &&
        grep -q "heads: *2 x 64" "$tmp/info" && grep -q "n_ffn: *448" "$tmp/info" &&
        "$RWKV" info "$tmp/$a-bf16.safetensors" | grep -q "dtype: *bf16" &&
        [ $(($(wc -c <"$tmp/$a.safetensors") / $(wc -c <"$tmp/$a-bf16.safetensors"))) -eq 1 ] &&
        [ $(($(wc -c <"$tmp/$a.safetensors") * 10 / $(wc -c <"$tmp/$a-bf16.safetensors"))) -ge 19 ]; then
        pass "init --arch $a --uniform then info"
    else fail "init --arch $a --uniform then info" "$(tr '\n' ' ' <"$tmp/info")"; fi
    if "$RWKV" convert "$tmp/$a.safetensors" "$tmp/$a-conv.safetensors" --dtype bf16 2>/dev/null &&
        cmp -s "$tmp/$a-conv.safetensors" "$tmp/$a-bf16.safetensors"; then pass "init --arch $a --dtype bf16 = convert"
    else fail "init --arch $a --dtype bf16 = convert" "not the bytes of convert --dtype bf16 of the f32 file"; fi
    if "$RWKV" bench -m "$tmp/$a-bf16.safetensors" -t 2 --tokens 4 --prompt 16 --no-machine >"$tmp/bench" 2>&1 &&
        grep -q "^decode .* ms/token" "$tmp/bench" && grep -q "^prefill .* tokens/s" "$tmp/bench"; then
        pass "bench on a random $v model"
    else fail "bench on a random $v model" "$(tail -2 "$tmp/bench" | tr '\n' ' ')"; fi
done
# bench --batch: the batched decode, with and without the draw, on the model loaded again as
# rwkv serve loads it (f32 matrices packed once)
if "$RWKV" bench -m "$tmp/rwkv6.safetensors" -t 2 --tokens 8 --prompt 4 --no-machine --batch 3 >"$tmp/bench" 2>&1 &&
    grep -q "^batch decode *3 sequences: .* ms/step" "$tmp/bench" && grep -q "^batch + draw *3 sequences" "$tmp/bench"
then pass "bench --batch"
else fail "bench --batch" "$(tail -2 "$tmp/bench" | tr '\n' ' ')"; fi
# bench --json says how much of a block-format model decode reads from 16-row grouped copies:
# none with float activations; where the CPU's kernels read them, a share of the bytes
q51="$SHARED/reference/rwkv-cpp/tiny-rwkv-4v0-660K-Q5_1.bin"
if [ -f "$q51" ]; then
    share() { sed -n 's/.*"grouped_fraction": \([0-9.]*\).*/\1/p' "$1"; }
    if RWKV_ACTIVATIONS=f32 "$RWKV" bench -m "$q51" -t 1 --tokens 2 --prompt 4 --no-machine --json >"$tmp/b32" 2>&1 &&
        "$RWKV" bench -m "$q51" -t 1 --tokens 2 --prompt 4 --no-machine --json >"$tmp/b8" 2>&1 &&
        [ "$(share "$tmp/b32")" = "0.0000" ] && awk -v f="$(share "$tmp/b8")" 'BEGIN { exit !(f != "" && f >= 0 && f <= 1) }'; then
        pass "bench --json reports the grouped share of a Q5_1 model ($(share "$tmp/b8") with int8 activations)"
    else fail "bench --json grouped_fraction" "$(head -c 300 "$tmp/b32") / $(head -c 300 "$tmp/b8")"; fi
else skip "bench --json grouped_fraction" "no $q51"; fi
expect_error "init rwkv5 needs --uniform" "--arch rwkv5 needs --uniform" \
    "$RWKV" init --arch rwkv5 --layers 1 --embd 64 --out "$tmp/x.safetensors"
expect_error "init --uniform rwkv4" "--uniform is for --arch rwkv5, rwkv6 and rwkv7" \
    "$RWKV" init --uniform --layers 1 --embd 64 --out "$tmp/x.safetensors"
expect_error "init bad dtype" "--dtype must be one of f32, bf16, f16" \
    "$RWKV" init --arch rwkv6 --uniform --dtype q8_0 --layers 1 --embd 64 --out "$tmp/x.safetensors"
expect_error "init rwkv6 head size" "--head-size 48 does not divide n_embd 128" \
    "$RWKV" init --arch rwkv6 --uniform --head-size 48 --layers 1 --embd 128 --out "$tmp/x.safetensors"
[ -e "$tmp/x.safetensors" ] && fail "init errors write nothing" "$tmp/x.safetensors exists"

# ---- the GPT baseline: info and eval read it (recognised from the file) -----
# json_keys FILE: the member names of a one-line JSON object, in order
json_keys() { grep -o '"[a-z_0-9]*": ' "$1" | tr -d '": ' | tr '\n' ' '; }
# json_num FILE KEY: a number member
json_num() { sed -n "s/.*\"$2\": \(-*[0-9.e+-]*\).*/\1/p" "$1"; }
if "$RWKV" init --arch gpt --layers 2 --embd 64 --heads 4 --vocab 97 --ctx 40 --out "$tmp/gpt.safetensors" 2>/dev/null &&
    "$RWKV" init --arch gpt --layers 2 --embd 32 --heads 2 --vocab 256 --ctx 32 --out "$tmp/gpt256.safetensors" 2>/dev/null &&
    "$RWKV" init --layers 2 --embd 32 --vocab 256 --out "$tmp/rwkv256.safetensors" 2>/dev/null; then
    if "$RWKV" info "$tmp/gpt.safetensors" >"$tmp/info" 2>"$tmp/err" && grep -q "arch: *GPT" "$tmp/info" &&
        grep -q "n_vocab: *97" "$tmp/info" && grep -q "n_layer: *2" "$tmp/info" && grep -q "n_embd: *64" "$tmp/info" &&
        grep -q "heads: *4 x 16" "$tmp/info" && grep -q "n_ffn: *256" "$tmp/info" && grep -q "n_ctx: *40" "$tmp/info" &&
        grep -q "parameters: .*position table 2560" "$tmp/info"; then pass "info on a GPT checkpoint"
    else fail "info on a GPT checkpoint" "$(cat "$tmp/info" "$tmp/err" | tr '\n' ' ')"; fi

    # 200 bytes: 199 scored tokens; context 32, stride 16: 1 + ceil((199 - 32) / 16) = 12 windows
    awk 'BEGIN { for (i = 0; i < 200; i++) printf "%c", 33 + (i * 7 + i / 3) % 90 }' >"$tmp/text.txt"
    if "$RWKV" eval -m "$tmp/gpt256.safetensors" --data "$tmp/text.txt" --json >"$tmp/g.json" 2>"$tmp/err" &&
        grep -q '"arch": "gpt"' "$tmp/g.json" && [ "$(json_num "$tmp/g.json" tokens)" = 199 ] &&
        [ "$(json_num "$tmp/g.json" window)" = 32 ] && [ "$(json_num "$tmp/g.json" stride)" = 16 ] &&
        [ "$(json_num "$tmp/g.json" context)" = 32 ] && [ "$(json_num "$tmp/g.json" windows)" = 12 ] &&
        grep -q "eval: 199/199 tokens" "$tmp/err"; then pass "eval a GPT: sliding window, every token once"
    else fail "eval a GPT: sliding window" "$(cat "$tmp/g.json" "$tmp/err" | tr '\n' ' ')"; fi
    # the same JSON members as for RWKV, so the two can be compared by the same script
    if "$RWKV" eval -m "$tmp/rwkv256.safetensors" --data "$tmp/text.txt" --json -q >"$tmp/r.json" 2>"$tmp/err" &&
        [ "$(json_keys "$tmp/r.json")" = "$(json_keys "$tmp/g.json")" ] && grep -q '"arch": "rwkv"' "$tmp/r.json" &&
        [ "$(json_num "$tmp/r.json" context)" = 199 ] && [ "$(json_num "$tmp/r.json" tokens)" = 199 ]; then
        pass "eval: the same JSON members for RWKV and the GPT"
    else fail "eval: the same JSON members" "$(json_keys "$tmp/r.json") vs $(json_keys "$tmp/g.json") $(cat "$tmp/err")"; fi
    # --window / --stride; the text output names the rule
    if "$RWKV" eval -m "$tmp/gpt256.safetensors" --data "$tmp/text.txt" --window 20 --stride 20 --json -q >"$tmp/g2.json" \
        2>"$tmp/err" && [ "$(json_num "$tmp/g2.json" tokens)" = 199 ] && [ "$(json_num "$tmp/g2.json" windows)" = 10 ] &&
        "$RWKV" eval -m "$tmp/gpt256.safetensors" --data "$tmp/text.txt" --window 20 --stride 20 -q >"$tmp/g2.txt" &&
        grep -q "sliding window of 20 tokens, stride 20 (10 windows)" "$tmp/g2.txt"; then pass "eval a GPT: --window --stride"
    else fail "eval a GPT: --window --stride" "$(cat "$tmp/g2.json" "$tmp/g2.txt" "$tmp/err" | tr '\n' ' ')"; fi
    # LAMBADA: passages longer than the context are left-truncated and counted
    long=$(awk 'BEGIN { for (i = 0; i < 60; i++) printf "ab " }')
    printf '{"text": "the cat sat on the mat"}\n{"text": "%s end"}\n{"text": "a b"}\n' "$long" >"$tmp/lambada.jsonl"
    if "$RWKV" eval -m "$tmp/gpt256.safetensors" --lambada "$tmp/lambada.jsonl" --json -q >"$tmp/l.json" 2>"$tmp/err" &&
        grep -q '"arch": "gpt"' "$tmp/l.json" && [ "$(json_num "$tmp/l.json" examples)" = 3 ] &&
        [ "$(json_num "$tmp/l.json" truncated)" = 1 ] && [ "$(json_num "$tmp/l.json" context)" = 32 ] &&
        "$RWKV" eval -m "$tmp/rwkv256.safetensors" --lambada "$tmp/lambada.jsonl" --json -q >"$tmp/lr.json" &&
        [ "$(json_keys "$tmp/lr.json")" = "$(json_keys "$tmp/l.json")" ]; then pass "eval a GPT: LAMBADA"
    else fail "eval a GPT: LAMBADA" "$(cat "$tmp/l.json" "$tmp/err" | tr '\n' ' ')"; fi
    printf '{"text": "x 0123456789012345678901234567890123456789"}\n' >"$tmp/lambada_long.jsonl"
    expect_error "eval a GPT: a target longer than the context" "passage 1.*context of 32" \
        "$RWKV" eval -m "$tmp/gpt256.safetensors" --lambada "$tmp/lambada_long.jsonl" -q
    expect_error "eval a GPT: --window past n_ctx" "context of 32" \
        "$RWKV" eval -m "$tmp/gpt256.safetensors" --data "$tmp/text.txt" --window 33
    expect_error "eval a GPT: --stride past the window" "--stride" \
        "$RWKV" eval -m "$tmp/gpt256.safetensors" --data "$tmp/text.txt" --window 8 --stride 9
    expect_error "eval RWKV: --stride refused" "--stride" \
        "$RWKV" eval -m "$tmp/rwkv256.safetensors" --data "$tmp/text.txt" --stride 4
    expect_error "eval a GPT: token outside the vocabulary" "outside the vocabulary" \
        "$RWKV" eval -m "$tmp/gpt.safetensors" --data "$tmp/text.txt" -q
    expect_error "chat refuses a GPT" "GPT baseline checkpoint" "$RWKV" chat -m "$tmp/gpt.safetensors"
else fail "init --arch gpt" "failed"; fi

# ---- one option parser: a shared flag has the same range in every command --
for c in generate chat eval bench train; do
    expect_error "$c --threads range" "--threads expects an integer in \[0, 4096\], got '5000'" \
        "$RWKV" $c --threads 5000
done
if "$RWKV" eval --help | grep -q -- "-t, --threads N  *worker threads; 0 = all cores \[0, 4096\]" &&
    "$RWKV" generate --help | grep -q -- "-t, --threads N  *worker threads; 0 = all cores \[0, 4096\]"; then
    pass "--help lists a shared flag the same way"
else fail "--help lists a shared flag the same way" "$("$RWKV" eval --help | grep -- --threads)"; fi
if "$RWKV" init --layers=1 --embd=16 --vocab=20 --out="$tmp/eq.safetensors" 2>/dev/null &&
    "$RWKV" info "$tmp/eq.safetensors" | grep -q "n_layer: *1"; then pass "--flag=value"
else fail "--flag=value" "init --layers=1 ... --out=FILE failed"; fi
expect_error "a flag takes no value" "--json takes no value" "$RWKV" eval --json=1

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
# ---- transformers' RWKV-4 layout: a folder wherever a model is taken, convert --layout hf
# a case made by transformers: info on its folder describes the official file's model
case_dir=$(ls -d "$SHARED"/testvectors/hf-rwkv4/*/hf 2>/dev/null | head -1)
if [ -n "$case_dir" ]; then
    "$RWKV" info "$case_dir" >"$tmp/info.all" 2>&1
    grep -v -e '^file' -e '^format' "$tmp/info.all" >"$tmp/info.hf"
    "$RWKV" info "$(dirname "$case_dir")/model.f32.safetensors" 2>&1 | grep -v -e '^file' -e '^format' >"$tmp/info.official"
    if grep -q "RWKV-4" "$tmp/info.hf" && grep -q "^format: *safetensors (transformers layout)" "$tmp/info.all" &&
        cmp -s "$tmp/info.hf" "$tmp/info.official"; then pass "info on a transformers folder"
    else fail "info on a transformers folder" "$(diff "$tmp/info.hf" "$tmp/info.official" | head -5)"; fi
else
    skip "info on a transformers folder" "no hf-rwkv4 case in $SHARED/testvectors"
fi

# a model rwkv.c trained, out to the layout: the same greedy text, and training goes on from it
awk 'BEGIN { for (i = 0; i < 400; i++) printf "line %d: the quick brown fox jumps over the lazy dog.\n", i }' >"$tmp/data.txt"
FLAGS="--layers 2 --embd 32 --ctx 16 --batch 2 --steps 4 --save-every 4 --eval-every 4 --val-windows 2 --threads 2 --seed 3 --quiet"
if "$RWKV" train --data "$tmp/data.txt" --out "$tmp/run" $FLAGS 2>"$tmp/train.err" &&
    "$RWKV" convert "$tmp/run/model.safetensors" "$tmp/hf" --layout hf 2>/dev/null; then
    if [ -f "$tmp/hf/config.json" ] && [ -f "$tmp/hf/model.safetensors" ] && grep -q '"RwkvForCausalLM"' "$tmp/hf/config.json"
    then pass "convert --layout hf of a trained model"; else fail "convert --layout hf" "no config.json + model.safetensors"; fi
    GEN="-p hello -n 24 --temp 0 --seed 1 -q --threads 2"
    "$RWKV" generate -m "$tmp/run/model.safetensors" $GEN >"$tmp/gen.official" 2>/dev/null
    "$RWKV" generate -m "$tmp/hf" $GEN >"$tmp/gen.hf" 2>/dev/null
    if [ -s "$tmp/gen.official" ] && cmp -s "$tmp/gen.official" "$tmp/gen.hf"; then pass "generate from the folder"
    else fail "generate from the folder" "output differs from the original model's"; fi
    if "$RWKV" train --data "$tmp/data.txt" --out "$tmp/run2" --init "$tmp/hf" --ctx 16 --batch 2 --steps 1 --threads 2 \
        --val-windows 2 --quiet 2>"$tmp/train2.err" && [ -f "$tmp/run2/model.safetensors" ]
    then pass "train --init a transformers folder"; else fail "train --init a transformers folder" "$(tail -1 "$tmp/train2.err")"; fi
    if "$RWKV" convert "$tmp/hf" "$tmp/back.safetensors" 2>/dev/null && cmp -s "$tmp/back.safetensors" "$tmp/run/model.safetensors"
    then pass "round trip of a trained model"; else fail "round trip of a trained model" "official -> hf -> official differs"; fi
    # a training run's folder holds rwkv.c's own config.json, which describes no model
    if "$RWKV" info "$tmp/run" >/dev/null 2>&1; then pass "info on a training run folder"
    else fail "info on a training run folder" "$("$RWKV" info "$tmp/run" 2>&1 | tail -1)"; fi
    # a wrong config names its field
    sed 's/"hidden_size": [0-9]*/"hidden_size": 48/' "$tmp/hf/config.json" >"$tmp/cfg" && cp "$tmp/cfg" "$tmp/hf/config.json"
    expect_error "config mismatch" "hidden_size" "$RWKV" info "$tmp/hf"
else
    fail "train a model to convert" "$(tail -1 "$tmp/train.err")"
fi

"$RWKV" init --arch gpt --layers 1 --embd 16 --vocab 50 --out "$tmp/gpt.safetensors" >/dev/null 2>&1
expect_error "convert a GPT to hf" "RWKV-4 models only" "$RWKV" convert "$tmp/gpt.safetensors" "$tmp/gpt-hf" --layout hf
mkdir -p "$tmp/empty"
expect_error "empty folder" "a folder without model.safetensors" "$RWKV" info "$tmp/empty"
expect_error "convert bad layout" "--layout" "$RWKV" convert a b --layout onnx
exit $failed
