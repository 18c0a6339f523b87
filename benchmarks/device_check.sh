#!/usr/bin/env bash
# The GPU checks of the paper-scale path, one command per part for a lent GPU machine
# (at most 10 minutes a command, start-up included; a few device-minutes in all).
#
#   bash benchmarks/device_check.sh tests bench      # ~5 min: every check but the full run
#   bash benchmarks/device_check.sh run:torus_dog:bf16:0   # one full paper-size run (~7 min in TF32)
#
# Parts, run in the order given; each check prints one PASS / FAIL / SKIP line at the end
# (a summary of every check, also in $OUT/summary.txt), and the script exits 1 if any
# check failed. Nothing is hidden: a failing step fails its check.
#   tests   - cuda-tasks: the CUDA tests of all three tasks, each trained and resumed on
#             the GPU (tests/test_devices.py -k on_cuda, tests/test_training.py -k cuda)
#           - cpu-node: a CUDA-trained run loaded and swept by a process that sees no GPU
#             (CUDA_VISIBLE_DEVICES=)
#           - bf16-dtype: under bf16 the recurrence ran in bfloat16 (metrics.json
#             precision.recurrence_dtype; autocast alone gave float16 on cuDNN)
#   bench   - step-time: ms per training step at paper size in fp32, tf32 and bf16, dense
#             and at 90 % (benchmarks/train_step.py -> $OUT/train_step.csv)
#           - packed: K = 1, 2, 4 runs packed into one step, tf32 and bf16, after its
#             equality check (benchmarks/packed_step.py -> $OUT/packed-<precision>.csv)
#   run:REG:PREC:SEED - one full paper-size navigation run (config/navigation/paper.yaml,
#             regularizer REG of config/config.yaml, 90 %, no lottery ticket: the setting
#             of the reference H100 runs in docs/paper_scale/h100-d84dc9e/: torus_dog s0
#             5.75 cm, none s0 31.7 and s1 89.2 cm, 379-408 s in TF32); $OUT/<REG>-<PREC>-s<SEED>.json
# A check that needs a GPU is SKIP when DEVICE is not cuda.
#
# Files go to $OUT (the device tool's folder; ./device_out elsewhere). If the GPU
# machine lacks this project's pure-Python dependencies, put their wheels in .whl/
# (`python3 -m pip download --no-deps -d .whl jsonschema ...`) and carry it.
#
# On a CPU (a check of this script, not a measurement):
#   CONFIG=config/navigation/smoke.yaml DEVICE=cpu BENCH_STEPS=1 bash benchmarks/device_check.sh tests bench run:none:bf16:0
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-device_out}"
CONFIG="${CONFIG:-config/navigation/paper.yaml}"
DEVICE="${DEVICE:-cuda}"
BENCH_STEPS="${BENCH_STEPS:-20}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
RESULTS=()

if [ -d .whl ] && ! python3 -c "import jsonschema" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "FAIL: installing .whl/"; exit 1; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"   # this checkout's package, no install
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" \
    || { echo "FAIL: torch does not import"; exit 1; }

record() {  # record NAME STATUS DETAIL
    RESULTS+=("$2 $1${3:+: $3}")
    echo "[device_check] $2 $1${3:+: $3}"
}

pytest_check() {  # pytest_check NAME LOG PYTEST-ARGS...: PASS only if tests ran, none skipped or failed
    local name=$1 log="$OUT/$2" line
    shift 2
    if [ "$DEVICE" != cuda ]; then record "$name" SKIP "needs DEVICE=cuda"; return; fi
    python3 -m pytest -q -rs -p no:cacheprovider "$@" > "$log" 2>&1
    local rc=$?
    line="$(tail -1 "$log")"
    if [ "$rc" -eq 0 ] && ! grep -q "skipped" <<< "$line"; then
        record "$name" PASS "$line"
    else
        record "$name" FAIL "$line (exit $rc; $log)"
    fi
}

tests() {
    pytest_check cuda-tasks tests-cuda.log tests/test_devices.py tests/test_training.py -k "on_cuda"
    pytest_check cpu-node tests-cpu-node.log tests/test_devices.py -k "cuda_trained_run_loads"
    pytest_check bf16-dtype tests-bf16.log tests/test_training.py -k "precision_is_recorded and cuda"
}

