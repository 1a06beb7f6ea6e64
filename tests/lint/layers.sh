#!/bin/sh
# Every #include "..." must point down the layer order of docs/architecture.md:
#
#   rank 0  include/            the public API (its types are used everywhere)
#   rank 1  src/core/           errors, dtypes, tensors, files, RNG, hash map, machine facts
#   rank 2  src/kernels/ src/cuda/ src/formats/ src/tokenizer/   (siblings: none includes another)
#   rank 3  src/model/
#   rank 4  src/train/
#   rank 5  src/tools/
#   cli/    the command line: only include/ and cli/ itself (its subfolders,
#           e.g. cli/serve/, the server of `rwkv serve`, are part of it)
#
# A file may include headers of a lower rank or of its own folder. Prints one
# PASS line, or one FAIL line per offending #include (file:line: what and why).
cd "$(dirname "$0")/../.." || exit 1
find src cli include -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' | sort |
awk '
function rank(dir) {
    if (dir == "include") return 0
    if (dir == "core") return 1
    if (dir == "kernels" || dir == "cuda" || dir == "formats" || dir == "tokenizer") return 2
    if (dir == "model") return 3
    if (dir == "train") return 4
    if (dir == "tools") return 5
    if (dir == "cli") return 6
    return -1
}
function folder_of_file(path,   p) {
    n = split(path, p, "/")
    if (p[1] == "src") return (n >= 3) ? p[2] : "src"
    return p[1]
}
function folder_of_include(inc, self,   p, n) {
    n = split(inc, p, "/")
    if (self == "cli" && n == 2 && p[1] == "serve") return "cli"
    if (n == 1) {
        if (inc ~ /^rwkv.*\.h$/) return "include"
        return self   # a header next to the file
    }
    return p[1]
}
{
    file = $0
    self = folder_of_file(file)
    line = 0
    while ((getline text < file) > 0) {
        line++
        if (text !~ /^[ \t]*#[ \t]*include[ \t]*"/) continue
        inc = text
        sub(/^[^"]*"/, "", inc); sub(/".*$/, "", inc)
        target = folder_of_include(inc, self)
        rs = rank(self); rt = rank(target)
        bad = ""
        if (rs < 0) bad = "file outside the layer table"
        else if (rt < 0) bad = "\"" inc "\" is in no layer"
        else if (self == "cli" && target != "cli" && target != "include") bad = "the CLI may include only the public API"
        else if (target == self) bad = ""
        else if (rt > rs) bad = self " (rank " rs ") may not include " target " (rank " rt ")"
        else if (rt == rs) bad = self " and " target " are siblings and may not include each other"
        if (bad != "") { printf "FAIL layers %s:%d: #include \"%s\": %s\n", file, line, inc, bad; fails++ }
        checked++
    }
    close(file)
}
END {
    if (fails == 0) printf "PASS layers: %d includes in %d files point down the layer order\n", checked, NR
    exit fails > 0
}'
