#!/usr/bin/env bash
# The destructive cases of issue 21, re-run by hand on the CLI (CPU, 2 cores, ~3 min): each prints its exit code,
# its stderr, and whether every file that existed before is byte-identical afterwards.
# Usage: bash runs/checks/destructive-cases.sh > runs/results/destructive-cases.md
set -u
A="${ARCSOLVER:-arcsolver}"
W=$(mktemp -d); L=$(mktemp -d)  # L: the command's own stdout/stderr, outside the hashed tree
cd "$W"
export OMP_NUM_THREADS=1
echo "# Destructive cases by hand ($(date -u +%F), commit $(git -C "$OLDPWD" rev-parse --short HEAD))"
echo
"$A" prepare arc --out data --num-aug 2 >/dev/null 2>&1
"$A" train --preset tiny-cpu --data data --out run --steps 2 --cpu --set eval_max_batches=1 >/dev/null 2>&1
mkdir keep; echo notes > keep/notes.txt
"$A" predict --checkpoint run --out sub.json --cpu >/dev/null 2>&1
hashes() { find . -type f -not -path './scratch*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16; }
case_() {
  local name="$1"; shift
  local before after; before=$(hashes)
  "$@" > "$L/out.txt" 2> "$L/err.txt"; local rc=$?
  after=$(hashes)
  echo "- **$name**: \`${*/#$A/arcsolver}\` -> exit $rc, files $( [ "$before" = "$after" ] && echo identical || echo CHANGED )"
  echo "  - stderr: \`$(tail -n 3 "$L/err.txt" | tr '\n' ' ' | cut -c1-300)\`"
}
case_ "prepare into a user's folder" "$A" prepare arc --out keep
case_ "prepare --out = --eval folder" "$A" prepare arc --eval keep --out keep
case_ "prepare --out data/meta.json" "$A" prepare arc --out data/meta.json
case_ "predict --out data/meta.json" "$A" predict --checkpoint run --data data --out data/meta.json --cpu
case_ "predict --out run/latest" "$A" predict --checkpoint run --out run/latest --cpu
case_ "predict --device-batch-size -1 over sub.json" "$A" predict --checkpoint run --out sub.json --device-batch-size -1 --cpu
case_ "predict --batch-size 0" "$A" predict --checkpoint run --out sub.json --batch-size 0 --cpu
case_ "predict --batch-size -4" "$A" predict --checkpoint run --out sub.json --batch-size -4 --cpu
case_ "predict --batch-size (20 digits)" "$A" predict --checkpoint run --out sub.json --batch-size 99999999999999999999 --cpu
case_ "predict --steps -1" "$A" predict --checkpoint run --out sub.json --steps -1 --cpu
case_ "predict --out /proc/x.json" "$A" predict --checkpoint run --out /proc/x.json --cpu
case_ "train --set max_steps=(26 digits)" "$A" train --preset tiny-cpu --data data --out run2 --set max_steps=99999999999999999999999999 --cpu
case_ "train --set seed=(20 digits)" "$A" train --preset tiny-cpu --data data --out run2 --set seed=99999999999999999999 --cpu
case_ "train again into its run, no --resume" "$A" train --preset tiny-cpu --data data --out run --steps 2 --cpu
case_ "generate into a user's folder" "$A" generate --families flip --out keep
case_ "finetune into the checkpoint's run" "$A" finetune --from run --tasks data --out run/ft --embed-steps 1 --cpu
case_ "kaggle package --finetune-args max_steps (26 digits)" "$A" kaggle package --checkpoint run --out pkg --owner alice --finetune-args '--set max_steps=99999999999999999999999999'
case_ "kaggle package --finetune-args seed (20 digits)" "$A" kaggle package --checkpoint run --out pkg --owner alice --finetune-args '--set seed=99999999999999999999'
echo
echo "Twice into the same --out (exit code, last line of stderr):"
for i in 1 2; do
  "$A" prepare arc --out d2 --num-aug 1 >/dev/null 2>"$L/e.txt"; echo "- prepare run $i: exit $?, \`$(tail -n1 "$L/e.txt")\`"
  "$A" predict --checkpoint run --out s2.json --cpu >/dev/null 2>"$L/e.txt"; echo "- predict run $i: exit $?, \`$(grep -m1 replacing "$L/e.txt")\`"
  "$A" generate --families flip --out g2 >/dev/null 2>"$L/e.txt"; echo "- generate run $i: exit $?, \`$(tail -n1 "$L/e.txt")\`"
done
"$A" generate --families majority_colour --tasks-per-family 63 --max-size 6 --seed 1 --out mc >/dev/null 2>"$L/e.txt"
echo "- generate majority_colour 63 tasks, max size 6, seed 1: exit $?, $(ls mc | grep -c json) task files"
cd / && rm -rf "$W" "$L"
