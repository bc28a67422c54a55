"""The TRM model and its loss: shapes, parameter counts and names, equality with a plain restatement of the
reference's formulation, where gradients flow, ACT halting and exploration, stable-max loss and ACT metrics."""
import math

import pytest
import torch
import torch.nn.functional as F

from arcsolver.model import layers
from arcsolver.model.layers import (_AddRMSNorm, _SwiGLU, _SwiGLUTokenMajor, apply_rope, rotate_half, swiglu_width,
                              trunc_normal_)
from arcsolver.model.losses import ACTLossHead, log_stablemax, softmax_cross_entropy, stablemax_cross_entropy
from arcsolver.model.trm import TRM, InnerCarry, TRMConfig

VARIANTS = {"rope": dict(), "learned": dict(pos_encodings="learned"), "mlp_t": dict(mlp_t=True, pos_encodings="none")}


def tiny(**kw) -> TRMConfig:
    base = dict(batch_size=4, seq_len=16, vocab_size=12, hidden_size=32, num_heads=2, expansion=2.0, H_cycles=3,
                L_cycles=2, puzzle_emb_ndim=32, puzzle_emb_len=2, num_puzzle_identifiers=5, forward_dtype="float32",
                halt_max_steps=4)
    base.update(kw)
    return TRMConfig(**base)


def make_batch(cfg: TRMConfig, B: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"inputs": torch.randint(0, cfg.vocab_size, (B, cfg.seq_len), generator=g, dtype=torch.int32),
            "labels": torch.randint(1, cfg.vocab_size, (B, cfg.seq_len), generator=g).long(),
            "puzzle_identifiers": torch.randint(0, cfg.num_puzzle_identifiers, (B,), generator=g, dtype=torch.int32)}


def model(cfg: TRMConfig, seed: int = 0) -> TRM:
    torch.manual_seed(seed)
    m = TRM(cfg)
    with torch.no_grad():  # a non-zero puzzle table, so the prefix carries signal
        m.inner.puzzle_emb.weights.normal_()
    return m


# ---------------------------------------------------------------------------------------------------------------
# shapes, counts, names, init


def count_params(cfg: TRMConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in TRM(cfg).parameters())


def test_parameter_counts_match_the_reference():
    arc = TRMConfig(seq_len=900, vocab_size=12, hidden_size=512, num_heads=8, expansion=4, L_layers=2,
                    pos_encodings="rope", puzzle_emb_len=16, num_puzzle_identifiers=1000)
    sudoku = TRMConfig(seq_len=81, vocab_size=11, hidden_size=512, num_heads=8, expansion=4, L_layers=2, L_cycles=6,
                       mlp_t=True, pos_encodings="none", puzzle_emb_len=16, num_puzzle_identifiers=1)
    assert count_params(arc) == 6_829_058
    assert count_params(sudoku) == 5_028_866
    # the table is a buffer: excluded from the count whatever its size
    assert count_params(TRMConfig(seq_len=900, num_puzzle_identifiers=50_000)) == 6_829_058
    assert swiglu_width(512, 4) == 1536 and swiglu_width(97, 4) == 512 and swiglu_width(916, 4) == 2560


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_names_mirror_the_reference(variant):
    cfg = tiny(L_layers=2, **VARIANTS[variant])
    head = ACTLossHead(TRM(cfg))
    keys = set(head.state_dict())
    expected = {"model.inner." + k for k in ("embed_tokens.embedding_weight", "lm_head.weight", "q_head.weight",
                                             "q_head.bias", "H_init", "L_init", "puzzle_emb.weights")}
    for i in range(2):
        p = f"model.inner.L_level.layers.{i}."
        expected |= {p + "mlp.gate_up_proj.weight", p + "mlp.down_proj.weight"}
        if cfg.mlp_t:
            expected |= {p + "mlp_t.gate_up_proj.weight", p + "mlp_t.down_proj.weight"}
        else:
            expected |= {p + "self_attn.qkv_proj.weight", p + "self_attn.o_proj.weight"}
    if variant == "learned":
        expected.add("model.inner.embed_pos.embedding_weight")
    assert keys == expected  # rotary tables are not saved, as in the reference
    sd = head.state_dict()
    assert sd["model.inner.puzzle_emb.weights"].shape == (5, 32)
    assert not any(k.endswith("puzzle_emb.weights") for k, _ in head.named_parameters())
    if cfg.mlp_t:  # the token mixer is a SwiGLU of width seq_len + prefix
        assert sd["model.inner.L_level.layers.0.mlp_t.gate_up_proj.weight"].shape == (2 * 256, 18)


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_shapes_and_dtypes(variant):
    cfg = tiny(**VARIANTS[variant])
    m = model(cfg)
    b = make_batch(cfg)
    carry, out = m(m.initial_carry(b), b)
    assert out["logits"].shape == (4, cfg.seq_len, cfg.vocab_size) and out["logits"].dtype == torch.float32
    for k in ("q_halt_logits", "q_continue_logits"):
        assert out[k].shape == (4,) and out[k].dtype == torch.float32
    assert carry.inner_carry.z_H.shape == carry.inner_carry.z_L.shape == (4, cfg.seq_len + 2, 32)
    assert not carry.inner_carry.z_H.requires_grad and not carry.inner_carry.z_L.requires_grad
    assert carry.steps.dtype == torch.int32 and carry.halted.dtype == torch.bool
    assert out["logits"].requires_grad


