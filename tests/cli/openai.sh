#!/bin/sh
# `rwkv serve` with the official openai npm client (tests/openai/: the version
# pinned in package.json and package-lock.json). Installs it with `npm ci`
# when node and npm exist and it is not installed yet; skips cleanly when node
# or npm is missing or the install fails (no network). Loopback only; the
# server is always stopped.
#   sh tests/cli/openai.sh ./rwkv
RWKV=${1:-./rwkv}
case $RWKV in /*) ;; *) RWKV=$(pwd)/$RWKV ;; esac
DIR=$(cd "$(dirname "$0")/../openai" && pwd)
T=$(mktemp -d /tmp/rwkv_openai.XXXXXX)
SPID=""
trap '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null; [ -n "$SPID" ] && wait "$SPID" 2>/dev/null; rm -rf "$T"' EXIT

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "SKIP openai client: node and npm are not installed"
    exit 0
fi
want=$(sed -n 's/.*"openai": "\(.*\)".*/\1/p' "$DIR/package.json")
have=$(sed -n 's/^  "version": "\(.*\)",/\1/p' "$DIR/node_modules/openai/package.json" 2>/dev/null)
if [ "$have" != "$want" ] && ! (cd "$DIR" && timeout 300 npm ci --no-audit --no-fund >"$T/npm.log" 2>&1); then
    echo "SKIP openai client: npm ci failed (offline?): $(tail -n 1 "$T/npm.log")"
    exit 0
fi

"$RWKV" init --arch rwkv7 --layers 2 --embd 64 --vocab 256 --emb-scale 0.5 --out "$T/m.safetensors" >/dev/null 2>&1 ||
    { echo "FAIL openai client: rwkv init failed"; exit 1; }
. "$(dirname "$0")/lib/serve_ready.sh"
export RWKV_API_KEY=sekret # the key from the environment, as a deployment would give it
serve_ready "$T/log" 200 -m "$T/m.safetensors"
unset RWKV_API_KEY
if [ -z "$PORT" ]; then
    echo "FAIL openai client: the server did not start: $(cat "$T/log")"
    exit 1
fi
timeout 120 node "$DIR/client.mjs" "$PORT" sekret
