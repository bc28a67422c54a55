"""GPU tests (marker `gpu`; skipped with the missing device named where there is none, see conftest): bf16 against
fp32 on the ARC config, the custom autograd functions on CUDA, compiled against eager on CUDA, one training step of
every preset, a 2-process NCCL run in sync, and predict's vote gathered across 2 GPU processes equal to 1 process.

`benchmarks/gpu_check.sh` runs this file first on a GPU machine."""
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from arcsolver.training.config import PRESETS, build_config

from conftest import BUNDLED, free_port

PY = sys.executable
BIN = Path(PY).parent

# bf16 keeps 8 bits of mantissa (~3 significant digits); 15 network applications per supervision step, 2 steps, on
# random weights whose logits sit near ties. Measured on CPU with the two models of this test at batch 1 (the same
# maths, bf16 matmuls): relative L2 error of the logits 0.042, token argmax agreement 0.947. The bounds leave about
# 2x for GPU kernels that accumulate in another order.
BF16_REL_L2 = 0.1
BF16_ARGMAX_AGREEMENT = 0.85


def arc_config(batch: int, dtype: str):
    from arcsolver.model.trm import TRMConfig
    return TRMConfig(batch_size=batch, seq_len=900, vocab_size=12, hidden_size=512, num_heads=8, expansion=4.0,
                     H_cycles=3, L_cycles=4, pos_encodings="rope", puzzle_emb_len=16, num_puzzle_identifiers=8,
                     forward_dtype=dtype)


