#!/usr/bin/env bash
# `arcsolver report` on two small CPU runs that differ in one setting (the learning rate), on the bundled tasks:
# curves overlaid, the config diff, a gallery of the 12 test tasks. ~2 minutes on 2 cores. The page and its
# screenshot (headless Chromium, where installed) are what README's picture of a report shows.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-out/report-demo}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$BIN/arcsolver" prepare arc --num-aug 8 --canvas 10 --out "$OUT/data"
for lr in 1e-3 3e-3; do
    "$BIN/arcsolver" train --preset tiny-cpu --data "$OUT/data" --out "$OUT/lr-$lr" --steps 300 --cpu \
        --set lr=$lr --set log_every=10 --set eval_interval_steps=50 --set eval_max_batches=0
done
"$BIN/arcsolver" report "$OUT/lr-1e-3" "$OUT/lr-3e-3" --out "$OUT/report" --cpu
if command -v chromium >/dev/null; then
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
        --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --hide-scrollbars \
        --window-size=1280,2400 --screenshot="$OUT/report.png" "file://$(realpath "$OUT/report/index.html")" \
        2>/dev/null
    echo "screenshot: $OUT/report.png"
fi
