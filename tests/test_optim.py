"""Optimizers and weight averaging: Adam-atan2 against a float64 hand computation of its rule, the sparse sign-SGD
puzzle embedding (single process and two gloo processes), EMA."""
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from arcsolver.model.adam_atan2 import AdamAtan2
from arcsolver.model.ema import EMA
from arcsolver.model.puzzle_embedding import SignSGDSparse, SparsePuzzleEmbedding

# ---------------------------------------------------------------------------------------------------------------
# Adam-atan2


def adam_atan2_by_hand(p, grads, lrs, b1, b2, wd):
    """The rule of docs/trm.md, 'Optimizer: Adam-atan2', step by step in float64."""
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    out = []
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        p = p * (1 - lr * wd)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        p = p - lr / (1 - b1 ** t) * torch.atan2(m, v.sqrt() / math.sqrt(1 - b2 ** t))
        out.append(p)
    return out


@pytest.mark.parametrize("tensor_lr", [False, True])
def test_adam_atan2_matches_float64_rule(tensor_lr):
    torch.manual_seed(0)
    b1, b2, wd = 0.9, 0.95, 0.1
    shapes = [(5, 3), (7,)]
    p0 = [torch.randn(s, dtype=torch.float64) for s in shapes]
    grads = [[torch.randn(s, dtype=torch.float64) for s in shapes] for _ in range(5)]
    grads[2][0][0, 0] = 0.0  # a zero gradient entry: atan2 handles it, no epsilon involved
    lrs = [0.0, 0.01, 0.02, 0.005, 0.03]  # warm-up starts at 0
    params = [torch.nn.Parameter(p.clone()) for p in p0]
    opt = AdamAtan2(params, lr=torch.tensor(0.0) if tensor_lr else 0.0, betas=(b1, b2), weight_decay=wd)
    refs = [adam_atan2_by_hand(p0[i], [g[i] for g in grads], lrs, b1, b2, wd) for i in range(len(shapes))]
    for t, lr in enumerate(lrs):
        for grp in opt.param_groups:
            grp["lr"] = torch.tensor(lr, dtype=torch.float64) if tensor_lr else lr
        for i, p in enumerate(params):
            p.grad = grads[t][i].clone()
        opt.step()
        for i, p in enumerate(params):
            assert torch.allclose(p.detach(), refs[i][t], atol=1e-13, rtol=0), (t, i)
    assert torch.equal(params[0].detach(), refs[0][-1]) or torch.allclose(params[0].detach(), refs[0][-1], atol=1e-13)
    assert opt.state[params[0]]["step"] == 5


def test_adam_atan2_lr_zero_leaves_weights_but_advances_moments():
    p = torch.nn.Parameter(torch.ones(4))
    opt = AdamAtan2([p], lr=0.0, weight_decay=1.0)  # constructing with lr = 0 is allowed
    p.grad = torch.full((4,), 2.0)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(4))
    st = opt.state[p]
    assert st["step"] == 1 and torch.allclose(st["exp_avg"], torch.full((4,), 0.2))
    with pytest.raises(ValueError):
        AdamAtan2([p], lr=-1e-3)


def test_adam_atan2_zero_gradient_and_bounded_step():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = AdamAtan2([p], lr=0.1)
    p.grad = torch.zeros(3)
    opt.step()
    assert torch.equal(p.detach(), torch.zeros(3))  # atan2(0, 0) = 0: no NaN without an epsilon
    p.grad = torch.tensor([1e30, -1e-30, 5.0])
    opt.step()
    assert torch.isfinite(p).all()
    assert float(p.detach().abs().max()) <= 0.1 * math.pi / 2 / (1 - 0.9 ** 2) + 1e-6


def test_adam_atan2_skips_parameters_without_gradient_and_counts_steps_per_tensor():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = AdamAtan2([a, b], lr=0.01)
    a.grad = torch.ones(2)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2)) and b not in opt.state
    b.grad = torch.ones(2)
    a.grad = torch.ones(2)
    opt.step()  # a is at t=2, b at t=1: each gets its own bias correction
    assert opt.state[a]["step"] == 2 and opt.state[b]["step"] == 1
    # b's first step: m = g (1 - b1), v / (1 - b2) = g^2, so p -= lr / (1 - b1) * atan2(g (1 - b1), |g|)
    assert torch.allclose(b.detach(), torch.ones(2) - 0.01 / 0.1 * math.atan2(0.1, 1.0))
    # a's second step used t = 2 (the check is the same rule by hand, in float64)
    a2 = adam_atan2_by_hand(torch.ones(2, dtype=torch.float64), [torch.ones(2, dtype=torch.float64)] * 2,
                            [0.01, 0.01], 0.9, 0.95, 0.0)[-1]
    assert torch.allclose(a.detach().double(), a2, atol=1e-7)
    sd = opt.state_dict()
    opt2 = AdamAtan2([a, b], lr=0.01)
    opt2.load_state_dict(sd)
    assert opt2.state[a]["step"] == 2