bench() {
    local precision failed=0
    for precision in fp32 tf32 bf16; do
        python3 benchmarks/train_step.py --config "$CONFIG" --device "$DEVICE" --steps "$BENCH_STEPS" \
            --set "training.precision=$precision" --csv "$OUT/train_step-$precision.csv" >> "$OUT/bench.log" 2>&1 \
            || failed=1
    done
    if [ "$failed" -eq 0 ] && python3 - "$OUT" <<'EOF'
import sys
from pathlib import Path

import pandas as pd

out = Path(sys.argv[1])
parts = sorted(out.glob("train_step-*.csv"))
table = pd.concat(map(pd.read_csv, parts))
table.to_csv(out / "train_step.csv", index=False)
for part in parts:
    part.unlink()
print(table.to_string(index=False))
EOF
    then
        record step-time PASS "$OUT/train_step.csv"
    else
        record step-time FAIL "see $OUT/bench.log"
    fi
    failed=0
    for precision in tf32 bf16; do
        python3 benchmarks/packed_step.py --config "$CONFIG" --device "$DEVICE" --precision "$precision" \
            --runs 1 2 4 --steps "$((BENCH_STEPS / 4 + 1))" --csv "$OUT/packed-$precision.csv" >> "$OUT/bench.log" 2>&1 \
            || failed=1
    done
    if [ "$failed" -eq 0 ]; then record packed PASS "$OUT/packed-tf32.csv, $OUT/packed-bf16.csv"; else
        record packed FAIL "see $OUT/bench.log"; fi
}

run() {  # run REG PREC SEED
    local name="$1-$2-s$3" assignments dir
    local -a args=(--config "$CONFIG" --seed "$3" --device "$DEVICE" --set "training.precision=$2")
    if ! assignments="$(python3 - "$1" "$CONFIG" <<'EOF'
import sys

import yaml

from geosparse.config import resolve
from geosparse.grid import run_assignments

with open("config/config.yaml") as handle:
    regularizers = yaml.safe_load(handle)["regularizers"]
if sys.argv[1] not in regularizers:
    sys.exit(f"unknown regularizer {sys.argv[1]!r}; allowed values: {sorted(regularizers)}")
base = resolve(sys.argv[2], "navigation", [])
print("\n".join(run_assignments(base, regularizers[sys.argv[1]]["set"], 0.9, False)))
EOF
)"; then
        record "run:$1:$2:$3" FAIL "bad regularizer"
        return
    fi
    while IFS= read -r assignment; do args+=(--set "$assignment"); done <<< "$assignments"
    dir="$(mktemp -d)/$name"
    echo "run $name: ${args[*]}"
    if ! python3 -m geosparse train navigation "${args[@]}" --out "$dir" > "$OUT/$name.log" 2>&1; then
        tail -20 "$OUT/$name.log"
        record "run:$1:$2:$3" FAIL "see $OUT/$name.log"
        return
    fi
    cp "$dir/metrics.json" "$OUT/$name.json"
    record "run:$1:$2:$3" PASS "$(python3 -c "import json, sys; m = json.load(open(sys.argv[1])); f = m['final']; \
print('status', m['status'], 'error_cm', f and f['error_cm'], 'wall_s', round(m['wall_time_s']), \
'recurrence', m['precision']['recurrence_dtype'])" "$OUT/$name.json")"
}

for part in "$@"; do
    case "$part" in
        tests) tests ;;
        bench) bench ;;
        run:*:*:*) IFS=: read -r _ reg precision seed <<< "$part"; run "$reg" "$precision" "$seed" ;;
        *) echo "unknown part $part; allowed: tests, bench, run:REG:PREC:SEED" >&2; exit 2 ;;
    esac
done

echo "=== device_check summary ($DEVICE, $CONFIG)"
printf '%s\n' "${RESULTS[@]}" | tee "$OUT/summary.txt"
! grep -q '^FAIL' "$OUT/summary.txt"
