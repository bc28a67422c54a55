"""Benchmark: TRM training-step and inference-rollout speed on CPU (fp32), next to the reference's figures.

Configs (trm-reference.md §14: the reference code timed on this machine class, fp32, 2 threads, median of 5):
  (a) h=128, 2 heads, expansion 4, mlp_t, no positions, seq 81 (+16 prefix), H_cycles 3, L_cycles 6, batch 32:
      1.95 s per training step, 32 s per 16-step inference rollout
  (b) the Sudoku paper config (h=512, 8 heads, mlp_t, no positions, seq 81, H3 L6), batch 32: 16.9 s per step
  (c) `--arc`: the ARC config (h=512, 8 heads, RoPE attention, seq 900 + 16, H3 L4), batch 8: 31.4 s per step
One training step = one ACT supervision step: forward (H_cycles * (L_cycles + 1) network applications), backward
through the last cycle, Adam-atan2 and sign-SGD steps. A rollout = 16 supervision steps in eval mode under
torch.inference_mode (what prediction does).

The machine may be shared, so the figures of §14 are not the only yardstick: the same run also times a plain
re-statement of the reference's formulation (transposes to [B, D, S] in every mixer block, unfused SwiGLU and
RMSNorm under plain autograd, weights cast at use, torch.no_grad cycles) on the *same weights* -- `ref-form` rows;
its outputs are checked against ours first. GFLOP/s counts the matmul FLOPs (forward of every network application
plus 2x the forward for the backward of the last cycle, heads included) and is shown next to a plain fp32 2048^3
matmul measured in the same run, with the same threads.

    python benchmarks/bench_model.py            # (a) + (b), ~3 min on 2 free cores
    python benchmarks/bench_model.py --quick    # (a) only, fewer repetitions
    options: --threads N (default: auto = whichever of 1 or all cores runs a matmul faster right now, which
             guards against a busy machine), --arc (adds config (c)), --no-ref-form
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arcsolver.adam_atan2 import AdamAtan2  # noqa: E402
from arcsolver.layers import swiglu_width  # noqa: E402
from arcsolver.losses import ACTLossHead  # noqa: E402
from arcsolver.puzzle_embedding import SignSGDSparse  # noqa: E402
from arcsolver.trm import TRM, InnerCarry, TRMConfig, TRMInner  # noqa: E402

REF = {"a": {"step": 1.95, "rollout": 32.0}, "b": {"step": 16.9, "rollout": 176.0}, "c": {"step": 31.4}}
BATCH = {"a": 32, "b": 32, "c": 8}


def config(name: str) -> TRMConfig:
    common = dict(batch_size=BATCH[name], puzzle_emb_len=16, num_puzzle_identifiers=64, L_layers=2, H_cycles=3,
                  expansion=4.0, forward_dtype="float32")
    if name == "a":
        return TRMConfig(seq_len=81, vocab_size=11, hidden_size=128, puzzle_emb_ndim=128, num_heads=2, L_cycles=6,
                         mlp_t=True, pos_encodings="none", **common)
    if name == "b":
        return TRMConfig(seq_len=81, vocab_size=11, hidden_size=512, puzzle_emb_ndim=512, num_heads=8, L_cycles=6,
                         mlp_t=True, pos_encodings="none", **common)
    return TRMConfig(seq_len=900, vocab_size=12, hidden_size=512, puzzle_emb_ndim=512, num_heads=8, L_cycles=4,
                     mlp_t=False, pos_encodings="rope", **common)


def matmul_flops(cfg: TRMConfig, batch: int) -> tuple[float, float]:
    """(forward FLOPs of one supervision step, FLOPs of one training step), matrix products only."""
    S, D, B = cfg.total_len, cfg.hidden_size, batch
    per_layer = 6 * B * S * D * swiglu_width(D, cfg.expansion)  # channel SwiGLU: gate_up D->2I, down I->D
    if cfg.mlp_t:
        per_layer += 6 * B * D * S * swiglu_width(S, cfg.expansion)
    else:
        per_layer += 2 * B * S * D * 4 * D + 4 * B * S * S * D  # q,k,v,o projections; scores and weighted values
    heads = 2 * B * cfg.seq_len * D * cfg.vocab_size + 2 * B * D * 2
    apps = cfg.H_cycles * (cfg.L_cycles + 1)
    fwd = apps * cfg.L_layers * per_layer + heads
    return fwd, fwd + 2 * ((cfg.L_cycles + 1) * cfg.L_layers * per_layer + heads)


def make_batch(cfg: TRMConfig, b: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"inputs": torch.randint(1, cfg.vocab_size, (b, cfg.seq_len), generator=g, dtype=torch.int32),
            "labels": torch.randint(1, cfg.vocab_size, (b, cfg.seq_len), generator=g).long(),
            "puzzle_identifiers": torch.randint(0, cfg.num_puzzle_identifiers, (b,), generator=g, dtype=torch.int32)}


# ---------------------------------------------------------------------------------------------------------------
# the reference's formulation, restated plainly over our modules' weights (for the in-run A/B only)


def _ref_rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    dt = x.dtype
    x = x.to(torch.float32)
    return (x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)).to(dt)


def _ref_swiglu(x: torch.Tensor, mod) -> torch.Tensor:
    gate, up = F.linear(x, mod.gate_up_proj.weight.to(x.dtype)).chunk(2, dim=-1)
    return F.linear(F.silu(gate) * up, mod.down_proj.weight.to(x.dtype))


def _ref_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    dt = x.dtype
    x = x.to(cos.dtype)
    half = x.shape[-1] // 2
    rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos.unsqueeze(-2) + rot * sin.unsqueeze(-2)).to(dt)


def _ref_block(blk, cfg: TRMConfig, cs, h: torch.Tensor) -> torch.Tensor:
    eps = cfg.rms_norm_eps
    if cfg.mlp_t:
        t = h.transpose(1, 2)
        h = _ref_rms(t + _ref_swiglu(t, blk.mlp_t), eps).transpose(1, 2)
    else:
        att = blk.self_attn
        B, S, _ = h.shape
        qkv = F.linear(h, att.qkv_proj.weight.to(h.dtype)).view(B, S, 3 * att.num_heads, att.head_dim)
        q, k, v = qkv[:, :, :att.num_heads], qkv[:, :, att.num_heads:2 * att.num_heads], qkv[:, :, 2 * att.num_heads:]
        if cs is not None:
            q, k = _ref_rope(q, *cs), _ref_rope(k, *cs)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        o = F.linear(o.transpose(1, 2).reshape(B, S, -1), att.o_proj.weight.to(h.dtype))
        h = _ref_rms(h + o, eps)
    return _ref_rms(h + _ref_swiglu(h, blk.mlp), eps)


def _ref_inner_forward(self: TRMInner, carry: InnerCarry, batch: dict[str, torch.Tensor]):
    cfg = self.config
    cs = self.cos_sin()
    x = self.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])

    def net(h, inj):
        h = h + inj
        for blk in self.L_level.layers:
            h = _ref_block(blk, cfg, cs, h)
        return h
    z_H, z_L = carry.z_H, carry.z_L
    with torch.no_grad():
        for _ in range(cfg.H_cycles - 1):
            for _ in range(cfg.L_cycles):
                z_L = net(z_L, z_H + x)
            z_H = net(z_H, z_L)
    for _ in range(cfg.L_cycles):
        z_L = net(z_L, z_H + x)
    z_H = net(z_H, z_L)
    logits = F.linear(z_H, self.lm_head.weight.to(z_H.dtype))[:, self.prefix:]
    q = self.q_head(z_H[:, 0]).to(torch.float32)
    return InnerCarry(z_H.detach(), z_L.detach()), logits, (q[..., 0], q[..., 1])


def build(cfg: TRMConfig, ref_form: bool) -> ACTLossHead:
    torch.manual_seed(0)
    head = ACTLossHead(TRM(cfg))
    with torch.no_grad():  # a non-zero table so the puzzle slot carries signal
        head.model.inner.puzzle_emb.weights.normal_(0, 0.1)
    if ref_form:
        head.model.inner.forward = types.MethodType(_ref_inner_forward, head.model.inner)
    return head


def check_same_outputs(cfg: TRMConfig) -> float:
    """Max |logit difference| between ours and the reference formulation (same weights), training mode."""
    b = make_batch(cfg, 4)
    outs = []
    for ref_form in (False, True):
        head = build(dataclasses.replace(cfg, batch_size=4), ref_form)
        carry, loss, *_ = head(head.initial_carry(b), b)
        carry, loss, _, out, _ = head(carry, b, return_keys=("logits",))
        loss.backward()
        outs.append((out["logits"], head.model.inner.L_level.layers[0].mlp.down_proj.weight.grad))
    (l0, g0), (l1, g1) = outs
    rel_grad = float((g0 - g1).abs().max() / g1.abs().max().clamp_min(1e-30))
    return max(float((l0 - l1).abs().max()), rel_grad)


# ---------------------------------------------------------------------------------------------------------------
# timing


class _Trainer:
    """One model + optimizers + carry, stepping on a fixed batch."""

    def __init__(self, cfg: TRMConfig, ref_form: bool):
        b = BATCH_OVERRIDE or cfg.batch_size
        self.b = b
        self.head = build(cfg, ref_form)
        self.opt = AdamAtan2([p for p in self.head.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.1)
        self.emb_opt = SignSGDSparse(self.head.model.inner.puzzle_emb, lr=1e-2, weight_decay=0.1)
        self.batch = make_batch(cfg, b)
        self.head.train()
        self.carry = self.head.initial_carry(self.batch)

    def step(self) -> float:
        t = time.perf_counter()
        self.carry, loss, _, _, _ = self.head(self.carry, self.batch)
        (loss / self.b).backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.emb_opt.step()
        self.emb_opt.zero_grad()
        return time.perf_counter() - t


def _alternate(timers: list, reps: int) -> list[list[float]]:
    """Seconds of each timer over `reps` rounds, one call each per round, order reversed every other round."""
    times: list[list[float]] = [[] for _ in timers]
    for i in range(reps):
        for k in (range(len(timers)) if i % 2 == 0 else reversed(range(len(timers)))):
            times[k].append(timers[k]())
    return times


def time_train(cfg: TRMConfig, reps: int, with_ref_form: bool) -> tuple[float, float | None, float | None]:
    """(ours s/step, ref-form s/step, median of paired ratios ref/ours). Steps alternate between the two
    implementations (order swapped every rep) so that both see the same machine state: on a shared VM the speed of
    the whole machine drifts by tens of percent within minutes, which sequential timing would attribute to code."""
    runs = [_Trainer(cfg, False)] + ([_Trainer(cfg, True)] if with_ref_form else [])
    for r in runs:  # the first step warms allocator and caches
        r.step()
    times = _alternate([r.step for r in runs], reps)
    ours = statistics.median(times[0])
    if not with_ref_form:
        return ours, None, None
    return ours, statistics.median(times[1]), statistics.median(r / o for o, r in zip(times[0], times[1]))


@torch.inference_mode()
def _rollout_once(model, batch, steps: int) -> float:
    t = time.perf_counter()
    carry = model.initial_carry(batch)
    for _ in range(steps):
        carry, out = model(carry, batch)
    out["logits"].argmax(-1)
    assert bool(carry.halted.all())
    return time.perf_counter() - t


@torch.inference_mode()
def time_rollout(cfg: TRMConfig, with_ref_form: bool, steps: int = 16, reps: int = 2
                 ) -> tuple[float, float | None, float | None]:
    """As `time_train`, for one `steps`-step inference rollout (alternating, best of `reps`)."""
    b = BATCH_OVERRIDE or cfg.batch_size
    models = [build(dataclasses.replace(cfg, halt_max_steps=steps), rf).model.eval()
              for rf in ([False, True] if with_ref_form else [False])]
    batch = make_batch(cfg, b)
    for m in models:
        m(m.initial_carry(batch), batch)  # warm-up
    times = _alternate([functools.partial(_rollout_once, m, batch, steps) for m in models], reps)
    ours = min(times[0])
    if not with_ref_form:
        return ours, None, None
    return ours, min(times[1]), statistics.median(r / o for o, r in zip(times[0], times[1]))


def matmul_gflops(n: int = 2048, reps: int = 4) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def pick_threads(requested: str) -> int:
    cores = os.cpu_count() or 1
    if requested != "auto":
        return int(requested)
    default = torch.get_num_threads()
    if default <= 1:
        return 1
    best, best_t = default, math.inf
    x = torch.randn(768, 768)
    for n in (default, 1):  # a busy core makes OpenMP's barriers stall: then one thread wins by far
        torch.set_num_threads(n)
        x @ x
        t = time.perf_counter()
        for _ in range(8):
            x @ x
        dt = time.perf_counter() - t
        if dt < best_t * 0.9:
            best, best_t = n, dt
    del cores
    return best


BATCH_OVERRIDE = 0


def main() -> None:
    global BATCH_OVERRIDE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="config (a) only, fewer repetitions")
    ap.add_argument("--arc", action="store_true", help="add the ARC attention config (c), batch 8")
    ap.add_argument("--threads", default="auto", help="torch threads (default: auto)")
    ap.add_argument("--no-ref-form", action="store_true", help="skip the in-run reference-formulation rows")
    ap.add_argument("--batch", type=int, default=0, help="override the batch size (reference figures then differ)")
    args = ap.parse_args()
    BATCH_OVERRIDE = args.batch
    threads = pick_threads(args.threads)
    torch.set_num_threads(threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {threads} thread(s) of {os.cpu_count()} cores, load average {load:.2f} "
          f"at start")
    peak = matmul_gflops()
    names = ["a"] if args.quick else ["a", "b"]
    if args.arc:
        names.append("c")
    rows = []
    for name in names:
        cfg = config(name)
        B = args.batch or cfg.batch_size
        diff = check_same_outputs(cfg) if not args.no_ref_form else None
        fwd, train_flops = matmul_flops(cfg, B)
        reps = 3 if args.quick or name != "a" else 5
        with_ref = not args.no_ref_form
        step, ref_step, step_ratio = time_train(cfg, reps, with_ref)
        roll, ref_roll, roll_ratio = time_rollout(cfg, with_ref) if name == "a" else (None, None, None)
        rows.append(dict(name=name, B=B, ref_form=False, step=step, roll=roll, gf=train_flops / step / 1e9,
                         rgf=16 * fwd / roll / 1e9 if roll else None, diff=diff, step_ratio=step_ratio,
                         roll_ratio=roll_ratio))
        if with_ref:
            rows.append(dict(name=name, B=B, ref_form=True, step=ref_step, roll=ref_roll,
                             gf=train_flops / ref_step / 1e9, rgf=16 * fwd / ref_roll / 1e9 if ref_roll else None,
                             diff=diff))
    print(f"\n## TRM on CPU, fp32 ({threads} thread(s)); reference figures: trm-reference.md §14")
    print("| config | batch | impl | train step | samples/s | GFLOP/s | vs §14 ref | vs ref-form | "
          "16-step rollout | GFLOP/s | vs §14 ref | vs ref-form |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    by = {(r["name"], r["ref_form"]): r for r in rows}
    for r in rows:
        ref = REF[r["name"]]
        base = by.get((r["name"], True))
        impl = "ref-form" if r["ref_form"] else "ours"
        vs_ref = f"{ref['step'] / r['step']:.2f}x" if r["B"] == BATCH[r["name"]] else "-"
        vs_form = f"{r['step_ratio']:.2f}x" if base and not r["ref_form"] else "-"
        if r["roll"]:
            rr = (f"{r['roll']:.1f} s | {r['rgf']:.0f} | "
                  + (f"{ref['rollout'] / r['roll']:.2f}x" if r["B"] == BATCH[r["name"]] else "-") + " | "
                  + (f"{r['roll_ratio']:.2f}x" if base and base["roll"] and not r["ref_form"] else "-"))
        else:
            rr = "- | - | - | -"
        print(f"| ({r['name']}) | {r['B']} | {impl} | {r['step']:.2f} s | {r['B'] / r['step']:.1f} | {r['gf']:.0f} | "
              f"{vs_ref} | {vs_form} | {rr} |")
    print(f"\n§14 reference figures: (a) {REF['a']['step']} s/step, {REF['a']['rollout']} s/rollout; "
          f"(b) {REF['b']['step']} s/step; (c, batch 8) {REF['c']['step']} s/step (2 threads, reference code)")
    peak_end = matmul_gflops()
    print(f"plain fp32 matmul 2048^3 in this run: {peak:.0f} GFLOP/s at start, {peak_end:.0f} at end "
          f"({threads} thread(s); a gap means the machine's speed drifted during the run, which the side-by-side "
          "'vs ref-form' ratios are immune to and the 'vs §14 ref' ratios are not)")
    diffs = {r["name"]: r["diff"] for r in rows if r["diff"] is not None}
    if diffs:
        print("ours vs ref-form, same weights, 2 steps (max |logit diff|, max rel. grad diff): "
              + ", ".join(f"({n}) {d:.1e}" for n, d in diffs.items()))
    print(f"load average at end: {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "")


if __name__ == "__main__":
    main()
