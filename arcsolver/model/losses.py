"""The TRM training loss: stable-max cross-entropy on the answer tokens plus 0.5 x BCE of the halting logit
(docs/trm.md, 'Loss'; the reference's models/losses.py).

* Stable-max replaces exp with s(x) = 1/(1 - x) for x < 0 and x + 1 for x >= 0; p = s(x) / sum s(x). It is computed
  in float64 as the reference does (only the [B, L, V] logits are promoted; nothing else runs in float64).
  Softmax cross-entropy (fp32) is the alternative (`loss_type="softmax_cross_entropy"`). Label -100 is ignored.
* Per row, the token loss is the mean over its non-ignored tokens; rows are summed (the trainer divides by the batch
  size, which makes the sum over processes a mean over the global batch).
* The halting head learns "is my current answer exactly right": BCE-with-logits of q_halt against seq_is_correct
  (argmax equals every non-ignored label), summed over rows. Total = lm_loss + 0.5 * (q_halt_loss + q_continue_loss),
  the last only when the model produced a Q-continue target (no_ACT_continue False).
* Metrics are *sums over the rows that halted at this step* (and have at least one label), so they can be added over
  steps and processes and divided by `count` at logging time: count, accuracy (per-row token accuracy, summed),
  exact_accuracy, q_halt_accuracy, steps; plus lm_loss, q_halt_loss (all rows).

Interface (used by train):
  head = ACTLossHead(TRM(cfg))
  carry = head.initial_carry(batch)
  carry, loss, metrics, outputs, all_halted = head(carry, batch, return_keys=("preds", "q_halt_logits", ...))
  `loss` is a float64 scalar with autograd; `outputs` holds the detached model outputs named in return_keys
  ("preds" = argmax of the logits, int64 [B, L]); `all_halted` is a bool tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from arcsolver.data.encoding import IGNORE_LABEL
from arcsolver.model.config import DEFAULT_LOSS_TYPE


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = torch.where(x < 0, 1.0 / (1.0 - x + 1e-30), x + 1.0)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                            ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Per-token -log stablemax(logits)[label] in float64; 0 where the label is ignored."""
    logp = log_stablemax(logits.to(torch.float64), dim=-1)
    valid = labels != ignore_index
    safe = torch.where(valid, labels, 0).to(torch.int64)
    picked = torch.gather(logp, -1, safe.unsqueeze(-1)).squeeze(-1)
    return -torch.where(valid, picked, 0)


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                          ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Per-token softmax cross-entropy in fp32; 0 where the label is ignored."""
    return F.cross_entropy(logits.to(torch.float32).reshape(-1, logits.shape[-1]), labels.to(torch.long).reshape(-1),
                           ignore_index=ignore_index, reduction="none").view(labels.shape)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {"stablemax_cross_entropy": stablemax_cross_entropy,
                                                 "softmax_cross_entropy": softmax_cross_entropy}


class ACTLossHead(nn.Module):
    """Wraps the ACT model (trm.TRM) as `model` (the reference's module path) and computes loss and metrics."""

    def __init__(self, model: nn.Module, loss_type: str = DEFAULT_LOSS_TYPE):
        super().__init__()
        if loss_type not in LOSSES:
            raise ValueError(f"unknown loss {loss_type!r} (one of {', '.join(LOSSES)})")
        self.model = model
        self.loss_type = loss_type
        self.loss_fn = LOSSES[loss_type]

    def initial_carry(self, batch: dict[str, torch.Tensor]):
        return self.model.initial_carry(batch)

    def forward(self, carry, batch: dict[str, torch.Tensor], return_keys: Sequence[str] = (), halt_noise=None):
        new_carry, out = self.model(carry, batch, halt_noise=halt_noise)
        labels = new_carry.current_data["labels"]
        logits = out["logits"]
        q_halt = out["q_halt_logits"]
        with torch.no_grad():
            preds = logits.argmax(-1)
            mask = labels != IGNORE_LABEL
            counts = mask.sum(-1)
            divisor = counts.clamp_min(1).unsqueeze(-1)
            correct = mask & (preds == labels)
            seq_correct = correct.sum(-1) == counts
            valid = new_carry.halted & (counts > 0)
            metrics = {
                "count": valid.sum(),
                "accuracy": torch.where(valid, (correct.to(torch.float32) / divisor).sum(-1), 0).sum(),
                "exact_accuracy": (valid & seq_correct).sum(),
                "q_halt_accuracy": (valid & ((q_halt >= 0) == seq_correct)).sum(),
                "steps": torch.where(valid, new_carry.steps, 0).sum(),
            }
        lm_loss = (self.loss_fn(logits, labels, IGNORE_LABEL) / divisor).sum()
        q_halt_loss = F.binary_cross_entropy_with_logits(q_halt, seq_correct.to(q_halt.dtype), reduction="sum")
        metrics["lm_loss"] = lm_loss.detach()
        metrics["q_halt_loss"] = q_halt_loss.detach()
        q_cont_loss: torch.Tensor | float = 0.0
        if "target_q_continue" in out:
            q_cont_loss = F.binary_cross_entropy_with_logits(out["q_continue_logits"], out["target_q_continue"],
                                                             reduction="sum")
            metrics["q_continue_loss"] = q_cont_loss.detach()
        outputs = {k: out[k].detach() for k in return_keys if k in out}
        if "preds" in return_keys:
            outputs["preds"] = preds
        loss = lm_loss + 0.5 * (q_halt_loss + q_cont_loss)
        return new_carry, loss, metrics, outputs, new_carry.halted.all()
