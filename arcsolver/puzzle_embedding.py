"""The per-puzzle embedding table and its sparse sign-SGD optimizer.

The table is a zero-initialised fp32 *buffer* [num_puzzle_identifiers, D] (not a Parameter: it is excluded from the
parameter count, from EMA, and from Adam). In training, the rows a batch uses are copied into a fresh leaf tensor
that requires grad; `SignSGDSparse` then updates only those rows:
    p[id] <- p[id] * (1 - lr * wd) - lr * sign(sum of the gradients for id in the global batch)
Under data parallelism every process all-gathers (ids, grads) first, so all ranks apply the identical update and
their tables stay equal without broadcasting the (possibly GB-sized) table.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class SparsePuzzleEmbedding(nn.Module):
    def __init__(self, num: int, dim: int, cast_to: torch.dtype):
        super().__init__()
        self.cast_to = cast_to
        self.register_buffer("weights", torch.zeros(num, dim), persistent=True)
        self.local_weights: torch.Tensor | None = None
        self.local_ids: torch.Tensor | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        rows = self.weights[ids]
        if not (self.training and torch.is_grad_enabled()):
            return rows.to(self.cast_to)
        # A leaf per call: the optimizer reads its gradient. Several calls before a step accumulate.
        leaf = rows.detach().requires_grad_(True)
        if self.local_weights is None:
            self.local_weights, self.local_ids = [leaf], [ids]
        else:
            self.local_weights.append(leaf)
            self.local_ids.append(ids)
        return leaf.to(self.cast_to)


class SignSGDSparse:
    """Sign-SGD with decoupled weight decay on the rows of a `SparsePuzzleEmbedding` touched since the last step."""

    def __init__(self, emb: SparsePuzzleEmbedding, lr: float = 0.0, weight_decay: float = 0.0):
        self.emb, self.lr, self.weight_decay = emb, float(lr), float(weight_decay)

    def set_lr(self, lr: float) -> None:
        self.lr = float(lr)

    @torch.no_grad()
    def step(self) -> None:
        emb = self.emb
        if not emb.local_weights:
            return
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in emb.local_weights]
        g = torch.cat(grads)
        ids = torch.cat(emb.local_ids)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            world = dist.get_world_size()
            all_g = [torch.empty_like(g) for _ in range(world)]
            all_ids = [torch.empty_like(ids) for _ in range(world)]
            dist.all_gather(all_g, g.contiguous())
            dist.all_gather(all_ids, ids.contiguous())
            g, ids = torch.cat(all_g), torch.cat(all_ids)
        uniq, inv = torch.unique(ids, return_inverse=True)
        summed = torch.zeros(len(uniq), g.shape[1], dtype=torch.float32, device=g.device)
        summed.index_add_(0, inv, g.float())
        p = emb.weights[uniq]
        p.mul_(1.0 - self.lr * self.weight_decay).add_(torch.sign(summed), alpha=-self.lr)
        emb.weights[uniq] = p

    def zero_grad(self) -> None:
        self.emb.local_weights = None
        self.emb.local_ids = None

    def state_dict(self) -> dict:
        return {"lr": self.lr, "weight_decay": self.weight_decay}

    def load_state_dict(self, state: dict) -> None:
        self.lr, self.weight_decay = float(state["lr"]), float(state["weight_decay"])
