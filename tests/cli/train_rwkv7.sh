#!/bin/sh
# End-to-end tests of `rwkv train --arch rwkv7` / `rwkv init --arch rwkv7`:
# the loss falls, a run repeats itself, Ctrl-C and kill -9 in the middle of a
# checkpoint write resume to the same per-step losses, the NaN guard, and the
# trained files load as RWKV-7 models in the other commands (info, generate,
# eval, convert, quantize, bench, chat).
#   sh tests/cli/train_rwkv7.sh ./rwkv
# Prints PASS/FAIL/SKIP lines; exits non-zero when something failed.
NAME=train_rwkv7
. "$(dirname "$0")/lib/train_helpers.sh"

# 20 tokens of context cross the WKV's 16-token checkpoint chunk
FLAGS="--arch rwkv7 --layers 2 --embd 32 --head-size 8 --ctx 20 --batch 4 --steps 24 --save-every 8 --eval-every 8 --val-windows 8 --threads 2 --seed 7 --lr 3e-3 --no-peak --quiet"

# ---- reference: uninterrupted -------------------------------------------
if ! "$RWKV" train --data "$T/data.txt" --out "$T/a" $FLAGS 2>"$T/a.err"; then
    fail train_rwkv7_uninterrupted "$(tail -1 "$T/a.err")"
    exit 1
fi
losses "$T/a" >"$T/a.losses"
first=$(sed -n '1s/.*"loss":\([^,]*\),.*/\1/p' "$T/a.losses")
last=$(sed -n '24s/.*"loss":\([^,]*\),.*/\1/p' "$T/a.losses")
if [ "$(wc -l <"$T/a.losses")" -eq 24 ] && [ -f "$T/a/model.safetensors" ] && grep -q '"val_loss"' "$T/a.losses" \
    && grep -q '"arch": "rwkv7"' "$T/a/config.json" && grep -q '"head_size": 8' "$T/a/config.json" \
    && awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }'; then
    pass train_rwkv7_loss_falls
else
    fail train_rwkv7_loss_falls "24 log lines, arch and head size in config.json, loss $first -> $last"
fi

# ---- the files are RWKV-7 models for the other commands ---------------------
if "$RWKV" info "$T/a/model-00000016.safetensors" >"$T/info.out" 2>&1 && grep -q 'RWKV-7' "$T/info.out" \
    && grep -q 'heads: *4 x 8' "$T/info.out"; then
    pass train_rwkv7_checkpoint_info
else
    fail train_rwkv7_checkpoint_info "$(tail -2 "$T/info.out" | tr '\n' ' ')"
fi
if "$RWKV" generate -m "$T/a/model.safetensors" -p "the " -n 8 --seed 1 >"$T/gen.out" 2>"$T/gen.err" \
    && [ -s "$T/gen.out" ]; then
    pass train_rwkv7_model_generates
else
    fail train_rwkv7_model_generates "$(tail -1 "$T/gen.err")"
fi

# eval, convert, quantize (GGUF, as for every RWKV-7), bench and chat read it as an RWKV-7 model too
M="$T/a/model.safetensors"
if "$RWKV" eval -m "$M" --data "$T/data.txt" >"$T/eval.out" 2>&1 && grep -q 'top-1 accuracy' "$T/eval.out" \
    && "$RWKV" convert "$M" "$T/a16.safetensors" --dtype f16 >/dev/null 2>&1 \
    && "$RWKV" info "$T/a16.safetensors" 2>&1 | grep -q 'RWKV-7' \
    && "$RWKV" quantize "$M" "$T/a8.gguf" --type q8_0 --tokenizer bytes >/dev/null 2>&1 \
    && "$RWKV" info "$T/a8.gguf" 2>&1 | grep -q 'RWKV-7' \
    && "$RWKV" generate -m "$T/a8.gguf" --tokenizer bytes -p "the " -n 4 --seed 1 >/dev/null 2>&1 \
    && "$RWKV" bench -m "$M" -t 1 --tokens 4 --prompt 4 --no-machine >"$T/bench.out" 2>&1 \
    && grep -q 'prefill' "$T/bench.out" \
    && echo hello | "$RWKV" chat -m "$M" -n 4 >"$T/chat.out" 2>&1 && grep -q 'Assistant:' "$T/chat.out"; then
    pass train_rwkv7_model_in_every_command
else
    fail train_rwkv7_model_in_every_command "eval, convert, quantize, bench or chat: $(tail -1 "$T/eval.out" "$T/bench.out" "$T/chat.out" 2>/dev/null | tr '\n' ' ')"
fi

# ---- same seed, same threads: the same run --------------------------------
"$RWKV" train --data "$T/data.txt" --out "$T/a2" $FLAGS 2>/dev/null
if losses "$T/a2" | cmp -s - "$T/a.losses"; then
    pass train_rwkv7_deterministic