def test_init_prefix_and_heads():
    cfg = tiny(puzzle_emb_len=3)
    m = TRM(cfg)
    assert torch.all(m.inner.q_head.weight == 0) and torch.all(m.inner.q_head.bias == -5)
    assert torch.all(m.inner.puzzle_emb.weights == 0)  # zero-initialised table
    with torch.no_grad():
        m.inner.puzzle_emb.weights[3] = torch.arange(32.0)
        m.inner.embed_tokens.embedding_weight.zero_()
    x = m.inner.input_embeddings(torch.zeros(1, 16, dtype=torch.int32), torch.tensor([3]))
    assert x.shape == (1, 19, 32)
    assert torch.allclose(x[0, 0], torch.arange(32.0) * math.sqrt(32))  # slot 0: the puzzle vector, scaled
    assert torch.all(x[0, 1:] == 0)  # slots 1..: zero registers (and the zeroed tokens)
    learned = TRM(tiny(pos_encodings="learned"))
    with torch.no_grad():
        learned.inner.embed_tokens.embedding_weight.fill_(1.0)
        learned.inner.embed_pos.embedding_weight.fill_(2.0)
    x = learned.inner.input_embeddings(torch.zeros(1, 16, dtype=torch.int32), torch.tensor([0]))
    assert torch.allclose(x[0, 2:], torch.full((16, 32), 3.0 * math.sqrt(32) / math.sqrt(2)), rtol=1e-6)
    assert torch.allclose(x[0, :2], torch.full((2, 32), 2.0 * math.sqrt(32) / math.sqrt(2)), rtol=1e-6)


def test_truncated_lecun_normal_init():
    torch.manual_seed(0)
    t = trunc_normal_(torch.empty(400_000), std=0.5)
    assert abs(float(t.std()) - 0.5) < 0.005  # std *after* truncation, as JAX
    bound = 2 * 0.5 / 0.8796256610342398
    assert float(t.abs().max()) <= bound + 1e-6 and float(t.abs().max()) > 0.99 * bound
    m = TRM(tiny(hidden_size=64, num_heads=2))
    w = m.inner.L_level.layers[0].mlp.down_proj.weight  # fan_in = inner width
    assert abs(float(w.detach().std()) * math.sqrt(w.shape[1]) - 1) < 0.05
    assert torch.all(trunc_normal_(torch.empty(3), std=0.0) == 0)
    assert not m.inner.H_init.requires_grad and "H_init" in dict(m.inner.named_buffers())


# ---------------------------------------------------------------------------------------------------------------
# the fused pieces and the whole step against a plain restatement of the reference's formulation


