"""Micro-batches: a batch computed `device_batch` rows at a time, and the micro-batch halved on out-of-memory.

Rows are independent at inference, so prediction rolls a batch out in pieces and concatenates the answers
(`rollout_in_micro_batches`); training accumulates gradients over the same pieces (training/grad_accumulation.py).
A carry or batch is a nest of tensors (dataclasses, dicts, tuples): `map_tensors` applies one function to every
tensor in it, `split_rows` / `cat_rows` cut it into consecutive rows and join the pieces back.

`run_halving_on_oom` retries a step with half the micro-batch after an out-of-memory error (CUDA's, or an injected
one in tests); the step is functional up to the gradients, which the caller's `reset` clears before the retry.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

from arcsolver.runtime.report import logger

log = logger(__name__)  # warnings: runtime/report.py


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """`obj` with `fn` applied to every tensor in it: tensors, dataclasses, dicts, lists and tuples, nested."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(obj, **{f.name: map_tensors(getattr(obj, f.name), fn)
                                           for f in dataclasses.fields(obj)})
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_tensors(v, fn) for v in obj)
    return obj


def split_rows(obj: Any, start: int, stop: int) -> Any:
    """Rows [start, stop) of every tensor in a (nested) carry / batch."""
    return map_tensors(obj, lambda t: t[start:stop])


def cat_rows(parts: list[Any]) -> Any:
    """Inverse of `split_rows` over consecutive pieces."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if dataclasses.is_dataclass(first):
        return dataclasses.replace(first, **{f.name: cat_rows([getattr(p, f.name) for p in parts])
                                             for f in dataclasses.fields(first)})
    if isinstance(first, dict):
        return {k: cat_rows([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(cat_rows([p[i] for p in parts]) for i in range(len(first)))
    return first


def bounds(rows: int, device_batch: int) -> list[tuple[int, int]]:
    step = max(1, int(device_batch))
    return [(s, min(rows, s + step)) for s in range(0, rows, step)]


def is_oom(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def run_halving_on_oom(step: Callable[[int], Any], device_batch: int, reset: Callable[[], None],
                       what: str = "step") -> tuple[Any, int]:
    """`step(device_batch)`, retried with half the micro-batch after each out-of-memory error (after `reset()`).
    Returns (result, the micro-batch that worked). An OOM at one row is re-raised."""
    while True:
        try:
            return step(device_batch), device_batch
        except Exception as e:  # noqa: BLE001 - only OOMs are handled, the rest re-raised
            if not is_oom(e) or device_batch <= 1:
                raise
            reset()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            new = max(1, device_batch // 2)
            log.warning("out of memory in the %s with %d rows per micro-batch; retrying with %d", what, device_batch,
                        new)
            device_batch = new


def rollout_in_micro_batches(model, batch: dict[str, torch.Tensor], steps: int | None, device_batch: int,
                             rollout: Callable) -> tuple[torch.Tensor, torch.Tensor, int]:
    """`rollout` (inference.rollout, or a test's stand-in) over `batch`, `device_batch` rows at a time (rows are
    independent at inference, so the answers are those of one rollout), halving on out-of-memory. Returns (preds, q,
    the micro-batch that worked)."""
    rows = batch["inputs"].shape[0]

    def run(db: int):
        outs = [rollout(model, split_rows(batch, s, e), steps) for s, e in bounds(rows, db)]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    (preds, q), used = run_halving_on_oom(run, max(1, min(device_batch, rows)) if rows else 1, lambda: None,
                                          "prediction")
    return preds, q, used
