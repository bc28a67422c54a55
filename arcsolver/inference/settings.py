"""The inference stage's command settings, each declared once (runtime/settings.py): `predict`, `validate`, `score`
and `show`. `predict()` takes these defaults and checks its numbers against them; cli.py builds the options from
these fields. No torch here: `arcsolver --help` reads this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from arcsolver.model.config import FORWARD_DTYPES
from arcsolver.runtime.settings import OVERWRITE_HELP, setting


@dataclass
class ValidateSettings:
    """`arcsolver validate`."""

    submission: Path | None = setting(None, "The submission file.", argument=True, required=True)
    tasks_spec: str | None = setting(None, "The tasks the submission answers.", option="--tasks", metavar="SOURCE",
                                     required=True)


@dataclass
class ScoreSettings:
    """`arcsolver score`."""

    submission: Path | None = setting(None, "The submission file.", argument=True, required=True)
    solutions: str | None = setting(None, "A Kaggle *_solutions.json, or any task source whose test outputs are "
                                    "present.", metavar="SOURCE", required=True)
    as_json: bool = setting(False, "Print the full result as JSON.", option="--json")


@dataclass
class ShowSettings:
    """`arcsolver show`."""

    tasks_spec: str | None = setting(None, "The tasks to draw.", option="--tasks", metavar="SOURCE", required=True)
    task_id: str | None = setting(None, "One task id: render a PNG. Without: an HTML report of all.",
                                  option="--task")
    submission: Path | None = setting(None, "submission.json or a candidates JSON to draw next to the truth.")
    out: Path | None = setting(None, "PNG path or folder (report).", required=True)
    overwrite: bool = setting(False, OVERWRITE_HELP)


@dataclass
class PredictSettings:
    """`arcsolver predict`."""

    ckpt: str | None = setting(None, "Checkpoint folder or run folder (its latest).", option="--checkpoint",
                               required=True)
    data: str | None = setting(None, "Prepared dataset (default: the one the checkpoint was trained on).")
    tasks: str | None = setting(None, "Answer only these tasks (they must have puzzle ids).", metavar="SOURCE")
    out: Path = setting(Path("submission.json"), "Submission file to write (and its .candidates.json beside it).")
    vote: bool = setting(True, "Run every augmented version and vote (else the un-augmented task only).",
                         option="--vote/--no-vote")
    batch_size: int = setting(256, "Rows per prediction batch.", low=1)
    steps: int | None = setting(None, "Supervision steps (default: the run's eval_steps, else halt_max_steps; may "
                                "exceed training's).", low=1)
    extra_loops: int = setting(0, "Supervision steps beyond --steps (or its default), as URM's evaluation with "
                               "loop_deltas.", low=0)
    max_versions: int = setting(0, "Use at most N versions per task (0: all).", low=0)
    ema: bool = setting(True, "The EMA copy of the weights (--no-ema: the raw weights).", option="--ema/--no-ema")
    flush_every: int = setting(0, "Write the (complete, valid) submission every N batches (0: every 4, fewer when "
                               "writing costs > 5% of the time); also on SIGTERM and at the deadline.", low=0)
    forward_dtype: str = setting("auto", "auto: bfloat16 on GPUs with compute capability >= 8.0, else float32.",
                                 choices=("auto",) + FORWARD_DTYPES)
    device_batch_size: int = setting(0, "Rows per forward on each device (0: the most that fits the free GPU "
                                     "memory, halved on out-of-memory; CPU: the whole batch).", low=0)
    cpu: bool | None = setting(None, "Run on the CPU even if a GPU is present (default: the GPU when there is one).")
    overwrite: bool = setting(False, "Replace --out (and its candidates file) even when it is not an earlier "
                              "submission.")
    publish: Path | None = setting(None, "An existing submission file (e.g. Kaggle's working one) that every flush "
                                   "copies the answers so far into, atomically.", metavar="FILE")


PREDICT = PredictSettings()
