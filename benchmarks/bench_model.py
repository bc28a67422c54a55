"""Benchmark: TRM training step and 16-step evaluation rollout on CPU (fp32), ours against the reference code, timed
side by side in one process.

    python benchmarks/bench_model.py --reference DIR            # (a) + (b) against the official TRM code in DIR
    python benchmarks/bench_model.py --reference DIR --arc      # + (c)
    python benchmarks/bench_model.py                            # against this file's own re-statement (see below)
    python benchmarks/bench_model.py --reference DIR --arch urm # our URM against the URM reference code in DIR:
                                                                # parity checks + timings (urm_side_by_side.py)
    options: --quick ((a) only, fewer repetitions), --train-reps N, --rollouts N, --threads N|auto, --out FILE,
             --rollout-steps N (time only the first N of the 16 supervision steps: every step does the same work,
             so the per-step ratio is unchanged; the table marks such rows "N of 16 steps")

Configs (batch): (a) small: h=128, 2 heads, mlp_t, no positions, seq 81 (+16 prefix), H_cycles 3, L_cycles 6 (32);
(b) the Sudoku paper config: h=512, 8 heads, mlp_t, no positions, seq 81, H3 L6 (32); (c) the ARC config: h=512,
8 heads, RoPE attention, seq 900 (+16), H3 L4 (8). All fp32, eager, expansion 4, 2 layers, puzzle_emb_len 16.

The other side
  * `--reference DIR`: DIR is a checkout of github.com/SamsungSAILMontreal/TinyRecursiveModels that you fetch
    yourself (e.g. `git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels DIR`); nothing of it is
    copied into this project. Its model (models/recursive_reasoning/trm.py), loss head (models/losses.py) and sparse
    puzzle embedding with its sign-SGD (models/sparse_embedding.py) are imported from DIR and given *our* weights
    (the state-dict names are the same; the load is strict). Its train step is its `train_batch` (pretrain.py):
    forward through the loss head, backward of loss / batch, LR set, each optimizer stepped and zeroed. Its rollout
    is its evaluation loop (pretrain.py `evaluate`): eval mode, torch.inference_mode, a fresh carry, the loss head
    called with the ARC evaluator's return keys until every row has halted (16 supervision steps).
    Shimmed, because it cannot run on CPU: only the reference's optimizer package `adam_atan2` (a CUDA extension);
    its train step uses this project's plain-PyTorch AdamAtan2 (the same update rule, docs/trm.md), so the
    dense optimizer costs the same on both sides. Nothing else is replaced: the reference model has no CUDA-only
    import (its flash-attn import is commented out; it calls SDPA) and runs eager (pretrain.py's torch.compile is
    off, as with DISABLE_COMPILE; ours is eager too). pretrain.py itself is not imported (hydra, wandb, CUDA).
    The reference imports need two packages that are not dependencies of this project; install them into the venv
    for this benchmark only: `.venv/bin/pip install pydantic einops`.
  * Without `--reference`: a plain re-statement, in this file, of the reference's formulation over our modules'
    weights (transposes to [B, D, S] in every mixer block, unfused SwiGLU and RMSNorm under plain autograd, torch.
    no_grad cycles, the ACT wrapper stepped 16 times). It is NOT the reference code; the table says so.

Ours: the train step of `arcsolver train` (loss head forward, backward of loss / batch, Adam-atan2 and sign-SGD
steps) and the rollout of `predict`/evaluation (`arcsolver.inference.rollout.Rollout`: 16 supervision steps,
argmax, q_halt).

Timing: the two sides alternate step by step (the order swaps every step), so both see the same machine state:
on a shared machine the speed of the whole machine drifts by tens of percent within minutes, which sequential
timing would attribute to code. Train: `train reps` pairs of one training step (one ACT supervision step for every
row) each, after one warm-up step each. Rollout: both rollouts advance one supervision step at a time, alternating,
so one rollout pair gives 16 paired step timings (ours' first step includes building its state, its last the
argmax; the reference's first its initial carry). Ratios are other/ours per pair: median, min and max over the
pairs, and the ratio of the summed rollout times. Before timing, outputs are compared on the same weights (max
|logit| and relative gradient differences in training mode; after the rollouts, whether the predictions are equal
and the max |q_halt| difference). GFLOP/s counts matrix-product FLOPs (forward of every network application, plus 2x
the forward of the last cycle for the backward, heads included) next to a plain fp32 2048^3 product measured at the
start and end of the run with the same threads: it shows how close each side runs to the machine's product rate,
which bounds any fp32 speed-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arcsolver.model.adam_atan2 import AdamAtan2  # noqa: E402
from arcsolver.inference.rollout import Rollout  # noqa: E402
from arcsolver.model.layers import swiglu_width  # noqa: E402
from arcsolver.model.losses import ACTLossHead  # noqa: E402
from arcsolver.model.puzzle_embedding import SignSGDSparse  # noqa: E402
from arcsolver.model.trm import TRM, InnerCarry, TRMConfig, TRMInner  # noqa: E402

BATCH = {"a": 32, "b": 32, "c": 8}
LR, EMB_LR, WD = 1e-4, 1e-2, 0.1
EVAL_KEYS = {"inputs", "puzzle_identifiers", "q_halt_logits", "preds"}  # the reference ARC evaluator's outputs


def config(name: str) -> TRMConfig:
    common = dict(batch_size=BATCH[name], puzzle_emb_len=16, num_puzzle_identifiers=64, L_layers=2, H_cycles=3,
                  expansion=4.0, forward_dtype="float32", halt_max_steps=16)
    if name == "a":
        return TRMConfig(seq_len=81, vocab_size=11, hidden_size=128, puzzle_emb_ndim=128, num_heads=2, L_cycles=6,
                         mlp_t=True, pos_encodings="none", **common)
    if name == "b":
        return TRMConfig(seq_len=81, vocab_size=11, hidden_size=512, puzzle_emb_ndim=512, num_heads=8, L_cycles=6,
                         mlp_t=True, pos_encodings="none", **common)
    return TRMConfig(seq_len=900, vocab_size=12, hidden_size=512, puzzle_emb_ndim=512, num_heads=8, L_cycles=4,
                     mlp_t=False, pos_encodings="rope", **common)


def matmul_flops(cfg: TRMConfig) -> tuple[float, float]:
    """(forward FLOPs of one supervision step, FLOPs of one training step), matrix products only."""
    S, D, B = cfg.total_len, cfg.hidden_size, cfg.batch_size
    per_layer = 6 * B * S * D * swiglu_width(D, cfg.expansion)  # channel SwiGLU: gate_up D->2I, down I->D
    if cfg.mlp_t:
        per_layer += 6 * B * D * S * swiglu_width(S, cfg.expansion)
    else:
        per_layer += 2 * B * S * D * 4 * D + 4 * B * S * S * D  # q,k,v,o projections; scores and weighted values
    heads = 2 * B * cfg.seq_len * D * cfg.vocab_size + 2 * B * D * 2
    apps = cfg.H_cycles * (cfg.L_cycles + 1)
    fwd = apps * cfg.L_layers * per_layer + heads
    return fwd, fwd + 2 * ((cfg.L_cycles + 1) * cfg.L_layers * per_layer + heads)


def make_batch(cfg: TRMConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    b = cfg.batch_size
    return {"inputs": torch.randint(1, cfg.vocab_size, (b, cfg.seq_len), generator=g, dtype=torch.int32),
            "labels": torch.randint(1, cfg.vocab_size, (b, cfg.seq_len), generator=g).long(),
            "puzzle_identifiers": torch.randint(0, cfg.num_puzzle_identifiers, (b,), generator=g, dtype=torch.int32)}


def build_ours(cfg: TRMConfig) -> ACTLossHead:
    torch.manual_seed(0)
    head = ACTLossHead(TRM(cfg))
    with torch.no_grad():  # a non-zero table so the puzzle slot carries signal
        head.model.inner.puzzle_emb.weights.normal_(0, 0.1)
    return head


# ---------------------------------------------------------------------------------------------------------------
# the other side, (1): the official reference code from a checkout


def reference_train_step(sparse, head, batch: dict[str, torch.Tensor]):
    """One step of a reference head (TRM's or URM's code base) as its pretrain.py's train_batch runs it, minus the
    device moves and the distributed all-reduce: the sparse sign-SGD of `sparse` (the reference's
    models/sparse_embedding module) on the puzzle table and Adam-atan2 on the rest. Returns the step function."""
    emb = sparse.CastedSparseEmbeddingSignSGD_Distributed(head.model.puzzle_emb.buffers(), lr=0, weight_decay=WD,
                                                          world_size=1)
    adam = AdamAtan2(head.parameters(), lr=0, weight_decay=WD)  # shim for the CUDA-only adam_atan2
    optimizers, lrs = [emb, adam], [EMB_LR, LR]
    head.train()
    state = {"carry": head.initial_carry(batch)}
    B = batch["inputs"].shape[0]

    def step() -> None:
        state["carry"], loss, _, _, _ = head(carry=state["carry"], batch=batch, return_keys=[])
        ((1 / B) * loss).backward()
        for opt, lr in zip(optimizers, lrs):
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
            opt.zero_grad()
    return step


class Reference:
    """The reference's modules, imported from a checkout (see the module docstring)."""

    label = "reference code"

    def __init__(self, directory: str):
        d = Path(directory).resolve()
        if not (d / "models" / "recursive_reasoning" / "trm.py").is_file():
            sys.exit(f"--reference {directory}: not a TinyRecursiveModels checkout "
                     "(no models/recursive_reasoning/trm.py)")
        sys.path.insert(0, str(d))
        try:
            self.trm = importlib.import_module("models.recursive_reasoning.trm")
            self.losses = importlib.import_module("models.losses")
            self.sparse = importlib.import_module("models.sparse_embedding")
        except ModuleNotFoundError as e:
            sys.exit(f"--reference {directory}: the reference code needs the package {e.name!r}; install it into "
                     "this venv for the benchmark only (.venv/bin/pip install pydantic einops)")
        commit = subprocess.run(["git", "-C", str(d), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        self.source = f"{d}" + (f" (commit {commit})" if commit else " (not a git work tree)")

    def build(self, cfg: TRMConfig, ours: ACTLossHead):
        model = self.trm.TinyRecursiveReasoningModel_ACTV1(dict(dataclasses.asdict(cfg), causal=False))
        head = self.losses.ACTLossHead(model, loss_type="stablemax_cross_entropy")
        head.load_state_dict(ours.state_dict(), strict=True)
        return head

    def train_step_fn(self, head, batch: dict[str, torch.Tensor]):
        """The reference's train_batch (pretrain.py) minus the device moves and the distributed all-reduce."""
        return reference_train_step(self.sparse, head, batch)

    def rollout(self, head, batch: dict[str, torch.Tensor]) -> "RefRollout":
        return RefRollout(head, batch)

    def train_logits(self, head, batch: dict[str, torch.Tensor]):
        carry, loss, _, out, _ = head(carry=head.initial_carry(batch), batch=batch, return_keys=["logits"])
        carry, loss, _, out, _ = head(carry=carry, batch=batch, return_keys=["logits"])
        return out["logits"], loss


class RefRollout:
    """The reference's evaluation loop (pretrain.py evaluate), one loss-head call per `step()`."""

    def __init__(self, head, batch: dict[str, torch.Tensor]):
        self.head, self.batch = head.eval(), batch
        with torch.inference_mode():
            self.carry = head.initial_carry(batch)
        self.out, self.done = None, False

    def step(self) -> None:
        with torch.inference_mode():
            self.carry, _, _, self.out, done = self.head(carry=self.carry, batch=self.batch, return_keys=EVAL_KEYS)
        self.done = bool(done)

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The outputs of the last step (after all 16 steps the loop has finished: `done`)."""
        return self.out["preds"], self.out["q_halt_logits"]


# ---------------------------------------------------------------------------------------------------------------
# the other side, (2): this file's re-statement of the reference's formulation (not the reference code)


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


# The recursion below stands again in tests/test_model.py (reference_inner). Both stay: the test's copy is the
# independent statement the model is checked against (a test must not import a benchmark), this one is what the
# benchmark times next to the model; a shared helper would let one bug hide in both.
def _restated_inner_forward(self: TRMInner, carry: InnerCarry, batch: dict[str, torch.Tensor]):
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


class Restatement:
    """Our modules with the inner forward replaced by the plain re-statement above, driven like the reference."""

    label = "re-statement in this file (NOT the reference code)"
    source = "benchmarks/bench_model.py (_restated_inner_forward)"

    def build(self, cfg: TRMConfig, ours: ACTLossHead):
        head = build_ours(cfg)
        head.load_state_dict(ours.state_dict())
        head.model.inner.forward = types.MethodType(_restated_inner_forward, head.model.inner)
        return head

    def train_step_fn(self, head, batch):
        return our_train_step_fn(head, batch)

    def rollout(self, head, batch) -> "RestatedRollout":
        return RestatedRollout(head.model, batch)

    def train_logits(self, head, batch):
        carry, loss, _, out, _ = head(head.initial_carry(batch), batch, return_keys=("logits",))
        carry, loss, _, out, _ = head(carry, batch, return_keys=("logits",))
        return out["logits"], loss


class RestatedRollout:
    """The ACT wrapper stepped in eval mode under inference_mode, as the reference's evaluation loop."""

    def __init__(self, model, batch):
        self.model, self.batch = model.eval(), batch
        with torch.inference_mode():
            self.carry = model.initial_carry(batch)

    def step(self) -> None:
        with torch.inference_mode():
            self.carry, self.out = self.model(self.carry, self.batch)

    def result(self):
        return self.out["logits"].argmax(-1), self.out["q_halt_logits"]


# ---------------------------------------------------------------------------------------------------------------
# ours


def our_train_step_fn(head: ACTLossHead, batch: dict[str, torch.Tensor]):
    """One step of `arcsolver train` (train.py's loop body without logging, EMA and checkpointing)."""
    opt = AdamAtan2([p for p in head.parameters() if p.requires_grad], lr=LR, weight_decay=WD)
    emb_opt = SignSGDSparse(head.model.inner.puzzle_emb, lr=EMB_LR, weight_decay=WD)
    head.train()
    state = {"carry": head.initial_carry(batch)}
    B = batch["inputs"].shape[0]

    def step() -> None:
        state["carry"], loss, _, _, _ = head(state["carry"], batch)
        (loss / B).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        emb_opt.step()
        emb_opt.zero_grad()
    return step


# ---------------------------------------------------------------------------------------------------------------
# measurement


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def alternate(fns: list, reps: int) -> list[list[float]]:
    """Seconds of each of two callables over `reps` rounds, one call each per round, order swapped every round."""
    times: list[list[float]] = [[], []]
    for i in range(reps):
        for k in ((0, 1) if i % 2 == 0 else (1, 0)):
            times[k].append(_timed(fns[k]))
    return times


def time_train(cfg: TRMConfig, other, ours: ACTLossHead, theirs, reps: int) -> tuple[list[float], list[float]]:
    batch = make_batch(cfg)
    fns = [our_train_step_fn(ours, batch), other.train_step_fn(theirs, batch)]
    for f in fns:  # the first step warms allocator and caches
        f()
    return alternate(fns, reps)


def time_rollouts(cfg: TRMConfig, other, ours: ACTLossHead, theirs, rollouts: int, steps: int = 16):
    """Per-step seconds of `rollouts` pairs of rollouts advanced one supervision step at a time, alternating;
    plus whether the predictions of the last pair are equal and the max |q_halt| difference."""
    batch = make_batch(cfg, seed=1)
    for make in (lambda: Rollout(ours.model, batch), lambda: other.rollout(theirs, batch)):
        r = make()  # warm-up: one step each
        r.step()
    per_step: list[list[float]] = [[], []]
    same, qdiff = True, 0.0
    for i in range(rollouts):
        runs: list = [None, None]
        makers = [lambda: Rollout(ours.model, batch), lambda: other.rollout(theirs, batch)]
        res: list = [None, None]
        for s in range(steps):
            for k in ((0, 1) if (i * steps + s) % 2 == 0 else (1, 0)):
                def one(k=k, s=s):
                    if s == 0:
                        runs[k] = makers[k]()
                    runs[k].step()
                    if s == steps - 1:
                        res[k] = runs[k].result()
                per_step[k].append(_timed(one))
        same = same and torch.equal(res[0][0], res[1][0])
        qdiff = max(qdiff, float((res[0][1].float() - res[1][1].float()).abs().max()))
    return per_step, same, qdiff


def check_train_outputs(cfg: TRMConfig, other) -> tuple[float, float]:
    """(max |logit diff|, max relative grad diff of one weight) between ours and the other side, same weights,
    training mode, two ACT steps (same RNG for the exploration draws)."""
    cfg = dataclasses.replace(cfg, batch_size=4)
    batch = make_batch(cfg)
    ours = build_ours(cfg)
    theirs = other.build(cfg, ours)
    ours.train(), theirs.train()
    torch.manual_seed(1)
    carry, _, _, _, _ = ours(ours.initial_carry(batch), batch)
    _, loss_o, _, out, _ = ours(carry, batch, return_keys=("logits",))
    torch.manual_seed(1)
    logits_t, loss_t = other.train_logits(theirs, batch)
    loss_o.backward()
    loss_t.backward()
    name = "model.inner.L_level.layers.0.mlp.down_proj.weight"
    g_o, g_t = ours.get_parameter(name).grad, theirs.get_parameter(name).grad
    return (float((out["logits"] - logits_t).abs().max()),
            float((g_o - g_t).abs().max() / g_t.abs().max().clamp_min(1e-30)))


def matmul_gflops(n: int = 2048, reps: int = 4) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def pick_threads(requested: str) -> int:
    if requested != "auto":
        return int(requested)
    default = torch.get_num_threads()
    if default <= 1:
        return 1
    best, best_t = default, float("inf")
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
    return best


def ratio_summary(ours: list[float], other: list[float]) -> str:
    r = [o / u for u, o in zip(ours, other)]
    return f"{statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f}, n={len(r)})"


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


HEADER = ("| config | batch | load | train step: ours | other | other/ours median (min-max, n) | ours GFLOP/s | "
          "16-step rollout: ours | other | other/ours per step median (min-max, n) | other/ours total | "
          "ours GFLOP/s | same preds (max abs q diff) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", metavar="DIR", help="a checkout of SamsungSAILMontreal/TinyRecursiveModels")
    ap.add_argument("--quick", action="store_true", help="config (a) only, fewer repetitions")
    ap.add_argument("--arc", action="store_true", help="add the ARC attention config (c), batch 8")
    ap.add_argument("--configs", help="comma-separated subset of a,b,c (overrides --quick/--arc)")
    ap.add_argument("--train-reps", type=int, default=0, help="paired train steps (default 5 for (a), else 3)")
    ap.add_argument("--rollouts", type=int, default=0, help="paired rollouts (default 2 for (a), else 1)")
    ap.add_argument("--rollout-steps", type=int, default=16, help="time the first N supervision steps (default 16)")
    ap.add_argument("--threads", default="auto", help="torch threads (default: auto)")
    ap.add_argument("--out", help="also write the table (rewritten after every config) to this file")
    ap.add_argument("--arch", choices=("trm", "urm"), default="trm",
                    help="urm: our URM against the URM reference code in --reference (benchmarks/urm_side_by_side.py)")
    ap.add_argument("--parity-only", action="store_true", help="with --arch urm: the checks, no timings")
    args = ap.parse_args()
    if args.arch == "urm":
        if not args.reference:
            sys.exit("--arch urm needs --reference DIR (a checkout of github.com/zitian-gao/URM)")
        import urm_side_by_side
        threads = pick_threads(args.threads)
        torch.set_num_threads(threads)
        urm_side_by_side.run(args, [
            "# bench_model --arch urm: our URM against the URM reference code",
            f"torch {torch.__version__}, {threads} thread(s) of {os.cpu_count()} cores, eager; load average at "
            f"start {load()}"])
        return
    other = Reference(args.reference) if args.reference else Restatement()
    names = args.configs.split(",") if args.configs else ["a"] if args.quick else ["a", "b"] + (["c"] if args.arc
                                                                                                else [])
    if any(n not in BATCH for n in names):
        sys.exit(f"--configs: unknown config in {args.configs!r} (a, b, c)")
    threads = pick_threads(args.threads)
    torch.set_num_threads(threads)
    peak = matmul_gflops()
    head = [f"# bench_model: ours vs the {other.label}",
            f"other side: {other.source}",
            f"torch {torch.__version__}, {threads} thread(s) of {os.cpu_count()} cores, fp32, eager; "
            f"plain fp32 2048^3 matmul at start: {peak:.0f} GFLOP/s; load average at start {load()}"]
    if not args.reference:
        head.append("NOTE: no --reference given: the other side is this file's re-statement of the reference's "
                    "formulation, not the reference code; pass --reference DIR (a TinyRecursiveModels checkout).")
    rows: list[str] = []
    checks: list[str] = []

    def emit(final: str = "") -> str:
        text = "\n".join(head + ["", HEADER] + rows + [""] + checks + ([final] if final else [])) + "\n"
        if args.out:
            tmp = Path(args.out + ".tmp")
            tmp.write_text(text)
            tmp.replace(args.out)
        return text
    print("\n".join(head), flush=True)
    for name in names:
        cfg = config(name)
        logit_diff, grad_diff = check_train_outputs(cfg, other)
        ours = build_ours(cfg)
        theirs = other.build(cfg, ours)
        fwd, train_flops = matmul_flops(cfg)
        reps = args.train_reps or (5 if name == "a" and not args.quick else 3)
        n_roll = args.rollouts or (2 if name == "a" and not args.quick else 1)
        load_start = load()
        t_ours, t_other = time_train(cfg, other, ours, theirs, reps)
        print(f"({name}) train: ours {statistics.median(t_ours):.2f} s, other {statistics.median(t_other):.2f} s, "
              f"{ratio_summary(t_ours, t_other)}", flush=True)
        ours, theirs = build_ours(cfg), None  # fresh weights for the rollout (training moved them apart)
        theirs = other.build(cfg, ours)
        steps = args.rollout_steps
        per_step, same, qdiff = time_rollouts(cfg, other, ours, theirs, n_roll, steps)
        part = "" if steps == 16 else f" ({steps} of 16 steps)"
        roll_ours = [sum(per_step[0][i * steps:(i + 1) * steps]) for i in range(n_roll)]
        roll_other = [sum(per_step[1][i * steps:(i + 1) * steps]) for i in range(n_roll)]
        total_ratio = sum(roll_other) / sum(roll_ours)
        rows.append(
            f"| ({name}) | {cfg.batch_size} | {load_start}-{load()} | {statistics.median(t_ours):.2f} s | "
            f"{statistics.median(t_other):.2f} s | {ratio_summary(t_ours, t_other)} | "
            f"{train_flops / statistics.median(t_ours) / 1e9:.0f} | {statistics.median(roll_ours):.1f} s{part} | "
            f"{statistics.median(roll_other):.1f} s{part} | {ratio_summary(per_step[0], per_step[1])} | "
            f"{total_ratio:.2f}x | {steps * fwd / statistics.median(roll_ours) / 1e9:.0f} | "
            f"{'yes' if same else 'NO'} ({qdiff:.1e}) |")
        checks.append(f"({name}) same weights, training mode, 2 ACT steps: max |logit diff| {logit_diff:.1e}, "
                      f"max rel. grad diff (layer 0 down_proj) {grad_diff:.1e}")
        print(rows[-1], flush=True)
        emit()
        del ours, theirs
    final = (f"plain fp32 2048^3 matmul at end: {matmul_gflops():.0f} GFLOP/s; load average at end {load()} "
             f"(GFLOP/s: matrix-product FLOPs per second of ours; the product rate bounds any fp32 speed-up)")
    text = emit(final)
    print("\n" + text, flush=True)


if __name__ == "__main__":
    main()
