#!/bin/sh
# make results: RWKV-4 and RWKV-7 against the GPT baseline in the same code
# base, by one command. Writes docs/results.md and the plots in docs/results/*.png.
#
#   0. the tuned comparison and the prompt-order probe (§1, §3): the jobs of
#      scripts/results_jobs.sh still missing from docs/results/data (hours of
#      CPU from nothing; each job's table is kept, so a rerun continues), then
#      scripts/results_tuned.sh writes their sections from the tables;
#   1. quality under one shared recipe (§1b): validation loss curves of an RWKV-4, an RWKV-7 and a GPT of
#      (almost) equal parameter count, trained by `rwkv train` on the same
#      tokens, with the same optimiser, schedule and seed, on Tiny Shakespeare
#      and on the King James Bible (scripts/corpus.sh);
#   2. cost: decode time per token, state / KV-cache memory, process RSS and
#      the cumulative time to generate N tokens, up to 16384 tokens of context
#      (bench/context_cost.c);
#   3. the limitation: a synthetic recall probe (include/rwkv_recall.h,
#      bench/recall_probe.c: multi-query associative recall), both models
#      trained on it, accuracy against the number of key-value pairs held.
#
# Environment:
#   RESULTS_QUICK=1   a smoke run of a few minutes (fewer steps, 4096 tokens of context)
#   RESULTS_WORK=DIR  scratch directory (default runs/results; replaced)
#   SEED=N            seed of every run (default 1)
#   RWKV_SHARED=DIR   where data/tinyshakespeare/input.txt lives (default ../shared)
#   RWKV=PATH         the rwkv program (default ./rwkv)
#   RESULTS_RWKV7_ONLY=1  run only the quality comparison (all three architectures) and
#                     rewrite only its RWKV-7 subsection of docs/results.md and the
#                     docs/results/quality7_*.png plots (default work directory
#                     runs/results-rwkv7); the rest of the report stays as it is
#   RESULTS_REPORT_ONLY=1  rerun nothing: redraw the plots and rewrite the report from the
#                     tables and logs an earlier run left in RESULTS_WORK (same RESULTS_QUICK)
# Needs gnuplot (the Makefile's `results` target installs gnuplot-nox).
set -e
cd "$(dirname "$0")/.."
RWKV=${RWKV:-./rwkv}
COST=build/bench/context_cost
PROBE=build/bench/recall_probe
QUICK=${RESULTS_QUICK:-0}
RWKV7_ONLY=${RESULTS_RWKV7_ONLY:-0}
if [ "$RWKV7_ONLY" = 1 ]; then WORK=${RESULTS_WORK:-runs/results-rwkv7}; else WORK=${RESULTS_WORK:-runs/results}; fi
SEED=${SEED:-1}
SHARED=${RWKV_SHARED:-../shared}
FIG=docs/results
DOC=docs/results.md
for f in "$RWKV" "$COST" "$PROBE"; do
    [ -x "$f" ] || { echo "results: $f is missing (run make results)" >&2; exit 1; }
done
command -v gnuplot >/dev/null 2>&1 || { echo "results: gnuplot is missing (apt-get install gnuplot-nox)" >&2; exit 1; }
ONLY=${RESULTS_REPORT_ONLY:-0}
if [ "$ONLY" = 1 ]; then
    [ -f "$WORK/timings" ] || { echo "results: $WORK/timings is missing: no finished run to report on" >&2; exit 1; }
else
    rm -rf "$WORK"
fi
mkdir -p "$WORK" "$FIG"
T0=$(date +%s)
if [ "$ONLY" != 1 ] && [ "$RWKV7_ONLY" != 1 ]; then
    sh scripts/results_jobs.sh run
fi
T_JOBS=$(($(date +%s) - T0))
# runs "$@" unless only the report is rewritten
run() { [ "$ONLY" = 1 ] || "$@"; }
say() { [ "${RESULTS_REPORT_ONLY:-0}" = 1 ] || echo "results: $*" >&2; }

