#!/bin/sh
# End-to-end tests of `rwkv train` / `rwkv init`: an interrupted run (Ctrl-C,
# kill -9 in the middle of a checkpoint write, kills at random moments, a
# damaged newest checkpoint) resumes to the same per-step losses as an
# uninterrupted one; a run none of whose checkpoints can be resumed is
# refused and left as it is, unless --restart; the NaN guard; bad flags.
#   sh tests/cli/train_resume.sh ./rwkv
# Prints PASS/FAIL/SKIP lines; exits non-zero when something failed.
NAME=train_resume
. "$(dirname "$0")/lib/train_helpers.sh"

FLAGS="--layers 2 --embd 32 --ctx 16 --batch 4 --steps 40 --save-every 10 --eval-every 10 --val-windows 8 --threads 2 --seed 7 --lr 3e-3 --no-peak --quiet"

# ---- reference: uninterrupted -------------------------------------------
if ! "$RWKV" train --data "$T/data.txt" --out "$T/a" $FLAGS 2>"$T/a.err"; then
    fail train_uninterrupted "$(tail -1 "$T/a.err")"
    echo "FAIL train_resume: no reference run, stopping"
    exit 1
fi
losses "$T/a" >"$T/a.losses"
if [ "$(wc -l <"$T/a.losses")" -eq 40 ] && [ -f "$T/a/model.safetensors" ] && grep -q '"val_loss"' "$T/a.losses"; then
    pass train_uninterrupted
else
    fail train_uninterrupted "expected 40 log lines with val_loss and DIR/model.safetensors"
fi
first=$(sed -n '1s/.*"loss":\([^,]*\),.*/\1/p' "$T/a.losses")
last=$(sed -n '40s/.*"loss":\([^,]*\),.*/\1/p' "$T/a.losses")
if awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }'; then pass train_loss_decreases; else fail train_loss_decreases "loss $first -> $last"; fi

if "$RWKV" info "$T/a/model-00000040.safetensors" >"$T/info.out" 2>&1 && grep -q 'RWKV-4' "$T/info.out" \
    && grep -q 'n_layer: *2' "$T/info.out"; then
    pass train_checkpoint_loads_in_info
else
    fail train_checkpoint_loads_in_info "$(tail -1 "$T/info.out")"
fi

# ---- same seed, same threads: the same run --------------------------------
"$RWKV" train --data "$T/data.txt" --out "$T/a2" $FLAGS 2>/dev/null
if losses "$T/a2" | cmp -s - "$T/a.losses"; then pass train_deterministic; else fail train_deterministic "two identical runs logged different losses"; fi

# ---- Ctrl-C: checkpoint at the current step, then --resume ---------------
RWKV_TRAIN_SAVE_PAUSE_MS=400 "$RWKV" train --data "$T/data.txt" --out "$T/b" $FLAGS 2>"$T/b.err" &
pid=$!
wait_for "$T/b/model-00000010.safetensors" 60
kill -INT $pid
wait $pid
rc=$?
if [ $rc -eq 130 ] && [ -f "$T/b/train_state-00000010.bin" ] && [ "$(wc -l <"$T/b/train.jsonl")" -lt 40 ]; then
    if "$RWKV" train --resume "$T/b" --quiet 2>"$T/b.err2" && losses "$T/b" | cmp -s - "$T/a.losses"; then
        pass train_sigint_resume_identical
    else
        fail train_sigint_resume_identical "resumed losses differ: $(tail -1 "$T/b.err2")"
    fi
else
    fail train_sigint_resume_identical "Ctrl-C gave exit $rc, expected 130 and a checkpoint at step 10"
fi

# ---- kill -9 in the middle of a checkpoint write --------------------------
RWKV_TRAIN_SAVE_PAUSE_MS=1000 "$RWKV" train --data "$T/data.txt" --out "$T/c" $FLAGS 2>/dev/null &
pid=$!
# model-20 appears after checkpoint 10 is complete; the state of step 20 is then half written
wait_for "$T/c/model-00000020.safetensors" 60
sleep 0.3
kill -9 $pid
wait $pid 2>/dev/null
tmp_left=$(ls "$T/c" | grep -c '\.tmp\.')
if [ ! -e "$T/c/train_state-00000020.bin" ] && [ -f "$T/c/train_state-00000010.bin" ] && [ "$tmp_left" -ge 1 ]; then
    pass train_kill9_mid_write_leaves_temp_only
