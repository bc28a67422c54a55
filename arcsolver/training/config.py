"""Training configuration: one dataclass, presets as small TOML files, overrides from the command line.

A preset (`arcsolver/training/presets/<name>.toml`, or any .toml path) has an `[arch]` table (fields of
`trm.TRMConfig`) and a `[train]` table (fields of `TrainConfig`). Any field can then be overridden with `key=value`
strings (`lr=3e-4`, `arch.hidden_size=128`); values are parsed as TOML literals, so types follow the dataclass.

Length of training is `max_steps` when set, else `epochs` x examples-per-epoch / global batch (the reference's
formula); evaluation every `eval_interval_steps`, or every `eval_interval_epochs` converted the same way.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arcsolver.runtime.errors import InputError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (Kaggle's image may be older than ours): tomli is the same parser
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

PRESETS = Path(__file__).resolve().parent / "presets"


@dataclass(frozen=True)
class FinetuneDefaults:
    """`arcsolver finetune`'s recipe defaults, written once (the CLI and `finetune()` both read them).

    Chosen by measurement: benchmarks/ttt_cpu.py (runs/ttt-cpu.sh, README "Test-time training") compares the
    variants side by side; see runs/results/ttt-cpu.md for the table these come from."""
    num_aug: int = 8  # 8 beat 32 at the same steps (both seeds); was 100, unmeasured
    embed_fraction: float = 0.25  # embeddings-then-full (40 + 120 steps) beat embeddings-only and full
    lr_scale: float = 2.0  # not varied by the benchmark
    ema: bool | None = None  # as the checkpoint (kept): kept at 0.999 13/48 vs off 14/48, a tie within one task
    per_task: bool = False  # joint: one model per task at the same total steps learned nothing


FINETUNE = FinetuneDefaults()


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs/default"
    arch: dict[str, Any] = field(default_factory=dict)
    global_batch_size: int = 768
    device_batch_size: int = 0  # rows per forward/backward (gradient accumulation); 0: from free memory (memory_model)
    epochs: int = 1
    max_steps: int = 0  # > 0 overrides epochs
    eval_interval_epochs: int = 0
    eval_interval_steps: int = 0
    checkpoint_interval_steps: int = 0  # 0: at every evaluation and at the end
    lr: float = 1e-4
    lr_min_ratio: float = 1.0
    lr_warmup_steps: int = 2000
    weight_decay: float = 0.1
    optimizer: str = "adam_atan2"  # "adam_atan2" | "muon" (Muon on 2-D weights + AdamW on the rest, model/muon.py)
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
    compile: bool | str = "auto"  # "auto": on for CUDA, off for CPU (compilation.py); true / false force it
    forward_dtype: str = "auto"  # "auto": per device (precision.py); float32 / bfloat16 / float16 force it
    time_budget_s: float = 0.0  # > 0: stop (with a checkpoint) before this many seconds
    log_every: int = 10
    log_with: str = "none"  # experiment trackers: none, all, or tensorboard,wandb,mlflow,trackio (runtime/trackers.py)
    preset: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _parse_value(text: str) -> Any:
    if tomllib is None:  # no TOML parser (Python 3.10 without tomli): scalars read as JSON, the rest as a string
        try:
            return json.loads(text)
        except ValueError:
            return text[1:-1] if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" else text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare string


def _preset_path(name: str) -> Path:
    path = Path(name)
    return PRESETS / f"{name}.toml" if not path.suffix else path


def read_tables(path: Path, tables: tuple[str, ...], what: str) -> dict:
    """A TOML settings file (a preset, a fine-tuning recipe) holding only the named tables; one line on error."""
    if tomllib is None:
        raise InputError(f"reading a {what} needs Python >= 3.11 or the tomli package", file=str(path))
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"not valid TOML ({str(e).splitlines()[0]})", file=str(path)) from None
    for table in raw:
        if table not in tables or not isinstance(raw[table], dict):
            raise InputError(f"expected only the tables {' and '.join(f'[{t}]' for t in tables)}", file=str(path),
                             field=table)
    return raw


def load_preset(name: str) -> dict:
    path = _preset_path(name)
    if not path.is_file():
        avail = ", ".join(sorted(p.stem for p in PRESETS.glob("*.toml")))
        raise InputError(f"unknown preset (available: {avail}, or a path to a .toml file)", file=name)
    return read_tables(path, ("arch", "train"), "preset")


def build_config(preset: str | None, overrides: list[str] = (), **direct: Any) -> TrainConfig:
    """Preset, then `key=value` overrides, then non-None keyword arguments (the CLI's own flags).

    Every value is checked where it comes from (training/checks.py, model/checks.py: the preset file, `--set`, the
    flag), and the relations between model fields once all are in, so a bad value stops here with one line, before
    any work."""
    from arcsolver.model.checks import check_arch_field, check_arch_relations
    from arcsolver.training.checks import check_train_field
    cfg = TrainConfig()
    if preset:
        raw = load_preset(preset)
        cfg.preset = preset
        src = str(_preset_path(preset))
        for k, v in raw.get("arch", {}).items():
            cfg.arch[k] = check_arch_field(k, v, file=src)
        for k, v in raw.get("train", {}).items():
            if k == "arch":
                raise InputError("model fields belong in the [arch] table", file=src, field="train.arch")
            setattr(cfg, k, check_train_field(k, v, file=src))
    for item in overrides:
        if "=" not in item:
            raise InputError(f"expected key=value, got {item!r}", field="--set")
        key, text = item.split("=", 1)
        key, value = key.strip(), _parse_value(text.strip())
        if key.startswith("arch."):
            cfg.arch[key[5:]] = check_arch_field(key[5:], value, file="--set")
        elif key == "arch":
            raise InputError("set model fields one by one: arch.<field>=VALUE", file="--set", field="arch")
        else:
            setattr(cfg, key, check_train_field(key, value, file="--set"))
    for k, v in direct.items():
        if v is not None:
            setattr(cfg, k, check_train_field(k, v))
    check_arch_relations(cfg.arch)
    return cfg
