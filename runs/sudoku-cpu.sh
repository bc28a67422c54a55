#!/usr/bin/env bash
# Sanity benchmark on CPU: 6x6 Sudoku, generated; <= 15 minutes on 2 cores. Prints held-out exact accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-out/sudoku6}
"$BIN/arcsolver" prepare sudoku --generate 5000 --size 6 --test-count 1000 --seed 0 --out "$OUT/data"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$BIN/arcsolver" train --preset sudoku-cpu --data "$OUT/data" --out "$OUT/run" \
    --overwrite  # this script owns $OUT: a re-run starts the run over (continue one with --resume instead)
echo "learning curve: $OUT/run/metrics.jsonl"
"$BIN/arcsolver" report "$OUT/run" --out "$OUT/report"   # curves as a page (needs the report extra)
