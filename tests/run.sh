#!/bin/sh
# Runs every test program and test script, prints their lines and then the
# totals as the last line: "N passed, N failed, N skipped".
#   tests/run.sh BUILD_DIR [ASAN_BUILD_DIR] ["VECTOR_FOLDER ..."]
build=$1
asan=$2
vectors=$3
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run() { # label, command...
    label=$1; shift
    echo "== $label"
    "$@" >"$log.out" 2>&1
    rc=$?
    cat "$log.out"
    grep -E '^(PASS|FAIL|SKIP) ' "$log.out" >>"$log"
    if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$log.out"; then
        echo "FAIL $label: exited with status $rc"
        echo "FAIL $label: exited with status $rc" >>"$log"
    fi
    rm -f "$log.out"
}

for t in "$build"/tests/test_*; do
    [ -x "$t" ] && run "$(basename "$t")" "$t"
done
for v in $vectors; do
    if [ -d "$v" ]; then
        run "check_vectors $v" "$build"/tests/check_vectors "$v"
    else
        echo "SKIP check_vectors: $v not found" | tee -a "$log"
    fi
done
for t in tests/lint/*.sh; do
    [ -f "$t" ] && run "$(basename "$t")" sh "$t"
done
for t in tests/cli/*.sh; do
    [ -f "$t" ] && run "$(basename "$t")" sh "$t" ./rwkv
done
[ -f tests/python/run.sh ] && run "python" sh tests/python/run.sh ./rwkv
if [ -n "$asan" ]; then
    for t in "$asan"/tests/test_*; do
        [ -x "$t" ] && run "asan $(basename "$t")" env ASAN_OPTIONS=detect_leaks=1 "$t"
    done
    for v in $vectors; do
        [ -d "$v" ] && run "asan check_vectors $v" "$asan"/tests/check_vectors "$v"
    done
fi

pass=$(grep -c '^PASS ' "$log")
fail=$(grep -c '^FAIL ' "$log")
skip=$(grep -c '^SKIP ' "$log")
echo
grep '^FAIL ' "$log"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
