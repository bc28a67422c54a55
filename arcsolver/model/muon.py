"""Muon on the 2-D weights + AdamW on the rest, in one optimizer: the URM reference's ARC-AGI-2 optimizer
(`optimizer = "muon"`), plain PyTorch, any device.

The maths is the URM reference's (models/muon.py and the grouping in pretrain.py, commit 52ee34b), restated:
  * grouping: every trainable parameter with ndim == 2 (projections, token embedding, lm_head, q_head weight) is a
    Muon parameter, the rest (q_head bias, the convolution's kernel and bias) AdamW. The sparse puzzle table is not a
    parameter; it keeps its sign-SGD.
  * Muon step per parameter: buf <- momentum * buf + g; u = g + momentum * buf (Nesterov); the update is the
    orthogonalised u: rounded to bfloat16, then in float32 normalised by its Frobenius norm (clamped at 1e-7) and put
    through 5 Newton-Schulz steps X <- a X + (b A + c A A) X, A = X X^T (transposed when rows > columns), with a
    different (a, b, c) per step (`NS_COEFFICIENTS`); p <- p (1 - lr wd) - lr * 0.2 * sqrt(max(rows, cols)) * update
    (the scale that matches AdamW's update RMS, as Moonlight).
  * AdamW step: m <- lerp(m, g, 1 - beta1), v <- lerp(v, g^2, 1 - beta2), p <- p (1 - lr wd) -
    lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (eps + sqrt(v)), t counted per group from 1.
torch.optim.Muon (torch 2.13) is not this: it uses one fixed (a, b, c) for every step and iterates in bfloat16, so
it is not used. The reference hard-codes weight decay 0.1 for both groups and AdamW betas (0.9, 0.95), eps 1e-8;
here they are the training fields weight_decay, beta1, beta2 (whose preset values are those).
State (`muon_buffer`; `adamw_exp_avg`, `adamw_exp_avg_sq`; the AdamW group's `step`) goes through state_dict, so a
resumed run continues bit-exactly.
"""

from __future__ import annotations

import math

import torch

# (a, b, c) of Newton-Schulz step i (the last one repeats beyond 8 steps), as the reference.
NS_COEFFICIENTS = ((7.2086, -15.5131, 9.0178), (3.9623, -2.5813, 0.4542), (3.9466, -2.5765, 0.4544),
                   (3.8991, -2.5671, 0.4566), (3.7186, -2.5308, 0.4653), (3.1390, -2.3073, 0.4733),
                   (2.1715, -1.5246, 0.3885), (1.8648, -1.2224, 0.3577))


def orthogonalise(g: torch.Tensor, steps: int) -> torch.Tensor:
    """The Newton-Schulz approximation of U V^T for g = U S V^T (float32; see the module docstring)."""
    x = g.float()
    transpose = x.shape[-2] > x.shape[-1]
    if transpose:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp_min(1e-7)
    for i in range(steps):
        a, b, c = NS_COEFFICIENTS[min(i, len(NS_COEFFICIENTS) - 1)]
        gram = x @ x.mT
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a, alpha=1.0)
    return x.mT if transpose else x


class MuonAdamW(torch.optim.Optimizer):
    """Param groups flagged `use_muon` take Muon steps, the others AdamW steps (see the module docstring).
    `MuonAdamW.for_parameters(params, ...)` groups a parameter list as the reference does."""

    def __init__(self, param_groups, lr: float = 0.0, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True, ns_steps: int = 5, matched_adamw_rms: float = 0.2,
                 adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-8):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                        matched_adamw_rms=matched_adamw_rms, adamw_betas=adamw_betas, adamw_eps=adamw_eps,
                        use_muon=False)
        super().__init__(param_groups, defaults)

    @classmethod
    def for_parameters(cls, params, **kw) -> "MuonAdamW":
        params = list(params)
        groups = [{"params": [p for p in params if p.ndim == 2], "use_muon": True},
                  {"params": [p for p in params if p.ndim != 2], "use_muon": False}]
        return cls([g for g in groups if g["params"]], **kw)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            if group["use_muon"]:
                self._muon_step(group)
            else:
                self._adamw_step(group)

    def _muon_step(self, group: dict) -> None:
        lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad
            state = self.state[p]
            if "muon_buffer" not in state:
                state["muon_buffer"] = torch.zeros_like(g)
            buf = state["muon_buffer"]
            buf.mul_(mom).add_(g)
            u = g.add(buf, alpha=mom) if group["nesterov"] else buf
            update = orthogonalise(u.bfloat16(), group["ns_steps"])
            p.mul_(1 - lr * wd)
            ratio = math.sqrt(max(p.shape[0], p.shape[1])) * group["matched_adamw_rms"]
            p.add_(update.to(p.dtype), alpha=-(lr * ratio))

    def _adamw_step(self, group: dict) -> None:
        group["step"] = group.get("step", 0) + 1
        t = group["step"]
        lr, wd = group["lr"], group["weight_decay"]
        beta1, beta2 = group["adamw_betas"]
        eps = group["adamw_eps"]
        scale = (1 - beta1 ** t) / (1 - beta2 ** t) ** 0.5
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad
            state = self.state[p]
            if not state:
                state["adamw_exp_avg"] = torch.zeros_like(g)
                state["adamw_exp_avg_sq"] = torch.zeros_like(g)
            m, v = state["adamw_exp_avg"], state["adamw_exp_avg_sq"]
            m.lerp_(g, 1 - beta1)
            v.lerp_(g.square(), 1 - beta2)
            p.mul_(1 - lr * wd)
            p.add_(m / (eps + v.sqrt()), alpha=-lr / scale)