else
    fail train_rwkv7_deterministic "two identical runs logged different losses"
fi

# ---- Ctrl-C, then --resume ---------------------------------------------------
sigint_resume train_rwkv7_sigint_resume_identical "$T/b" model-00000008.safetensors 24 "$T/a.losses" $FLAGS

# ---- kill -9 in the middle of a checkpoint write ----------------------------
RWKV_TRAIN_SAVE_PAUSE_MS=1000 "$RWKV" train --data "$T/data.txt" --out "$T/c" $FLAGS 2>/dev/null &
pid=$!
wait_for "$T/c/model-00000016.safetensors" 60
sleep 0.3
kill -9 $pid
wait $pid 2>/dev/null
if [ ! -e "$T/c/train_state-00000016.bin" ] && "$RWKV" train --resume "$T/c" 2>"$T/c.err" \
    && grep -q 'resuming from checkpoint 8' "$T/c.err" && losses "$T/c" | cmp -s - "$T/a.losses"; then
    pass train_rwkv7_kill9_resume_identical
else
    fail train_rwkv7_kill9_resume_identical "$(grep -i 'resum\|rwkv:' "$T/c.err" | head -2 | tr '\n' ' ')"
fi

# ---- NaN guard -------------------------------------------------------------
RWKV_TRAIN_NAN_STEP=3 "$RWKV" train --data "$T/data.txt" --out "$T/f" $FLAGS 2>"$T/f.err"
rc=$?
if [ $rc -eq 1 ] && grep -q 'step 3: non-finite gradient' "$T/f.err" && [ "$(wc -l <"$T/f/train.jsonl")" -eq 2 ]; then
    pass train_rwkv7_nonfinite_stops
else
    fail train_rwkv7_nonfinite_stops "exit $rc: $(head -1 "$T/f.err")"
fi

# ---- init, then train from it ---------------------------------------------
if "$RWKV" init --arch rwkv7 --layers 2 --embd 32 --head-size 16 --vocab 256 --seed 3 --out "$T/init.safetensors" \
        2>"$T/init.err" \
    && "$RWKV" info "$T/init.safetensors" 2>&1 | grep -q 'heads: *2 x 16' \
    && "$RWKV" train --arch rwkv7 --data "$T/data.txt" --out "$T/h" --init "$T/init.safetensors" --ctx 16 --batch 4 \
        --steps 3 --threads 2 --no-peak --quiet 2>"$T/h.err" \
    && [ "$(wc -l <"$T/h/train.jsonl")" -eq 3 ] && grep -q '"head_size": 16' "$T/h/config.json"; then
    pass init_rwkv7_then_train
else
    fail init_rwkv7_then_train "$(cat "$T/init.err" "$T/h.err" 2>/dev/null | tail -1)"
fi

bad train_rwkv7_bad_head_size "--head-size 5 does not divide --embd 32" train --arch rwkv7 --embd 32 --head-size 5 \
    --data "$T/data.txt" --out "$T/x1" --no-peak
bad train_rwkv4_refuses_rwkv7 "is an RWKV-7 checkpoint (train it with --arch rwkv7)" train --data "$T/data.txt" \
    --out "$T/x2" --init "$T/init.safetensors" --no-peak
"$RWKV" init --layers 1 --embd 8 --vocab 256 --out "$T/rwkv4.safetensors" 2>/dev/null
bad train_rwkv7_refuses_rwkv4 "is not an RWKV-7 checkpoint" train --arch rwkv7 --data "$T/data.txt" --out "$T/x3" \
    --init "$T/rwkv4.safetensors" --no-peak

# ---- init --uniform: no QR, the same tensors; RWKV-4 refuses it ---------------
"$RWKV" init --arch rwkv7 --layers 2 --embd 64 --vocab 300 --out "$T/orth.safetensors" >/dev/null 2>&1
if "$RWKV" init --arch rwkv7 --uniform --layers 2 --embd 64 --vocab 300 --out "$T/uni.safetensors" >/dev/null 2>&1 \
    && "$RWKV" info "$T/uni.safetensors" >"$T/uni.info" 2>&1 && "$RWKV" info "$T/orth.safetensors" >"$T/orth.info" 2>&1 \
    && grep -q 'RWKV-7' "$T/uni.info" && [ "$(grep -c . "$T/uni.info")" -gt 3 ] \
    && ! cmp -s "$T/uni.safetensors" "$T/orth.safetensors" \
    && [ "$(wc -c <"$T/uni.safetensors")" -eq "$(wc -c <"$T/orth.safetensors")" ]; then
    pass train_rwkv7_init_uniform
else
    fail train_rwkv7_init_uniform "$(tail -1 "$T/uni.info")"
fi
bad train_rwkv7_init_uniform_rwkv4 "--uniform is for --arch rwkv5, rwkv6 and rwkv7" init --uniform --layers 1 --embd 32 --out "$T/u4.safetensors"

exit $failed
