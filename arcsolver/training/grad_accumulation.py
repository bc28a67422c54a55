"""Gradient accumulation: one optimizer step over the local batch, computed `device_batch` rows at a time.

It keeps the recipe's maths (tests/test_microbatch.py checks k = 1, 2, 4 micro-batches against one batch):
* the ACT carry is per row, so each micro-batch takes its rows of the carry and of the incoming batch and returns its
  rows of the new carry; the pieces are concatenated back in row order (inference/microbatch.py cuts and joins);
* the halting exploration draws (uniform + minimum steps, trm.TRM) are drawn once for the whole local batch, in the
  order the unsplit forward draws them, and sliced: the same rows explore whatever the split;
* each micro-batch's loss is divided by the *local* batch (not its own size) before backward, so the accumulated
  gradient is the one of the whole batch;
* the puzzle embedding records every micro-batch's rows (puzzle_embedding.SparsePuzzleEmbedding keeps a list), and
  sign-SGD sums the gradients of all occurrences of an id once, at the step; Adam and EMA step once per step;
* with several processes, gradients are synchronised only after the last micro-batch (`no_sync` before).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch

from arcsolver.inference.microbatch import bounds, cat_rows, split_rows


def draw_halt_noise(model_cfg, rows: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The exploration draws trm.TRM makes in training, for all `rows` at once and in the same order (uniform
    float32, then the minimum steps int32), or None when the model draws nothing (halt_max_steps <= 1)."""
    if model_cfg.halt_max_steps <= 1:
        return None
    u = torch.rand(rows, dtype=torch.float32, device=device)
    m = torch.randint(2, model_cfg.halt_max_steps + 1, (rows,), dtype=torch.int32, device=device)
    return u, m


def accumulate(forward: Callable, carry: Any, batch: dict[str, torch.Tensor], local_batch: int, device_batch: int,
               halt_noise: tuple[torch.Tensor, torch.Tensor] | None,
               no_sync: Callable[[], Any] | None = None,
               backward: Callable[[torch.Tensor], None] | None = None
               ) -> tuple[Any, torch.Tensor, dict[str, torch.Tensor]]:
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
