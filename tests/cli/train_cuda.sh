#!/bin/sh
# End-to-end tests of `rwkv train --device cuda` (docs/cuda.md):
#   - a GPU run is deterministic, and killed with kill -9 and resumed it logs
#     the losses of an uninterrupted run; the non-finite guard works on it;
#   - a GPU checkpoint evaluates on the CPU (rwkv eval) to the validation loss
#     the GPU logged, and the run continues on the CPU with the losses the GPU
#     gave;
#   - 300 steps on Tiny Shakespeare, same seed and data order: GPU bf16 within
#     1% of CPU fp32 at every logged step;
#   - the devices the CPU-only paths refuse, with one line each.
# Without a GPU (or in a build without CUDA) the GPU tests print SKIP.
#   sh tests/cli/train_cuda.sh ./rwkv
NAME=train_cuda
. "$(dirname "$0")/lib/train_helpers.sh"

# ---- refused before anything is written -----------------------------------
bad train_device_unknown "--device must be cpu, cuda or cuda:N" train --data "$T/data.txt" --out "$T/x" --device gpu
bad train_cpu_bf16_refused "the CPU trains in fp32 only" train --data "$T/data.txt" --out "$T/x" --precision bf16
bad train_cuda_gpt_refused "supports rwkv4 only\|no CUDA support" \
    train --data "$T/data.txt" --out "$T/x" --arch gpt --device cuda
if [ -e "$T/x" ]; then fail train_cuda_refusal_writes_nothing "$T/x was created"; else pass train_cuda_refusal_writes_nothing; fi

# ---- is there a GPU? -----------------------------------------------------------
SMALL="--layers 2 --embd 64 --ctx 32 --batch 4 --val-windows 8 --seed 7 --lr 3e-3 --no-peak --quiet --device cuda"
"$RWKV" train --data "$T/data.txt" --out "$T/probe" $SMALL --steps 1 2>"$T/probe.err"
rc=$?
GPU_TESTS="train_cuda_deterministic train_cuda_kill9_resume_identical train_cuda_nan_guard train_cuda_checkpoint_eval_on_cpu \
train_cuda_resume_on_cpu train_cuda_tinyshakespeare_matches_cpu"
gpu_probe $rc "$T/probe.err" train_cuda_probe "a 1-step GPU run failed"

# ---- deterministic; kill -9 and resume ------------------------------------
RUN="$SMALL --steps 40 --save-every 10 --eval-every 10"
"$RWKV" train --data "$T/data.txt" --out "$T/a" $RUN 2>"$T/a.err" || fail train_cuda_reference "$(tail -1 "$T/a.err")"
"$RWKV" train --data "$T/data.txt" --out "$T/a2" $RUN 2>/dev/null
losses "$T/a" >"$T/a.losses"
if [ "$(wc -l <"$T/a.losses")" -eq 40 ] && losses "$T/a2" | cmp -s - "$T/a.losses"; then
    pass train_cuda_deterministic
else
    fail train_cuda_deterministic "two identical GPU runs logged different losses (or not 40 steps)"
fi
RWKV_TRAIN_SAVE_PAUSE_MS=300 "$RWKV" train --data "$T/data.txt" --out "$T/c" $RUN 2>/dev/null &
pid=$!
wait_for "$T/c/model-00000020.safetensors" 120
kill -9 $pid
wait $pid 2>/dev/null
if "$RWKV" train --resume "$T/c" 2>"$T/c.err" && losses "$T/c" | cmp -s - "$T/a.losses" &&
    grep -q 'resuming from checkpoint' "$T/c.err"; then
    pass train_cuda_kill9_resume_identical
else
    fail train_cuda_kill9_resume_identical "resumed losses differ from the uninterrupted run: $(tail -1 "$T/c.err")"
fi

# ---- the non-finite guard sees a NaN in the device gradients -----------------
RWKV_TRAIN_NAN_STEP=3 "$RWKV" train --data "$T/data.txt" --out "$T/n" $SMALL --steps 5 2>"$T/n.err"
if [ $? -ne 0 ] && grep -q "step 3: non-finite gradient of emb.weight" "$T/n.err"; then
    pass train_cuda_nan_guard
else
    fail train_cuda_nan_guard "expected 'step 3: non-finite gradient of emb.weight', got: $(tail -1 "$T/n.err")"
fi

