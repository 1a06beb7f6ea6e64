#!/bin/sh
# End-to-end tests of data-parallel training (docs/multigpu.md):
#   - flags refused before anything starts: --gpus on the CPU, a batch that
#     does not split evenly, a bad rank or rendezvous;
#   - the launcher: a rank that exits non-zero or is killed ends the run at
#     once with a line naming it, and the ranks still waiting are killed (a
#     test hook makes one rank fail and the others wait as if stuck in a
#     collective; no GPU needed);
#   - on a GPU, world size 1 through the NCCL path: the losses of `--gpus 1`
#     are bit-identical to the plain single-GPU run in fp32, a killed or
#     stopped --gpus run resumes to the same losses (also on the plain
#     path), --allreduce bf16 trains, and a rank whose peer never comes
#     ends with a clear message instead of a hang.
# Without a GPU (or in a build without CUDA) the GPU tests print SKIP.
#   sh tests/cli/train_multigpu.sh ./rwkv
NAME=train_multigpu
. "$(dirname "$0")/lib/train_helpers.sh"

# ---- refused before anything starts --------------------------------------------
bad multigpu_gpus_on_cpu_refused "--gpus 2 needs --device cuda" \
    train --data "$T/data.txt" --out "$T/x" --gpus 2 --device cpu
bad multigpu_batch_not_divisible "--batch 6 is not divisible by --gpus 4" \
    train --data "$T/data.txt" --out "$T/x" --gpus 4 --batch 6 --device cuda
bad multigpu_gpus_with_rank_refused "--gpus starts the ranks itself" \
    train --data "$T/data.txt" --out "$T/x" --gpus 2 --world 2 --rank 0 --rendezvous 127.0.0.1:29500
bad multigpu_rank_without_world "--rank and --rendezvous need --world" \
    train --data "$T/data.txt" --out "$T/x" --rank 1 --device cuda
bad multigpu_rank_out_of_range "--rank must be in \[0, 1\] for --world 2" \
    train --data "$T/data.txt" --out "$T/x" --world 2 --rank 2 --rendezvous 127.0.0.1:29500 --device cuda
bad multigpu_bad_rendezvous "--rendezvous must be HOST:PORT or file:PATH" \
    train --data "$T/data.txt" --out "$T/x" --world 2 --rank 1 --rendezvous nowhere --device cuda
bad multigpu_world_on_cpu_refused "need --device cuda" \
    train --data "$T/data.txt" --out "$T/x" --world 2 --rank 1 --rendezvous 127.0.0.1:29500
bad multigpu_world_batch_not_divisible "--batch 5 is not divisible by 2 GPUs" \
    train --data "$T/data.txt" --out "$T/x" --world 2 --rank 1 --rendezvous 127.0.0.1:29500 --device cuda --batch 5
bad multigpu_allreduce_needs_gpus "--allreduce applies to a run on several GPUs" \
    train --data "$T/data.txt" --out "$T/x" --allreduce bf16 --device cuda
if [ -e "$T/x" ]; then fail multigpu_refusal_writes_nothing "$T/x was created"; else pass multigpu_refusal_writes_nothing; fi

# ---- the launcher when a rank fails ------------------------------------------------
# launcher_fails NAME HOOK EXPECTED: 3 ranks, RWKV_TRAIN_DEBUG_RANK_FAIL=HOOK
launcher_fails() {
    out="$T/launch_$1"
    start=$(date +%s)
    RWKV_TRAIN_DEBUG_RANK_FAIL=$2 timeout 60 "$RWKV" train --data "$T/data.txt" --out "$out" --gpus 3 --batch 6 \
        --device cuda 2>"$T/$1.err"
    rc=$?
    took=$(($(date +%s) - start))
    sleep 0.2
    left=$(ps -eo args | grep -c "[-]-out $out ")
    if [ $rc -eq 1 ] && grep -q "$3" "$T/$1.err" && [ $took -lt 30 ] && [ "$left" -eq 0 ]; then
        pass "$1"
    else
        fail "$1" "exit $rc after ${took}s, $left rank(s) left running, stderr: $(tr '\n' ' ' <"$T/$1.err")"
    fi
}
launcher_fails multigpu_launcher_rank_exit_status "1" "rank 1 exited with status 3; stopped the other ranks"
launcher_fails multigpu_launcher_rank_killed "2:kill" "rank 2 was killed by signal 9"
# ranks on GPUs no machine here has: every rank fails on its own, the launcher names one
"$RWKV" train --data "$T/data.txt" --out "$T/nodev" --gpus 2 --batch 4 --device cuda:62 2>"$T/nodev.err"
rc=$?
if [ $rc -eq 1 ] && grep -q "rank [01] exited with status 1" "$T/nodev.err"; then
    pass multigpu_launcher_missing_gpus
else
    fail multigpu_launcher_missing_gpus "exit $rc, stderr: $(tr '\n' ' ' <"$T/nodev.err")"
fi

