"""Benchmark: the fine-tuning planner on CPU -- what planning costs (% of the budget) and how close its estimate of
prediction time is to the prediction's measured time, on three budgets.

Setup: a checkpoint of the CPU demo preset (`arc-demo-cpu`; runs/results/bench_planner.txt was measured when it was
h=128, 4 heads, H2 L2, 4 supervision steps; it is now h=64, H1 L2, 1 step) pretrained for 2 steps on 8 bundled tasks (the weights do not change the work done), then `arcsolver finetune
--predict --time-budget B` as a user runs it (a subprocess, one thread) on all 12 bundled tasks with `--num-aug`
augmentations. From each run's finetune.json: planning seconds (the checkpoint load + the timed forward step),
what the ladder cut, the steps trained, the predicted and the measured prediction seconds (load, every voted
version of every test input, undo, vote, flushes, candidates). Whether the run ended before its deadline is checked
against the wall clock of the whole process.

    python benchmarks/bench_planner.py                                  # ~4 min on 2 cores
    python benchmarks/bench_planner.py --budgets 30 60 120 --num-aug 100 --out runs/results/bench_planner.txt
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from arcsolver.data.arc_dataset import TaskSet, build  # noqa: E402
from arcsolver.data.arc_tasks import load_tasks  # noqa: E402
from arcsolver.training.config import build_config  # noqa: E402
from arcsolver.training.train import train  # noqa: E402

BUNDLED = REPO / "arcsolver" / "data" / "bundled"


def _commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except Exception:  # noqa: BLE001
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[30.0, 60.0, 120.0])
    ap.add_argument("--num-aug", type=int, default=100)
    ap.add_argument("--preset", default="arc-demo-cpu")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here (stamped)")
    args = ap.parse_args()
    lines = [f"# bench_planner  commit {_commit()}  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             "# command: python benchmarks/bench_planner.py " + " ".join(sys.argv[1:]),
             f"# {args.preset} checkpoint, 12 bundled tasks, --num-aug {args.num_aug}, OMP_NUM_THREADS=1, CPU"]
    for line in lines:
        print(line, flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tasks = load_tasks(str(BUNDLED))
        build(tmp / "pre", [TaskSet("pre", tasks[:8], test_set=True)], num_aug=3, seed=0, canvas=10)
        ck = train(build_config(args.preset, ["max_steps=2", "time_budget_s=0"], data=str(tmp / "pre"),
                                out=str(tmp / "run")), cpu=True, quiet=True, final_eval=False).checkpoint
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for budget in args.budgets:
            out = tmp / f"ft{budget:.0f}"
            t0 = time.time()
            r = subprocess.run([sys.executable, "-m", "arcsolver.cli", "finetune", "--from", str(ck), "--tasks",
                                str(BUNDLED), "--time-budget", f"{budget}s", "--predict", "--out", str(out),
                                "--num-aug", str(args.num_aug), "--cpu"], capture_output=True, text=True, env=env)
            wall = time.time() - t0
            if r.returncode != 0:
                print(f"budget {budget}: exit {r.returncode}\n{r.stderr[-1500:]}", flush=True)
                rows.append(None)
                continue
            s = json.loads((out / "finetune.json").read_text())
            ch = s["plan"]["choices"]
            rows.append({"budget": budget, "wall": wall, "planning": s["planning_seconds"], "cut": ch["cut"],
                         "num_aug": ch["num_aug"], "versions": ch["versions_voted"],
                         "steps": f"{s['embed_steps']}+{s['full_steps']}", "est": s["predict_estimate_s"],
                         "actual": s["predict_seconds"], "stopped": s["predict_stopped_by"]})
            print(f"budget {budget:.0f} s done in {wall:.1f} s", flush=True)
    head = (f"{'budget s':>8} {'wall s':>7} {'planning s':>10} {'% budget':>8} {'cut':>28} {'aug':>4} {'votes':>5} "
            f"{'steps':>9} {'pred est s':>10} {'pred act s':>10} {'est/act':>7} {'pred end':>8}")
    table = [head]
    for row in rows:
        if row is None:
            table.append("failed")
            continue
        table.append(f"{row['budget']:8.0f} {row['wall']:7.1f} {row['planning']:10.2f} "
                     f"{100 * row['planning'] / row['budget']:7.1f}% {row['cut']:>28} {row['num_aug']:4d} "
                     f"{row['versions']:5d} {row['steps']:>9} {row['est']:10.2f} {row['actual']:10.2f} "
                     f"{row['est'] / row['actual']:7.2f} {row['stopped']:>8}")
    for line in table:
        print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines + table) + "\n")


if __name__ == "__main__":
    main()
