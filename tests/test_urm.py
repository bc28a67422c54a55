"""URM (arcsolver/model/urm.py): its maths against a plain statement in this file, truncated backpropagation, the
convolutional SwiGLU, the rollout, the model-field checks, a Muon run killed with SIGKILL and resumed bit-exactly
(every tensor, optimizer state included), and a URM checkpoint through predict --vote and finetune.
Parity with the URM reference code itself: benchmarks/bench_model.py --reference DIR --arch urm (not needed here)."""
import dataclasses
import math
import sys

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from safetensors.torch import load_file

from arcsolver.cli import main
from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.model import checkpoint
from arcsolver.model.build import build_model
from arcsolver.model.checks import check_arch_relations
from arcsolver.model.layers import ConvSwiGLU, swiglu_width
from arcsolver.model.memory_model import parameter_count
from arcsolver.model.trm import TRMConfig
from arcsolver.model.urm import URM
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json
from arcsolver.training.config import build_config
from arcsolver.training.train import train

from conftest import BUNDLED, sigkill_at_first_checkpoint

PY = sys.executable


def tiny(**kw) -> TRMConfig:
    base = dict(name="urm", batch_size=3, seq_len=10, vocab_size=7, num_puzzle_identifiers=5, hidden_size=16,
                num_heads=2, expansion=2.0, L_layers=2, H_cycles=2, L_cycles=2, puzzle_emb_ndim=16, puzzle_emb_len=0,
                halt_max_steps=3, forward_dtype="float64")
    return TRMConfig(**{**base, **kw})


def model(cfg: TRMConfig, seed: int = 0) -> URM:
    torch.manual_seed(seed)
    m = build_model(cfg).model
    with torch.no_grad():  # a non-zero puzzle table and a Q head that reads the state (both constant at init)
        m.inner.puzzle_emb.weights.normal_(0, 0.5)
        m.inner.q_head.weight.normal_(0, 0.5)
    return m.double() if cfg.forward_dtype == "float64" else m


