#!/usr/bin/env bash
# TRM's CPU sanity preset against URM's (urm-cpu) at equal wall-clock: both trained at the same time, one thread
# each, with the same --time-budget (each plans the steps that fit), so both see the same machine; per seed.
#   TASK=sudoku|maze (default sudoku), SEEDS="0 1", BUDGET=7m. Prints held-out exact accuracy of the final
#   evaluation of each run, then URM's and TRM's with 8 extra loops (URM's loop_deltas [0, 8]).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
TASK=${TASK:-sudoku}
SEEDS=${SEEDS:-0 1}
BUDGET=${BUDGET:-7m}
OUT=${OUT:-out/urm-vs-trm-$TASK}
if [ "$TASK" = sudoku ]; then
    [ -d "$OUT/data" ] || "$BIN/arcsolver" prepare sudoku --generate 5000 --size 6 --test-count 1000 --seed 0 \
        --out "$OUT/data"
    TRM_PRESET=sudoku-cpu
else
    [ -d "$OUT/data" ] || "$BIN/arcsolver" prepare maze --generate 5000 --size 7 --any --min-path 2 --seed 0 \
        --test-count 1000 --out "$OUT/data"
    TRM_PRESET=maze-cpu
fi
for seed in $SEEDS; do
    for m in trm urm; do
        preset=$TRM_PRESET; [ $m = urm ] && preset=urm-cpu
        OMP_NUM_THREADS=1 "$BIN/arcsolver" train --preset $preset --data "$OUT/data" --out "$OUT/$m-seed$seed" \
            --set seed=$seed --time-budget "$BUDGET" --cpu --overwrite > "$OUT/$m-seed$seed.log" 2>&1 &
    done
    wait
done
runs=(); for seed in $SEEDS; do runs+=("$OUT/trm-seed$seed" "$OUT/urm-seed$seed"); done
OMP_NUM_THREADS=2 "$BIN/python" benchmarks/extra_loops_eval.py "${runs[@]}" --extra-loops 8
