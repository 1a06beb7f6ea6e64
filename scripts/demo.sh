#!/bin/sh
# make demo: train a small byte-level RWKV-4 on a public-domain English corpus
# for a few minutes, then print samples of generated text.
#
# Corpus: the King James Bible (1611; public domain, see
# /usr/share/doc/bible-kjv-text/copyright: "The copyright for the King James
# Version text of the Bible is expired"), from Debian's bible-kjv package,
# installed with the system package manager when missing. Nothing else is
# fetched. DATA=file uses your own text instead.
#
# Environment:
#   DATA=FILE      training text (default: the KJV, ~4.4 MB)
#   OUT=DIR        run directory (default: runs/demo; an old run there is replaced)
#   TRAIN_SECONDS=N training time budget in seconds (default 210); the step count
#                  is set from a short timing run so the schedule ends on time
#   THREADS=N      worker threads (default: all cores)
#   LAYERS, EMBD, CTX, BATCH, LR   model and batch (defaults 3, 256, 256, 4, 2e-3)
set -e
cd "$(dirname "$0")/.."
RWKV=./rwkv
OUT=${OUT:-runs/demo}
BUDGET=${TRAIN_SECONDS:-210}
THREADS=${THREADS:-0}
LAYERS=${LAYERS:-3}
EMBD=${EMBD:-256}
CTX=${CTX:-256}
BATCH=${BATCH:-4}
LR=${LR:-2e-3}

[ -x "$RWKV" ] || { echo "demo: $RWKV is missing; run make first" >&2; exit 1; }
mkdir -p "$OUT"

# ---- the corpus ----------------------------------------------------------
if [ -n "$DATA" ]; then
    [ -f "$DATA" ] || { echo "demo: DATA=$DATA: no such file" >&2; exit 1; }
    corpus=$DATA
    echo "demo: corpus $DATA"
else
    . scripts/corpus.sh
    corpus=$OUT/kjv.txt
    kjv_corpus "$corpus" || { echo "demo: pass DATA=your.txt instead" >&2; exit 1; }
    echo "demo: corpus $corpus (King James Bible, public domain, $(wc -c <"$corpus") bytes)"
fi

FLAGS="--layers $LAYERS --embd $EMBD --ctx $CTX --batch $BATCH --threads $THREADS --lr $LR --lr-final 1e-4"

# ---- timing run: how many steps fit in the budget ---------------------------
rm -rf "$OUT/timing" "$OUT/run"
"$RWKV" train --data "$corpus" --out "$OUT/timing" $FLAGS --steps 12 --eval-every 0 --val-windows 1 \
    --save-every 0 --no-peak --quiet
# tokens/s of steps 4..12 (the first steps warm up)
tps=$(sed -n '4,12s/.*"tokens_per_s":\([0-9.]*\).*/\1/p' "$OUT/timing/train.jsonl" |
    awk '{ s += $1; n++ } END { if (n) printf "%d", s / n; else print 0 }')
rm -rf "$OUT/timing"
steps=$(awk -v t="$tps" -v b="$BUDGET" -v n="$((CTX * BATCH))" 'BEGIN {
    s = int(0.9 * b * t / n); if (s < 50) s = 50; if (s > 100000) s = 100000; print s }')
echo "demo: about $tps tokens/s here, so $steps steps of $BATCH x $CTX tokens for ~${BUDGET}s"

# ---- training ------------------------------------------------------------
"$RWKV" train --data "$corpus" --out "$OUT/run" $FLAGS --steps "$steps" \
    --eval-every $((steps / 5)) --val-windows 64 --save-every $((steps / 2)) \
    --print-every 50

# ---- samples -------------------------------------------------------------
model=$OUT/run/model.safetensors
echo
echo "demo: samples from $model (temperature 0.8)"
for prompt in "And God said" "In the beginning" "The LORD is my"; do
    echo "----- prompt: $prompt"
    if ! "$RWKV" generate -m "$model" -p "$prompt" -n 300 --temp 0.8 --top-p 0.9 --seed 1 --quiet; then
        echo "demo: 'rwkv generate' failed; the trained model is $model" >&2
        exit 1
    fi
    echo
done
echo "-----"
echo "demo: model $model, log $OUT/run/train.jsonl; continue training with: $RWKV train --resume $OUT/run --steps N"
