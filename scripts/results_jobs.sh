#!/bin/sh
# The training jobs of docs/results.md's tuned comparison (§1) and of the
# prompt-order recall probe (§3b): each job is one run of `rwkv train` (and,
# for the probe, its data and scoring) that writes one small table,
# DATA/STAGE/NAME.tsv, when it has finished. A job whose table exists is never
# run again, and an interrupted one resumes from its last checkpoint, so the
# hours these take can be spread over many sittings and machines: the tables
# are kept in the repository (docs/results/data) and each records the machine,
# revision and command that made it.
#
#   sh scripts/results_jobs.sh run [STAGE...]    run the pending jobs of the stages
#   sh scripts/results_jobs.sh list [STAGE...]   print them
#
# Stages, in order (default: all three):
#   sweep   each architecture and size trained with every recipe of the grid
#           (scripts/results_config.sh) on RESULTS_SWEEP_STEPS; where the best
#           learning rate is at an end of the grid the grid is extended one step
#           (x2 or /2, within [1e-4, 0.05]) with that recipe, until it is not
#   final   the best recipe of each architecture and size (lowest final
#           validation loss of the sweep), once per seed, ten times as many
#           tokens; pending until that sweep is complete
#   order   the recall probe with its queries (ROQ of them) after the pairs and
#           announced before them, both architectures, each seed
#
# Environment: RESULTS_QUICK=1 (the smoke settings; data in
# runs/results-quick/data), RESULTS_DATA=DIR, RESULTS_WORK=DIR (run
# directories; default runs/results-jobs), RESULTS_JOBS=N (jobs at a time;
# default the cores), RESULTS_THREADS=N (threads of each job; default 1: the
# losses depend on it, the tables say which), RESULTS_SIZES="s m" (the sizes
# of the tuned comparison to plan; default both), RWKV and PROBE (the programs),
# RESULTS_REV (the revision the tables name; default git describe). The corpus
# is the King James Bible (scripts/corpus.sh), or RESULTS_CORPUS=FILE, a token
# file of it made by `rwkv tokenize`.
set -e
cd "$(dirname "$0")/.."
QUICK=${RESULTS_QUICK:-0}
. scripts/results_config.sh
RWKV=${RWKV:-./rwkv}
PROBE=${PROBE:-build/bench/recall_probe}
if [ "$QUICK" = 1 ]; then
    DATA=${RESULTS_DATA:-runs/results-quick/data}
    WORK=${RESULTS_WORK:-runs/results-quick/jobs}
else
    DATA=${RESULTS_DATA:-docs/results/data}
    WORK=${RESULTS_WORK:-runs/results-jobs}
fi
PAR=${RESULTS_JOBS:-$(nproc)}
THREADS=${RESULTS_THREADS:-1}
FSIZES=${RESULTS_SIZES:-$FSIZES}
die() { echo "results_jobs: $*" >&2; exit 1; }

# ---- job names ------------------------------------------------------------------
# sweep-SIZE-ARCH-lrLR-wW-oO, final-SIZE-ARCH-lrLR-wW-oO-seedN, order-ARCH-qfirstQ-seedN
# (LR a decimal: the name's fields are split at '-')
# the sweep tables of one architecture and size, best first: "loss name"
sweep_ranked() { # size arch
    for f in "$DATA"/sweep/sweep-$1-$2-*.tsv; do
        [ -f "$f" ] && echo "$(final_loss "$f") $(basename "$f" .tsv)"
    done | sort -g
}

