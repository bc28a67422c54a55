"""The Kaggle stage's command settings, each declared once (runtime/settings.py): `kaggle package`, `kaggle
rehearse`, `kaggle upload`. The functions they feed take these defaults; cli.py builds the options from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from arcsolver.runtime.settings import OVERWRITE_HELP, setting

# Kaggle's notebook limit for the ARC Prize: 12 hours (docs/kaggle-format.md, 'Run limits').
RUN_LIMIT_S = 12 * 3600


@dataclass
class PackageSettings:
    """`arcsolver kaggle package` (kaggle/package.py)."""

    checkpoint: Path | None = setting(None, "Checkpoint or run folder.", required=True)
    out: Path | None = setting(None, "Folder to write (dataset/ and kernel/).", required=True)
    competition: str = setting("arc-prize-2025", "Competition slug.")
    owner: str | None = setting(None, "Kaggle user (default: from your Kaggle credentials).")
    dataset_slug: str | None = setting(None, "Dataset slug (default: arcsolver-<model>-checkpoint, <model> the "
                                       "checkpoint's trm or urm).")
    kernel_slug: str | None = setting(None, "Notebook slug (default: arcsolver-<model>-submission).")
    gpu: bool = setting(True, "Run the notebook on a GPU.", option="--gpu/--no-gpu")
    machine_shape: str | None = setting(None, "e.g. NvidiaL4 (4xL4) or NvidiaTeslaT4.")
    margin_minutes: float = setting(30.0, "Stop this long before the 12 h limit (merge, write and Kaggle's own "
                                    "shutdown must fit in it).", low=0, high=RUN_LIMIT_S / 60, low_open=False)
    notebook_finetune_args: str = setting(
        "", "Extra arguments for the notebook's `arcsolver finetune`, e.g. '--num-aug 300 --set lr=2e-4' (checked "
        "with finetune's own parser: a typo is refused here, not on Kaggle).", metavar="'ARGS'",
        option="--finetune-args")
    extra_wheels_dir: Path | None = setting(None, "Ship every *.whl in DIR for the offline install (modules the "
                                            "Kaggle image lacks).", metavar="DIR", option="--extra-wheels")
    allow_small_canvas: bool = setting(False, "Package a checkpoint whose canvas is < 30 for an ARC competition "
                                       "(larger tasks fall back).")
    overwrite: bool = setting(False, OVERWRITE_HELP)
    recipe: str | None = setting(None, "The notebook fine-tunes with this bundled recipe (e.g. kaggle-4xL4); "
                                 "--finetune-args still override its values.", metavar="NAME")


@dataclass
class RehearseSettings:
    """`arcsolver kaggle rehearse` (kaggle/rehearse.py)."""

    folder: Path | None = setting(None, "The folder `kaggle package` wrote.", argument=True, required=True)
    competition_data: Path | None = setting(None, "The competition's files as downloaded (default: ./<competition "
                                            "slug>/); its arc-agi_test_challenges.json is the test file.",
                                            metavar="DIR")
    test_file: Path | None = setting(None, "A challenges file to stand in for arc-agi_test_challenges.json (e.g. "
                                     "an evaluation set).")
    solutions: str | None = setting(None, "Score the result against these solutions.", metavar="SOURCE")
    time_limit_s: float = setting(600.0, "Kaggle's 12 h scaled down to this (the package's margin scales with it).",
                                  low=0, low_open=True, duration=True, option="--time-limit")
    mode: str = setting("smoke", "smoke: a commit run (a few tasks); full: the scoring rerun.",
                        choices=("smoke", "full"))
    keep: Path | None = setting(None, "Keep the fake /kaggle tree, the script and the notebook log here.",
                                metavar="DIR")
    processes: int = setting(1, "Solver processes: > 1 runs it through `accelerate launch` on CPU processes (gloo), "
                             "the multi-GPU path of the Kaggle run.", low=1, high=64)


@dataclass
class UploadSettings:
    """`arcsolver kaggle upload` (kaggle/upload.py)."""

    folder: Path | None = setting(None, "The folder `kaggle package` wrote.", argument=True, required=True)
    submit: bool = setting(False, "Also submit the pushed kernel version to the competition.")
    dry_run: bool = setting(False, "Print every API call, make none.")
    message: str = setting("arcsolver upload", "Version notes / submission message.")


PACKAGE, REHEARSE, UPLOAD = PackageSettings(), RehearseSettings(), UploadSettings()
