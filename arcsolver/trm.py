"""The Tiny Recursive Model (TRM): one 2-layer network that refines an answer y (z_H) and a latent z (z_L).

Faithful to the reference (trm-reference.md §1), with module paths chosen so reference state dicts map 1:1:
  inner.embed_tokens.embedding_weight, inner.lm_head.weight, inner.q_head.{weight,bias},
  inner.puzzle_emb.weights (buffer), inner.embed_pos.embedding_weight (learned positions only),
  inner.L_level.layers.{i}.self_attn.{qkv_proj,o_proj}.weight | .mlp_t.{gate_up_proj,down_proj}.weight,
  inner.L_level.layers.{i}.mlp.{gate_up_proj,down_proj}.weight, inner.H_init, inner.L_init.
The reference wraps this as `model.inner...` inside its loss head (and `_orig_mod.` when compiled); `import_ckpt`
strips those prefixes.

One supervision step (`TRMInner.forward`): x = scaled token embeddings with a 16-slot puzzle prefix (slot 0 = the
puzzle vector, slots 1..15 zero); H_cycles-1 cycles under no_grad, then one with grad, each cycle being
L_cycles updates z_L <- net(z_L + z_H + x) and one z_H <- net(z_H + z_L); the carry leaves detached.

`TRM` is the ACT wrapper: a carry holds the latents, step counters, halted flags and each row's current data;
halted rows are reset and take the incoming batch's row. Training halts a row at halt_max_steps or when q_halt > 0
(with exploration: with prob. p a row must run at least U[2, max] steps); evaluation always runs every step.

Interface (used by train / predict):
  carry = model.initial_carry(batch)            # every row "halted", so the first call loads the batch
  carry, out = model(carry, batch)              # out: logits [B, L, V], q_halt_logits [B], q_continue_logits [B]
Batches: inputs int32 [B, L], labels int64 [B, L] (-100 ignored), puzzle_identifiers int32 [B].
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from .layers import (Attention, CastedEmbedding, CastedLinear, RotaryEmbedding, SwiGLU, TokenMixer, rms_norm,
                     trunc_normal_)
from .puzzle_embedding import SparsePuzzleEmbedding

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}


@dataclass
class TRMConfig:
    batch_size: int = 1
    seq_len: int = 900
    puzzle_emb_ndim: int = 512
    num_puzzle_identifiers: int = 1
    vocab_size: int = 12
    H_cycles: int = 3
    L_cycles: int = 4
    H_layers: int = 0  # ignored by TRM (kept for reference configs)
    L_layers: int = 2
    hidden_size: int = 512
    expansion: float = 4.0
    num_heads: int = 8
    pos_encodings: str = "rope"
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    halt_max_steps: int = 16
    halt_exploration_prob: float = 0.1
    forward_dtype: str = "bfloat16"
    mlp_t: bool = False
    puzzle_emb_len: int = 16
    no_ACT_continue: bool = True

    @property
    def prefix_len(self) -> int:
        if self.puzzle_emb_ndim <= 0:
            return 0
        return self.puzzle_emb_len or -(-self.puzzle_emb_ndim // self.hidden_size)


class Block(nn.Module):
    def __init__(self, cfg: TRMConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.mlp_t:
            self.mlp_t = TokenMixer(cfg.seq_len + cfg.prefix_len, cfg.expansion)
        else:
            self.self_attn = Attention(cfg.hidden_size, cfg.hidden_size // cfg.num_heads, cfg.num_heads)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.expansion)
        self.eps = cfg.rms_norm_eps

    def forward(self, cos_sin, h: torch.Tensor) -> torch.Tensor:
        if self.cfg.mlp_t:  # h is sequence-first [S, B, D] in MLP-mixer models
            h = rms_norm(h + self.mlp_t(h), self.eps, dim=0)  # normalised over the sequence, as the reference
        else:
            h = rms_norm(h + self.self_attn(cos_sin, h), self.eps)
        return rms_norm(h + self.mlp(h), self.eps)


class ReasoningModule(nn.Module):
    """The shared network: input injection by addition, then the blocks."""

    def __init__(self, cfg: TRMConfig):
        super().__init__()
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.L_layers)])

    def forward(self, hidden: torch.Tensor, injection: torch.Tensor, cos_sin) -> torch.Tensor:
        hidden = hidden + injection
        for layer in self.layers:
            hidden = layer(cos_sin, hidden)
        return hidden


@dataclass
class InnerCarry:
    z_H: torch.Tensor
    z_L: torch.Tensor


@dataclass
class Carry:
    inner_carry: InnerCarry
    steps: torch.Tensor
    halted: torch.Tensor
    current_data: dict[str, torch.Tensor]


class TRMInner(nn.Module):
    def __init__(self, cfg: TRMConfig):
        super().__init__()
        self.cfg = cfg
        self.dtype = DTYPES[cfg.forward_dtype]
        D = cfg.hidden_size
        self.embed_scale = math.sqrt(D)
        self.embed_tokens = CastedEmbedding(cfg.vocab_size, D, 1.0 / self.embed_scale, self.dtype)
        self.lm_head = CastedLinear(D, cfg.vocab_size, bias=False)
        self.q_head = CastedLinear(D, 2, bias=True)
        with torch.no_grad():  # halting starts near sigmoid(-5) ~ 0.007: "keep thinking"
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)
        self.prefix = cfg.prefix_len
        if cfg.puzzle_emb_ndim > 0:
            self.puzzle_emb = SparsePuzzleEmbedding(cfg.num_puzzle_identifiers, cfg.puzzle_emb_ndim, self.dtype)
        if cfg.pos_encodings == "rope":
            self.rotary_emb = RotaryEmbedding(D // cfg.num_heads, cfg.seq_len + self.prefix, cfg.rope_theta)
        elif cfg.pos_encodings == "learned":
            self.embed_pos = CastedEmbedding(cfg.seq_len + self.prefix, D, 1.0 / self.embed_scale, self.dtype)
        self.L_level = ReasoningModule(cfg)
        self.register_buffer("H_init", trunc_normal_(torch.empty(D), 1.0), persistent=True)
        self.register_buffer("L_init", trunc_normal_(torch.empty(D), 1.0), persistent=True)

    def cos_sin(self):
        if self.cfg.pos_encodings == "rope":
            return self.rotary_emb()
        return None

    def input_embeddings(self, inputs: torch.Tensor, puzzle_ids: torch.Tensor) -> torch.Tensor:
        emb = self.embed_tokens(inputs.to(torch.int32))
        if self.cfg.puzzle_emb_ndim > 0:
            pe = self.puzzle_emb(puzzle_ids)
            pad = self.prefix * self.cfg.hidden_size - pe.shape[-1]
            if pad > 0:
                pe = nn.functional.pad(pe, (0, pad))
            emb = torch.cat((pe.view(-1, self.prefix, self.cfg.hidden_size), emb), dim=-2)
        if self.cfg.pos_encodings == "learned":
            emb = 0.707106781 * (emb + self.embed_pos.embedding_weight.to(self.dtype))
        return self.embed_scale * emb

    def empty_carry(self, batch_size: int, device) -> InnerCarry:
        shape = (batch_size, self.cfg.seq_len + self.prefix, self.cfg.hidden_size)
        return InnerCarry(torch.zeros(shape, dtype=self.dtype, device=device),
                          torch.zeros(shape, dtype=self.dtype, device=device))

    def reset_carry(self, reset: torch.Tensor, carry: InnerCarry) -> InnerCarry:
        r = reset.view(-1, 1, 1)
        return InnerCarry(torch.where(r, self.H_init.to(self.dtype), carry.z_H),
                          torch.where(r, self.L_init.to(self.dtype), carry.z_L))

    def forward(self, carry: InnerCarry, batch: dict[str, torch.Tensor]):
        cs = self.cos_sin()
        x = self.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
        z_H, z_L = carry.z_H, carry.z_L
        cfg = self.cfg
        if cfg.mlp_t:  # run the recursion sequence-first (see layers.TokenMixer); the carry stays [B, S, D]
            x, z_H, z_L = (t.transpose(0, 1).contiguous() for t in (x, z_H, z_L))
        with torch.no_grad():
            for _ in range(cfg.H_cycles - 1):
                for _ in range(cfg.L_cycles):
                    z_L = self.L_level(z_L, z_H + x, cs)
                z_H = self.L_level(z_H, z_L, cs)
        for _ in range(cfg.L_cycles):
            z_L = self.L_level(z_L, z_H + x, cs)
        z_H = self.L_level(z_H, z_L, cs)
        if cfg.mlp_t:
            z_H, z_L = z_H.transpose(0, 1), z_L.transpose(0, 1).contiguous()
        new = InnerCarry(z_H.detach().contiguous(), z_L.detach())
        logits = self.lm_head(z_H)[:, self.prefix:]
        q = self.q_head(z_H[:, 0]).to(torch.float32)
        return new, logits, (q[..., 0], q[..., 1])


class TRM(nn.Module):
    """The ACT wrapper around `TRMInner` (see the module docstring)."""

    def __init__(self, cfg: TRMConfig):
        super().__init__()
        self.config = cfg
        self.inner = TRMInner(cfg)

    def initial_carry(self, batch: dict[str, torch.Tensor]) -> Carry:
        B = batch["inputs"].shape[0]
        dev = batch["inputs"].device
        return Carry(self.inner.empty_carry(B, dev), torch.zeros(B, dtype=torch.int32, device=dev),
                     torch.ones(B, dtype=torch.bool, device=dev),
                     {k: torch.zeros_like(v) for k, v in batch.items()})

    def forward(self, carry: Carry, batch: dict[str, torch.Tensor]) -> tuple[Carry, dict[str, torch.Tensor]]:
        cfg = self.config
        halted = carry.halted
        inner_carry = self.inner.reset_carry(halted, carry.inner_carry)
        steps = torch.where(halted, torch.zeros_like(carry.steps), carry.steps)
        data = {k: torch.where(halted.view((-1,) + (1,) * (batch[k].ndim - 1)), batch[k], v)
                for k, v in carry.current_data.items()}
        inner_carry, logits, (q_halt, q_cont) = self.inner(inner_carry, data)
        out = {"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": q_cont}
        with torch.no_grad():
            steps = steps + 1
            is_last = steps >= cfg.halt_max_steps
            new_halted = is_last
            if self.training and cfg.halt_max_steps > 1:
                if cfg.no_ACT_continue:
                    new_halted = new_halted | (q_halt > 0)
                else:
                    new_halted = new_halted | (q_halt > q_cont)
                explore = torch.rand_like(q_halt) < cfg.halt_exploration_prob
                min_steps = explore * torch.randint_like(steps, low=2, high=cfg.halt_max_steps + 1)
                new_halted = new_halted & (steps >= min_steps)
                if not cfg.no_ACT_continue:
                    # HRM-style bootstrapped target for q_continue: one more inner step from the new carry.
                    _, _, (nq_halt, nq_cont) = self.inner(inner_carry, data)
                    out["target_q_continue"] = torch.sigmoid(
                        torch.where(is_last, nq_halt, torch.maximum(nq_halt, nq_cont)))
        return Carry(inner_carry, steps, new_halted, data), out