# ---- the plan: one line per pending job, "stage name" -----------------------------
plan_sweep() {
    for s in $FSIZES; do for a in rwkv4 gpt; do
        grid_done=1
        for lr in $FLRS; do for w in $FWARMS; do for o in $FOPTS; do
            n=sweep-$s-$a-lr$lr-w$w-o$o
            [ -f "$DATA/sweep/$n.tsv" ] || { echo "sweep $n"; grid_done=0; }
        done; done; done
        [ $grid_done = 1 ] || continue
        # the best learning rate at an end of those tried with its recipe: one step further
        best=$(sweep_ranked $s $a | head -1 | cut -d' ' -f2)
        lr=$(field "$best" lr) w=$(field "$best" w) o=$(field "$best" o)
        tried=$(ls "$DATA"/sweep/ | sed -n "s/^sweep-$s-$a-lr\\(.*\\)-w$w-o$o\\.tsv$/\\1/p" | sort -g)
        lo=$(echo "$tried" | head -1) hi=$(echo "$tried" | tail -1)
        next=""
        if [ "$lr" = "$hi" ]; then next=$(awk -v x=$lr 'BEGIN { if (x * 2 <= 0.05) printf "%g", x * 2 }'); fi
        if [ "$lr" = "$lo" ]; then next=$(awk -v x=$lr 'BEGIN { if (x / 2 >= 1e-4) printf "%g", x / 2 }'); fi
        if [ -n "$next" ]; then echo "sweep sweep-$s-$a-lr$next-w$w-o$o"; fi
    done; done
}
# "" when the sweep of size/arch has pending jobs, else the best job's name
sweep_best() { # size arch
    if plan_sweep | grep -q "^sweep sweep-$1-$2-"; then return 0; fi
    sweep_ranked $1 $2 | head -1 | cut -d' ' -f2
}
# seed by seed, so that an interrupted run leaves whole seeds of both architectures
plan_final() {
    for s in $FSIZES; do
        best_rwkv4=$(sweep_best $s rwkv4) best_gpt=$(sweep_best $s gpt)
        for seed in $FSEEDS; do for a in rwkv4 gpt; do
            eval best=\$best_$a
            [ -n "$best" ] || { [ $seed != 1 ] || echo "results_jobs: final $s/$a waits for its sweep" >&2; continue; }
            n=final${best#sweep}-seed$seed
            [ -f "$DATA/final/$n.tsv" ] || echo "final $n"
        done; done
    done
}
plan_order() {
    for seed in $ROSEEDS; do for q in 0 1; do for a in rwkv4 gpt; do
        n=order-$a-qfirst$q-seed$seed
        [ -f "$DATA/order/$n.tsv" ] || echo "order $n"
    done; done; done
}

# ---- one job ----------------------------------------------------------------------
machine() {
    cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
    echo "${cpu:-unknown CPU}, $(nproc) cores ($(uname -m))"
}
# the header every table starts with
header() { # name command
    printf '# job %s\n# command %s\n# machine %s\n# revision %s, %s\n' "$1" "$2" "$(machine)" \
        "${RESULTS_REV:-$(git describe --always --dirty 2>/dev/null || echo unknown)}" "$(date -u +%Y-%m-%dT%H:%MZ)"
}
# trains into $WORK/NAME, resuming an interrupted run; the arguments are train's
train_resumable() { # name args...
    out=$WORK/$1
    shift
    if ls "$out"/train_state-*.bin >/dev/null 2>&1; then
        "$RWKV" train --resume "$out" --threads $THREADS 2>>"$out.log"
    else
        rm -rf "$out"
        "$RWKV" train "$@" --out "$out" 2>"$out.log"
    fi
}
# the run's parameters, mean tokens/s after step 10 and validation curve as a table
train_table() { # name command stage
    run=$WORK/$1
    params=$(sed -n 's/^model: .*, \([0-9]*\) parameters.*/\1/p' "$run.log" | head -1)
    tps=$(sed -n 's/.*"step":\([0-9]*\),.*"tokens_per_s":\([0-9.]*\).*/\1 \2/p' "$run/train.jsonl" |
        awk '$1 > 10 { s += $2; n++ } END { if (n) printf "%.0f", s / n; else print 0 }')
    {
        header "$1" "$2"
        echo "# parameters $params, tokens/s $tps ($THREADS thread(s))"
        echo "# data $(sed -n 's/^data: //p' "$run.log" | head -1)"
        printf 'tokens\tval_loss\telapsed_s\n'
        sed -n 's/.*"step":\([0-9]*\),.*"elapsed_s":\([0-9.]*\),"val_loss":\([0-9.eE+-]*\).*/\1 \2 \3/p' \
            "$run/train.jsonl" | awk -v k=$((FB * FCTX)) '{ printf "%d\t%s\t%s\n", $1 * k, $3, $2 }'
    } >"$DATA/$3/$1.tsv.tmp"
    mv "$DATA/$3/$1.tsv.tmp" "$DATA/$3/$1.tsv"
}
run_train_job() { # stage name
    set -- $1 $2 $(echo "$2" | cut -d- -f2,3 | tr - ' ')
    stage=$1 name=$2 size=$3 arch=$4
    lr=$(field "$name" lr) w=$(field "$name" w) o=$(field "$name" o) seed=$(field "$name" seed)
    set -- $(fsize_shape $size)
    L=$1 C=$2
    if [ $stage = sweep ]; then steps=$FSWEEP_STEPS ev=$FSWEEP_EVAL valw=$FSWEEP_VALW seed=1
    else steps=$FFINAL_STEPS ev=$FFINAL_EVAL valw=$FFINAL_VALW; fi
    extra=""
    if [ $arch = gpt ]; then extra="--ffn $(gpt_ffn $L $C $FCTX) --heads $((C >= 64 ? C / 64 : 1))"; fi
    warm=0
    if [ "$w" = 1 ]; then warm=$((steps / 10)); fi
    lrf=$(awk -v x=$lr 'BEGIN { printf "%g", x / 20 }')
    args="--arch $arch --layers $L --embd $C $extra --ctx $FCTX --batch $FB --steps $steps --lr $lr --lr-final $lrf \
--warmup-steps $warm $(fopt_args $o) --eval-every $ev --val-windows $valw --seed $seed --threads $THREADS --no-peak"
    # checkpoints every tenth of the run, so an interruption loses little
    train_resumable $name --data "$CORPUS" $args --save-every $((steps / 10)) --keep 1 --print-every 100 ||
        { tail -3 "$WORK/$name.log" >&2; return 1; }
    train_table $name "rwkv train --data KJV_TOKENS $args" $stage
}
run_order_job() { # name
    name=$1 arch=$(echo "$1" | cut -d- -f2) q=$(field "$1" qfirst) seed=$(field "$1" seed)
    spec="--keys $RKEYS --values $RVALUES --queries $ROQ --question-first $q"
    mkdir -p "$WORK/$name.data"
    tok=$WORK/$name.data/recall.tok
    [ -s "$tok" ] || "$PROBE" gen --out "$tok" --tokens $RTOKENS --pairs-min 1 --pairs-max $RPMAX $spec --seed $seed
    heads=""
    if [ $arch = gpt ]; then heads="--heads $RHEADS"; fi
    args="--arch $arch $heads --layers $RL --embd $RC --ctx $RCTX --batch $RB --steps $RSTEPS --lr $RLR --lr-final $RLR \
--warmup-steps $RWARM --eval-every $((RSTEPS / 5)) --val-windows 16 --seed $seed --threads $THREADS --no-peak"
    train_resumable $name --data "$tok" $args --save-every $((RSTEPS / 10)) --keep 1 --print-every 100 ||
        { tail -3 "$WORK/$name.log" >&2; return 1; }
    eval="recall_probe eval --arch $arch --model MODEL --pairs $ROPAIRS $spec --examples $REX --seed $((seed + 1000))"
    {
        header "$name" "recall_probe gen --tokens $RTOKENS --pairs-min 1 --pairs-max $RPMAX $spec --seed $seed; rwkv train $args; $eval"
        "$PROBE" eval --arch $arch --model "$WORK/$name/model.safetensors" --pairs $ROPAIRS $spec --examples $REX \
            --seed $((seed + 1000)) --threads 1
    } >"$DATA/order/$name.tsv.tmp"
    mv "$DATA/order/$name.tsv.tmp" "$DATA/order/$name.tsv"
}
run_one() { # "stage name"
    set -- $1
    mkdir -p "$DATA/$1" "$WORK"
    t=$(date +%s)
    if [ $1 = order ]; then run_order_job $2; else run_train_job $1 $2; fi
    echo "results_jobs: $2 done ($(($(date +%s) - t)) s)" >&2
}

# ---- main -----------------------------------------------------------------------
cmd=${1:-run}
[ $# -gt 0 ] && shift
if [ "$cmd" = one ]; then run_one "$1"; exit; fi
stages=${*:-sweep final order}
for s in $stages; do
    case $s in sweep | final | order) ;; *) die "unknown stage '$s' (sweep, final or order)" ;; esac
