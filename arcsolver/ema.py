"""Exponential moving average of the trainable weights (rate 0.999 in the paper's runs).

The shadow is updated after every optimizer step. Evaluation and exported checkpoints use it: `swap_in` puts the
shadow values into the model (keeping the raw ones aside) and `swap_out` restores them, so no deep copy of the model
(and of its possibly GB-sized puzzle table) is made, unlike the reference's eval. Keys are the model's state-dict
names, so `shadow_state()` can be loaded over a state dict directly.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, rate: float = 0.999):
        self.rate = float(rate)
        self.shadow = {n: p.detach().clone().float() for n, p in model.named_parameters() if p.requires_grad}
        self._backup: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        names, params = zip(*[(n, p) for n, p in model.named_parameters() if n in self.shadow])
        shadows = [self.shadow[n] for n in names]
        torch._foreach_lerp_(shadows, [p.detach().float() for p in params], 1.0 - self.rate)

    @torch.no_grad()
    def swap_in(self, model: nn.Module) -> None:
        self._backup = {}
        for n, p in model.named_parameters():
            if n in self.shadow:
                self._backup[n] = p.detach().clone()
                p.copy_(self.shadow[n])

    @torch.no_grad()
    def swap_out(self, model: nn.Module) -> None:
        if self._backup is None:
            return
        for n, p in model.named_parameters():
            if n in self._backup:
                p.copy_(self._backup[n])
        self._backup = None

    def shadow_state(self) -> dict[str, torch.Tensor]:
        return {n: t.clone() for n, t in self.shadow.items()}

    def state_dict(self) -> dict:
        return {"rate": self.rate, "shadow": self.shadow_state()}

    def load_state_dict(self, state: dict) -> None:
        self.rate = float(state["rate"])
        for n, t in state["shadow"].items():
            self.shadow[n] = t.clone().float().to(self.shadow[n].device if n in self.shadow else t.device)
