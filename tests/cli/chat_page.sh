#!/bin/sh
# The chat page of `rwkv serve` (GET /) in a real headless browser, Debian's
# chromium, driven by tests/browser/chat_page.mjs: it loads, a message is
# sent, the streamed reply appears, and a second turn follows. Skips cleanly
# without chromium or node. Loopback only; the server and the browser are
# always stopped.
#   sh tests/cli/chat_page.sh ./rwkv [SCREENSHOT.png [MODEL]]
# (default: a freshly initialised tiny model)
RWKV=${1:-./rwkv}
SHOT=${2:-}
MODEL=${3:-}
case $RWKV in /*) ;; *) RWKV=$(pwd)/$RWKV ;; esac
case $SHOT in /*|"") ;; *) SHOT=$(pwd)/$SHOT ;; esac
DIR=$(cd "$(dirname "$0")/../browser" && pwd)
T=$(mktemp -d /tmp/rwkv_chat_page.XXXXXX)
SPID="" BPID=""
cleanup() {
    for p in $BPID $SPID; do kill "$p" 2>/dev/null; done
    for p in $BPID $SPID; do wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ] || ! command -v node >/dev/null 2>&1; then
    echo "SKIP chat page: needs chromium and node"
    exit 0
fi

if [ -z "$MODEL" ]; then
    MODEL=$T/m.safetensors
    "$RWKV" init --arch rwkv7 --layers 2 --embd 64 --vocab 256 --emb-scale 0.5 --out "$MODEL" >/dev/null 2>&1 ||
        { echo "FAIL chat page: rwkv init failed"; exit 1; }
fi
"$RWKV" serve -m "$MODEL" --port 0 --name tiny-rwkv 2>"$T/log" &
SPID=$!
PORT=""
for _ in $(seq 200); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/log")
    [ -n "$PORT" ] && grep -q ready "$T/log" && break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "FAIL chat page: the server did not start: $(cat "$T/log")"; exit 1; }

"$CHROMIUM" --headless=new --no-sandbox --disable-gpu --no-first-run --disable-extensions \
    --user-data-dir="$T/profile" --remote-debugging-address=127.0.0.1 --remote-debugging-port=0 \
    --window-size=900,700 "http://127.0.0.1:$PORT/" >/dev/null 2>"$T/browser.log" &
BPID=$!
DEVPORT=""
for _ in $(seq 300); do
    DEVPORT=$(sed -n 's/^DevTools listening on ws:\/\/127\.0\.0\.1:\([0-9]*\)\/.*/\1/p' "$T/browser.log")
    [ -n "$DEVPORT" ] && break
    kill -0 "$BPID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$DEVPORT" ] || { echo "FAIL chat page: chromium did not start: $(tail -n 3 "$T/browser.log")"; exit 1; }
timeout 120 node --experimental-websocket --no-warnings "$DIR/chat_page.mjs" "$DEVPORT" "http://127.0.0.1:$PORT/" $SHOT
