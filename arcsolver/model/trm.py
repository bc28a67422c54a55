"""The Tiny Recursive Model (TRM, arXiv 2510.04871): one 2-layer network that refines an answer y (z_H) and a latent
z (z_L), wrapped in adaptive computation time (ACT) with deep supervision carried across optimizer steps.

Maths as the reference (docs/trm.md; TinyRecursiveModels `models/recursive_reasoning/trm.py`):
  * x = sqrt(D) * [puzzle prefix ; token embeddings]: the prefix has `puzzle_emb_len` (16) slots, slot 0 holds the
    row of the puzzle-embedding table, slots 1.. are zeros. With learned positions x = sqrt(D)/sqrt(2) * (emb + pos).
  * One supervision step (`TRMInner.forward`): H_cycles-1 cycles without autograd, then one cycle with it; a cycle
    is L_cycles updates z_L <- net(z_L + z_H + x), then z_H <- net(z_H + z_L), with the *same* network `L_level`.
    The new carry is detached. Logits = lm_head(z_H) minus the prefix; Q logits = q_head(z_H[:, 0]) in fp32.
  * Blocks are post-norm: h = rms(h + mixer(h)); h = rms(h + SwiGLU(h)), the mixer being attention (RoPE, learned
    or no positions) or, with `mlp_t`, a SwiGLU across the sequence.
  * H_init / L_init: non-learned persistent buffers [D] ~ truncated normal, std 1. Q head: weight 0, bias -5.
Speed (no change of maths): MLP-mixer models run the recursion sequence-first ([S, B, D], see layers.TokenMixer);
cycles without autograd use in-place kernels; z_H + x is formed once per cycle; the fused functions of `layers`.

State-dict keys equal the reference's once its `_orig_mod.` (torch.compile) prefix is stripped; under the loss head
both read `model.inner.<name>` with <name> one of
  embed_tokens.embedding_weight, lm_head.weight, q_head.weight, q_head.bias, H_init, L_init,
  puzzle_emb.weights (buffer [num_puzzle_identifiers, puzzle_emb_ndim]), embed_pos.embedding_weight (learned only),
  L_level.layers.{i}.self_attn.qkv_proj.weight, L_level.layers.{i}.self_attn.o_proj.weight  (attention), or
  L_level.layers.{i}.mlp_t.gate_up_proj.weight, L_level.layers.{i}.mlp_t.down_proj.weight  (mlp_t),
  L_level.layers.{i}.mlp.gate_up_proj.weight, L_level.layers.{i}.mlp.down_proj.weight.
The reference's non-persistent buffers (rotary cos/sin, puzzle_emb.local_weights / local_ids) have no counterpart
to load. Parameter counts (puzzle table excluded): ARC attention config 6,829,058; Sudoku MLP config 5,028,866.

Interface (used by train / predict / inference):
  model = TRM(TRMConfig(...))
  carry = model.initial_carry(batch)   # every row flagged halted, so the first call loads the batch
  carry, out = model(carry, batch)     # one supervision step for every row
    out["logits"] [B, seq_len, vocab] (forward dtype), out["q_halt_logits"] [B] fp32, out["q_continue_logits"] [B]
    (+ out["target_q_continue"] in training when no_ACT_continue is False)
    carry.halted [B] bool: rows whose episode ended at this step; carry.steps [B] int32; carry.current_data: the
    batch each row is actually working on (halted rows take the incoming batch's row at the next call)
  Batches: "inputs" int32 [B, seq_len], "labels" int64 [B, seq_len] (-100 = ignored), "puzzle_identifiers" int32 [B]
  (version mode), or "task_identifiers" int32 [B] + "augmentations" int32 [B, 11] (task mode; the loader gives all).
  Training (`model.train()`): a row halts at halt_max_steps, or earlier when q_halt > 0 (no_ACT_continue) / q_halt >
  q_continue, but with probability halt_exploration_prob not before a minimum drawn uniformly from
  [2, halt_max_steps]. Evaluation (`model.eval()`): every row runs exactly halt_max_steps steps.
The loss head (losses.ACTLossHead) wraps this model for training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from arcsolver.model.config import TRMConfig
from arcsolver.model.layers import (Attention, CastedEmbedding, CastedLinear, CosSin, RotaryEmbedding, SwiGLU,
                                    TokenMixer, add_rms_norm, trunc_normal_)
from arcsolver.model.puzzle_embedding import SparsePuzzleEmbedding, TaskPuzzleEmbedding

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16,
          "float64": torch.float64}  # float64: parity checks against the reference (not a user choice)


class Block(nn.Module):
    """Post-norm block: h = rms(h + mixer(h)); h = rms(h + mlp(h)).

    Layout: batch-first [B, S, D] with attention; sequence-first [S, B, D] with `mlp_t` (see layers.TokenMixer)."""

    def __init__(self, cfg: TRMConfig):
        super().__init__()
        self.mlp_t_mode = cfg.mlp_t
        if cfg.mlp_t:
            self.mlp_t = TokenMixer(cfg.total_len, cfg.expansion)
        else:
            self.self_attn = Attention(cfg.hidden_size, cfg.hidden_size // cfg.num_heads, cfg.num_heads)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.expansion)
        self.eps = cfg.rms_norm_eps

    def forward(self, cos_sin: CosSin | None, h: torch.Tensor) -> torch.Tensor:
        if self.mlp_t_mode:  # normalised over the sequence axis, as the reference (its tensor is [B, D, S] here)
            h = add_rms_norm(h, self.mlp_t(h), self.eps, dim=0)
        else:
            h = add_rms_norm(h, self.self_attn(cos_sin, h), self.eps)
        return add_rms_norm(h, self.mlp(h), self.eps)


class ReasoningModule(nn.Module):
    """The shared network: the injection is added to the state, then the blocks run."""

    def __init__(self, cfg: TRMConfig):
        super().__init__()
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.L_layers)])

    def forward(self, hidden: torch.Tensor, injection: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        hidden = hidden + injection
        for layer in self.layers:
            hidden = layer(cos_sin, hidden)
        return hidden


@dataclass
class InnerCarry:
    z_H: torch.Tensor  # [B, S, D], the answer state y
    z_L: torch.Tensor  # [B, S, D], the latent z


@dataclass
class Carry:
    inner_carry: InnerCarry
    steps: torch.Tensor  # [B] int32
    halted: torch.Tensor  # [B] bool
    current_data: dict[str, torch.Tensor]


class RecursiveInner(nn.Module):
    """What the recursive models (TRM here, URM in urm.py) share around their recursion: the input embedding (tokens
    + puzzle prefix, scaled by sqrt(D)), the rotary tables or learned positions, and the output heads (lm_head on the
    answer state without the prefix; Q head on its first slot, weight 0, bias -5). Modules are registered in the
    reference's order (embed_tokens, lm_head, q_head, puzzle_emb, positions), so parameter order is the reference's."""

    def __init__(self, cfg: TRMConfig):
        super().__init__()
        if cfg.pos_encodings == "rope" and not cfg.mlp_t and (cfg.hidden_size // cfg.num_heads) % 2:
            raise ValueError("RoPE needs an even head dimension")
        self.config = cfg
        self.dtype = DTYPES[cfg.forward_dtype]
        self.prefix = cfg.prefix_len if cfg.puzzle_emb_ndim > 0 else 0
        D = cfg.hidden_size
        self.embed_scale = math.sqrt(D)
        self.embed_tokens = CastedEmbedding(cfg.vocab_size, D, 1.0 / self.embed_scale, self.dtype)
        self.lm_head = CastedLinear(D, cfg.vocab_size, bias=False)
        self.q_head = CastedLinear(D, 2, bias=True)
        with torch.no_grad():  # sigmoid(-5) ~ 0.007: start by "keep thinking"
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)
        if cfg.puzzle_emb_ndim > 0:
            if cfg.puzzle_emb_ndim > self.prefix * D:
                raise ValueError(f"puzzle_emb_ndim {cfg.puzzle_emb_ndim} does not fit in {self.prefix} prefix slots")
            table = TaskPuzzleEmbedding if cfg.puzzle_emb_mode == "task" else SparsePuzzleEmbedding
            self.puzzle_emb = table(cfg.num_puzzle_identifiers, cfg.puzzle_emb_ndim, self.dtype)
        S = cfg.seq_len + self.prefix
        if cfg.pos_encodings == "rope":
            self.rotary_emb = RotaryEmbedding(D // cfg.num_heads, S, cfg.rope_theta)
        elif cfg.pos_encodings == "learned":
            self.embed_pos = CastedEmbedding(S, D, 1.0 / self.embed_scale, self.dtype)

    def cos_sin(self) -> CosSin | None:
        return self.rotary_emb() if hasattr(self, "rotary_emb") else None

    def input_embeddings(self, inputs: torch.Tensor, puzzle_ids: torch.Tensor,
                         augmentations: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, prefix + seq_len, D] in the forward dtype. `puzzle_ids`: rows of the puzzle table (version ids, or
        task ids in task mode, where `augmentations` [B, 11] gives each row's dihedral id and colour map)."""
        cfg = self.config
        emb = self.embed_tokens(inputs.to(torch.int32))
        if cfg.puzzle_emb_ndim > 0:
            pe = self.puzzle_emb(puzzle_ids) if augmentations is None else self.puzzle_emb(puzzle_ids, augmentations)
            pad = self.prefix * cfg.hidden_size - pe.shape[-1]
            if pad > 0:  # slot 0 = the puzzle vector, the other slots zero
                pe = nn.functional.pad(pe, (0, pad))
            emb = torch.cat((pe.view(-1, self.prefix, cfg.hidden_size), emb), dim=-2)
        if cfg.pos_encodings == "learned":  # 1/sqrt(2) keeps the variance of the sum
            emb = 0.707106781 * (emb + self.embed_pos.embedding_weight.to(self.dtype))
        return self.embed_scale * emb

    def embed_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """x for a batch from the loader: its puzzle ids (version mode) or task ids + augmentations (task mode)."""
        if self.config.puzzle_emb_mode != "task" or self.config.puzzle_emb_ndim <= 0:
            return self.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
        if "task_identifiers" not in batch or "augmentations" not in batch:
            raise ValueError("puzzle_emb_mode 'task' needs batches with task_identifiers and augmentations "
                             "(the loader gives them)")
        return self.input_embeddings(batch["inputs"], batch["task_identifiers"], batch["augmentations"])

    # The recursion runs in an internal layout: sequence-first [S, B, D] with `mlp_t` (see layers.TokenMixer),
    # batch-first otherwise. The carry and the inputs are batch-first; these convert (copies only with mlp_t).
    def to_internal(self, t: torch.Tensor) -> torch.Tensor:
        return t.transpose(0, 1).contiguous() if self.config.mlp_t else t

    def from_internal(self, t: torch.Tensor) -> torch.Tensor:
        return t.transpose(0, 1).contiguous() if self.config.mlp_t else t

    def heads(self, z_H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, seq_len, V] without the prefix, Q logits [B, 2] in fp32) from z_H in the internal layout."""
        if self.config.mlp_t:
            return self.lm_head(z_H[self.prefix:]).transpose(0, 1), self.q_head(z_H[0]).to(torch.float32)
        return self.lm_head(z_H[:, self.prefix:]), self.q_head(z_H[:, 0]).to(torch.float32)


class TRMInner(RecursiveInner):
    """One supervision step of the recursion (see the module docstring)."""

    def __init__(self, cfg: TRMConfig):
        super().__init__(cfg)
        D = cfg.hidden_size
        self.L_level = ReasoningModule(cfg)
        self.register_buffer("H_init", trunc_normal_(torch.empty(D), 1.0), persistent=True)
        self.register_buffer("L_init", trunc_normal_(torch.empty(D), 1.0), persistent=True)

    def empty_carry(self, batch_size: int, device: torch.device | str | None = None) -> InnerCarry:
        shape = (batch_size, self.config.seq_len + self.prefix, self.config.hidden_size)
        device = device if device is not None else self.H_init.device
        return InnerCarry(torch.zeros(shape, dtype=self.dtype, device=device),
                          torch.zeros(shape, dtype=self.dtype, device=device))

    def reset_carry(self, reset: torch.Tensor, carry: InnerCarry) -> InnerCarry:
        r = reset.view(-1, 1, 1)
        return InnerCarry(torch.where(r, self.H_init.to(self.dtype), carry.z_H),
                          torch.where(r, self.L_init.to(self.dtype), carry.z_L))

    def _cycle(self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor,
               cs: CosSin | None) -> tuple[torch.Tensor, torch.Tensor]:
        injection = z_H + x  # constant over the L updates of a cycle: added once, not L_cycles times
        for _ in range(self.config.L_cycles):
            z_L = self.L_level(z_L, injection, cs)
        z_H = self.L_level(z_H, z_L, cs)
        return z_H, z_L

    def recurse(self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor,
                cs: CosSin | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The latents after one supervision step (internal layout): H_cycles-1 cycles without autograd, then one
        with it when autograd is on (full backprop through that cycle)."""
        with torch.no_grad():  # (torch.inference_mode measured no faster here, and torch.compile rejects it)
            for _ in range(self.config.H_cycles - 1):
                z_H, z_L = self._cycle(z_H, z_L, x, cs)
        return self._cycle(z_H, z_L, x, cs)

    def forward(self, carry: InnerCarry, batch: dict[str, torch.Tensor]
                ) -> tuple[InnerCarry, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(new carry (detached), logits [B, seq_len, V], (q_halt [B], q_continue [B]) in fp32)."""
        x = self.to_internal(self.embed_batch(batch))
        z_H, z_L = self.recurse(self.to_internal(carry.z_H), self.to_internal(carry.z_L), x, self.cos_sin())
        logits, q = self.heads(z_H)
        z_H, z_L = self.from_internal(z_H.detach()), self.from_internal(z_L.detach())
        return InnerCarry(z_H, z_L), logits, (q[..., 0], q[..., 1])


class TRM(nn.Module):
    """The ACT wrapper around `TRMInner` (the reference's TinyRecursiveReasoningModel_ACTV1; see the docstring).
    Subclasses swap the inner network (`inner_class`): URM (urm.py) keeps this wrapper, halting and exploration."""

    inner_class: type[RecursiveInner] = TRMInner

    def __init__(self, cfg: TRMConfig):
        super().__init__()
        self.config = cfg
        self.inner = self.inner_class(cfg)

    @property
    def puzzle_emb(self) -> SparsePuzzleEmbedding | TaskPuzzleEmbedding:
        return self.inner.puzzle_emb

    def initial_carry(self, batch: dict[str, torch.Tensor]) -> Carry:
        B = batch["inputs"].shape[0]
        dev = batch["inputs"].device
        return Carry(self.inner.empty_carry(B, dev), torch.zeros(B, dtype=torch.int32, device=dev),
                     torch.ones(B, dtype=torch.bool, device=dev),
                     {k: torch.zeros_like(v) for k, v in batch.items()})

    def forward(self, carry: Carry, batch: dict[str, torch.Tensor],
                halt_noise: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[Carry, dict[str, torch.Tensor]]:
        """`halt_noise`: the exploration draws (uniform [B] fp32, minimum steps [B] int32) made by the caller, so a
        batch split into micro-batches explores exactly as the whole batch (microbatch.draw_halt_noise); drawn here
        otherwise, in the same order."""
        cfg = self.config
        halted = carry.halted
        # Halted rows restart: initial latents, step 0, and the incoming batch's row as their data.
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
                # Exploration: with probability p a row gets a minimum number of steps, uniform in [2, max].
                if halt_noise is None:
                    halt_noise = (torch.rand_like(q_halt), torch.randint_like(steps, low=2, high=cfg.halt_max_steps + 1))
                explore = halt_noise[0] < cfg.halt_exploration_prob
                min_steps = explore * halt_noise[1]
                new_halted = new_halted & (steps >= min_steps)
                if not cfg.no_ACT_continue:
                    # HRM-style bootstrapped Q-continue target from one more inner step (the reference's intent;
                    # its code unpacks the wrong number of values here and crashes).
                    _, _, (nq_halt, nq_cont) = self.inner(inner_carry, data)
                    out["target_q_continue"] = torch.sigmoid(
                        torch.where(is_last, nq_halt, torch.maximum(nq_halt, nq_cont)))
        return Carry(inner_carry, steps, new_halted, data), out
