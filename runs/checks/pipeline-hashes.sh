#!/usr/bin/env bash
# The demo pipeline with fixed step counts (no clock in it), then sha256 of every file it wrote: prepared datasets
# (bundled tasks, generated tasks), the trained checkpoint, predict's submission and candidates, and a fine-tuned
# checkpoint with its submission. Run before and after a refactor that must not change behaviour; the two lists must
# be identical (runs/results/pipeline-hashes.md). CPU, one thread, about 2 minutes on 2 cores.
#   bash runs/checks/pipeline-hashes.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
OUT=${1:-out/pipeline-hashes}
export OMP_NUM_THREADS=1
rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN/arcsolver" generate --families flip,gravity,invert --tasks-per-family 3 --max-size 8 --seed 3 \
    --out "$OUT/gen" >>"$OUT/steps.log" 2>&1
"$BIN/arcsolver" prepare arc --eval arcsolver/data/bundled --train "$OUT/gen" --canvas 10 --num-aug 2 \
    --out "$OUT/data" >>"$OUT/steps.log" 2>&1
"$BIN/arcsolver" train --preset arc-demo-cpu --data "$OUT/data" --out "$OUT/run" --steps 12 \
    --set time_budget_s=0 --set log_every=4 >>"$OUT/steps.log" 2>&1
"$BIN/arcsolver" predict --vote --checkpoint "$OUT/run" --out "$OUT/submission.json" >>"$OUT/steps.log" 2>&1
"$BIN/arcsolver" finetune --from "$OUT/run" --tasks arcsolver/data/bundled --embed-steps 3 --full-steps 3 \
    --predict --out "$OUT/ft" >>"$OUT/steps.log" 2>&1
# Files whose content carries a clock or a path by design are left out: logs, metrics (wall times), run configs
# (absolute paths), finetune.json (seconds), output markers. Compare runs made with the same OUT: prepared
# datasets record their sources' paths.
(cd "$OUT" && find . -type f ! -name '*.jsonl' ! -name '*.log' ! -name '.arcsolver-output.json' \
    ! -name 'config.json' ! -name 'plan.json' ! -name 'run.json' ! -name 'finetune.json' -print0 | sort -z | xargs -0 sha256sum)
