# The RWKV-7 subsection of docs/results.md §1: sourced by scripts/results.sh
# after the quality runs (it reads the sizes, the work directory and the
# helpers last_val, tps and settle, and $T_QUALITY). rwkv7_block prints the subsection
# between its markers; rwkv7_splice puts it into an existing report in place
# of the one there (or before §2), for RESULTS_RWKV7_ONLY=1.
R7_BEGIN="<!-- rwkv7 subsection: written by scripts/results.sh -->"
R7_END="<!-- end of the rwkv7 subsection -->"

# one corpus: the three final losses, RWKV-7 against each, the three tokens/s
quality_row7() { # name label
    r=$(last_val "$WORK/$1-rwkv4.val")
    s=$(last_val "$WORK/$1-rwkv7.val")
    g=$(last_val "$WORK/$1-gpt.val")
    awk -v n="$2" -v r="$r" -v s="$s" -v g="$g" -v tr="$(tps "$WORK/$1-rwkv4")" -v ts="$(tps "$WORK/$1-rwkv7")" \
        -v tg="$(tps "$WORK/$1-gpt")" 'BEGIN {
        printf "| %s | %.4f | %.4f | %.4f | %+.4f | %+.4f | %s / %s / %s |\n", n, r, s, g, s - r, s - g, tr, ts, tg }'
}
# where RWKV-7's final loss ends against another architecture's, in words
verdict7() { # name other-arch other-label
    o=$(last_val "$WORK/$1-$2.val")
    s=$(last_val "$WORK/$1-rwkv7.val")
    awk -v o="$o" -v s="$s" -v n="$3" 'BEGIN { d = s - o; if (d < 0) d = -d;
        if (d < 0.02) printf "within 0.02 nats/byte of %s", n;
        else printf "%.3f nats/byte %s %s", d, (s < o ? "below" : "above"), n }'
}
# how this subsection's runs relate to the rest of the report
rwkv7_provenance() {
    if [ "$RWKV7_ONLY" = 1 ] && [ "$QUICK" = 1 ]; then
        cat <<EOF
These runs are not those of the table above: they come from a separate, smaller run of this
comparison alone (\`RESULTS_RWKV7_ONLY=1 RESULTS_QUICK=1 sh scripts/results.sh\`, revision \`$REV\`,
$(date -u +%Y-%m-%d), $T_QUALITY s), in which RWKV-4 and the GPT were trained again next to RWKV-7 at
the same setting, so that all three saw the same tokens. It is the smallest setting the report uses
(RESULTS_QUICK: $STEPS steps instead of 1200, validation on $VALW windows every $EVAL steps); the
losses are early-training losses, not comparable with the table above.
EOF
    elif [ "$RWKV7_ONLY" = 1 ]; then
        cat <<EOF
These runs come from a separate run of this comparison alone (\`RESULTS_RWKV7_ONLY=1 sh
scripts/results.sh\`, revision \`$REV\`, $(date -u +%Y-%m-%d), $T_QUALITY s) at the full setting of the
table above: RWKV-4 and the GPT were trained again next to RWKV-7 on the same windows in the same
order, so all three saw the same tokens (the runs are deterministic: where the code has not
changed since the table's run, RWKV-4's and the GPT's losses equal the table's).
EOF
    else
        echo "The same runs as the table above: RWKV-7 trained at the same time, on the same tokens."
    fi
}
rwkv7_block() {
    cat <<EOF
$R7_BEGIN
### RWKV-7 at equal parameters and tokens

$(rwkv7_provenance)

$L layers × $C, context $CTX, batch $B, $STEPS steps = $((STEPS * TOKENS_PER_STEP)) training tokens, the same
windows in the same order for the three. RWKV-7 (\`--arch rwkv7\`, docs/training-rwkv7.md: the official
x070 init, L2Wrap, \`att.w0\` at 2 × LR) has heads of 64 and the LoRA ranks of its default rule;
its channel-mix width is $R7FFN instead of $((4 * C)), so that its count matches RWKV-4's: $P_R7
parameters (RWKV-4 $P_RWKV, GPT $P_GPT).

\`\`\`sh
$QUALITY_CMD
\`\`\`

| corpus | RWKV-4 final val loss | RWKV-7 | GPT | RWKV-7 − RWKV-4 | RWKV-7 − GPT | tokens/s RWKV-4 / RWKV-7 / GPT |
|---|---|---|---|---|---|---|
$( [ $HAVE_TS = 1 ] && quality_row7 ts "Tiny Shakespeare" )
$(quality_row7 kjv "King James Bible")

(tokens/s: one thread each, the three runs at the same time on the shared machine — noisy.)

$( [ $HAVE_TS = 1 ] && echo '![Tiny Shakespeare, three architectures](results/quality7_ts.png)' )

![King James Bible, three architectures](results/quality7_kjv.png)

What it shows: RWKV-7 ends $( [ $HAVE_TS = 1 ] && echo "$(verdict7 ts rwkv4 RWKV-4) and $(verdict7 ts gpt "the GPT") on Tiny
Shakespeare, and " )$(verdict7 kjv rwkv4 RWKV-4) and $(verdict7 kjv gpt "the GPT") on the King James Bible. RWKV-7 is within 0.05
of its final loss after $(settle "$WORK/kjv-rwkv7.val") tokens on the Bible (RWKV-4 after $(settle "$WORK/kjv-rwkv4.val")).
The caveats of the comparison above hold, and one more: RWKV-7 trains with the LR and schedule the
three share (LR $LR → $LR_FINAL, no warm-up, no weight decay), not the official RWKV-7 schedule, so
one seed at this size says how the two RWKV versions start under one recipe, not where they end.
$R7_END
EOF
}
# replaces the subsection in $DOC (or inserts it before §2 when there is none)
rwkv7_splice() {
    block=$(rwkv7_block)
    tmp="$DOC.tmp"
    BLOCK="$block" awk -v b="$R7_BEGIN" -v e="$R7_END" '
        $0 == b { skip = 1; if (!done) { print ENVIRON["BLOCK"]; done = 1 }; next }
        skip && $0 == e { skip = 0; next }
        skip { next }
        /^## 2\. / && !done { print ENVIRON["BLOCK"]; print ""; done = 1 }
        { print }' "$DOC" >"$tmp"
    mv "$tmp" "$DOC"
}
