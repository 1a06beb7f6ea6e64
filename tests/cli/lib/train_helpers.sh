# The common start of the training CLI tests (tests/cli/train_*.sh), sourced
# with NAME set and the rwkv binary as the script's first argument: RWKV, a
# scratch folder T (removed at exit), pass/fail, the training text and helpers.
RWKV=${1:-./rwkv}
case $RWKV in /*) ;; *) RWKV=$(pwd)/$RWKV ;; esac
T=$(mktemp -d "/tmp/rwkv_$NAME.XXXXXX")
trap 'rm -rf "$T"' EXIT
failed=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }

if [ ! -x "$RWKV" ]; then
    echo "FAIL $NAME: $RWKV is not an executable"
    exit 1
fi

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

field() { # FIELD: its value on each line of train.jsonl on stdin ("" when absent)
    sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"
}
# rel_close A B TOL: |A - B| <= TOL |B|
rel_close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(a != "" && d <= t * m) }'; }

# A new run directory DST holding only SRC's checkpoint STEP (8 digits) and its log up to it.
copy_checkpoint() { # src, dst, step
    mkdir "$2"
    cp "$1/config.json" "$1/model-$3.safetensors" "$1/train_state-$3.bin" "$2/"
    [ -f "$1/tokens.bin" ] && cp "$1/tokens.bin" "$2/"
    head -"$(expr "$3" + 0)" "$1/train.jsonl" >"$2/train.jsonl"
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

# Ctrl-C once DIR/CKPT exists, then --resume: the per-step losses must be
# those of the uninterrupted run in REF.
sigint_resume() { # name, dir, ckpt, steps, ref, train flags...
    name=$1 dir=$2 ckpt=$3 steps=$4 ref=$5
    shift 5
    RWKV_TRAIN_SAVE_PAUSE_MS=400 "$RWKV" train --data "$T/data.txt" --out "$dir" "$@" 2>/dev/null &
    pid=$!
    wait_for "$dir/$ckpt" 60
    kill -INT $pid
    wait $pid
    rc=$?
    if [ $rc -eq 130 ] && [ "$(wc -l <"$dir/train.jsonl")" -lt "$steps" ] \
        && "$RWKV" train --resume "$dir" --quiet 2>"$dir.err" && losses "$dir" | cmp -s - "$ref"; then
        pass "$name"
    else
        fail "$name" "exit $rc; resumed losses differ: $(tail -1 "$dir.err" 2>/dev/null)"
    fi
}

# After a first GPU command that exited with RC and wrote its stderr to ERR:
# with no GPU (or no CUDA in the build) prints SKIP for each name in
# GPU_TESTS and exits; a failure of another kind fails PROBE_NAME and exits.
gpu_probe() { # rc, err file, probe test name, what failed
    if [ "$1" -ne 0 ] && grep -q "no CUDA" "$2"; then
        why="no CUDA device"
        grep -q "no CUDA support" "$2" && why="this build has no CUDA support"
        for t in $GPU_TESTS; do echo "SKIP $t: $why"; done
        exit $failed
    fi
    if [ "$1" -ne 0 ]; then
        fail "$3" "$4: $(tail -1 "$2")"
        exit 1
    fi
}