def batch(cfg: TRMConfig, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    B = cfg.batch_size
    return {"inputs": torch.randint(0, cfg.vocab_size, (B, cfg.seq_len), generator=g, dtype=torch.int32),
            "labels": torch.randint(0, cfg.vocab_size, (B, cfg.seq_len), generator=g),
            "puzzle_identifiers": torch.randint(0, cfg.num_puzzle_identifiers, (B,), generator=g, dtype=torch.int32)}


def test_state_dict_names_are_the_reference_urm_and_the_count_is_the_memory_models():
    cfg = tiny(forward_dtype="float32")
    head = build_model(cfg)
    per_layer = ["self_attn.qkv_proj.weight", "self_attn.o_proj.weight", "mlp.gate_up_proj.weight",
                 "mlp.dwconv.weight", "mlp.dwconv.bias", "mlp.down_proj.weight"]
    want = ["init_hidden", "embed_tokens.embedding_weight", "lm_head.weight", "q_head.weight", "q_head.bias",
            "puzzle_emb.weights"] + [f"layers.{i}.{n}" for i in range(cfg.L_layers) for n in per_layer]
    assert list(head.state_dict()) == [f"model.inner.{n}" for n in want]
    I = swiglu_width(16, 2.0)
    assert head.state_dict()["model.inner.layers.0.mlp.dwconv.weight"].shape == (I, 1, 2)
    assert head.model.inner.prefix == 1  # ceil(puzzle_emb_ndim / hidden_size), as the reference
    assert sum(p.numel() for p in head.parameters()) == parameter_count(cfg)


def test_conv_swiglu_is_a_depthwise_kernel_2_convolution_after_the_gate():
    torch.manual_seed(0)
    m = ConvSwiGLU(8, 2.0).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    gate, up = F.linear(x, m.gate_up_proj.weight).chunk(2, dim=-1)
    a = (F.silu(gate) * up).transpose(1, 2)
    c = F.conv1d(a, m.dwconv.weight, m.dwconv.bias, padding=1, groups=a.shape[1])[..., :5]
    want = F.linear(F.silu(c.transpose(1, 2)), m.down_proj.weight)
    assert torch.allclose(m(x), want, atol=1e-13, rtol=0)
    # the sequence axis is mixed (position t reads t-1), the batch axis is not
    y = m(x).detach()
    x2 = x.detach().clone()
    x2[1, 2] += 1.0
    d = (m(x2).detach() - y).abs().amax(-1)
    assert d[0].max() == 0 and d[1, :2].max() == 0 and d[1, 2] > 0 and d[1, 3] > 0 and d[1, 4] == 0
    assert torch.autograd.gradcheck(lambda t: m(t), (x[:1, :3].detach().requires_grad_(),), fast_mode=True)


def plain_urm_step(m: URM, hidden: torch.Tensor, b: dict, cycles: int):
    """`cycles` x L_cycles loops of the reference URM, written out plainly (float64): h <- h + x; for each block:
    h = rms(h + attn(h)), h = rms(h + down(silu(dwconv(silu(gate) * up)))); logits and Q from the last h."""
    inner, cfg = m.inner, m.config
    x = inner.input_embeddings(b["inputs"], b["puzzle_identifiers"])
    cos, sin = (t.to(x.dtype) for t in inner.rotary_emb())
    H, D = cfg.num_heads, cfg.hidden_size
    Dh = D // H

    def rms(t):
        return t * torch.rsqrt(t.square().mean(-1, keepdim=True) + cfg.rms_norm_eps)

    def rope(t):  # t [B, S, H, Dh]
        rot = torch.cat((-t[..., Dh // 2:], t[..., :Dh // 2]), dim=-1)
        return t * cos[:, None] + rot * sin[:, None]

    def block(blk, h):
        B, S, _ = h.shape
        qkv = F.linear(h, blk.self_attn.qkv_proj.weight).view(B, S, 3 * H, Dh)
        q, k, v = rope(qkv[:, :, :H]), rope(qkv[:, :, H:2 * H]), qkv[:, :, 2 * H:]
        w = torch.softmax(torch.einsum("bshd,bthd->bhst", q, k) / math.sqrt(Dh), dim=-1)
        att = torch.einsum("bhst,bthd->bshd", w, v).reshape(B, S, D)
        h = rms(h + F.linear(att, blk.self_attn.o_proj.weight))
        gate, up = F.linear(h, blk.mlp.gate_up_proj.weight).chunk(2, dim=-1)
        a = (F.silu(gate) * up).transpose(1, 2)
        c = F.conv1d(a, blk.mlp.dwconv.weight, blk.mlp.dwconv.bias, padding=1, groups=a.shape[1])[..., :S]
        return rms(h + F.linear(F.silu(c.transpose(1, 2)), blk.mlp.down_proj.weight))
    h = hidden
    for _ in range(cycles * cfg.L_cycles):
        h = h + x
        for blk in inner.layers:
            h = block(blk, h)
    q = F.linear(h[:, 0], inner.q_head.weight, inner.q_head.bias)
    return h, F.linear(h, inner.lm_head.weight)[:, inner.prefix:], q


def test_one_act_step_equals_the_plain_statement_and_gradients_reach_the_last_cycle_only():
    cfg = tiny(H_cycles=3)
    m = model(cfg)
    b = batch(cfg)
    start = m.inner.reset_carry(torch.ones(3, dtype=torch.bool), m.inner.empty_carry(3))
    hidden = start.hidden + 0.3 * torch.randn_like(start.hidden)  # a carried state, not the initial one
    carry, logits, (q_halt, q_cont) = m.inner(dataclasses.replace(start, hidden=hidden), b)
    h, want_logits, want_q = plain_urm_step(m, hidden, b, cfg.H_cycles)
    assert torch.allclose(logits, want_logits, atol=1e-12, rtol=0)
    assert torch.allclose(carry.hidden, h, atol=1e-12, rtol=0) and not carry.hidden.requires_grad
    assert torch.allclose(q_halt, want_q[:, 0].float()) and torch.allclose(q_cont, want_q[:, 1].float())
    # truncated backprop: the gradient is the one of the last cycle run from the state the first two left
    w = torch.randn_like(logits)
    (logits * w).sum().backward()
    params = [p for n, p in m.named_parameters() if "q_head" not in n]  # the logits do not read the Q head
    ours = [p.grad.clone() for p in params]
    m.zero_grad()
    with torch.no_grad():
        before_last, _, _ = plain_urm_step(m, hidden, b, cfg.H_cycles - 1)
    _, last_logits, _ = plain_urm_step(m, before_last, b, 1)
    (last_logits * w).sum().backward()
    for g, p in zip(ours, params):
        assert torch.allclose(g, p.grad, atol=1e-10, rtol=1e-8)
    # ... and the test can tell: backprop through all three cycles gives another gradient
    m.zero_grad()
    _, all_logits, _ = plain_urm_step(m, hidden, b, cfg.H_cycles)
    (all_logits * w).sum().backward()
    assert not torch.allclose(ours[-1], params[-1].grad, atol=1e-6, rtol=1e-4)


def test_autograd_records_the_last_cycle_only_and_steps_are_deterministic():
    cfg = tiny(H_cycles=3, L_cycles=2, forward_dtype="float32")
    m = model(cfg)
    calls = {"grad": 0, "nograd": 0}

    def hook(mod, inp, out):
        calls["grad" if out.requires_grad else "nograd"] += 1
    m.inner.layers[0].register_forward_hook(hook)
    b = batch(cfg)
    torch.manual_seed(5)
    carry, out = m(m.initial_carry(b), b)
    assert calls == {"grad": cfg.L_cycles, "nograd": (cfg.H_cycles - 1) * cfg.L_cycles}
    torch.manual_seed(5)
    carry2, out2 = model(cfg)(m.initial_carry(b), b)  # same seed, same weights, same draws: the same step
    assert torch.equal(out["logits"], out2["logits"]) and torch.equal(carry.halted, carry2.halted)
    assert torch.equal(carry.inner_carry.hidden, carry2.inner_carry.hidden)


def test_rollout_equals_the_act_wrapper_in_eval_mode():
    from arcsolver.inference.rollout import rollout
    cfg = tiny(halt_max_steps=3, forward_dtype="float32")
    m = model(cfg).eval()
    b = batch(cfg)
    with torch.inference_mode():
        carry = m.initial_carry(b)
        for _ in range(3):
            carry, out = m(carry, b)
    assert bool(carry.halted.all())
    preds, q = rollout(m, b)
    assert torch.equal(preds, out["logits"].argmax(-1)) and torch.equal(q, out["q_halt_logits"])
    preds5, q5 = rollout(m, b, steps=5)  # extra loops continue the recursion
    assert not torch.equal(q5, q)


@pytest.mark.parametrize("field,value", [("mlp_t", True), ("pos_encodings", "none"), ("no_ACT_continue", False)])
def test_urm_refuses_what_the_reference_urm_is_not(field, value):
    with pytest.raises(InputError) as e:
        check_arch_relations({"name": "urm", field: value}, file="preset.toml")
    assert e.value.field == f"arch.{field}"
    check_arch_relations({"name": "trm", field: value} if field != "pos_encodings" else {"name": "trm"})


# ---------------------------------------------------------------------------------------------------------------
# runs: SIGKILL + resume with Muon, and a URM checkpoint through predict and finetune


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("urm") / "data"
    build(d, [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=4, seed=1, canvas=8)
    return d


SETS = ["optimizer=muon", "checkpoint_interval_steps=3", "log_every=1", "eval_max_batches=1"]


def everything(run) -> dict[str, torch.Tensor]:
    """Every tensor a checkpoint holds: weights, EMA, and the training state (optimizer state included)."""
    ck = checkpoint.resolve(run)
    out = {f"model/{k}": v for k, v in load_file(str(ck / "model.safetensors")).items()}
    out.update({f"ema/{k}": v for k, v in load_file(str(ck / "ema.safetensors")).items()})

    def walk(prefix, obj):
        if isinstance(obj, torch.Tensor):
            out[prefix] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(f"{prefix}/{i}", v)
        elif dataclasses.is_dataclass(obj):
            walk(prefix, dataclasses.asdict(obj))
        elif isinstance(obj, (int, float)):
            out[prefix] = torch.tensor(obj)
    st = checkpoint.load_train_state(ck)
    walk("state", {k: st[k] for k in ("step", "opt", "emb_opt", "ema", "carry")})
    return out


def test_muon_run_killed_and_resumed_equals_the_straight_run_in_every_tensor(tmp_path, data):
    steps = 6
    straight = train(build_config("urm-tiny-cpu", SETS, data=str(data), out=str(tmp_path / "straight"),
                                  max_steps=steps), cpu=True, quiet=True, final_eval=False)
    killed = tmp_path / "killed"
    at = sigkill_at_first_checkpoint([PY, "-m", "arcsolver.cli", "train", "--preset", "urm-tiny-cpu", "--data",
                                      str(data), "--out", str(killed), "--steps", str(steps), "--cpu",
                                      *sum((["--set", s] for s in SETS), [])], killed)
    assert at != f"step_{steps:07d}", "finished before it could be killed"
    train(build_config("urm-tiny-cpu", SETS, data=str(data), out=str(killed), max_steps=steps), resume=str(killed),
          cpu=True, quiet=True, final_eval=False)
    a, b = everything(straight.checkpoint), everything(killed)
    assert a.keys() == b.keys() and any("muon_buffer" in k for k in a) and any("adamw_exp_avg" in k for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert read_json(checkpoint.resolve(killed) / "config.json")["train"]["optimizer"] == "muon"
    # resuming under another optimizer is refused before anything is written
    with pytest.raises(InputError) as e:
        train(build_config("urm-tiny-cpu", ["optimizer=adam_atan2"], data=str(data), out=str(killed),
                           max_steps=steps + 2), resume=str(killed), cpu=True, quiet=True)
    assert e.value.field == "train.optimizer"


@pytest.fixture(scope="module")
def urm_run(tmp_path_factory, data):
    """A URM checkpoint trained with Muon for 2 steps (no final evaluation)."""
    out = tmp_path_factory.mktemp("urm-run") / "run"
    cfg = build_config("urm-tiny-cpu", ["max_steps=2", "optimizer=muon"], data=str(data), out=str(out))
    return train(cfg, cpu=True, quiet=True, final_eval=False).checkpoint


def test_a_urm_checkpoint_finetunes_and_predicts_with_voting(tmp_path, urm_run):
    r = CliRunner().invoke(main, ["finetune", "--from", str(urm_run), "--tasks", str(BUNDLED), "--out",
                                  str(tmp_path / "ft"), "--embed-steps", "1", "--full-steps", "1", "--num-aug", "2",
                                  "--time-budget", "5m", "--predict", "--cpu"])
    assert r.exit_code == 0, r.output
    sub = read_json(tmp_path / "ft" / "submission.json")  # finetune --predict: predict --vote on the new weights
    assert len(sub) == 12 and all(len(v) >= 1 and "attempt_1" in v[0] for v in sub.values())
    cfg = read_json(checkpoint.resolve(tmp_path / "ft" / "full") / "config.json")
    assert cfg["model"]["name"] == "urm" and cfg["train"]["optimizer"] == "muon"  # carried over


def test_predict_extra_loops_continue_the_recursion(tmp_path, urm_run):
    def predict(name, *args):
        r = CliRunner().invoke(main, ["predict", "--checkpoint", str(urm_run), "--max-versions", "2", "--out",
                                      str(tmp_path / name), *args])
        return r, (tmp_path / name)
    r, plain = predict("plain.json")
    assert r.exit_code == 0, r.output
    r, extra = predict("extra.json", "--extra-loops", "3")
    assert r.exit_code == 0, r.output
    r, steps = predict("steps.json", "--steps", "7")  # halt_max_steps 4 + 3
    assert r.exit_code == 0, r.output
    cands = {n: read_json(tmp_path / n.replace(".json", ".candidates.json")) for n in ("plain.json", "extra.json",
                                                                                       "steps.json")}
    assert cands["extra.json"] == cands["steps.json"] and cands["extra.json"] != cands["plain.json"]
    r, bad = predict("bad.json", "--extra-loops", "-1")
    assert r.exit_code == 2 and "--extra-loops" in r.output and not bad.exists()


def test_export_to_the_reference_format_and_import_back_gives_identical_logits(tmp_path, data, urm_run):
    from arcsolver.data.loader import PuzzleLoader
    from arcsolver.inference.predict import load_model
    r = CliRunner().invoke(main, ["export-checkpoint", str(urm_run), "--out", str(tmp_path / "ref")])
    assert r.exit_code == 0, r.output
    sd = torch.load(tmp_path / "ref" / "checkpoint", weights_only=True)
    assert "_orig_mod.model.inner.init_hidden" in sd and "_orig_mod.model.inner.layers.1.mlp.dwconv.bias" in sd
    arch = read_json(tmp_path / "ref" / "arch.json")
    assert (arch["loops"], arch["num_layers"], arch["H_cycles"], arch["L_cycles"]) == (4, 2, 2, 2)
    r = CliRunner().invoke(main, ["import-checkpoint", str(tmp_path / "ref" / "checkpoint"), "--identifiers",
                                  str(tmp_path / "ref" / "identifiers.json"), "--tasks", str(BUNDLED),
                                  "--eval-tasks", str(BUNDLED), "--out", str(tmp_path / "imp"), "--seq-len", "64",
                                  "--num-heads", "2", "--H-cycles", "2", "--L-cycles", "2"])
    assert r.exit_code == 0, r.output
    assert read_json(checkpoint.resolve(tmp_path / "imp" / "run") / "config.json")["model"]["name"] == "urm"

    def logits(ck, d):
        m, _ = load_model(ck, torch.device("cpu"))
        b = next(PuzzleLoader(str(d), "test", global_batch_size=8).test_batches())
        with torch.no_grad():
            carry, out = m(m.initial_carry(b), b)
            carry, out = m(carry, b)
        return out["logits"]
    assert torch.equal(logits(urm_run, data), logits(tmp_path / "imp" / "run", tmp_path / "imp" / "data"))


def test_conv_swiglu_without_autograd_gives_the_same_values():
    torch.manual_seed(0)
    m = ConvSwiGLU(8, 2.0)
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        fast = m(x)
    assert torch.equal(fast, m(x.requires_grad_()).detach())


def test_memory_model_counts_urms_saved_activations():
    from test_microbatch import _saved_bytes
    from arcsolver.model.memory_model import activation_bytes_per_token
    cfg = tiny(batch_size=4, seq_len=60, vocab_size=12, num_heads=4, hidden_size=64, puzzle_emb_ndim=64, expansion=4.0,
               forward_dtype="float32")
    per_row = (_saved_bytes(cfg, 6) - _saved_bytes(cfg, 2)) / 4
    predicted = activation_bytes_per_token(cfg) * cfg.total_len
    assert abs(predicted - per_row) / per_row < 0.05, (predicted, per_row)
