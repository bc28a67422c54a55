"""Adam-atan2 in plain PyTorch (runs on CPU, any GPU, MPS): the reference's optimizer without its CUDA extension.

Rule per tensor (trm-reference.md §13), t counting from 1:
    p <- p * (1 - lr * wd)                                   decoupled weight decay, first
    m <- m + (g - m)(1 - b1);   v <- v + (g^2 - v)(1 - b2)
    p <- p - lr / (1 - b1^t) * atan2(m, sqrt(v) / sqrt(1 - b2^t))
No epsilon: atan2 bounds every step and atan2(0, 0) = 0. lr = 0 is accepted (warm-up starts there), and lr may be
changed between steps through `param_groups`, like any torch optimizer. The moment updates use `_foreach_` kernels.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer


class AdamAtan2(Optimizer):
    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95), weight_decay: float = 0.0):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, wd = float(group["lr"]), float(group["weight_decay"])
            b1, b2 = group["betas"]
            grads, ms, vs = [], [], []
            for p in params:
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
                grads.append(p.grad)
                ms.append(st["exp_avg"])
                vs.append(st["exp_avg_sq"])
            t = self.state[params[0]]["step"]
            if wd != 0 and lr != 0:
                torch._foreach_mul_(params, 1.0 - lr * wd)
            torch._foreach_lerp_(ms, grads, 1.0 - b1)
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, grads, grads, value=1.0 - b2)
            if lr == 0:
                continue
            step_size = lr / (1.0 - b1 ** t)
            inv_bc2 = 1.0 / math.sqrt(1.0 - b2 ** t)
            for p, m, v in zip(params, ms, vs):
                p.add_(torch.atan2(m, v.sqrt().mul_(inv_bc2)), alpha=-step_size)
        return loss
