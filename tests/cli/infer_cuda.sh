#!/bin/sh
# End-to-end tests of rwkv eval / generate / bench with --device cuda
# (docs/cuda.md), against the same commands on the CPU, on a small RWKV-4
# model trained for a few steps:
#   - greedy generation (--temp 0) in fp32 prints the CPU's text exactly;
#   - rwkv eval's loss on the GPU is the CPU's within 1e-4 relative (fp32)
#     and 1e-2 (bf16);
#   - rwkv bench --device cuda prints decode, prefill and both fractions;
#   - on a random RWKV-7 model: rwkv eval's loss as above, rwkv bench
#     --batch prints the batched decode (and the step with drawn tokens), a
#     sampled generate repeats with its seed, chat replies, and rwkv serve
#     --device cuda gives the same completion twice for one seed;
#   - the GPT baseline and an unknown device are refused with one line.
# Without a GPU (or in a build without CUDA) the GPU tests print SKIP.
#   sh tests/cli/infer_cuda.sh ./rwkv
NAME=infer_cuda
. "$(dirname "$0")/lib/train_helpers.sh"

rel_close() { # a b tol: |a - b| <= tol * max(1, |b|)
    awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; s = b < 0 ? -b : b; if (s < 1) s = 1;
        exit !(a != "" && b != "" && d <= t * s) }'
}

"$RWKV" init --arch rwkv7 --uniform --layers 2 --embd 128 --out "$T/v7.safetensors" >/dev/null 2>&1
"$RWKV" init --arch gpt --layers 1 --embd 64 --out "$T/gpt.safetensors" >/dev/null 2>&1
bad infer_cuda_gpt_refused "GPT baseline runs on the cpu\|no CUDA support" generate -m "$T/gpt.safetensors" --device cuda -n 1
bad infer_cuda_device_unknown "expected cpu, cuda or cuda:N" eval -m "$T/v7.safetensors" --data "$T/data.txt" --device gpu
"$RWKV" init --layers 1 --embd 64 --out "$T/v4.safetensors" >/dev/null 2>&1
bad infer_cuda_int8_rwkv4_refused "int8 matrices on the GPU are for RWKV-5/6/7\|no CUDA support" \
    eval -m "$T/v4.safetensors" --data "$T/data.txt" --device cuda --precision int8

# a model worth comparing: 60 steps on the GPU (fp32), which also says whether there is one
TRAIN="--layers 2 --embd 64 --ctx 32 --batch 4 --steps 60 --seed 5 --lr 3e-3 --no-peak --quiet --precision fp32"
"$RWKV" train --data "$T/data.txt" --out "$T/m" $TRAIN --device cuda 2>"$T/train.err"
rc=$?
GPU_TESTS="infer_cuda_generate_greedy_equal infer_cuda_eval_fp32 infer_cuda_eval_bf16 infer_cuda_bench
infer_cuda_v7_eval_fp32 infer_cuda_v7_eval_bf16 infer_cuda_v7_eval_int8 infer_cuda_v7_bench_batch
infer_cuda_v7_generate_drawn_repeatable infer_cuda_v7_chat infer_cuda_v7_serve_repeatable"
gpu_probe $rc "$T/train.err" infer_cuda_model "training the test model failed"
M="$T/m/model.safetensors"

gen() { "$RWKV" generate -m "$M" --prompt "First Citizen:" -n 80 --temp 0 -q "$@" 2>>"$T/gen.err"; }
gen --device cpu >"$T/cpu.txt"
gen --device cuda >"$T/gpu.txt"
if [ -s "$T/cpu.txt" ] && cmp -s "$T/cpu.txt" "$T/gpu.txt"; then
    pass infer_cuda_generate_greedy_equal
else
    fail infer_cuda_generate_greedy_equal "cpu '$(head -c 80 "$T/cpu.txt")' gpu '$(head -c 80 "$T/gpu.txt")' $(tail -1 "$T/gen.err")"
fi

