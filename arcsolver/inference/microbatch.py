"""Micro-batches: one optimizer step over the local batch, computed `device_batch` rows at a time.

Gradient accumulation keeps the recipe's maths (tests/test_microbatch.py checks k = 1, 2, 4 against one batch):
* the ACT carry is per row, so each micro-batch takes its rows of the carry and of the incoming batch and returns its
  rows of the new carry; the pieces are concatenated back in row order;
* the halting exploration draws (uniform + minimum steps, trm.TRM) are drawn once for the whole local batch, in the
  order the unsplit forward draws them, and sliced: the same rows explore whatever the split;
* each micro-batch's loss is divided by the *local* batch (not its own size) before backward, so the accumulated
  gradient is the one of the whole batch;
* the puzzle embedding records every micro-batch's rows (puzzle_embedding.SparsePuzzleEmbedding keeps a list), and
  sign-SGD sums the gradients of all occurrences of an id once, at the step; Adam and EMA step once per step;
* with several processes, gradients are synchronised only after the last micro-batch (`no_sync` before).

`run_halving_on_oom` retries a step with half the micro-batch after an out-of-memory error (CUDA's, or an injected
one in tests); the step is functional up to the gradients, which the caller's `reset` clears before the retry.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable

import torch

from arcsolver.runtime.report import logger

log = logger(__name__)  # warnings: runtime/report.py


def split_rows(obj: Any, start: int, stop: int) -> Any:
    """Rows [start, stop) of every tensor in a (nested) carry / batch: tensors, dataclasses, dicts, tuples."""
    if isinstance(obj, torch.Tensor):
        return obj[start:stop]
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(obj, **{f.name: split_rows(getattr(obj, f.name), start, stop)
                                           for f in dataclasses.fields(obj)})
    if isinstance(obj, dict):
        return {k: split_rows(v, start, stop) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(split_rows(v, start, stop) for v in obj)
    return obj


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


def draw_halt_noise(model_cfg, rows: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The exploration draws trm.TRM makes in training, for all `rows` at once and in the same order (uniform
    float32, then the minimum steps int32), or None when the model draws nothing (halt_max_steps <= 1)."""
    if model_cfg.halt_max_steps <= 1:
        return None
    u = torch.rand(rows, dtype=torch.float32, device=device)
    m = torch.randint(2, model_cfg.halt_max_steps + 1, (rows,), dtype=torch.int32, device=device)
    return u, m


def is_oom(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def accumulate(forward: Callable, carry: Any, batch: dict[str, torch.Tensor], local_batch: int, device_batch: int,
               halt_noise: tuple[torch.Tensor, torch.Tensor] | None,
               no_sync: Callable[[], Any] | None = None,
               backward: Callable[[torch.Tensor], None] | None = None) -> tuple[Any, torch.Tensor, dict[str, torch.Tensor]]:
    """Forward + backward of the local batch in micro-batches of `device_batch` rows.

    `forward(carry, batch, halt_noise) -> (carry, loss, metrics)` is one micro-batch (the loss summed over its rows).
    `backward(loss)` (default `loss.backward()`) is the trainer's, e.g. with float16 loss scaling.
    Returns the new carry (all rows), the summed loss (detached) and the summed metrics."""
    rows = batch["inputs"].shape[0]
    pieces = bounds(rows, device_batch)
    carries, loss_sum, metrics_sum = [], None, {}
    for i, (s, e) in enumerate(pieces):
        last = i == len(pieces) - 1
        ctx = no_sync() if (no_sync is not None and not last) else contextlib.nullcontext()
        noise = None if halt_noise is None else (halt_noise[0][s:e], halt_noise[1][s:e])
        with ctx:
            c, loss, metrics = forward(split_rows(carry, s, e), split_rows(batch, s, e), noise)
            if backward is None:
                (loss / local_batch).backward()
            else:
                backward(loss / local_batch)
        carries.append(c)
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        for k, v in metrics.items():
            metrics_sum[k] = v.detach() if k not in metrics_sum else metrics_sum[k] + v.detach()
    return cat_rows(carries), loss_sum, metrics_sum


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
                             rollout: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """`rollout` (default inference.rollout) over `batch`, `device_batch` rows at a time (rows are independent at
    inference, so the answers are those of one rollout), halving on out-of-memory. Returns (preds, q, the
    micro-batch that worked)."""
    if rollout is None:
        from arcsolver.inference.rollout import rollout
    rows = batch["inputs"].shape[0]

    def run(db: int):
        outs = [rollout(model, split_rows(batch, s, e), steps) for s, e in bounds(rows, db)]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    (preds, q), used = run_halving_on_oom(run, max(1, min(device_batch, rows)) if rows else 1, lambda: None,
                                          "prediction")
    return preds, q, used
