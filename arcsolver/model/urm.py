"""The Universal Reasoning Model (URM, Gao et al., arXiv 2512.14693): a universal transformer, i.e. one stack of
blocks applied in loops over a single hidden state, in the same ACT pipeline as TRM (`arch.name = "urm"`).

Maths as the reference (github.com/zitian-gao/URM, `models/urm/urm.py`, commit 52ee34b):
  * x = sqrt(D) * [puzzle prefix ; token embeddings], the prefix ceil(puzzle_emb_ndim / D) slots (one at D = 512);
    RoPE attention; no learned positions.
  * One supervision step: H_cycles - 1 cycles without autograd, then one cycle with it (truncated backpropagation
    through the loops); a cycle is L_cycles times: h <- h + x, then h <- block_n(...block_1(h)) over the `L_layers`
    blocks (the reference's `num_layers`). The new carry is h, detached; there is no second latent.
  * Blocks are post-norm: h = rms(h + attn(h)); h = rms(h + ConvSwiGLU(h)); ConvSwiGLU = down(silu(dwconv2(silu(gate)
    * up))), a depthwise convolution of kernel 2 over the sequence after the gate (layers.ConvSwiGLU).
  * Logits = lm_head(h) without the prefix; Q logits = q_head(h[:, 0]) in fp32 (weight 0, bias -5). `init_hidden`:
    a persistent buffer [D] ~ truncated normal, std 1 (fp32 here, cast at use; the reference stores it in the forward
    dtype).
  * ACT as TRM's wrapper (trm.TRM) with `no_ACT_continue`: a row halts at `halt_max_steps` (the reference's `loops`)
    or when q_halt > 0, with exploration (probability halt_exploration_prob, 0.1 in the reference) of a minimum step
    count uniform in [2, loops]; evaluation runs every step.
Where the reference is CUDA-bound we are not: SDPA instead of flash-attn (same maths), and the depthwise convolution's
weights live in fp32 and are cast to the forward dtype at use (the reference stores them in bf16, so its convolution
runs in bf16 even in an fp32 model; in bf16 both are the same).

State-dict keys equal the reference's (`model.inner.<name>` under the loss head): embed_tokens.embedding_weight,
lm_head.weight, q_head.weight, q_head.bias, puzzle_emb.weights, init_hidden, and per layer i
layers.{i}.self_attn.qkv_proj.weight, layers.{i}.self_attn.o_proj.weight, layers.{i}.mlp.gate_up_proj.weight,
layers.{i}.mlp.dwconv.weight, layers.{i}.mlp.dwconv.bias, layers.{i}.mlp.down_proj.weight.
The carry (`URMInnerCarry`) has one tensor; everything else (Carry, halting, the loss head, training, rollouts,
prediction, fine-tuning) is TRM's unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from arcsolver.model.layers import Attention, ConvSwiGLU, CosSin, add_rms_norm, trunc_normal_
from arcsolver.model.trm import TRM, RecursiveInner, TRMConfig


@dataclass
class URMInnerCarry:
    hidden: torch.Tensor  # [B, S, D], the one state the blocks refine


class URMBlock(nn.Module):
    """Post-norm block: h = rms(h + attn(h)); h = rms(h + ConvSwiGLU(h))."""

    def __init__(self, cfg: TRMConfig):
        super().__init__()
        self.self_attn = Attention(cfg.hidden_size, cfg.hidden_size // cfg.num_heads, cfg.num_heads)
        self.mlp = ConvSwiGLU(cfg.hidden_size, cfg.expansion)
        self.eps = cfg.rms_norm_eps

    def forward(self, cos_sin: CosSin | None, h: torch.Tensor) -> torch.Tensor:
        h = add_rms_norm(h, self.self_attn(cos_sin, h), self.eps)
        return add_rms_norm(h, self.mlp(h), self.eps)


class URMInner(RecursiveInner):
    """One supervision step of URM's loops (see the module docstring)."""

    def __init__(self, cfg: TRMConfig):
        if cfg.mlp_t or cfg.pos_encodings != "rope" or not cfg.no_ACT_continue:
            raise ValueError("URM is RoPE attention with no_ACT_continue (mlp_t false, pos_encodings rope)")
        super().__init__(cfg)
        self.layers = nn.ModuleList([URMBlock(cfg) for _ in range(cfg.L_layers)])
        self.register_buffer("init_hidden", trunc_normal_(torch.empty(cfg.hidden_size), 1.0), persistent=True)

    def empty_carry(self, batch_size: int, device: torch.device | str | None = None) -> URMInnerCarry:
        shape = (batch_size, self.config.seq_len + self.prefix, self.config.hidden_size)
        device = device if device is not None else self.init_hidden.device
        return URMInnerCarry(torch.zeros(shape, dtype=self.dtype, device=device))

    def reset_carry(self, reset: torch.Tensor, carry: URMInnerCarry) -> URMInnerCarry:
        return URMInnerCarry(torch.where(reset.view(-1, 1, 1), self.init_hidden.to(self.dtype), carry.hidden))

    def _cycle(self, h: torch.Tensor, x: torch.Tensor, cs: CosSin | None) -> torch.Tensor:
        for _ in range(self.config.L_cycles):
            h = h + x
            for layer in self.layers:
                h = layer(cs, h)
        return h

    def recurse(self, hidden: torch.Tensor, x: torch.Tensor, cs: CosSin | None) -> tuple[torch.Tensor]:
        """(hidden,) after one supervision step: H_cycles - 1 cycles without autograd, then one with it when autograd
        is on (gradients reach only the last cycle: truncated backpropagation through the loops)."""
        with torch.no_grad():
            for _ in range(self.config.H_cycles - 1):
                hidden = self._cycle(hidden, x, cs)
        return (self._cycle(hidden, x, cs),)

    def forward(self, carry: URMInnerCarry, batch: dict[str, torch.Tensor]
                ) -> tuple[URMInnerCarry, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(new carry (detached), logits [B, seq_len, V], (q_halt [B], q_continue [B]) in fp32)."""
        (hidden,) = self.recurse(carry.hidden, self.embed_batch(batch), self.cos_sin())
        logits, q = self.heads(hidden)
        return URMInnerCarry(hidden.detach()), logits, (q[..., 0], q[..., 1])


class URM(TRM):
    """The ACT wrapper (trm.TRM: carry, halting, exploration, Q head outputs) around `URMInner`."""

    inner_class = URMInner