# ---- sizes -------------------------------------------------------------------
# quality models: RWKV-4 L x C (ffn 4C); the GPT's MLP width and RWKV-7's
# channel-mix width are chosen so that their parameter counts (the GPT's
# position table included) match RWKV-4's.
L=4 C=192 CTX=128 B=8 LR=2e-3 LR_FINAL=1e-4
# the recall probe's models and data, and the tuned comparison's settings
. scripts/results_config.sh
if [ "$QUICK" = 1 ]; then
    STEPS=150 EVAL=25 VALW=8
    MAXCTX=4096 EVERY=128
else
    STEPS=1200 EVAL=100 VALW=32
    MAXCTX=16384 EVERY=256
fi
HEADS=$((C / 64))
# RWKV-4: 2VC + L(5C^2 + 2CF + 11C) + 4C; GPT: 2VC + TC + L(4C^2 + 2CF' + 9C + F') + 2C
GFFN=$(awk -v L=$L -v C=$C -v T=$CTX 'BEGIN { F = 4 * C; printf "%d", (L * (C * C + 2 * C * F + 2 * C) + 2 * C - T * C) / (L * (2 * C + 1)) + 0.5 }')
# RWKV-7 (head size 64): its count is linear in the channel-mix width F (2·C·L
# weights per unit), so two fresh inits give the F of RWKV-4's count
R4_PARAMS=$((2 * 256 * C + L * (5 * C * C + 8 * C * C + 11 * C) + 4 * C))
r7_params() { # ffn -> parameter count of a fresh byte-level RWKV-7 of L x C
    "$RWKV" init --arch rwkv7 --layers $L --embd $C --vocab 256 --ffn "$1" --out "$WORK/r7-count.safetensors" \
        >/dev/null 2>&1 && "$RWKV" info "$WORK/r7-count.safetensors" | sed -n 's/^parameters: *\([0-9]*\).*/\1/p'
}
R7FFN=$(awk -v p=$(r7_params $((4 * C))) -v q=$R4_PARAMS -v C=$C -v L=$L 'BEGIN { printf "%d", 4 * C + (q - p) / (2 * C * L) + 0.5 }')
rm -f "$WORK/r7-count.safetensors"
TOKENS_PER_STEP=$((B * CTX))

CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
CORES=$(nproc)
MACHINE="${CPU:-unknown CPU}, $CORES cores ($(uname -m)), $(grep -m1 MemTotal /proc/meminfo | awk '{ printf "%.0f GiB", $2 / 1048576 }') RAM"
REV=$(git describe --always --dirty 2>/dev/null || echo unknown)
say "machine: $MACHINE; revision $REV; quick=$QUICK"