@pytest.mark.parametrize("token_major", [True, False])
def test_swiglu_function_gradcheck(token_major):
    torch.manual_seed(0)
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    K = 5 if token_major else 7
    w1 = torch.randn(2 * 4, K, dtype=torch.float64, requires_grad=True)
    w2 = torch.randn(K, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: _SwiGLU.apply(a, b, c, token_major), (x, w1, w2))
    xt = x if token_major else x.t()
    g, u = F.linear(xt, w1).chunk(2, -1)
    ref = F.linear(F.silu(g) * u, w2)
    assert torch.allclose(_SwiGLU.apply(x, w1, w2, token_major), ref if token_major else ref.t())
    if token_major:  # the wide-layer variant: same function, same gradients, and the no-grad path agrees
        assert torch.autograd.gradcheck(_SwiGLUTokenMajor.apply, (x, w1, w2))
        assert torch.allclose(_SwiGLUTokenMajor.apply(x, w1, w2), ref)
        with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
            mp.setattr(layers, "WIDE", 1)
            assert torch.allclose(layers.swiglu(x, w1, w2, True), ref)


@pytest.mark.parametrize("dim", [0, -1])
def test_add_rms_norm_function_gradcheck(dim):
    torch.manual_seed(0)
    h = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    o = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: _AddRMSNorm.apply(a, b, dim, 1e-5), (h, o))


def test_rope_equals_rotate_half_formula():
    cos, sin = torch.randn(10, 8), torch.randn(10, 8)
    cos, sin = cos[:, :4].repeat(1, 2), sin[:, :4].repeat(1, 2)  # the tables repeat their halves
    x = torch.randn(2, 10, 3, 8, requires_grad=True)
    ref = x * cos[:, None] + rotate_half(x) * sin[:, None]
    assert torch.allclose(apply_rope(x, cos, sin), ref, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(apply_rope(x, cos, sin), ref, atol=1e-6)


def _rms(x, eps):
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)


def _swiglu_ref(x, mod):
    g, u = F.linear(x, mod.gate_up_proj.weight).chunk(2, -1)
    return F.linear(F.silu(g) * u, mod.down_proj.weight)


# The recursion here stands again in benchmarks/bench_model.py (_restated_inner_forward). Both stay: this copy is
# the independent statement the model is checked against (a test must not import a benchmark); the benchmark times
# its own; a shared helper would let one bug hide in both.
def reference_inner(inner, carry: InnerCarry, batch):
    """The reference's recursion written plainly (batch-first, transposes in the mixer, autograd everywhere)."""
    cfg = inner.config
    eps = cfg.rms_norm_eps

    def block(blk, h):
        if cfg.mlp_t:
            t = h.transpose(1, 2)
            h = _rms(t + _swiglu_ref(t, blk.mlp_t), eps).transpose(1, 2)
        else:
            a = blk.self_attn
            B, S, _ = h.shape
            qkv = F.linear(h, a.qkv_proj.weight).view(B, S, 3 * a.num_heads, a.head_dim)
            q, k, v = qkv.split(a.num_heads, dim=2)
            if cfg.pos_encodings == "rope":
                cos, sin = inner.rotary_emb()
                q = q * cos[:, None] + rotate_half(q) * sin[:, None]
                k = k * cos[:, None] + rotate_half(k) * sin[:, None]
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            h = _rms(h + F.linear(o.transpose(1, 2).reshape(B, S, -1), a.o_proj.weight), eps)
        return _rms(h + _swiglu_ref(h, blk.mlp), eps)

    def net(h, inj):
        h = h + inj
        for blk in inner.L_level.layers:
            h = block(blk, h)
        return h
    x = inner.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
    z_H, z_L = carry.z_H, carry.z_L
    with torch.no_grad():
        for _ in range(cfg.H_cycles - 1):
            for _ in range(cfg.L_cycles):
                z_L = net(z_L, z_H + x)
            z_H = net(z_H, z_L)
    for _ in range(cfg.L_cycles):
        z_L = net(z_L, z_H + x)
    z_H = net(z_H, z_L)
    q = F.linear(z_H[:, 0], inner.q_head.weight, inner.q_head.bias)
    return z_H, z_L, F.linear(z_H, inner.lm_head.weight)[:, inner.prefix:], q


