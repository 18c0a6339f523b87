#!/usr/bin/env bash
# Real-SLURM test of the workflow (CI, as root on a Debian machine): install Debian's
# slurm-wlm and munge, start munged, slurmctld and slurmd on localhost (one node, no
# accounting, one fake GPU so the profile's `gpu: 1` request is schedulable), run the
# smoke workflow with profiles/slurm under `timeout -s KILL`, check that the training and
# sweep jobs went through sbatch and that the outputs exist, and stop the daemons by PID.
# Usage: .ci/slurm_test.sh [WORKDIR]   (default: a new temporary directory)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-$(mktemp -d /tmp/geosparse-slurm.XXXXXX)/repo}"
INIT_SECONDS=5                     # plugin's first status check; MinJobAge must be >= 3x
LIMIT_SECONDS="${SLURM_TEST_TIMEOUT:-1200}"
PIDS=()          # daemons and the workflow, stopped by PID on exit

log() { echo "[slurm_test] $*"; }

stop_daemons() {
    squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
    done
}
trap stop_daemons EXIT

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        slurm-wlm munge >/dev/null
fi

# munge: a key, then the daemon (as root: --force), PID from its pid file
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chmod 400 /etc/munge/munge.key
/usr/sbin/munged --force --pid-file=/run/munge/ci-munged.pid
PIDS+=("$(cat /run/munge/ci-munged.pid)")
munge -n | unmunge >/dev/null

# slurm: one node "localhost" with this machine's CPUs and memory and one fake GPU
CPUS="$(nproc)"
MEM_MB="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)"
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/ci-slurmctld.pid
SlurmdPidFile=/run/ci-slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MinJobAge=$((INIT_SECONDS * 3 > 300 ? INIT_SECONDS * 3 : 300))
ReturnToService=2
GresTypes=gpu
NodeName=localhost CPUs=${CPUS} RealMemory=${MEM_MB} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
echo "NodeName=localhost Name=gpu File=/dev/null Count=1" > /etc/slurm/gres.conf
slurmctld -c           # -c: start from a clean state (no jobs left from an earlier test)
for _ in $(seq 30); do [ -s /run/ci-slurmctld.pid ] && break; sleep 0.5; done
PIDS+=("$(cat /run/ci-slurmctld.pid)")
slurmd -N localhost
for _ in $(seq 30); do [ -s /run/ci-slurmd.pid ] && break; sleep 0.5; done
PIDS+=("$(cat /run/ci-slurmd.pid)")
for _ in $(seq 60); do sinfo -h -o %T | grep -qE '^(idle|mixed)' && break; sleep 1; done
sinfo -N -l
sinfo -h -o %T | grep -qE '^(idle|mixed)' || { log "FAIL: node not idle"; sinfo -R; exit 1; }

# the smoke workflow in a copy of the repository, through the SLURM profile
log "workflow copy: $WORK"
mkdir -p "$WORK"
cp -r "$REPO/Snakefile" "$REPO/workflow" "$REPO/config" "$REPO/profiles" "$WORK/"
mkdir -p "$WORK/data" && cp -r "$REPO/data/wikitext-2-excerpt" "$WORK/data/"   # nothing beside the copy
cd "$WORK"
START=$SECONDS
# snakemake may ignore SIGTERM: KILL at the limit; in the background so that the exit
# trap can stop it too
# (--verbose logs every sbatch call; SLURM logs of successful jobs are kept to count them)
timeout -s KILL "$LIMIT_SECONDS" snakemake --profile profiles/slurm \
    --configfile config/smoke.yaml --jobs "$CPUS" --verbose --slurm-keep-successful-logs \
    --slurm-init-seconds-before-status-checks "$INIT_SECONDS" > snakemake.log 2>&1 &
PIDS=("$!" "${PIDS[@]}")
wait "${PIDS[0]}" || { log "snakemake failed or timed out (rc $?)"; tail -50 snakemake.log; exit 1; }
log "workflow finished in $((SECONDS - START)) s"

# checks: every training and sweep job was an sbatch job with a SLURM log; training
# jobs asked for a GPU; the small rules ran locally (localrules); the outputs exist
RUNS="$(python3 -c "import yaml; g = yaml.safe_load(open('config/smoke.yaml'))['tasks']['navigation']; \
print(len(g['regularizers']) * len(g['targets']) * len(g['seeds']))")"
for rule in train_navigation sweep_navigation; do
    n="$(find ".snakemake/slurm_logs/rule_$rule" -name '*.log' | wc -l)"
    log "$rule: $n SLURM job logs for $RUNS runs"
    [ "$n" -eq "$RUNS" ] || { log "FAIL: $rule did not go through sbatch"; exit 1; }
done
n="$(grep -c 'sbatch call: .*--gpus=1' snakemake.log || true)"
log "sbatch calls with --gpus=1: $n"
[ "$n" -eq "$RUNS" ] || { log "FAIL: expected $RUNS GPU training jobs"; exit 1; }
[ ! -d .snakemake/slurm_logs/rule_summary ] || { log "FAIL: summary went to SLURM"; exit 1; }
for f in results/smoke/tables/navigation_error.csv results/smoke/tables/navigation_lottery.csv \
         results/smoke/figures/navigation_comparison.png results/smoke/summary.md \
         results/smoke/metrics/claims.json results/smoke/report.html; do
    [ -s "$f" ] || { log "FAIL: missing $f"; exit 1; }
done
log "PASS"
