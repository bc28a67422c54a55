"""The model a configuration describes: `TRMConfig` from the `arch` fields plus the dataset's shape, and the ACT
model it names (`arch.name`: "trm" -> trm.TRM, "urm" -> urm.URM) wrapped in its loss head. Shared by training,
prediction, fine-tuning, checkpoint checks and import, so it lives here, below all of them."""

from __future__ import annotations

import dataclasses
from typing import Any

from arcsolver.model.config import DEFAULT_LOSS_TYPE, TRMConfig, model_mode
from arcsolver.runtime.errors import InputError
from arcsolver.model.trm import TRM
from arcsolver.model.puzzle_embedding import table_rows
from arcsolver.model.losses import ACTLossHead
from arcsolver.model.urm import URM


def model_config(arch: dict[str, Any], data_meta: dict, local_batch: int):
    fields = {f.name for f in dataclasses.fields(TRMConfig)}
    unknown = set(arch) - fields
    if unknown:
        raise InputError(f"unknown model field(s): {', '.join(sorted(unknown))}", field="arch")
    kw = dict(arch)
    kw.update(batch_size=local_batch, seq_len=int(data_meta["seq_len"]), vocab_size=int(data_meta["vocab_size"]),
              num_puzzle_identifiers=table_rows(data_meta, model_mode(kw)))
    kw.setdefault("puzzle_emb_ndim", kw.get("hidden_size", TRMConfig.hidden_size))
    return TRMConfig(**kw)


def build_model(cfg, loss_type: str = DEFAULT_LOSS_TYPE):
    """The ACT model `cfg.name` names, wrapped in its loss head."""
    if cfg.name == "urm":
        return ACTLossHead(URM(cfg), loss_type=loss_type)
    return ACTLossHead(TRM(cfg), loss_type=loss_type)