@pytest.mark.parametrize("variant", VARIANTS)
def test_inner_step_equals_the_reference_formulation(variant):
    """Values and gradients of our (fused, in-place, sequence-first) step equal the plain formulation's."""
    cfg = tiny(**VARIANTS[variant])
    m = model(cfg)
    inner = m.inner
    b = make_batch(cfg)
    carry = m.initial_carry(b)
    start = inner.reset_carry(carry.halted, carry.inner_carry)
    start = InnerCarry(start.z_H + 0.1 * torch.randn_like(start.z_H), start.z_L)  # rows differ
    new, logits, (qh, qc) = inner(start, b)
    w = torch.randn_like(logits)
    ((logits * w).sum() + qh.sum() - qc.sum()).backward()
    ours = {n: p.grad.clone() for n, p in inner.named_parameters()}
    inner.zero_grad()
    zH, zL, rlogits, rq = reference_inner(inner, start, b)
    ((rlogits * w).sum() + rq[:, 0].sum() - rq[:, 1].sum()).backward()
    assert torch.allclose(logits, rlogits, atol=1e-5, rtol=1e-5)
    assert torch.allclose(qh, rq[:, 0], atol=1e-5) and torch.allclose(qc, rq[:, 1], atol=1e-5)
    assert torch.allclose(new.z_H, zH, atol=1e-5) and torch.allclose(new.z_L, zL, atol=1e-5)
    for n, p in inner.named_parameters():
        assert torch.allclose(ours[n], p.grad, atol=1e-4, rtol=1e-4), n


# ---------------------------------------------------------------------------------------------------------------
# where gradients flow


def manual_grads(m: TRM, start: InnerCarry, b, w, mode: str) -> torch.Tensor:
    """Grad of lm_head and of the first block's down projection, with the recursion driven by hand:
    mode 'last' = no autograd for H_cycles-1 cycles then one cycle with it; 'all' = autograd through every cycle."""
    inner, cfg = m.inner, m.config
    inner.zero_grad()
    cs = inner.cos_sin()
    x = inner.input_embeddings(b["inputs"], b["puzzle_identifiers"])
    zH, zL = start.z_H, start.z_L
    if cfg.mlp_t:
        x, zH, zL = (t.transpose(0, 1).contiguous() for t in (x, zH, zL))
    with torch.set_grad_enabled(mode == "all"):
        for _ in range(cfg.H_cycles - 1):
            for _ in range(cfg.L_cycles):
                zL = inner.L_level(zL, zH + x, cs)
            zH = inner.L_level(zH, zL, cs)
    for _ in range(cfg.L_cycles):
        zL = inner.L_level(zL, zH + x, cs)
    zH = inner.L_level(zH, zL, cs)
    if cfg.mlp_t:
        zH = zH.transpose(0, 1)
    (inner.lm_head(zH[:, inner.prefix:]) * w).sum().backward()
    return torch.cat([inner.lm_head.weight.grad.flatten(),
                      inner.L_level.layers[0].mlp.down_proj.weight.grad.flatten()])


@pytest.mark.parametrize("variant", ["rope", "mlp_t"])
def test_gradient_flows_through_the_last_cycle_only(variant):
    cfg = tiny(H_cycles=3, L_cycles=2, **VARIANTS[variant])
    m = model(cfg)
    b = make_batch(cfg)
    carry = m.initial_carry(b)
    start = m.inner.reset_carry(carry.halted, carry.inner_carry)
    _, logits, _ = m.inner(start, b)
    w = torch.randn_like(logits)
    m.inner.zero_grad()
    (logits * w).sum().backward()
    ours = torch.cat([m.inner.lm_head.weight.grad.flatten(),
                      m.inner.L_level.layers[0].mlp.down_proj.weight.grad.flatten()])
    last = manual_grads(m, start, b, w, "last")
    full = manual_grads(m, start, b, w, "all")
    assert torch.allclose(ours, last, atol=1e-6, rtol=1e-5)
    # ... and the test can tell: backprop through every cycle gives a different gradient
    assert not torch.allclose(ours, full, atol=1e-4, rtol=1e-3)


