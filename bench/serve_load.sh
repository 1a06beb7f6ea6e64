#!/bin/sh
# The load test of `rwkv serve` (needs node >= 18): loopback only, a fixed
# number of requests, every server it starts stopped, every run under a time
# limit. Writes docs/serve-load.md:
#   - p50/p99 time to first token and aggregate generated tokens/s at
#     LEVELS concurrent streams (each stream sends REQUESTS completions of
#     MAX_TOKENS tokens, one after the other);
#   - the time to first token of every turn of a TURNS-turn chat
#     conversation, with the state cache and without it (--state-cache-mb 0).
#
#   sh bench/serve_load.sh MODEL [TOKENIZER]
# Environment: LEVELS (default 1,8,32,64), REQUESTS (2), MAX_TOKENS (32),
# TURNS (10), THREADS (0 = all cores), OUT (docs/serve-load.md).
# A benchmark, not a test: nothing here fails on a slow result.
set -e
RWKV=${RWKV:-./rwkv}
MODEL=${1:?usage: sh bench/serve_load.sh MODEL [TOKENIZER]}
TOK=${2:-bytes}
LEVELS=${LEVELS:-1,8,32,64}
REQUESTS=${REQUESTS:-2}
MAX_TOKENS=${MAX_TOKENS:-32}
TURNS=${TURNS:-10}
THREADS=${THREADS:-0}
OUT=${OUT:-docs/serve-load.md}
T=$(mktemp -d /tmp/rwkv_serve_load.XXXXXX)
SPID=""
trap '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null; rm -rf "$T"' EXIT

start() { # extra serve flags...
    "$RWKV" serve -m "$MODEL" --tokenizer "$TOK" --port 0 --parallel 64 -t "$THREADS" "$@" 2>"$T/log" &
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
timeout 1800 node bench/serve_load.mjs streams "$PORT" "$LEVELS" "$REQUESTS" "$MAX_TOKENS" | tee "$T/streams.jsonl"
timeout 1800 node bench/serve_load.mjs conversation "$PORT" "$TURNS" "$MAX_TOKENS" | tee "$T/cached.jsonl"
stop
start --state-cache-mb 0
timeout 1800 node bench/serve_load.mjs conversation "$PORT" "$TURNS" "$MAX_TOKENS" | tee "$T/uncached.jsonl"
stop

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
    echo "Each stream sends $REQUESTS streamed completions of $MAX_TOKENS tokens one after the other."
    echo
    echo "| streams | requests | tokens | wall s | TTFT p50 s | TTFT p99 s | tokens/s (all streams) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    sed -E 's/.*"streams":([0-9]+),"requests":([0-9]+),"tokens":([0-9]+),"wall_s":([0-9.e+-]+),"ttft_p50_s":([0-9.e+-]+),"ttft_p99_s":([0-9.e+-]+),"tokens_per_s":([0-9.e+-]+).*/| \1 | \2 | \3 | \4 | \5 | \6 | \7 |/' "$T/streams.jsonl"
    echo
    echo "## A $TURNS-turn conversation: time to first token of each turn"
    echo
    echo "| | $(seq -s ' | ' 1 "$TURNS") |"
    echo "|---|$(for _ in $(seq "$TURNS"); do printf -- '---:|'; done)"
    echo "| state cache | $(sed -E 's/.*\[(.*)\].*/\1/; s/,/ | /g' "$T/cached.jsonl") |"
    echo "| no cache | $(sed -E 's/.*\[(.*)\].*/\1/; s/,/ | /g' "$T/uncached.jsonl") |"
} >"$OUT"
echo "wrote $OUT"
