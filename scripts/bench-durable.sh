#!/usr/bin/env bash
# How durable sweeps scale with their number of points (issue 17): wall
# time and peak memory (max RSS) of 1-step, 1-run sweeps of 1,000 and
# 8,000 points along one axis (delays), and of 900 and 8,100 points on a
# momentum × step-size grid, each the median of REPEAT runs (default 3).
# Usage: scripts/bench-durable.sh [PSIM] [REPEAT]
set -euo pipefail
psim="${1:-target/release/psim}"; repeat="${2:-3}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
list() { python3 -c "import sys; print(','.join(sys.argv[1] % (i * float(sys.argv[2]) + float(sys.argv[3])) for i in range(int(sys.argv[4]))))" "$@"; }
measure() { # label, psim args...
    local label="$1"; shift
    local times=() mems=()
    for _ in $(seq "$repeat"); do
        rm -rf "$work/out"
        /usr/bin/time -o "$work/t" -f "%e %M" "$psim" sweep "$@" --steps 1 --runs 1 --out "$work/out" --quiet >/dev/null
        read -r t m < "$work/t"; times+=("$t"); mems+=("$m")
    done
    median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    printf '%-34s %8s s %8s MB (median of %s)\n' "$label" "$(median "${times[@]}")" \
        "$(echo "$(median "${mems[@]}") / 1024" | bc -l | xargs printf '%.1f')" "$repeat"
}
measure "1,000 points (delays)" --taus 0:999:1
measure "8,000 points (delays)" --taus 0:7999:1
measure "900 points (10 μ × 90 η)" --momentum "$(list '%.2f' 0.01 0 10)" --step-size "$(list '%ge-4' 0.1 1 90)"
measure "8,100 points (90 μ × 90 η)" --momentum "$(list '%.2f' 0.01 0 90)" --step-size "$(list '%ge-4' 0.1 1 90)"
