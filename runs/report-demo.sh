#!/usr/bin/env bash
# `arcsolver report` on two CPU runs of the demo recipe that differ in one setting: one supervision step per example
# (arc-demo-cpu's halt_max_steps = 1) against the reference's four; 100 s each on the bundled tasks, prepared as
# runs/demo.sh does. ~4 minutes on 2 cores. The page and its screenshot (headless Chromium, where installed) are
# README's picture of a report.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-out/report-demo}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$BIN/arcsolver" prepare arc --num-aug 2 --canvas 10 --out "$OUT/data"
for halt in 1 4; do
    "$BIN/arcsolver" train --preset arc-demo-cpu --data "$OUT/data" --out "$OUT/halt-$halt" --time-budget 100s \
        --set arch.halt_max_steps=$halt --set log_every=10 --set eval_interval_steps=40 \
        --overwrite  # a re-run starts over
done
"$BIN/arcsolver" report "$OUT/halt-1" "$OUT/halt-4" --out "$OUT/report" --cpu
if command -v chromium >/dev/null; then
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
        --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --hide-scrollbars \
        --window-size=1280,2400 --screenshot="$OUT/report.png" "file://$(realpath "$OUT/report/index.html")" \
        2>/dev/null
    echo "screenshot: $OUT/report.png"
fi
