"""Package a checkpoint for Kaggle: one folder holding a dataset and an offline notebook, ready to push.

    OUT/arcsolver-package.json      what was packaged (marks the folder as ours, so a re-run may replace it)
    OUT/dataset/                    -> kaggle datasets create|version -p OUT/dataset --dir-mode zip
        dataset-metadata.json
        arcsolver-kaggle.json       marker the notebook finds the dataset by: wheel name, checkpoint folder
        arcsolver-<version>-py3-none-any.whl
        checkpoint/                 model.safetensors, ema.safetensors (if any), config.json
        wheels/*.whl                optional extra wheels for modules the Kaggle image lacks
    OUT/kernel/                     -> kaggle kernels push -p OUT/kernel
        kernel-metadata.json
        <kernel-slug>.ipynb         generated from notebook_template.py (beside this module)

Built from the modules beside this one: `credentials` (whose Kaggle name the dataset and notebook carry),
`metadata` (Kaggle's rules for both metadata files, checked before anything is built and again on what was
written), `wheel` (the arcsolver wheel, built offline) and `notebook` (the template with this package's values).
Choices here: the checkpoint is checked as every command checks one (model.checks: config.json valid, weights
complete and shaped as the architecture config.json records), plus the canvas an ARC competition needs, before the
wheel build and the copy, since a bad checkpoint would otherwise fail on Kaggle, hours later. `train_state.pt` is
left out: optimizer state is useless for inference and would double the upload. Files are hard-linked when possible
(checkpoints are never modified in place), copied otherwise. `enable_internet` is always written, as "false".
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import atomic_dir, atomic_write_bytes, read_json, write_json
from arcsolver.runtime.outputs import claim_output, owning_run
from arcsolver.runtime.report import say
from arcsolver.model.checks import check_checkpoint as check_model_checkpoint
from arcsolver.model.config import TRMConfig
from arcsolver.kaggle.credentials import resolve_owner
from arcsolver.kaggle.metadata import (DATASET_METADATA, KERNEL_METADATA, SLUG_RE, raise_first, slugify,
                                       validate_dataset_metadata, validate_kernel_metadata)
from arcsolver.kaggle.notebook import render_notebook
from arcsolver.kaggle.settings import PACKAGE
from arcsolver.kaggle.runner import DEFAULT_MARGIN_S, MARKER_NAME, RUN_LIMIT_S, WEIGHTS_NAME
from arcsolver.kaggle.wheel import build_wheel, check_wheel, wheel_version

PACKAGE_MARKER = "arcsolver-package.json"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILES = (WEIGHTS_NAME, "ema.safetensors", "config.json")  # what inference needs; no train_state.pt

# Every third-party module `arcsolver finetune --predict` imports (measured by tests/test_kaggle_faults.py, which
# runs that path and compares): the notebook checks each one after the offline install and names the missing ones.
SOLVE_MODULES = ("numpy", "numba", "llvmlite", "orjson", "click", "torch", "accelerate", "safetensors", "tqdm", "yaml",
                 "packaging", "typing_extensions", "sympy", "mpmath", "psutil", "huggingface_hub")

DEFAULT_LICENSE = "other"  # the wheel is MIT, which Kaggle's list lacks; the description says so


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)


def check_checkpoint(checkpoint: str | os.PathLike, competition: str, allow_small_canvas: bool = False) -> Path:
    """The checkpoint folder, after checking what the notebook will need: what every command checks (model.checks:
    config.json valid, the weights and EMA complete and shaped as the architecture config.json records: a truncated
    upload or a mismatched config is one line here, not a traceback on Kaggle), and for an ARC competition a canvas
    that holds the largest grids (30x30): on a smaller one every task with a larger grid can only fall back."""
    ck, config = check_model_checkpoint(checkpoint)
    canvas = config["data"].get("canvas") or 30
    if competition.startswith("arc-prize") and isinstance(canvas, int) and canvas < 30 and not allow_small_canvas:
        raise InputError(f"trained on a {canvas}x{canvas} canvas: the competition's grids go up to 30x30, so every "
                         f"task with a larger grid would get only the fallback (pass --allow-small-canvas to "
                         f"package it anyway)", file=str(ck / "config.json"), field="data.canvas")
    return ck


def copy_checkpoint(ck: Path, dest: Path) -> list[str]:
    """Copy what inference needs from a checked checkpoint folder into `dest`; returns the names copied."""
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in CHECKPOINT_FILES:
        if (ck / name).is_file():
            _link_or_copy(ck / name, dest / name)
            copied.append(name)
    return copied


def _mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def package(checkpoint: str | os.PathLike, out: str | os.PathLike, *, competition: str = PACKAGE.competition,
            dataset_slug: str | None = None, kernel_slug: str | None = None, owner: str | None = None,
            title: str | None = None, dataset_title: str | None = None, gpu: bool = PACKAGE.gpu,
            machine_shape: str | None = None, margin_s: float = DEFAULT_MARGIN_S, limit_s: float = RUN_LIMIT_S,
            wheel: str | os.PathLike | None = None, extra_wheels: Sequence[str | os.PathLike] = (),
            license_name: str = DEFAULT_LICENSE, full_commit_run: bool = False,
            finetune_args: Sequence[str] = (), allow_small_canvas: bool = PACKAGE.allow_small_canvas,
            overwrite: bool = PACKAGE.overwrite) -> Path:
    """Write the ready-to-push folder `out` (see the module docstring) and return it.

    `title` is the notebook's title (default: from `kernel_slug`); the kernel slug defaults to the title's slug.
    `margin_s` is kept free before Kaggle's `limit_s` (12 h); the notebook's deadline is `limit_s - margin_s` after
    it starts. `wheel` skips the build (a prebuilt arcsolver wheel); `extra_wheels` are shipped in `wheels/` and
    installed offline before arcsolver. `full_commit_run` makes commit runs solve every task (default: smoke).
    `finetune_args` are appended to the notebook's `arcsolver finetune` command (e.g. `--num-aug 300`; the CLI
    checks them with finetune's parser first). The checkpoint must be readable, and for an ARC competition trained
    on the full 30x30 canvas unless `allow_small_canvas`.
    `out` is replaced atomically, and only if it is empty, absent, or an earlier package.
    """
    out = Path(out)
    owner = resolve_owner(owner)
    if not SLUG_RE.match(competition):
        raise InputError(f"competition {competition!r} is not a Kaggle competition slug (e.g. arc-prize-2025)")
    if not 0 <= margin_s < limit_s:
        raise InputError(f"margin {margin_s:.0f} s must be between 0 and the {limit_s:.0f} s run limit")
    # runtime/outputs.py: an earlier package (its PACKAGE_MARKER) is replaced, anything else only with `overwrite`
    claim = claim_output(out, "kaggle-package", inputs=[owning_run(checkpoint), checkpoint, *extra_wheels],
                         overwrite=overwrite)
    ck = check_checkpoint(checkpoint, competition, allow_small_canvas)
    model = read_json(ck / "config.json")["model"].get("name", TRMConfig.name)  # the slugs name the model: trm, urm
    if kernel_slug is None:
        kernel_slug = slugify(title) if title else f"arcsolver-{model}-submission"
    if title is None:
        title = kernel_slug.replace("-", " ")  # slugifies back to kernel_slug
    dataset_slug = dataset_slug or f"arcsolver-{model}-checkpoint"
    dataset_title = dataset_title or dataset_slug.replace("-", " ")
    dataset_ref, kernel_ref = f"{owner}/{dataset_slug}", f"{owner}/{kernel_slug}"
    extra = [Path(w) for w in extra_wheels]
    for w in extra:
        if not w.is_file() or not w.name.endswith(".whl"):
            raise InputError("not a wheel file", file=str(w))

    # Metadata first, so a bad name fails in a second, before the wheel build and the checkpoint copy.
    code_file = f"{kernel_slug}.ipynb"
    ds_meta = {
        "title": dataset_title,
        "id": dataset_ref,
        "licenses": [{"name": license_name}],
        "description": "",  # filled in below, once the wheel version and the copied files are known
        "keywords": [],
    }
    kn_meta: dict[str, Any] = {
        "id": kernel_ref,
        "title": title,
        "code_file": code_file,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": "true",
        "enable_gpu": "true" if gpu else "false",
        "enable_tpu": "false",
        "enable_internet": "false",
        "dataset_sources": [dataset_ref],
        "competition_sources": [competition],
        "kernel_sources": [],
        "model_sources": [],
    }
    if machine_shape:
        kn_meta["machine_shape"] = machine_shape
    raise_first(validate_dataset_metadata(ds_meta), out / "dataset" / DATASET_METADATA)
    raise_first([p for p in validate_kernel_metadata(kn_meta) if not p.startswith("code_file")],
                 out / "kernel" / KERNEL_METADATA)

    if claim.notice():
        say(claim.notice())
    with atomic_dir(out) as tmp:
        ds = tmp / "dataset"
        ds.mkdir()
        if wheel is not None:
            w = Path(wheel)
            if not w.is_file():
                raise InputError("wheel not found", file=str(w))
            wheel_version(w)
            whl = Path(shutil.copy2(w, ds / w.name))
        else:
            whl = build_wheel(ds)
        version = wheel_version(whl)
        check_wheel(whl)
        copied = copy_checkpoint(ck, ds / CHECKPOINT_DIR)
        for w in extra:
            (ds / "wheels").mkdir(exist_ok=True)
            shutil.copy2(w, ds / "wheels" / w.name)
        created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        write_json(ds / MARKER_NAME, {"format": 1, "arcsolver_version": version, "wheel": whl.name,
                                      "checkpoint": CHECKPOINT_DIR, "checkpoint_files": copied,
                                      "extra_wheels": [w.name for w in extra], "created": created}, indent=True)
        ds_meta["description"] = (f"arcsolver {version} (MIT) wheel and a Tiny Recursive Model checkpoint "
                                  f"({', '.join(copied)}) for the {competition} Kaggle notebook {kernel_ref}.")
        write_json(ds / DATASET_METADATA, ds_meta, indent=True)
        raise_first(validate_dataset_metadata(ds_meta, ds), out / "dataset" / DATASET_METADATA)

        kn = tmp / "kernel"
        kn.mkdir()
        config = {
            "competition": competition,
            "dataset": dataset_ref,
            "wheel": whl.name,
            "deadline_s": float(limit_s - margin_s),
            "margin_s": float(margin_s),
            "smoke": False if full_commit_run else None,
            "finetune_args": [str(a) for a in finetune_args],
            "required_modules": list(SOLVE_MODULES),
            "arcsolver_version": version,
            "packaged_at": created,
        }
        import nbformat  # the `kaggle` extra (see notebook.render_notebook)

        nb = render_notebook(config)
        atomic_write_bytes(kn / code_file, nbformat.writes(nb).encode("utf-8"))
        write_json(kn / KERNEL_METADATA, kn_meta, indent=True)
        raise_first(validate_kernel_metadata(kn_meta, kn), out / "kernel" / KERNEL_METADATA)

        write_json(tmp / PACKAGE_MARKER, {"format": 1, "dataset": dataset_ref, "kernel": kernel_ref,
                                          "competition": competition, "arcsolver_version": version,
                                          "created": created}, indent=True)
    return out


def package_cmd(checkpoint: Path, out: Path, competition: str, owner: str | None, dataset_slug: str | None,
                kernel_slug: str | None, gpu: bool, machine_shape: str | None, margin_minutes: float,
                finetune_args: Sequence[str] = (), *, extra_wheels: Sequence[Path] = (),
                allow_small_canvas: bool = False, overwrite: bool = False) -> str:
    """CLI face of `package`: build the folder, return a short report with the next steps."""
    out = package(checkpoint, out, competition=competition, owner=owner, dataset_slug=dataset_slug,
                  kernel_slug=kernel_slug, gpu=gpu, machine_shape=machine_shape, margin_s=margin_minutes * 60,
                  finetune_args=finetune_args, extra_wheels=extra_wheels, allow_small_canvas=allow_small_canvas,
                  overwrite=overwrite)
    ds_meta = read_json(out / "dataset" / DATASET_METADATA)
    kn_meta = read_json(out / "kernel" / KERNEL_METADATA)
    marker = read_json(out / "dataset" / MARKER_NAME)
    accel = ("GPU" + (f" {kn_meta['machine_shape']}" if "machine_shape" in kn_meta else " (Kaggle's default)")
             if gpu else "CPU")
    hours = (RUN_LIMIT_S - margin_minutes * 60) / 3600
    return "\n".join([
        f"packaged {out}",
        f"  dataset  {ds_meta['id']}: {marker['wheel']} + checkpoint ({', '.join(marker['checkpoint_files'])}), "
        f"{_mb(out / 'dataset'):.1f} MB",
        f"  kernel   {kn_meta['id']}: {out / 'kernel' / kn_meta['code_file']}; {accel}, internet off, "
        f"competition {competition}",
        f"  deadline {hours:.2f} h after the notebook starts (margin {margin_minutes:g} min); commit runs are smoke "
        f"runs, the scoring rerun runs in full",
        f"next: upload it (arcsolver kaggle upload {out}; try --dry-run first), or by hand:",
        f"  kaggle datasets create -p {out / 'dataset'} --dir-mode zip   "
        f"(later: kaggle datasets version -p {out / 'dataset'} -m MSG --dir-mode zip)",
        f"  kaggle kernels push -p {out / 'kernel'}",
    ])

