"""Adam-atan2 in plain PyTorch (CPU, any GPU, MPS): the reference's optimizer without its CUDA-only extension.

Rule per parameter tensor (docs/trm.md, 'Optimizer: Adam-atan2'), with t its own step count starting at 1:
    p <- p * (1 - lr * wd)                                    decoupled weight decay, applied first
    m <- m + (g - m)(1 - b1);   v <- v + (g^2 - v)(1 - b2)
    p <- p - lr / (1 - b1^t) * atan2(m, sqrt(v) / sqrt(1 - b2^t))
No epsilon: atan2 bounds every step (|step| <= lr * pi/2 / (1 - b1^t)) and atan2(0, 0) = 0.
lr = 0 is accepted at construction (warm-up schedules start there) and lr may be a float or a 0-d tensor, changed
between steps through `param_groups` like any torch optimizer. With lr = 0 the moments and step counts still advance,
exactly as the rule says. Parameters without a gradient are skipped (their step count does not advance). Every
stage runs as one `_foreach_` kernel over the tensors of a group (per tensor only for atan2, which has none).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer


def _scalar(x: float | torch.Tensor) -> float:
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


class AdamAtan2(Optimizer):
    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float | torch.Tensor = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.95), weight_decay: float = 0.0):
        if _scalar(lr) < 0:
            raise ValueError(f"lr must be >= 0, got {_scalar(lr)}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = _scalar(group["lr"]), float(group["weight_decay"])
            b1, b2 = group["betas"]
            # Tensors sharing a step count share the bias corrections: one bucket each (normally a single one).
            buckets: dict[int, tuple[list, list, list, list]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdamAtan2 does not support sparse gradients")
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] = int(st["step"]) + 1
                b = buckets.setdefault(st["step"], ([], [], [], []))
                b[0].append(p)
                b[1].append(p.grad)
                b[2].append(st["exp_avg"])
                b[3].append(st["exp_avg_sq"])
            for t, (params, grads, ms, vs) in buckets.items():
                if wd != 0 and lr != 0:
                    torch._foreach_mul_(params, 1.0 - lr * wd)
                torch._foreach_lerp_(ms, grads, 1.0 - b1)
                torch._foreach_mul_(vs, b2)
                torch._foreach_addcmul_(vs, grads, grads, value=1.0 - b2)
                if lr == 0:
                    continue
                denom = torch._foreach_sqrt(vs)
                torch._foreach_div_(denom, math.sqrt(1.0 - b2 ** t))
                for m, d in zip(ms, denom):
                    torch.atan2(m, d, out=d)
                torch._foreach_add_(params, denom, alpha=-lr / (1.0 - b1 ** t))
        return loss
