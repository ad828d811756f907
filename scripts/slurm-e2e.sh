#!/bin/bash
# End-to-end check of sharding on a real Slurm: installs slurm-wlm and munge
# (apt-get, as root), starts a one-node cluster on localhost, submits E1 as a
# 3-element job array (examples/cluster/slurm-array.sh), waits, merges the
# shards and compares the merged summary.json, tables and plots with an
# unsharded run (timings removed). Exits non-zero on any difference.
#   scripts/slurm-e2e.sh [PSIM_BINARY]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PSIM=$(realpath "${1:-$ROOT/target/release/psim}")
WORK=$(mktemp -d /tmp/psim-slurm-e2e.XXXXXX)
chmod 755 "$WORK"
ARGS=(--runs "${E2E_RUNS:-20}" --steps "${E2E_STEPS:-5000}")

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: one key, one daemon.
mkdir -p /etc/munge /var/run/munge /var/log/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
chown -R munge:munge /etc/munge /var/run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- munged --force 2>/dev/null || munged --force

# slurm: one node, this host, as many CPUs as it has.
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(awk '/MemTotal/ {print int($2/1024) - 512}' /proc/meminfo)
CONF_DIR=/etc/slurm
mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat >"$CONF_DIR/slurm.conf" <<CONF
ClusterName=psim-e2e
SlurmctldHost=$HOST
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/var/run/slurmctld.pid
SlurmdPidFile=/var/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MpiDefault=none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
# An empty cgroup.conf: the defaults (CgroupPlugin=disabled is unknown to Slurm 22.05).
: >"$CONF_DIR/cgroup.conf"
# Daemons this script starts are stopped when it exits.
STARTED=0
stop() { [ "$STARTED" = 1 ] && timeout 10 scontrol shutdown >/dev/null 2>&1 || true; }
trap stop EXIT
if ! pgrep -x slurmctld >/dev/null; then slurmctld; STARTED=1; fi
if ! pgrep -x slurmd >/dev/null; then slurmd; STARTED=1; fi
for _ in $(seq 30); do
    timeout 5 sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|allocated" && break
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    sleep 1
done
timeout 5 sinfo -h -o %T | grep -qE "idle|mixed|allocated" || {
    echo "slurm e2e: the one-node cluster did not come up (see /var/log/slurm/)" >&2
    exit 1
}

# The array: 3 shards of E1 (small), each its own directory.
cd "$WORK"
cp "$ROOT/examples/cluster/slurm-array.sh" job.sh
sed -i "s|^\"\$PSIM\" reproduce tradeoff|\"\$PSIM\" reproduce tradeoff ${ARGS[*]}|" job.sh
JOB=$(PSIM="$PSIM" OUT_PREFIX="$WORK/e1-shard-" sbatch --parsable --export=ALL --chdir="$WORK" job.sh)
echo "submitted array job $JOB"
for _ in $(seq 600); do
    squeue -h -j "$JOB" 2>/dev/null | grep -q . || break
    sleep 1
done
cat psim-e1-*.log || true

"$PSIM" merge e1-shard-0 e1-shard-1 e1-shard-2 --out merged | tail -1
"$PSIM" reproduce tradeoff "${ARGS[@]}" --quiet --out whole >/dev/null
python3 - "$WORK/whole" "$WORK/merged" <<'PY'
import csv, json, sys
a, b = sys.argv[1:]
def summary(d):
    s = json.load(open(f"{d}/summary.json"))
    s.pop("wall_seconds"); s.pop("threads")
    for p in s["points"]:
        p.pop("mean_wall_seconds")
    return s
def runs(d):
    r = list(csv.reader(open(f"{d}/runs.csv")))
    i = r[0].index("wall_seconds")
    return [x[:i] + x[i + 1:] for x in r]
ok = summary(a) == summary(b) and runs(a) == runs(b)
for f in ["traces.csv", "staleness.csv", "traces.svg", "tradeoff.svg"]:
    ok &= open(f"{a}/{f}").read() == open(f"{b}/{f}").read()
print("slurm e2e:", "merged shards EQUAL the unsharded run" if ok else "DIFFERENT")
sys.exit(0 if ok else 1)
PY
