#!/usr/bin/env bash
# Real-SLURM test of the workflow (CI, as root on a Debian machine): install Debian's
# slurm-wlm and munge, start munged, slurmctld and slurmd on localhost (one node, no
# accounting, one fake GPU so a `gpu: 1` request is schedulable), run the smoke workflow
# with profiles/slurm under `timeout -s KILL` (navigation switched to `device: auto` with
# 2 threads, so its training jobs ask for a GPU and train on the CPU here; language and
# adding stay `device: cpu`), then check from slurmctld's own job records (scontrol) that
# exactly the GPU-device training jobs asked for a GPU, that threads reached
# --cpus-per-task, that the short per-run jobs went K to a SLURM job (group `followup`,
# --group-components of profiles/slurm), that the cheap rules ran locally, and that the
# outputs exist; stop the daemons by PID.
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
CPUS="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"   # nproc alone follows OMP_NUM_THREADS
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
MinJobAge=3600                     # >= 3 x INIT_SECONDS for squeue; finished jobs stay in scontrol
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
cp -r "$REPO/Snakefile" "$REPO/workflow" "$REPO/config" "$REPO/profiles" "$REPO/src" "$WORK/"   # src/: what the jobs import
mkdir -p "$WORK/data" && cp -r "$REPO/data/wikitext-2-excerpt" "$WORK/data/"   # nothing beside the copy
cd "$WORK"
START=$SECONDS
# snakemake may ignore SIGTERM: KILL at the limit; in the background so that the exit
# trap can stop it too
# (--verbose logs every sbatch call; SLURM logs of successful jobs are kept to count them)
# This cluster has no accounting (sacct fails): squeue, as profiles/slurm documents.
cat > ci-cluster.yaml <<'YAML'
tasks: {navigation: {device: auto, threads: 2}}
YAML
# (--cores: this node's CPUs, the most a group job of short per-run jobs may ask for)
timeout -s KILL "$LIMIT_SECONDS" snakemake --profile profiles/slurm \
    --configfile config/smoke.yaml ci-cluster.yaml --jobs "$CPUS" --cores "$CPUS" --verbose \
    --slurm-keep-successful-logs --slurm-status-command squeue \
    --slurm-init-seconds-before-status-checks "$INIT_SECONDS" > snakemake.log 2>&1 &
PIDS=("$!" "${PIDS[@]}")
wait "${PIDS[0]}" || { log "snakemake failed or timed out (rc $?)"; tail -50 snakemake.log; exit 1; }
log "workflow finished in $((SECONDS - START)) s"

# checks, from slurmctld's records of every job this test submitted (MinJobAge keeps
# finished jobs): one record per job, its rule from the plugin's --comment
scontrol -o show job > jobs.txt
rule_of() { sed -n 's/.*Comment=rule_\([a-z_]*\)_wildcards_.*/\1/p; t; s/.*Comment=rule_\([a-z_]*\) .*/\1/p'; }
count() { grep -c "$1" jobs.txt || true; }
RUNS="$(python3 -c "import yaml; g = yaml.safe_load(open('config/smoke.yaml'))['tasks']; \
print(' '.join(str(len(g[t]['regularizers']) * len(g[t]['targets']) * len(g[t]['seeds'])) \
for t in ('navigation', 'language', 'adding')))")"
read -r NAV_RUNS LANG_RUNS ADD_RUNS <<< "$RUNS"
# follow-up jobs per SLURM job: the profile's group-components entry for group followup
PER_GROUP="$(python3 -c "import yaml; p = yaml.safe_load(open('profiles/slurm/config.yaml')); \
print(dict(c.split('=') for c in p['group-components'])['followup'])")"
FOLLOW_UPS=$((3 * NAV_RUNS))       # sweep, sparse inference, structure of every run
GROUPS_EXPECTED=$(((FOLLOW_UPS + PER_GROUP - 1) / PER_GROUP))
log "submitted jobs by rule: $(rule_of < jobs.txt | sort | uniq -c | tr '\n' ' ')"
check() {  # check NAME COMMENT_PATTERN EXPECTED_JOBS GPU(yes|no) [CPUS]
    local name=$1 pattern="Comment=$2" want=$3 gpu=$4 cpus=${5:-}
    local n; n="$(count "$pattern")"
    [ "$n" -eq "$want" ] || { log "FAIL: $name: $n SLURM jobs, expected $want"; exit 1; }
    local with_gpu; with_gpu="$(grep "$pattern" jobs.txt | grep -cE 'gres[/:]gpu' || true)"
    if [ "$gpu" = yes ]; then
        [ "$with_gpu" -eq "$want" ] || { log "FAIL: $name: $with_gpu of $want jobs asked for a GPU"; exit 1; }
    else
        [ "$with_gpu" -eq 0 ] || { log "FAIL: $name: $with_gpu CPU-only jobs asked for a GPU"; exit 1; }
    fi
    if [ -n "$cpus" ]; then
        local right; right="$(grep "$pattern" jobs.txt | grep -c " NumCPUs=$cpus " || true)"
        [ "$right" -eq "$want" ] || { log "FAIL: $name: $right of $want jobs got $cpus CPUs"; exit 1; }
    fi
    log "$name: $n jobs, GPU $gpu${cpus:+, $cpus CPUs}: ok"
}
# rule train serves every task; its comment carries the wildcards, the task first
check "train navigation" rule_train_wildcards_navigation_ "$NAV_RUNS" yes 2  # device auto -> one GPU; threads 2
check "train language" rule_train_wildcards_language_ "$LANG_RUNS" no 1      # device cpu -> no GPU
check "train adding" rule_train_wildcards_adding_ "$ADD_RUNS" no 1
# the per-run follow-ups: never a SLURM job of their own, but PER_GROUP to a group job
# (its comment: rule_followup_<its rules>)
check "follow-up groups ($FOLLOW_UPS jobs, $PER_GROUP per group)" "rule_followup_" "$GROUPS_EXPECTED" no
for rule in sweep_navigation sparse_inference_navigation structure_navigation; do
    check "$rule alone" "rule_${rule}[_ ]" 0 no
done
check connectivity_navigation "rule_connectivity_navigation[_ ]" 1 no
for rule in $(rule_of < jobs.txt | sort -u); do
    case "$rule" in
        train|connectivity_navigation|followup_*) ;;
        *) log "FAIL: $rule went to SLURM (a localrule, or a follow-up outside its group)"; exit 1;;
    esac
done
for name in sweep inference structure; do   # every run's follow-ups ran (in their groups)
    made="$(ls results/smoke/runs/navigation/*/"$name".json | wc -l)"
    [ "$made" -eq "$NAV_RUNS" ] || { log "FAIL: $made $name.json files, expected $NAV_RUNS"; exit 1; }
done
for f in results/smoke/tables/navigation_error.csv results/smoke/tables/navigation_lottery.csv \
         results/smoke/figures/navigation_comparison.png results/smoke/summary.md \
         results/smoke/metrics/claims.json results/smoke/report.html; do
    [ -s "$f" ] || { log "FAIL: missing $f"; exit 1; }
done
log "PASS"
