#!/usr/bin/env bash
# Sanity benchmark on CPU: 7x7 mazes (with loops), generated; <= 15 minutes on 2 cores. Prints held-out exact
# accuracy. --min-path 2: no maze whose start touches its goal (the answer would be the input).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-out/maze7}
"$BIN/arcsolver" prepare maze --generate 5000 --size 7 --any --min-path 2 --test-count 1000 --seed 0 --out "$OUT/data"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$BIN/arcsolver" train --preset maze-cpu --data "$OUT/data" --out "$OUT/run" \
    --overwrite  # this script owns $OUT: a re-run starts the run over (continue one with --resume instead)
echo "learning curve: $OUT/run/metrics.jsonl"
"$BIN/arcsolver" report "$OUT/run" --out "$OUT/report"   # curves as a page (needs the report extra)
