"""The model's share of the input checks, run before any work or any write starts: `arch.*` model fields (from a
preset, `--set` or a checkpoint's config.json) and checkpoints. Every problem raises `InputError` (one line naming
the file and the field, exit code 2 at the CLI).
  * model fields (`check_arch_field`, `check_arch_relations`): unknown keys, types (bools are not numbers), ranges,
    enums, and the relations between fields (hidden size divisible by heads, an even RoPE head dimension);
  * checkpoints (`check_checkpoint`): config.json complete and valid, weights files complete (safetensors header vs
    file size), every tensor of the model the config describes present with its shape; `check_resume` also compares
    the architecture with the run being resumed and names the first field that differs.
Datasets are checked in data/checks.py, training fields in training/checks.py, output locations in runtime/checks.py.
Choices: checks read headers and sizes, never whole tensors, so they cost milliseconds; the model for the shape check
is built on the `meta` device (no memory, no time).
The field checks are imported by the command line, which must not load torch (seconds): the checkpoint readers import
torch and the checkpoint module inside the functions that read checkpoints.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from typing import Any

import orjson

from arcsolver.model.config import DEFAULT_LOSS_TYPE, LOSS_TYPES, TRMConfig
from arcsolver.runtime.checks import check_rule
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.settings import check_value, declared


def check_arch_field(key: str, value: Any, *, file: str | None = None) -> Any:
    """A model field's value (`arch.<key>`), checked against its declaration in `TRMConfig`; raises InputError
    naming `arch.<key>`."""
    if key not in declared(TRMConfig):
        raise InputError(f"unknown model field (model fields: {', '.join(declared(TRMConfig))})", file=file,
                         field=f"arch.{key}")
    return check_value(TRMConfig, key, value, file=file, field=f"arch.{key}")


def check_loss_type(value: Any, *, file: str | None = None, field: str = "loss_type") -> Any:
    """The loss head's name (`loss_type`, a training field that selects a model part), checked."""
    def fail(msg):
        raise InputError(msg, file=file, field=field)
    return check_rule(LOSS_TYPES, value, fail)


def check_arch_relations(arch: dict[str, Any], *, file: str | None = None) -> None:
    """Relations between model fields (each value already checked on its own). Defaults are TRMConfig's."""
    a = {**dataclasses.asdict(TRMConfig()), **arch}
    a.setdefault("puzzle_emb_ndim", a["hidden_size"])
    if a["name"] == "urm":  # the reference URM: RoPE attention blocks, halting on q_halt alone
        for key, want in (("mlp_t", False), ("pos_encodings", "rope"), ("no_ACT_continue", True)):
            if a[key] != want:
                raise InputError(f"arch.name 'urm' needs arch.{key} = {want!r} (the reference URM's), got "
                                 f"{a[key]!r}", file=file, field=f"arch.{key}")
    if not a["mlp_t"]:  # attention splits the width into heads
        if a["hidden_size"] % a["num_heads"]:
            raise InputError(f"arch.hidden_size {a['hidden_size']} is not divisible by arch.num_heads "
                             f"{a['num_heads']}", file=file, field="arch.num_heads")
        if a["pos_encodings"] == "rope" and (a["hidden_size"] // a["num_heads"]) % 2:
            raise InputError(f"RoPE needs an even head dimension; arch.hidden_size {a['hidden_size']} / "
                             f"arch.num_heads {a['num_heads']} is odd", file=file, field="arch.num_heads")


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
    from arcsolver.model.build import build_model
    with torch.device("meta"):
        head = build_model(TRMConfig.from_dict(model_cfg), loss_type)
    return {k: tuple(v.shape) for k, v in head.state_dict().items()}


def check_checkpoint(path: str | Path) -> tuple[Path, dict]:
    """A checkpoint folder or run folder, checked: config.json complete and valid, the weights (and EMA) complete
    and shaped as the model the config describes. Returns (checkpoint folder, config)."""
    from arcsolver.model import checkpoint
    from arcsolver.runtime.jsonio import read_json
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
    loss_type = cfg["train"].get("loss_type", DEFAULT_LOSS_TYPE)
    check_loss_type(loss_type, file=cfile, field="loss_type")
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
    from arcsolver.model import checkpoint
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
    if cfg["train"].get("loss_type", DEFAULT_LOSS_TYPE) != loss_type:
        raise InputError(f"the checkpoint has loss_type={cfg['train'].get('loss_type')!r}, this run {loss_type!r}",
                         file=cfile, field="train.loss_type")
    return ck, checkpoint.load_train_state(ck)  # read now: an unreadable state fails before the run folder is touched


def check_puzzle_rows(ck: Path, want: dict, *, data: str | None = None) -> None:
    """The checkpoint's puzzle rows (its puzzle_rows.json) are named as `want` (the dataset's map, same mode):
    the same table row means the same task/version. Checkpoints written before row maps pass unchecked."""
    from arcsolver.model import checkpoint
    from arcsolver.model.puzzle_embedding import map_row_names
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
