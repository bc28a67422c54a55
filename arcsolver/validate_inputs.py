"""The one place where everything a user hands us is checked before any work or any write starts.

Four kinds of input, one function family each; every problem raises `InputError` (one line naming the file and the
field, exit code 2 at the CLI):
  * configuration: training fields and `arch.*` model fields, from a preset or `--set` (`check_train_field`,
    `check_arch_field`, `check_config`): unknown keys, types (bools are not numbers), ranges, enums, and the
    relations between fields (hidden size divisible by heads, an even RoPE head dimension);
  * prepared datasets (`check_dataset`): meta.json's schema, every array present, readable, of the recorded length
    (a truncated .npy is caught from its header and the file size, without reading the data);
  * checkpoints (`check_checkpoint`): config.json complete and valid, weights files complete (safetensors header vs
    file size), every tensor of the model the config describes present with its shape; `check_resume` also compares
    the architecture with the run being resumed and names the first field that differs;
  * task lists that must agree with a dataset (`check_tasks_match_dataset`) and output locations
    (`check_writable`).
Choices: checks read headers and sizes, never whole arrays or tensors, so they cost milliseconds even on the full
ARC-AGI datasets; the model for the shape check is built on the `meta` device (no memory, no time).
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .errors import InputError

# ---------------------------------------------------------------------------------------------------------------
# configuration

# Enumerations whose values the code dispatches on. Anything else would silently mean "no positions" or crash later.
POS_ENCODINGS = ("rope", "learned", "none")
FORWARD_DTYPES = ("bfloat16", "float32", "float16")
LOSS_TYPES = ("stablemax_cross_entropy", "softmax_cross_entropy")
PUZZLE_EMB_MODES = ("version", "task")  # puzzle_embedding.PUZZLE_EMB_MODES (not imported: keeps this module light)

# name -> (type, lower bound, lower bound inclusive?, upper bound or None) for numbers; a tuple of values for enums.
_INT, _FLOAT, _BOOL, _STR = int, float, bool, str
ARCH_RULES: dict[str, Any] = {
    "batch_size": (_INT, 1, True, None), "seq_len": (_INT, 1, True, None), "puzzle_emb_ndim": (_INT, 0, True, None),
    "num_puzzle_identifiers": (_INT, 1, True, None), "vocab_size": (_INT, 2, True, None),
    "H_cycles": (_INT, 1, True, None), "L_cycles": (_INT, 1, True, None), "H_layers": (_INT, 0, True, None),
    "L_layers": (_INT, 1, True, None), "hidden_size": (_INT, 1, True, None), "expansion": (_FLOAT, 0, False, None),
    "num_heads": (_INT, 1, True, None), "pos_encodings": POS_ENCODINGS, "rms_norm_eps": (_FLOAT, 0, False, None),
    "rope_theta": (_FLOAT, 0, False, None), "halt_max_steps": (_INT, 1, True, None),
    "halt_exploration_prob": (_FLOAT, 0, True, 1.0), "forward_dtype": FORWARD_DTYPES, "mlp_t": _BOOL,
    "puzzle_emb_len": (_INT, 0, True, None), "no_ACT_continue": _BOOL, "puzzle_emb_mode": PUZZLE_EMB_MODES,
}
TRAIN_RULES: dict[str, Any] = {
    "data": _STR, "out": _STR, "preset": _STR, "global_batch_size": (_INT, 1, True, None),
    "device_batch_size": (_INT, 0, True, None),
    "epochs": (_INT, 1, True, None), "max_steps": (_INT, 0, True, None),
    "eval_interval_epochs": (_INT, 0, True, None), "eval_interval_steps": (_INT, 0, True, None),
    "checkpoint_interval_steps": (_INT, 0, True, None), "lr": (_FLOAT, 0, True, None),
    "lr_min_ratio": (_FLOAT, 0, True, 1.0), "lr_warmup_steps": (_INT, 0, True, None),
    "weight_decay": (_FLOAT, 0, True, None), "beta1": (_FLOAT, 0, True, 1.0), "beta2": (_FLOAT, 0, True, 1.0),
    "puzzle_emb_lr": (_FLOAT, 0, True, None), "puzzle_emb_weight_decay": (_FLOAT, 0, True, None), "ema": _BOOL,
    "ema_rate": (_FLOAT, 0, True, 1.0), "seed": (_INT, 0, True, None), "eval_max_batches": (_INT, 0, True, None),
    "eval_batch_size": (_INT, 0, True, None), "eval_steps": (_INT, 0, True, None), "loss_type": LOSS_TYPES,
    "compile": ("auto", True, False), "forward_dtype": ("auto",) + FORWARD_DTYPES,
    "time_budget_s": (_FLOAT, 0, True, None), "log_every": (_INT, 1, True, None), "tensorboard": _BOOL,
    "wandb": _BOOL,
}
_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _check(rule: Any, value: Any, fail) -> Any:
    """Check one value against its rule; return it (ints widened to float for float fields)."""
    if isinstance(rule, tuple) and rule and isinstance(rule[0], str):  # an enumeration
        if not any(type(value) is type(v) and value == v for v in rule):  # 1 is not true, "1" is not 1
            fail(f"expected one of {', '.join(_word(v) for v in rule)}, got {value!r}")
        return value
    kind, lo, lo_incl, hi = rule if isinstance(rule, tuple) else (rule, None, True, None)
    if kind is bool or kind is str:
        if type(value) is not kind:
            fail(f"expected {_TYPE_WORDS[kind]}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and isinstance(value, float)):
        fail(f"expected {_TYPE_WORDS[kind]}, got {value!r}")
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            fail(f"expected a finite number, got {value!r}")
    if lo is not None and (value < lo or (value == lo and not lo_incl)):
        fail(f"expected {'>=' if lo_incl else '>'} {lo}{f' and <= {hi}' if hi is not None else ''}, got {value!r}")
    if hi is not None and value > hi:
        fail(f"expected <= {hi}, got {value!r}")
    return value


def _word(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def check_train_field(key: str, value: Any, *, file: str | None = None) -> Any:
    """A training field's value (from a preset or `--set`), checked; raises InputError naming `key`."""
    def fail(msg):
        raise InputError(msg, file=file, field=key)
    if key not in TRAIN_RULES:
        raise InputError(f"unknown field '{key}' (training fields: {', '.join(sorted(TRAIN_RULES))}; "
                         "model fields as arch.<name>)", file=file, field=key)
    return _check(TRAIN_RULES[key], value, fail)


