# Public-domain corpora for scripts/demo.sh and scripts/results.sh (sourced,
# not run: `. scripts/corpus.sh`).
#
# kjv_corpus FILE
#   Writes the King James Bible (1611; public domain, see
#   /usr/share/doc/bible-kjv-text/copyright: "The copyright for the King James
#   Version text of the Bible is expired") to FILE, one verse a line without
#   the "Ge1:1 " references, from Debian's bible-kjv package, which is
#   installed with apt-get when missing (as root). Nothing else is fetched.
#   Keeps an existing non-empty FILE. Prints why and returns 1 on failure.
kjv_corpus() {
    _kjv_out=$1
    [ -s "$_kjv_out" ] && return 0
    if ! command -v bible >/dev/null 2>&1; then
        echo "corpus: installing the Debian package bible-kjv (King James Bible, public domain)" >&2
        if [ "$(id -u)" -ne 0 ]; then
            echo "corpus: not root: install it with 'sudo apt-get install bible-kjv'" >&2
            return 1
        fi
        (apt-get install -y bible-kjv >/dev/null 2>&1 ||
            (apt-get update >/dev/null 2>&1 && apt-get install -y bible-kjv >/dev/null 2>&1)) || {
            echo "corpus: could not install bible-kjv" >&2
            return 1
        }
    fi
    bible -f Gen1:1-Rev22:21 </dev/null | sed 's/^[^ ]* //' >"$_kjv_out.tmp" && mv "$_kjv_out.tmp" "$_kjv_out"
}
