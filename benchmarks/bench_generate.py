"""Benchmark: `arcsolver generate` makes 1,000 tasks (every family, max size 12) through the CLI, in a fresh process.

Target (issue 15): <= 10 s wall on this 2-core machine, the process start and imports included. Prints the wall time,
tasks per second and the ratio to the target; several repetitions, the median counts (the machine is shared).
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 10.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--max-size", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    args, _ = ap.parse_known_args()
    from arcsolver.data.families import FAMILIES
    per_family = math.ceil(args.tasks / len(FAMILIES))
    total = per_family * len(FAMILIES)
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeat):
            out = Path(tmp) / f"g{rep}"
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "arcsolver.cli", "generate", "--families", "all",
                            "--tasks-per-family", str(per_family), "--max-size", str(args.max_size), "--seed",
                            str(rep), "--out", str(out)], check=True, capture_output=True)
            walls.append(time.perf_counter() - t)
            assert len(list(out.iterdir())) == total
    med = statistics.median(walls)
    print(f"generate: {total} tasks ({len(FAMILIES)} families x {per_family}, max size {args.max_size}) "
          f"median {med:.2f} s over {args.repeat} runs ({', '.join(f'{w:.2f}' for w in walls)}), "
          f"{total / med:.0f} tasks/s; target <= {TARGET_S:.0f} s: {med / TARGET_S:.2f} of it "
          f"({'OK' if med <= TARGET_S else 'OVER'})")
    return 0 if med <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