else
    fail train_kill9_mid_write_leaves_temp_only "expected train_state-00000010.bin, no train_state-00000020.bin and a temp file; have: $(ls "$T/c" | tr '\n' ' ')"
fi
if "$RWKV" info "$T/c/model-00000010.safetensors" >/dev/null 2>&1; then
    pass train_kill9_previous_checkpoint_loads
else
    fail train_kill9_previous_checkpoint_loads "model-00000010.safetensors does not load"
fi
if "$RWKV" train --resume "$T/c" 2>"$T/c.err" && losses "$T/c" | cmp -s - "$T/a.losses"; then
    if grep -q 'resuming from checkpoint 10' "$T/c.err" && [ "$(ls "$T/c" | grep -c '\.tmp\.')" -eq 0 ]; then
        pass train_kill9_resume_identical
    else
        fail train_kill9_resume_identical "did not resume from checkpoint 10 or left temp files: $(grep -i resum "$T/c.err")"
    fi
else
    fail train_kill9_resume_identical "resumed losses differ from the uninterrupted run: $(tail -1 "$T/c.err")"
fi

# ---- kill -9 at random moments, again and again ---------------------------
RWKV_TRAIN_SAVE_PAUSE_MS=150 "$RWKV" train --data "$T/data.txt" --out "$T/d" $FLAGS 2>/dev/null &
pid=$!
wait_for "$T/d/config.json" 60 # the run exists (a build with CUDA takes longer to start)
sleep 0.25
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
for i in 1 2 3 4 5 6; do
    delay=$(awk -v s="$i$$" 'BEGIN { srand(s); printf "%.2f", 0.05 + rand() * 0.5 }')
    RWKV_TRAIN_SAVE_PAUSE_MS=150 "$RWKV" train --resume "$T/d" --quiet 2>/dev/null &
    pid=$!
    sleep "$delay"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
done
if "$RWKV" train --resume "$T/d" --quiet 2>"$T/d.err" && losses "$T/d" | cmp -s - "$T/a.losses"; then
    pass train_random_kills_resume_identical
else
    fail train_random_kills_resume_identical "losses differ after repeated kill -9: $(tail -1 "$T/d.err")"
fi

# ---- a damaged newest checkpoint is skipped --------------------------------
cp -r "$T/a" "$T/e"
rm -f "$T/e/model.safetensors"
size=$(wc -c <"$T/e/train_state-00000040.bin")
head -c $((size / 2)) "$T/e/train_state-00000040.bin" >"$T/e/cut" && mv "$T/e/cut" "$T/e/train_state-00000040.bin"
sed -i '/"step":3[6-9]\|"step":40/d' "$T/e/train.jsonl"
if "$RWKV" train --resume "$T/e" 2>"$T/e.err" && grep -q 'ignored checkpoint 40' "$T/e.err" \
    && grep -q 'resuming from checkpoint 30' "$T/e.err" && losses "$T/e" | cmp -s - "$T/a.losses"; then
    pass train_damaged_checkpoint_skipped
else
    fail train_damaged_checkpoint_skipped "$(grep -i 'checkpoint\|rwkv:' "$T/e.err" | head -2 | tr '\n' ' ')"
fi

# ---- no checkpoint can be resumed: refused, nothing deleted; --restart starts over
cp -r "$T/a" "$T/k"
for f in "$T/k"/train_state-*.bin; do head -c 200 "$f" >"$T/k/cut" && mv "$T/k/cut" "$f"; done
ls -l "$T/k" | awk '{ print $5, $NF }' >"$T/k.before"
cmp_k() { ls -l "$T/k" | awk '{ print $5, $NF }' | cmp -s - "$T/k.before" && cmp -s "$T/k/model.safetensors" "$T/a/model.safetensors"; }
bad train_resume_refuses_damaged_checkpoints "none of its 2 checkpoints can be resumed" train --resume "$T/k"
if cmp_k; then pass train_resume_refusal_keeps_files; else fail train_resume_refusal_keeps_files "the run folder changed"; fi
if "$RWKV" train --resume "$T/k" --restart --quiet 2>"$T/k.err" && losses "$T/k" | cmp -s - "$T/a.losses" \
    && [ "$(ls "$T/k" | grep -c 'train_state-')" -eq 2 ]; then
    pass train_restart_starts_over
