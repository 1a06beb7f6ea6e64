#!/bin/sh
# make bench: the standard benchmark set. Creates (once) a 169M-shaped RWKV-4
# (V=50277, C=768, L=12; random init from `rwkv init`), converts it to
# f16/bf16 and quantizes it (q8_0, q5_1, q5_0, q4_1, q4_0), then runs
# `rwkv bench --json` for each at 1 and 2 threads and writes a markdown table
# to bench/results.md (raw JSON lines to bench/results.jsonl).
#
# Environment:
#   RWKV_BENCH_DIR   where the models live (default /tmp/rwkv-bench; ~2.5 GB)
#   BENCH_THREADS    thread counts (default "1 2")
#   BENCH_TYPES      weight types (default "f32 f16 bf16 q8_0 q5_1 q5_0 q4_1 q4_0")
#   BENCH_ARGS       extra arguments for rwkv bench (e.g. "--tokens 128")
#   BENCH_REPS       rounds of the decode/prefill rows and of the rwkv.cpp rows (default 3)
#   RWKV_KERNELS     kernel variant (scalar|avx2|avx512; default: the best)
#   TRAIN_DATA       text for the training rows (default the shared tinyshakespeare; absent: rows skipped)
#   TRAIN_STEPS      steps of each training run (default 30)
#   TRAIN_REPS       training runs per row (default 3)
# Benchmarks are never unit tests: nothing here fails on a slow result.
set -e
RWKV=${RWKV:-./rwkv}
DIR=${RWKV_BENCH_DIR:-/tmp/rwkv-bench}
THREADS=${BENCH_THREADS:-"1 2"}
TYPES=${BENCH_TYPES:-"f32 f16 bf16 q8_0 q5_1 q5_0 q4_1 q4_0"}
OUT_MD=bench/results.md
OUT_JSON=bench/results.jsonl
mkdir -p "$DIR"

base="$DIR/169m-f32.safetensors"
if [ ! -f "$base" ]; then
    echo "creating $base (rwkv init, a few minutes)"
    "$RWKV" init --layers 12 --embd 768 --vocab 50277 --out "$base"
fi
model_for() { # type -> path (created on first use)
    case $1 in
    f32) echo "$base" ;;
    f16 | bf16)
        p="$DIR/169m-$1.safetensors"
        [ -f "$p" ] || "$RWKV" convert "$base" "$p" --dtype "$1" >&2
        echo "$p" ;;
    *)
        p="$DIR/169m-$1.bin"
        [ -f "$p" ] || "$RWKV" quantize "$base" "$p" --type "$1" >&2
        echo "$p" ;;
    esac
}
field() { # json name -> value
    printf '%s\n' "$1" | sed -n "s/.*\"$2\": \"\{0,1\}\([^,\"}]*\).*/\1/p"
}
# JSON lines on stdin -> the median of field $1 over them (the lower middle
# of an even count), or "min max" of it with $2 = range
median() {
    while IFS= read -r l; do field "$l" "$1"; done | sort -g |
        awk -v r="$2" '{v[NR] = $1} END {if (r == "range") print v[1], v[NR]; else print v[int((NR + 1) / 2)]}'
}
# the rows of one weight type and thread count in $OUT_JSON (rwkv.c's: no engine field)
rows_of() { grep "\"dtype\": \"$1\"" "$OUT_JSON" | grep "\"threads\": $2," | grep -v '"engine"'; }
REPS=${BENCH_REPS:-3}

