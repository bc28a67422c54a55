"""The data stage's share of the input checks, run before any work or any write starts: prepared datasets
(`check_dataset`: meta.json's schema, every array present, readable, of the recorded length; a truncated .npy is
caught from its header and the file size, without reading the data) and task lists that must agree with a dataset
(`check_tasks_match_dataset`). Every problem raises `InputError` (one line naming the file and the field).
Choices: checks read headers and sizes, never whole arrays, so they cost milliseconds even on the full ARC-AGI
datasets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json
from arcsolver.data.arc_dataset import ARRAYS, FORMAT as ARC_FORMAT, FORMATS as ARC_FORMATS
from arcsolver.data.dense_dataset import FORMAT as DENSE_FORMAT


def _npy_shape(path: Path, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy from its header; InputError when missing, unreadable or shorter than it says."""
    if not path.is_file():
        raise InputError("array file missing", file=str(path), field=name)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            header_end = f.tell()
    except Exception as e:  # noqa: BLE001 - any parse failure means "not a .npy we wrote"
        raise InputError(f"not a readable .npy array ({type(e).__name__})", file=str(path), field=name) from None
    need = header_end + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = path.stat().st_size
    if have < need:
        raise InputError(f"truncated: {have} bytes, shape {tuple(shape)} of {dtype} needs {need}",
                         file=str(path), field=name)
    return tuple(int(s) for s in shape), dtype


def _need(meta: dict, key: str, file: str, kind=int, lo: int = 0) -> Any:
    v = meta
    for part in key.split("."):
        if not isinstance(v, dict) or part not in v:
            raise InputError("missing field", file=file, field=key)
        v = v[part]
    if kind is int and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
        raise InputError(f"expected an integer >= {lo}, got {v!r}", file=file, field=key)
    if kind is not int and not isinstance(v, kind):
        raise InputError(f"expected {kind.__name__}, got {v!r}", file=file, field=key)
    return v


def check_dataset(path: str | Path) -> dict:
    """A prepared dataset folder (`arcsolver prepare`), checked; returns its meta.json."""
    root = Path(path)
    mfile = root / "meta.json"
    if not root.is_dir():
        raise InputError("not a prepared dataset: folder not found (run `arcsolver prepare` first)", file=str(root))
    if not mfile.is_file():
        raise InputError("not a prepared dataset (no meta.json)", file=str(root))
    meta = read_json(mfile)
    mf = str(mfile)
    if not isinstance(meta, dict):
        raise InputError(f"expected an object, got {type(meta).__name__}", file=mf)
    fmt = meta.get("format")
    if fmt not in (*ARC_FORMATS, DENSE_FORMAT):
        raise InputError(f"unknown dataset format {fmt!r} (expected {ARC_FORMAT} or {DENSE_FORMAT})", file=mf,
                         field="format")
    _need(meta, "kind", mf, kind=str)
    seq_len = _need(meta, "seq_len", mf, lo=1)
    _need(meta, "vocab_size", mf, lo=2)
    _need(meta, "num_puzzle_identifiers", mf, lo=1)
    if fmt in ARC_FORMATS:
        _check_arc_arrays(root, meta, mf, seq_len, ARRAYS)
    else:
        _check_dense_arrays(root, meta, mf, seq_len)
    return meta


