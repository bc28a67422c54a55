"""The per-puzzle embedding table and its sparse sign-SGD optimizer (trm-reference.md §3, sparse_embedding.py).

The table is a zero-initialised fp32 *buffer* `weights` [num_puzzle_identifiers, D], not a Parameter: it is left
out of the parameter count, of Adam and of EMA, and a gradient never materialises for all of it (ARC has ~876k rows,
~1.8 GB). In training (module in train mode, autograd on) the forward copies the batch's rows into a fresh leaf
tensor that requires grad and remembers (ids, leaf); `SignSGDSparse.step` then updates only those rows:
    p[id] <- p[id] * (1 - lr * wd) - lr * sign(sum of the gradients of every occurrence of id)
Rows of the batch whose gradient is zero still get the weight decay, as in the reference; rows handed out by a
forward whose leaf received no gradient at all (it never reached a backward) are left untouched, as the reference
skips its step when its leaf has no gradient.
Data parallel: when a torch.distributed process group is initialised, every process all-gathers the (ids, grads) of
all processes first, so all ranks apply the identical update and their tables stay equal without ever
broadcasting the table (ranks may hold different numbers of rows).
In evaluation, or without autograd, the forward is a plain lookup and records nothing.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class SparsePuzzleEmbedding(nn.Module):
    def __init__(self, num: int, dim: int, cast_to: torch.dtype = torch.float32):
        super().__init__()
        self.cast_to = cast_to
        self.register_buffer("weights", torch.zeros(num, dim, dtype=torch.float32), persistent=True)
        # Leaves handed out since the last optimizer step, and their ids (several forwards accumulate).
        self.local_weights: list[torch.Tensor] | None = None
        self.local_ids: list[torch.Tensor] | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.reshape(-1).long()
        if not (self.training and torch.is_grad_enabled()):
            return self.weights[ids].to(self.cast_to)
        leaf = self.weights[ids].detach().requires_grad_(True)
        if self.local_weights is None:
            self.local_weights, self.local_ids = [], []
        self.local_weights.append(leaf)
        self.local_ids.append(ids)
        return leaf.to(self.cast_to)


def _all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenation over ranks of each rank's `t` (first dims may differ between ranks)."""
    world = dist.get_world_size()
    n = torch.tensor([t.shape[0]], dtype=torch.long, device=t.device)
    counts = [torch.empty_like(n) for _ in range(world)]
    dist.all_gather(counts, n)
    counts = [int(c) for c in counts]
    top = max(counts)
    if t.shape[0] < top:  # all_gather needs equal shapes: pad, then trim
        t = torch.cat([t, t.new_zeros((top - t.shape[0],) + tuple(t.shape[1:]))])
    parts = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


class SignSGDSparse:
    """Sign-SGD with decoupled weight decay on the rows of a `SparsePuzzleEmbedding` used since the last step.

    `lr` may be a float or a 0-d tensor, and changes with `set_lr` (the trainer's schedule). Call `step()` after
    backward, then `zero_grad()` to drop the recorded leaves.
    """

    def __init__(self, emb: SparsePuzzleEmbedding, lr: float | torch.Tensor = 0.0, weight_decay: float = 0.0):
        if float(lr) < 0 or weight_decay < 0:
            raise ValueError(f"lr and weight_decay must be >= 0 (got {float(lr)}, {weight_decay})")
        self.emb, self.lr, self.weight_decay = emb, lr, float(weight_decay)

    def set_lr(self, lr: float | torch.Tensor) -> None:
        self.lr = lr

    @torch.no_grad()
    def step(self) -> None:
        emb = self.emb
        # Only leaves that received a gradient take part: a missing gradient means "no step", not "decay only".
        used = [(w.grad, i) for w, i in zip(emb.local_weights or (), emb.local_ids or ()) if w.grad is not None]
        if used:
            grads = torch.cat([g for g, _ in used])
            ids = torch.cat([i for _, i in used])
        else:  # this rank has no rows with a gradient, but its peers may: it still takes part in the gather
            grads = emb.weights.new_zeros((0, emb.weights.shape[1]))
            ids = torch.zeros(0, dtype=torch.long, device=emb.weights.device)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            grads, ids = _all_gather_cat(grads), _all_gather_cat(ids)
        if ids.numel() == 0:
            return
        uniq, inv = torch.unique(ids, return_inverse=True)
        summed = torch.zeros(len(uniq), grads.shape[1], dtype=torch.float32, device=grads.device)
        summed.index_add_(0, inv, grads.float())
        lr = self.lr
        rows = emb.weights[uniq]
        rows.mul_(1.0 - lr * self.weight_decay).sub_(torch.sign(summed) * lr)
        emb.weights[uniq] = rows

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.emb.local_weights = None
        self.emb.local_ids = None

    def state_dict(self) -> dict:
        return {"lr": float(self.lr), "weight_decay": self.weight_decay}

    def load_state_dict(self, state: dict) -> None:
        self.lr, self.weight_decay = float(state["lr"]), float(state["weight_decay"])
