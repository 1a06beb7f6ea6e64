#!/bin/sh
# Plots a training run's validation loss against wall-clock minutes.
#   scripts/loss_curve.sh RUN_DIR OUT.png "title"
# Reads RUN_DIR/train.jsonl (the val_loss lines); needs gnuplot (gnuplot-nox).
set -e
run=$1 out=$2 title=${3:-validation loss}
[ -f "$run/train.jsonl" ] || { echo "loss_curve: $run/train.jsonl not found" >&2; exit 1; }
command -v gnuplot >/dev/null 2>&1 || { echo "loss_curve: gnuplot is missing (apt-get install gnuplot-nox)" >&2; exit 1; }
data=$(mktemp)
trap 'rm -f "$data"' EXIT
# step, minutes, val_loss from the lines that carry a val_loss
sed -n 's/.*"step":\([0-9]*\),.*"elapsed_s":\([0-9.]*\).*"val_loss":\([0-9.]*\).*/\1 \2 \3/p' "$run/train.jsonl" |
    awk '{ printf "%s %.3f %s\n", $1, $2 / 60, $3 }' >"$data"
gnuplot <<GP
set terminal pngcairo size 760,440 font "DejaVu Sans,10"
set output "$out"
set title "$title"
set xlabel "wall-clock minutes"
set ylabel "validation loss (nats/byte)"
set grid
set key top right
plot "$data" using 2:3 with linespoints pt 7 ps 0.5 lw 2 title "validation loss", 1.8 with lines dt 2 lc rgb "gray" title "1.8"
GP
echo "wrote $out"
