#!/usr/bin/env bash
# The paper's ARC-AGI-1 training on several machines with SLURM: plain `accelerate launch`, one launcher per node,
# each starting one process per GPU. Submit with `sbatch runs/slurm-multinode.sh` after `prepare` (runs/arc-agi-1.sh).
#SBATCH --job-name=trm-arc1
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@300
#SBATCH --requeue
# --signal=TERM@300: 5 minutes before the time limit every process gets SIGTERM; all ranks stop after the same step,
# rank 0 writes one checkpoint, and the requeued job continues from it (--resume below). --requeue: SLURM restarts
# the job after a preemption or a node failure.
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
BIN=${BIN:-.venv/bin}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
OUT=${OUT:-runs/arc1}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RESUME=""
if [ -f "$OUT/latest" ]; then RESUME="--resume $OUT"; fi

# One task per node; SLURM_NODEID is that node's rank. --num_processes counts processes on all machines.
srun --kill-on-bad-exit=1 bash -c "
  OMP_NUM_THREADS=\$(( SLURM_CPUS_PER_TASK / $GPUS_PER_NODE )) \
  $BIN/accelerate launch --multi_gpu \
    --num_machines $SLURM_NNODES --machine_rank \$SLURM_NODEID \
    --num_processes $(( SLURM_NNODES * GPUS_PER_NODE )) \
    --main_process_ip $MASTER_ADDR --main_process_port 29500 \
    -m arcsolver.cli train --preset arc-agi-1 --data data/arc1 --out $OUT $RESUME"
