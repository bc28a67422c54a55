"""Building blocks of the TRM network: fp32-weight linears cast on the fly, RMSNorm without scale, rotate-half RoPE,
bias-free attention through `scaled_dot_product_attention`, SwiGLU, and the MLP-Mixer-style token mixer.

The maths follows the reference TRM (docs/trm.md, 'The block'):
  * weights live in fp32 and are cast to the activation dtype where they are used (bf16 on GPU, fp32 on CPU);
  * init is a truncated LeCun normal (cut at +-2 std) whose std *after* truncation is 1/sqrt(fan_in), as JAX does;
  * RMSNorm has no learnable scale and is computed in fp32, eps 1e-5;
  * SwiGLU's inner width is round(expansion * D * 2/3) rounded up to a multiple of 256; gate and up share one
    projection (`gate_up_proj`, gate first), then `down_proj`; no biases anywhere but the Q head.

What differs is only how the work is laid out, for speed (same values up to float rounding):
  * `swiglu` is one autograd function working *feature-major*: [gate; up] = W1 @ X^T, so the gate and up halves are
    contiguous slabs (the activation runs ~2x faster than on the strided halves of a token-major product), the
    backward writes d[gate; up] straight into one buffer (no concatenation), and all four GEMMs take their operands
    transposed in place (BLAS flags, no copies);
  * `add_rms_norm` fuses the residual add with the norm and saves only its output and 1/rms for the backward;
  * without autograd (the no-grad recursion cycles, evaluation) both run in place on fresh buffers;
  * the token mixer (`TokenMixer`) works on a sequence-first [S, B, D] tensor: mixing over S is then a plain
    [2I, S] @ [S, B*D] product with no transposes. The reference instead transposes to [B, D, S] in every block; its
    post-norm after the mixer therefore normalises over the *sequence* axis, and so does ours (`dim=0`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CosSin = tuple[torch.Tensor, torch.Tensor]


# ---------------------------------------------------------------------------------------------------------------
# init and small helpers


def _truncated_std(lower: float, upper: float) -> float:
    """Std of a standard normal truncated to [lower, upper]."""
    def pdf(x: float) -> float:
        return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))
    z = cdf(upper) - cdf(lower)
    mean = (pdf(lower) - pdf(upper)) / z
    var = 1 + (lower * pdf(lower) - upper * pdf(upper)) / z - mean * mean
    return math.sqrt(var)


def trunc_normal_(t: torch.Tensor, std: float = 1.0, lower: float = -2.0, upper: float = 2.0) -> torch.Tensor:
    """Fill `t` from a normal truncated to [lower, upper] standard deviations, rescaled so that the truncated
    distribution has standard deviation `std` (JAX's truncated LeCun normal). std 0 gives zeros."""
    if std == 0:
        with torch.no_grad():
            return t.zero_()
    s = std / _truncated_std(lower, upper)
    with torch.no_grad():
        return nn.init.trunc_normal_(t, mean=0.0, std=s, a=lower * s, b=upper * s)


def swiglu_width(hidden: int, expansion: float) -> int:
    """Inner width of a SwiGLU: round(expansion * hidden * 2/3), rounded up to a multiple of 256."""
    inter = round(expansion * hidden * 2 / 3)
    return -(-inter // 256) * 256


def _norm_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for half-precision activations (as the reference); wider dtypes keep their precision."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def rms_norm(x: torch.Tensor, eps: float, dim: int = -1) -> torch.Tensor:
    """x / rms(x) over `dim`, no scale; computed in fp32 and returned in x's dtype (the reference's rms_norm)."""
    xf = x.to(_norm_dtype(x.dtype))
    return (xf * torch.rsqrt(xf.square().mean(dim, keepdim=True) + eps)).to(x.dtype)


class _AddRMSNorm(torch.autograd.Function):
    """y = rms_norm(h + o) over `dim`. Saves y and 1/rms only: dy -> r * (dy - y * mean(dy * y))."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, o: torch.Tensor, dim: int, eps: float) -> torch.Tensor:
        s = (h + o).to(_norm_dtype(h.dtype))
        r = torch.rsqrt(s.square().mean(dim, keepdim=True) + eps)
        y = s.mul_(r).to(h.dtype)
        ctx.dim = dim
        ctx.save_for_backward(y, r)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        y, r = ctx.saved_tensors
        g = dy.to(r.dtype)
        yf = y.to(r.dtype)
        dot = (g * yf).mean(ctx.dim, keepdim=True)
        ds = (g - yf * dot).mul_(r).to(dy.dtype)
        return ds, ds, None, None


def add_rms_norm(h: torch.Tensor, o: torch.Tensor, eps: float, dim: int = -1) -> torch.Tensor:
    """rms_norm(h + o, eps, dim). Without autograd, `o` must be a scratch tensor: the result is written into it."""
    if torch.is_grad_enabled() and (h.requires_grad or o.requires_grad):
        return _AddRMSNorm.apply(h, o, dim, eps)
    if _norm_dtype(o.dtype) != o.dtype:  # half-precision activations: normalise in fp32 as the reference
        return rms_norm(h + o, eps, dim)
    s = o.add_(h)
    return s.mul_(torch.rsqrt(s.square().mean(dim, keepdim=True).add_(eps)))


# ---------------------------------------------------------------------------------------------------------------
# SwiGLU as one feature-major autograd function


def _gate_up_grad(da: torch.Tensor, gu: torch.Tensor, sg: torch.Tensor, inter: int, dim: int) -> torch.Tensor:
    """d[gate; up] (stacked along `dim` as in `gu`) from dA, for A = silu(gate) * up; `da` is overwritten."""
    g, u = gu.narrow(dim, 0, inter), gu.narrow(dim, inter, inter)
    if torch.compiler.is_compiling():  # out= into views trips torch.compile; the functional form is equal
        return torch.cat((torch.ops.aten.silu_backward(da * u, g), da * sg), dim=dim)
    # d up = dA * silu(g) and d gate = silu'(g) * dA * u, written straight into one buffer
    dgu = torch.empty_like(gu)
    torch.mul(da, sg, out=dgu.narrow(dim, inter, inter))
    da.mul_(u)
    torch.ops.aten.silu_backward.grad_input(da, g, grad_input=dgu.narrow(dim, 0, inter))
    return dgu


class _SwiGLU(torch.autograd.Function):
    """SwiGLU on a 2-D input. token_major: x [N, K] -> y [N, K]; otherwise x [K, N] -> y [K, N] (mixing over K).

    Internally everything is feature-major: GU = W1 @ X_fm ([2I, N]), A = silu(G) * U, Y_fm = W2 @ A.
    Saved for the backward: x, GU, silu(G) and A (what autograd would keep for the unfused ops, minus copies).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, token_major: bool) -> torch.Tensor:
        inter = w2.shape[1]
        gu = torch.mm(w1, x.t() if token_major else x)  # [2I, N]
        g, u = gu[:inter], gu[inter:]
        sg = F.silu(g)
        a = sg * u
        y = torch.mm(a.t(), w2.t()) if token_major else torch.mm(w2, a)
        ctx.token_major = token_major
        ctx.save_for_backward(x, w1, w2, gu, sg, a)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, w1, w2, gu, sg, a = ctx.saved_tensors
        tm = ctx.token_major
        inter = w2.shape[1]
        dy_fm = dy.t() if tm else dy  # [K_out, N]
        need_x, need_w1, need_w2 = ctx.needs_input_grad[:3]
        dw2 = torch.mm(dy_fm, a.t()) if need_w2 else None
        da = torch.mm(w2.t(), dy_fm)  # [I, N]
        dgu = _gate_up_grad(da, gu, sg, inter, 0)
        dx = None
        if need_x:
            dx = torch.mm(dgu.t(), w1) if tm else torch.mm(w1.t(), dgu)
        dw1 = None
        if need_w1:
            dw1 = torch.mm(dgu, x) if tm else torch.mm(dgu, x.t())
        return dx, dw1, dw2, None


class _SwiGLUTokenMajor(torch.autograd.Function):
    """The same SwiGLU kept token-major throughout (x [N, K], GU [N, 2I]): faster than `_SwiGLU` for wide layers on
    CPU (measured at h=512: the feature-major products with a transposed [N, 512] operand are the slow ones)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        inter = w2.shape[1]
        gu = torch.mm(x, w1.t())  # [N, 2I]
        sg = F.silu(gu[:, :inter])
        a = sg * gu[:, inter:]
        ctx.save_for_backward(x, w1, w2, gu, sg, a)
        return torch.mm(a, w2.t())

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, w1, w2, gu, sg, a = ctx.saved_tensors
        inter = w2.shape[1]
        need_x, need_w1, need_w2 = ctx.needs_input_grad[:3]
        dw2 = torch.mm(dy.t(), a) if need_w2 else None
        da = torch.mm(dy, w2)  # [N, I]
        dgu = _gate_up_grad(da, gu, sg, inter, 1)
        dx = torch.mm(dgu, w1) if need_x else None
        dw1 = torch.mm(dgu.t(), x) if need_w1 else None
        return dx, dw1, dw2


WIDE = 512  # channel SwiGLUs at least this wide run token-major (see _SwiGLUTokenMajor)


def swiglu(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, token_major: bool) -> torch.Tensor:
    """down(silu(gate) * up) with [gate; up] = w1-projection; see `_SwiGLU` for the layouts. w1, w2 must already be
    in x's dtype. Without autograd the activation runs in place and nothing is kept."""
    wide = token_major and x.shape[1] >= WIDE
    if torch.is_grad_enabled() and (x.requires_grad or w1.requires_grad or w2.requires_grad):
        return _SwiGLUTokenMajor.apply(x, w1, w2) if wide else _SwiGLU.apply(x, w1, w2, token_major)
    inter = w2.shape[1]
    if wide:
        gu = torch.mm(x, w1.t())
        a = gu[:, :inter]
        F.silu(a, inplace=True)
        a.mul_(gu[:, inter:])
        return torch.mm(a, w2.t())
    gu = torch.mm(w1, x.t() if token_major else x)
    a = gu[:inter]
    F.silu(a, inplace=True)
    a.mul_(gu[inter:])
    return torch.mm(a.t(), w2.t()) if token_major else torch.mm(w2, a)


# ---------------------------------------------------------------------------------------------------------------
# modules (parameter names mirror the reference so its state dicts load unchanged)


class CastedLinear(nn.Module):
    """A linear layer whose fp32 weight is cast to the input's dtype at use (a no-op in fp32)."""

    def __init__(self, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(trunc_normal_(torch.empty(out_features, in_features), 1.0 / math.sqrt(in_features)))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def cast_weight(self, dtype: torch.dtype) -> torch.Tensor:
        return self.weight if self.weight.dtype == dtype else self.weight.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = None if self.bias is None else (self.bias if self.bias.dtype == x.dtype else self.bias.to(x.dtype))
        return F.linear(x, self.cast_weight(x.dtype), b)


class CastedEmbedding(nn.Module):
    """An embedding table kept in fp32, looked up and cast to `cast_to`."""

    def __init__(self, num: int, dim: int, init_std: float, cast_to: torch.dtype):
        super().__init__()
        self.cast_to = cast_to
        self.embedding_weight = nn.Parameter(trunc_normal_(torch.empty(num, dim), init_std))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.embedding_weight).to(self.cast_to)


class RotaryEmbedding(nn.Module):
    """Rotate-half RoPE tables [max_position, head_dim] over 1-D positions (prefix + flattened grid); fp32, not saved."""

    def __init__(self, dim: int, max_position: int, base: float):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        freqs = torch.outer(torch.arange(max_position, dtype=torch.float32), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)

    def forward(self) -> CosSin:
        return self.cos_cached, self.sin_cached


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin for x [B, S, ..., Dh] and tables [S, Dh]; computed in fp32 (as the reference)
    and returned in x's dtype. The tables repeat their first half (cat(freqs, freqs)), so each half of the result is
    x_i * c -+ x_j * s over half-width tensors: no negation pass, and no concatenation without autograd."""
    half = x.shape[-1] // 2
    shape = (cos.shape[0],) + (1,) * (x.ndim - 3) + (half,)
    c, s = cos[:, :half].reshape(shape), sin[:, :half].reshape(shape)
    xf = x.to(_norm_dtype(x.dtype))
    x1, x2 = xf[..., :half], xf[..., half:]
    if (torch.is_grad_enabled() and x.requires_grad) or torch.compiler.is_compiling():
        out = torch.cat((torch.addcmul(x1 * c, x2, s, value=-1.0), torch.addcmul(x2 * c, x1, s)), dim=-1)
    else:
        out = torch.empty_like(xf)
        torch.mul(x1, c, out=out[..., :half]).addcmul_(x2, s, value=-1.0)
        torch.mul(x2, c, out=out[..., half:]).addcmul_(x1, s)
    return out.to(x.dtype)


class Attention(nn.Module):
    """Non-causal multi-head self-attention with a fused QKV projection (q heads, then k, then v), no biases."""

    def __init__(self, hidden_size: int, head_dim: int, num_heads: int, causal: bool = False):
        super().__init__()
        self.head_dim, self.num_heads, self.causal = head_dim, num_heads, causal
        self.qkv_proj = CastedLinear(hidden_size, 3 * num_heads * head_dim, bias=False)
        self.o_proj = CastedLinear(num_heads * head_dim, hidden_size, bias=False)

    def forward(self, cos_sin: CosSin | None, x: torch.Tensor) -> torch.Tensor:
        B, S, _ = x.shape
        qkv = self.qkv_proj(x).view(B, S, 3, self.num_heads, self.head_dim)
        if cos_sin is not None:  # rotate q and k in one pass
            qk = apply_rope(qkv[:, :, :2], *cos_sin)
            q, k = qk.unbind(2)
        else:
            q, k = qkv[:, :, 0], qkv[:, :, 1]
        v = qkv[:, :, 2]
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=self.causal)  # [B, H, S, Dh]
        return self.o_proj(o.transpose(1, 2).reshape(B, S, self.num_heads * self.head_dim))


class SwiGLU(nn.Module):
    """Channel SwiGLU over the last axis of [..., D]."""

    def __init__(self, hidden_size: int, expansion: float):
        super().__init__()
        inter = swiglu_width(hidden_size, expansion)
        self.gate_up_proj = CastedLinear(hidden_size, 2 * inter, bias=False)
        self.down_proj = CastedLinear(inter, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        y = swiglu(flat, self.gate_up_proj.cast_weight(x.dtype), self.down_proj.cast_weight(x.dtype), True)
        return y.view(shape)


class TokenMixer(SwiGLU):
    """The reference's `mlp_t`: a SwiGLU across the sequence axis, here on a sequence-first [S, B, D] tensor.

    Same parameters and state-dict names as a SwiGLU of width S (= seq_len + prefix). Sequence-first, the mixer is
    two plain products with [S, B*D]: no transposes, no copies.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        S = x.shape[0]
        y = swiglu(x.reshape(S, -1), self.gate_up_proj.cast_weight(x.dtype), self.down_proj.cast_weight(x.dtype),
                   False)
        return y.view(x.shape)


class ConvSwiGLU(nn.Module):
    """URM's MLP: down(silu(dwconv(silu(gate) * up))), with `dwconv` a depthwise convolution of kernel 2 over the
    sequence axis of [B, S, D] (padding 1, the first S outputs kept: out[t] = w0 * a[t-1] + w1 * a[t] + bias, a[-1]
    = 0). Parameter names and shapes are the reference's (dwconv as an nn.Conv1d: weight [I, 1, 2], bias [I], with
    its default init); its weights are cast to the input's dtype at use like every other weight here. The
    convolution is written as a shifted multiply-add: no transposes to [B, I, S] and back; without autograd the
    activations and the shifted add run in place (the same operations in the same order: the same values)."""

    def __init__(self, hidden_size: int, expansion: float, kernel: int = 2):
        super().__init__()
        if kernel != 2:
            raise ValueError("ConvSwiGLU implements the reference's kernel 2")
        inter = swiglu_width(hidden_size, expansion)
        self.gate_up_proj = CastedLinear(hidden_size, 2 * inter, bias=False)
        self.dwconv = nn.Conv1d(inter, inter, kernel_size=kernel, padding=kernel // 2, groups=inter, bias=True)
        self.down_proj = CastedLinear(inter, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        w, bias = self.dwconv.weight.to(x.dtype), self.dwconv.bias.to(x.dtype)
        if not torch.is_grad_enabled() or not (x.requires_grad or w.requires_grad):
            a = F.silu(gate).mul_(up)  # [B, S, I]
            c = torch.addcmul(bias, a, w[:, 0, 1])
            c[:, 1:].addcmul_(a[:, :-1], w[:, 0, 0])  # + w0 * a[t-1] (nothing before the first position)
            return self.down_proj(F.silu(c, inplace=True))
        a = F.silu(gate) * up
        prev = F.pad(a[:, :-1], (0, 0, 1, 0))  # a[t-1], zero before the first position
        c = torch.addcmul(bias, a, w[:, 0, 1]).addcmul_(prev, w[:, 0, 0])
        return self.down_proj(F.silu(c))
