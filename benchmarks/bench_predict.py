"""Benchmark: `predict --vote` on CPU -- model throughput, end-to-end seconds per task at 1000 versions, and how
small the undo + vote stage is next to the model.

Setup: two bundled tasks (`--tasks N`), prepared as evaluation tasks with up to 1000 augmented versions each on the
CPU demo's 10x10 canvas (`--canvas 30` for the ARC setting: ~9x the work per example), and a checkpoint of the CPU
demo preset (`arc-demo-cpu`; the committed results were measured when it was h=128, 4 heads, RoPE, H2 L2, 4
supervision steps; it is now h=64, H1 L2, 1 step), trained for one step (the weights do not change the work done). Rows:
  * rollout: `inference.rollout` alone on one batch -> examples x supervision steps per second;
  * predict --vote end to end (`predict.predict`: loading, every version of every test input, undo, vote, writing
    submission + candidates) -> seconds per task and per test input;
  * the undo + vote stage alone on the same predictions (`VoteBook.add`) -> grids/s and its share of the total.

    python benchmarks/bench_predict.py                # ~2 min on 2 cores
    python benchmarks/bench_predict.py --num-aug 100  # quicker
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from arcsolver.data.arc_dataset import TaskSet, build  # noqa: E402
from arcsolver.data.arc_tasks import load_tasks  # noqa: E402
from arcsolver.training.config import build_config  # noqa: E402
from arcsolver.inference.rollout import rollout  # noqa: E402
from arcsolver.data.loader import PuzzleLoader  # noqa: E402
from arcsolver.inference.predict import load_model, predict  # noqa: E402
from arcsolver.training.train import train  # noqa: E402
from arcsolver.inference.vote import VoteBook  # noqa: E402

BUNDLED = REPO / "arcsolver" / "data" / "bundled"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-aug", type=int, default=1000)
    ap.add_argument("--canvas", type=int, default=10)
    ap.add_argument("--tasks", type=int, default=2, help="how many bundled tasks")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    tasks = load_tasks(str(BUNDLED))[:args.tasks]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        build(data, [TaskSet("bundled", tasks, test_set=True)], num_aug=args.num_aug, seed=0, canvas=args.canvas)
        cfg = build_config("arc-demo-cpu", ["max_steps=1", "time_budget_s=0"], data=str(data), out=str(tmp / "run"))
        ck = train(cfg, cpu=True, quiet=True, final_eval=False).checkpoint

        # rollout alone
        model, mcfg = load_model(ck, torch.device("cpu"), batch_size=args.batch)
        steps = int(mcfg["model"]["halt_max_steps"])
        batch = next(PuzzleLoader(str(data), "test", global_batch_size=args.batch).test_batches())
        rollout(model, batch)  # warm-up
        reps = []
        for _ in range(3):
            t = time.perf_counter()
            rollout(model, batch)
            reps.append(time.perf_counter() - t)
        roll_s = min(reps)
        ex_steps = args.batch * steps / roll_s

        # predict --vote end to end
        t = time.perf_counter()
        res = predict(ck, tmp / "submission.json", cpu=True, quiet=True, batch_size=args.batch)
        total = time.perf_counter() - t
        n_tasks, n_inputs, n_preds = res.tasks, res.test_inputs, res.predictions

        # the undo + vote stage alone, replayed on the same predictions
        book = res.book
        replay = _replay_inputs(book, data, model, args.batch)
        t = time.perf_counter()
        vb = VoteBook()
        for chunk in replay:
            vb.add(*chunk)
        vote_s = time.perf_counter() - t
        n_vote = sum(len(c[0]) for c in replay)

    versions = n_preds / max(n_inputs, 1)
    print(f"\n## predict --vote on CPU ({torch.get_num_threads()} threads): {n_tasks} bundled task(s), {n_inputs} test "
          f"inputs, {versions:.0f} versions each (asked {args.num_aug}), canvas {args.canvas}, arc-demo-cpu model, "
          f"{steps} supervision steps")
    print("| stage | figure |")
    print("|---|---|")
    print(f"| rollout, batch {args.batch} | {roll_s:.2f} s -> {ex_steps:,.0f} examples x steps / s "
          f"({args.batch / roll_s:,.0f} examples/s) |")
    print(f"| predict --vote end to end | {total:.1f} s: {total / n_tasks:.2f} s per task, "
          f"{total / n_inputs:.2f} s per test input ({n_preds:,} predictions) |")
    print(f"| undo + vote alone | {vote_s:.3f} s for {n_vote:,} grids -> {n_vote / vote_s:,.0f} grids/s, "
          f"{100 * vote_s / total:.1f}% of the end-to-end time |")


def _replay_inputs(book: VoteBook, data: Path, model, batch: int) -> list[tuple]:
    """Re-create VoteBook.add arguments of a whole predict run, with the model's real output format (canvases)
    taken from the labels: same number of grids, same shapes, no model time."""
    from arcsolver.data.loader import ArcSource
    source = ArcSource(str(data))
    a = source.a
    store = source.store
    loader = PuzzleLoader(source, "test", global_batch_size=batch)
    ver_all, ex_all = source.test_items()
    ids = np.array(store.task_ids, dtype=object)
    out = []
    for b in loader.test_batches():
        idx = b["index"].numpy()
        ok = idx >= 0
        idx = idx[ok]
        tok = b["inputs"][torch.from_numpy(ok)].to(torch.uint8).numpy()  # a canvas of the right format
        ver, ex = ver_all[idx], ex_all[idx]
        out.append((ids[a["ver_task"][ver]], a["ex_pos"][ex].astype(np.int64), tok, a["ver_tid"][ver],
                    a["ver_map"][ver], np.zeros(len(idx))))
    return out


if __name__ == "__main__":
    main()