def test_autograd_records_only_the_last_cycle():
    cfg = tiny(H_cycles=3, L_cycles=2)
    m = model(cfg)
    calls = {"grad": 0, "nograd": 0}

    def hook(mod, inp, out):
        calls["grad" if out.requires_grad else "nograd"] += 1
    m.inner.L_level.layers[0].register_forward_hook(hook)
    b = make_batch(cfg)
    m(m.initial_carry(b), b)
    assert calls == {"grad": cfg.L_cycles + 1, "nograd": (cfg.H_cycles - 1) * (cfg.L_cycles + 1)}


def test_no_gradient_between_supervision_steps():
    cfg = tiny()
    m = model(cfg)
    b = make_batch(cfg)
    carry, out1 = m(m.initial_carry(b), b)
    carry, out2 = m(carry, b)
    x = m.inner.embed_tokens.embedding_weight
    g2, = torch.autograd.grad(out2["logits"].sum(), x, retain_graph=True)
    # the second step's graph does not reach the first step's tensors
    assert out1["logits"].grad_fn is not None and not carry.inner_carry.z_H.requires_grad
    assert torch.isfinite(g2).all()


# ---------------------------------------------------------------------------------------------------------------
# ACT: halting, exploration, data replacement


def set_q(m: TRM, halt: float, cont: float = 0.0) -> None:
    with torch.no_grad():
        m.inner.q_head.bias.copy_(torch.tensor([halt, cont]))