# ---------------------------------------------------------------------------------------------------------------
# sparse puzzle embedding + sign-SGD


def test_table_is_a_zero_buffer_and_eval_records_nothing():
    emb = SparsePuzzleEmbedding(6, 4)
    assert "weights" in dict(emb.named_buffers()) and not list(emb.parameters())
    assert torch.all(emb.weights == 0) and emb.weights.dtype == torch.float32
    emb.eval()
    out = emb(torch.tensor([1, 2]))
    assert not out.requires_grad and emb.local_weights is None
    emb.train()
    with torch.no_grad():
        emb(torch.tensor([1]))
    assert emb.local_weights is None
    out = emb(torch.tensor([1, 2]))
    assert out.requires_grad and emb.local_weights[0].is_leaf and emb.local_weights[0].requires_grad


def test_sign_sgd_touches_only_batch_rows_with_the_formula():
    emb = SparsePuzzleEmbedding(10, 4).train()
    with torch.no_grad():
        emb.weights.copy_(torch.arange(40, dtype=torch.float32).view(10, 4) - 20)
    before = emb.weights.clone()
    lr, wd = 0.5, 0.1
    opt = SignSGDSparse(emb, lr=lr, weight_decay=wd)
    ids = torch.tensor([3, 7, 3, 5], dtype=torch.int32)
    w = torch.tensor([[1.0, -2, 0, 3], [-1, 1, 1, 1], [1.0, 1, 0, -5], [0, 0, 0, 0]])
    (emb(ids) * w).sum().backward()
    opt.step()
    opt.zero_grad()
    changed = (emb.weights != before).any(1).nonzero().flatten().tolist()
    assert changed == [3, 5, 7]  # row 5 had zero gradient: weight decay only
    g = {3: w[0] + w[2], 7: w[1], 5: w[3]}  # gradients of an id summed over its occurrences
    for i, gi in g.items():
        assert torch.allclose(emb.weights[i], before[i] * (1 - lr * wd) - lr * torch.sign(gi)), i
    assert emb.local_weights is None and emb.local_ids is None


def test_sign_sgd_leaves_rows_without_a_gradient_untouched():
    """A forward whose leaf never reached a backward hands out rows with no gradient at all: the reference skips its
    step for them, so they get neither the sign step nor the weight decay (unlike rows with a zero gradient)."""
    emb = SparsePuzzleEmbedding(8, 3).train()
    with torch.no_grad():
        emb.weights.copy_(torch.arange(24.0).view(8, 3) + 1)
    before = emb.weights.clone()
    opt = SignSGDSparse(emb, lr=0.5, weight_decay=0.2)
    (emb(torch.tensor([2, 4])) * torch.tensor([[1.0, -1.0, 2.0], [0.0, 0.0, 0.0]])).sum().backward()
    emb(torch.tensor([6, 7, 4]))  # looked up, never backpropagated: no gradient
    opt.step()
    opt.zero_grad()
    assert torch.equal(emb.weights[[0, 1, 3, 5, 6, 7]], before[[0, 1, 3, 5, 6, 7]])
    assert torch.allclose(emb.weights[2], before[2] * 0.9 - 0.5 * torch.tensor([1.0, -1.0, 1.0]))
    assert torch.allclose(emb.weights[4], before[4] * 0.9)  # zero gradient: decay only, as the reference
    # only gradient-less rows in the batch: nothing changes at all
    emb(torch.tensor([1, 5]))
    after_first = emb.weights.clone()
    opt.step()
    assert torch.equal(emb.weights, after_first)


