"""Why does (or doesn't) the CPU demo learn its 12 bundled tasks? Fixed-step runs of a recipe, three figures each.

`make demo` trains under a time budget, so its step count depends on the machine's load. To compare recipes, this
runs the same pipeline for a fixed number of steps (one torch thread) and reports, for one prepared dataset:

  * fit: exact accuracy of the trained model (EMA weights, as predict uses them; raw weights too) on every
    (version, demonstration pair) it trained on, painted at the top-left as test inputs are: can the model even
    reproduce its training pairs?
  * train: the training metrics of the last logging window (translated canvases, rows that halted);
  * solved: `predict --vote` + score on the bundled tasks, tasks with every test output right within two attempts
    (the figure `make demo` prints), plus the per-item exact accuracy of the test split.

Results are appended as one JSON line per run to --log (runs/results/demo-experiments.jsonl by default); the
experiment log runs/results/demo-experiments.md cites them.

    python benchmarks/demo_recipe.py --name base --steps 400                       # the preset as it is
    python benchmarks/demo_recipe.py --name noaug --num-aug 0 --steps 400 --set lr=3e-3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def fit_accuracy(ckpt: Path, data: Path, ema: bool, steps: int | None = None) -> dict[str, float]:
    """Exact and token accuracy on every (version, demonstration) pair of the dataset, top-left, no translation."""
    import numpy as np
    import torch

    from arcsolver.inference.rollout import rollout
    from arcsolver.data.loader import ArcSource
    from arcsolver.inference.predict import load_model

    model, _ = load_model(ckpt, torch.device("cpu"), ema=ema)
    src = ArcSource(data)
    a = src.a
    vers, exs = [], []
    for t in range(len(a["task_train"]) - 1):
        e = a["train_ex"][a["task_train"][t]:a["task_train"][t + 1]]
        v = np.arange(a["task_ver"][t], a["task_ver"][t + 1], dtype=np.int64)
        vers.append(np.repeat(v, len(e)))
        exs.append(np.tile(e, len(v)))
    ver, ex = np.concatenate(vers), np.concatenate(exs)
    is_v0 = ver == a["task_ver"][:-1][a["ver_task"][ver]]
    inputs, labels, pids = src.encode(ver, ex, np.zeros(len(ver), np.bool_), np.zeros(len(ver), np.uint64))
    batch = {"inputs": torch.from_numpy(inputs.astype(np.int32)), "labels": torch.from_numpy(labels),
             "puzzle_identifiers": torch.from_numpy(pids)}
    preds, _ = rollout(model, batch, steps)
    lab = batch["labels"]
    mask = lab != -100
    right = (preds == lab) & mask
    exact = (right.sum(-1) == mask.sum(-1)).numpy()
    token = (right.sum(-1).float() / mask.sum(-1).clamp_min(1)).numpy()
    task_of = a["ver_task"][ver]
    by_task = {src.store.task_ids[t]: round(float(token[task_of == t].mean()), 3) for t in np.unique(task_of)}
    return {"exact": float(exact.mean()), "token": float(token.mean()), "exact_v0": float(exact[is_v0].mean()),
            "pairs": int(len(ver)), "token_by_task": by_task}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--preset", default="arc-demo-cpu")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--num-aug", type=int, default=8)
    p.add_argument("--canvas", type=int, default=10)
    p.add_argument("--tasks", default=str(REPO / "arcsolver" / "data" / "bundled"))
    p.add_argument("--prepare-args", default="", help="extra arguments for `arcsolver prepare arc`")
    p.add_argument("--no-translate", action="store_true",
                   help="experiment: every training example at the top-left (patches the loader in this process)")
    p.add_argument("--work", default="/tmp/demo_recipe")
    p.add_argument("--log", default=str(REPO / "runs" / "results" / "demo-experiments.jsonl"))
    args = p.parse_args(argv)

    torch_threads = os.environ.get("OMP_NUM_THREADS")
    import torch
    torch.set_num_threads(int(torch_threads or 1))
    from arcsolver.training.config import build_config
    from arcsolver.inference.predict import predict
    from arcsolver.inference.score import load_solutions_any, score_submission
    from arcsolver.training.train import train

    if args.no_translate:
        from arcsolver.data.loader import ArcSource

        def top_left_epoch(self, seed, _epoch=ArcSource.epoch):
            ver, ex, keep = _epoch(self, seed)
            return ver, ex, keep | True
        ArcSource.epoch = top_left_epoch

    work = Path(args.work) / args.name
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    data = work / "data"
    cmd = [sys.executable, "-m", "arcsolver.cli", "prepare", "arc", "--eval", args.tasks, "--canvas",
           str(args.canvas), "--num-aug", str(args.num_aug), "--out", str(data)] + args.prepare_args.split()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    overrides = list(args.overrides) + [f"max_steps={args.steps}", "time_budget_s=0.0"]
    cfg = build_config(args.preset, overrides, data=str(data), out=str(work / "run"))
    c0, w0 = time.process_time(), time.time()
    res = train(cfg, cpu=True, quiet=True, final_eval=True)
    train_cpu, train_wall = time.process_time() - c0, time.time() - w0

    fit = fit_accuracy(work / "run", data, ema=cfg.ema)
    fit_raw = fit_accuracy(work / "run", data, ema=False) if cfg.ema else fit
    sub = work / "submission.json"
    predict(work / "run", sub, vote=True, cpu=True, quiet=True)
    score = score_submission(json.loads(sub.read_text()), load_solutions_any(args.tasks))
    solved = sorted(t["task"] for t in score["tasks"] if t["score@2"] == 1.0)
    row = {
        "name": args.name, "commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/demo_recipe.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "steps": res.steps, "train_cpu_s": round(train_cpu, 1), "train_wall_s": round(train_wall, 1),
        "load_avg": round(os.getloadavg()[0], 2),
        "train_window": {k: round(v, 4) for k, v in res.last_metrics.items()
                         if k in ("accuracy", "exact_accuracy", "lm_loss", "steps", "lr")},
        "fit_ema": {k: round(v, 4) if isinstance(v, float) else v for k, v in fit.items()},
        "fit_raw": {k: round(v, 4) if isinstance(v, float) else v for k, v in fit_raw.items()},
        "test_exact": round(res.eval_metrics.get("exact_accuracy", float("nan")), 4),
        "test_token": round(res.eval_metrics.get("token_accuracy", float("nan")), 4),
        "solved": len(solved), "n_tasks": score["n_tasks"], "solved_tasks": solved,
    }
    line = json.dumps(row)
    print(line)
    with open(args.log, "a") as f:
        f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
