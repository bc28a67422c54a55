"""Training metrics: appended as JSON lines (always), mirrored to the experiment trackers when asked.

Every line is {"step", "split", "time", ...metrics}; one file per run, `metrics.jsonl`, appended across resumes
(a resume first drops the lines logged after its checkpoint's step, so every step appears once). `mirror(values,
step)` (the Accelerator's `log` when `--log-with` names trackers: runtime/trackers.py) gets the same numbers as
`<split>/<metric>`.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from arcsolver.runtime.trackers import scalars
from arcsolver.runtime.jsonio import atomic_write_bytes


class MetricsLog:
    def __init__(self, path: Path, *, enabled: bool = True, mirror=None, resumed_at: int | None = None):
        self.enabled = enabled
        self.path = Path(path)
        self.f = None
        self.mirror = mirror
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resumed_at is not None:
            drop_after(self.path, resumed_at)
        self.f = open(self.path, "ab")

    def write(self, step: int, split: str, metrics: dict) -> None:
        if not self.enabled:
            return
        rec = {"step": step, "split": split, "time": round(time.time(), 3), **metrics}
        self.f.write(orjson.dumps(rec) + b"\n")
        self.f.flush()
        if self.mirror is not None:
            values = scalars(split, metrics)
            if values:
                self.mirror(values, step=step)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def drop_after(path: Path, step: int) -> int:
    """Remove the lines logged after `step` (a run resumed from the step-`step` checkpoint logs them again);
    the file is rewritten atomically, only when there is something to drop. Returns the number of lines dropped."""
    if not path.is_file():
        return 0
    lines = path.read_bytes().splitlines(keepends=True)
    keep = []
    for line in lines:
        try:
            s = orjson.loads(line).get("step", 0)
        except (orjson.JSONDecodeError, AttributeError):
            continue  # a line cut by a crash mid-write: drop it too
        if isinstance(s, int) and s <= step:
            keep.append(line if line.endswith(b"\n") else line + b"\n")
    if len(keep) != len(lines):
        atomic_write_bytes(path, b"".join(keep))
    return len(lines) - len(keep)