# ---- 1. quality ----------------------------------------------------------------
# the three architectures train at the same time, one thread each, on the same token file
train_pair() { # name token-file
    name=$1
    data=$2
    common="--data $data --layers $L --embd $C --ctx $CTX --batch $B --steps $STEPS --lr $LR --lr-final $LR_FINAL --eval-every $EVAL --val-windows $VALW --save-every 0 --seed $SEED --threads 1 --no-peak --print-every 100"
    say "quality/$name: rwkv4, rwkv7 and gpt, $STEPS steps of $B x $CTX tokens"
    "$RWKV" train --arch rwkv4 $common --out "$WORK/$name-rwkv4" 2>"$WORK/$name-rwkv4.log" &
    p1=$!
    "$RWKV" train --arch gpt --ffn "$GFFN" --heads "$HEADS" $common --out "$WORK/$name-gpt" 2>"$WORK/$name-gpt.log" &
    p2=$!
    "$RWKV" train --arch rwkv7 --ffn "$R7FFN" $common --out "$WORK/$name-rwkv7" 2>"$WORK/$name-rwkv7.log" &
    p3=$!
    wait $p1 || { tail -3 "$WORK/$name-rwkv4.log" >&2; exit 1; }
    wait $p2 || { tail -3 "$WORK/$name-gpt.log" >&2; exit 1; }
    wait $p3 || { tail -3 "$WORK/$name-rwkv7.log" >&2; exit 1; }
}
# step, elapsed, validation loss of the runs on one corpus -> $WORK/NAME-ARCH.val (tokens loss seconds)
extract_val() { # name
    name=$1
    for a in rwkv4 gpt rwkv7; do
        sed -n 's/.*"step":\([0-9]*\),.*"elapsed_s":\([0-9.]*\),"val_loss":\([0-9.eE+-]*\).*/\1 \2 \3/p' \
            "$WORK/$name-$a/train.jsonl" | awk -v k=$TOKENS_PER_STEP '{ print $1 * k, $3, $2 }' >"$WORK/$name-$a.val"
    done
}
QUALITY_CMD="rwkv train --arch rwkv4|rwkv7|gpt --data TOKENS --layers $L --embd $C --ctx $CTX --batch $B --steps $STEPS --lr $LR --lr-final $LR_FINAL --eval-every $EVAL --val-windows $VALW --seed $SEED --threads 1 (rwkv7: --ffn $R7FFN; gpt: --ffn $GFFN --heads $HEADS)"

t=$(date +%s)
HAVE_TS=0
if [ "$ONLY" = 1 ]; then
    [ -f "$WORK/ts-gpt.log" ] && HAVE_TS=1
elif [ -f "$SHARED/data/tinyshakespeare/input.txt" ]; then
    HAVE_TS=1
    "$RWKV" tokenize --out "$WORK/ts.tok" "$SHARED/data/tinyshakespeare/input.txt" 2>/dev/null
    train_pair ts "$WORK/ts.tok"
else
    say "quality: $SHARED/data/tinyshakespeare/input.txt not found, Tiny Shakespeare skipped"
fi
[ $HAVE_TS = 1 ] && extract_val ts
. scripts/corpus.sh
run kjv_corpus "$WORK/kjv.txt"
run "$RWKV" tokenize --out "$WORK/kjv.tok" "$WORK/kjv.txt" 2>/dev/null
run train_pair kjv "$WORK/kjv.tok"
extract_val kjv
T_QUALITY=$(($(date +%s) - t))

params() { sed -n 's/^model: .*, \([0-9]*\) parameters.*/\1/p' "$1" | head -1; }
P_RWKV=$(params "$WORK/kjv-rwkv4.log")
P_GPT=$(params "$WORK/kjv-gpt.log")
P_R7=$(params "$WORK/kjv-rwkv7.log")
last_val() { tail -1 "$1" | awk '{ print $2 }'; }
# the first evaluation at which a run is within 0.05 of its final loss, in tokens
settle() { # file
    awk 'NR == FNR { last = $2; next } !done && $2 <= last + 0.05 { print $1; done = 1 }' "$1" "$1"
}
tps() { # mean tokens/s of a run's steps after the first 10
    sed -n 's/.*"step":\([0-9]*\),.*"tokens_per_s":\([0-9.]*\).*/\1 \2/p' "$1/train.jsonl" |
        awk '$1 > 10 { s += $2; n++ } END { if (n) printf "%.0f", s / n; else print 0 }'
}