done
plan() { for s in $stages; do plan_$s; done; }
case $cmd in
list) plan ;;
run)
    for f in "$RWKV" "$PROBE"; do [ -x "$f" ] || die "$f is missing (make all build/bench/recall_probe)"; done
    CORPUS=${RESULTS_CORPUS:-$WORK/kjv.tok}
    if [ "$stages" != order ] && [ ! -s "$CORPUS" ]; then
        mkdir -p "$WORK"
        . scripts/corpus.sh
        kjv_corpus "$WORK/kjv.txt"
        "$RWKV" tokenize --out "$CORPUS" "$WORK/kjv.txt" 2>/dev/null
    fi
    export CORPUS
    # the sweep grows at its ends and the final runs wait for it: plan again until nothing is left
    failed=0
    while :; do
        todo=$(plan)
        [ -n "$todo" ] || break
        echo "results_jobs: $(echo "$todo" | wc -l) jobs, $PAR at a time" >&2
        echo "$todo" | xargs -P "$PAR" -I{} sh scripts/results_jobs.sh one "{}" || failed=1
        [ $failed = 0 ] || die "some jobs failed (their logs: $WORK/NAME.log)"
    done
    ;;
*) die "usage: sh scripts/results_jobs.sh run|list [sweep|final|order]..." ;;
esac
