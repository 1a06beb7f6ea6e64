# Sourced by CLI tests that need a running `rwkv serve` (RWKV set):
# serve_ready LOG TRIES ARGS... starts `rwkv serve --port 0 ARGS...` with its
# stderr in LOG, sets SPID, and waits up to TRIES tenths of a second until it
# listens and /health answers 200, setting PORT (empty if it never did).
serve_ready() {
    log=$1 tries=$2
    shift 2
    "$RWKV" serve --port 0 "$@" 2>"$log" &
    SPID=$!
    PORT=""
    for _ in $(seq "$tries"); do
        PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
        [ -n "$PORT" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/health")" = 200 ] && break
        sleep 0.1
    done
}
