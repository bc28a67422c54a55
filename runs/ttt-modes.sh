#!/usr/bin/env bash
# The TTT CPU benchmark in both puzzle-embedding modes (benchmarks/ttt_modes.py): pretrain a CPU-sized TRM on
# generated tasks in `version` mode, in `task` mode, and in `task` mode on 10x more tasks at the same table memory;
# fine-tune each on (i) new tasks of the pretraining families and (ii) held-out families with the default recipe;
# pass@2 before/after, table bytes, step time. Writes runs/results/ttt-modes.{md,json}, stamped with the commit and
# the command. One torch thread, niced (a shared machine); the scale used is in the results' header.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OMP_NUM_THREADS=1 nice "$BIN/python" benchmarks/ttt_modes.py --results runs/results/ttt-modes "$@"
