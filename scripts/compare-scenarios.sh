#!/usr/bin/env bash
# Runs every deterministic named scenario (and the tradeoff on virtual time)
# with two psim binaries at the scenarios' defaults and diffs their output
# files, timings aside: a refactor of the execution path must leave them
# bit-identical. Usage: scripts/compare-scenarios.sh OLD_PSIM NEW_PSIM [WORKDIR]
set -euo pipefail
old="$1"; new="$2"; work="${3:-$(mktemp -d)}"
mkdir -p "$work"
status=0
run() { # name, args...
    local name="$1"; shift
    for side in old new; do
        local bin="$old"; [ "$side" = new ] && bin="$new"
        rm -rf "$work/$side-$name"
        "$bin" reproduce "$@" --quiet --out "$work/$side-$name" >/dev/null
    done
    # Files both wrote; timings (wall seconds, threads, "ran in") removed.
    local differ=0
    for f in $(cd "$work/old-$name" && ls); do
        [ -f "$work/old-$name/$f" ] || continue
        if ! diff -q <(scrub "$work/old-$name/$f") <(scrub "$work/new-$name/$f") >/dev/null 2>&1; then
            echo "  $name/$f differs"; differ=1
        fi
    done
    if [ "$differ" = 0 ]; then echo "$name: identical ($(cd "$work/old-$name" && ls | wc -l) files)"; else status=1; fi
}
scrub() {
    sed -E -e 's/"(wall_seconds|mean_wall_seconds|threads)": [0-9.e+-]+/"\1": T/g' \
        -e 's/ran in [0-9.]+ s( on [0-9]+ threads)?/ran in T/g'  -e 's/in [0-9.]+ s wall-clock/in T s wall-clock/' \
        -e 's/(^|,)[0-9]+\.[0-9]{6}(,|$)/\1T\2/g' "$1" 2>/dev/null || cat "$1"
}
run tradeoff tradeoff
run tradeoff-vt tradeoff --engine virtual-time --runs 10 --steps 4000
run three-phases three-phases
run saddle-escape saddle-escape
run spiky spiky
run escape-times escape-times
run momentum-vs-workers momentum-vs-workers
exit $status
