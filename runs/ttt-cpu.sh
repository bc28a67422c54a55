#!/usr/bin/env bash
# Offline test-time-training benchmark on a CPU (benchmarks/ttt_cpu.py): pretrain a CPU-sized TRM on generated
# tasks of families A, then fine-tune (i) new tasks of families A and (ii) tasks of held-out families B with every
# recipe variant, pass@2 before (rows at the mean, no learning) and after. Writes runs/results/ttt-cpu.{md,json},
# stamped with the commit and the command.
#
# Hardware and time: 2-core AMD EPYC VM, one torch thread (two threads on a busy machine run ~10x slower). Measured
# while the machine was shared with five other jobs (load average 8-11): 1,598 s (seed 0) and 1,537 s (--seed 1),
# pretraining 866 s of it; on 2 idle cores it is shorter. Other seeds: bash runs/ttt-cpu.sh --seed 1 #   --work out/ttt-cpu-seed1 --results runs/results/ttt-cpu-seed1
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OMP_NUM_THREADS=1 nice "$BIN/python" benchmarks/ttt_cpu.py --results runs/results/ttt-cpu "$@"
