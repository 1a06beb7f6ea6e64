#!/bin/sh
# Ctrl-C in generate and chat: the current token is finished, then what was
# asked for is written (--state-out, the --json object, the conversation
# state) and the exit status is 130. The state saved by an interrupted
# greedy generation is the very state of an uninterrupted one of the same
# length.
#   sh tests/cli/interrupt.sh ./rwkv
# Prints PASS/FAIL/SKIP lines; exits non-zero when something failed.
RWKV=${1:-./rwkv}
case $RWKV in /*) ;; *) RWKV=$(pwd)/$RWKV ;; esac
T=$(mktemp -d /tmp/rwkv_interrupt.XXXXXX)
trap 'rm -rf "$T"' EXIT
failed=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }

if [ ! -x "$RWKV" ]; then
    echo "FAIL interrupt: $RWKV is not an executable"
    exit 1
fi

# wait_size FILE BYTES: until FILE holds at least BYTES (at most 30 s)
wait_size() {
    n=0
    while [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -lt "$2" ] && [ $n -lt 1500 ]; do sleep 0.02; n=$((n + 1)); done
}

# Background commands of a script start with SIGINT ignored; DFL restores the
# default action (as in a terminal), so that a command without a handler of
# its own dies of Ctrl-C here too.
DFL=
if env --default-signal=INT true 2>/dev/null; then DFL="env --default-signal=INT"; fi

# ctrl_c PID: SIGINT, then the exit status (137 when it was still running 20 s later and got kill -9)
ctrl_c() {
    kill -INT "$1"
    n=0
    while [ -e "/proc/$1" ] && ! awk '{ exit $3 != "Z" }' "/proc/$1/stat" 2>/dev/null && [ $n -lt 1000 ]; do
        sleep 0.02
        n=$((n + 1))
    done
    kill -9 "$1" 2>/dev/null
    wait "$1"
}

M=$T/m.safetensors
if ! "$RWKV" init --layers 1 --embd 16 --vocab 256 --out "$M" 2>"$T/err"; then
    echo "FAIL interrupt: rwkv init: $(cat "$T/err")"
    exit 1
fi
LONG="--max-tokens 100000000"

# ---- generate: streaming -------------------------------------------------
$DFL "$RWKV" generate -m "$M" -p "hello" $LONG --ignore-eos --temp 0 --state-out "$T/s.bin" >"$T/out.txt" 2>"$T/err" &
pid=$!
wait_size "$T/out.txt" 200
ctrl_c $pid
rc=$?
if [ $rc -eq 130 ] && [ -s "$T/s.bin" ] && grep -q "stop: interrupted" "$T/err" &&
    "$RWKV" generate -m "$M" --state-in "$T/s.bin" -p "x" -n 1 -q >/dev/null 2>&1; then
    pass generate_ctrl_c_saves_state
else
    fail generate_ctrl_c_saves_state "exit $rc, state file: $(ls -l "$T/s.bin" 2>&1), stderr: $(tail -1 "$T/err")"
fi

# ---- generate --json: the object, and the state of exactly the tokens it lists
$DFL "$RWKV" generate -m "$M" -p "hello" $LONG --ignore-eos --temp 0 --json --state-out "$T/j.bin" >"$T/out.json" 2>"$T/err" &
pid=$!
sleep 1
ctrl_c $pid
rc=$?
n=$(sed -n 's/.*"generated_tokens": \([0-9]*\),.*/\1/p' "$T/out.json")
if [ $rc -eq 130 ] && grep -q '"stop_reason": "interrupted"' "$T/out.json" && [ -n "$n" ] && [ -s "$T/j.bin" ]; then
    pass generate_json_ctrl_c_prints_result
    if "$RWKV" generate -m "$M" -p "hello" -n "$n" --ignore-eos --temp 0 --state-out "$T/ref.bin" -q >/dev/null 2>&1 &&
        cmp -s "$T/j.bin" "$T/ref.bin"; then
        pass generate_ctrl_c_state_is_the_printed_tokens
    else
        fail generate_ctrl_c_state_is_the_printed_tokens "the state after $n tokens differs from an uninterrupted run's"
    fi
else
    fail generate_json_ctrl_c_prints_result "exit $rc, stdout: $(head -c 200 "$T/out.json")"
fi

# ---- chat: in the middle of a reply, and while waiting for the next line ---
printf 'hi\n' | $DFL "$RWKV" chat -m "$M" $LONG --state-out "$T/c.bin" >"$T/chat.txt" 2>"$T/err" &
pid=$!
wait_size "$T/chat.txt" 200
ctrl_c $pid
rc=$?
if [ $rc -eq 130 ] && [ -s "$T/c.bin" ] && "$RWKV" chat -m "$M" --state-in "$T/c.bin" -n 2 </dev/null >/dev/null 2>&1; then
    pass chat_ctrl_c_mid_reply_saves_state
else
    fail chat_ctrl_c_mid_reply_saves_state "exit $rc, state file: $(ls -l "$T/c.bin" 2>&1), stderr: $(tail -1 "$T/err")"
fi
mkfifo "$T/in"
$DFL "$RWKV" chat -m "$M" -n 4 --state-out "$T/w.bin" <"$T/in" >"$T/chat2.txt" 2>"$T/err" &
pid=$!
exec 3>"$T/in" # the conversation stays open: chat waits for a line
printf 'hi\n' >&3
wait_size "$T/chat2.txt" 4
sleep 0.3
ctrl_c $pid
rc=$?
exec 3>&-
if [ $rc -eq 130 ] && [ -s "$T/w.bin" ] && [ ! -s "$T/err" ]; then
    pass chat_ctrl_c_at_prompt_saves_state
else
    fail chat_ctrl_c_at_prompt_saves_state "exit $rc, state file: $(ls -l "$T/w.bin" 2>&1), stderr: $(tail -1 "$T/err")"
fi

exit $failed
