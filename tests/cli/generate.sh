#!/bin/sh
# End-to-end tests of `rwkv generate` and `rwkv chat`: greedy generation is
# the same with token-by-token and sequence-mode prompting, --state-out then
# --state-in continues exactly like an uninterrupted run, seeds reproduce,
# stop strings, chat through a pipe with /save and /load, state carried across
# chat turns, bad flags and mismatched state files rejected with one line;
# the GPT baseline generates with its KV cache up to its context.
#   sh tests/cli/generate.sh ./rwkv
# Prints PASS/FAIL/SKIP lines; exits non-zero when something failed.
RWKV=${1:-./rwkv}
case $RWKV in /*) ;; *) RWKV=$(pwd)/$RWKV ;; esac
SHARED=${RWKV_SHARED:-../shared}
T=$(mktemp -d /tmp/rwkv_generate.XXXXXX)
trap 'rm -rf "$T"' EXIT
failed=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }
skip() { echo "SKIP $1: $2"; }

if [ ! -x "$RWKV" ]; then
    echo "FAIL generate: $RWKV is not an executable"
    exit 1
fi

# expect_error NAME PATTERN CMD...: non-zero exit, exactly one line on stderr matching PATTERN
expect_error() {
    name=$1 pattern=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err" </dev/null
    rc=$?
    lines=$(wc -l <"$T/err")
    if [ $rc -eq 0 ]; then fail "$name" "exit status 0"
    elif [ $rc -ge 128 ]; then fail "$name" "killed by signal $((rc - 128))"
    elif [ "$lines" -ne 1 ]; then fail "$name" "expected one error line, got $lines: $(head -c 300 "$T/err")"
    elif ! grep -q -- "$pattern" "$T/err"; then fail "$name" "message '$(cat "$T/err")' lacks '$pattern'"
    else pass "$name"; fi
}

# same NAME FILE1 FILE2 [what]: byte-identical, non-empty
same() {
    if [ ! -s "$2" ]; then fail "$1" "empty output ${4:-}"
    elif cmp -s "$2" "$3"; then pass "$1"
    else fail "$1" "outputs differ ${4:-}: $(od -c "$2" | head -2 | tr '\n' ' ') vs $(od -c "$3" | head -2 | tr '\n' ' ')"; fi
}

# ---- help -----------------------------------------------------------------
if "$RWKV" generate --help | grep -q "usage" && "$RWKV" chat --help | grep -q "usage" &&
    "$RWKV" --help | grep -q "generate"; then pass "generate/chat help"
else fail "generate/chat help" "rwkv generate --help / rwkv chat --help"; fi

# ---- models ---------------------------------------------------------------
# name|path|prompt1|prompt2 (the tiny test-vector model has 64 tokens: bytes 0..63 only)
VEC=$SHARED/testvectors/rwkv4
CPP=$SHARED/reference/rwkv-cpp
: >"$T/models"
add_model() { # name path p1 p2
    if [ ! -f "$2" ]; then skip "$1" "$2 not found"; return; fi
    if ! "$RWKV" info "$2" >"$T/info" 2>"$T/err"; then
        if grep -q -i -e "not built yet" -e "unsupported" -e "not supported" "$T/err"; then
            skip "$1" "$(head -1 "$T/err")"
        else
            fail "$1" "rwkv info: $(head -1 "$T/err")"
        fi
        return
    fi
    printf '%s|%s|%s|%s\n' "$1" "$2" "$3" "$4" >>"$T/models"
}
add_model tv-tiny-f32 "$VEC/tiny/model.f32.safetensors" "0123456789:;<" "=>?0123"
add_model tv-tiny-bf16-pth "$VEC/tiny/model.bf16.pth" "(((())))**" "+,-./"
add_model tv-small-bf16 "$VEC/small/model.bf16.safetensors" "The quick brown fox" " jumps over"
add_model tv5-tiny-f32 "$SHARED/testvectors/rwkv5/tiny/model.f32.safetensors" "0123456789" ":;<=>?"
add_model tv6-tiny-f32 "$SHARED/testvectors/rwkv6/tiny/model.f32.safetensors" "0123456789" ":;<=>?"
add_model tv7-tiny-f32 "$SHARED/testvectors/rwkv7/tiny/model.f32.safetensors" "0123456789" ":;<=>?"
add_model tv7-hs64-bf16 "$SHARED/testvectors/rwkv7/hs64/model.bf16.safetensors" "0123456789" ":;<=>?"
add_model cpp-4v0-fp32 "$CPP/tiny-rwkv-4v0-660K-FP32.bin" "In the beginning" " was the word"
add_model cpp-4v0-fp16 "$CPP/tiny-rwkv-4v0-660K-FP16.bin" "Hello, world" ". How are you"
add_model cpp-4v0-q5_1 "$CPP/tiny-rwkv-4v0-660K-Q5_1.bin" "Once upon" " a time"
add_model cpp-5v2-fp32 "$CPP/tiny-rwkv-5v2-730K-FP32.bin" "In the beginning" " was the word"
add_model cpp-6v0-q5_0 "$CPP/tiny-rwkv-6v0-3m-Q5_0.bin" "In the beginning" " was the word"
add_model cpp-7v0-fp32 "$CPP/tiny-rwkv-7v0-834K-FP32.bin" "In the beginning" " was the word"

G="--quiet --raw --threads 2"
while IFS='|' read -r name path p1 p2; do
    [ -n "$name" ] || continue
    # greedy: token-by-token prompt (RNN mode) vs one sequence-mode call
    "$RWKV" generate -m "$path" -p "$p1$p2" -n 32 --temp 0 --chunk 1 $G >"$T/rnn" 2>"$T/err" ||
        fail "$name greedy rnn" "$(head -1 "$T/err")"
    "$RWKV" generate -m "$path" -p "$p1$p2" -n 32 --temp 0 $G >"$T/seq" 2>"$T/err" ||
        fail "$name greedy seq" "$(head -1 "$T/err")"
    "$RWKV" generate -m "$path" -p "$p1$p2" -n 32 --temp 0 --chunk 3 $G >"$T/chunk3" 2>"$T/err" ||
        fail "$name greedy chunk3" "$(head -1 "$T/err")"
    same "$name greedy: token-by-token == sequence prompt" "$T/rnn" "$T/seq"
    same "$name greedy: chunks of 3 == one sequence" "$T/chunk3" "$T/seq"

    # --state-out after the prompt, then --state-in with the rest of the prompt
    "$RWKV" generate -m "$path" -p "$p1" -n 0 --state-out "$T/s1.state" $G >/dev/null 2>"$T/err" ||
        fail "$name state-out" "$(head -1 "$T/err")"
    "$RWKV" generate -m "$path" --state-in "$T/s1.state" -p "$p2" -n 32 --temp 0 $G >"$T/cont" 2>"$T/err" ||
        fail "$name state-in" "$(head -1 "$T/err")"
    same "$name prompt state continuation == uninterrupted" "$T/cont" "$T/seq"

    # --state-out after generating, continued with more prompt
    "$RWKV" generate -m "$path" -p "$p1" -n 10 --temp 0 --state-out "$T/s2.state" $G >"$T/o1" 2>"$T/err" ||
        fail "$name gen state-out" "$(head -1 "$T/err")"
    printf '%s' "$p2" >"$T/p2"
    "$RWKV" generate -m "$path" --state-in "$T/s2.state" --prompt-file "$T/p2" -n 20 --temp 0 $G >"$T/o2" 2>"$T/err" ||
        fail "$name gen state-in" "$(head -1 "$T/err")"
    { printf '%s' "$p1"; cat "$T/o1" "$T/p2"; } >"$T/full"
    "$RWKV" generate -m "$path" --prompt-file "$T/full" -n 20 --temp 0 $G >"$T/o3" 2>"$T/err" ||
        fail "$name gen uninterrupted" "$(head -1 "$T/err")"
    same "$name generation state continuation == uninterrupted" "$T/o2" "$T/o3"

    # a seed reproduces sampled output (default sampling: temperature 1, top-p 0.85, penalties)
    # whether the prompt is fed as one sequence or token by token. Token by token, the block
    # formats' decode rounds the activations to int8 where sequence mode does not
    # (docs/quantization.md), so the states differ slightly and a sample may too: that
    # comparison runs with float activations, and with the default ones the same command
    # must reproduce itself.
    RWKV_ACTIVATIONS=f32 "$RWKV" generate -m "$path" -p "$p1" -n 40 --seed 1234 $G >"$T/r1" 2>/dev/null
    RWKV_ACTIVATIONS=f32 "$RWKV" generate -m "$path" -p "$p1" -n 40 --seed 1234 --chunk 1 $G >"$T/r2" 2>/dev/null
    same "$name seed reproduces" "$T/r1" "$T/r2"
    "$RWKV" generate -m "$path" -p "$p1" -n 40 --seed 1234 --chunk 1 $G >"$T/r3" 2>/dev/null
    "$RWKV" generate -m "$path" -p "$p1" -n 40 --seed 1234 --chunk 1 $G >"$T/r4" 2>/dev/null
    same "$name seed reproduces (default activations, token by token)" "$T/r3" "$T/r4"

    # --json: the same tokens as the streamed text
    if "$RWKV" generate -m "$path" -p "$p1" -n 12 --temp 0 --json --quiet >"$T/j" 2>"$T/err" &&
        grep -q '"tokens": \[' "$T/j" && grep -q '"stop_reason": "length"' "$T/j" &&
        grep -q '"generated_tokens": 12' "$T/j"; then pass "$name json"
    else fail "$name json" "$(head -c 300 "$T/j") $(head -1 "$T/err")"; fi
done <"$T/models"

# ---- details on one model ---------------------------------------------------
SM=$VEC/small/model.bf16.safetensors
TINY=$VEC/tiny/model.f32.safetensors
if [ -f "$SM" ] && [ -f "$TINY" ]; then
    # timing line on stderr
    if "$RWKV" generate -m "$SM" -p "Hi" -n 5 --temp 0 --threads 2 >/dev/null 2>"$T/err" &&
        grep -q "prompt: 2 tokens.*tokens/s.*generated: 5 tokens.*tokens/s" "$T/err"; then pass "timing on stderr"
    else fail "timing on stderr" "$(cat "$T/err")"; fi

    # stop string: output ends right before its first occurrence
    "$RWKV" generate -m "$SM" -p "The quick brown fox" -n 60 --temp 0 $G >"$T/free" 2>/dev/null
    stop=$(LC_ALL=C grep -a -o '[!-~][!-~]' "$T/free" | grep -v -e '^-' | sed -n 2p)
    if [ -z "$stop" ]; then skip "stop string" "no two printable characters in a row in the greedy output"
    else
        off=$(LC_ALL=C grep -a -b -o -F -- "$stop" "$T/free" | head -1 | cut -d: -f1)
        head -c "$off" "$T/free" >"$T/want"
        "$RWKV" generate -m "$SM" -p "The quick brown fox" -n 60 --temp 0 --raw --threads 2 --stop "$stop" \
            >"$T/got" 2>"$T/err"
        if cmp -s "$T/got" "$T/want" && grep -q "stop: stop" "$T/err"; then pass "stop string '$stop'"
        else fail "stop string '$stop'" "got $(od -c "$T/got" | tail -3 | tr '\n' ' ') $(cat "$T/err")"; fi
    fi
    # stop token: the output ends before it
    "$RWKV" generate -m "$SM" -p "Hi" -n 20 --temp 0 --json --quiet >"$T/j0"
    t3=$(sed 's/.*"tokens": \[\([0-9]*\), \([0-9]*\), \([0-9]*\).*/\3/' "$T/j0")
    "$RWKV" generate -m "$SM" -p "Hi" -n 20 --temp 0 --json --quiet --stop-token "$t3" >"$T/j1"
    if grep -q '"generated_tokens": 2,' "$T/j1" && grep -q '"stop_reason": "stop_token"' "$T/j1"; then
        pass "stop token"
    else fail "stop token" "$(head -c 300 "$T/j1")"; fi

    # state files: mismatches and damage are one-line errors
    "$RWKV" generate -m "$SM" -p "Hello" -n 0 --state-out "$T/small.state" --quiet
    expect_error "state of another shape" "V=512" "$RWKV" generate -m "$TINY" --state-in "$T/small.state" -p 0
    "$RWKV" generate -m "$TINY" -p "0" -n 0 --state-out "$T/tiny.state" --quiet
    if [ -f "$VEC/tiny/model.bf16.safetensors" ]; then
        expect_error "state of other weights" "other weights" \
            "$RWKV" generate -m "$VEC/tiny/model.bf16.safetensors" --state-in "$T/tiny.state" -p 0
    fi
    if [ -f "$VEC/tiny/model.f32.pth" ]; then
        if "$RWKV" generate -m "$VEC/tiny/model.f32.pth" --state-in "$T/tiny.state" -p 0 -n 2 --quiet >/dev/null 2>"$T/err"
        then pass "state of the same weights in another container"
        else fail "state of the same weights in another container" "$(cat "$T/err")"; fi
    fi
    head -c 200 "$T/tiny.state" >"$T/trunc.state"
    expect_error "truncated state file" "truncated" "$RWKV" generate -m "$TINY" --state-in "$T/trunc.state" -p 0
    head -c 50 "$T/tiny.state" >"$T/trunc2.state"
    expect_error "truncated state header" "truncated" "$RWKV" generate -m "$TINY" --state-in "$T/trunc2.state" -p 0
    echo "not a state" >"$T/junk.state"
    expect_error "not a state file" "magic" "$RWKV" generate -m "$TINY" --state-in "$T/junk.state" -p 0
    expect_error "missing state file" "cannot open" "$RWKV" generate -m "$TINY" --state-in "$T/none.state" -p 0
    ls "$T"/*.tmp.* >/dev/null 2>&1 && fail "state files leave no temp files" "found $(ls "$T"/*.tmp.*)"

    # bad flags
    expect_error "no model" "model is required" "$RWKV" generate -p hi
    expect_error "bad temperature" "--temp" "$RWKV" generate -m "$SM" -p hi --temp -1
    expect_error "bad top-p" "--top-p" "$RWKV" generate -m "$SM" -p hi --top-p 1.5
    expect_error "bad top-k" "--top-k" "$RWKV" generate -m "$SM" -p hi --top-k -3
    expect_error "bad -n" "-n" "$RWKV" generate -m "$SM" -p hi -n lots
    expect_error "bad seed" "--seed" "$RWKV" generate -m "$SM" -p hi --seed -5
    expect_error "bad decay" "--decay" "$RWKV" generate -m "$SM" -p hi --decay 2
    expect_error "missing value" "needs a value" "$RWKV" generate -m "$SM" -p
    expect_error "unknown option" "unknown option" "$RWKV" generate -m "$SM" -p hi --frobnicate
    expect_error "empty stop" "--stop" "$RWKV" generate -m "$SM" -p hi --stop ""
    expect_error "raw and json" "--raw" "$RWKV" generate -m "$SM" -p hi --raw --json
    expect_error "ban outside vocab" "--ban 600" "$RWKV" generate -m "$SM" -p hi --ban 600
    expect_error "empty prompt" "prompt is empty" "$RWKV" generate -m "$SM" -p ""
    expect_error "prompt outside vocab" "outside the vocabulary" "$RWKV" generate -m "$TINY" -p "ABC"
    expect_error "missing prompt file" "prompt file" "$RWKV" generate -m "$SM" --prompt-file "$T/none.txt"
    expect_error "missing tokenizer" "none.json" "$RWKV" generate -m "$SM" -p hi --tokenizer "$T/none.json"
    expect_error "chat bad flag" "unknown option" "$RWKV" chat -m "$SM" --frobnicate
    expect_error "chat no model" "model is required" "$RWKV" chat

    # ---- chat through a pipe ------------------------------------------------
    C="--temp 0 -n 12 --threads 2"
    printf 'hello there\n/save %s\nhow are you?\n/quit\nnever read\n' "$T/c1.state" |
        "$RWKV" chat -m "$SM" $C >"$T/chatA" 2>"$T/chatA.err"
    rcA=$?
    printf '/load %s\nhow are you?\n' "$T/c1.state" | "$RWKV" chat -m "$SM" $C >"$T/chatB" 2>"$T/chatB.err"
    rcB=$?
    # the reply to the second message, after /save -> /load, is the same
    tail -n 1 "$T/chatA" >"$T/replyA"
    if [ $rcA -eq 0 ] && [ $rcB -eq 0 ] && [ "$(grep -c '^Assistant:' "$T/chatA")" -eq 2 ] &&
        grep -q "saved" "$T/chatA.err" && grep -q "loaded" "$T/chatB.err"; then
        same "chat /save then /load continues the conversation" "$T/chatB" "$T/replyA"
    else fail "chat /save /load" "rc $rcA/$rcB: $(cat "$T/chatA.err" "$T/chatB.err" | tr '\n' ' ')"; fi
    # /reset forgets: the first reply again
    printf 'hello there\n/reset\nhello there\n' | "$RWKV" chat -m "$SM" $C >"$T/chatR" 2>/dev/null
    sed -n 1p "$T/chatR" >"$T/r1"
    sed -n 2p "$T/chatR" >"$T/r2"
    same "chat /reset starts over" "$T/r1" "$T/r2"
    # --state-out at the end == /save
    printf 'hello there\n' | "$RWKV" chat -m "$SM" $C --state-out "$T/c2.state" >/dev/null 2>&1
    printf 'hello there\n/save %s\n' "$T/c3.state" | "$RWKV" chat -m "$SM" $C >/dev/null 2>&1
    same "chat --state-out == /save" "$T/c2.state" "$T/c3.state"
    # --state-in starts where /save left off
    printf 'how are you?\n' | "$RWKV" chat -m "$SM" $C --state-in "$T/c1.state" >"$T/chatC" 2>/dev/null
    same "chat --state-in continues" "$T/chatC" "$T/replyA"
    # a bad /load is reported (one line), the conversation goes on, the exit status says so
    printf '/load %s\nhow are you?\n' "$T/small.state" | "$RWKV" chat -m "$TINY" -n 4 --temp 0 >"$T/chatE" 2>"$T/chatE.err"
    rc=$?
    if [ $rc -ne 0 ] && [ "$(wc -l <"$T/chatE.err")" -eq 2 ] && grep -q "V=512" "$T/chatE.err"; then
        pass "chat bad /load reported"
    else fail "chat bad /load reported" "rc $rc: $(cat "$T/chatE.err" | tr '\n' ' ')"; fi

    # state carried across turns: the second reply equals generate on the whole transcript
    # (printable ASCII only, no newlines, so the printed replies are the exact text)
    bans=""
    i=0
    while [ $i -lt 256 ]; do
        if [ $i -lt 32 ] || [ $i -gt 126 ]; then bans="$bans --ban $i"; fi
        i=$((i + 1))
    done
    P="--temp 0 --presence 0 --frequency 0 --threads 2 $bans"
    printf 'hello\nhow are you\n' | "$RWKV" chat -m "$SM" -n 24 $P >"$T/chatS" 2>"$T/err"
    r1=$(sed -n 1p "$T/chatS" | sed 's/^Assistant://')
    sed -n 2p "$T/chatS" | sed 's/^Assistant://' >"$T/want2"
    printf 'User: hello\n\nAssistant:%s\n\nUser: how are you\n\nAssistant:' "$r1" >"$T/transcript"
    "$RWKV" generate -m "$SM" --prompt-file "$T/transcript" -n 24 --quiet $P >"$T/got2" 2>>"$T/err"
    echo >>"$T/got2"
    same "chat carries the state across turns (== generate on the transcript)" "$T/got2" "$T/want2" "$(cat "$T/err")"
    printf 'hello\nhow are you\n' | "$RWKV" chat -m "$SM" -n 24 --chunk 1 $P >"$T/chatS1" 2>/dev/null
    same "chat: token-by-token feeding == sequence mode" "$T/chatS1" "$T/chatS"
else
    skip "generate details" "$SM or $TINY not found"
fi

# ---- the GPT baseline: decoded with its KV cache, bounded by its context -------
GPT=$T/gpt.safetensors
if "$RWKV" init --arch gpt --layers 2 --embd 32 --heads 2 --vocab 256 --ctx 24 --out "$GPT" >/dev/null 2>"$T/err"; then
    GG="--temp 0 --presence 0 --frequency 0 --raw --quiet"
    # greedy continuation: feeding the output back as a prompt continues exactly
    "$RWKV" generate -m "$GPT" -p "Hello" -n 6 $GG --threads 1 >"$T/ga" 2>"$T/err" || fail "gpt greedy" "$(head -1 "$T/err")"
    "$RWKV" generate -m "$GPT" -p "Hello" -n 10 $GG --threads 2 >"$T/gb" 2>"$T/err" || fail "gpt greedy" "$(head -1 "$T/err")"
    { printf 'Hello'; cat "$T/ga"; } >"$T/gp"
    "$RWKV" generate -m "$GPT" --prompt-file "$T/gp" -n 4 $GG >"$T/gc" 2>"$T/err" || fail "gpt greedy" "$(head -1 "$T/err")"
    cat "$T/ga" "$T/gc" >"$T/gac"
    same "gpt greedy: output fed back as prompt continues the same" "$T/gac" "$T/gb"
    # a seed reproduces sampled output
    "$RWKV" generate -m "$GPT" -p "Hello" -n 12 --seed 77 --top-k 5 --raw --quiet >"$T/gs1" 2>/dev/null
    "$RWKV" generate -m "$GPT" -p "Hello" -n 12 --seed 77 --top-k 5 --raw --quiet >"$T/gs2" 2>/dev/null
    same "gpt seed reproduces" "$T/gs1" "$T/gs2"
    # the context: 5 prompt tokens + 20 generated = 24 positions + the last token, never fed
    if "$RWKV" generate -m "$GPT" -p "Hello" -n 100 --temp 0 --json >"$T/gj" 2>"$T/err" &&
        grep -q '"generated_tokens": 20,' "$T/gj" && grep -q '"stop_reason": "context"' "$T/gj" &&
        grep -q "context of 24 positions" "$T/err" && grep -q "stop: context" "$T/err"; then
        pass "gpt generation stops at the context"
    else fail "gpt generation stops at the context" "$(head -c 300 "$T/gj") $(cat "$T/err")"; fi
    if "$RWKV" generate -m "$GPT" -p "Hello" -n 20 --temp 0 --json --quiet >"$T/gj20" 2>"$T/err" &&
        grep -q '"stop_reason": "length"' "$T/gj20" && [ ! -s "$T/err" ]; then pass "gpt: -n up to the context is length"
    else fail "gpt: -n up to the context is length" "$(head -c 300 "$T/gj20") $(cat "$T/err")"; fi
    # stop token
    t3=$(sed 's/.*"tokens": \[\([0-9]*\), \([0-9]*\), \([0-9]*\).*/\3/' "$T/gj")
    "$RWKV" generate -m "$GPT" -p "Hello" -n 20 --temp 0 --json --quiet --stop-token "$t3" >"$T/gj1" 2>"$T/err"
    if grep -q '"stop_reason": "stop_token"' "$T/gj1" && ! grep -q '"generated_tokens": 20,' "$T/gj1"; then
        pass "gpt stop token"
    else fail "gpt stop token" "$(head -c 300 "$T/gj1") $(cat "$T/err")"; fi
    # what needs an RWKV state is refused, in one line
    expect_error "gpt --state-in refused" "--state-in needs an RWKV model" \
        "$RWKV" generate -m "$GPT" -p hi --state-in "$T/none.state"
    expect_error "gpt --state-out refused" "--state-out needs an RWKV model" \
        "$RWKV" generate -m "$GPT" -p hi --state-out "$T/gpt.state"
    expect_error "gpt --chunk refused" "--chunk needs an RWKV model" "$RWKV" generate -m "$GPT" -p hi --chunk 4
    expect_error "gpt prompt longer than the context" "context of 24" \
        "$RWKV" generate -m "$GPT" -p "a prompt of more than twenty-four bytes" -n 3
    expect_error "gpt ban outside vocab" "--ban 300" "$RWKV" generate -m "$GPT" -p hi --ban 300
    [ -f "$T/gpt.state" ] && fail "gpt --state-out writes nothing" "$T/gpt.state exists"