else
    fail train_restart_starts_over "$(tail -1 "$T/k.err")"
fi
cp -r "$T/a" "$T/l"
sed -i 's/"n_embd": 32/"n_embd": 48/' "$T/l/config.json"
bad train_resume_refuses_edited_config "the run is 2 x 48" train --resume "$T/l"
if [ -f "$T/l/train_state-00000040.bin" ] && cmp -s "$T/l/model-00000040.safetensors" "$T/a/model-00000040.safetensors"; then
    pass train_resume_edited_config_keeps_checkpoints
else
    fail train_resume_edited_config_keeps_checkpoints "the checkpoints were deleted or changed"
fi
bad train_restart_needs_resume "--restart needs --resume" train --data "$T/data.txt" --out "$T/x6" --restart

# ---- NaN guard -------------------------------------------------------------
RWKV_TRAIN_NAN_STEP=5 "$RWKV" train --data "$T/data.txt" --out "$T/f" $FLAGS 2>"$T/f.err"
rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l <"$T/f.err")" -eq 1 ] && grep -q 'step 5: non-finite gradient' "$T/f.err" \
    && [ "$(wc -l <"$T/f/train.jsonl")" -eq 4 ]; then
    pass train_nonfinite_stops
else
    fail train_nonfinite_stops "exit $rc: $(head -1 "$T/f.err")"
fi
RWKV_TRAIN_NAN_STEP=5 "$RWKV" train --data "$T/data.txt" --out "$T/g" $FLAGS --skip-nonfinite 2>"$T/g.err"
rc=$?
if [ $rc -eq 0 ] && grep -q '"step":5,.*"skipped":true' "$T/g/train.jsonl" && [ "$(wc -l <"$T/g/train.jsonl")" -eq 40 ]; then
    pass train_nonfinite_skip
else
    fail train_nonfinite_skip "exit $rc: $(tail -1 "$T/g.err")"
fi

# ---- init, then train from it ---------------------------------------------
if "$RWKV" init --layers 2 --embd 32 --vocab 256 --seed 3 --out "$T/init.safetensors" 2>"$T/init.err" \
    && "$RWKV" info "$T/init.safetensors" 2>&1 | grep -q 'n_embd: *32' \
    && "$RWKV" train --data "$T/data.txt" --out "$T/h" --init "$T/init.safetensors" --ctx 16 --batch 4 --steps 3 \
        --threads 2 --no-peak --quiet 2>"$T/h.err" \
    && [ "$(wc -l <"$T/h/train.jsonl")" -eq 3 ]; then
    pass init_then_train
else
    fail init_then_train "$(cat "$T/init.err" "$T/h.err" 2>/dev/null | tail -1)"
fi

# ---- bad flags: one line on stderr, non-zero exit --------------------------
bad train_bad_missing_out "--out" train --data "$T/data.txt"
bad train_bad_ctx "--ctx" train --data "$T/data.txt" --out "$T/x" --ctx 0
bad train_bad_number "--lr" train --data "$T/data.txt" --out "$T/x" --lr fast
bad train_bad_unknown "unknown option '--bogus'" train --data "$T/data.txt" --out "$T/x" --bogus 1
bad train_bad_missing_value "--steps expects a value" train --data "$T/data.txt" --out "$T/x" --steps
bad train_bad_resume_with_settings "--layers cannot be combined with --resume" train --resume "$T/a" --layers 3
bad train_bad_resume_dir "not a directory" train --resume "$T/nonexistent"
bad train_bad_data_file "nonexistent.txt" train --data "$T/nonexistent.txt" --out "$T/x2"
bad train_bad_used_dir "already holds a training run" train --data "$T/data.txt" --out "$T/a"
bad train_bad_ctx_too_long "ctx+1" train --data "$T/data.txt" --out "$T/x3" --ctx 100000 --no-peak
bad init_bad_layers "--layers" init --layers 0 --embd 8 --vocab 10 --out "$T/y.safetensors"
bad init_bad_missing_out "--out" init --layers 1 --embd 8 --vocab 10

