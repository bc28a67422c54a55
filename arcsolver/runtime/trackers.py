"""Experiment trackers (`--log-with`): Accelerate's own TensorBoard, Weights & Biases, MLflow and Trackio trackers.

Why Accelerate's: it is already the launcher, its trackers start on the first process only and take one `log` call
for all of them. What they get: every number `metrics.jsonl` gets, as `<split>/<metric>` at the line's step (train
loss and accuracies, LR, samples/s, eval accuracies and voted pass@k, the deadline plan's numbers), and the run's
configuration, flattened to `train.lr`, `train.arch.hidden_size`, ..., as hyper-parameters.

No network unless the user's tracker setup asks for it: TensorBoard writes event files under
`RUN/trackers/arcsolver/`; W&B runs offline (`WANDB_MODE=offline`, its folder in the run) unless `WANDB_MODE` is set;
MLflow logs to `RUN/mlruns` unless `MLFLOW_TRACKING_URI` is set; Trackio keeps its local database.
Each tracker's package is an optional extra: asking for a missing one is one line naming the extra to install,
found while the options are checked, before anything is written.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from arcsolver.runtime.errors import InputError

# tracker -> (the module it imports, the arcsolver extra that installs it)
TRACKERS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"),
            "mlflow": ("mlflow", "mlflow"), "trackio": ("trackio", "trackio")}
PROJECT = "arcsolver"  # the project/experiment name every tracker files the run under


def installed(name: str) -> bool:
    return importlib.util.find_spec(TRACKERS[name][0]) is not None


def parse_log_with(value: str, field: str = "--log-with") -> list[str]:
    """`none` -> [], `all` -> every tracker whose package is installed (at least one), else a comma-separated list
    of tracker names, each installed. Raises InputError (one line naming the extra) otherwise."""
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {value!r}", field=field)
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    choices = ", ".join(["none", "all", *TRACKERS])
    if names in ([], ["none"]):
        return []
    if names == ["all"]:
        found = [n for n in TRACKERS if installed(n)]
        if not found:
            raise InputError(f"all: no tracker is installed (pip install 'arcsolver[tensorboard]', or one of "
                             f"{', '.join(TRACKERS)})", field=field)
        return found
    for n in names:
        if n not in TRACKERS:
            raise InputError(f"unknown tracker {n!r} (choose from {choices}; several comma-separated)", field=field)
        if not installed(n):
            raise InputError(f"{n} is not installed: pip install 'arcsolver[{TRACKERS[n][1]}]'", field=field)
    return list(dict.fromkeys(names))


def accelerator_kwargs(names: list[str], run_dir: str | Path) -> dict:
    """What the Accelerator needs to carry the trackers `names` for the run folder `run_dir` (nothing for none)."""
    if not names:
        return {}
    # accelerate (with torch) takes ~1.2 s to import (measured); the settings checks read this module for log_with.
    from accelerate.utils import ProjectConfiguration
    run_dir = Path(run_dir)
    return {"log_with": names, "project_config": ProjectConfiguration(project_dir=str(run_dir),
                                                                      logging_dir=str(run_dir / "trackers"))}


def start(acc, names: list[str], run_dir: str | Path, config: dict) -> None:
    """Start the trackers on the first process (Accelerate skips the others) with the run's config as
    hyper-parameters; offline defaults as the module docstring says."""
    if not names:
        return
    run_dir = Path(run_dir)
    init_kwargs = {}
    if "wandb" in names:
        os.environ.setdefault("WANDB_MODE", "offline")
        init_kwargs["wandb"] = {"dir": str(run_dir), "name": run_dir.resolve().name}
    if "mlflow" in names:
        os.environ.setdefault("MLFLOW_TRACKING_URI", (run_dir / "mlruns").resolve().as_uri())
        init_kwargs["mlflow"] = {"run_name": run_dir.resolve().name}
    acc.init_trackers(PROJECT, config=hyperparameters(config), init_kwargs=init_kwargs)


def hyperparameters(config: dict, prefix: str = "") -> dict[str, int | float | str | bool]:
    """A nested config as flat scalars (TensorBoard's hparams take only int/float/str/bool): dicts become dotted
    keys, lists and None their text."""
    out: dict[str, int | float | str | bool] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(hyperparameters(v, key + "."))
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        else:
            out[key] = str(v)
    return out


def scalars(split: str, metrics: dict) -> dict[str, float]:
    """The numbers of one metrics line as tracker values: `<split>/<metric>` (booleans, lists, text left out)."""
    return {f"{split}/{k}": v for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}
