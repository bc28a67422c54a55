"""The Kaggle run rehearsed on CPU processes: does the fine-tuning plan fill the window, and does it come true?

Builds a 240-task test file in the 2025 competition format from `arcsolver generate` (so the answers are known),
pretrains a tiny checkpoint on the full 30x30 canvas, packages it (`--recipe`, default cpu-default), then runs
`arcsolver kaggle rehearse --mode full --processes N` (the notebook's solver through `accelerate launch` on N CPU
processes when N > 1) and writes the report: validity, model answers, score, the solver's plan vs what happened per
phase (training/plan_log.py), and the share of the window spent in training steps and prediction.

    python benchmarks/kaggle_rehearsal.py --processes 2 --time-limit 10m --out runs/results/kaggle-rehearsal-2p.md

Wall time: the time limit plus ~1 minute (pretraining, the wheel, the offline install).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from arcsolver.data.arc_tasks import load_tasks  # noqa: E402
from arcsolver.data.arc_dataset import TaskSet, build  # noqa: E402
from arcsolver.data.generate import generate  # noqa: E402
from arcsolver.kaggle.package import package  # noqa: E402
from arcsolver.kaggle.rehearse import format_report, rehearse  # noqa: E402
from arcsolver.runtime.units import parse_duration  # noqa: E402
from arcsolver.training.config import build_config  # noqa: E402
from arcsolver.training.plan_log import format_table, side_by_side  # noqa: E402
from arcsolver.training.train import train  # noqa: E402


def competition_files(work: Path, n_tasks: int, seed: int) -> tuple[Path, Path, Path]:
    """(challenges, solutions, pretraining tasks folder): `n_tasks` generated tasks as the 2025 test file (no test
    outputs) with its solutions file, and other tasks of the same families for pretraining."""
    generate("all", -(-n_tasks // 35), 12, seed, work / "test-tasks")
    generate("all", 4, 12, seed + 1, work / "pre-tasks")
    tasks = load_tasks(str(work / "test-tasks"), require_outputs=True)[:n_tasks]
    challenges = {t.id: {"train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in t.train],
                         "test": [{"input": p.input.tolist()} for p in t.test]} for t in tasks}
    solutions = {t.id: [p.output.tolist() for p in t.test] for t in tasks}
    (work / "comp").mkdir()
    ch, so = work / "comp" / "arc-agi_test_challenges.json", work / "comp" / "arc-agi_test_solutions.json"
    ch.write_text(json.dumps(challenges))
    so.write_text(json.dumps(solutions))
    return ch, so, work / "pre-tasks"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--time-limit", default="10m")
    ap.add_argument("--tasks", type=int, default=240)
    ap.add_argument("--recipe", default="cpu-default")
    ap.add_argument("--pretrain-steps", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the report (Markdown) here too")
    args = ap.parse_args()
    t0 = time.time()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="kaggle-rehearsal-") as tmp:
        work = Path(tmp)
        ch, so, pre = competition_files(work, args.tasks, args.seed)
        build(work / "data", [TaskSet("pre", load_tasks(str(pre), require_outputs=True))], num_aug=4, seed=0,
              canvas=30)
        ck = train(build_config("tiny-cpu", [f"max_steps={args.pretrain_steps}", "global_batch_size=16",
                                             "arch.hidden_size=64"], data=str(work / "data"), out=str(work / "run")),
                   cpu=True, quiet=True, final_eval=False).checkpoint
        pkg = package(ck, work / "pkg", owner="rehearsal", finetune_args=["--recipe", args.recipe])
        r = rehearse(pkg, test_file=ch, solutions=so, time_limit_s=parse_duration(args.time_limit), mode="full",
                     keep=work / "keep", processes=args.processes)
    solver = (r.get("run_summary") or {}).get("solver") or {}
    pva = solver.get("plan_vs_actual") or {}
    lines = [f"# Kaggle rehearsal on CPU: {args.processes} solver process(es), time limit {args.time_limit}",
             "", f"commit {commit}, {time.strftime('%Y-%m-%d', time.gmtime())}; `python benchmarks/kaggle_rehearsal.py"
             f" --processes {args.processes} --time-limit {args.time_limit} --tasks {args.tasks} --recipe "
             f"{args.recipe}`; {time.time() - t0:.0f} s wall", "", "```", format_report(r), "```", ""]
    if pva:
        lines += ["## The solver's plan vs what happened", ""] + format_table(pva) + [""]
        ratios = [x["ratio"] for x in side_by_side(pva) if x["ratio"] is not None and x["phase"] not in
                  ("planning", "prepare")]
        lines.append(f"phases planned ahead (training and prediction): actual/planned "
                     f"{', '.join(f'{x:.2f}' for x in ratios)}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if r.get("valid") and r.get("complete") else 1


if __name__ == "__main__":
    sys.exit(main())
