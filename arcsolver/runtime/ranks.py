"""Processes agreeing on when to stop: one all-reduce (MAX) of a stop code per decision, the same everywhere.

Each process decides for itself (its own signal handler, its own clock and batch times); a process that stopped
alone would leave the others waiting in their next collective. So every stop decision of training, evaluation and
prediction goes through `agree_on_stop`: the reasons are coded by priority (`interrupts.STOP_REASONS`) and the
highest one on any process wins, with one 4-byte collective.
"""

from __future__ import annotations

import torch
from accelerate.utils import reduce

from arcsolver.runtime.interrupts import stop_code, stop_reason


def agree_on_stop(device: torch.device | str | None, world: int, why: str | None,
                  received: str | None = None) -> tuple[str | None, str | None]:
    """(why, signal), the same on every process: a signal received by any process stops all of them.
    `why` is this process's own reason ("steps", "time") and `received` the signal it got ("SIGINT", "SIGTERM");
    a signal outranks any other reason. With one process nothing is exchanged."""
    code = stop_code(received) if received else stop_code(why)
    if world > 1:
        code = int(reduce(torch.tensor([code], dtype=torch.int32, device=device), reduction="max"))
    reason = stop_reason(code)
    if reason in ("SIGINT", "SIGTERM"):
        return "signal", reason
    return reason, None
