#!/bin/sh
# RWKV-7 from GGUF files, rwkv.c against llama.cpp on the same files (part
# of `make bench`). Creates (once) RWKV-7 checkpoints of the 0.1B and 1.5B
# shapes (`rwkv init --arch rwkv7`: the official init, whose LoRA ranks follow
# the released models' formula), writes them as GGUF with `rwkv quantize`
# (f16, q8_0, q4_k: files llama.cpp loads), then for each file and thread
# count measures decode (ms/token) and 512-token prefill (tokens/s) with
# `rwkv bench` and with llama.cpp's prebuilt CPU library (the npm package
# node-llama-cpp@3.21.1, installed into $RWKV_BENCH_DIR/node-llama-cpp on
# first use; never committed). The two engines run alternately, REPS times
# per cell, and each column is the median of the REPS runs, so a machine
# shared with other work slows both alike. Writes bench/results_gguf.md.
#
# Environment:
#   RWKV_BENCH_DIR   where the models live (default /tmp/rwkv-bench; ~12 GB for both shapes)
#   GGUF_SHAPES      "0.1b 1.5b" (default), or "tiny" for a smoke run of the harness
#   BENCH_THREADS    thread counts (default "1 2")
#   GGUF_TYPES       weight types (default "f16 q8_0 q4_k")
#   DECODE_TOKENS    decoded tokens per measurement (default 64)
#   PREFILL_TOKENS   prompt length (default 512)
#   REPS             alternating runs per cell (default 3)
#   VOCAB            the World vocabulary stored in the files (default ../shared/reference/rwkv-cpp/
#                    rwkv_vocab_v20230424.txt; 'bytes' for the tiny shape)
# Benchmarks are never unit tests: nothing here fails on a slow result.
set -e
RWKV=${RWKV:-./rwkv}
DIR=${RWKV_BENCH_DIR:-/tmp/rwkv-bench}
SHAPES=${GGUF_SHAPES:-"0.1b 1.5b"}
THREADS=${BENCH_THREADS:-"1 2"}
TYPES=${GGUF_TYPES:-"f16 q8_0 q4_k"}
NDEC=${DECODE_TOKENS:-64}
NPRE=${PREFILL_TOKENS:-512}
REPS=${REPS:-3}
VOCAB=${VOCAB:-../shared/reference/rwkv-cpp/rwkv_vocab_v20230424.txt}
OUT_MD=${OUT_MD:-bench/results_gguf.md}
NPM_DIR="$DIR/node-llama-cpp"
mkdir -p "$DIR"

# shape -> vocabulary, width, layers
shape_args() {
    case $1 in
    0.1b) echo "65536 768 12" ;;
    1.5b) echo "65536 2048 24" ;;
    tiny) echo "256 256 2" ;;
    *) echo "unknown shape $1" >&2; exit 2 ;;
    esac
}

llama=1
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node/npm not found: llama.cpp rows skipped"; llama=0
elif [ ! -f "$NPM_DIR/node_modules/node-llama-cpp/package.json" ]; then
    mkdir -p "$NPM_DIR"
    npm i -E --prefix "$NPM_DIR" --ignore-scripts --no-audit --no-fund node-llama-cpp@3.21.1 >/dev/null 2>&1 ||
        { echo "npm could not install node-llama-cpp: llama.cpp rows skipped"; llama=0; }
fi
[ $llama = 1 ] && cp bench/llamacpp_bench.mjs "$NPM_DIR/"