plot_quality() { # name title [7: with RWKV-7, into quality7_NAME.png]
    r7=""
    [ "${3:-}" = 7 ] && r7="\"$WORK/$1-rwkv7.val\" using 1:2 with linespoints pt 9 ps 0.6 lw 2 title \"RWKV-7 ($P_R7 params)\","
    gnuplot <<EOF
set terminal pngcairo size 760,440 font "DejaVu Sans,10"
set output "$FIG/quality${3:-}_$1.png"
set title "$2: validation loss, equal parameters and tokens (seed $SEED)"
set xlabel "training tokens"
set ylabel "validation loss (nats/byte)"
set key top right
set grid
plot "$WORK/$1-rwkv4.val" using 1:2 with linespoints pt 7 ps 0.6 lw 2 title "RWKV-4 ($P_RWKV params)", $r7 \
     "$WORK/$1-gpt.val" using 1:2 with linespoints pt 5 ps 0.6 lw 2 title "GPT ($P_GPT params)"
EOF
}
for v in 7 ""; do
    [ "$RWKV7_ONLY" = 1 ] && [ -z "$v" ] && continue # the two-architecture plots belong to the full run
    [ $HAVE_TS = 1 ] && plot_quality ts "Tiny Shakespeare" $v
    plot_quality kjv "King James Bible" $v
done
# the RWKV-7 subsection (scripts/results_rwkv7.sh); alone, it is spliced into the report
. scripts/results_rwkv7.sh
if [ "$RWKV7_ONLY" = 1 ]; then
    # the time and revision are those of the run that trained the models
    if [ "$ONLY" = 1 ]; then . "$WORK/timings"; else printf 'T_QUALITY=%s\nREV=%s\n' $T_QUALITY "$REV" >"$WORK/timings"; fi
    rwkv7_splice
    say "rewrote the RWKV-7 subsection of $DOC ($T_QUALITY s)"
    exit 0
fi

# ---- 2. cost -------------------------------------------------------------------
say "cost: decode $MAXCTX tokens with each model (one thread, one after the other)"
t=$(date +%s)
COST_CMD_R="context_cost --arch rwkv4 --layers $L --embd $C --max-ctx $MAXCTX --every $EVERY --threads 1 --seed $SEED"
COST_CMD_G="context_cost --arch gpt --layers $L --embd $C --ffn $GFFN --heads $HEADS --max-ctx $MAXCTX --every $EVERY --threads 1 --seed $SEED"
run $COST --arch rwkv4 --layers $L --embd $C --max-ctx $MAXCTX --every $EVERY --threads 1 --seed $SEED \
    --out "$WORK/cost-rwkv4.tsv"
run $COST --arch gpt --layers $L --embd $C --ffn $GFFN --heads $HEADS --max-ctx $MAXCTX --every $EVERY --threads 1 \
    --seed $SEED --out "$WORK/cost-gpt.tsv"
T_COST=$(($(date +%s) - t))
row() { # file ctx column -> value (the row of the largest ctx <= the one asked)
    awk -v c="$2" -v k="$3" '!/^#/ && $1 <= c { v = $k } END { print v }' "$1"
}
MS_R_256=$(row "$WORK/cost-rwkv4.tsv" 256 2); MS_R_MAX=$(row "$WORK/cost-rwkv4.tsv" $MAXCTX 2)
MS_G_256=$(row "$WORK/cost-gpt.tsv" 256 2); MS_G_MAX=$(row "$WORK/cost-gpt.tsv" $MAXCTX 2)
CUM_R=$(row "$WORK/cost-rwkv4.tsv" $MAXCTX 4); CUM_G=$(row "$WORK/cost-gpt.tsv" $MAXCTX 4)
CUM_R_H=$(row "$WORK/cost-rwkv4.tsv" $((MAXCTX / 2)) 4); CUM_G_H=$(row "$WORK/cost-gpt.tsv" $((MAXCTX / 2)) 4)
ST_R=$(row "$WORK/cost-rwkv4.tsv" $MAXCTX 5); KV_G=$(row "$WORK/cost-gpt.tsv" $MAXCTX 5)
RSS_R=$(row "$WORK/cost-rwkv4.tsv" $MAXCTX 7); RSS_G=$(row "$WORK/cost-gpt.tsv" $MAXCTX 7)
RSS_R0=$(row "$WORK/cost-rwkv4.tsv" 1 7); RSS_G0=$(row "$WORK/cost-gpt.tsv" 1 7)
PC_R=$(sed -n 's/^# parameters: \([0-9]*\).*/\1/p' "$WORK/cost-rwkv4.tsv")
PC_G=$(sed -n 's/^# parameters: \([0-9]*\) (position table: \([0-9]*\)).*/\1 \2/p' "$WORK/cost-gpt.tsv")
mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
kib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }

gnuplot <<EOF
set terminal pngcairo size 760,440 font "DejaVu Sans,10"
set grid
set key top left box opaque
set logscale x 2
set output "$FIG/cost_per_token.png"
set title "Decode time per token vs context (median of 64 tokens, 1 thread)"
set xlabel "tokens in context"
set ylabel "ms per token"
plot "$WORK/cost-rwkv4.tsv" using 1:2 with lines lw 2 title "RWKV-4 (recurrent state)", \
     "$WORK/cost-gpt.tsv" using 1:2 with lines lw 2 title "GPT (KV cache)"
set output "$FIG/cost_memory.png"
set title "Memory vs context"
set ylabel "MiB"
set logscale y 10
plot "$WORK/cost-rwkv4.tsv" using 1:(\$5/1048576) with lines lw 2 title "RWKV-4 state", \
     "$WORK/cost-gpt.tsv" using 1:(\$5/1048576) with lines lw 2 title "GPT KV cache (used)", \
     "$WORK/cost-rwkv4.tsv" using 1:(\$7/1048576) with lines lw 1 dt 2 title "RWKV-4 process RSS", \
     "$WORK/cost-gpt.tsv" using 1:(\$7/1048576) with lines lw 1 dt 2 title "GPT process RSS"
unset logscale
set output "$FIG/cost_cumulative.png"
set title "Total time to generate N tokens (greedy, 1 thread)"
set xlabel "tokens generated (N)"
set ylabel "seconds"
plot "$WORK/cost-rwkv4.tsv" using 1:4 with lines lw 2 title "RWKV-4", \
     "$WORK/cost-gpt.tsv" using 1:4 with lines lw 2 title "GPT"
EOF

