#!/usr/bin/env bash
# GPU check, <= 5 minutes on one GPU, unattended, one table on stdout (benchmarks/gpu_check.py says what is in it).
# On a fresh GPU machine:
#   make install TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
#   bash benchmarks/gpu_check.sh | tee runs/results/gpu-check.txt
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%M:%SZ): bash benchmarks/gpu_check.sh $*"
# The hard stop keeps the promise of 5 minutes even if a kernel hangs; the table is printed at the end.
exec timeout --signal=TERM --kill-after=10 300 "$PY" benchmarks/gpu_check.py "$@"