def test_eval_always_runs_halt_max_steps():
    cfg = tiny(halt_max_steps=5)
    m = model(cfg).eval()
    set_q(m, 10.0)  # would halt at once in training
    b = make_batch(cfg)
    with torch.inference_mode():
        carry = m.initial_carry(b)
        for step in range(1, 6):
            carry, out = m(carry, b)
            assert torch.all(carry.steps == step)
            assert bool(carry.halted.all()) == (step == 5) and bool(carry.halted.any()) == (step == 5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_rollout_equals_the_act_wrapper_and_can_run_past_halt_max_steps(variant):
    """The faster rollout (x once, internal layout kept between steps, heads at the end only) gives bit-identical
    predictions and Q logits to the plain loop: the ACT wrapper in eval mode (the reference's evaluation loop) and
    the inner step repeated past halt_max_steps."""
    from arcsolver.inference.rollout import rollout
    cfg = tiny(halt_max_steps=3, **VARIANTS[variant])
    m = model(cfg).train()
    with torch.no_grad():
        m.inner.q_head.weight.normal_()  # (zero at init) so the halting logit tells the steps apart
    b = make_batch(cfg)
    with torch.inference_mode():
        m.eval()
        carry = m.initial_carry(b)
        for _ in range(3):
            carry, out = m(carry, b)
        c = m.inner.reset_carry(torch.ones(4, dtype=torch.bool), m.inner.empty_carry(4))
        for _ in range(7):
            c, logits7, (q7, _) = m.inner(c, b)
    m.train()
    preds, q = rollout(m, b)
    assert m.training  # restored
    assert torch.equal(preds, out["logits"].argmax(-1)) and torch.equal(q, out["q_halt_logits"])
    # 7 steps continue the recursion (the ACT wrapper alone would restart after 3 and return step 3's answer again)
    preds7, q7r = rollout(m, b, steps=7)
    assert torch.equal(preds7, logits7.argmax(-1)) and torch.equal(q7r, q7) and not torch.equal(q7r, q)


def test_training_halts_on_positive_q_halt_only():
    cfg = tiny(halt_max_steps=6, halt_exploration_prob=0.0)
    m = model(cfg).train()
    b = make_batch(cfg)
    set_q(m, 10.0)
    carry, _ = m(m.initial_carry(b), b)
    assert carry.halted.all() and torch.all(carry.steps == 1)
    set_q(m, -10.0)
    carry = m.initial_carry(b)
    for step in range(1, 7):
        carry, _ = m(carry, b)
        assert bool(carry.halted.any()) == (step == 6)  # only the step limit
    cfg2 = tiny(halt_max_steps=6, halt_exploration_prob=0.0, no_ACT_continue=False)
    m2 = model(cfg2).train()
    set_q(m2, -1.0, -2.0)  # q_halt > q_continue halts when Q-continue is in use
    carry, out = m2(m2.initial_carry(b), b)
    assert carry.halted.all() and out["target_q_continue"].shape == (4,)


def test_exploration_minimum_steps_replayed_exactly():
    """With exploration every step draws (rand < p) * U{2..max} per row; a row with q_halt > 0 halts at the first
    step t with t >= that draw. Replaying the same random stream predicts every halting step."""
    cfg = tiny(halt_max_steps=8, halt_exploration_prob=0.5)
    B = 64
    m = model(cfg).train()
    set_q(m, 10.0)
    b = make_batch(cfg, B)
    torch.manual_seed(123)
    carry = m.initial_carry(b)
    got = torch.zeros(B, dtype=torch.long)
    for step in range(1, 9):
        carry, _ = m(carry, b)
        got[carry.halted & (got == 0)] = step
        if carry.halted.all():
            break
    torch.manual_seed(123)
    want = torch.zeros(B, dtype=torch.long)
    for step in range(1, 9):
        explore = torch.rand(B) < 0.5
        min_steps = explore * torch.randint(2, 9, (B,), dtype=torch.int32)
        halt = (step >= min_steps) & (want == 0)
        want[halt] = step
        if (want > 0).all():
            break
    assert torch.equal(got, want)
    assert (got == 1).any() and (got >= 2).any()  # both kinds of rows occur
    m_all = model(tiny(halt_max_steps=8, halt_exploration_prob=1.0)).train()
    set_q(m_all, 10.0)
    carry, _ = m_all(m_all.initial_carry(b), b)
    assert not carry.halted.any()  # every row explores: none may stop before step 2


def test_halted_rows_restart_on_new_data_others_continue():
    cfg = tiny(halt_max_steps=3, halt_exploration_prob=0.0)
    m = model(cfg).train()
    set_q(m, -10.0)
    b1, b2 = make_batch(cfg, seed=1), make_batch(cfg, seed=2)
    carry, _ = m(m.initial_carry(b1), b1)
    assert all(torch.equal(carry.current_data[k], b1[k]) for k in b1)
    carry.halted = torch.tensor([True, False, True, False])
    kept = carry.inner_carry.z_H[[1, 3]].clone()
    carry, out = m(carry, b2)
    for k in b1:
        assert torch.equal(carry.current_data[k][[0, 2]], b2[k][[0, 2]])
        assert torch.equal(carry.current_data[k][[1, 3]], b1[k][[1, 3]])
    assert carry.steps.tolist() == [1, 2, 1, 2]
    # a restarted row starts from H_init/L_init: its output equals a fresh model's first step on that row
    fresh_carry, fresh = m(m.initial_carry(b2), b2)
    assert torch.allclose(out["logits"][[0, 2]], fresh["logits"][[0, 2]], atol=1e-5)
    assert not torch.allclose(out["logits"][[1, 3]], fresh["logits"][[1, 3]], atol=1e-3)
    assert not torch.equal(carry.inner_carry.z_H[[1, 3]], kept)  # continued rows moved on from their carry


def test_bfloat16_forward_and_backward():
    cfg = tiny(forward_dtype="bfloat16")
    m = model(cfg)
    b = make_batch(cfg)
    head = ACTLossHead(m)
    carry, loss, metrics, out, _ = head(head.initial_carry(b), b, return_keys=("logits",))
    assert out["logits"].dtype == torch.bfloat16 and carry.inner_carry.z_H.dtype == torch.bfloat16
    loss.backward()
    w = m.inner.L_level.layers[0].mlp.gate_up_proj.weight
    assert w.dtype == torch.float32 and w.grad.dtype == torch.float32 and torch.isfinite(w.grad).all()


# ---------------------------------------------------------------------------------------------------------------
# loss


def test_stablemax_matches_float64_hand_computation_and_ignores():
    logits = torch.tensor([[[-1.0, 0.0, 2.0], [0.5, -3.0, 1.0], [3.0, 1.0, -0.5]]])
    labels = torch.tensor([[2, -100, 0]])
    loss = stablemax_cross_entropy(logits, labels)
    assert loss.dtype == torch.float64 and loss.shape == (1, 3)

    def s(v):
        return 1 / (1 - v) if v < 0 else v + 1
    row0 = [s(v) for v in (-1.0, 0.0, 2.0)]
    row2 = [s(v) for v in (3.0, 1.0, -0.5)]
    assert abs(float(loss[0, 0]) + math.log(row0[2] / sum(row0))) < 1e-12
    assert float(loss[0, 1]) == 0.0
    assert abs(float(loss[0, 2]) + math.log(row2[0] / sum(row2))) < 1e-12
    assert torch.allclose(log_stablemax(logits.double()).exp().sum(-1), torch.ones(1, 3, dtype=torch.float64))
    ce = softmax_cross_entropy(logits, labels)
    assert float(ce[0, 1]) == 0.0 and abs(float(ce[0, 0]) - float(F.cross_entropy(logits[0, :1], labels[0, :1]))) < 1e-6


@pytest.mark.parametrize("loss_type", ["stablemax_cross_entropy", "softmax_cross_entropy"])
def test_act_loss_head_loss_and_metrics_by_hand(loss_type):
    cfg = tiny(halt_max_steps=2)
    head = ACTLossHead(model(cfg), loss_type=loss_type).eval()  # eval: every row halts at step 2 exactly
    b = make_batch(cfg)
    b["labels"][0, :] = -100  # nothing to predict: never counted
    b["labels"][1, 5:] = -100

    def two_steps():
        carry = head.initial_carry(b)
        carry, loss, metrics, out, all_halted = head(carry, b, return_keys=("preds",))
        assert not all_halted and int(metrics["count"]) == 0 and float(metrics["accuracy"]) == 0
        return head(carry, b, return_keys=("logits", "preds", "q_halt_logits"))
    preds = two_steps()[3]["preds"]
    b["labels"][3] = preds[3]  # row 3 exactly right: exact accuracy and the q target are not all zero
    carry, loss, metrics, out, all_halted = two_steps()
    assert all_halted
    logits, labels, q = out["logits"].double(), b["labels"], out["q_halt_logits"].double()
    fn = stablemax_cross_entropy if loss_type.startswith("stable") else softmax_cross_entropy
    per_tok = fn(logits, labels).double()
    lm = 0.0
    seq_ok = []
    for r in range(4):
        valid = labels[r] != -100
        n = int(valid.sum())
        lm += float(per_tok[r][valid].sum()) / max(n, 1)
        seq_ok.append(bool((out["preds"][r][valid] == labels[r][valid]).all()))
    target = torch.tensor(seq_ok, dtype=torch.float64)
    bce = float(F.binary_cross_entropy_with_logits(q, target, reduction="sum"))
    assert abs(float(metrics["lm_loss"]) - lm) < 1e-6 and abs(float(metrics["q_halt_loss"]) - bce) < 1e-6
    assert abs(float(loss.detach()) - (lm + 0.5 * bce)) < 1e-6
    assert int(metrics["count"]) == 3 and int(metrics["steps"]) == 6
    acc = sum(float((out["preds"][r] == labels[r])[labels[r] != -100].float().mean()) for r in (1, 2, 3))
    assert abs(float(metrics["accuracy"]) - acc) < 1e-5
    assert int(metrics["exact_accuracy"]) == sum(seq_ok[1:]) and seq_ok[3]
    assert int(metrics["q_halt_accuracy"]) == sum(int((float(q[r]) >= 0) == seq_ok[r]) for r in (1, 2, 3))
    assert torch.equal(out["preds"], out["logits"].argmax(-1))


def test_loss_backward_reaches_every_parameter_and_the_puzzle_leaf():
    cfg = tiny(halt_max_steps=1)
    head = ACTLossHead(model(cfg))
    b = make_batch(cfg)
    _, loss, *_ = head(head.initial_carry(b), b)
    loss.backward()
    for n, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
    leaf = head.model.inner.puzzle_emb.local_weights[0]
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0
