# The settings that scripts/results.sh, results_jobs.sh and results_tuned.sh
# share, and the two helpers that read job names and tables (sourced, not
# run). Reads QUICK (1 for the smoke run); sets the shapes, budgets and
# recipes of every experiment in docs/results.md.

# ---- the tuned comparison (§1): sweep, then three seeds of the best ------------
# byte-level King James Bible, windows of FCTX tokens, FB per step
FCTX=128 FB=8
# the two sizes, LAYERSxWIDTH (RWKV-4's; the GPT's MLP width matches its count)
FSIZES="s m"
fsize_shape() { case $1 in s) echo "2 128" ;; m) echo "4 192" ;; esac; }
# the sweep grid: learning rates (decimals: they name the jobs; peak; the final LR is peak/20), warm-up off/on
# (on: linear from 0.2 x LR over the first tenth of the steps), and two Adam
# settings: a = beta2 0.99 without weight decay (RWKV-4's recipe), b = beta2 0.95
# with weight decay 0.1 on the matrices (the usual GPT recipe)
FLRS="0.0005 0.001 0.002 0.005"
FWARMS="0 1"
FOPTS="a b"
FSEEDS="1 2 3"
if [ "${QUICK:-0}" = 1 ]; then
    FSIZES="s"
    fsize_shape() { echo "2 64"; }
    FSWEEP_STEPS=60 FSWEEP_EVAL=20 FSWEEP_VALW=16
    FFINAL_STEPS=150 FFINAL_EVAL=25 FFINAL_VALW=16
    FLRS="0.001 0.005"
    FSEEDS="1 2"
else
    # the sweep runs as many tokens as the single-recipe runs of §1b (1200
    # steps); the final runs ten times as many
    FSWEEP_STEPS=1200 FSWEEP_EVAL=200 FSWEEP_VALW=256
    FFINAL_STEPS=12000 FFINAL_EVAL=1000 FFINAL_VALW=512
fi
# a job table's final validation loss (its last row)
final_loss() { awk '!/^#/ && $1 != "tokens" { v = $2 } END { print v }' "$1"; }
# a job name's field: the value after -KEY (lr, w, o, seed, qfirst)
field() { echo "$1" | tr '-' '\n' | sed -n "s/^$2\\(.*\\)/\\1/p" | head -1; }
fopt_args() { case $1 in a) echo "--beta2 0.99 --weight-decay 0" ;; b) echo "--beta2 0.95 --weight-decay 0.1" ;; esac; }

# the GPT's MLP width at which its parameter count (position table of CTX rows
# included) matches RWKV-4's of L x C with a 4C channel mix:
# RWKV-4: 2VC + L(5C^2 + 2CF + 11C) + 4C; GPT: 2VC + TC + L(4C^2 + 2CF' + 9C + F') + 2C
gpt_ffn() { # L C CTX
    awk -v L=$1 -v C=$2 -v T=$3 'BEGIN { F = 4 * C;
        printf "%d", (L * (C * C + 2 * C * F + 2 * C) + 2 * C - T * C) / (L * (2 * C + 1)) + 0.5 }'
}

# ---- the recall probe (§3) and its prompt-order variant (§3b) -------------------
# models (both architectures, same shape and recipe): RKEYS keys, RVALUES
# values, 1..RPMAX pairs per example
RL=2 RC=64 RCTX=128 RB=32 RLR=2e-3 RWARM=200 RHEADS=4
RKEYS=256 RVALUES=10 RPMAX=20
# the order variant asks ROQ of the pairs (all when fewer), scored at ROPAIRS
ROQ=4 ROPAIRS="1,2,4,6,8,12,16,20,24,32"
ROSEEDS="1 2 3"
if [ "${QUICK:-0}" = 1 ]; then
    RSTEPS=300 RTOKENS=1500000 REX=50
    ROSEEDS="1"
else
    RSTEPS=3000 RTOKENS=14000000 REX=200
fi
