"""Held-out exact accuracy of trained runs at their own supervision steps and with N extra loops (the URM reference
evaluates with loop_deltas [0, 8]): does continuing the recursion past training's step count help?

    python benchmarks/extra_loops_eval.py RUN [RUN ...] [--extra-loops 8]

Each RUN is a run folder (its latest checkpoint, EMA weights) whose dataset is the one its config.json names; the
whole test split is evaluated as `train` evaluates it (rollout.evaluate_split), once at halt_max_steps (or the run's
eval_steps) and once at that + N. Prints one markdown row per run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arcsolver.data.loader import PuzzleLoader, open_source  # noqa: E402
from arcsolver.inference.predict import load_model  # noqa: E402
from arcsolver.inference.rollout import evaluate_split, finish_metrics  # noqa: E402
from arcsolver.model import checkpoint  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--extra-loops", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    print("| run | model | steps trained | final train exact (last log) | held-out exact, own steps | "
          f"held-out exact, +{args.extra_loops} loops |\n|---|---|---|---|---|---|")
    for run in args.runs:
        ck = checkpoint.resolve(run)
        cfg = checkpoint.load_config(ck)
        model, _ = load_model(ck, torch.device("cpu"))
        source = open_source(cfg["data"]["path"])
        steps = int(cfg["train"].get("eval_steps", 0)) or int(cfg["model"]["halt_max_steps"])
        exact = []
        for s in (steps, steps + args.extra_loops):
            test = PuzzleLoader(source, "test", global_batch_size=args.batch_size)
            exact.append(finish_metrics(evaluate_split(model, test.test_batches(), torch.device("cpu"),
                                                       steps=s))["exact_accuracy"])
        logs = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line.strip()]
        train = [m for m in logs if m.get("split") == "train"]
        train_exact = f"{train[-1]['exact_accuracy']:.3f}" if train else "?"
        print(f"| {run} | {cfg['model'].get('name', 'trm')} | {cfg['step']} | {train_exact} | {exact[0]:.3f} | "
              f"{exact[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
