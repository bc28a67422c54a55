"""`prepare arc --workers`: the same generated tasks prepared by 1 and by N processes, side by side in one run.

For each task count: `arcsolver generate` makes the tasks (reused from --work), then `prepare arc` runs with
`--workers 1` and `--workers N` alternately (`--reps` pairs), each in its own process; prints wall times, the speed-up
(median serial / median parallel) and whether the two datasets are byte-identical (sha256 of every file).

    python benchmarks/bench_prepare_workers.py --tasks 10000 --workers 2 --out runs/results/bench_prepare_workers.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_scale import BUNDLED, ENV, PY, REPO, digests, generated


def timed(gen: Path, out: Path, num_aug: int, workers: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [PY, "-m", "arcsolver.cli", "prepare", "arc", "--train", str(gen), "--eval", str(BUNDLED), "--num-aug",
           str(num_aug), "--workers", str(workers), "--out", str(out)]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if r.returncode != 0:
        raise SystemExit(f"prepare failed:\n{r.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="10000", help="comma-separated task counts")
    ap.add_argument("--num-aug", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2, help="the parallel run's --workers")
    ap.add_argument("--reps", type=int, default=2, help="serial/parallel pairs per task count")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (generated tasks there are reused)")
    ap.add_argument("--out", type=Path, default=None, help="also write the report (Markdown) here")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-workers-"))
    work.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [f"# prepare arc --workers: 1 vs {args.workers} processes, {args.num_aug} augmentations", "",
             f"commit {commit}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, `python "
             f"benchmarks/bench_prepare_workers.py --tasks {args.tasks} --workers {args.workers} --reps {args.reps}`; "
             f"{os.cpu_count()} CPUs, load before: {load}; one thread per process. Each prepare also reads the "
             "bundled tasks as --eval.", "",
             f"| tasks | --workers 1 | --workers {args.workers} | speed-up | same bytes |", "|---|---|---|---|---|"]
    for n in [int(x) for x in args.tasks.split(",")]:
        gen = generated(work, n)
        serial, parallel = [], []
        for _ in range(args.reps):  # alternated, so a change of load hits both
            serial.append(timed(gen, work / "serial", args.num_aug, 1))
            parallel.append(timed(gen, work / "parallel", args.num_aug, args.workers))
        same = digests(work / "serial") == digests(work / "parallel")
        s, p = statistics.median(serial), statistics.median(parallel)
        lines.append(f"| {n:,} | {s:.1f} s ({', '.join(f'{x:.1f}' for x in serial)}) | {p:.1f} s "
                     f"({', '.join(f'{x:.1f}' for x in parallel)}) | {s / p:.2f}x | {'yes' if same else 'NO'} |")
        print(lines[-1], flush=True)
    lines += ["", f"load after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}"]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