: >"$OUT_JSON"
{
    echo "# rwkv bench results"
    echo
    echo "169M-shaped RWKV-4 (V=50277, C=768, L=12), random weights from \`rwkv init\`."
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //'), load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)."
    echo "Decode: median ms/token after a warm-up; prefill: 512-token prompt, median of 5 runs."
    echo "Machine read bandwidth and FMA peak: measured by the same run, interleaved with the model's work (medians)."
    echo "Each row: the medians of $REPS runs, one a round; a round runs every row once, so that a slow minute"
    echo "falls on different rows in each round; the fractions' lowest and highest of the runs beside them."
    echo "Head of the quantized files: q8_0 (emb.weight stays f32, one row per token)."
    echo
    echo "| weights | threads | kernels | decode ms/token | weight MB/token | decode GB/s | machine GB/s | decode / bandwidth | lowest-highest | prefill tok/s | prefill GFLOP/s | machine GFLOP/s | prefill / peak | lowest-highest |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$OUT_MD"
for rep in $(seq "$REPS"); do
    for t in $TYPES; do
        m=$(model_for "$t")
        for n in $THREADS; do
            j=$("$RWKV" bench -m "$m" -t "$n" --json $BENCH_ARGS)
            echo "$j" >>"$OUT_JSON"
            echo "round $rep: $t, $n threads: decode $(field "$j" decode_ms_per_token) ms/token, $(field "$j" decode_fraction_of_bandwidth) of the bandwidth"
        done
    done
done
pct() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == "") printf "%.0f%%", 100 * a; else printf "%.0f-%.0f%%", 100 * a, 100 * b}'; }
for t in $TYPES; do
    for n in $THREADS; do
        runs=$(rows_of "$t" "$n")
        [ -n "$runs" ] || continue
        m() { printf '%s\n' "$runs" | median "$@"; }
        mb=$(awk "BEGIN{printf \"%.1f\", $(m weight_bytes_per_token)/1e6}")
        line="| $t | $n | $(m kernels) | $(m decode_ms_per_token) | $mb | $(m decode_gbps) | $(m machine_read_gbps) | $(pct "$(m decode_fraction_of_bandwidth)") | $(pct $(m decode_fraction_of_bandwidth range)) | $(m prefill_tokens_per_s) | $(m prefill_gflops) | $(m machine_fma_gflops) | $(pct "$(m prefill_fraction_of_peak)") | $(pct $(m prefill_fraction_of_peak range)) |"
        echo "$line" >>"$OUT_MD"
        echo "$line"
    done
done
# Training throughput: forward + backward + Adam through `rwkv train`. Each
# shape runs TRAIN_REPS times; a run's figure is the median over its steps
# after a warm-up; the table gives the median of the runs, their spread
# (lowest-highest) and the 1-minute load average seen after each run (it
# counts the run's own threads), so a figure from a loaded moment shows as one.
TRAIN_DATA=${TRAIN_DATA:-../shared/data/tinyshakespeare/input.txt}
if [ -f "$TRAIN_DATA" ]; then
    {
        echo
        echo "## Training throughput (rwkv train, byte level, $TRAIN_DATA)"
        echo
        echo "MFU = training FLOPs (6 x parameters per token) x tokens/s / the fp32 FMA peak (the highest that the"
        echo "row's runs measured at their start); median of ${TRAIN_REPS:-3} runs, their lowest-highest, and the load"
        echo "average after each run."
        echo
        echo "| arch | model | ctx x batch | threads | tokens/s | MFU | MFU lowest-highest | load average |"
        echo "|---|---|---|---|---|---|---|---|"
    } >>"$OUT_MD"
    # RWKV-7's FLOPs add its WKV state update (docs/training-rwkv7.md)
    for shape in "rwkv4 3 256 256 4" "rwkv4 6 256 128 8" "rwkv4 6 512 256 8" "rwkv7 6 256 128 8"; do
        set -- $shape
        for n in $THREADS; do
            runs=""
            loads=""
            for rep in $(seq ${TRAIN_REPS:-3}); do
                d=$(mktemp -d)
                "$RWKV" train --arch "$1" --data "$TRAIN_DATA" --out "$d" --layers "$2" --embd "$3" --ctx "$4" \
                    --batch "$5" --steps ${TRAIN_STEPS:-30} --eval-every 0 --val-windows 1 --save-every 0 \
                    --threads "$n" --quiet >/dev/null 2>&1 || { echo "training bench failed for $shape" >&2; rm -rf "$d"; continue; }
                # A run gives its median step's tokens/s and FLOPs per token / peak: the log's mfu averages the
                # session (warm-up included) over its own peak probe, so that ratio is the last line's mfu over
                # the session's tokens/s (the harmonic mean of the steps' tokens/s: every step has as many tokens).
                runs="$runs$(sed -n 's/.*"tokens_per_s": *\([0-9.e+-]*\).*"mfu": *\([0-9.e+-]*\).*/\1 \2/p' "$d/train.jsonl" |
                    awk '{inv += 1 / $1; t[NR] = $1; m = $2} END {
                        n = 0; for (i = 6; i <= NR; i++) w[++n] = t[i]
                        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (w[j] < w[i]) { x = w[i]; w[i] = w[j]; w[j] = x }
                        printf "%s %.6g", w[int((n + 1) / 2)], m * inv / NR}')
