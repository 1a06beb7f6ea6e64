#!/bin/sh
# Hostile inputs through the CLI: files that are not regular files, inputs
# without an end, damaged or oversized headers, files changed while in use,
# and the messages each of them must produce (docs/limits.md).
# Usage: tests/cli/inputs.sh ./rwkv
# Prints PASS/FAIL/SKIP lines; exits non-zero when anything failed.
RWKV=${1:-./rwkv}
SHARED=${RWKV_SHARED:-../shared}
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
expect_error "--tokenizer /dev/zero" "character device" "$RWKV" generate -m "$tmp/m.safetensors" --tokenizer /dev/zero -p x -n 1
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

# ---- inputs without an end: bounded, or streamed
expect_error "--prompt-file /dev/zero" "larger than 1 MiB.*--max-input" \
    "$RWKV" generate -m "$tmp/m.safetensors" --prompt-file /dev/zero --max-input 1 -n 1
expect_error "tokenize < endless stdin" "larger than 1 MiB.*--max-input" sh -c "head -c 3000000 /dev/zero | \"$RWKV\" tokenize --max-input 1"
expect_error "detokenize < endless stdin" "larger than 1 MiB.*--max-input" sh -c "yes 1 | \"$RWKV\" detokenize --max-input 1"
expect_error "chat: a message without end" "longer than 1 MiB.*--max-input" \
    sh -c "head -c 3000000 /dev/zero | tr '\\0' a | \"$RWKV\" chat -m \"$tmp/m.safetensors\" --max-input 1"
if head -c 100000 /dev/zero | "$RWKV" tokenize --max-input 1 | wc -w | grep -q '^100000$'; then
    pass "tokenize: an input under --max-input"
else fail "tokenize: an input under --max-input" "not 100000 ids"; fi
expect_error "tokenizer file of 300 MB" "more than the 268435456" sh -c \
    "truncate -s 300M \"$tmp/big.json\" && \"$RWKV\" tokenize --tokenizer \"$tmp/big.json\" </dev/null"
# eval --data streams: an endless input is scored up to --limit in bounded memory
if timeout 60 "$RWKV" eval -m "$tmp/m.safetensors" --data /dev/zero --limit 300000 --json -q >"$tmp/z.json" 2>"$tmp/err" &&
    grep -q '"tokens": 300000' "$tmp/z.json"; then pass "eval --data /dev/zero --limit: streamed"
else fail "eval --data /dev/zero --limit" "$(cat "$tmp/z.json" "$tmp/err" | head -c 300)"; fi
# pieces cut at line breaks (the text is more than one piece of 256 KiB) tokenize as the whole
# text does (a small World vocabulary, ids < 300)
if [ -f "$SHARED/reference/rwkv-cpp/rwkv_vocab_v20230424.txt" ]; then
    head -n 299 "$SHARED/reference/rwkv-cpp/rwkv_vocab_v20230424.txt" >"$tmp/vocab.txt"
    "$RWKV" init --layers 1 --embd 16 --vocab 300 --out "$tmp/m300.safetensors" 2>/dev/null
    awk 'BEGIN { for (i = 0; i < 24000; i++) printf "a%d\n\n\t(b) ,c @\n \n", i % 7 }' >"$tmp/lines.txt"
    want=$("$RWKV" tokenize --tokenizer "$tmp/vocab.txt" <"$tmp/lines.txt" | wc -w)
    want=$((want - 1))
    if "$RWKV" eval -m "$tmp/m300.safetensors" --tokenizer "$tmp/vocab.txt" --data "$tmp/lines.txt" --json -q \
        >"$tmp/l.json" 2>"$tmp/err" && grep -q "\"tokens\": $want," "$tmp/l.json" &&
        [ "$(wc -c <"$tmp/lines.txt")" -gt 300000 ]; then pass "eval --data in pieces: the tokens of the whole text"
    else fail "eval --data in pieces" "want $want tokens: $(cat "$tmp/l.json" "$tmp/err" | head -c 300)"; fi
    expect_error "eval --data: no line break in 1 MiB" "without a line break" sh -c \
        "head -c 3000000 /dev/zero | tr '\\0' a | \"$RWKV\" eval -m \"$tmp/m.safetensors\" --tokenizer \"$tmp/vocab.txt\" --data - --max-input 1"
else echo "SKIP eval --data in pieces: no World vocabulary in $SHARED"; fi

# ---- a model truncated by another process while in use: chat reads its messages from a FIFO,
# the model is truncated between two messages
# chat_truncated NAME FLAGS...: runs the chat; sets rc and leaves stderr in $tmp/err
chat_truncated() {
    cp "$tmp/m.safetensors" "$tmp/c.safetensors"
    rm -f "$tmp/in" && mkfifo "$tmp/in"
    timeout 30 "$RWKV" chat -m "$tmp/c.safetensors" -n 5 --seed 1 "$@" <"$tmp/in" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    exec 3>"$tmp/in"
    echo hi >&3
    sleep 2
    : >"$tmp/c.safetensors"
    echo again >&3
    exec 3>&-
    wait $pid
    rc=$?
}
chat_truncated
if [ $rc -eq 1 ] && grep -q "c.safetensors: the file was truncated.*--no-mmap" "$tmp/err"; then
    pass "model truncated while in use: a message naming it, not SIGBUS"