def test_sign_sgd_accumulates_several_forwards_and_takes_tensor_lr():
    emb = SparsePuzzleEmbedding(5, 2).train()
    opt = SignSGDSparse(emb, lr=torch.tensor(0.0))
    opt.set_lr(torch.tensor(0.25))
    (emb(torch.tensor([1])) * torch.tensor([[1.0, -1.0]])).sum().backward()
    (emb(torch.tensor([1, 2])) * torch.tensor([[-3.0, 2.0], [1.0, 0.0]])).sum().backward()
    opt.step()
    assert torch.allclose(emb.weights[1], -0.25 * torch.sign(torch.tensor([-2.0, 1.0])))
    assert torch.allclose(emb.weights[2], torch.tensor([-0.25, 0.0]))
    assert torch.all(emb.weights[[0, 3, 4]] == 0)
    assert opt.state_dict() == {"lr": 0.25, "weight_decay": 0.0}


def _dist_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        emb = SparsePuzzleEmbedding(8, 3).train()
        with torch.no_grad():
            emb.weights.copy_(torch.arange(24.0).view(8, 3))
        opt = SignSGDSparse(emb, lr=0.1, weight_decay=0.5)
        ids, w = _rank_data(rank)
        if len(ids):
            (emb(ids) * w).sum().backward()
        opt.step()
        torch.save(emb.weights, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _rank_data(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    # rank 0: ids 1 and 4; rank 1: ids 4 (twice) and 6; rank 2: nothing at all
    if rank == 0:
        return torch.tensor([1, 4]), torch.tensor([[1.0, -1.0, 0.0], [-2.0, 0.0, 1.0]])
    if rank == 1:
        return torch.tensor([4, 6, 4]), torch.tensor([[1.0, 1.0, 0.0], [0.0, -1.0, 1.0], [0.5, 0.0, -3.0]])
    return torch.zeros(0, dtype=torch.long), torch.zeros(0, 3)


def test_sign_sgd_data_parallel_ranks_apply_the_identical_global_update(tmp_path):
    world = 3
    mp.start_processes(_dist_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world,
                       join=True, start_method="spawn")
    tables = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    assert all(torch.equal(tables[0], t) for t in tables[1:])
    # the same update computed in one process over the concatenated global batch
    emb = SparsePuzzleEmbedding(8, 3).train()
    with torch.no_grad():
        emb.weights.copy_(torch.arange(24.0).view(8, 3))
    opt = SignSGDSparse(emb, lr=0.1, weight_decay=0.5)
    ids, w = zip(*(_rank_data(r) for r in range(world)))
    (emb(torch.cat(ids)) * torch.cat(w)).sum().backward()
    opt.step()
    assert torch.equal(tables[0], emb.weights)
    g4 = torch.tensor([-2.0, 0.0, 1.0]) + torch.tensor([1.0, 1.0, 0.0]) + torch.tensor([0.5, 0.0, -3.0])
    assert torch.allclose(tables[0][4], torch.arange(12.0, 15.0) * 0.95 - 0.1 * torch.sign(g4))


# ---------------------------------------------------------------------------------------------------------------
# EMA


def test_ema_update_formula_and_swap():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2))
    net[1].bias.requires_grad_(False)  # frozen: not tracked
    net.register_buffer("table", torch.zeros(2))
    ema = EMA(net)
    assert ema.rate == 0.999 and set(ema.shadow) == {"0.weight", "0.bias", "1.weight"}
    w0 = net[0].weight.detach().clone()
    expected = w0.clone()
    for k in range(3):
        with torch.no_grad():
            net[0].weight.add_(1.0)
        ema.update(net)
        expected = 0.999 * expected + 0.001 * net[0].weight.detach()
    assert torch.allclose(ema.shadow["0.weight"], expected, atol=1e-6)
    raw = {n: p.detach().clone() for n, p in net.named_parameters()}
    with ema.swapped(net):
        assert torch.equal(net[0].weight.detach(), ema.shadow["0.weight"])
        with pytest.raises(RuntimeError):
            ema.update(net)
    assert all(torch.equal(p.detach(), raw[n]) for n, p in net.named_parameters())
    ema.swap_in(net)
    ema.swap_out(net)
    assert torch.equal(net[0].weight.detach(), raw["0.weight"])
    state = ema.state_dict()
    ema2 = EMA(net, rate=0.5)
    ema2.load_state_dict(state)
    assert ema2.rate == 0.999 and torch.equal(ema2.shadow["0.weight"], ema.shadow["0.weight"])
    sd = net.state_dict()
    sd.update(ema.shadow_state())
    assert torch.equal(sd["0.weight"], ema.shadow["0.weight"])