"
                loads="$loads $(cut -d' ' -f1 /proc/loadavg)"
                rm -rf "$d"
            done
            [ -n "$runs" ] || continue
            # every run's MFU against the highest peak any of them measured (a probe that ran in a
            # disturbed moment reads the peak low and the MFU high, even above 100%)
            stats=$(printf '%s' "$runs" | sort -k1 -g | awk '{t[NR]=$1; r[NR]=$2} END {
                lo = r[1]; for (i = 2; i <= NR; i++) if (r[i] < lo) lo = r[i]
                k=int((NR+1)/2); printf "%s | %.1f%% | %.1f-%.1f%%", t[k], 100*t[k]*lo, 100*t[1]*lo, 100*t[NR]*lo}')
            line="| $1 | $2 x $3 | $4 x $5 | $n | $stats |$loads |"
            echo "$line" >>"$OUT_MD"
            echo "train $line"
        done
    done
fi
# rwkv.cpp (the 2023 build inside an npm package; see bench/rwkvcpp-old/run.sh)
if [ "${BENCH_RWKVCPP:-1}" != 0 ] && command -v npm >/dev/null 2>&1 && command -v nm >/dev/null 2>&1; then
    {
        echo
        echo "## rwkv.cpp, same machine, same model (decode only)"
        echo
        echo "rwkv.cpp of April 2023 (npm @llama-node/rwkv-cpp 0.1.6: AVX2 build, RNN mode, F32/F16 only)."
        echo
        echo "The machine's memory bandwidth moves from minute to minute, so rwkv.c is timed again right"
        echo "after each rwkv.cpp measurement (same weights, its own file format), as well as in the table above;"
        echo "medians of $REPS rounds, each round running every row once."
        echo
        echo "| weights | threads | rwkv.cpp decode ms/token | rwkv.c right after | rwkv.c (table above) |"
        echo "|---|---|---|---|---|"
    } >>"$OUT_MD"
    # one rwkv.cpp measurement at a time, each followed by rwkv.c's
    pairs=""
    for rep in $(seq "$REPS"); do
        for t in f32 f16; do
            for n in $THREADS; do
                j=$(RWKVCPP_TYPES=$t sh bench/rwkvcpp-old/run.sh "$base" "$n") || {
                    echo "rwkv.cpp comparison skipped (see bench/rwkvcpp-old/run.sh)"
                    break 3
                }
                echo "$j" >>"$OUT_JSON"
                next=$("$RWKV" bench -m "$(model_for "$t")" -t "$n" --tokens 64 --prompt 16 --no-machine --json)
                pairs="$pairs$t $n $(field "$j" decode_ms_per_token) $(field "$next" decode_ms_per_token)
"
                echo "rwkv.cpp round $rep: $t, $n threads: $(field "$j" decode_ms_per_token) ms/token, rwkv.c right after $(field "$next" decode_ms_per_token)"
            done
        done
    done
    for t in f32 f16; do
        for n in $THREADS; do
            cpp=$(printf '%s' "$pairs" | awk -v t=$t -v n=$n '$1 == t && $2 == n {print $3}' | sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}')
            [ -n "$cpp" ] || continue
            after=$(printf '%s' "$pairs" | awk -v t=$t -v n=$n '$1 == t && $2 == n {print $4}' | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
            line="| $t | $n | $cpp | $after | $(rows_of "$t" "$n" | median decode_ms_per_token) |"
            echo "$line" >>"$OUT_MD"
            echo "rwkv.cpp $line"
        done
    done
fi
echo "wrote $OUT_MD"
# RWKV-7 GGUF files against llama.cpp on the same files (bench/gguf.sh;
# BENCH_GGUF=0 skips it).
if [ "${BENCH_GGUF:-1}" = 1 ]; then
    sh bench/gguf.sh
fi
