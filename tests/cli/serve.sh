#!/bin/sh
# End-to-end tests of `rwkv serve` over loopback with curl: every endpoint,
# streaming (server-sent events ending in [DONE]), usage counts, errors (400
# for bad JSON and bad fields, 401, 404, 405, 413), /health 503 while the
# model loads, cross-talk (64 concurrent streams with different seeds, each
# equal to the same request served alone), the state cache (a cached
# continuation gives the same tokens as an uncached one), a client that
# disconnects (its generation is cancelled), the request timeout, malformed
# input never stopping the server; the GPT baseline through its KV caches.
# Every server started here is stopped; every request has a time limit.
#   sh tests/cli/serve.sh ./rwkv
RWKV=${1:-./rwkv}
case $RWKV in /*) ;; *) RWKV=$(pwd)/$RWKV ;; esac
T=$(mktemp -d /tmp/rwkv_serve.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
failed=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }
skip() { echo "SKIP $1: $2"; }

if ! command -v curl >/dev/null 2>&1; then
    skip "serve" "curl is not installed"
    exit 0
fi

# start_server NAME ARGS...: starts rwkv serve on a free port; sets PORT and
# SPID (the log is $T/NAME.log). Waits until it listens (not until ready).
start_server() {
    name=$1
    shift
    "$RWKV" serve --port 0 "$@" 2>"$T/$name.log" &
    SPID=$!
    PIDS="$PIDS $SPID"
    PORT=""
    for _ in $(seq 100); do
        PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/$name.log")
        [ -n "$PORT" ] && return 0
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}
wait_ready() { # seconds
    for _ in $(seq $(($1 * 10))); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/health")" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}
stop_server() {
    kill "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    STOP_RC=$?
}

# req METHOD PATH [BODY] [extra curl args...]: status in $CODE, body in $T/body
req() {
    method=$1 path=$2 body=${3:-}
    shift 2
    [ $# -gt 0 ] && shift
    if [ -n "$body" ]; then
        CODE=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 60 -X "$method" -H 'Content-Type: application/json' \
            --data-binary "$body" "$@" "http://127.0.0.1:$PORT$path")
    else
        CODE=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 60 -X "$method" "$@" "http://127.0.0.1:$PORT$path")
    fi
}
expect() { # NAME CODE PATTERN: the last request's status and a pattern of its body
    if [ "$CODE" != "$2" ]; then fail "$1" "status $CODE, expected $2: $(head -c 300 "$T/body")"
    elif ! grep -q -- "$3" "$T/body"; then fail "$1" "body lacks '$3': $(head -c 300 "$T/body")"
    else pass "$1"; fi
}
# the concatenated text of a completion or chat reply, streamed or not (JSON-escaped)
reply_text() {
    grep -o -E '"(text|content)":"([^"\\]|\\.)*"' "$1" | sed -E 's/^"(text|content)":"//; s/"$//' | tr -d '\n'
}

"$RWKV" init --arch rwkv7 --layers 2 --embd 64 --vocab 256 --emb-scale 0.5 --seed 3 --out "$T/m7.safetensors" >/dev/null 2>&1 ||
    { fail "serve" "rwkv init failed"; exit 1; }

# ---- /health while loading: the tokenizer is read from a pipe that stays closed ----
mkfifo "$T/tok.fifo"
if start_server loading -m "$T/m7.safetensors" --tokenizer "$T/tok.fifo"; then
    req GET /health
    expect "health 503 while loading" 503 '"loading"'
    req POST /v1/completions '{"prompt":"a"}'
    expect "completions 503 while loading" 503 '"error"'
    echo "not a tokenizer" >"$T/tok.fifo"
    wait "$SPID" 2>/dev/null
    rc=$?
    if [ $rc -eq 1 ] && grep -q "^rwkv: " "$T/loading.log"; then pass "a load failure ends the server with one error line"
    else fail "load failure" "exit status $rc: $(cat "$T/loading.log")"; fi
else
    fail "health while loading" "the server did not start: $(cat "$T/loading.log")"
fi

# ---- one server for the API tests ------------------------------------------
if ! start_server main -m "$T/m7.safetensors" --api-key sekret --parallel 64 --max-tokens 10000000 \
    --max-body-kb 64 || ! wait_ready 20; then
    fail "serve" "the server did not become ready: $(cat "$T/main.log")"
    exit 1
fi
auth() { req "$1" "$2" "${3:-}" -H "Authorization: Bearer sekret"; }

req GET /health
expect "health" 200 '"ok"'
req GET /
expect "chat page" 200 '/v1/chat/completions'
req GET /metrics
expect "metrics" 200 '^rwkv_time_to_first_token_seconds_bucket{le="+Inf"}'
auth GET /v1/models
expect "models" 200 '"id":"m7.safetensors"'
req GET /v1/models
expect "401 without a key" 401 '"invalid_api_key"'
req GET /v1/models "" -H "Authorization: Bearer sekreT"
expect "401 with a wrong key" 401 '"authentication_error"'
auth GET /v1/nothing
expect "404" 404 '"error"'
auth GET /v1/completions
expect "405" 405 '"error"'

auth POST /v1/completions '{"prompt":"Hello there","max_tokens":7,"temperature":0}'
expect "completion" 200 '"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18'
grep -q '"object":"text_completion"' "$T/body" && grep -q '"finish_reason":"length"' "$T/body" &&
    pass "completion fields" || fail "completion fields" "$(cat "$T/body")"
cp "$T/body" "$T/greedy1"
auth POST /v1/completions '{"prompt":"Hello there","max_tokens":7,"temperature":0}'
if [ "$(reply_text "$T/body")" = "$(reply_text "$T/greedy1")" ]; then pass "greedy repeats"
else fail "greedy repeats" "$(reply_text "$T/body") vs $(reply_text "$T/greedy1")"; fi

auth POST /v1/completions '{"prompt":"Hello there","max_tokens":9,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
if [ "$CODE" = 200 ] && [ "$(tail -n 2 "$T/body" | head -n 1)" = "data: [DONE]" ] &&
    grep -q '"usage":{"prompt_tokens":11,"completion_tokens":9' "$T/body" &&
    case $(reply_text "$T/body") in "$(reply_text "$T/greedy1")"*) true ;; *) false ;; esac; then
    pass "completion stream"
else fail "completion stream" "$(head -c 600 "$T/body")"; fi

CHAT='{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi!"}],"max_tokens":6,"seed":11'
auth POST /v1/chat/completions "$CHAT}"
expect "chat" 200 '"message":{"role":"assistant","content":'
cp "$T/body" "$T/chat1"
auth POST /v1/chat/completions "$CHAT,\"stream\":true}"
if [ "$CODE" = 200 ] && grep -q '"delta":{"role":"assistant","content":""}' "$T/body" &&
    grep -q '"object":"chat.completion.chunk"' "$T/body" && [ "$(tail -n 2 "$T/body" | head -n 1)" = "data: [DONE]" ] &&
    [ "$(reply_text "$T/body")" = "$(reply_text "$T/chat1")" ]; then
    pass "chat stream (same seed, same reply)"
else fail "chat stream" "$(head -c 600 "$T/body") vs $(cat "$T/chat1")"; fi
# "System: Be brief.\n\nUser: Hi!\n\nAssistant:" in bytes
grep -q '"prompt_tokens":40' "$T/chat1" && pass "chat prompt format" || fail "chat prompt format" "$(cat "$T/chat1")"

# a reply may hold any byte, NUL included; a client sends it back in the next turn
auth POST /v1/chat/completions '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b\u0000c"},{"role":"user","content":[{"type":"text","text":"d"}]}],"max_tokens":2}'
expect "chat history with a NUL byte and content parts" 200 '"prompt_tokens":44'

# stop strings: never part of the output, end the reply (a letter that no
# JSON escape contains, from the greedy reply)
r=$(reply_text "$T/greedy1")
stop=$(printf %s "$r" | grep -o '[g-mo-qsv-zG-Z]' | head -n 1)
if [ -z "$stop" ]; then skip "stop string" "no plain letter in the greedy reply"
else
    auth POST /v1/completions "{\"prompt\":\"Hello there\",\"max_tokens\":7,\"temperature\":0,\"stop\":[\"$stop\"]}"
    if grep -q '"finish_reason":"stop"' "$T/body" && [ "$(reply_text "$T/body")" = "${r%%"$stop"*}" ]
    then pass "stop string"; else fail "stop string" "stop '$stop' in '$r': $(cat "$T/body")"; fi
fi

# ---- bad requests: 400 with an OpenAI error object naming the field --------
bad() { # NAME BODY PARAM
    auth POST /v1/completions "$2"
    expect "400 $1" 400 "\"param\":$3"
}
bad "bad JSON" '{"prompt": "a",' null
bad "not an object" '[1,2]' null
bad "no prompt" '{"max_tokens":3}' '"prompt"'
bad "empty prompt" '{"prompt":""}' '"prompt"'
bad "temperature type" '{"prompt":"a","temperature":"hot"}' '"temperature"'
bad "temperature range" '{"prompt":"a","temperature":3}' '"temperature"'
bad "top_p range" '{"prompt":"a","top_p":1.5}' '"top_p"'
bad "top_k negative" '{"prompt":"a","top_k":-1}' '"top_k"'
bad "max_tokens negative" '{"prompt":"a","max_tokens":-5}' '"max_tokens"'
bad "max_tokens over the cap" '{"prompt":"a","max_tokens":10000001}' '"max_tokens"'
bad "stop type" '{"prompt":"a","stop":5}' '"stop"'
bad "n > 1" '{"prompt":"a","n":2}' '"n"'
bad "logprobs" '{"prompt":"a","logprobs":3}' '"logprobs"'
bad "token id outside the vocabulary" '{"prompt":[1,2,999]}' '"prompt"'
bad "duplicate key" '{"prompt":"a","prompt":"b"}' null
auth POST /v1/chat/completions '{"messages":[]}'
expect "400 empty messages" 400 '"param":"messages"'
auth POST /v1/chat/completions '{"messages":[{"role":"wizard","content":"x"}]}'
expect "400 bad role" 400 '"param":"messages"'
head -c 70000 /dev/zero | tr '\0' 'a' >"$T/big"
CODE=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer sekret" \
    --data-binary @"$T/big" "http://127.0.0.1:$PORT/v1/completions")
expect "413 body too large" 413 '"error"'

# ---- malformed input never stops the server --------------------------------
i=0
for body in '' '{' '"' '{"prompt":null}' '{"prompt":{}}' '{"prompt":[[1]]}' '{"prompt":[1,"a"]}' \
    '{"messages":"x"}' '{"prompt":"a","seed":1e400}' '{"prompt":"a","max_tokens":1e20}' \
    '{"prompt":"\u0000\ud800x"}' '{"prompt":"a","stream":"yes"}' '{"prompt":"a","stream_options":3}' \
    "$(head -c 300 /dev/urandom | tr -d '\0')" "$(awk 'BEGIN{for(i=0;i<3000;i++)printf "["}')"; do
    for path in /v1/completions /v1/chat/completions; do
        c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -H "Authorization: Bearer sekret" \
            --data-binary "$body" "http://127.0.0.1:$PORT$path")
        case $c in 200|400) ;; *) i=$((i + 1)); echo "  body $(printf %s "$body" | head -c 40) -> $c" ;; esac
    done
done
req GET /health
if [ "$i" -eq 0 ] && [ "$CODE" = 200 ]; then pass "malformed bodies get 400s, the server lives"
else fail "malformed bodies" "$i unexpected statuses, health $CODE"; fi

# ---- cross-talk: 64 concurrent streams == each served alone -----------------
N=64
for k in $(seq $N); do
    printf '{"prompt":"Story %d: once","max_tokens":24,"temperature":1.0,"top_p":0.9,"seed":%d,"stream":true}' \
        "$k" "$((k * 7919))" >"$T/x$k.json"
done
CPIDS=""
for k in $(seq $N); do
    curl -s -N --max-time 120 -H "Authorization: Bearer sekret" --data-binary @"$T/x$k.json" \
        "http://127.0.0.1:$PORT/v1/completions" >"$T/together$k" &
    CPIDS="$CPIDS $!"
done
wait $CPIDS
bad_k=""
for k in $(seq $N); do
    auth POST /v1/completions "$(sed 's/,"stream":true//' "$T/x$k.json")"
    a=$(reply_text "$T/together$k") b=$(reply_text "$T/body")
    if [ -z "$b" ] || [ "$a" != "$b" ] || [ "$(tail -n 2 "$T/together$k" | head -n 1)" != "data: [DONE]" ]; then
        bad_k="$bad_k $k"
    fi
done
if [ -z "$bad_k" ]; then pass "cross-talk: $N concurrent streams equal the same requests alone"
else fail "cross-talk" "streams$bad_k differ from their solo runs"; fi
# ---- continuous batching: requests that overlap are decoded together -------
# steps_over_4: decode steps so far that took more than 4 streams at once.
steps_over_4() {
    curl -s --max-time 20 "http://127.0.0.1:$PORT/metrics" | awk '
        /^rwkv_decode_batch_size_bucket\{le="4"\}/ {a = $2} /^rwkv_decode_batch_size_count/ {b = $2}
        END {print b - a}'
}
# One curl opens all 32 connections at once and each asks for 1500 tokens, so
# the requests overlap on any machine; a burst is tried up to three times
# because a loaded machine may still serve one before the next arrives (a
# scheduler that never batches fails all three).
set --
for k in $(seq 32); do
    set -- "$@" -s --max-time 120 -o /dev/null -H "Authorization: Bearer sekret" \
        --data-binary "{\"prompt\":\"Burst $k\",\"max_tokens\":1500,\"seed\":$k}" \
        "http://127.0.0.1:$PORT/v1/completions"
    [ "$k" -lt 32 ] && set -- "$@" --next
done
batched=0
for _ in 1 2 3; do
    before=$(steps_over_4)
    curl -s -Z --parallel-immediate --parallel-max 32 "$@" 2>/dev/null
    after=$(steps_over_4)
    [ -n "$before" ] && [ -n "$after" ] && [ "$after" -gt "$before" ] && { batched=1; break; }
done
req GET /metrics
if [ $batched -eq 1 ] && grep -q '^rwkv_decode_batch_size_bucket{le="32"}' "$T/body"; then
    pass "concurrent requests were decoded in batches of more than 4"
else fail "batching" "no decode step took more than 4 of 32 concurrent requests: $(steps_over_4)"; fi

# ---- a client that disconnects cancels its generation ----------------------
before=$(curl -s "http://127.0.0.1:$PORT/metrics" | sed -n 's/^rwkv_cancelled_total //p')
curl -s -N --max-time 1 -H "Authorization: Bearer sekret" \
    --data-binary '{"prompt":"endless","max_tokens":10000000,"stream":true}' "http://127.0.0.1:$PORT/v1/completions" >/dev/null
curl -s --max-time 1 -H "Authorization: Bearer sekret" \
    --data-binary '{"prompt":"endless","max_tokens":10000000}' "http://127.0.0.1:$PORT/v1/completions" >/dev/null
ok=0
for _ in $(seq 50); do
    curl -s "http://127.0.0.1:$PORT/metrics" >"$T/body"
    after=$(sed -n 's/^rwkv_cancelled_total //p' "$T/body")
    active=$(sed -n 's/^rwkv_active_requests //p' "$T/body")
    if [ "$after" = "$((before + 2))" ] && [ "$active" = 0 ]; then ok=1; break; fi
    sleep 0.1
done
[ $ok = 1 ] && pass "disconnected clients cancel their generations" ||
    fail "disconnect" "cancelled $before -> $after, active $active"

stop_server
[ "$STOP_RC" = 0 ] && grep -q "stopping" "$T/main.log" && pass "SIGTERM stops the server cleanly" ||
    fail "stop" "exit status $STOP_RC"

# ---- the state cache: a cached continuation == an uncached one --------------
P='{"prompt":"The cache holds the state at the end of this prompt.","max_tokens":4,"temperature":0}'
Q1='The cache holds the state at the end of this prompt.!'
Q2="The cache holds the state at the end of this prompt. $(awk 'BEGIN{for(i=0;i<40;i++)printf "and more words "}')"
for cache in 64 0; do
    start_server "cache$cache" -m "$T/m7.safetensors" --state-cache-mb $cache && wait_ready 20 ||
        { fail "cache" "server: $(cat "$T/cache$cache.log")"; break; }
    req POST /v1/completions "$P"
    n=0
    for q in "$Q1" "$Q2"; do
        n=$((n + 1))
        req POST /v1/completions "{\"prompt\":\"$q\",\"max_tokens\":16,\"temperature\":0.8,\"seed\":42}"
        cp "$T/body" "$T/cache${cache}_$n"
    done
    req GET /metrics
    cp "$T/body" "$T/metrics$cache"
    stop_server
done
for n in 1 2; do
    if ! grep -q '"cached_tokens":52' "$T/cache64_$n"; then fail "cache hit $n" "$(cat "$T/cache64_$n")"
    elif ! grep -q '"cached_tokens":0' "$T/cache0_$n"; then fail "cache off $n" "$(cat "$T/cache0_$n")"
    elif [ "$(reply_text "$T/cache64_$n")" != "$(reply_text "$T/cache0_$n")" ]; then
        fail "cache equality $n" "$(reply_text "$T/cache64_$n") vs $(reply_text "$T/cache0_$n")"
    else pass "cached continuation $n (cached prefix + $(test $n = 1 && echo 1 || echo 600) tokens) == uncached"; fi
done
grep -q '^rwkv_state_cache_hits_total 2' "$T/metrics64" && grep -q '^rwkv_state_cache_entries [4-9]' "$T/metrics64" &&
    pass "cache metrics (prompt and reply states kept)" || fail "cache metrics" "$(grep state_cache "$T/metrics64")"

# ---- the cache keeps to its budget, least recently used out first ----------
# (a state of this model is 33 KiB: 1 MiB holds about 30 of the 40 prompts' states)
if start_server lru -m "$T/m7.safetensors" --state-cache-mb 1 --parallel 1 && wait_ready 20; then
    for k in $(seq 40); do req POST /v1/completions "{\"prompt\":\"Prompt number $k is here.\",\"max_tokens\":1}"; done
    req POST /v1/completions '{"prompt":"Prompt number 1 is here. And more.","max_tokens":1}'
    cp "$T/body" "$T/lru_old"
    req POST /v1/completions '{"prompt":"Prompt number 40 is here. And more.","max_tokens":1}'
    cp "$T/body" "$T/lru_new"
    req GET /metrics
    bytes=$(sed -n 's/^rwkv_state_cache_bytes //p' "$T/body")
    entries=$(sed -n 's/^rwkv_state_cache_entries //p' "$T/body")
    if grep -q '"cached_tokens":0' "$T/lru_old" && grep -q '"cached_tokens":25' "$T/lru_new" &&
        [ "$bytes" -le 1048576 ] && [ "$entries" -gt 20 ] && [ "$entries" -lt 40 ]; then
        pass "state cache: LRU eviction within --state-cache-mb ($entries entries, $bytes bytes)"
    else fail "state cache eviction" "$entries entries, $bytes bytes; $(cat "$T/lru_old") $(cat "$T/lru_new")"; fi
    stop_server
else fail "lru" "$(cat "$T/lru.log")"; fi

# ---- the request timeout -----------------------------------------------------
if start_server timeout -m "$T/m7.safetensors" --timeout 0.3 --max-tokens 1000000 && wait_ready 20; then
    req POST /v1/completions '{"prompt":"slow","max_tokens":1000000}'
    expect "504 after the request timeout" 504 'timed out'
    stop_server
else fail "timeout" "$(cat "$T/timeout.log")"; fi

# ---- the GPT baseline: decoded row by row through its KV caches, no state cache ----
"$RWKV" init --arch gpt --layers 2 --embd 32 --heads 2 --ctx 64 --vocab 256 --out "$T/gpt.safetensors" >/dev/null 2>&1
if start_server gpt -m "$T/gpt.safetensors" && wait_ready 20; then
    req POST /v1/completions '{"prompt":"Hello","max_tokens":100,"temperature":0}'
    expect "gpt completion stops at its context (5 + 59 fed, the 60th sampled)" 200 '"completion_tokens":60,'
    req POST /v1/completions "{\"prompt\":\"$(head -c 70 /dev/zero | tr '\0' 'a')\"}"
    expect "gpt prompt longer than its context" 400 '"param":"prompt"'
    stop_server
else fail "gpt" "$(cat "$T/gpt.log")"; fi

# ---- usage errors ------------------------------------------------------------
if "$RWKV" serve --port 0 2>"$T/err" >/dev/null; then fail "serve without a model" "exit status 0"
else grep -q "model is required" "$T/err" && pass "serve without a model" || fail "serve without a model" "$(cat "$T/err")"; fi
if "$RWKV" serve -m "$T/m7.safetensors" --host not-an-address 2>"$T/err"; then fail "bad --host" "exit status 0"
else grep -q "not an IPv4 or IPv6 address" "$T/err" && pass "bad --host" || fail "bad --host" "$(cat "$T/err")"; fi
exit $failed