else fail "model truncated while in use" "exit $rc: $(head -c 300 "$tmp/err")"; fi
chat_truncated --no-mmap
if [ $rc -eq 0 ] && [ ! -s "$tmp/err" ]; then pass "--no-mmap: a model truncated on disk is not affected"
else fail "--no-mmap: a model truncated on disk" "exit $rc: $(head -c 300 "$tmp/err")"; fi
for c in generate chat eval serve; do
    "$RWKV" $c --help | grep -q -- "--no-mmap" || fail "$c --help" "does not list --no-mmap"
done

# ---- clear errors
# safetensors_json FILE JSON: a safetensors file of that header and no data
safetensors_json() {
    printf '%s' "$2" >"$tmp/hdr"
    len=$(wc -c <"$tmp/hdr")
    { printf "$(printf '\\%03o' $((len & 255)) $((len >> 8 & 255)) 0 0 0 0 0 0)"; cat "$tmp/hdr"; } >"$1"
}
: >"$tmp/empty.jsonl"
expect_error "eval --lambada: an empty file" "no passages" "$RWKV" eval -m "$tmp/m.safetensors" --lambada "$tmp/empty.jsonl"
printf 'hello, tokens\n' >"$tmp/hello.txt" && "$RWKV" tokenize --out "$tmp/t.tok" "$tmp/hello.txt" 2>/dev/null
expect_error "eval --data: a token file" "is a token file" "$RWKV" eval -m "$tmp/m.safetensors" --data "$tmp/t.tok"
# a NaN in the weights: quantize refuses and writes nothing
cp "$tmp/m.safetensors" "$tmp/nan.safetensors"
hdr=$(od -An -tu8 -N8 "$tmp/m.safetensors" | tr -d ' ')
printf '\000\000\300\177' | dd of="$tmp/nan.safetensors" bs=1 seek=$((8 + hdr + 64)) conv=notrunc 2>/dev/null
expect_error "quantize: a model holding NaN" "holds NaN" "$RWKV" quantize "$tmp/nan.safetensors" "$tmp/q.bin" --type q8_0
[ -e "$tmp/q.bin" ] && fail "quantize: a model holding NaN" "wrote $tmp/q.bin"
# a write that fails says why (here the file size limit: "File too large")
expect_error "write failed: the reason" "write failed: File too large" \
    sh -c "ulimit -f 20; trap '' XFSZ; \"$RWKV\" convert \"$tmp/m.safetensors\" \"$tmp/o.safetensors\""
# a message longer than the error buffer keeps its end (the reason), shortening the path in its middle
long=/nonexistent/$(printf '%0250d' 0)/$(printf '%0250d' 1)/$(printf '%0100d' 2)/model.safetensors
expect_error "a long path keeps the reason" "\.\.\..*/model.safetensors: cannot open: No such file" "$RWKV" info "$long"
# names from a file cannot break the line or drive the terminal
safetensors_json "$tmp/esc.safetensors" '{"a\nb\u001b[31m": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}'
expect_error "tensor names are escaped" "a\\\\nb\\\\x1b\[31m" "$RWKV" info "$tmp/esc.safetensors"
safetensors_json "$tmp/f64.safetensors" '{"emb.weight": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 0]}}'
expect_error "a size that overflows" "too large (its size in bytes overflows)" "$RWKV" info "$tmp/f64.safetensors"
# (init holds one tensor at a time: here emb.weight alone, 16 GiB as float32, is too much)
expect_error "out of memory names the tensor" "out of memory for the [1-9][0-9]* values of 'emb.weight'" \
    sh -c "ulimit -v 3000000; \"$RWKV\" init --layers 1 --embd 4096 --vocab 1048576 --out \"$tmp/huge.safetensors\""
[ -e "$tmp/huge.safetensors" ] && fail "out of memory leaves no file" "wrote $tmp/huge.safetensors"
"$RWKV" init --arch rwkv7 --layers 1 --embd 64 --head-size 32 --vocab 256 --out "$tmp/h32.safetensors" 2>/dev/null
"$RWKV" init --arch rwkv7 --layers 1 --embd 64 --head-size 64 --vocab 256 --out "$tmp/h64.safetensors" 2>/dev/null
"$RWKV" generate -m "$tmp/h32.safetensors" -p hi -n 1 --state-out "$tmp/h32.state" -q >/dev/null 2>&1
expect_error "state file: head sizes differ" "head size 32 .*head size 64" \
    "$RWKV" generate -m "$tmp/h64.safetensors" -p hi -n 1 --state-in "$tmp/h32.state"

exit $failed
