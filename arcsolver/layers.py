"""Building blocks of the TRM network: fp32-weight linears cast on the fly, RMSNorm without scale, RoPE,
bias-free attention through `scaled_dot_product_attention`, SwiGLU, and the MLP-Mixer-style token mixer.

Notable choices, all following the reference TRM (trm-reference.md §1.3):
  * weights are kept in fp32 and cast to the activation dtype at use (bf16 on GPU, fp32 on CPU);
  * init is a truncated LeCun normal whose *post-truncation* std is 1/sqrt(fan_in) (JAX semantics);
  * RMSNorm has no learnable scale and runs in fp32;
  * SwiGLU's inner width is round(expansion * D * 2/3) rounded up to a multiple of 256.
The token mixer (`mlp_t`) mixes along the sequence axis. The reference transposes to [B, D, S], applies a SwiGLU
over S and transposes back in every block; MLP-mixer models here run sequence-first ([S, B, D]) end to end, so the
mixer is two plain matrix products and nothing is transposed inside the recursion (2x faster mixer on CPU). Note
that the reference's post-norm after the token mixer normalises over the *sequence* axis (the last axis of its
transposed tensor); the block keeps that.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Std of a standard normal truncated to [-2, 2]; dividing by it makes the truncated sample have the requested std.
_TRUNC_STD = 0.8796256610342398


def trunc_normal_(t: torch.Tensor, std: float = 1.0) -> torch.Tensor:
    if std == 0:
        return t.zero_()
    s = std / _TRUNC_STD
    with torch.no_grad():
        return nn.init.trunc_normal_(t, mean=0.0, std=s, a=-2 * s, b=2 * s)


def swiglu_width(hidden: int, expansion: float) -> int:
    inter = round(expansion * hidden * 2 / 3)
    return -(-inter // 256) * 256


def rms_norm(x: torch.Tensor, eps: float, dim: int = -1) -> torch.Tensor:
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.square().mean(dim, keepdim=True) + eps)
    return x.to(dtype)


class CastedLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(trunc_normal_(torch.empty(out_features, in_features), 1.0 / math.sqrt(in_features)))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight if self.weight.dtype == x.dtype else self.weight.to(x.dtype)
        b = None if self.bias is None else (self.bias if self.bias.dtype == x.dtype else self.bias.to(x.dtype))
        return F.linear(x, w, b)


class CastedEmbedding(nn.Module):
    def __init__(self, num: int, dim: int, init_std: float, cast_to: torch.dtype):
        super().__init__()
        self.cast_to = cast_to
        self.embedding_weight = nn.Parameter(trunc_normal_(torch.empty(num, dim), init_std))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.embedding_weight).to(self.cast_to)


class RotaryEmbedding(nn.Module):
    """Rotate-half RoPE tables over 1-D positions (prefix + flattened grid), computed once."""

    def __init__(self, dim: int, max_position: int, base: float):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        t = torch.arange(max_position, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos_cached, self.sin_cached


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """q, k: [B, S, H, Dh]; cos, sin: [S, Dh]. Computed in fp32 as the reference does."""
    dtype = q.dtype
    q, k = q.float(), k.float()
    cos, sin = cos[:, None, :], sin[:, None, :]
    q = q * cos + _rotate_half(q) * sin
    k = k * cos + _rotate_half(k) * sin
    return q.to(dtype), k.to(dtype)


class Attention(nn.Module):
    def __init__(self, hidden_size: int, head_dim: int, num_heads: int, causal: bool = False):
        super().__init__()
        self.head_dim, self.num_heads, self.causal = head_dim, num_heads, causal
        self.qkv_proj = CastedLinear(hidden_size, 3 * num_heads * head_dim, bias=False)
        self.o_proj = CastedLinear(num_heads * head_dim, hidden_size, bias=False)

    def forward(self, cos_sin, x: torch.Tensor) -> torch.Tensor:
        B, S, _ = x.shape
        qkv = self.qkv_proj(x).view(B, S, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(2)
        if cos_sin is not None:
            q, k = apply_rope(q, k, *cos_sin)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, S, Dh]
        o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.o_proj(o.transpose(1, 2).reshape(B, S, self.num_heads * self.head_dim))


class SwiGLU(nn.Module):
    def __init__(self, hidden_size: int, expansion: float):
        super().__init__()
        inter = swiglu_width(hidden_size, expansion)
        self.gate_up_proj = CastedLinear(hidden_size, 2 * inter, bias=False)
        self.down_proj = CastedLinear(inter, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class TokenMixer(SwiGLU):
    """SwiGLU across the sequence axis (the reference's `mlp_t`), on a sequence-first [S, B, D] tensor.

    Same parameters and state-dict names as a SwiGLU of width S. With the sequence axis first, the mixer is two
    plain matrix products over [S, B*D], with no transposes or copies (the reference transposes twice per block).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        S, B, D = x.shape
        flat = x.reshape(S, B * D)
        gu = self.gate_up_proj.weight.to(x.dtype) @ flat  # [2I, B*D]
        gate, up = gu.chunk(2, dim=0)
        return (self.down_proj.weight.to(x.dtype) @ (F.silu(gate) * up)).view(S, B, D)
