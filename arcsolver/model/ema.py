"""Exponential moving average of the weights (docs/trm.md, 'Schedule and EMA': rate 0.999, requires-grad parameters
only, updated after every optimizer step; evaluation and exported checkpoints use it).

    shadow <- rate * shadow + (1 - rate) * param          (one `_foreach_lerp_` over all tensors)

Buffers (the puzzle table, H_init/L_init) are not averaged, as in the reference. For evaluation `swap_in(model)`
copies the shadow into the parameters and keeps the raw values aside, `swap_out(model)` restores them: no deep copy
of the model (and of its possibly GB-sized puzzle table) as the reference makes. `swapped(model)` is the same as a
context manager. Shadow keys are the model's parameter names, so `shadow_state()` overlays a state dict directly.
The shadow is kept in fp32 whatever the parameters' dtype.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, rate: float = 0.999):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"EMA rate must be in [0, 1], got {rate}")
        self.rate = float(rate)
        self.shadow: dict[str, torch.Tensor] = {n: p.detach().clone().float()
                                                for n, p in model.named_parameters() if p.requires_grad}
        self._backup: dict[str, torch.Tensor] | None = None

    def _tracked(self, model: nn.Module) -> list[tuple[str, torch.Tensor]]:
        return [(n, p) for n, p in model.named_parameters() if n in self.shadow]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if self._backup is not None:
            raise RuntimeError("EMA.update while the EMA weights are swapped in")
        tracked = self._tracked(model)
        if not tracked:
            return
        shadows = [self.shadow[n] for n, _ in tracked]
        torch._foreach_lerp_(shadows, [p.detach().float() for _, p in tracked], 1.0 - self.rate)

    @torch.no_grad()
    def swap_in(self, model: nn.Module) -> None:
        if self._backup is not None:
            raise RuntimeError("EMA weights are already swapped in")
        self._backup = {}
        for n, p in self._tracked(model):
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

    @contextlib.contextmanager
    def swapped(self, model: nn.Module) -> Iterator[nn.Module]:
        self.swap_in(model)
        try:
            yield model
        finally:
            self.swap_out(model)

    def shadow_state(self) -> dict[str, torch.Tensor]:
        return {n: t.clone() for n, t in self.shadow.items()}

    def state_dict(self) -> dict:
        return {"rate": self.rate, "shadow": self.shadow_state()}

    def load_state_dict(self, state: dict) -> None:
        self.rate = float(state["rate"])
        for n, t in state["shadow"].items():
            dev = self.shadow[n].device if n in self.shadow else t.device
            self.shadow[n] = t.detach().clone().float().to(dev)
