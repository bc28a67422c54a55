"""Benchmark: undo + hash of predicted canvases (`vote.undo_batch`), and VoteBook.add, on one core.

Representative input: random grids of random shapes 1..30 x 1..30, each augmented with a random dihedral transform
and a random colour map and encoded at the top-left (`encoding.encode_grid`), as the model's output would be. The
bar is 50,000 grids/s for undo + hash. Run: `python benchmarks/bench_vote.py [--n 50000] [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # one core, as the bar is stated (the kernel is serial anyway)

import numpy as np  # noqa: E402

from arcsolver.data import colors, dihedral  # noqa: E402
from arcsolver.data.encoding import encode_grid  # noqa: E402
from arcsolver.inference.vote import VoteBook, undo_batch  # noqa: E402


def make_batch(n: int, seed: int = 0, n_distinct: int | None = None):
    """n augmented canvases; with n_distinct, answers repeat (as votes do) across that many distinct grids."""
    rng = np.random.default_rng(seed)
    pool = n_distinct or n
    base = [rng.integers(0, 10, size=(rng.integers(1, 31), rng.integers(1, 31))).astype(np.uint8) for _ in range(pool)]
    pick = rng.integers(0, pool, n) if n_distinct else np.arange(n)
    tids = rng.integers(0, dihedral.NUM_TRANSFORMS, n)
    cmaps = np.stack([colors.random_map(rng) for _ in range(n)])
    tokens = np.empty((n, 900), dtype=np.uint8)
    for k in range(n):
        tokens[k] = encode_grid(colors.apply(dihedral.transform(base[pick[k]], int(tids[k])), cmaps[k]))
    return tokens, tids, cmaps, pick


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="canvases per batch")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    tokens, tids, cmaps, _ = make_batch(args.n)
    area = float(np.mean([(t >= 2).sum() for t in tokens[:2000]]))
    undo_batch(tokens[:10], tids[:10], cmaps[:10])  # compile (or load the numba cache) outside the timing
    for strict in (True, False):
        dt = best_of(lambda: undo_batch(tokens, tids, cmaps, strict=strict), args.repeat)
        print(f"undo_batch strict={strict!s:<5}: {args.n / dt:12,.0f} grids/s  "
              f"({args.n} canvases, mean {area:.0f} cells, {1e6 * dt / args.n:.2f} us/grid)")

    # VoteBook.add on a realistic vote pattern: 100 tasks x 1 test input, answers drawn from a few per task.
    n_tasks = 100
    tokens, tids, cmaps, pick = make_batch(args.n, seed=1, n_distinct=n_tasks * 8)
    task_ids = np.array([f"task{p // 8:03d}" for p in pick])
    test_index = np.zeros(args.n, dtype=np.int64)
    q = np.random.default_rng(2).normal(size=args.n)

    def fill() -> None:
        book = VoteBook()
        for s in range(0, args.n, 768):  # batches of the size a GPU eval step would deliver
            e = s + 768
            book.add(task_ids[s:e], test_index[s:e], tokens[s:e], tids[s:e], cmaps[s:e], q[s:e])

    fill()
    dt = best_of(fill, args.repeat)
    print(f"VoteBook.add (batches of 768)  : {args.n / dt:12,.0f} predictions/s")


if __name__ == "__main__":
    main()
