#!/usr/bin/env bash
# Virtual-time throughput and memory at 8 to 10⁶ workers (issue 18, item 6),
# on the issue's own command:
#   psim run --engine virtual-time --workers M --compute-time exp:0.001
#     --momentum 0 --step-size 1e-6 --steps 2000000 --runs 1
#     --record-every 2000000
# events/s = 2·10⁶ / the run's wall_seconds (runs.csv: the engine's time,
# setup and the final drain included, output writing excluded).
#
# Usage: scripts/bench-virtual-time.sh NEW_PSIM [BASE_PSIM] [-n REPEATS] [-m "8 1000 …"]
# With BASE_PSIM the two binaries run in turn (A B B A …) and each line
# gives both medians and the median of the per-pair ratios, so a comparison
# holds on a shared, noisy machine. Per binary and M it prints the median
# events/s, the median user CPU seconds of the whole process, and the peak
# RSS of the whole process; "B/worker" is (peak RSS at M − peak RSS at 8
# workers) / M, which counts everything the process holds per worker: the
# engine's state and the output tables (summary.json's per-worker entries,
# workers.csv).
set -euo pipefail
new="$1"; shift
base=""
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then base="$1"; shift; fi
repeats=5
sizes="8 1000 10000 100000 1000000"
while [ $# -gt 0 ]; do
    case "$1" in
        -n) repeats="$2"; shift 2 ;;
        -m) sizes="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$sizes" in 8\ *) ;; *) sizes="8 $sizes" ;; esac
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# One run of binary $1 at $2 workers: prints "wall_seconds user_seconds peak_kb".
one() {
    local bin="$1" m="$2" out="$work/out"
    rm -rf "$out"
    /usr/bin/time -f "%U %M" -o "$work/time" "$bin" run --engine virtual-time --workers "$m" \
        --compute-time exp:0.001 --momentum 0 --step-size 1e-6 --steps 2000000 --runs 1 \
        --record-every 2000000 --out "$out" --quiet >/dev/null 2>&1
    local wall
    wall="$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "wall_seconds") c = i }
                     NR == 2 { print $c }' "$out/runs.csv")"
    echo "$wall $(cat "$work/time")"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A base_kb
printf '%-9s %-6s %14s %10s %12s %10s' workers binary "events/s" "user s" "peak RSS MB" "B/worker"
[ -n "$base" ] && printf ' %14s' "new/base speed"
echo
for m in $sizes; do
    : >"$work/new.txt"; : >"$work/base.txt"; : >"$work/ratio.txt"
    for i in $(seq "$repeats"); do
        # Pairs alternate which binary runs first (A B, B A, …): at 10⁶
        # workers the first of a pair was measured 5–14% slower than the
        # second with the same binary on both sides.
        if [ -n "$base" ] && [ $((i % 2)) = 0 ]; then
            b="$(one "$base" "$m")"; n="$(one "$new" "$m")"
        else
            n="$(one "$new" "$m")"
            [ -n "$base" ] && b="$(one "$base" "$m")"
        fi
        echo "$n" >>"$work/new.txt"
        if [ -n "$base" ]; then
            echo "$b" >>"$work/base.txt"
            awk -v n="${n%% *}" -v b="${b%% *}" 'BEGIN { print b / n }' >>"$work/ratio.txt"
        fi
    done
    for side in new base; do
        [ "$side" = base ] && [ -z "$base" ] && continue
        f="$work/$side.txt"
        wall="$(awk '{ print $1 }' "$f" | median)"
        user="$(awk '{ print $2 }' "$f" | median)"
        kb="$(awk '{ print $3 }' "$f" | median)"
        [ "$m" = 8 ] && base_kb[$side]="$kb"
        per="-"
        [ "$m" != 8 ] && per="$(awk -v k="$kb" -v k8="${base_kb[$side]}" -v m="$m" 'BEGIN { printf "%.0f", (k - k8) * 1024 / m }')"
        printf '%-9s %-6s %14.0f %10.2f %12.1f %10s' "$m" "$side" \
            "$(awk -v w="$wall" 'BEGIN { print 2e6 / w }')" "$user" "$(awk -v k="$kb" 'BEGIN { print k / 1024 }')" "$per"
        if [ "$side" = new ] && [ -n "$base" ]; then
            printf ' %14.2f' "$(median <"$work/ratio.txt")"
        fi
        echo
    done
done
echo "($repeats runs each, medians; the ratio is the median of base wall / new wall per pair)"