# ---- is there a GPU with NCCL? ---------------------------------------------------
SMALL="--layers 2 --embd 64 --ctx 32 --batch 4 --val-windows 6 --seed 7 --lr 3e-3 --no-peak --quiet --device cuda"
"$RWKV" train --data "$T/data.txt" --out "$T/probe" $SMALL --steps 1 --gpus 1 2>"$T/probe.err"
rc=$?
GPU_TESTS="multigpu_world1_identical_fp32 multigpu_kill9_resume_identical multigpu_resume_on_one_gpu \
multigpu_sigint_resume multigpu_allreduce_bf16 multigpu_nan_guard multigpu_missing_peer_times_out"
if [ $rc -ne 0 ] && grep -q "cannot be loaded" "$T/probe.err"; then
    for t in $GPU_TESTS; do echo "SKIP $t: NCCL is not installed ($(grep 'cannot be loaded' "$T/probe.err" | head -1))"; done
    exit $failed
fi
gpu_probe $rc "$T/probe.err" multigpu_probe "a 1-step --gpus 1 run failed"

# ---- world size 1 through NCCL == the single-GPU path, bit for bit (fp32) ----------
RUN="$SMALL --precision fp32 --accum 2 --steps 30 --save-every 10 --eval-every 10"
"$RWKV" train --data "$T/data.txt" --out "$T/plain" $RUN 2>"$T/plain.err" || fail multigpu_reference "$(tail -1 "$T/plain.err")"
"$RWKV" train --data "$T/data.txt" --out "$T/one" $RUN --gpus 1 2>"$T/one.err"
losses "$T/plain" >"$T/plain.losses"
if [ "$(wc -l <"$T/plain.losses")" -eq 30 ] && losses "$T/one" | cmp -s - "$T/plain.losses"; then
    pass multigpu_world1_identical_fp32
else
    fail multigpu_world1_identical_fp32 "--gpus 1 logged other losses than the plain GPU run: $(tail -1 "$T/one.err")"
fi

# ---- kill -9 of the launcher, then resume with --gpus 1 ------------------------------
RWKV_TRAIN_SAVE_PAUSE_MS=300 "$RWKV" train --data "$T/data.txt" --out "$T/k" $RUN --gpus 1 2>/dev/null &
pid=$!
wait_for "$T/k/model-00000020.safetensors" 120
kill -9 $pid
wait $pid 2>/dev/null
sleep 0.5 # the rank dies with its launcher
if "$RWKV" train --resume "$T/k" --gpus 1 2>"$T/k.err" && losses "$T/k" | cmp -s - "$T/plain.losses"; then
    pass multigpu_kill9_resume_identical
else
    fail multigpu_kill9_resume_identical "resumed losses differ from the uninterrupted run: $(tail -1 "$T/k.err")"
fi

# ---- a checkpoint of the NCCL path continues on the plain path ---------------------
copy_checkpoint "$T/one" "$T/p" 00000020
if "$RWKV" train --resume "$T/p" --quiet 2>"$T/p.err" && losses "$T/p" | cmp -s - "$T/plain.losses"; then
    pass multigpu_resume_on_one_gpu
else
    fail multigpu_resume_on_one_gpu "the plain GPU path did not repeat steps 21-30: $(tail -1 "$T/p.err")"
fi

# ---- Ctrl-C to the launcher: every rank stops after a checkpoint -----------------------
sigint_resume multigpu_sigint_resume "$T/s" model-00000010.safetensors 30 "$T/plain.losses" $RUN --gpus 1

# ---- bf16 on the wire -------------------------------------------------------------------
if "$RWKV" train --data "$T/data.txt" --out "$T/b" $RUN --gpus 1 --allreduce bf16 2>"$T/b.err"; then
    a=$(field loss <"$T/plain/train.jsonl" | tail -1)
    b=$(field loss <"$T/b/train.jsonl" | tail -1)
    if rel_close "$b" "$a" 0.02; then
        pass "multigpu_allreduce_bf16 (last loss $b, fp32 wire $a)"
    else
        fail multigpu_allreduce_bf16 "last loss $b, with fp32 gradients $a"
    fi
else
    fail multigpu_allreduce_bf16 "$(tail -1 "$T/b.err")"
fi

# ---- the non-finite guard sees the reduced gradients -------------------------------------
RWKV_TRAIN_NAN_STEP=3 "$RWKV" train --data "$T/data.txt" --out "$T/n" $SMALL --steps 5 --gpus 1 2>"$T/n.err"
if [ $? -ne 0 ] && grep -q "step 3: non-finite gradient of emb.weight" "$T/n.err" &&
    grep -q "rank 0 exited with status 1" "$T/n.err"; then
    pass multigpu_nan_guard
else
    fail multigpu_nan_guard "expected 'step 3: non-finite gradient of emb.weight', got: $(tr '\n' ' ' <"$T/n.err")"
fi

# ---- a peer that never comes: a clear message, no hang ------------------------------------
start=$(date +%s)
timeout 60 "$RWKV" train --data "$T/data.txt" --out "$T/w" $SMALL --steps 2 --world 2 --rank 0 \
    --rendezvous 127.0.0.1:$((20000 + $$ % 20000)) --dist-timeout 2 2>"$T/w.err"
rc=$?
took=$(($(date +%s) - start))
if [ $rc -eq 1 ] && grep -q "only 1 of 2 ranks joined" "$T/w.err" && [ $took -lt 30 ]; then
    pass multigpu_missing_peer_times_out
else
    fail multigpu_missing_peer_times_out "exit $rc after ${took}s: $(tail -1 "$T/w.err")"
fi
exit $failed