def arc_batch(batch: int, device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    b = {"inputs": torch.randint(2, 12, (batch, 900), generator=g, dtype=torch.int32),
         "labels": torch.randint(2, 12, (batch, 900), generator=g).long(),
         "puzzle_identifiers": torch.randint(1, 8, (batch,), generator=g, dtype=torch.int32)}
    return {k: v.to(device) for k, v in b.items()}


@torch.inference_mode()
def two_step_logits(model, batch) -> torch.Tensor:
    inner = model.inner
    B = batch["inputs"].shape[0]
    carry = inner.reset_carry(torch.ones(B, dtype=torch.bool, device=batch["inputs"].device),
                              inner.empty_carry(B, batch["inputs"].device))
    for _ in range(2):
        carry, logits, _ = inner(carry, batch)
    return logits.float()


def arc_models(dtypes: tuple[str, ...], device, **changes) -> list:
    from arcsolver.model.trm import TRM
    torch.manual_seed(0)
    models = []
    for dt in dtypes:
        m = TRM(dataclasses.replace(arc_config(8, dt), **changes))
        if models:
            m.load_state_dict(models[0].state_dict())
        else:
            with torch.no_grad():
                m.inner.puzzle_emb.weights.normal_(0, 0.5)
        models.append(m.to(device).eval())
    return models


@pytest.mark.gpu
def test_bf16_logits_match_fp32_on_the_arc_config():
    batch = arc_batch(8, "cuda")
    fp32, bf16 = (two_step_logits(m, batch) for m in arc_models(("float32", "bfloat16"), "cuda"))
    rel = float((fp32 - bf16).norm() / fp32.norm())
    agree = float((fp32.argmax(-1) == bf16.argmax(-1)).float().mean())
    assert rel < BF16_REL_L2 and agree > BF16_ARGMAX_AGREEMENT, (rel, agree)


@pytest.mark.gpu
def test_compiled_and_eager_logits_agree_on_cuda():
    from arcsolver.runtime.compilation import compile_with_fallback
    from conftest import is_compiled
    batch = arc_batch(8, "cuda")
    # the ARC layer shapes with fewer cycles: the same kernels, a graph inductor compiles in well under a minute
    eager_model, compiled_model = arc_models(("bfloat16", "bfloat16"), "cuda", H_cycles=2, L_cycles=1)
    eager = two_step_logits(eager_model, batch)
    warnings: list[str] = []
    compile_with_fallback(compiled_model.inner, warn=warnings.append)
    compiled = two_step_logits(compiled_model, batch)
    assert warnings == [] and is_compiled(compiled_model.inner), warnings
    # bf16 on both sides; inductor's fused kernels round intermediate values differently
    assert float((compiled - eager).norm() / eager.norm()) < BF16_REL_L2


@pytest.mark.gpu
@pytest.mark.parametrize("token_major", [True, False])
def test_fused_swiglu_gradcheck_on_cuda(token_major):
    from arcsolver.model.layers import _SwiGLU, _SwiGLUTokenMajor
    torch.manual_seed(0)
    kw = dict(dtype=torch.float64, device="cuda", requires_grad=True)
    x = torch.randn(7, 5, **kw)
    K = 5 if token_major else 7
    w1, w2 = torch.randn(8, K, **kw), torch.randn(K, 4, **kw)
    assert torch.autograd.gradcheck(lambda a, b, c: _SwiGLU.apply(a, b, c, token_major), (x, w1, w2))
    if token_major:
        assert torch.autograd.gradcheck(_SwiGLUTokenMajor.apply, (x, w1, w2))


@pytest.mark.gpu
@pytest.mark.parametrize("dim", [0, -1])
def test_fused_add_rms_norm_gradcheck_on_cuda(dim):
    from arcsolver.model.layers import _AddRMSNorm
    torch.manual_seed(0)
    h, o = (torch.randn(6, 5, dtype=torch.float64, device="cuda", requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(lambda a, b: _AddRMSNorm.apply(a, b, dim, 1e-5), (h, o))


@pytest.mark.gpu
def test_fused_functions_in_bf16_on_cuda_match_plain_fp32_autograd():
    """The half-precision paths (silu_backward with out=, fp32 normalisation of bf16 activations) on CUDA kernels."""
    from arcsolver.model.layers import add_rms_norm, swiglu
    torch.manual_seed(0)
    x32 = torch.randn(64, 512, device="cuda")
    w1_32, w2_32 = torch.randn(3072, 512, device="cuda") * 0.05, torch.randn(512, 1536, device="cuda") * 0.05
    grads = []
    for dt in (torch.bfloat16, torch.float32):
        x = x32.to(dt).requires_grad_(True)
        w1, w2 = w1_32.to(dt).requires_grad_(True), w2_32.to(dt).requires_grad_(True)
        if dt == torch.float32:  # the plain formula under autograd
            g, u = F.linear(x, w1).chunk(2, -1)
            y = F.linear(F.silu(g) * u, w2)
            s = (x + y).float()
            out = s * torch.rsqrt(s.square().mean(-1, keepdim=True) + 1e-5)
        else:
            out = add_rms_norm(x, swiglu(x, w1, w2, True), 1e-5)
        (out.float() * torch.linspace(-1, 1, 512, device="cuda")).sum().backward()
        grads.append([out.float().detach(), x.grad.float(), w1.grad.float(), w2.grad.float()])
    for a, b in zip(*grads):
        assert float((a - b).norm() / b.norm()) < 0.05


# ---------------------------------------------------------------------------------------------------------------
# one training step of every preset


def _preset_data(preset: str, root: Path) -> Path:
    """A small dataset of the kind the preset is for."""
    from arcsolver.data.arc_dataset import TaskSet, build
    from arcsolver.data.arc_tasks import load_tasks
    from arcsolver.data.prepare import prepare_maze, prepare_sudoku
    text = (PRESETS / f"{preset}.toml").read_text()
    if preset.startswith("sudoku"):
        size = 6 if "cpu" in preset else 9
        out = root / f"sudoku{size}"
        if not out.exists():
            prepare_sudoku(out, generate=16, csv=None, csv_test=None, size=size, test_count=8, seed=0,
                           min_difficulty=0)
        return out
    if preset.startswith("maze"):
        size = 7 if "cpu" in preset else 30
        out = root / f"maze{size}"
        if not out.exists():
            prepare_maze(out, generate=8, csv=None, csv_test=None, size=size, hard=False, test_count=4, seed=0)
        return out
    canvas = 10 if ("cpu" in preset or "canvas 10" in text) else 30
    out = root / f"arc{canvas}"
    if not out.exists():
        build(out, [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=4, seed=0, canvas=canvas)
    return out


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("gpu-data")


@pytest.mark.gpu
@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESETS.glob("*.toml")))
def test_one_training_step_of_every_preset(preset, data_root, tmp_path):
    from arcsolver.model.checkpoint import load_config
    from arcsolver.training.train import train
    data = _preset_data(preset, data_root)
    cfg = build_config(preset, ["max_steps=2", "global_batch_size=32", "compile=false", "log_every=1",
                                "eval_interval_steps=0", "eval_interval_epochs=0"], data=str(data),
                       out=str(tmp_path / "run"))
    res = train(cfg, cpu=False, quiet=True, final_eval=False)
    assert res.steps == 2 and math.isfinite(res.last_metrics["loss_per_sample"])
    precision = load_config(res.checkpoint)["precision"]
    major = torch.cuda.get_device_capability()[0]
    expected = "float32" if cfg.arch.get("forward_dtype") == "float32" or major < 8 else "bfloat16"
    assert precision["dtype"] == expected, precision


# ---------------------------------------------------------------------------------------------------------------
# two processes on two GPUs


def _launch(args: list[str], port: int, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--main_process_port", str(port), "-m", "arcsolver.cli", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.gpu(count=2)
def test_two_process_nccl_run_keeps_ranks_identical(data_root, tmp_path):
    data = _preset_data("tiny-cpu", data_root)
    out = tmp_path / "ddp"
    r = _launch(["train", "--preset", "tiny-cpu", "--data", str(data), "--out", str(out), "--steps", "6",
                 "--batch-size", "16", "--set", "compile=false", "--set", "log_every=1"], free_port())
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    sync = [x for x in recs if x["split"] == "sync"]
    assert sync and sync[-1]["in_sync"] and len(sync[-1]["rank_fingerprints"]) == 2


def predict_one_vs_two_processes(tmp_path: Path, data: Path, device_args: list[str], env_extra: dict,
                                 port: int) -> tuple[dict, dict]:
    from arcsolver.inference.predict import predict
    from arcsolver.training.train import train
    res = train(build_config("tiny-cpu", ["max_steps=2", "compile=false"], data=str(data), out=str(tmp_path / "run")),
                cpu="--cpu" in device_args, quiet=True, final_eval=False)
    predict(res.checkpoint, tmp_path / "one.json", cpu="--cpu" in device_args, quiet=True, batch_size=64)
    r = _launch(["predict", "--checkpoint", str(res.checkpoint), "--out", str(tmp_path / "two.json"),
                 "--batch-size", "64", *device_args], port, env_extra)
    assert r.returncode == 0, r.stderr[-3000:]
    return (json.loads((tmp_path / "one.json").read_text()), json.loads((tmp_path / "two.json").read_text()))


@pytest.mark.gpu(count=2)
def test_predict_vote_gathered_across_two_gpu_processes_equals_one_process(data_root, tmp_path):
    one, two = predict_one_vs_two_processes(tmp_path, _preset_data("tiny-cpu", data_root), [], {}, free_port())
    assert one == two


# ---------------------------------------------------------------------------------------------------------------
# the CPU halves of the above: what the GPU tests rely on, checked wherever the suite runs


def test_every_preset_has_a_dataset_its_model_fits(data_root):
    """The datasets the per-preset GPU step uses build, and each preset's model builds on them (meta device)."""
    from arcsolver.runtime.jsonio import read_json
    from arcsolver.model.build import build_model, model_config
    for preset in sorted(p.stem for p in PRESETS.glob("*.toml")):
        data = _preset_data(preset, data_root)
        cfg = build_config(preset, ["global_batch_size=32"], data=str(data))
        with torch.device("meta"):
            head = build_model(model_config(cfg.arch, read_json(data / "meta.json"), 32), cfg.loss_type)
        assert sum(p.numel() for p in head.parameters()) > 0, preset


def test_predict_vote_gathered_across_two_cpu_processes_equals_one_process(data_root, tmp_path):
    one, two = predict_one_vs_two_processes(tmp_path, _preset_data("tiny-cpu", data_root), ["--cpu"],
                                            {"CUDA_VISIBLE_DEVICES": "", "HF_HOME": str(tmp_path / "hf")}, free_port())
    assert one == two