def check_arch_field(key: str, value: Any, *, file: str | None = None) -> Any:
    """A model field's value (`arch.<key>`), checked; raises InputError naming `arch.<key>`."""
    def fail(msg):
        raise InputError(msg, file=file, field=f"arch.{key}")
    if key not in ARCH_RULES:
        raise InputError(f"unknown model field (model fields: {', '.join(ARCH_RULES)})", file=file,
                         field=f"arch.{key}")
    return _check(ARCH_RULES[key], value, fail)


def check_arch_relations(arch: dict[str, Any], *, file: str | None = None) -> None:
    """Relations between model fields (each value already checked on its own). Defaults are TRMConfig's."""
    from .trm import TRMConfig
    a = {**dataclasses.asdict(TRMConfig()), **arch}
    a.setdefault("puzzle_emb_ndim", a["hidden_size"])
    if not a["mlp_t"]:  # attention splits the width into heads
        if a["hidden_size"] % a["num_heads"]:
            raise InputError(f"arch.hidden_size {a['hidden_size']} is not divisible by arch.num_heads "
                             f"{a['num_heads']}", file=file, field="arch.num_heads")
        if a["pos_encodings"] == "rope" and (a["hidden_size"] // a["num_heads"]) % 2:
            raise InputError(f"RoPE needs an even head dimension; arch.hidden_size {a['hidden_size']} / "
                             f"arch.num_heads {a['num_heads']} is odd", file=file, field="arch.num_heads")


def check_config(cfg) -> None:
    """Every field of a built `TrainConfig` (whatever set it) and the model fields' relations."""
    for f in dataclasses.fields(cfg):
        if f.name != "arch":
            setattr(cfg, f.name, check_train_field(f.name, getattr(cfg, f.name)))
    for k, v in list(cfg.arch.items()):
        cfg.arch[k] = check_arch_field(k, v)
    check_arch_relations(cfg.arch)


# ---------------------------------------------------------------------------------------------------------------
# prepared datasets


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
    from .arc_dataset import ARRAYS, FORMAT as ARC_FORMAT
    from .dense_dataset import FORMAT as DENSE_FORMAT
    from .jsonio import read_json
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
    if fmt not in (ARC_FORMAT, DENSE_FORMAT):
        raise InputError(f"unknown dataset format {fmt!r} (expected {ARC_FORMAT} or {DENSE_FORMAT})", file=mf,
                         field="format")
    _need(meta, "kind", mf, kind=str)
    seq_len = _need(meta, "seq_len", mf, lo=1)
    _need(meta, "vocab_size", mf, lo=2)
    _need(meta, "num_puzzle_identifiers", mf, lo=1)
    if fmt == ARC_FORMAT:
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
    for extra in ("tasks.json", "identifiers.json"):
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


# ---------------------------------------------------------------------------------------------------------------
# checkpoints


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header; InputError when unreadable or shorter than it says."""
    file = str(path)
    if not path.is_file():
        raise InputError("file missing from the checkpoint", file=file)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > min(size - 8, 100 << 20):
                raise ValueError("header length beyond the file")
            header = orjson.loads(f.read(n))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
        shapes = {k: tuple(int(s) for s in v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except Exception as e:  # noqa: BLE001 - garbage in any form
        raise InputError(f"not a readable safetensors file ({type(e).__name__})", file=file) from None
    if 8 + n + max(ends, default=0) > size:
        raise InputError(f"truncated: {size} bytes, its header needs {8 + n + max(ends)}", file=file)
    return shapes


def _model_shapes(model_cfg: dict, loss_type: str) -> dict[str, tuple[int, ...]]:
    import torch
    from .train import build_model
    from .trm import TRMConfig
    with torch.device("meta"):
        head = build_model(TRMConfig(**model_cfg), loss_type)
    return {k: tuple(v.shape) for k, v in head.state_dict().items()}


def check_checkpoint(path: str | Path) -> tuple[Path, dict]:
    """A checkpoint folder or run folder, checked: config.json complete and valid, the weights (and EMA) complete
    and shaped as the model the config describes. Returns (checkpoint folder, config)."""
    from . import checkpoint
    from .jsonio import read_json
    p = Path(path)
    if not p.exists():
        raise InputError("not a checkpoint: no such checkpoint or run folder", file=str(p))
    if p.is_file():
        raise InputError("expected a checkpoint folder or run folder, got a file (reference checkpoints: "
                         "arcsolver import-checkpoint)", file=str(p))
    ck = checkpoint.resolve(p)
    cfile = str(ck / "config.json")
    cfg = read_json(ck / "config.json")
    if not isinstance(cfg, dict):
        raise InputError(f"expected an object, got {type(cfg).__name__}", file=cfile)
    for key in ("model", "train", "data"):
        if not isinstance(cfg.get(key), dict):
            raise InputError("missing or not an object", file=cfile, field=key)
    for k, v in cfg["model"].items():
        check_arch_field(k, v, file=cfile)
    check_arch_relations(cfg["model"], file=cfile)
    loss_type = cfg["train"].get("loss_type", "stablemax_cross_entropy")
    check_train_field("loss_type", loss_type, file=cfile)
    try:
        ours = _model_shapes(cfg["model"], loss_type)
    except Exception as e:  # noqa: BLE001 - a config our model cannot be built from
        raise InputError(f"describes no buildable model ({type(e).__name__}: {e})", file=cfile, field="model") \
            from None
    weights = safetensors_shapes(ck / "model.safetensors")
    _compare_shapes(weights, ours, str(ck / "model.safetensors"), complete=True)
    if (ck / "ema.safetensors").is_file():
        _compare_shapes(safetensors_shapes(ck / "ema.safetensors"), ours, str(ck / "ema.safetensors"),
                        complete=False)
    return ck, cfg


def _compare_shapes(have: dict, want: dict, file: str, *, complete: bool) -> None:
    for k, shape in have.items():
        if k not in want:
            raise InputError("tensor not in the model config.json describes (another architecture?)", file=file,
                             field=k)
        if shape != want[k]:
            raise InputError(f"shape {shape} but config.json's model has {want[k]} (another architecture?)",
                             file=file, field=k)
    if complete:
        missing = [k for k in want if k not in have]
        if missing:
            raise InputError(f"missing tensor (and {len(missing) - 1} more)" if len(missing) > 1 else
                             "missing tensor", file=file, field=missing[0])


def check_resume(path: str | Path, model_cfg, loss_type: str) -> tuple[Path, dict]:
    """A checkpoint to resume the run described by `model_cfg` (a TRMConfig) from: valid, with a readable training
    state, of the same architecture (the first differing field is named). Returns (checkpoint folder, state)."""
    from . import checkpoint
    ck, cfg = check_checkpoint(path)
    cfile = str(ck / "config.json")
    ignore = {"batch_size", "forward_dtype"}  # per-process / per-device choices, not the architecture
    fields = dataclasses.asdict(model_cfg)
    fields["puzzle_emb_ndim"] = fields.pop("puzzle_emb_ndim")  # derived from hidden_size: name the cause first
    fields = {"puzzle_emb_mode": fields.pop("puzzle_emb_mode"), **fields}  # the cause of a different row count
    for k, v in fields.items():
        if k in ignore:
            continue
        if k in cfg["model"] and cfg["model"][k] != v:
            raise InputError(f"the checkpoint has {k}={cfg['model'][k]!r}, this run {k}={v!r} "
                             "(resume with the same preset, --set and dataset)", file=cfile, field=f"model.{k}")
    if cfg["train"].get("loss_type", "stablemax_cross_entropy") != loss_type:
        raise InputError(f"the checkpoint has loss_type={cfg['train'].get('loss_type')!r}, this run {loss_type!r}",
                         file=cfile, field="train.loss_type")
    return ck, checkpoint.load_train_state(ck)  # read now: an unreadable state fails before the run folder is touched


def check_puzzle_rows(ck: Path, want: dict, *, data: str | None = None) -> None:
    """The checkpoint's puzzle rows (its puzzle_rows.json) are named as `want` (the dataset's map, same mode):
    the same table row means the same task/version. Checkpoints written before row maps pass unchecked."""
    from . import checkpoint
    from .puzzle_embedding import map_row_names
    have = checkpoint.load_puzzle_rows(ck)
    if have is None:
        return
    f = str(ck / "puzzle_rows.json")
    if have["mode"] != want["mode"]:
        raise InputError(f"puzzle rows are for puzzle_emb_mode={have['mode']!r}, this run uses {want['mode']!r}",
                         file=f, field="mode")
    a, b = map_row_names(have), map_row_names(want)
    if a != b:
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        x, y = (a[i] if i < len(a) else "(none)"), (b[i] if i < len(b) else "(none)")
        raise InputError(f"{len(a)} puzzle rows, row {i} is {x!r}; the dataset{f' {data}' if data else ''} has "
                         f"{len(b)}, row {i} {y!r} (use the dataset the checkpoint was trained on)", file=f)


# ---------------------------------------------------------------------------------------------------------------
# tasks vs dataset, outputs


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


def check_writable(path: str | Path, *, folder: bool = False) -> None:
    """The output `path` (a file, or a folder with `folder`) can be created: its nearest existing ancestor is a
    writable folder, and the path itself is not something else. Writes nothing."""
    p = Path(path)
    if p.exists():
        if folder and not p.is_dir():
            raise InputError("exists and is not a folder", file=str(p))
        if not folder and p.is_dir():
            raise InputError("is a folder, expected a file path", file=str(p))
    q = p if folder and p.exists() else p.parent
    while not q.exists():
        q = q.parent
    if not q.is_dir():
        raise InputError(f"cannot create: {q} is not a folder", file=str(p))
    if not os.access(q, os.W_OK | os.X_OK):
        raise InputError(f"cannot create: no write permission in {q}", file=str(p))
