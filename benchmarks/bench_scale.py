"""How `prepare` and training scale with the number of tasks (issue 23): generated tasks x augmentations.

For each task count N: `arcsolver generate` makes N tasks (all 35 families, grids <= 12), then, each in a fresh
process: `arcsolver prepare arc --train DIR --num-aug A` (wall time, peak RSS of the process, disk), and a short
`arcsolver train --preset tiny-cpu --set arch.puzzle_emb_mode=task` on it (start-up until the first step, median
step time of the last steps, checkpoint size). Prints one Markdown table; time per task-version and the ratios to the
smallest N are what the issue's targets are about.

    python benchmarks/bench_scale.py --tasks 1000,10000 --num-aug 1000 --out runs/results/bench_scale.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def run_child(args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS GB of the child, stderr) of `python -m arcsolver.cli ARGS` in its own process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.time()
    r = subprocess.run([PY, "-m", "arcsolver.cli", *args], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    wall = time.time() - t
    if r.returncode != 0:
        raise SystemExit(f"failed: arcsolver {' '.join(args)}\n{r.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KB; the largest child so far
    return wall, max(peak, before) / 1e6, r.stderr


def timed_prepare(gen: Path, data: Path, num_aug: int) -> tuple[float, float | None]:
    """(wall seconds, peak RSS GB) of `arcsolver prepare arc` in its own process (GNU time's %M when present)."""
    cmd = [PY, "-m", "arcsolver.cli", "prepare", "arc", "--train", str(gen), "--num-aug", str(num_aug), "--canvas",
           "30", "--out", str(data)]
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    t = time.time()
    r = subprocess.run(([gnu_time, "-f", "%M"] if gnu_time else []) + cmd, capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    wall = time.time() - t
    if r.returncode != 0:
        raise SystemExit(f"prepare failed:\n{r.stderr[-2000:]}")
    peak = int(r.stderr.strip().splitlines()[-1]) / 1e6 if gnu_time else None
    return wall, peak


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="1000,10000", help="comma-separated task counts, smallest first")
    ap.add_argument("--num-aug", type=int, default=1000)
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the table (Markdown) here")
    args = ap.parse_args()
    counts = [int(x) for x in args.tasks.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    rows = []
    for n in counts:
        gen, data, run = work / f"gen-{n}", work / f"data-{n}", work / f"run-{n}"
        per_family = -(-n // 35)
        run_child(["generate", "--families", "all", "--tasks-per-family", str(per_family), "--max-size", "12",
                   "--seed", "0", "--out", str(gen)])
        for extra in sorted(gen.glob("*.json"))[n:]:  # exactly n tasks
            extra.unlink()
        wall, peak_gb = timed_prepare(gen, data, args.num_aug)
        meta = json.loads((data / "meta.json").read_text())
        versions = int(meta["counts"]["versions"])
        t = time.time()
        run_child(["train", "--preset", "tiny-cpu", "--data", str(data), "--out", str(run), "--steps",
                   str(args.train_steps), "--cpu", "--set", "arch.puzzle_emb_mode=task", "--set", "log_every=1",
                   "--set", "eval_max_batches=1", "--set", "checkpoint_interval_steps=0"])
        train_wall = time.time() - t
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        steps = [x for x in lines if x.get("split") == "train"]
        step_s = statistics.median(b["time"] - a["time"] for a, b in zip(steps[-11:], steps[-10:]))
        ck = run / (run / "latest").read_text().strip()
        rows.append({"tasks": n, "versions": versions, "prepare_s": wall, "per_version_us": 1e6 * wall / versions,
                     "peak_gb": peak_gb, "disk_mb": du(data) / 1e6, "bytes_per_version": du(data) / versions,
                     "train_wall_s": train_wall, "step_s": step_s, "ckpt_mb": du(ck) / 1e6})
    base = rows[0]
    sizes = ", ".join(f"{r['tasks']:,}" for r in rows)
    lines = [f"# bench_scale: prepare and task-mode training at {sizes} tasks x {args.num_aug} augmentations", "",
             f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, `python benchmarks/bench_scale.py "
             f"--tasks {args.tasks} --num-aug {args.num_aug}`; {os.cpu_count()} cores, load "
             f"{os.getloadavg()[0]:.1f}, one thread per process", "",
             "| tasks | versions | prepare | us / version (ratio) | peak RSS | disk | bytes / version | train step "
             "(ratio) | checkpoint |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peak = "-" if r["peak_gb"] is None else f"{r['peak_gb']:.2f} GB"
        lines.append(f"| {r['tasks']:,} | {r['versions']:,} | {r['prepare_s']:.1f} s | {r['per_version_us']:.1f} "
                     f"({r['per_version_us'] / base['per_version_us']:.2f}) | {peak} | {r['disk_mb']:.1f} MB | "
                     f"{r['bytes_per_version']:.1f} | {r['step_s']:.3f} s ({r['step_s'] / base['step_s']:.2f}) | "
                     f"{r['ckpt_mb']:.1f} MB |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
