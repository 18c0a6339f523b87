#!/usr/bin/env bash
# Issue 10's GPU checks, prepared as one command for a lent GPU machine (the device tool:
# 15 device-minutes a session, at most 10 minutes a command, so few, full calls).
#
# Here, once, from the project root:   ../shared/tools/device-wheels.sh   (fills .whl/)
# Then one device call per line, `carry: [".whl"]`, with `timeout_s` 600:
#   bash benchmarks/device_check.sh bench run:torus_dog:bf16:0      # ~3 min + one run
#   bash benchmarks/device_check.sh run:none:bf16:0                 # one run
# A run took 379-408 s in TF32 on an H100 (reference runs); bf16 aims at <= 180 s. With
# the machine's start-up counted, 15 device-minutes may hold only the first call: bench
# comes first, so its files are back even when the run is cut off (its log then has the
# per-epoch times, enough to extrapolate the full run's wall time).
#
# Parts, run in the order given:
#   bench                 CUDA tests; train_step.py at paper size per precision (fp32, tf32,
#                         bf16; dense and 90 %); packed_step.py (K = 1, 2, 4; tf32, bf16)
#   run:REG:PREC:SEED     one full paper-scale navigation run (config/navigation/paper.yaml,
#                         regularizer REG of config/config.yaml, 90 %, no lottery: the
#                         reference H100 runs' setting) at precision PREC
# Files go to $OUT (the device tool's folder; ./device_out elsewhere): tests.log,
# train_step.csv, packed_step.csv, bench.log, and per run <REG>-<PREC>-s<SEED>.json
# (its metrics.json) and .log. Compare runs with ../shared/reference/paper-scale-h100/
# (TF32, commit d84dc9e): torus_dog s0 5.75 cm, none s0 31.7, none s1 89.2.
#
# On a CPU (a check of this script, not a measurement):
#   CONFIG=config/navigation/smoke.yaml DEVICE=cpu BENCH_STEPS=1 bash benchmarks/device_check.sh bench run:none:bf16:0
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-device_out}"
CONFIG="${CONFIG:-config/navigation/paper.yaml}"
DEVICE="${DEVICE:-cuda}"
BENCH_STEPS="${BENCH_STEPS:-20}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

if [ -d .whl ] && ! python3 -c "import jsonschema" 2>/dev/null; then   # the GPU machine lacks it
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"   # this checkout's package, no install
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

bench() {
    { python3 -m pytest -q -p no:cacheprovider tests/test_training.py -k "cuda or precision or bf16" 2>&1 || true; } \
        | tee "$OUT/tests.log" | tail -3
    {
        for precision in fp32 tf32 bf16; do
            python3 benchmarks/train_step.py --config "$CONFIG" --device "$DEVICE" --steps "$BENCH_STEPS" \
                --set "training.precision=$precision" --csv "$OUT/train_step-$precision.csv"
        done
        for precision in tf32 bf16; do
            python3 benchmarks/packed_step.py --config "$CONFIG" --device "$DEVICE" --precision "$precision" \
                --runs 1 2 4 --steps "$((BENCH_STEPS / 4 + 1))" --csv "$OUT/packed-$precision.csv"
        done
    } 2>&1 | tee "$OUT/bench.log"
    python3 - "$OUT" <<'EOF'
import sys
from pathlib import Path

import pandas as pd

out = Path(sys.argv[1])
for stem in ("train_step", "packed"):
    parts = sorted(out.glob(f"{stem}-*.csv"))
    pd.concat(map(pd.read_csv, parts)).to_csv(out / f"{stem}.csv", index=False)
    for part in parts:
        part.unlink()
EOF
}

run() {  # run REG PREC SEED
    local name="$1-$2-s$3" assignments dir
    local -a args=(--config "$CONFIG" --seed "$3" --device "$DEVICE" --set "training.precision=$2")
    assignments="$(python3 - "$1" "$CONFIG" <<'EOF'
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
)"
    while IFS= read -r assignment; do args+=(--set "$assignment"); done <<< "$assignments"
    dir="$(mktemp -d)/$name"
    echo "run $name: ${args[*]}"
    python3 -m geosparse train navigation "${args[@]}" --out "$dir" > "$OUT/$name.log" 2>&1 \
        || { tail -20 "$OUT/$name.log"; return 1; }
    cp "$dir/metrics.json" "$OUT/$name.json"
    python3 -c "import json, sys; m = json.load(open(sys.argv[1])); f = m['final']; \
print(sys.argv[2], 'error_cm', f['error_cm'], 'W_hh', f['W_hh_sparsity'], 'wall_s', m['wall_time_s'])" \
        "$OUT/$name.json" "$name"
}

for part in "$@"; do
    case "$part" in
        bench) bench ;;
        run:*:*:*) IFS=: read -r _ reg precision seed <<< "$part"; run "$reg" "$precision" "$seed" ;;
        *) echo "unknown part $part; allowed: bench, run:REG:PREC:SEED" >&2; exit 2 ;;
    esac
done
