#!/usr/bin/env bash
# Runs `psim run --engine virtual-time` over every consistency model and
# server policy, straggler and worker-compute setting (per-worker models,
# linear and drawn factors, replayed pushes, the papers' profile with noise,
# power, outages, upload and download), recorded pushes and update rules,
# with two psim binaries, and diffs every output file (timings removed): a
# change to the engine's data structures must leave them bit-identical.
# Usage: scripts/compare-virtual-time.sh OLD_PSIM NEW_PSIM [WORKDIR]
set -euo pipefail
old="$1"; new="$2"; work="${3:-$(mktemp -d)}"
mkdir -p "$work"
status=0
scrub() {
    # points/*.json are compact and checksum their runs, wall times included.
    sed -E -e 's/"(wall_seconds|mean_wall_seconds|threads)": ?[0-9.e+-]+/"\1": T/g' \
        -e 's/"(runs|content)_checksum": ?"[0-9a-f]+"/"\1_checksum": T/g' \
        -e 's/ran in [0-9.]+ s( on [0-9]+ threads)?/ran in T/g' -e 's/in [0-9.]+ s wall-clock/in T s wall-clock/' \
        -e 's/(^|,)[0-9]+\.[0-9]{6}(,|$)/\1T\2/g' "$1" 2>/dev/null || cat "$1"
}
n=0
check() { # args of psim run
    n=$((n + 1))
    for side in old new; do
        local bin="$old"; [ "$side" = new ] && bin="$new"
        rm -rf "$work/$side-$n"
        "$bin" run --engine virtual-time --quiet --out "$work/$side-$n" "$@" >/dev/null 2>&1 \
            || { echo "case $n failed on $side: $*"; status=1; return; }
    done
    local differ=0
    for f in $(cd "$work/old-$n" && find . -type f ! -name '.psim.lock' | sort); do
        if ! cmp -s <(scrub "$work/old-$n/$f") <(scrub "$work/new-$n/$f"); then
            echo "  case $n: $f differs"; differ=1
        fi
    done
    if [ "$differ" = 0 ]; then
        echo "identical ($(cd "$work/old-$n" && find . -type f ! -name '.psim.lock' | wc -l) files): $*"
    else
        echo "DIFFERS: $*"; status=1
    fi
}
common=(--steps 3000 --runs 2 --record-every 100 --step-size 0.01)
for c in asp ssp:0 ssp:3 bsp ksync:12 ksync:3 rennala:4 rennala:4,discard ringmaster:8 \
    ringmaster:8,stop buffered:8; do
    check "${common[@]}" --workers 16 --compute-time exp:1 --network-delay exp:0.1 --consistency "$c" --record-pushes
    check "${common[@]}" --workers 16 --compute-time 1 --worker-compute linear:1,1 --consistency "$c" --stragglers 0.25:4
done
for r in sgd nesterov staleness-aware dc-asgd:0.1 delay-adaptive delay-adaptive:4; do
    check "${common[@]}" --workers 12 --compute-time exp:1 --rule "$r" --consistency asp
done
check "${common[@]}" --workers 8 --worker-compute 'models:exp:1;1;uniform:0.5..2;lognormal:0,1;2;pareto:1,3;exp:0.2;1'
check "${common[@]}" --workers 32 --compute-time 1 --worker-compute draw:exp:1 --consistency ringmaster:4,stop
check "${common[@]}" --workers 64 --compute-time 1 \
    --worker-compute 'profile:0+1*i^0.5;noise=half-normal:1*i^0.5' --consistency rennala:8
check "${common[@]}" --workers 64 --compute-time 1 \
    --worker-compute 'profile:1+1*i^0.5;noise=exp:0.1*i^0.5;up=exp:200;down=exp:20;upload=exp:0.05*i^0.5' \
    --consistency ringmaster:8
check "${common[@]}" --workers 64 --compute-time 1 \
    --worker-compute 'profile:1+1*i^0.5;noise=exp:0.1*i^0.5;up=exp:200;down=exp:20;upload=exp:0.05*i^0.5' \
    --consistency ksync:48
# Replay the pushes one run recorded (asp, 16 workers, case 1).
replay="$work/old-1/points/0/pushes.csv"
[ -f "$replay" ] || replay="$(find "$work/old-1" -name 'pushes*.csv' | head -1)"
if [ -n "$replay" ] && [ -f "$replay" ]; then
    check "${common[@]}" --workers 16 --worker-compute "replay:$replay" --consistency asp
else
    echo "no pushes.csv found to replay"; status=1
fi
# From 4,096 workers on the event queue is a calendar (engine/src/event_queue.rs):
# every policy (cancellations leave stale entries and sweeps), ties (constant
# times), heavy tails, outages, and per-worker factors at 5,000 workers.
big=(--steps 30000 --runs 1 --record-every 3000 --step-size 0.001 --workers 5000)
for c in asp ssp:3 bsp ksync:4000 rennala:64 rennala:64,discard ringmaster:100 \
    ringmaster:100,stop buffered:64; do
    check "${big[@]}" --compute-time exp:1 --network-delay exp:0.1 --consistency "$c"
    check "${big[@]}" --compute-time 1 --consistency "$c"
done
check "${big[@]}" --compute-time pareto:1,1.1 --consistency asp
check "${big[@]}" --compute-time 1 --worker-compute linear:1,1 --consistency rennala:16
check "${big[@]}" --compute-time 1 --worker-compute draw:exp:1 --consistency ringmaster:50,stop
check "${big[@]}" --compute-time 1 \
    --worker-compute 'profile:1+1*i^0.5;noise=exp:0.1*i^0.5;up=exp:200;down=exp:20;upload=exp:0.05*i^0.5' \
    --consistency ringmaster:100
# Many workers, a target error that stops the run early, a divergence.
check --steps 50000 --runs 1 --record-every 5000 --workers 20000 --compute-time exp:0.001 --momentum 0 --step-size 1e-6
check --steps 20000 --runs 2 --workers 500 --compute-time exp:1 --target-error 0.5 --step-size 0.05
check --steps 20000 --runs 1 --workers 100 --compute-time exp:1 --step-size 5 --momentum 0.9
exit $status
