# Helpers of the training CLI tests (tests/cli/train_*.sh); sourced after
# RWKV, T, pass and fail are defined.

# training text: a slice of Tiny Shakespeare when it is there, else generated text
SHARED=${RWKV_SHARED:-../shared}
if [ -f "$SHARED/data/tinyshakespeare/input.txt" ]; then
    head -c 60000 "$SHARED/data/tinyshakespeare/input.txt" >"$T/data.txt"
else
    awk 'BEGIN { for (i = 0; i < 3000; i++) printf "line %d: the quick brown fox %d jumps over the lazy dog.\n", i, i * 7 % 13 }' >"$T/data.txt"
fi

# the deterministic fields of each log line (not the timings)
losses() {
    sed -e 's/"tokens_per_s":[^,]*,//' -e 's/"mfu":[^,]*,//' -e 's/,"elapsed_s":[^,}]*//' "$1/train.jsonl"
}

wait_for() { # file, seconds
    n=0
    while [ ! -e "$1" ]; do
        sleep 0.02
        n=$((n + 1))
        [ $n -gt $(($2 * 50)) ] && return 1
    done
    return 0
}

# a bad invocation: one line on stderr naming the problem, non-zero exit
bad() { # name, expected message part, args...
    name=$1
    want=$2
    shift 2
    "$RWKV" "$@" >"$T/bad.out" 2>"$T/bad.err"
    rc=$?
    if [ $rc -ne 0 ] && [ "$(wc -l <"$T/bad.err")" -eq 1 ] && grep -q -- "$want" "$T/bad.err"; then
        pass "$name"
    else
        fail "$name" "exit $rc, stderr: $(head -2 "$T/bad.err" | tr '\n' ' ')"
    fi
}
