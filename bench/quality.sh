#!/bin/sh
# Quantization quality: perplexity of a model and of its quantized versions
# on held-out text, as a markdown table (perplexity increase over the source).
#   bench/quality.sh MODEL TEXT [LIMIT_TOKENS] [LABEL]
# MODEL is any checkpoint rwkv.c loads (byte-level models: the text is its
# own tokenization); the quantized files go to ${RWKV_QUALITY_DIR:-/tmp/rwkv-quality}.
# QUALITY_TYPES lists the types, QUALITY_HEADS the head choices ("default f16");
# QUALITY_TOKENIZER is the vocabulary a GGUF output stores (RWKV-6/7: e.g. bytes).
set -e
RWKV=${RWKV:-./rwkv}
model=$1
text=$2
limit=${3:-0}
label=${4:-$(basename "$model")}
dir=${RWKV_QUALITY_DIR:-/tmp/rwkv-quality}
mkdir -p "$dir"
stem=$dir/$(basename "$model" | sed 's/\.[^.]*$//')
lim=""
[ "$limit" -gt 0 ] && lim="--limit $limit"
# a byte-level model's GGUF file stores <s> at id 0, so it is scored with the byte tokenizer as its source
evtok=${QUALITY_TOKENIZER:+--tokenizer $QUALITY_TOKENIZER}
ppl() { "$RWKV" eval -m "$1" --data "$text" $lim $evtok --json -q | sed -n 's/.*"perplexity": \([0-9.]*\).*/\1/p'; }
base=$(ppl "$model")
echo "| model | weights | head | file MB | perplexity | increase |"
echo "|---|---|---|---|---|---|"
echo "| $label | source | source | $(awk "BEGIN{printf \"%.1f\", $(stat -c %s "$model")/1e6}") | $base | — |"
tok=${QUALITY_TOKENIZER:+--tokenizer $QUALITY_TOKENIZER}
for t in ${QUALITY_TYPES:-f16 q8_0 q5_1 q5_0 q4_1 q4_0}; do
    for head in ${QUALITY_HEADS:-default f16}; do
        [ "$head" = f16 ] && [ "$t" = f16 ] && continue
        out=$stem-$t-head$head.bin
        if [ "$head" = default ]; then
            "$RWKV" quantize "$model" "$out" --type "$t" $tok 2>/dev/null
        else
            "$RWKV" quantize "$model" "$out" --type "$t" --head "$head" $tok 2>/dev/null
        fi
        p=$(ppl "$out")
        h=$head
        [ "$h" = default ] && { case $t in f16 | f32) h=$t ;; q4_k | q5_k | q6_k | q4_k_m) h=q6_k ;; *) h=q8_0 ;; esac; }
        inc=$(awk "BEGIN{printf \"%+.2f%%\", 100*($p/$base-1)}")
        echo "| $label | $t | $h | $(awk "BEGIN{printf \"%.1f\", $(stat -c %s "$out")/1e6}") | $p | $inc |"
    done
done
