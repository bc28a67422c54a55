"""The training stage's check of a whole built `TrainConfig` (`check_config`: every field against its declaration in
training/config.py, and the model fields through model/checks.py), whatever set it. Every problem raises
`InputError` naming the field.
"""

from __future__ import annotations

import dataclasses

from arcsolver.model.checks import check_arch_field, check_arch_relations
from arcsolver.training.config import check_train_field


def check_config(cfg) -> None:
    """Every field of a built `TrainConfig` (whatever set it) and the model fields' relations."""
    for f in dataclasses.fields(cfg):
        if f.name != "arch":
            setattr(cfg, f.name, check_train_field(f.name, getattr(cfg, f.name)))
    for k, v in list(cfg.arch.items()):
        cfg.arch[k] = check_arch_field(k, v)
    check_arch_relations(cfg.arch)
