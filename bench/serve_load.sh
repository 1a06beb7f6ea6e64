#!/bin/sh
# The load test of `rwkv serve` (needs node >= 18): loopback only, a fixed
# number of requests, every server it starts stopped, every run under a time
# limit. Writes docs/serve-load.md:
#   - p50/p99 time to first token, aggregate generated tokens/s and the
#     aggregate decode rate (serve_load.mjs) at LEVELS concurrent streams
#     (each stream sends REQUESTS completions of MAX_TOKENS tokens, one after
#     the other), ROUNDS times, the levels forward then backward;
#   - the time to first token of every turn of a TURNS-turn chat
#     conversation, with the state cache and without it (--state-cache-mb 0),
#     ROUNDS times each, alternating;
#   - the two ratios the server is built for, from the medians over the
#     rounds: the decode rate at 32 streams over the rate of one, and the last
#     turn's time to first token without the cache over with it.
# (Alternating spreads the load of other work on the machine over every
# configuration alike.)
#
#   sh bench/serve_load.sh MODEL [TOKENIZER]
# Environment: LEVELS (default 1,8,32,64), REQUESTS (2), MAX_TOKENS (32),
# TURNS (10), ROUNDS (2), THREADS (0 = all cores), OUT (docs/serve-load.md), SERVE_FLAGS (more
# serve flags, e.g. "--device cuda --precision bf16").
# A benchmark, not a test: nothing here fails on a slow result.
set -e
RWKV=${RWKV:-./rwkv}
MODEL=${1:?usage: sh bench/serve_load.sh MODEL [TOKENIZER]}
TOK=${2:-bytes}
LEVELS=${LEVELS:-1,8,32,64}
REQUESTS=${REQUESTS:-2}
MAX_TOKENS=${MAX_TOKENS:-32}
TURNS=${TURNS:-10}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-0}
SERVE_FLAGS=${SERVE_FLAGS:-}
OUT=${OUT:-docs/serve-load.md}
T=$(mktemp -d /tmp/rwkv_serve_load.XXXXXX)
SPID=""
trap '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null; rm -rf "$T"' EXIT

start() { # extra serve flags...
    # shellcheck disable=SC2086 # SERVE_FLAGS: more serve flags, split on spaces
    "$RWKV" serve -m "$MODEL" --tokenizer "$TOK" --port 0 --parallel 64 -t "$THREADS" $SERVE_FLAGS "$@" 2>"$T/log" &
    SPID=$!
    PORT=""
    for _ in $(seq 600); do
        PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/log")
        grep -q "ready" "$T/log" && return 0
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    echo "the server did not start: $(cat "$T/log")" >&2
    exit 1
}
stop() {
    kill "$SPID"
    wait "$SPID" || true
    SPID=""
}

start
timeout 3600 node bench/serve_load.mjs streams "$PORT" "$LEVELS" "$REQUESTS" "$MAX_TOKENS" "$ROUNDS" |
    tee "$T/streams.jsonl"
stop
for _ in $(seq "$ROUNDS"); do
    for cache in cached uncached; do
        if [ $cache = cached ]; then start; else start --state-cache-mb 0; fi
        timeout 3600 node bench/serve_load.mjs conversation "$PORT" "$TURNS" "$MAX_TOKENS" | tee -a "$T/$cache.jsonl"
        stop
    done
done

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
# the median over the rounds of the tokens/s at $1 streams, of the last turn's time to first token in $1
decode_rate() { grep "\"streams\":$1," "$T/streams.jsonl" | sed -E 's/.*"decode_tokens_per_s":([0-9.e+-]+).*/\1/' | median; }
last_ttft() { sed -E 's/.*,([0-9.e+-]+)\]\}$/\1/' "$1" | median; }
tps1=$(decode_rate 1)
tps32=$(decode_rate 32)
ttft_c=$(last_ttft "$T/cached.jsonl")
ttft_u=$(last_ttft "$T/uncached.jsonl")

info=$("$RWKV" info "$MODEL" 2>/dev/null | awk -F': *' '/^version/ {v = $2} /^n_layer/ {l = $2} /^n_embd/ {c = $2}
    /^n_vocab/ {V = $2} /^parameters/ {p = $2} /^dtype/ {d = $2}
    END {printf "%s, %s layers x %s, vocab %s, %s parameters, %s", v, l, c, V, p, d}')
{
    echo "# \`rwkv serve\` under load"
    echo
    echo "Written by \`bench/serve_load.sh\` on $(date -u +%Y-%m-%d): $(nproc) cores, \`-t $THREADS\`,"
    echo "model \`$(basename "$MODEL")\` ($info), tokenizer \`$TOK\`;"
    echo "load average at the end of the run: $(cut -d ' ' -f 1-3 /proc/loadavg) (other work on the machine shares its cores)."
    echo
    echo "## Concurrent streams"
    echo
    echo "Each stream sends $REQUESTS streamed completions of $MAX_TOKENS tokens one after the other;"
    echo "$ROUNDS rounds, the levels forward then backward."
    echo
    echo "*tokens/s*: all generated tokens over the wall time (prompts included); *decode tokens/s*: the"
    echo "median stream's tokens per second after its first token, times the number of streams."
    echo
    echo "| streams | round | requests | tokens | wall s | TTFT p50 s | TTFT p99 s | tokens/s | decode tokens/s |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    sed -E 's/.*"streams":([0-9]+),"round":([0-9]+),"requests":([0-9]+),"tokens":([0-9]+),"wall_s":([0-9.e+-]+),"ttft_p50_s":([0-9.e+-]+),"ttft_p99_s":([0-9.e+-]+),"tokens_per_s":([0-9.e+-]+),"decode_tokens_per_s":([0-9.e+-]+).*/| \1 | \2 | \3 | \4 | \5 | \6 | \7 | \8 | \9 |/' "$T/streams.jsonl" |
        sort -t '|' -k2,2n -k3,3n
    echo
    echo "## A $TURNS-turn conversation: time to first token of each turn, seconds"
    echo
    echo "A system message of about 3000 bytes (a text to discuss), then a short question per turn;"
    echo "each turn sends the whole conversation so far. The runs alternate: with the cache, without, ..."
    echo
    echo "| | $(seq -s ' | ' 1 "$TURNS") |"
    echo "|---|$(for _ in $(seq "$TURNS"); do printf -- '---:|'; done)"
    sed -E 's/.*\[(.*)\].*/| state cache | \1 |/; s/,/ | /g' "$T/cached.jsonl"
    sed -E 's/.*\[(.*)\].*/| no cache | \1 |/; s/,/ | /g' "$T/uncached.jsonl"
    echo
    echo "## The goals"
    echo
    echo "- Aggregate decoding at 32 concurrent streams over one stream (median decode tokens/s over the rounds):"
    echo "  $tps32 / $tps1 = $(awk -v a="$tps32" -v b="$tps1" 'BEGIN {printf "%.1f", a / b}')x (goal: at least 8x)."
    echo "- Time to first token of turn $TURNS without the state cache over with it (medians):"
    echo "  $ttft_u s / $ttft_c s = $(awk -v a="$ttft_u" -v b="$ttft_c" 'BEGIN {printf "%.1f", a / b}')x (goal: at least 10x)."
} >"$OUT"
echo "wrote $OUT"