else
    fail "gpt generate" "rwkv init --arch gpt: $(head -1 "$T/err")"
fi

# ---- tokenizers: chat formats with the real vocabularies ----------------------
# (random models with the vocabulary sizes of Raven/World, so the format code runs)
NEOX=$CPP/20B_tokenizer.json
WORLD=$CPP/rwkv_vocab_v20230424.txt
for kind in neox world; do
    if [ $kind = neox ]; then tok=$NEOX V=50277 bot=Alice; else tok=$WORLD V=65536 bot=Assistant; fi
    if [ ! -f "$tok" ]; then skip "chat $kind" "$tok not found"; continue; fi
    if ! "$RWKV" init --layers 1 --embd 32 --vocab $V --emb-scale 0.5 --out "$T/$kind.safetensors" >/dev/null 2>"$T/err"; then
        skip "chat $kind" "rwkv init: $(head -1 "$T/err")"
        continue
    fi
    if ! printf 'x' | "$RWKV" tokenize --tokenizer "$tok" >/dev/null 2>"$T/err"; then
        skip "chat $kind" "tokenizer: $(head -1 "$T/err")"
        continue
    fi
    printf 'Hi!\nWhat is 2+2?\n' | "$RWKV" chat -m "$T/$kind.safetensors" --tokenizer "$tok" -n 30 --seed 3 \
        --threads 2 >"$T/chat_$kind" 2>"$T/err"
    rc=$?
    if [ $rc -eq 0 ] && [ "$(grep -c "^$bot:" "$T/chat_$kind")" -eq 2 ]; then pass "chat $kind format"
    else fail "chat $kind format" "rc $rc: $(head -c 300 "$T/chat_$kind") $(cat "$T/err")"; fi
    "$RWKV" generate -m "$T/$kind.safetensors" --tokenizer "$tok" -p "Hello world" -n 16 --temp 0 --threads 2 --quiet \
        >"$T/g_$kind" 2>"$T/err"
    "$RWKV" generate -m "$T/$kind.safetensors" --tokenizer "$tok" -p "Hello world" -n 16 --temp 0 --threads 2 --quiet \
        --chunk 1 >"$T/g1_$kind" 2>>"$T/err"
    same "generate $kind tokenizer: token-by-token == sequence" "$T/g1_$kind" "$T/g_$kind" "$(cat "$T/err")"
done

exit $failed