head -c 3000 "$T/data.txt" >"$T/eval.txt"
loss() { m=$1; shift; "$RWKV" eval -m "$m" --data "$T/eval.txt" --json -q "$@" 2>>"$T/eval.err" | sed -n 's/.*"loss": *\([^,}]*\).*/\1/p'; }
eval_both() { # model test-name-prefix precision:tolerance...
    cpu=$(loss "$1" --device cpu)
    model=$1 name=$2
    shift 2
    for p in "$@"; do
        prec=${p%%:*} tol=${p#*:}
        gpu=$(loss "$model" --device cuda --precision "$prec")
        if rel_close "$gpu" "$cpu" "$tol"; then
            pass "${name}_$prec (GPU $gpu, CPU $cpu, tolerance $tol)"
        else
            fail "${name}_$prec" "GPU loss '$gpu', CPU '$cpu' (tolerance $tol) $(tail -1 "$T/eval.err")"
        fi
    done
}
eval_both "$M" infer_cuda_eval fp32:1e-4 bf16:1e-2
eval_both "$T/v7.safetensors" infer_cuda_v7_eval fp32:1e-4 bf16:1e-2 int8:2e-2

if "$RWKV" bench -m "$M" --device cuda --tokens 32 --prompt 256 >"$T/bench.txt" 2>"$T/bench.err" &&
    grep -q "^decode" "$T/bench.txt" && grep -q "^fractions" "$T/bench.txt"; then
    pass infer_cuda_bench
    cat "$T/bench.txt"
else
    fail infer_cuda_bench "$(tail -1 "$T/bench.err")"
fi

if "$RWKV" bench -m "$T/v7.safetensors" --device cuda --precision bf16 --batch 8 --tokens 32 --prompt 256 \
    >"$T/bench7.txt" 2>"$T/bench7.err" && grep -q "^batch decode *8 sequences" "$T/bench7.txt" &&
    grep -q "^batch + draw *8 sequences.*on the device" "$T/bench7.txt"; then
    pass infer_cuda_v7_bench_batch
    cat "$T/bench7.txt"
else
    fail infer_cuda_v7_bench_batch "$(tail -1 "$T/bench7.err")"
fi
# RWKV-7 on the GPU draws its tokens on the device (rwkv_eval_batch_sample): a sampled reply is the
# same for the same seed
gen7() { "$RWKV" generate -m "$T/v7.safetensors" --prompt "First Citizen:" -n 40 -q "$@" 2>>"$T/gen.err"; }
gen7 --device cuda --temp 1.0 --top-p 0.9 --seed 7 >"$T/d1.txt"
gen7 --device cuda --temp 1.0 --top-p 0.9 --seed 7 >"$T/d2.txt"
if [ -s "$T/d1.txt" ] && cmp -s "$T/d1.txt" "$T/d2.txt"; then
    pass infer_cuda_v7_generate_drawn_repeatable
else
    fail infer_cuda_v7_generate_drawn_repeatable "'$(head -c 80 "$T/d1.txt")' then '$(head -c 80 "$T/d2.txt")' $(tail -1 "$T/gen.err")"
fi
# rwkv chat and rwkv serve on the GPU: a chat reply, and two equal completions for one seed served
# from the device (its draws on the device, a batch of one)
printf 'Hello there\n' | "$RWKV" chat -m "$T/v7.safetensors" --device cuda -n 12 --seed 3 >"$T/chat.txt" 2>"$T/chat.err"
if grep -q "Assistant:" "$T/chat.txt" && [ "$(wc -c <"$T/chat.txt")" -gt 12 ]; then
    pass infer_cuda_v7_chat
else
    fail infer_cuda_v7_chat "$(head -c 120 "$T/chat.txt") $(tail -1 "$T/chat.err")"
fi
if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP infer_cuda_v7_serve_repeatable: curl is not installed"
    exit $failed
fi
. "$(dirname "$0")/lib/serve_ready.sh"
serve_ready "$T/serve.err" 300 -m "$T/v7.safetensors" --device cuda --parallel 4
BODY='{"prompt":"First Citizen:","max_tokens":24,"temperature":1.0,"top_p":0.9,"seed":5}'
served() { curl -s --max-time 60 -H 'Content-Type: application/json' --data-binary "$BODY" "http://127.0.0.1:$PORT/v1/completions" |
    sed -n 's/.*"text": *"\([^"]*\)".*/\1/p'; }
a=$(served) b=$(served)
kill "$SPID" 2>/dev/null
wait "$SPID" 2>/dev/null
if [ -n "$a" ] && [ "$a" = "$b" ] && grep -q "on cuda" "$T/serve.err"; then
    pass infer_cuda_v7_serve_repeatable
else
    fail infer_cuda_v7_serve_repeatable "'$a' then '$b' $(tail -2 "$T/serve.err" | tr '\n' ' ')"
fi
exit $failed
