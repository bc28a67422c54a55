"""`bench_model.py --reference DIR --arch urm`: our URM (arcsolver/model/urm.py) against the URM reference code,
side by side in one process: parity first, then paired CPU timings.

DIR is a checkout of github.com/zitian-gao/URM that you fetch yourself (`git clone https://github.com/zitian-gao/URM
DIR`; nothing of it is copied into this project). Imported from DIR unmodified: models/urm/urm.py (the model),
models/losses.py (its loss head), models/sparse_embedding.py (puzzle table + sign-SGD), models/muon.py (Muon +
AdamW). Needs `pydantic` and `einops` in the venv for this benchmark only (`.venv/bin/pip install pydantic einops`).
Shimmed, because they cannot run on a CPU:
  * `flash_attn` (the reference's attention kernel, imported at the top of models/layers.py): a stand-in module whose
    `flash_attn_func(q, k, v, causal)` is SDPA on the same [B, S, H, Dh] tensors (the same maths);
  * `adam_atan2` (a CUDA extension, imported by pretrain.py): the Adam-atan2 configs' train step uses this project's
    plain-PyTorch AdamAtan2 (the same update rule), as the TRM mode does;
  * torch.compile of the reference's Newton-Schulz function (`msign`) is off (torch._dynamo disabled for the run), as
    its model runs eager with DISABLE_COMPILE: the same maths.
pretrain.py itself is not imported (hydra, wandb, CUDA); its optimizer grouping (use_muon: Muon on `ndim == 2`
parameters with the class defaults, AdamW on the rest with lr 1e-4, weight decay 0.1, betas (0.9, 0.95), eps 1e-8)
and its train_batch (loss / batch, backward, LR set on every group, each optimizer stepped then zeroed) are restated
in `RefURM.train_step_fn` / `ref_muon`, a few lines each.

Checks (printed, and written with --out):
  1. parameter names, order and shapes, and the count, equal for both presets' architecture (built on the meta
     device at the ARC shape: seq 900, vocab 12); the Muon / AdamW split by name for urm-arc-agi-2;
  2. float64, same weights, same batch, same carry: logits, Q-logits, loss and the new carry after one ACT step from
     a fresh carry and a second one from the carried state (training mode, same RNG for the exploration draws); then
     one training step's gradients (every parameter and the puzzle rows' leaf) with truncated backpropagation; then
     the weights after one optimizer step (Muon + AdamW: the reference's class against ours). In float64 the
     reference's `rms_norm`, which casts to float32 whatever its input, is swapped for one that keeps the input's
     dtype (the only change, so that float64 means float64 on both sides); its bf16 depthwise-conv weights are
     made float64 with everything else. The same comparison in float32 with nothing swapped shows the reference's
     own precision (its convolution then runs in bf16).
  3. paired timings of a train step and a 16-loop rollout on CPU in float32, as the TRM mode (bench_model.py).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import statistics
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch
import torch.nn.functional as F

import bench_model as bm  # the pairing, batches and our train step (bench_model imports this module only in main)
from arcsolver.model import checkpoint
from arcsolver.model.build import build_model
from arcsolver.model.muon import MuonAdamW
from arcsolver.model.trm import TRMConfig
from arcsolver.training.config import load_preset
from arcsolver.training.import_ckpt import PREFIX, export_checkpoint

LR, EMB_LR, WD = 1e-4, 1e-2, 0.1


def _flash_attn_shim() -> types.ModuleType:
    mod = types.ModuleType("flash_attn")

    def flash_attn_func(q, k, v, causal=False, **_):
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
        return o.transpose(1, 2)
    mod.flash_attn_func = flash_attn_func
    return mod


class RefURM:
    """The URM reference's modules, imported from a checkout (see the module docstring)."""

    label = "URM reference code"

    def __init__(self, directory: str):
        d = Path(directory).resolve()
        if not (d / "models" / "urm" / "urm.py").is_file():
            sys.exit(f"--reference {directory}: not a URM checkout (no models/urm/urm.py)")
        sys.modules.setdefault("flash_attn", _flash_attn_shim())
        torch._dynamo.config.disable = True  # the reference's @torch.compile on msign: eager (see the docstring)
        sys.path.insert(0, str(d))
        try:
            self.urm = importlib.import_module("models.urm.urm")
            self.losses = importlib.import_module("models.losses")
            self.sparse = importlib.import_module("models.sparse_embedding")
            self.muon = importlib.import_module("models.muon")
        except ModuleNotFoundError as e:
            sys.exit(f"--reference {directory}: the reference code needs the package {e.name!r}; install it into "
                     "this venv for the benchmark only (.venv/bin/pip install pydantic einops)")
        self.original_rms_norm = self.urm.rms_norm
        commit = subprocess.run(["git", "-C", str(d), "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        self.commit = commit or "unknown: DIR is not a git work tree"
        self.source = f"{d} (commit {self.commit})"

    def set_precision(self, dtype: torch.dtype) -> None:
        """float64: the reference's float32-only rms_norm keeps the input's dtype instead; otherwise its own."""
        if dtype == torch.float64:
            def rms_norm(hidden_states, variance_epsilon):
                var = hidden_states.square().mean(-1, keepdim=True)
                return hidden_states * torch.rsqrt(var + variance_epsilon)
            self.urm.rms_norm = rms_norm
        else:
            self.urm.rms_norm = self.original_rms_norm

    def config(self, cfg: TRMConfig) -> dict:
        return dict(batch_size=cfg.batch_size, seq_len=cfg.seq_len, puzzle_emb_ndim=cfg.puzzle_emb_ndim,
                    num_puzzle_identifiers=cfg.num_puzzle_identifiers, vocab_size=cfg.vocab_size,
                    num_layers=cfg.L_layers, hidden_size=cfg.hidden_size, expansion=cfg.expansion,
                    num_heads=cfg.num_heads, pos_encodings=cfg.pos_encodings, rms_norm_eps=cfg.rms_norm_eps,
                    rope_theta=cfg.rope_theta, loops=cfg.halt_max_steps, L_cycles=cfg.L_cycles,
                    H_cycles=cfg.H_cycles, forward_dtype=cfg.forward_dtype, causal=False)

    def bare(self, cfg: TRMConfig):
        return self.losses.ACTLossHead(self.urm.URM(self.config(cfg)), loss_type="stablemax_cross_entropy")

    def build(self, cfg: TRMConfig, ours):
        """The reference model with our weights. Every floating tensor first takes the model's dtype in place (its
        bf16 conv weights included; `.data` keeps leaves leaves), then our state dict loads strictly."""
        head = self.bare(cfg)
        dtype = getattr(torch, cfg.forward_dtype)
        if dtype == torch.float64:
            for t in list(head.parameters()) + list(head.buffers()):
                if t.is_floating_point():
                    t.data = t.data.to(dtype)
        head.load_state_dict(ours.state_dict(), strict=True)
        return head

    def train_step_fn(self, head, batch: dict[str, torch.Tensor]):
        """pretrain.py's train_batch with its Adam-atan2 optimizers, minus device moves and the all-reduce."""
        return bm.reference_train_step(self.sparse, head, batch)

    def ref_muon(self, head):
        """pretrain.py's use_muon grouping of the reference's Muon."""
        params = list(head.parameters())
        return self.muon.Muon([
            {"params": [p for p in params if p.ndim == 2], "use_muon": True, "lr": 1e-4},
            {"params": [p for p in params if p.ndim != 2], "use_muon": False, "lr": 1e-4, "weight_decay": 0.1,
             "adamw_betas": (0.9, 0.95), "adamw_eps": 1e-8}])

    def rollout(self, head, batch):
        return bm.RefRollout(head, batch)


def preset_config(name: str, **shape) -> TRMConfig:
    arch = dict(load_preset(name)["arch"])
    kw = dict(seq_len=900, vocab_size=12, num_puzzle_identifiers=8, batch_size=8)
    kw.update(shape)
    arch.setdefault("puzzle_emb_ndim", arch["hidden_size"])
    return TRMConfig(**{**arch, **kw})


def build_ours(cfg: TRMConfig):
    torch.manual_seed(0)
    head = build_model(cfg)
    with torch.no_grad():  # a non-zero table so the puzzle slot carries signal; a Q head that reads the state
        head.model.inner.puzzle_emb.weights.normal_(0, 0.1)  # (its init, weight 0 and bias -5, makes Q constant)
        head.model.inner.q_head.weight.normal_(0, 0.05)
        head.model.inner.q_head.bias.zero_()
    if cfg.forward_dtype == "float64":
        head.double()
    return head


# ---------------------------------------------------------------------------------------------------------------
# 1. names, shapes, counts, optimizer groups


def check_structure(ref: RefURM) -> list[str]:
    lines = []
    for preset in ("urm-arc-agi-1", "urm-arc-agi-2"):
        cfg = preset_config(preset, forward_dtype="float32")
        with torch.device("meta"):
            ours, theirs = build_model(cfg), ref.bare(cfg)
        po = [(n, tuple(p.shape)) for n, p in ours.named_parameters()]
        pt = [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
        so = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        st = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        count_o, count_t = sum(math.prod(s) for _, s in po), sum(math.prod(s) for _, s in pt)
        lines.append(f"{preset} (seq 900, vocab 12): parameters ours {count_o:,} / reference {count_t:,}; names, "
                     f"order and shapes {'EQUAL' if po == pt else 'DIFFER'} ({len(po)} tensors); persistent state "
                     f"dict {'EQUAL' if so == st else 'DIFFERS'} ({len(so)} keys)")
        if preset == "urm-arc-agi-2":
            names = {id(p): n for n, p in ours.named_parameters()}
            groups_o = [sorted(names[id(p)] for p in g["params"]) for g in MuonAdamW.for_parameters(
                ours.parameters()).param_groups]
            tnames = {id(p): n for n, p in theirs.named_parameters()}
            groups_t = [sorted(tnames[id(p)] for p in g["params"]) for g in ref.ref_muon(theirs).param_groups]
            lines.append(f"{preset} optimizer groups: Muon {len(groups_o[0])} / AdamW {len(groups_o[1])} tensors, "
                         f"{'EQUAL' if groups_o == groups_t else 'DIFFER'} to pretrain.py's use_muon grouping "
                         f"(AdamW: {', '.join(n.split('inner.')[-1] for n in groups_o[1][:3])}, ...)")
    return lines


# ---------------------------------------------------------------------------------------------------------------
# 2. values: one ACT step, gradients, an optimizer step


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-300))


def check_values(ref: RefURM, cfg: TRMConfig) -> list[str]:
    dtype = getattr(torch, cfg.forward_dtype)
    ref.set_precision(dtype)
    try:
        ours = build_ours(cfg)
        theirs = ref.build(cfg, ours)
        batch = bm.make_batch(cfg)
        ours.train(), theirs.train()
        carry_o, carry_t = ours.initial_carry(batch), theirs.initial_carry(batch)
        out = []
        for step in (1, 2):
            torch.manual_seed(100 + step)
            carry_o, loss_o, _, o, _ = ours(carry_o, batch, return_keys=("logits", "q_halt_logits",
                                                                        "q_continue_logits"))
            torch.manual_seed(100 + step)
            carry_t, loss_t, _, t, _ = theirs(carry=carry_t, batch=batch,
                                              return_keys=["logits", "q_halt_logits", "q_continue_logits"])
            diffs = {k: float((o[k].double() - t[k].double()).abs().max()) for k in o}
            diffs["loss"] = float((loss_o.detach() - loss_t.detach()).abs())
            diffs["carry"] = float((carry_o.inner_carry.hidden.double()
                                    - carry_t.current_hidden.double()).abs().max())
            same_halt = torch.equal(carry_o.halted, carry_t.halted) and torch.equal(carry_o.steps, carry_t.steps)
            out.append(f"  ACT step {step} ({'fresh carry' if step == 1 else 'carried state'}): max |diff| logits "
                       f"{diffs['logits']:.1e}, q_halt {diffs['q_halt_logits']:.1e}, q_continue "
                       f"{diffs['q_continue_logits']:.1e} (fp32 on both sides), loss {diffs['loss']:.1e} "
                       f"(loss {float(loss_t.detach()):.6f}), new carry {diffs['carry']:.1e}; halted/steps "
                       f"{'equal' if same_halt else 'DIFFER'}")
        # gradients of the second step's loss (the step of a training run), scaled as train_batch scales them
        B = cfg.batch_size
        (loss_o / B).backward()
        (loss_t / B).backward()
        grads = {n: _max_rel(p.grad, theirs.get_parameter(n).grad) for n, p in ours.named_parameters()}
        worst = max(grads, key=grads.get)
        leaf_o = ours.model.inner.puzzle_emb.local_weights[-1].grad
        leaf_t = theirs.model.inner.puzzle_emb.local_weights.grad
        out.append(f"  gradients (truncated backprop, {len(grads)} parameters): max relative diff "
                   f"{grads[worst]:.1e} ({worst.split('inner.')[-1]}); puzzle-row leaf {_max_rel(leaf_o, leaf_t):.1e}")
        # one optimizer step: the reference's Muon (pretrain.py's grouping) against ours, same gradients
        opt_o = MuonAdamW.for_parameters(ours.parameters(), weight_decay=WD, adamw_betas=(0.9, 0.95))
        opt_t = ref.ref_muon(theirs)
        for opt in (opt_o, opt_t):
            for g in opt.param_groups:
                g["lr"] = 1e-3
            opt.step()
        w = {n: float((p.detach().double() - theirs.get_parameter(n).detach().double()).abs().max())
             for n, p in ours.named_parameters()}
        moved = max(float((p.detach() - q.detach()).abs().max()) for p, q in
                    zip(ours.parameters(), build_ours(cfg).parameters()))
        worst = max(w, key=w.get)
        out.append(f"  after one Muon + AdamW step (lr 1e-3): max |weight diff| {w[worst]:.1e} "
                   f"({worst.split('inner.')[-1]}); largest weight change of the step {moved:.1e}")
        return out
    finally:
        ref.set_precision(torch.float32)


def check_export(ref: RefURM, cfg: TRMConfig) -> list[str]:
    """Our weights through `export-checkpoint`, loaded by the reference as its pretrain.py loads a checkpoint
    (load_state_dict(strict, assign=True); the `_orig_mod.` prefix its compiled model has is stripped, since the
    model here is not compiled): eval-mode logits and Q-logits of two ACT steps against ours."""
    ref.set_precision(torch.float32)
    ours = build_ours(cfg).eval()
    with tempfile.TemporaryDirectory() as d:
        config = {"model": dataclasses.asdict(cfg), "train": {}, "data": {"path": d}}
        ck = checkpoint.save(Path(d) / "run", 0, model_state=ours.state_dict(), ema_state=None, train_state=None,
                             config=config)
        export_checkpoint(ck, Path(d) / "exported")
        sd = torch.load(Path(d) / "exported" / "checkpoint", weights_only=True)
    theirs = ref.bare(cfg).eval()
    theirs.load_state_dict({k[len(PREFIX):]: v for k, v in sd.items()}, strict=True, assign=True)
    batch = bm.make_batch(cfg, seed=3)
    with torch.inference_mode():
        co, ct = ours.initial_carry(batch), theirs.initial_carry(batch)
        for _ in range(2):
            co, _, _, o, _ = ours(co, batch, return_keys=("logits", "q_halt_logits"))
            ct, _, _, t, _ = theirs(carry=ct, batch=batch, return_keys=["logits", "q_halt_logits"])
    dl = float((o["logits"] - t["logits"]).abs().max())
    dq = float((o["q_halt_logits"] - t["q_halt_logits"]).abs().max())
    return [f"  exported checkpoint loaded by the reference ({len(sd)} tensors, strict), eval mode, 2 ACT steps, "
            f"float32: max |diff| logits {dl:.1e} (max |logit| {float(t['logits'].abs().max()):.1f}), q_halt {dq:.1e}"]


def value_configs() -> list[tuple[str, TRMConfig]]:
    """The presets' architecture (width 512, 8 heads, 4 layers, H2 L6) on 10x10 grids (seq 100), batch 4, and a
    small one; float64 and, for the small one, float32 too."""
    arc = preset_config("urm-arc-agi-2", seq_len=100, batch_size=4, forward_dtype="float64")
    small = preset_config("urm-tiny-cpu", seq_len=30, batch_size=4, forward_dtype="float64", hidden_size=64,
                          num_heads=4, H_cycles=2, L_cycles=3)
    return [("preset architecture, seq 100, batch 4, float64", arc),
            ("small (h64, 4 heads, 2 layers, H2 L3), seq 30, batch 4, float64", small),
            ("small, float32 (reference unmodified: its rms_norm in fp32, its conv in bf16)",
             dataclasses.replace(small, forward_dtype="float32"))]


# ---------------------------------------------------------------------------------------------------------------
# 3. timings


def timing_configs() -> dict[str, TRMConfig]:
    return {"s": preset_config("urm-tiny-cpu", seq_len=100, batch_size=8, forward_dtype="float32", hidden_size=128,
                               num_heads=4, L_layers=4, H_cycles=2, L_cycles=6, expansion=4.0),
            "p": preset_config("urm-arc-agi-2", seq_len=100, batch_size=4, forward_dtype="float32")}


def run(args, emit_head: list[str]) -> str:
    ref = RefURM(args.reference)
    lines = emit_head + [f"other side: {ref.source}", ""]
    print("\n".join(lines), flush=True)

    def emit(extra: list[str]) -> None:
        lines.extend(extra)
        print("\n".join(extra), flush=True)
        if args.out:
            Path(args.out).write_text("\n".join(lines) + "\n")
    emit(["## 1. structure"] + check_structure(ref) + [""])
    emit(["## 2. values (same weights, batch and carry; training mode)"])
    for label, cfg in value_configs():
        emit([f"{label}:"] + check_values(ref, cfg))
    small32 = dataclasses.replace(value_configs()[1][1], forward_dtype="float32")
    emit(["small, float32, through export-checkpoint:"] + check_export(ref, small32))
    if args.parity_only:
        return "\n".join(lines)
    emit(["", "## 3. CPU timings, float32, paired (other/ours per pair)",
          "(s): h128, 4 heads, 4 layers, H2 L6, 16 loops, seq 100 (+1), batch 8; (p): the presets' architecture "
          "(h512, 8 heads, 4 layers, H2 L6, 16 loops), seq 100 (+1), batch 4", ""])
    rows = []
    for name in (args.configs.split(",") if args.configs else ["s", "p"]):
        cfg = timing_configs()[name]
        ours = build_ours(cfg)
        theirs = ref.build(cfg, ours)
        t_ours, t_other = bm.time_train(cfg, ref, ours, theirs, args.train_reps or 3)
        ours = build_ours(cfg)
        theirs = ref.build(cfg, ours)
        steps = args.rollout_steps
        per_step, same, qdiff = bm.time_rollouts(cfg, ref, ours, theirs, args.rollouts or 1, steps)
        n = args.rollouts or 1
        r_o = [sum(per_step[0][i * steps:(i + 1) * steps]) for i in range(n)]
        r_t = [sum(per_step[1][i * steps:(i + 1) * steps]) for i in range(n)]
        part = "" if steps == 16 else f" ({steps} of 16 loops)"
        rows.append(f"| ({name}) | {cfg.batch_size} | {statistics.median(t_ours):.2f} s | "
                    f"{statistics.median(t_other):.2f} s | {bm.ratio_summary(t_ours, t_other)} | "
                    f"{statistics.median(r_o):.2f} s{part} | {statistics.median(r_t):.2f} s{part} | "
                    f"{bm.ratio_summary(per_step[0], per_step[1])} | {sum(r_t) / sum(r_o):.2f}x | "
                    f"{'yes' if same else 'NO'} ({qdiff:.1e}) |")
        emit(["| config | batch | train step: ours | reference | ref/ours median (min-max, n) | rollout: ours | "
              "reference | ref/ours per loop median (min-max, n) | ref/ours total | same preds (max abs q diff) |",
              "|---|---|---|---|---|---|---|---|---|---|"] if len(rows) == 1 else [])
        emit([rows[-1]])
    return "\n".join(lines)
