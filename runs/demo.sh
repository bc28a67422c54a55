#!/usr/bin/env bash
# The whole pipeline on the bundled tasks, on CPU, in about 5 minutes:
#   prepare (10x10 canvas) -> train (time budget) -> predict --vote -> score -> "solved N/12".
# Test outputs are never trained on: the bundled tasks are routed as evaluation tasks (demos train, tests predicted),
# so a solved task is one whose test output the model produced from the 4 demos alone.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-out/demo}
BUDGET=${BUDGET:-4m}
NUM_AUG=${NUM_AUG:-8}
# One thread: this model's matrices are small, and on a busy 2-core machine torch's second thread mostly waits for
# the first (measured here under load: 1.8 s/step with one thread, ~9 s/step with two).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
TYPICAL=${TYPICAL:-"measured on a busy shared 2-core machine: 0/12 in both runs, 70 and 166 steps; runs/results/demo.log"}
rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN/arcsolver" prepare arc --eval arcsolver/data/bundled --canvas 10 --num-aug "$NUM_AUG" --out "$OUT/data"
"$BIN/arcsolver" train --preset arc-demo-cpu --data "$OUT/data" --out "$OUT/run" --time-budget "$BUDGET"
"$BIN/arcsolver" predict --vote --checkpoint "$OUT/run" --out "$OUT/submission.json"
"$BIN/arcsolver" score "$OUT/submission.json" --solutions arcsolver/data/bundled
"$BIN/arcsolver" score "$OUT/submission.json" --solutions arcsolver/data/bundled --json > "$OUT/score.json"
"$BIN/arcsolver" show --tasks arcsolver/data/bundled --submission "$OUT/submission.json" --out "$OUT/report" >/dev/null
echo "report: $OUT/report/index.html"
# Solved = every test output of the task right within the two attempts (ARC Prize's pass@2, task by task).
"$BIN/python" - "$OUT/score.json" "$TYPICAL" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
solved = sum(1 for t in r["tasks"] if t["score@2"] == 1.0)
print(f"solved {solved}/{r['n_tasks']} ({sys.argv[2]})")
EOF
