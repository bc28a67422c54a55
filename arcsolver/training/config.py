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

from arcsolver.model.checks import check_arch_field, check_arch_relations
from arcsolver.model.config import DEFAULT_LOSS_TYPE, FORWARD_DTYPES, LOSS_TYPES, TRMConfig
from arcsolver.runtime.checks import SEED_MAX
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.settings import OVERWRITE_HELP, check_value, declared, setting
from arcsolver.runtime.trackers import parse_log_with

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (Kaggle's image may be older than ours): tomli is the same parser
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

PRESETS = Path(__file__).resolve().parent / "presets"
OPTIMIZERS = ("adam_atan2", "muon")  # train._optimizer builds them


def _tracker_names(value: str, field: str) -> str:
    parse_log_with(value, field)  # each named tracker known and installed, before anything is written
    return value


@dataclass
class TrainConfig:
    """One training run: the `[train]` table of a preset, `--set key=VALUE`, and the `train` entry of a checkpoint's
    config.json. `arch` holds the model's fields (model/config.TRMConfig)."""

    data: str = setting("", "Dataset folder from `arcsolver prepare`.")
    out: str = setting("runs/default", "Run folder (checkpoints, metrics.jsonl, the run's config).")
    arch: dict[str, Any] = field(default_factory=dict)
    global_batch_size: int = setting(768, "Rows per optimizer step, over all devices.", low=1, option="--batch-size")
    device_batch_size: int = setting(0, "Rows per forward/backward on each device; gradient accumulation keeps the "
                                     "global batch (0: the most that fits the free GPU memory, halved on "
                                     "out-of-memory; CPU: the whole batch).", low=0)
    epochs: int = setting(1, "Passes over the training examples (when max_steps is 0).", low=1, cli=False)
    max_steps: int = setting(0, "Optimizer steps; > 0 overrides epochs.", low=0, option="--steps")
    eval_interval_epochs: int = setting(0, "Evaluate every this many epochs (0: at the end only).", low=0, cli=False)
    eval_interval_steps: int = setting(0, "Evaluate every this many steps (overrides eval_interval_epochs).", low=0,
                                       cli=False)
    checkpoint_interval_steps: int = setting(0, "Save every this many steps (0: at every evaluation and at the "
                                             "end).", low=0, cli=False)
    lr: float = setting(1e-4, "Peak learning rate of the weights.", low=0, cli=False)
    lr_min_ratio: float = setting(1.0, "Cosine floor as a share of the peak (1: constant after warm-up).", low=0,
                                  high=1.0, cli=False)
    lr_warmup_steps: int = setting(2000, "Linear warm-up steps.", low=0, cli=False)
    weight_decay: float = setting(0.1, "Weight decay of the weights.", low=0, cli=False)
    optimizer: str = setting("adam_atan2", "adam_atan2, or muon (Muon on 2-D weights + AdamW on the rest, "
                             "model/muon.py).", choices=OPTIMIZERS, cli=False)
    beta1: float = setting(0.9, "Adam beta1.", low=0, high=1.0, cli=False)
    beta2: float = setting(0.95, "Adam beta2.", low=0, high=1.0, cli=False)
    puzzle_emb_lr: float = setting(1e-2, "Learning rate of the puzzle embeddings (sign-SGD).", low=0, cli=False)
    puzzle_emb_weight_decay: float = setting(0.1, "Weight decay of the puzzle embeddings.", low=0, cli=False)
    ema: bool = setting(True, "Keep an exponential moving average of the weights (what is evaluated).", cli=False)
    ema_rate: float = setting(0.999, "EMA decay per step.", low=0, high=1.0, cli=False)
    seed: int = setting(0, "Seed of the weights and the sampling.", low=0, high=SEED_MAX, cli=False)
    eval_max_batches: int = setting(0, "Evaluate at most this many batches (0: the whole test split).", low=0,
                                    cli=False)
    eval_batch_size: int = setting(0, "Rows per evaluation batch (0: global_batch_size).", low=0, cli=False)
    eval_steps: int = setting(0, "Supervision steps at evaluation and predict's default (0: the model's "
                              "halt_max_steps).", low=0, cli=False)
    loss_type: str = setting(DEFAULT_LOSS_TYPE, "Token loss.", choices=LOSS_TYPES, cli=False)
    compile: bool | str = setting("auto", "torch.compile: auto (on for CUDA, off for CPU; runtime/compilation.py), "
                                  "true or false.", choices=("auto", True, False), cli=False)
    forward_dtype: str = setting("auto", "Activation dtype: auto (per device; runtime/precision.py) or one of "
                                 "the model's.", choices=("auto",) + FORWARD_DTYPES, cli=False)
    time_budget_s: float = setting(0.0, "`arcsolver train` only: stop (with a checkpoint) before this many seconds "
                                   "from the command's start (0: no limit); the command line turns it into the run's "
                                   "Deadline with --time-budget / --deadline, the earliest winning.",
                                   low=0, cli=False)
    log_every: int = setting(10, "Steps between metrics.jsonl lines.", low=1, cli=False)
    log_with: str = setting("none", "Mirror metrics.jsonl to experiment trackers: none, all (every one installed), "
                            "or tensorboard,wandb,mlflow,trackio (Accelerate's; offline by default; each an extra: "
                            "pip install 'arcsolver[tensorboard]').", metavar="TRACKERS", check=_tracker_names)
    preset: str = setting("", "Preset name (arcsolver/training/presets) or path to a .toml file.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TrainRunSettings:
    """`arcsolver train`'s options that are not fields of the run's TrainConfig."""

    overrides: tuple[str, ...] = setting((), "Override any field: lr=3e-4, max_steps=500, arch.hidden_size=128 "
                                         "(repeatable).", option="--set", metavar="KEY=VALUE")
    resume: str | None = setting(None, "Continue exactly from a checkpoint or run folder.", metavar="CKPT")
    cpu: bool | None = setting(None, "Run on the CPU even if a GPU is present (default: the GPU when there is one).")
    overwrite: bool = setting(False, "Start over in an --out that holds another run (its contents are removed; "
                              "never an input).")


@dataclass
class FinetuneSettings:
    """`arcsolver finetune`: test-time training of a checkpoint on new tasks (training/finetune.py).

    The recipe's defaults are chosen by measurement: benchmarks/ttt_cpu.py compares the variants side by side
    (runs/results/ttt-cpu.md); runs/LOG.md has the history."""

    ckpt: str | None = setting(None, "Trained checkpoint (or run folder).", option="--from", required=True)
    tasks: str | None = setting(None, "The unseen tasks: Kaggle challenges file or folder.", metavar="SOURCE",
                                required=True)
    out: Path = setting(Path("finetune-out"), "Folder for the fine-tuned run (and submission.json with --predict).")
    predict_after: bool = setting(False, "Then predict --vote and write OUT/submission.json.", option="--predict")
    num_aug: int = setting(8, "Augmented versions per new task (8 beat 32 at the same steps, both seeds).", low=0)
    embed_fraction: float = setting(0.25, "Share of the budget for embeddings only (embeddings-then-full beat "
                                    "embeddings-only and full).", low=0, high=1.0)
    lr_scale: float = setting(2.0, "Fine-tune LRs = checkpoint LRs x this.", low=0, low_open=True)
    ema: bool | None = setting(None, "EMA of the weights during fine-tuning.", option="--ema/--no-ema",
                               shown_default="as the checkpoint was trained")
    batch_size: int | None = setting(None, "Global batch.", low=1, shown_default="the checkpoint's")
    embed_steps: int | None = setting(None, "Fixed embeddings-only steps instead of a budget plan (reproducible "
                                      "runs).", low=0)
    full_steps: int | None = setting(None, "Fixed full fine-tuning steps (with --embed-steps).", low=0)
    seed: int = setting(0, "Seed of the augmentations and the sampling.", low=0, high=SEED_MAX)
    overrides: tuple[str, ...] = setting((), "Override any training field.", option="--set", metavar="KEY=VALUE")
    device_batch_size: int | None = setting(None, like=(TrainConfig, "device_batch_size"),
                                            shown_default="the checkpoint's")
    log_with: str | None = setting(None, like=(TrainConfig, "log_with"), shown_default="the checkpoint's")
    cpu: bool | None = setting(None, "Run on the CPU even if a GPU is present (default: the GPU when there is one).")
    overwrite: bool = setting(False, OVERWRITE_HELP)
    publish: Path | None = setting(None, "An existing submission file (e.g. Kaggle's working one) that every "
                                   "prediction flush copies its answers into, atomically.", metavar="FILE")
    recipe: str | None = setting(None, "A recipe (arcsolver/training/recipes: cpu-default, kaggle-4xL4; or a .toml "
                                 "path) whose values apply wherever an option is not given here.", metavar="NAME")


FINETUNE = FinetuneSettings()


@dataclass
class ImportSettings:
    """`arcsolver import-checkpoint` (training/import_ckpt.py); the architecture options are model fields and are
    checked as `arch.*` (model/config.py)."""

    path: Path | None = setting(None, "The reference checkpoint file.", argument=True, required=True)
    identifiers: Path | None = setting(None, "The reference's identifiers.json (puzzle id -> name).", required=True)
    tasks: tuple[str, ...] = setting((), "Sources holding the tasks the names refer to (repeatable).",
                                     metavar="SOURCE", required=True)
    eval_tasks: tuple[str, ...] = setting((), "Tasks whose test inputs predict should answer.", metavar="SOURCE")
    out: Path | None = setting(None, "Folder for the imported run and dataset.", required=True)
    seq_len: int = setting(TRMConfig.seq_len, "Tokens per grid (the checkpoint cannot tell).", like=(TRMConfig,
                                                                                                   "seq_len"))
    num_heads: int = setting(TRMConfig.num_heads, "Attention heads (the checkpoint cannot tell).",
                             like=(TRMConfig, "num_heads"))
    H_cycles: int | None = setting(None, "Answer updates per step.", option="--H-cycles", like=(TRMConfig, "H_cycles"),
                                   shown_default="3 for TRM, 2 for URM checkpoints")
    L_cycles: int | None = setting(None, "Latent updates per answer update.", option="--L-cycles",
                                   like=(TRMConfig, "L_cycles"), shown_default="4 for TRM, 6 for URM checkpoints")
    puzzle_emb_len: int | None = setting(None, "Puzzle-prefix slots.", like=(TRMConfig, "puzzle_emb_len"),
                                         shown_default="16 for TRM; URM: ceil(puzzle dims / width), always")
    overwrite: bool = setting(False, OVERWRITE_HELP)


IMPORT = ImportSettings()


@dataclass
class ExportSettings:
    """`arcsolver export-checkpoint`."""

    checkpoint_path: Path | None = setting(None, "Our checkpoint or run folder.", argument=True, required=True)
    out: Path | None = setting(None, "Folder for the reference-format checkpoint.", required=True)
    overwrite: bool = setting(False, OVERWRITE_HELP)


@dataclass
class ReportSettings:
    """`arcsolver report` (training/run_report.py)."""

    runs: tuple[str, ...] = setting((), "Run folders.", argument=True, required=True, metavar="RUN [RUN...]")
    out: Path | None = setting(None, "Folder for index.html and its PNGs: new, empty, or an earlier report.",
                               required=True)
    gallery_tasks: int = setting(12, "Test tasks drawn with the model's two attempts, per run (0: no gallery).",
                                 low=0)
    versions: int = setting(8, "Augmented versions voted per test input for the gallery (as predict "
                            "--max-versions).", low=1)
    cpu: bool | None = setting(None, "Vote on the CPU even if a GPU is present.")
    overwrite: bool = setting(False, OVERWRITE_HELP)


REPORT = ReportSettings()


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


def check_train_field(key: str, value: Any, *, file: str | None = None) -> Any:
    """A training field's value (from a preset or `--set`), checked; raises InputError naming `key`."""
    if key not in declared(TrainConfig):
        raise InputError(f"unknown field '{key}' (training fields: {', '.join(sorted(declared(TrainConfig)))}; "
                         "model fields as arch.<name>)", file=file, field=key)
    field = "--log-with" if key == "log_with" and file is None else key
    return check_value(TrainConfig, key, value, file=file, field=field)


def build_config(preset: str | None, overrides: list[str] = (), **direct: Any) -> TrainConfig:
    """Preset, then `key=value` overrides, then non-None keyword arguments (the CLI's own flags).

    Every value is checked where it comes from (`check_train_field`, model/checks.py: the preset file, `--set`, the
    flag), and the relations between model fields once all are in, so a bad value stops here with one line, before
    any work."""
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
