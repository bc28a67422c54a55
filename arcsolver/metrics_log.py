"""Training metrics: appended as JSON lines (always), mirrored to TensorBoard or wandb when asked (never required).

Every line is {"step", "split", "time", ...metrics}; one file per run, `metrics.jsonl`, appended across resumes.
TensorBoard and wandb are optional imports: if the package is missing the run goes on with a warning, and wandb
runs in offline mode unless the user configured it, so no account is ever asked for.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import orjson


class MetricsLog:
    def __init__(self, path: Path, *, enabled: bool = True, tensorboard: bool = False, wandb: bool = False,
                 config: dict | None = None):
        self.enabled = enabled
        self.path = Path(path)
        self.f = None
        self.tb = None
        self.wb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.path, "ab")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(self.path.parent / "tensorboard"))
            except Exception as e:  # tensorboard not installed
                warnings.warn(f"TensorBoard logging disabled: {e}")
        if wandb:
            try:
                import wandb as wb
                os.environ.setdefault("WANDB_MODE", "offline")
                self.wb = wb.init(project="arcsolver", config=config or {}, dir=str(self.path.parent))
            except Exception as e:
                warnings.warn(f"wandb logging disabled: {e}")

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


def bar_interval() -> float:
    """Seconds between progress-bar refreshes: tqdm's 0.1 on a terminal, 30 when stderr is a log file (a bar line
    every 0.1 s makes multi-megabyte logs)."""
    import sys
    return 0.1 if sys.stderr.isatty() else 30.0