field() { # json name -> value
    printf '%s\n' "$1" | sed -n "s/.*\"$2\": *\"\{0,1\}\([^,\"}]*\).*/\1/p"
}
median() { # numbers (one per line on stdin) -> their median, or - when there are none
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
{
    echo "# RWKV-7 GGUF: rwkv.c and llama.cpp on the same files"
    echo
    echo "RWKV-7 of the released shapes, freshly initialised (\`rwkv init --arch rwkv7\`), written as GGUF by \`rwkv quantize\`"
    echo "(head q8_0, q6_k for q4_k; embedding f16). llama.cpp: node-llama-cpp@3.21.1's prebuilt CPU library."
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //'), load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)."
    echo "Decode: median ms/token ($NDEC tokens); prefill: $NPRE-token prompt; each cell the median of $REPS alternating runs of"
    echo "the two engines. 'of bandwidth': the weight bytes one token reads over the decode time, as a fraction of the read"
    echo "bandwidth rwkv bench measures at the same thread count between the decode's tokens (every fourth): 'beside it' against"
    echo "the median of those passes (rwkv bench's own fraction, as in make bench's tables), 'of best' against the fastest pass."
    echo
    echo "| shape | weights | threads | rwkv.c decode ms | llama.cpp decode ms | decode speed-up | rwkv.c of bandwidth beside it | of best | rwkv.c prefill tok/s | llama.cpp prefill tok/s | prefill speed-up |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
} >"$OUT_MD"
for shape in $SHAPES; do
    src="$DIR/rwkv7-$shape-f32.safetensors"
    vocab=$VOCAB
    [ "$shape" = tiny ] && vocab=bytes
    set -- $(shape_args "$shape")
    [ -f "$src" ] || { echo "creating $src"; "$RWKV" init --arch rwkv7 --vocab "$1" --embd "$2" --layers "$3" --out "$src"; }
    for t in $TYPES; do
        m="$DIR/rwkv7-$shape-$t.gguf"
        [ -f "$m" ] || "$RWKV" quantize "$src" "$m" --type "$t" --tokenizer "$vocab" >&2
        for n in $THREADS; do
            : >"$DIR/rd" >"$DIR/rp" >"$DIR/bm" >"$DIR/bf" >"$DIR/ld" >"$DIR/lp"
            r=0
            while [ $r -lt "$REPS" ]; do
                j=$("$RWKV" bench -m "$m" -t "$n" --json --tokens "$NDEC" --prompt "$NPRE")
                field "$j" decode_ms_per_token >>"$DIR/rd"
                field "$j" prefill_tokens_per_s >>"$DIR/rp"
                # decode against the read passes between its tokens: their median and their best
                field "$j" decode_fraction_of_bandwidth >>"$DIR/bm"
                awk "BEGIN{print $(field "$j" weight_bytes_per_token) / ($(field "$j" decode_ms_per_token) * 1e6) / $(field "$j" machine_read_gbps_best)}" >>"$DIR/bf"
                if [ $llama = 1 ]; then
                    l=$(cd "$NPM_DIR" && node llamacpp_bench.mjs "$m" "$n" "$NDEC" "$NPRE" "$1")
                    field "$l" decode_ms_per_token >>"$DIR/ld"
                    field "$l" prefill_tokens_per_s >>"$DIR/lp"
                fi
                r=$((r + 1))
            done
            rd=$(median <"$DIR/rd"); rp=$(median <"$DIR/rp"); ld=$(median <"$DIR/ld"); lp=$(median <"$DIR/lp")
            bm=$(median <"$DIR/bm" | awk '{printf "%.0f%%", 100 * $1}')
            bf=$(median <"$DIR/bf" | awk '{printf "%.0f%%", 100 * $1}')
            [ "$ld" = - ] || ld=$(awk "BEGIN{printf \"%.3f\", $ld}")
            [ "$lp" = - ] || lp=$(awk "BEGIN{printf \"%.0f\", $lp}")
            sd=$(awk "BEGIN{ if (\"$ld\" == \"-\") print \"-\"; else printf \"%.2fx\", $ld/$rd }")
            sp=$(awk "BEGIN{ if (\"$lp\" == \"-\") print \"-\"; else printf \"%.2fx\", $rp/$lp }")
            line=$(printf '| %s | %s | %s | %.3f | %s | %s | %s | %s | %.0f | %s | %s |' "$shape" "$t" "$n" "$rd" "$ld" "$sd" \
                   "$bm" "$bf" "$rp" "$lp" "$sp")
            echo "$line" >>"$OUT_MD"
            echo "$line"
        done
    done
done
echo "wrote $OUT_MD"
