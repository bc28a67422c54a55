#!/usr/bin/env bash
# The main job on the bundled default, on CPU: prepare the bundled tasks (small 10x10 canvas).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
"$BIN/arcsolver" prepare arc --out "$OUT/data" --canvas 10 --num-aug 1000
