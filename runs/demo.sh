#!/usr/bin/env bash
# The whole pipeline on the bundled tasks, on CPU, in a few minutes:
#   prepare (10x10 canvas) -> train -> predict --vote -> score.
# Test outputs are never trained on: the bundled tasks are routed as evaluation tasks (demos train, tests predicted).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-out/demo}
BUDGET=${BUDGET:-4m}
rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN/arcsolver" prepare arc --eval tasks/bundled --canvas 10 --num-aug 8 --out "$OUT/data"
"$BIN/arcsolver" train --preset arc-demo-cpu --data "$OUT/data" --out "$OUT/run" --time-budget "$BUDGET"
"$BIN/arcsolver" predict --vote --checkpoint "$OUT/run" --out "$OUT/submission.json"
"$BIN/arcsolver" score "$OUT/submission.json" --solutions tasks/bundled
"$BIN/arcsolver" show --tasks tasks/bundled --submission "$OUT/submission.json" --out "$OUT/report" >/dev/null
echo "report: $OUT/report/index.html"
