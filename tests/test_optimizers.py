"""Adam-atan2 against a float64 hand computation, sparse sign-SGD on the puzzle table, EMA."""
import math

import torch

from arcsolver.adam_atan2 import AdamAtan2
from arcsolver.ema import EMA
from arcsolver.puzzle_embedding import SignSGDSparse, SparsePuzzleEmbedding


def test_adam_atan2_matches_float64_rule():
    torch.manual_seed(0)
    p0 = torch.randn(5, 3, dtype=torch.float64)
    grads = [torch.randn(5, 3, dtype=torch.float64) for _ in range(4)]
    lrs = [0.0, 0.01, 0.02, 0.005]  # warm-up starts at 0
    b1, b2, wd = 0.9, 0.95, 0.1
    p = torch.nn.Parameter(p0.clone())
    opt = AdamAtan2([p], lr=0.0, betas=(b1, b2), weight_decay=wd)
    ref, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        for grp in opt.param_groups:
            grp["lr"] = lr
        p.grad = g.clone()
        opt.step()
        ref = ref * (1 - lr * wd)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        ref = ref - lr / (1 - b1 ** t) * torch.atan2(m, v.sqrt() / math.sqrt(1 - b2 ** t))
        assert torch.allclose(p.detach(), ref, atol=1e-12, rtol=0), t


def test_adam_atan2_zero_grad_gives_zero_step():
    p = torch.nn.Parameter(torch.ones(3))
    opt = AdamAtan2([p], lr=0.1)
    p.grad = torch.zeros(3)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(3))  # atan2(0, 0) = 0, no epsilon needed


def test_sign_sgd_touches_only_batch_rows():
    emb = SparsePuzzleEmbedding(10, 4, torch.float32).train()
    with torch.no_grad():
        emb.weights.copy_(torch.arange(40, dtype=torch.float32).view(10, 4))
    before = emb.weights.clone()
    opt = SignSGDSparse(emb, lr=0.5, weight_decay=0.1)
    ids = torch.tensor([3, 7, 3])
    out = emb(ids)
    (out * torch.tensor([[1.0, -2, 0, 3], [-1, 1, 1, 1], [1.0, 1, 0, -5]])).sum().backward()
    opt.step()
    opt.zero_grad()
    changed = (emb.weights != before).any(1).nonzero().flatten().tolist()
    assert changed == [3, 7]
    g3 = torch.tensor([2.0, -1, 0, -2])  # summed over both occurrences of id 3
    assert torch.allclose(emb.weights[3], before[3] * (1 - 0.05) - 0.5 * torch.sign(g3))
    assert torch.allclose(emb.weights[7], before[7] * (1 - 0.05) - 0.5 * torch.sign(torch.tensor([-1.0, 1, 1, 1])))
    assert emb.local_weights is None


def test_embedding_eval_reads_table_without_grad():
    emb = SparsePuzzleEmbedding(4, 2, torch.float32).eval()
    out = emb(torch.tensor([1, 2]))
    assert not out.requires_grad and emb.local_weights is None


def test_ema_update_and_swap():
    lin = torch.nn.Linear(2, 2)
    ema = EMA(lin, rate=0.9)
    w0 = lin.weight.detach().clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
    ema.update(lin)
    assert torch.allclose(ema.shadow["weight"], 0.9 * w0 + 0.1 * (w0 + 1))
    raw = lin.weight.detach().clone()
    ema.swap_in(lin)
    assert torch.allclose(lin.weight, ema.shadow["weight"])
    ema.swap_out(lin)
    assert torch.equal(lin.weight.detach(), raw)
