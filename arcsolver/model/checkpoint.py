"""Checkpoints: a folder per save, written under a temporary name and renamed, plus a `latest` pointer.

  <run>/step_000123/model.safetensors   every parameter and persistent buffer (puzzle table included)
  <run>/step_000123/ema.safetensors     the EMA shadow of the parameters (absent when EMA is off)
  <run>/step_000123/train_state.pt      optimizer + scheduler state, RNG states, loader position, the ACT carry
  <run>/step_000123/config.json         training config, model config, dataset summary
  <run>/step_000123/puzzle_rows.json    the name -> row map of the puzzle table (puzzle_embedding.dataset_row_map:
                                        task names, and every version's name in version mode), so a run can be
                                        continued, a table extended by fine-tuning or exported without the dataset
  <run>/latest                          name of the newest complete checkpoint folder

Weights are safetensors (safe to load, mmap-able, readable from other frameworks). Training state holds Python
structures (optimizer state dicts), so it is a torch pickle of our own making; it is only read by `--resume`.
A crash mid-save leaves the previous checkpoint and `latest` intact.
"""

from __future__ import annotations

import pickle
import shutil
import types
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import atomic_dir, atomic_write_bytes, read_json, write_json


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save(run_dir: str | Path, step: int, *, model_state: dict[str, torch.Tensor],
         ema_state: dict[str, torch.Tensor] | None, train_state: dict[str, Any] | None, config: dict,
         keep_last: int = 0, puzzle_rows: dict | None = None) -> Path:
    """Write one checkpoint atomically and point `latest` at it; keep the newest `keep_last` (0: keep all)."""
    run_dir = Path(run_dir)
    name = f"step_{step:07d}"
    with atomic_dir(run_dir / name) as tmp:
        save_file(_contiguous(model_state), str(tmp / "model.safetensors"))
        if ema_state is not None:
            save_file(_contiguous(ema_state), str(tmp / "ema.safetensors"))
        if train_state is not None:
            torch.save(train_state, tmp / "train_state.pt")
        write_json(tmp / "config.json", config, indent=True)
        if puzzle_rows is not None:
            write_json(tmp / "puzzle_rows.json", puzzle_rows)
    atomic_write_bytes(run_dir / "latest", name.encode())
    if keep_last > 0:
        old = sorted(p for p in run_dir.glob("step_*") if p.is_dir())[:-keep_last]
        for p in old:
            shutil.rmtree(p, ignore_errors=True)
    return run_dir / name


def resolve(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder (its `latest`), -> the checkpoint folder."""
    p = Path(path)
    if (p / "model.safetensors").is_file():
        return p
    if (p / "latest").is_file():
        q = p / (p / "latest").read_text().strip()
        if (q / "model.safetensors").is_file():
            return q
    raise InputError("not a checkpoint (no model.safetensors) nor a run folder with a 'latest' checkpoint",
                     file=str(path))


def load_config(path: str | Path) -> dict:
    return read_json(resolve(path) / "config.json")


def load_weights(path: str | Path, *, ema: bool = True) -> dict[str, torch.Tensor]:
    """Model state dict; with `ema`, EMA shadow values replace the raw parameters (what evaluation uses)."""
    ck = resolve(path)
    state = load_file(str(ck / "model.safetensors"))
    if ema and (ck / "ema.safetensors").is_file():
        state.update(load_file(str(ck / "ema.safetensors")))
    return state


# train_state.pt is a pickle, so it names the classes it holds by their module: only the ACT carry's (`Carry`,
# `InnerCarry`); the rest is dicts, numbers and tensors. Checkpoints written before the stage subpackages (commit
# cb07111 and earlier) name the flat module; they load into the class's home today
# (tests/test_old_checkpoint.py). New checkpoints are written exactly as before, under the new name.
MOVED_MODULES = {"arcsolver.trm": "arcsolver.model.trm"}


class _MovedModulesUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, module), name)


# torch.load takes a pickle *module*: the standard one with this Unpickler in its place.
_pickle_with_moved_modules = types.ModuleType("arcsolver_train_state_pickle")
_pickle_with_moved_modules.Unpickler = _MovedModulesUnpickler
_pickle_with_moved_modules.load = lambda f, **kw: _MovedModulesUnpickler(f, **kw).load()


def load_train_state(path: str | Path) -> dict[str, Any]:
    ck = resolve(path)
    f = ck / "train_state.pt"
    if not f.is_file():
        raise InputError("checkpoint has no training state (exported weights cannot be resumed)", file=str(ck))
    try:
        st = torch.load(f, map_location="cpu", weights_only=False, pickle_module=_pickle_with_moved_modules)
    except Exception as e:  # noqa: BLE001 - truncated or garbage pickle: one line, not torch's advice
        raise InputError(f"training state unreadable ({type(e).__name__})", file=str(f)) from None
    if not isinstance(st, dict) or not {"step", "loader", "rng", "carry"} <= set(st):
        raise InputError("training state incomplete (expected step, loader, rng, carry)", file=str(f))
    return st


def load_puzzle_rows(path: str | Path) -> dict | None:
    """The checkpoint's name -> row map (see the module docstring), or None for checkpoints written before it."""
    f = resolve(path) / "puzzle_rows.json"
    if not f.is_file():
        return None
    rows = read_json(f)
    if not isinstance(rows, dict) or not isinstance(rows.get("tasks"), list) or rows.get("mode") not in (
            "version", "task") or (rows["mode"] == "version" and not isinstance(rows.get("versions"), list)):
        raise InputError("expected {mode: version|task, tasks: [...], versions: [...] (version mode)}", file=str(f))
    return rows


def load_raw(path: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(resolve(path) / "model.safetensors"))
