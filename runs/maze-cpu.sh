#!/usr/bin/env bash
# Sanity benchmark on CPU: 7x7 mazes, generated; <= 15 minutes on one core. Prints held-out exact accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-out/maze7}
"$BIN/arcsolver" prepare maze --generate 3000 --size 7 --any --test-count 1000 --seed 0 --out "$OUT/data"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$BIN/arcsolver" train --preset maze-cpu --data "$OUT/data" --out "$OUT/run"
echo "learning curve: $OUT/run/metrics.jsonl"
