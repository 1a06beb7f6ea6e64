#!/bin/sh
# What the rwkv command does to the user's files: an output that is the same
# file as an input (the same path, a symbolic or a hard link) is refused with
# one line before anything is written, and the input is left as it was; a
# training run never writes into a folder holding files it would replace; an
# interrupted or failed write leaves no temporary file behind.
#   sh tests/cli/file_safety.sh ./rwkv
# Prints PASS/FAIL/SKIP lines; exits non-zero when something failed.
RWKV=${1:-./rwkv}
case $RWKV in /*) ;; *) RWKV=$(pwd)/$RWKV ;; esac
T=$(mktemp -d /tmp/rwkv_file_safety.XXXXXX)
trap 'rm -rf "$T"' EXIT
failed=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }

if [ ! -x "$RWKV" ]; then
    echo "FAIL file_safety: $RWKV is not an executable"
    exit 1
fi

# refused NAME FILE CMD...: non-zero exit, one line on stderr naming the input, FILE unchanged
refused() {
    name=$1 file=$2
    shift 2
    cp "$file" "$T/before"
    "$@" >"$T/out" 2>"$T/err" </dev/null
    rc=$?
    if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then fail "$name" "exit status $rc"
    elif [ "$(wc -l <"$T/err")" -ne 1 ]; then fail "$name" "expected one error line: $(head -c 300 "$T/err")"
    elif ! grep -q "same file as the input" "$T/err"; then fail "$name" "message: $(cat "$T/err")"
    elif ! cmp -s "$file" "$T/before"; then fail "$name" "$file was changed"
    else pass "$name"; fi
}

M=$T/m.safetensors
if ! "$RWKV" init --layers 1 --embd 16 --vocab 256 --out "$M" 2>"$T/err"; then
    echo "FAIL file_safety: rwkv init: $(cat "$T/err")"
    exit 1
fi
ln -s "$M" "$T/link.safetensors"
ln "$M" "$T/hard.safetensors"
printf 'some text to tokenize, twice over; some text to tokenize.\n' >"$T/t.txt"

# ---- conversions and token files ------------------------------------------
refused convert_onto_input "$M" "$RWKV" convert "$M" "$M"
refused convert_onto_symlink_of_input "$M" "$RWKV" convert "$M" "$T/link.safetensors"
refused convert_onto_hard_link_of_input "$M" "$RWKV" convert "$T/hard.safetensors" "$M"
refused quantize_onto_input "$M" "$RWKV" quantize "$M" "$M" --type q8_0
refused tokenize_onto_input "$T/t.txt" "$RWKV" tokenize --out "$T/t.txt" "$T/t.txt"
mkdir "$T/hf"
cp "$M" "$T/hf/model.safetensors"
refused convert_hf_onto_input "$T/hf/model.safetensors" "$RWKV" convert --layout hf "$T/hf/model.safetensors" "$T/hf"

# ---- state files ----------------------------------------------------------
refused generate_state_out_onto_model "$M" "$RWKV" generate -m "$M" -p "ab" --max-tokens 2 --state-out "$M"
refused generate_state_out_onto_prompt "$T/t.txt" "$RWKV" generate -m "$M" --prompt-file "$T/t.txt" --max-tokens 2 \
    --state-out "$T/t.txt"
refused chat_state_out_onto_model "$M" "$RWKV" chat -m "$M" --state-out "$T/link.safetensors"
cp "$M" "$T/before"
printf '/save %s\n' "$M" | "$RWKV" chat -m "$M" --max-tokens 2 >/dev/null 2>"$T/err"
if grep -q "same file as the input" "$T/err" && cmp -s "$M" "$T/before"; then pass chat_save_onto_model
else fail chat_save_onto_model "/save over the model: $(cat "$T/err")"; fi

# an output that is a different file is still written, and a state may replace the one it continues
if "$RWKV" convert "$M" "$T/copy.safetensors" 2>/dev/null && "$RWKV" info "$T/copy.safetensors" >/dev/null 2>&1 &&
    "$RWKV" generate -m "$M" -p "ab" --max-tokens 2 --state-out "$T/s.bin" >/dev/null 2>&1 &&
    "$RWKV" generate -m "$M" -p "cd" --max-tokens 2 --state-in "$T/s.bin" --state-out "$T/s.bin" >/dev/null 2>&1; then
    pass distinct_outputs_written
else
    fail distinct_outputs_written "convert to a new file or a state saved over its --state-in failed"
fi

# ---- training runs --------------------------------------------------------
awk 'BEGIN { for (i = 0; i < 400; i++) printf "line %d: the quick brown fox jumps over the lazy dog.\n", i }' >"$T/data.txt"
mkdir "$T/run"
cp "$M" "$T/run/model.safetensors"
cp "$M" "$T/before"
"$RWKV" train --data "$T/data.txt" --init "$T/run/model.safetensors" --out "$T/run" --ctx 8 --batch 2 --steps 1 \
    --threads 1 --no-peak --quiet >/dev/null 2>"$T/err"
rc=$?
if [ $rc -ne 0 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q "already holds model.safetensors" "$T/err" &&
    cmp -s "$T/run/model.safetensors" "$T/before" && [ ! -e "$T/run/config.json" ]; then
    pass train_refuses_folder_with_model
else
    fail train_refuses_folder_with_model "exit $rc: $(cat "$T/err")"
fi
mkdir "$T/run2"
cp "$T/data.txt" "$T/run2/tokens.bin"
cp "$T/data.txt" "$T/before"
"$RWKV" train --data "$T/run2/tokens.bin" --out "$T/run2" --ctx 8 --batch 2 --steps 1 --threads 1 --no-peak --quiet \
    >/dev/null 2>"$T/err"
rc=$?
if [ $rc -ne 0 ] && grep -q "same file as the input" "$T/err" && cmp -s "$T/run2/tokens.bin" "$T/before"; then
    pass train_refuses_text_data_at_tokens_bin
else
    fail train_refuses_text_data_at_tokens_bin "exit $rc: $(cat "$T/err")"
fi
mkdir "$T/run3"
"$RWKV" tokenize --out "$T/run3/tokens.bin" "$T/data.txt" 2>/dev/null
if "$RWKV" train --data "$T/run3/tokens.bin" --out "$T/run3" --ctx 8 --batch 2 --steps 1 --eval-every 0 \
    --val-windows 1 --threads 1 --no-peak --quiet 2>"$T/err"; then
    pass train_token_file_in_its_run_folder
else
    fail train_token_file_in_its_run_folder "$(cat "$T/err")"
fi

# ---- interrupted and failed writes leave no temporary file ----------------
mkdir "$T/w"
(ulimit -f 8; exec "$RWKV" init --layers 2 --embd 64 --vocab 256 --out "$T/w/big.safetensors") >/dev/null 2>"$T/err"
rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && [ -z "$(ls "$T/w")" ]; then
    pass write_past_file_size_limit_cleans_up
else
    fail write_past_file_size_limit_cleans_up "exit $rc, left: $(ls "$T/w" | tr '\n' ' ')$(head -c 200 "$T/err")"
fi
# a second Ctrl-C while train writes a checkpoint (the first one asks it to stop after the step)
RWKV_TRAIN_SAVE_PAUSE_MS=1500 "$RWKV" train --data "$T/data.txt" --out "$T/w/run" --layers 1 --embd 16 --ctx 8 \
    --batch 2 --steps 40 --save-every 5 --threads 1 --no-peak --quiet 2>/dev/null &
pid=$!
n=0
while [ ! -e "$T/w/run/model-00000005.safetensors" ] && [ $n -lt 1500 ]; do sleep 0.02; n=$((n + 1)); done
sleep 0.3
kill -INT $pid
sleep 0.3
kill -INT $pid
wait $pid
rc=$?
if [ $rc -eq 130 ] && [ -e "$T/w/run/model-00000005.safetensors" ] && [ "$(ls "$T/w/run" | grep -c '\.tmp\.')" -eq 0 ]; then
    pass second_ctrl_c_mid_write_cleans_up
else
    fail second_ctrl_c_mid_write_cleans_up "exit $rc, run folder: $(ls "$T/w/run" | tr '\n' ' ')"
fi

exit $failed
