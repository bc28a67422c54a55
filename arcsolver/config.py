"""Training configuration: one dataclass, presets as small TOML files, overrides from the command line.

A preset (`arcsolver/presets/<name>.toml`, or any .toml path) has an `[arch]` table (fields of `trm.TRMConfig`) and
a `[train]` table (fields of `TrainConfig`). Any field can then be overridden with `key=value` strings
(`lr=3e-4`, `arch.hidden_size=128`); values are parsed as TOML literals, so types follow the dataclass.

Length of training is `max_steps` when set, else `epochs` x examples-per-epoch / global batch (the reference's
formula); evaluation every `eval_interval_steps`, or every `eval_interval_epochs` converted the same way.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError

PRESETS = Path(__file__).resolve().parent / "presets"


@dataclass(frozen=True)
class FinetuneDefaults:
    """`arcsolver finetune`'s recipe defaults, written once (the CLI and `finetune()` both read them).

    Chosen by measurement: benchmarks/ttt_cpu.py (runs/ttt-cpu.sh, README "Test-time training") compares the
    variants side by side; see runs/results/ttt-cpu.md for the table these come from."""
    num_aug: int = 100
    embed_fraction: float = 0.2
    lr_scale: float = 2.0
    ema: bool | None = None  # None: as the checkpoint was trained (EMA kept); False: raw weights during fine-tuning
    per_task: bool = False  # False: all new tasks fine-tuned jointly in one model


FINETUNE = FinetuneDefaults()


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs/default"
    arch: dict[str, Any] = field(default_factory=dict)
    global_batch_size: int = 768
    epochs: int = 1
    max_steps: int = 0  # > 0 overrides epochs
    eval_interval_epochs: int = 0
    eval_interval_steps: int = 0
    checkpoint_interval_steps: int = 0  # 0: at every evaluation and at the end
    lr: float = 1e-4
    lr_min_ratio: float = 1.0
    lr_warmup_steps: int = 2000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    puzzle_emb_lr: float = 1e-2
    puzzle_emb_weight_decay: float = 0.1
    ema: bool = True
    ema_rate: float = 0.999
    seed: int = 0
    eval_max_batches: int = 0  # 0: the whole test split
    eval_batch_size: int = 0  # 0: global_batch_size
    eval_steps: int = 0  # supervision steps at evaluation (and predict's default); 0: the model's halt_max_steps
    loss_type: str = "stablemax_cross_entropy"
    compile: bool = False
    time_budget_s: float = 0.0  # > 0: stop (with a checkpoint) before this many seconds
    log_every: int = 10
    tensorboard: bool = False
    wandb: bool = False
    preset: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare string


def load_preset(name: str) -> dict:
    path = Path(name)
    if not path.suffix:
        path = PRESETS / f"{name}.toml"
    if not path.is_file():
        avail = ", ".join(sorted(p.stem for p in PRESETS.glob("*.toml")))
        raise InputError(f"unknown preset (available: {avail}, or a path to a .toml file)", file=name)
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"not valid TOML ({e})", file=str(path)) from None


def build_config(preset: str | None, overrides: list[str] = (), **direct: Any) -> TrainConfig:
    """Preset, then `key=value` overrides, then non-None keyword arguments (the CLI's own flags)."""
    cfg = TrainConfig()
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    if preset:
        raw = load_preset(preset)
        cfg.preset = preset
        cfg.arch.update(raw.get("arch", {}))
        for k, v in raw.get("train", {}).items():
            if k not in known:
                raise InputError(f"unknown training field '{k}'", file=preset, field="train")
            setattr(cfg, k, v)
    for item in overrides:
        if "=" not in item:
            raise InputError(f"expected key=value, got {item!r}", field="--set")
        key, text = item.split("=", 1)
        key, value = key.strip(), _parse_value(text.strip())
        if key.startswith("arch."):
            cfg.arch[key[5:]] = value
        elif key in known and key != "arch":
            cur = getattr(cfg, key)
            if isinstance(cur, float) and isinstance(value, int):
                value = float(value)
            if type(cur) is not type(value) and not (cur == "" and isinstance(value, str)):
                raise InputError(f"{key} expects {type(cur).__name__}, got {value!r}", field="--set")
            setattr(cfg, key, value)
        else:
            raise InputError(f"unknown field '{key}' (training fields or arch.<field>)", field="--set")
    for k, v in direct.items():
        if v is not None:
            setattr(cfg, k, v)
    return cfg
