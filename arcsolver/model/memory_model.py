"""How much device memory a TRM step needs, and the micro-batch (`--device-batch-size`) that fits.

The model (bytes; b = bytes per element of the forward dtype, D = hidden size, I = SwiGLU inner width, T = tokens per
row = seq_len + puzzle prefix, H = heads):

  training  = weights/optimizer + carry x local batch + (activations + scratch) x micro-batch rows
  inference = weights + (carry + scratch) x rows

* weights/optimizer: every parameter in fp32 five times (weight, gradient, Adam m and v, EMA shadow), plus a copy in
  the forward dtype when that is not fp32 (weights are cast at use), plus the puzzle-embedding table (fp32 buffer).
* activations: what autograd keeps for the one cycle that runs with gradients (trm.py: the last H cycle, i.e.
  L_cycles + 1 applications of the L_layers-block network = the "layers in the gradient cycle"):
      per token per block   attention: b(9D + 4I) (+ 8D fp32 for RoPE's fp32 q/k when b < 4) + 4H (log-sum-exp)
                            mlp_t:     b(3D + 4I + 4 I_t D / T)   (I_t = inner width of the mixer across T)
                            + 8 (two 1/rms in fp32)
      per token, once            + V(b + 32) (logits; the stable-max loss works in float64)
  This count was made from the saved tensors of layers.py (x, [gate; up], silu(gate), their product, the norm
  outputs, q/k/v/attention output) and is checked against autograd's saved-tensor hooks in tests/test_microbatch.py.
* scratch: what is alive besides the saved activations at the peak (the start of the backward): the gradients of
  one block in flight (d[gate; up] 2I, dA I, the residual stream's and the norms' gradients) and the last
  temporaries, ~ b T (8D + 4I) per row; larger than the no-grad cycles' in-place temporaries (~ b T (6D + 2I)).
* URM (urm.py): the gradient cycle is L_cycles applications of the L_layers blocks (no extra z_H update); its MLP
  keeps the convolution's input, output and silu(output) besides the SwiGLU's (+ b 3I), and a depthwise kernel of
  3I weights per block; the carry is one latent.
* carry: z_H and z_L, 2 b T D per row of the *local* batch (rows keep their state across steps, micro-batched or not).

`choose_device_batch` (training and prediction alike) takes `--device-batch-size` when it is given, else the largest
micro-batch whose estimate fits in `safety` (default 0.8) of the free device memory; on CPU (no reliable "free"
figure, and a split changes fp32 rounding, which would make a resumed run depend on the moment's free memory) the
default is the whole local batch. A CUDA out-of-memory error at run time halves the micro-batch and retries the step
(`inference/microbatch.run_halving_on_oom`). benchmarks/bench_memory.py compares the model with
the measured peak RSS on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from arcsolver.model.layers import swiglu_width
from arcsolver.runtime.errors import InputError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
DEFAULT_SAFETY = 0.8  # use at most this share of the free memory: allocator fragmentation, CUDA context, spikes


@dataclass(frozen=True)
class MemoryEstimate:
    fixed: int  # weights, optimizer, EMA, puzzle table (and the carry of the whole local batch when training)
    per_row: int  # what one more row of the micro-batch adds
    rows: int

    @property
    def total(self) -> int:
        return self.fixed + self.per_row * self.rows


def _dtype_bytes(mcfg) -> int:
    return DTYPE_BYTES.get(mcfg.forward_dtype, 4)


def _is_urm(mcfg) -> bool:
    return getattr(mcfg, "name", "trm") == "urm"


def _latents(mcfg) -> int:
    """Tensors [T, D] per row in the carry: z_H and z_L (TRM), the hidden state (URM)."""
    return 1 if _is_urm(mcfg) else 2


def parameter_count(mcfg) -> int:
    """Trainable parameters of the network (puzzle table excluded), from the config alone."""
    D, V, T = mcfg.hidden_size, mcfg.vocab_size, mcfg.total_len
    I = swiglu_width(D, mcfg.expansion)
    block = 3 * D * I  # channel SwiGLU: gate_up [2I, D] + down [D, I]
    if mcfg.mlp_t:
        block += 3 * T * swiglu_width(T, mcfg.expansion)
    else:
        block += 4 * D * D  # qkv [3D, D] + o [D, D]
    if _is_urm(mcfg):
        block += 3 * I  # the depthwise convolution: weight [I, 1, 2] + bias [I]
    n = mcfg.L_layers * block + 2 * V * D + 2 * D + 2  # + token embedding, lm_head, q_head
    if mcfg.pos_encodings == "learned":
        n += T * D
    return n


def activation_bytes_per_token(mcfg) -> int:
    """Bytes autograd keeps per token for the gradient cycle (see the module docstring)."""
    b = _dtype_bytes(mcfg)
    D, T, V = mcfg.hidden_size, mcfg.total_len, mcfg.vocab_size
    I = swiglu_width(D, mcfg.expansion)
    if mcfg.mlp_t:
        It = swiglu_width(T, mcfg.expansion)
        block = b * (3 * D + 4 * I) + b * 4 * It * D / T
    else:
        block = b * (9 * D + 4 * I) + 4 * mcfg.num_heads
        if mcfg.pos_encodings == "rope" and b < 4:
            block += 8 * D  # apply_rope works in fp32: q/k kept in fp32 for its backward
        if mcfg.pos_encodings != "rope":
            block -= b * 2 * D  # no rotated q/k copy
    block += 8
    applications = mcfg.L_cycles + 1
    if _is_urm(mcfg):
        block += b * 3 * I
        applications = mcfg.L_cycles
    return int(applications * mcfg.L_layers * block + V * (b + 32))


def scratch_bytes_per_token(mcfg) -> int:
    b = _dtype_bytes(mcfg)
    D = mcfg.hidden_size
    return int(b * (8 * D + 4 * swiglu_width(D, mcfg.expansion)))


def weight_bytes(mcfg, training: bool) -> int:
    p = parameter_count(mcfg)
    b = _dtype_bytes(mcfg)
    n = 4 * p * (5 if training else 1) + (b * p if b != 4 else 0)
    if mcfg.puzzle_emb_ndim > 0:  # task mode adds its dihedral rows, colour codes and colour keys (8 + 10 + 10)
        extra = 28 if mcfg.puzzle_emb_mode == "task" else 0
        n += 4 * (mcfg.num_puzzle_identifiers + extra) * mcfg.puzzle_emb_ndim
    return n


def training_memory(mcfg, micro_rows: int, local_batch: int) -> MemoryEstimate:
    T = mcfg.total_len
    carry = _latents(mcfg) * _dtype_bytes(mcfg) * T * mcfg.hidden_size * local_batch
    per_row = T * (activation_bytes_per_token(mcfg) + scratch_bytes_per_token(mcfg))
    return MemoryEstimate(weight_bytes(mcfg, True) + carry, per_row, micro_rows)


def inference_memory(mcfg, rows: int) -> MemoryEstimate:
    T = mcfg.total_len
    per_row = T * (_latents(mcfg) * _dtype_bytes(mcfg) * mcfg.hidden_size + scratch_bytes_per_token(mcfg))
    return MemoryEstimate(weight_bytes(mcfg, False), per_row, rows)


def free_device_bytes(device: torch.device) -> int | None:
    """Free memory on a CUDA device (None elsewhere: see the module docstring)."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def choose_device_batch(estimate_for, batch: int, free_bytes: int | None, safety: float = DEFAULT_SAFETY, *,
                        requested: int = 0, field: str = "--device-batch-size") -> int:
    """Rows per micro-batch, for training and prediction alike: `requested` when > 0 (at most `batch`); else the
    largest micro-batch <= `batch` whose `estimate_for(rows).total` fits in `safety` x `free_bytes` (1 when even one
    row does not fit: the OOM path then has the last word), `batch` when the free memory is unknown (CPU).
    `free_bytes` is measured before the model is built, so the fixed part counts against it."""
    if requested < 0:
        raise InputError(f"must be >= 0 (0: automatic), got {requested}", field=field)
    if requested > 0:
        return min(requested, max(1, batch))
    if free_bytes is None or batch <= 1:
        return max(1, batch)
    budget = safety * free_bytes
    est = estimate_for(1)
    if est.total > budget:
        return 1
    return int(max(1, min(batch, (budget - est.fixed) // max(1, est.per_row))))
