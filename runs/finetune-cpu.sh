#!/usr/bin/env bash
# Test-time fine-tuning, the whole idea on CPU in ~10 minutes:
#   pretrain on six bundled tasks (A), then fine-tune on the six others (B), which the model never saw,
#   and score B's held-out test outputs before (new puzzle rows at the mean, no learning) and after.
# A: flip-lr gravity-down recolor-1-to-2 frame upscale-2x transpose
# B: flip-ud gravity-left rotate-90 fill-boxes invert extend-down
# B's task files are never trained on before fine-tuning, but some are relatives of A's under the dihedral
# augmentation (flip-ud is flip-lr rotated), as real ARC tasks share structure with training tasks.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-out/finetune-cpu}
PRETRAIN=${PRETRAIN:-4m}
BUDGET=${BUDGET:-4m}
rm -rf "$OUT"
mkdir -p "$OUT/A" "$OUT/B"
for t in flip-lr gravity-down recolor-1-to-2 frame upscale-2x transpose; do cp "arcsolver/data/bundled/$t.json" "$OUT/A/"; done
for t in flip-ud gravity-left rotate-90 fill-boxes invert extend-down; do cp "arcsolver/data/bundled/$t.json" "$OUT/B/"; done

"$BIN/arcsolver" prepare arc --train "$OUT/A" --canvas 10 --num-aug 16 --out "$OUT/pre-data"
"$BIN/arcsolver" train --preset arc-demo-cpu --data "$OUT/pre-data" --out "$OUT/pre" --time-budget "$PRETRAIN"

echo "== before fine-tuning: B's rows at the mean of the trained rows, no learning (lr 0)"
"$BIN/arcsolver" finetune --from "$OUT/pre" --tasks "$OUT/B" --time-budget "$BUDGET" --embed-steps 1 \
    --full-steps 0 --set lr=0 --set puzzle_emb_lr=0 --num-aug 8 --predict --out "$OUT/before"
"$BIN/arcsolver" score "$OUT/before/submission.json" --solutions "$OUT/B"

echo "== after fine-tuning for $BUDGET (fine-tune + predict)"
start=$(date +%s)
"$BIN/arcsolver" finetune --from "$OUT/pre" --tasks "$OUT/B" --time-budget "$BUDGET" --num-aug 8 --predict \
    --out "$OUT/after"
echo "finetune --predict wall: $(( $(date +%s) - start )) s (budget $BUDGET)"
"$BIN/arcsolver" validate "$OUT/after/submission.json" --tasks "$OUT/B"
"$BIN/arcsolver" score "$OUT/after/submission.json" --solutions "$OUT/B"