# ---- 3. recall probe -------------------------------------------------------------
# Multi-query associative recall: both architectures trained on the same token
# file at the same time, then scored on the same test examples for each number
# of pairs N, at the end and at 4/5 of the steps (was each still learning?).
# Files: $WORK/recall.tok, $WORK/recall-{rwkv4,gpt}.{log,tsv}, recall-*-early.tsv
# and the run directories $WORK/recall-{rwkv4,gpt}.
RSPEC="--keys $RKEYS --values $RVALUES"
RSHOW=$($PROBE show --pairs 4 $RSPEC --examples 2 --seed $SEED)
RPAIRS_IN="1,2,4,6,8,12,16,$RPMAX"   # inside the training range; 6N+1 <= RCTX: they fit the GPT
RPAIRS_OUT="$((RPMAX + RPMAX / 5)),$((RPMAX + RPMAX * 3 / 5))"   # beyond it: RWKV-4 only
REARLY=$((RSTEPS * 4 / 5))
RTRAIN="--data $WORK/recall.tok --layers $RL --embd $RC --ctx $RCTX --batch $RB --steps $RSTEPS --lr $RLR --lr-final $RLR --warmup-steps $RWARM --eval-every $((RSTEPS / 5)) --val-windows 16 --save-every $REARLY --seed $SEED --threads 1 --no-peak --print-every 100"
RECALL_GEN="recall_probe gen --out recall.tok --tokens $RTOKENS --pairs-min 1 --pairs-max $RPMAX $RSPEC --seed $SEED"
RECALL_TRAIN="rwkv train --arch rwkv4|gpt --data recall.tok --layers $RL --embd $RC --ctx $RCTX --batch $RB --steps $RSTEPS --lr $RLR --lr-final $RLR --warmup-steps $RWARM --seed $SEED --threads 1 (gpt: --heads $RHEADS)"
RECALL_EVAL="recall_probe eval --arch rwkv4|gpt --model DIR/model.safetensors --pairs $RPAIRS_IN,$RPAIRS_OUT $RSPEC --examples $REX --seed $((SEED + 1000))"
recall_run() {
    say "recall: generate the probe's tokens, train rwkv4 and gpt ($RSTEPS steps each, at the same time)"
    $PROBE gen --out "$WORK/recall.tok" --tokens $RTOKENS --pairs-min 1 --pairs-max $RPMAX $RSPEC --seed $SEED
    "$RWKV" train --arch rwkv4 $RTRAIN --out "$WORK/recall-rwkv4" 2>"$WORK/recall-rwkv4.log" &
    p1=$!
    "$RWKV" train --arch gpt --heads $RHEADS $RTRAIN --out "$WORK/recall-gpt" 2>"$WORK/recall-gpt.log" &
    p2=$!
    wait $p1 || { tail -3 "$WORK/recall-rwkv4.log" >&2; exit 1; }
    wait $p2 || { tail -3 "$WORK/recall-gpt.log" >&2; exit 1; }
    for a in rwkv4 gpt; do
        $PROBE eval --arch $a --model "$WORK/recall-$a/model.safetensors" --pairs "$RPAIRS_IN,$RPAIRS_OUT" $RSPEC \
            --examples $REX --seed $((SEED + 1000)) --threads 2 >"$WORK/recall-$a.tsv"
        $PROBE eval --arch $a --model "$WORK/recall-$a/model-$(printf %08d $REARLY).safetensors" --pairs "$RPAIRS_IN" \
            $RSPEC --examples $REX --seed $((SEED + 1000)) --threads 2 >"$WORK/recall-$a-early.tsv"
    done
}
t=$(date +%s)
run recall_run
gnuplot <<EOF
set terminal pngcairo size 760,440 font "DejaVu Sans,10"
set output "$FIG/recall_pairs.png"
set title "Multi-query associative recall: accuracy vs pairs held ($RKEYS keys, $RVALUES values, seed $SEED)"
set xlabel "key-value pairs in the example (N)"
set ylabel "accuracy of the answers"
set yrange [0:1.05]
set xrange [0:*]
set grid
set key at graph 0.98, graph 0.74 right top box opaque
set arrow from $RPMAX, graph 0 to $RPMAX, graph 1 nohead dt 3
set label "trained on N <= $RPMAX" at $RPMAX, graph 0.04 left offset 0.5,0
plot "$WORK/recall-rwkv4.tsv" using 1:5 every ::1 with linespoints pt 7 lw 2 title "RWKV-4", \
     "$WORK/recall-gpt.tsv" using 1:(\$5) every ::1 with linespoints pt 5 lw 2 title "GPT", \
     "$WORK/recall-rwkv4.tsv" using 1:6 every ::1 with lines dt 2 lw 1 lc rgb "gray40" title "values known, keys not (unbound)", \
     $(awk -v v=$RVALUES 'BEGIN { printf "%.4f", 1 / v }') with lines dt 3 lc rgb "gray" title "chance (1/$RVALUES)"
EOF
T_RECALL=$(($(date +%s) - t))
RP_R=$(params "$WORK/recall-rwkv4.log")
RP_G=$(params "$WORK/recall-gpt.log")

# ---- the report (scripts/results_report.sh, sourced: it reads the variables above) ----
T_ALL=$(($(date +%s) - T0))
# the timings and revision are those of the run that made the tables
if [ "$ONLY" = 1 ]; then
    . "$WORK/timings"
else
    printf 'T_JOBS=%s\nT_QUALITY=%s\nT_COST=%s\nT_RECALL=%s\nT_ALL=%s\nREV=%s\n' $T_JOBS $T_QUALITY $T_COST $T_RECALL $T_ALL "$REV" \
        >"$WORK/timings"
fi
. scripts/results_report.sh
sh scripts/results_tuned.sh
