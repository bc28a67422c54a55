"""Inference rollouts: run a batch through all supervision steps and read off predictions.

At evaluation the reference always runs every supervision step (halting is a training-time device), then takes the
argmax of the last step's logits; sigmoid(q_halt) of the last step is the model's confidence, used by voting to
break ties. `rollout` does exactly that under `torch.inference_mode`; `evaluate_split` scores a whole test split
(token and exact accuracy over non-ignored labels) and is shared by `train` and `predict`.

`Rollout` gives the same answers as stepping the model (bit for bit; tests/test_model.py) with less work: the input
embedding x is computed once, not once per step; the latents stay in the recursion's internal layout between
steps (no transposed copies of x, z_H and z_L at every step with `mlp_t`); the output heads run after the last step
only. The network itself (fused in-place kernels without autograd, layers.py) is unchanged: it is the cost, and on
CPU it runs close to the plain matrix-product rate (benchmarks/bench_model.py prints both), so fp32 answers leave
little else to gain.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import torch

from arcsolver.data.encoding import IGNORE_LABEL


class Rollout:
    """One batch's evaluation recursion, one supervision step per `step()`; `result()` reads off the answer.

    `model` is the ACT model (trm.TRM or urm.URM, or a DDP wrapper of it). Train/eval mode does not matter here: the
    inner network has no mode-dependent layers, and without autograd the puzzle embedding is a plain lookup.
    """

    @torch.inference_mode()
    def __init__(self, model, batch: dict[str, torch.Tensor]):
        inner = getattr(model, "module", model).inner
        self.inner = inner
        B, dev = batch["inputs"].shape[0], batch["inputs"].device
        start = inner.reset_carry(torch.ones(B, dtype=torch.bool, device=dev), inner.empty_carry(B, dev))
        # the latents in the carry's field order: (z_H, z_L) for TRM, (hidden,) for URM; the first is the answer
        self.latents = tuple(inner.to_internal(getattr(start, f.name)) for f in dataclasses.fields(start))
        self.x = inner.to_internal(inner.embed_batch(batch))
        self.cos_sin = inner.cos_sin()
        self.steps = 0

    @torch.inference_mode()
    def step(self) -> None:
        self.latents = self.inner.recurse(*self.latents, self.x, self.cos_sin)
        self.steps += 1

    @torch.inference_mode()
    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(preds int [B, L], q_halt_logits float [B]) of the last step."""
        logits, q = self.inner.heads(self.latents[0])
        return logits.argmax(-1), q[..., 0].float()


@torch.inference_mode()
def rollout(model, batch: dict[str, torch.Tensor], steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(preds int [B, L], q_halt_logits float [B]) after `steps` (default: halt_max_steps) supervision steps.

    More steps than the model trained with are allowed: the recursion simply continues from its carry. (It drives
    the inner network directly rather than the ACT wrapper: at evaluation every row runs every step anyway, and the
    wrapper would restart rows after halt_max_steps, so `steps` beyond the training limit would silently recompute
    the same answer instead of refining it further.)
    """
    model = getattr(model, "module", model)  # a DDP-wrapped model from accelerate
    run = Rollout(model, batch)
    for _ in range(steps or model.config.halt_max_steps):
        run.step()
    return run.result()


def batch_to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.inference_mode()
def evaluate_split(model, batches: Iterator[dict[str, torch.Tensor]], device: torch.device,
                   max_batches: int = 0, steps: int | None = None, on_batch=None) -> dict[str, float]:
    """Token and exact accuracy of `model` over test batches (padding rows, index -1, skipped).

    Returns sums and counts so results from several processes can be added before dividing.
    `on_batch(batch, preds, q)` is called for every batch (e.g. to feed a vote book).
    """
    tok_correct = tok_total = ex_correct = ex_total = 0
    for i, batch in enumerate(batches):
        if max_batches and i >= max_batches:
            break
        batch = batch_to(batch, device)
        preds, q = rollout(model, batch, steps)
        labels = batch["labels"]
        valid_rows = batch["index"] >= 0 if "index" in batch else torch.ones(len(labels), dtype=torch.bool,
                                                                              device=labels.device)
        mask = (labels != IGNORE_LABEL) & valid_rows[:, None]
        correct = (preds == labels) & mask
        tok_correct += int(correct.sum())
        tok_total += int(mask.sum())
        has_label = mask.any(-1)
        exact = (correct.sum(-1) == mask.sum(-1)) & has_label
        ex_correct += int(exact.sum())
        ex_total += int(has_label.sum())
        if on_batch is not None:
            on_batch(batch, preds, q)
    return {"token_correct": tok_correct, "token_total": tok_total, "exact_correct": ex_correct,
            "exact_total": ex_total}


def finish_metrics(sums: dict[str, float]) -> dict[str, float]:
    return {"token_accuracy": sums["token_correct"] / max(sums["token_total"], 1),
            "exact_accuracy": sums["exact_correct"] / max(sums["exact_total"], 1),
            "count": sums["exact_total"]}
