#!/bin/sh
# The shared library exports only the public API: every symbol that
# build/librwkv.so defines for the dynamic linker starts with rwkv_ (the
# functions marked RWKV_API in include/). Run from the repository root.
so=${BUILD:-build}/librwkv.so
if [ ! -f "$so" ]; then
    echo "SKIP exports: $so not built"
    exit 0
fi
# defined, global (not local) dynamic symbols; their names only
syms=$(nm -D --defined-only "$so" | awk '$2 ~ /^[A-Z]$/ {print $3}' | sort -u)
n=$(printf '%s\n' "$syms" | grep -c .)
bad=$(printf '%s\n' "$syms" | grep -v '^rwkv_' | grep .)
if [ -n "$bad" ]; then
    echo "FAIL exports: $(printf '%s\n' "$bad" | grep -c .) of $n exported symbols lack the rwkv_ prefix: $(printf '%s ' $bad | cut -c1-400)"
else
    echo "PASS exports: all $n exported symbols of $so start with rwkv_"
fi
