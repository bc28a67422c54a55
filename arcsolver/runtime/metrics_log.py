"""Training metrics: appended as JSON lines (always), mirrored to TensorBoard or wandb when asked (never required).

Every line is {"step", "split", "time", ...metrics}; one file per run, `metrics.jsonl`, appended across resumes
(a resume first drops the lines logged after its checkpoint's step, so every step appears once).
TensorBoard and wandb are optional imports: if the package is missing the run goes on with a warning, and wandb
runs in offline mode unless the user configured it, so no account is ever asked for.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson

from arcsolver.runtime.report import say


class MetricsLog:
    def __init__(self, path: Path, *, enabled: bool = True, tensorboard: bool = False, wandb: bool = False,
                 config: dict | None = None, resumed_at: int | None = None):
        self.enabled = enabled
        self.path = Path(path)
        self.f = None
        self.tb = None
        self.wb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resumed_at is not None:
            drop_after(self.path, resumed_at)
        self.f = open(self.path, "ab")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(self.path.parent / "tensorboard"))
            except Exception as e:  # tensorboard not installed
                say(f"TensorBoard logging disabled: {e}")
        if wandb:
            try:
                import wandb as wb
                os.environ.setdefault("WANDB_MODE", "offline")
                self.wb = wb.init(project="arcsolver", config=config or {}, dir=str(self.path.parent))
            except Exception as e:
                say(f"wandb logging disabled: {e}")

    def write(self, step: int, split: str, metrics: dict) -> None:
        if not self.enabled:
            return
        rec = {"step": step, "split": split, "time": round(time.time(), 3), **metrics}
        self.f.write(orjson.dumps(rec) + b"\n")
        self.f.flush()
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{split}/{k}", v, step)
        if self.wb is not None:
            self.wb.log({f"{split}/{k}": v for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
        if self.tb is not None:
            self.tb.close()
        if self.wb is not None:
            self.wb.finish()


def drop_after(path: Path, step: int) -> int:
    """Remove the lines logged after `step` (a run resumed from the step-`step` checkpoint logs them again);
    the file is rewritten atomically, only when there is something to drop. Returns the number of lines dropped."""
    from arcsolver.runtime.jsonio import atomic_write_bytes
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