# ---- a GPU checkpoint on the CPU ------------------------------------------------
# fp32 on the GPU, one validation window: the CPU's rwkv eval of exactly that
# window's ctx + 1 bytes scores the same ctx tokens from the same fresh state.
FP32="--layers 2 --embd 64 --ctx 32 --batch 4 --val-windows 1 --seed 11 --lr 3e-3 --no-peak --precision fp32 \
--steps 20 --save-every 10 --eval-every 10 --device cuda"
if "$RWKV" train --data "$T/data.txt" --out "$T/g" $FP32 2>"$T/g.err"; then
    n_train=$(sed -n 's/^data: \([0-9]*\) training tokens.*/\1/p' "$T/g.err")
    tail -c +$((n_train + 1)) "$T/data.txt" | head -c 33 >"$T/window.txt"
    gpu_val=$(field val_loss <"$T/g/train.jsonl" | tail -1)
    cpu_val=$("$RWKV" eval -m "$T/g/model.safetensors" --data "$T/window.txt" --json -q 2>"$T/e.err" |
        sed -n 's/.*"loss": *\([^,}]*\).*/\1/p')
    if rel_close "$cpu_val" "$gpu_val" 1e-4; then
        pass "train_cuda_checkpoint_eval_on_cpu (GPU $gpu_val, CPU $cpu_val)"
    else
        fail train_cuda_checkpoint_eval_on_cpu "GPU validation loss $gpu_val, rwkv eval on the CPU $cpu_val $(tail -1 "$T/e.err")"
    fi
    # continue from the GPU's checkpoint 10 on the CPU: steps 11-20 as the GPU logged them
    # (only the checkpoint and the log up to it: the CPU must write steps 11-20 itself)
    copy_checkpoint "$T/g" "$T/h" 00000010
    if "$RWKV" train --resume "$T/h" --device cpu --print-every 0 2>"$T/h.err" &&
        grep -q "resuming from checkpoint 10" "$T/h.err" && grep -q "threads" "$T/h.err"; then
        field loss <"$T/g/train.jsonl" >"$T/g.loss"
        field loss <"$T/h/train.jsonl" >"$T/h.loss"
        worst=$(paste "$T/g.loss" "$T/h.loss" | awk '{ d = ($2 - $1) / $1; if (d < 0) d = -d; if (d > w) w = d }
            END { printf "%.3g", w }')
        if [ "$(wc -l <"$T/h/train.jsonl")" -eq 20 ] && awk -v w="$worst" 'BEGIN { exit !(w <= 1e-3) }'; then
            pass "train_cuda_resume_on_cpu (steps 11-20 within $worst of the GPU's)"
        else
            fail train_cuda_resume_on_cpu "CPU losses after the GPU checkpoint differ by up to $worst (or not 20 steps)"
        fi
    else
        fail train_cuda_resume_on_cpu "$(tail -1 "$T/h.err")"
    fi
else
    fail train_cuda_checkpoint_eval_on_cpu "GPU fp32 run: $(tail -1 "$T/g.err")"
    fail train_cuda_resume_on_cpu "no GPU run to continue"
fi

# ---- Tiny Shakespeare: GPU bf16 against CPU fp32 ---------------------------------
TS="$SHARED/data/tinyshakespeare/input.txt"
if [ -f "$TS" ]; then
    LONG="--layers 4 --embd 256 --ctx 128 --batch 8 --steps 300 --eval-every 100 --val-windows 16 --seed 3 \
--save-every 0 --print-every 10"
    "$RWKV" train --data "$TS" --out "$T/ts_cpu" $LONG --no-peak 2>"$T/ts_cpu.err" &
    cpu_pid=$!
    "$RWKV" train --data "$TS" --out "$T/ts_gpu" $LONG --device cuda 2>"$T/ts_gpu.err"
    gpu_rc=$?
    wait $cpu_pid
    cpu_rc=$?
    if [ $gpu_rc -ne 0 ] || [ $cpu_rc -ne 0 ]; then
        fail train_cuda_tinyshakespeare_matches_cpu "GPU: $(tail -1 "$T/ts_gpu.err"); CPU: $(tail -1 "$T/ts_cpu.err")"
    else
        # the logged steps: every 10th (the progress lines) and the validation losses
        field loss <"$T/ts_cpu/train.jsonl" >"$T/cpu.loss"
        field loss <"$T/ts_gpu/train.jsonl" >"$T/gpu.loss"
        report=$(paste "$T/cpu.loss" "$T/gpu.loss" | awk '
            { d = ($2 - $1) / $1; if (d < 0) d = -d; if (d > all) all = d
              if (NR % 10 == 0) { if (d > logged) { logged = d; at = NR } if (d > 0.01) bad++ } }
            END { printf "%d %d %.4f %.4f %d", NR, bad, logged, all, at }')
        set -- $report
        vc=$(field val_loss <"$T/ts_cpu/train.jsonl" | tail -1)
        vg=$(field val_loss <"$T/ts_gpu/train.jsonl" | tail -1)
        echo "  tinyshakespeare: $1 steps, worst at a logged step $3 (step $5), over all steps $4; validation CPU $vc, GPU $vg"
        grep '^step 300\|peak' "$T/ts_gpu.err" | sed 's/^/  GPU: /'
        grep '^step 300' "$T/ts_cpu.err" | sed 's/^/  CPU: /'
        if [ "$1" -eq 300 ] && [ "$2" -eq 0 ] && rel_close "$vg" "$vc" 0.01; then
            pass train_cuda_tinyshakespeare_matches_cpu
        else
            fail train_cuda_tinyshakespeare_matches_cpu "$2 logged steps differ by more than 1% (worst $3 at step $5), validation CPU $vc GPU $vg"
        fi
    fi
else
    echo "SKIP train_cuda_tinyshakespeare_matches_cpu: $TS not found"
fi
exit $failed