def _check_arc_arrays(root: Path, meta: dict, mf: str, seq_len: int, names: list[str]) -> None:
    canvas = _need(meta, "canvas", mf, lo=1)
    if canvas * canvas != seq_len:
        raise InputError(f"seq_len {seq_len} is not canvas {canvas} squared", file=mf, field="seq_len")
    T, V, G, E = (_need(meta, f"counts.{k}", mf) for k in ("tasks", "versions", "grids", "examples"))
    if meta["num_puzzle_identifiers"] != V + 1:
        raise InputError(f"{meta['num_puzzle_identifiers']} puzzle ids for {V} versions (expected versions + 1)",
                         file=mf, field="num_puzzle_identifiers")
    expected = {"grid_off": (G + 1,), "grid_hw": (G, 2), "ex_in": (E,), "ex_out": (E,), "ex_task": (E,),
                "ex_kind": (E,), "ex_pos": (E,), "task_ex": (T + 1,), "task_train": (T + 1,), "task_test": (T + 1,),
                "ver_task": (V,), "ver_tid": (V,), "ver_map": (V, 10), "task_ver": (T + 1,)}
    shapes = {}
    for name in names:
        p = root / "arrays" / f"{name}.npy"
        shapes[name], _ = _npy_shape(p, f"arrays/{name}")
        if name in expected and shapes[name] != expected[name]:
            raise InputError(f"shape {shapes[name]} but meta.json's counts give {expected[name]}", file=str(p),
                             field=f"arrays/{name}")
    # CSR ends: the last offset must equal the length of what it indexes (one element read each).
    for offsets, target in (("grid_off", "cells"), ("task_train", "train_ex"), ("task_test", "test_ex")):
        end = int(np.load(root / "arrays" / f"{offsets}.npy", mmap_mode="r")[-1])
        if (end,) != shapes[target]:
            raise InputError(f"holds {shapes[target][0] if shapes[target] else 0} entries but arrays/{offsets} "
                             f"ends at {end}", file=str(root / "arrays" / f"{target}.npy"), field=f"arrays/{target}")
    for extra in ("tasks.json", "identifiers.json") if meta.get("format") == "arcsolver-arc-1" else ("tasks.json",):
        if not (root / extra).is_file():
            raise InputError("file missing from the dataset", file=str(root / extra))
    try:
        tasks = orjson.loads((root / "tasks.json").read_bytes())
    except orjson.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e})", file=str(root / "tasks.json")) from None
    if not isinstance(tasks, list) or len(tasks) != T:
        raise InputError(f"expected a list of {T} tasks (meta.json counts.tasks)", file=str(root / "tasks.json"))


def _check_dense_arrays(root: Path, meta: dict, mf: str, seq_len: int) -> None:
    splits = _need(meta, "splits", mf, kind=dict)
    if "train" not in splits and "test" not in splits:
        raise InputError("no train or test split", file=mf, field="splits")
    for split, n in splits.items():
        _need(meta, f"splits.{split}", mf)
        for part in ("inputs", "labels"):
            p = root / f"{split}_{part}.npy"
            shape, _ = _npy_shape(p, f"{split}_{part}")
            if shape != (n, seq_len):
                raise InputError(f"shape {shape} but meta.json gives {(n, seq_len)} (splits.{split}, seq_len)",
                                 file=str(p), field=f"{split}_{part}")


def check_tasks_match_dataset(wanted: list, store, spec: str) -> None:
    """Tasks given by the user (`predict --tasks`) must be the dataset's tasks of the same id: same test inputs."""
    by_id = {store.task_ids[i]: i for i in store.test_task_indices()}
    missing = [t.id for t in wanted if t.id not in by_id]
    if missing:
        raise InputError(f"{len(missing)} task(s) have no puzzle ids in this dataset/checkpoint, e.g. {missing[0]} "
                         "(fine-tune on them first: arcsolver finetune)", file=str(spec))
    for t in wanted:
        ours = store.task(by_id[t.id])
        if len(t.test) != len(ours.test):
            raise InputError(f"{len(t.test)} test inputs but the dataset's task of this id has {len(ours.test)}",
                             file=str(spec), task=t.id, field="test")
        for i, (a, b) in enumerate(zip(t.test, ours.test)):
            if a.input.shape != b.input.shape or not np.array_equal(a.input, b.input):
                raise InputError(f"differs from the dataset's task of this id (shape {a.input.shape[0]}x"
                                 f"{a.input.shape[1]} vs {b.input.shape[0]}x{b.input.shape[1]}): not the task the "
                                 "checkpoint was trained for", file=str(spec), task=t.id, field=f"test[{i}].input")
