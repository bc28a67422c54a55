"""Loss of the TRM: stable-max cross-entropy on the answer tokens plus 0.5 x BCE of the halting logit.

Stable-max (trm-reference.md §2) replaces exp with s(x) = 1/(1-x) for x < 0 and x + 1 otherwise, computed in
float64 as the reference does; softmax cross-entropy is available too. The halting head learns "is my current answer
exactly right": its target is whether argmax equals every non-ignored label. Per row the token loss is a mean over
non-ignored tokens; rows are summed (the trainer divides by the batch). Metrics are sums over the rows that halted at
this step, so they can be added across processes before dividing by `count`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_LABEL = -100


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = torch.where(x < 0, 1.0 / (1.0 - x + 1e-30), x + 1.0)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    logp = log_stablemax(logits.to(torch.float64), dim=-1)
    valid = labels != ignore_index
    safe = torch.where(valid, labels, 0)
    picked = torch.gather(logp, -1, safe.to(torch.int64).unsqueeze(-1)).squeeze(-1)
    return -torch.where(valid, picked, 0)


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    return F.cross_entropy(logits.to(torch.float32).view(-1, logits.shape[-1]), labels.to(torch.long).view(-1),
                           ignore_index=ignore_index, reduction="none").view(labels.shape)


LOSSES = {"stablemax_cross_entropy": stablemax_cross_entropy, "softmax_cross_entropy": softmax_cross_entropy}


class ACTLossHead(nn.Module):
    """Wraps the ACT model: forward(carry, batch) -> (carry, loss, metrics, outputs, all_halted)."""

    def __init__(self, model: nn.Module, loss_type: str = "stablemax_cross_entropy"):
        super().__init__()
        self.model = model
        if loss_type not in LOSSES:
            raise ValueError(f"unknown loss {loss_type!r} (one of {', '.join(LOSSES)})")
        self.loss_fn = LOSSES[loss_type]

    def initial_carry(self, batch):
        return self.model.initial_carry(batch)

    def forward(self, carry, batch: dict[str, torch.Tensor], return_keys=()):
        new_carry, out = self.model(carry, batch)
        labels = new_carry.current_data["labels"]
        logits = out["logits"]
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
                "q_halt_accuracy": (valid & ((out["q_halt_logits"] >= 0) == seq_correct)).sum(),
                "steps": torch.where(valid, new_carry.steps, 0).sum(),
            }
        lm_loss = (self.loss_fn(logits, labels, IGNORE_LABEL) / divisor).sum()
        q_halt_loss = F.binary_cross_entropy_with_logits(out["q_halt_logits"], seq_correct.to(out["q_halt_logits"].dtype),
                                                         reduction="sum")
        metrics["lm_loss"] = lm_loss.detach()
        metrics["q_halt_loss"] = q_halt_loss.detach()
        q_cont_loss = 0
        if "target_q_continue" in out:
            q_cont_loss = F.binary_cross_entropy_with_logits(out["q_continue_logits"], out["target_q_continue"],
                                                             reduction="sum")
            metrics["q_continue_loss"] = q_cont_loss.detach()
        detached = {k: out[k].detach() for k in return_keys if k in out}
        if "preds" in return_keys:
            detached["preds"] = preds
        return new_carry, lm_loss + 0.5 * (q_halt_loss + q_cont_loss), metrics, detached, new_carry.halted.all()
