"""Micro-batches (--device-batch-size): k accumulated micro-batches give the weights of one batch (carry, puzzle
embedding, EMA included); an out-of-memory error halves the micro-batch and the run goes on; the memory model counts
what autograd really keeps."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from arcsolver.inference import microbatch
from arcsolver.training import grad_accumulation
from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.training.config import build_config
from arcsolver.model.memory_model import (activation_bytes_per_token, choose_device_batch, inference_memory,
                                    parameter_count, training_memory)
from arcsolver.model.build import build_model
from arcsolver.training.train import train
from arcsolver.model.trm import TRMConfig
from arcsolver.runtime.errors import InputError

from conftest import BUNDLED, free_port, launch_failure

BATCH = 8
STEPS = 6


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("mb") / "data"
    build(d, [TaskSet("b", load_tasks(BUNDLED)[:6], test_set=True)], num_aug=6, seed=3, canvas=8)
    return d


def run(data, out, device_batch: int, extra=()):
    cfg = build_config("tiny-cpu", [f"max_steps={STEPS}", f"global_batch_size={BATCH}",
                                    f"device_batch_size={device_batch}", "ema_rate=0.9",
                                    "arch.halt_exploration_prob=0.5", *extra], data=str(data), out=str(out))
    res = train(cfg, cpu=True, quiet=True, final_eval=False)
    ck = res.checkpoint
    w = {f"model/{k}": v for k, v in load_file(str(ck / "model.safetensors")).items()}
    w.update({f"ema/{k}": v for k, v in load_file(str(ck / "ema.safetensors")).items()})
    carry = torch.load(ck / "train_state.pt", weights_only=False)["carry"][0]
    return res, w, carry


def test_k_micro_batches_give_the_weights_of_one_batch(tmp_path, data):
    res1, one, carry1 = run(data, tmp_path / "k1", BATCH)
    assert res1.device_batch == BATCH
    table = next(k for k in one if k.endswith("puzzle_emb.weights"))
    assert one[table].abs().sum() > 0  # the sign-SGD update ran
    for k in (2, 4):
        res, w, carry = run(data, tmp_path / f"k{k}", BATCH // k)
        assert res.device_batch == BATCH // k
        assert w.keys() == one.keys()
        for name in one:
            torch.testing.assert_close(w[name], one[name], rtol=1e-5, atol=2e-6, msg=f"k={k}: {name}")
        # the carry: same rows, same steps, same halted flags, same latent state
        assert torch.equal(carry.steps, carry1.steps) and torch.equal(carry.halted, carry1.halted)
        assert all(torch.equal(carry.current_data[n], carry1.current_data[n]) for n in carry1.current_data)
        torch.testing.assert_close(carry.inner_carry.z_H, carry1.inner_carry.z_H, rtol=1e-5, atol=1e-5)


def test_uneven_micro_batches_and_a_different_split_diverge_only_within_rounding(tmp_path, data):
    _, one, _ = run(data, tmp_path / "k1", BATCH)
    _, three, _ = run(data, tmp_path / "k3", 3)  # 3 + 3 + 2 rows
    for name in one:
        torch.testing.assert_close(three[name], one[name], rtol=1e-5, atol=2e-6, msg=name)


def test_oom_halves_the_micro_batch_and_the_run_continues(tmp_path, data, monkeypatch):
    """A CUDA-style OOM on the last micro-batch of any split wider than 2 rows (at 4 rows, the first micro-batch's
    gradients and recorded embedding rows exist when it strikes): the step is retried at half, and the run ends exactly as a run that had
    2-row micro-batches from the start."""
    real = grad_accumulation.accumulate
    calls = {"oom": 0}

    def flaky(forward, carry, batch, local_batch, device_batch, noise, no_sync=None, backward=None):
        seen = {"n": 0}

        def fwd(c, b, n):
            seen["n"] += 1
            if device_batch > 2 and seen["n"] == -(-local_batch // device_batch):
                calls["oom"] += 1
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
            return forward(c, b, n)
        return real(fwd, carry, batch, local_batch, device_batch, noise, no_sync, backward)

    monkeypatch.setattr(grad_accumulation, "accumulate", flaky)
    res, w, _ = run(data, tmp_path / "oom", BATCH)
    assert calls["oom"] == 2  # 8 -> 4 -> 2, then it sticks for the rest of the run
    assert res.device_batch == 2 and res.steps == STEPS
    monkeypatch.setattr(grad_accumulation, "accumulate", real)
    _, two, _ = run(data, tmp_path / "two", 2)
    for name in two:
        assert torch.equal(w[name], two[name]), name


def test_oom_at_one_row_and_other_errors_are_raised():
    def step(db):
        raise torch.OutOfMemoryError("CUDA out of memory")
    with pytest.raises(torch.OutOfMemoryError):
        microbatch.run_halving_on_oom(step, 1, lambda: None)
    resets = []
    with pytest.raises(ValueError):
        microbatch.run_halving_on_oom(lambda db: (_ for _ in ()).throw(ValueError("bug")), 8, lambda: resets.append(1))
    assert resets == []
    seen = []

    def step2(db):
        seen.append(db)
        if db > 3:
            raise RuntimeError("CUDA error: out of memory")
        return "ok"
    assert microbatch.run_halving_on_oom(step2, 16, lambda: None) == ("ok", 2)
    assert seen == [16, 8, 4, 2]


def test_split_and_cat_rows_round_trip():
    cfg = TRMConfig(batch_size=5, seq_len=6, hidden_size=8, num_heads=2, puzzle_emb_ndim=8, num_puzzle_identifiers=3,
                    forward_dtype="float32", puzzle_emb_len=1)
    model = build_model(cfg).model
    batch = {"inputs": torch.randint(0, 12, (5, 6), dtype=torch.int32), "labels": torch.randint(0, 12, (5, 6)),
             "puzzle_identifiers": torch.tensor([0, 1, 2, 1, 0], dtype=torch.int32)}
    carry = model.initial_carry(batch)
    carry.steps = torch.arange(5, dtype=torch.int32)
    parts = [microbatch.split_rows(carry, s, e) for s, e in microbatch.bounds(5, 2)]
    assert [p.steps.tolist() for p in parts] == [[0, 1], [2, 3], [4]]
    back = microbatch.cat_rows(parts)
    assert torch.equal(back.steps, carry.steps) and torch.equal(back.inner_carry.z_H, carry.inner_carry.z_H)


# ---------------------------------------------------------------------------------------------------------------
# The memory model


def _saved_bytes(cfg: TRMConfig, rows: int) -> int:
    head = build_model(cfg)
    head.train()
    S = cfg.seq_len
    g = torch.Generator().manual_seed(0)
    batch = {"inputs": torch.randint(2, 12, (rows, S), dtype=torch.int32, generator=g),
             "labels": torch.randint(2, 12, (rows, S), generator=g),
             "puzzle_identifiers": torch.zeros(rows, dtype=torch.int32)}
    carry = head.initial_carry(batch)
    storages: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        storages[st.data_ptr()] = st.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        head(carry, batch)
    return sum(storages.values())


@pytest.mark.parametrize("arch", [dict(mlp_t=False, hidden_size=64, pos_encodings="rope"),
                                  dict(mlp_t=False, hidden_size=96, pos_encodings="learned", L_cycles=3),
                                  dict(mlp_t=True, hidden_size=64, pos_encodings="none")])
def test_activation_count_matches_autograds_saved_tensors(arch):
    cfg = TRMConfig(batch_size=4, seq_len=60, num_heads=4, puzzle_emb_ndim=arch["hidden_size"],
                    num_puzzle_identifiers=3, forward_dtype="float32", H_cycles=2, L_cycles=arch.get("L_cycles", 2),
                    L_layers=2, puzzle_emb_len=2, expansion=4.0, mlp_t=arch["mlp_t"],
                    hidden_size=arch["hidden_size"], pos_encodings=arch["pos_encodings"])
    per_row = (_saved_bytes(cfg, 6) - _saved_bytes(cfg, 2)) / 4
    predicted = activation_bytes_per_token(cfg) * cfg.total_len
    assert abs(predicted - per_row) / per_row < 0.05, (predicted, per_row)


def test_parameter_count_matches_the_model():
    for mlp_t in (False, True):
        cfg = TRMConfig(seq_len=30, hidden_size=64, num_heads=4, puzzle_emb_ndim=64, num_puzzle_identifiers=3,
                        puzzle_emb_len=2, mlp_t=mlp_t, pos_encodings="learned" if mlp_t else "rope")
        assert parameter_count(cfg) == sum(p.numel() for p in build_model(cfg).parameters())


def test_choose_device_batch_fits_the_budget():
    cfg = TRMConfig(seq_len=900, hidden_size=512, num_heads=8, puzzle_emb_ndim=512, num_puzzle_identifiers=1000,
                    forward_dtype="bfloat16")
    est = lambda rows: training_memory(cfg, rows, 192)  # noqa: E731
    gib = 1 << 30
    db = choose_device_batch(est, 192, 22 * gib)  # an L4 after the CUDA context
    assert 1 <= db < 192
    assert est(db).total <= 0.8 * 22 * gib < est(db + 1).total
    assert choose_device_batch(est, 192, None) == 192  # CPU: the whole batch
    assert choose_device_batch(est, 192, 10**15) == 192
    assert choose_device_batch(est, 192, 1) == 1
    assert choose_device_batch(est, 192, 1, requested=7) == 7 and choose_device_batch(est, 4, None, requested=7) == 4
    with pytest.raises(InputError, match="must be >= 0"):
        choose_device_batch(est, 192, None, requested=-1, field="device_batch_size")
    assert inference_memory(cfg, 10).total < inference_memory(cfg, 20).total


def test_predict_in_micro_batches_gives_the_same_answers(tmp_path, data, monkeypatch):
    import json
    from arcsolver.inference import predict as predict_mod
    res, _, _ = run(data, tmp_path / "k1", BATCH)
    whole = predict_mod.predict(res.checkpoint, tmp_path / "a.json", data=str(data), cpu=True, quiet=True,
                                batch_size=16)
    real = microbatch.rollout_in_micro_batches
    used = []

    def spy(model, batch, steps, db, rollout):
        out = real(model, batch, steps, db, rollout)
        used.append(out[2])
        return out
    monkeypatch.setattr(predict_mod, "rollout_in_micro_batches", spy)
    part = predict_mod.predict(res.checkpoint, tmp_path / "b.json", data=str(data), cpu=True, quiet=True,
                               batch_size=16, device_batch_size=3)
    assert used and set(used) == {3}
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())
    assert whole.predictions == part.predictions > 0


# ---------------------------------------------------------------------------------------------------------------
# On a GPU (marked `gpu`: conftest skips them, saying why, where no CUDA device is visible): the real CUDA out-of-memory path and the memory model against CUDA's own peak


def _gpu_step_setup(cfg: TRMConfig, batch: int):
    head = build_model(cfg).cuda().train()
    g = torch.Generator().manual_seed(0)
    data = {"inputs": torch.randint(2, 12, (batch, cfg.seq_len), dtype=torch.int32, generator=g),
            "labels": torch.randint(2, 12, (batch, cfg.seq_len), generator=g),
            "puzzle_identifiers": torch.zeros(batch, dtype=torch.int32)}
    data = {k: v.cuda() for k, v in data.items()}

    def forward(c, b, n):
        c, loss, metrics, _, _ = head(carry=c, batch=b, halt_noise=n)
        return c, loss, metrics
    return head, data, forward


@pytest.mark.gpu
def test_gpu_real_out_of_memory_halves_until_it_fits():
    cfg = TRMConfig(batch_size=64, seq_len=900, hidden_size=256, num_heads=8, puzzle_emb_ndim=256,
                    num_puzzle_identifiers=4, forward_dtype="bfloat16", H_cycles=2, L_cycles=2)
    head, data, forward = _gpu_step_setup(cfg, 64)
    carry = head.initial_carry(data)
    budget = training_memory(cfg, 8, 64).total  # room for ~8 rows per micro-batch
    free, total = torch.cuda.mem_get_info()
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_allocated() + budget) / total))
    try:
        (carry, loss, _), used = microbatch.run_halving_on_oom(
            lambda db: grad_accumulation.accumulate(forward, carry, data, 64, db, None), 64,
            lambda: head.zero_grad(set_to_none=True))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert 1 <= used < 64 and torch.isfinite(loss)


@pytest.mark.gpu
@pytest.mark.parametrize("mlp_t", [False, True])
def test_gpu_memory_model_within_25_percent_of_cuda_peak(mlp_t):
    arch = dict(mlp_t=True, pos_encodings="none", seq_len=81) if mlp_t else dict(seq_len=900)
    cfg = TRMConfig(batch_size=16, hidden_size=256, num_heads=8, puzzle_emb_ndim=256, num_puzzle_identifiers=4,
                    forward_dtype="bfloat16", H_cycles=3, L_cycles=3, **arch)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    head, data, forward = _gpu_step_setup(cfg, 16)
    from arcsolver.model.adam_atan2 import AdamAtan2
    from arcsolver.model.ema import EMA
    opt = AdamAtan2(list(head.parameters()), lr=1e-4)
    ema = EMA(head)
    carry = head.initial_carry(data)
    for _ in range(2):
        carry, _, _ = grad_accumulation.accumulate(forward, carry, data, 16, 16, None)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update(head)
    measured = torch.cuda.max_memory_allocated() - base
    predicted = training_memory(cfg, 16, 16).total
    assert abs(predicted / measured - 1) <= 0.25, (predicted, measured)


@pytest.mark.gpu
def test_gpu_k_micro_batches_give_the_weights_of_one_batch(tmp_path, data):
    def run_gpu(out, db):
        cfg = build_config("tiny-cpu", [f"max_steps={STEPS}", f"global_batch_size={BATCH}",
                                        f"device_batch_size={db}", "ema_rate=0.9"], data=str(data), out=str(out))
        ck = train(cfg, cpu=False, quiet=True, final_eval=False).checkpoint
        return load_file(str(ck / "model.safetensors"))
    one, two = run_gpu(tmp_path / "a", BATCH), run_gpu(tmp_path / "b", BATCH // 2)
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5, msg=name)


def test_two_processes_with_micro_batches_stay_in_sync(tmp_path, data):
    """Under DDP the gradients are synchronised once per step, after the last micro-batch (no_sync before it):
    both ranks end with identical weights and puzzle tables."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    out = tmp_path / "ddp"
    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()),
           "-m", "arcsolver.cli", "train", "--preset", "tiny-cpu", "--data", str(data), "--out", str(out),
           "--steps", "3", "--batch-size", "8", "--device-batch-size", "2", "--cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, CUDA_VISIBLE_DEVICES="",
                                                                       OMP_NUM_THREADS="1"), timeout=300)
    assert r.returncode == 0, launch_failure(r.stderr)
    sync = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"sync"' in x]
    assert sync and sync[-1]["in_sync"] and len(sync[-1]["rank_fingerprints"]) == 2