# ---- the GPT baseline: the same trainer and the same resume guarantees ------
GFLAGS="--arch gpt --layers 2 --embd 32 --heads 2 --ctx 16 --batch 4 --steps 20 --save-every 5 --eval-every 5 --val-windows 8 --threads 2 --seed 7 --lr 3e-3 --no-peak --quiet"
if "$RWKV" train --data "$T/data.txt" --out "$T/ga" $GFLAGS 2>"$T/ga.err"; then
    losses "$T/ga" >"$T/ga.losses"
    gfirst=$(sed -n '1s/.*"loss":\([^,]*\),.*/\1/p' "$T/ga.losses")
    glast=$(sed -n '20s/.*"loss":\([^,]*\),.*/\1/p' "$T/ga.losses")
    if [ "$(wc -l <"$T/ga.losses")" -eq 20 ] && [ -f "$T/ga/model.safetensors" ] && grep -q '"arch": "gpt"' "$T/ga/config.json" \
        && awk -v a="$gfirst" -v b="$glast" 'BEGIN { exit !(b < a - 0.3) }'; then
        pass train_gpt_loss_falls
    else
        fail train_gpt_loss_falls "20 steps, arch gpt in config.json, loss $gfirst -> $glast"
    fi
    sigint_resume train_gpt_sigint_resume_identical "$T/gb" model-00000005.safetensors 20 "$T/ga.losses" $GFLAGS
else
    fail train_gpt_loss_falls "$(tail -1 "$T/ga.err")"
fi
bad train_bad_arch "--arch must be one of rwkv4, rwkv7, gpt" train --data "$T/data.txt" --out "$T/x4" --arch lstm --no-peak
bad train_bad_gpt_init "is a GPT checkpoint" train --data "$T/data.txt" --out "$T/x5" --init "$T/ga/model.safetensors" --no-peak

# ---- tokenizer files: rwkv tokenize --out and train --tokenizer ------------
VOCAB=$SHARED/reference/rwkv-cpp/rwkv_vocab_v20230424.txt
if [ -f "$VOCAB" ]; then
    head -c 20000 "$T/data.txt" >"$T/small.txt"
    if "$RWKV" tokenize --tokenizer "$VOCAB" --out "$T/w.tok" "$T/small.txt" 2>"$T/w.err" && grep -q 'vocabulary 65530' "$T/w.err" \
        && "$RWKV" train --tokenizer "$VOCAB" --data "$T/small.txt" --out "$T/w" --layers 1 --embd 8 --ctx 8 --batch 2 \
            --steps 2 --eval-every 0 --val-windows 1 --threads 2 --no-peak --quiet 2>"$T/w2.err" \
        && cmp -s "$T/w/tokens.bin" "$T/w.tok" && "$RWKV" info "$T/w/model.safetensors" 2>&1 | grep -q 'n_vocab: *65530'; then
        pass train_world_tokenizer
    else
        fail train_world_tokenizer "$(cat "$T/w.err" "$T/w2.err" 2>/dev/null | tail -1)"
    fi
else
    echo "SKIP train_world_tokenizer: $VOCAB not found"
fi
"$RWKV" tokenize --out "$T/b.tok" "$T/data.txt" 2>/dev/null
if "$RWKV" train --data "$T/b.tok" --out "$T/bt" --layers 1 --embd 8 --ctx 8 --batch 2 --steps 2 --eval-every 0 \
    --val-windows 1 --threads 2 --no-peak --quiet 2>/dev/null && grep -q "\"tokens_path\": \"$T/b.tok\"" "$T/bt/config.json"; then
    pass train_token_file_from_tokenize
else
    fail train_token_file_from_tokenize "a token file from 'rwkv tokenize --out' was not used in place"
fi
bad tokenize_out_needs_text "--out needs the TEXTFILE" tokenize --out "$T/x.tok"
bad tokenize_text_needs_out "needs --out" tokenize "$T/data.txt"

if "$RWKV" train --help | grep -q -- '--save-every' && "$RWKV" init --help | grep -q -- '--vocab'; then
    pass train_init_help
else
    fail train_init_help "--help does not list the flags"
fi

exit $failed
