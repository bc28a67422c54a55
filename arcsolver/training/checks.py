"""The training stage's share of the input checks: training fields (from a preset, `--set` or a CLI flag) and a
whole built `TrainConfig` (`check_config`: every field, and the model fields through model/checks.py). Every problem
raises `InputError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from arcsolver.model.checks import FORWARD_DTYPES, LOSS_TYPES, check_arch_field, check_arch_relations
from arcsolver.runtime.checks import SEED_MAX, check_rule
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.trackers import parse_log_with

_INT, _FLOAT, _BOOL, _STR = int, float, bool, str
OPTIMIZERS = ("adam_atan2", "muon")  # train._optimizer builds them

TRAIN_RULES: dict[str, Any] = {
    "data": _STR, "out": _STR, "preset": _STR, "global_batch_size": (_INT, 1, True, None),
    "device_batch_size": (_INT, 0, True, None),
    "epochs": (_INT, 1, True, None), "max_steps": (_INT, 0, True, None),
    "eval_interval_epochs": (_INT, 0, True, None), "eval_interval_steps": (_INT, 0, True, None),
    "checkpoint_interval_steps": (_INT, 0, True, None), "lr": (_FLOAT, 0, True, None),
    "lr_min_ratio": (_FLOAT, 0, True, 1.0), "lr_warmup_steps": (_INT, 0, True, None),
    "weight_decay": (_FLOAT, 0, True, None), "optimizer": OPTIMIZERS, "beta1": (_FLOAT, 0, True, 1.0),
    "beta2": (_FLOAT, 0, True, 1.0),
    "puzzle_emb_lr": (_FLOAT, 0, True, None), "puzzle_emb_weight_decay": (_FLOAT, 0, True, None), "ema": _BOOL,
    "ema_rate": (_FLOAT, 0, True, 1.0), "seed": (_INT, 0, True, SEED_MAX), "eval_max_batches": (_INT, 0, True, None),
    "eval_batch_size": (_INT, 0, True, None), "eval_steps": (_INT, 0, True, None), "loss_type": LOSS_TYPES,
    "compile": ("auto", True, False), "forward_dtype": ("auto",) + FORWARD_DTYPES,
    "time_budget_s": (_FLOAT, 0, True, None), "log_every": (_INT, 1, True, None), "log_with": _STR,
}


def check_train_field(key: str, value: Any, *, file: str | None = None) -> Any:
    """A training field's value (from a preset or `--set`), checked; raises InputError naming `key`."""
    def fail(msg):
        raise InputError(msg, file=file, field=key)
    if key not in TRAIN_RULES:
        raise InputError(f"unknown field '{key}' (training fields: {', '.join(sorted(TRAIN_RULES))}; "
                         "model fields as arch.<name>)", file=file, field=key)
    value = check_rule(TRAIN_RULES[key], value, fail)
    if key == "log_with":  # known trackers, each installed: a missing package is found before anything is written
        try:
            parse_log_with(value, "--log-with" if file is None else key)
        except InputError as e:
            raise InputError(e.reason, file=file, field=e.field) from None
    return value


def check_config(cfg) -> None:
    """Every field of a built `TrainConfig` (whatever set it) and the model fields' relations."""
    for f in dataclasses.fields(cfg):
        if f.name != "arch":
            setattr(cfg, f.name, check_train_field(f.name, getattr(cfg, f.name)))
    for k, v in list(cfg.arch.items()):
        cfg.arch[k] = check_arch_field(k, v)
    check_arch_relations(cfg.arch)
