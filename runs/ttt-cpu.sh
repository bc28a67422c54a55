#!/usr/bin/env bash
# Offline test-time-training benchmark on a CPU (benchmarks/ttt_cpu.py): pretrain a CPU-sized TRM on generated
# tasks of families A, then fine-tune (i) new tasks of families A and (ii) tasks of held-out families B with every
# recipe variant, pass@2 before (rows at the mean, no learning) and after. Writes runs/results/ttt-cpu.{md,json},
# stamped with the commit and the command.
#
# Hardware and time: 2-core x86 VM (see the stamp in runs/results/ttt-cpu.md for the CPU model and the load):
# designed for <= 40 min on 2 idle cores with one torch thread; the committed run shared the machine with five
# other jobs (load average ~8) and its wall time is in the results file.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OMP_NUM_THREADS=1 nice "$BIN/python" benchmarks/ttt_cpu.py --results runs/results/ttt-cpu "$@"
