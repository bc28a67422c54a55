"""Precision per device (one rule for train, predict and finetune, tested with fake device capabilities), loss
scaling wired into the optimizer step, and the Accelerator's maths pinned against a user's accelerate config."""
import os
import subprocess
import sys

import pytest
import torch

from arcsolver.runtime import precision as precision_mod
from arcsolver.training import train as train_mod
from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.model.checkpoint import load_config
from arcsolver.training.config import build_config
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.precision import DeviceInfo, LossScaling, announce, choose_precision

from conftest import BUNDLED

CPU = DeviceInfo("cpu", "CPU")
T4 = DeviceInfo("cuda", "Tesla T4", (7, 5))
V100 = DeviceInfo("cuda", "Tesla V100", (7, 0))
A100 = DeviceInfo("cuda", "NVIDIA A100", (8, 0))
L4 = DeviceInfo("cuda", "NVIDIA L4", (8, 9))
H100 = DeviceInfo("cuda", "NVIDIA H100", (9, 0))


@pytest.mark.parametrize("device,preference,expected", [
    (A100, "bfloat16", "bfloat16"), (L4, "bfloat16", "bfloat16"), (H100, "bfloat16", "bfloat16"),
    (H100, "float16", "bfloat16"),  # fp16 only when asked for with --set: bf16 needs no loss scaling
    (H100, "float32", "float32"),  # a config that asks for fp32 keeps it where bf16 would be possible
    (T4, "bfloat16", "float32"), (V100, "bfloat16", "float32"), (T4, "float16", "float32"),
    (CPU, "bfloat16", "float32"), (CPU, "float16", "float32"), (CPU, "float32", "float32"),
])
def test_auto_precision_per_device(device, preference, expected):
    p = choose_precision("auto", preference, device)
    assert p.dtype == expected and not p.loss_scaling
    assert device.name in p.reason  # the reason names the device
    if device.capability:
        assert f"{device.capability[0]}.{device.capability[1]}" in p.reason


def test_older_gpu_reason_points_to_the_fp16_opt_in_and_fp16_uses_loss_scaling():
    assert "--set forward_dtype=float16" in choose_precision("auto", "bfloat16", T4).reason
    p = choose_precision("float16", "bfloat16", T4)
    assert p.dtype == "float16" and p.loss_scaling and "requested" in p.reason
    # explicit requests are commands on every device, with a note when they will be slow
    assert choose_precision("bfloat16", "float32", T4).dtype == "bfloat16"
    assert "emulated" in choose_precision("bfloat16", "float32", T4).reason
    assert choose_precision("bfloat16", "float32", CPU).dtype == "bfloat16"
    assert choose_precision("float32", "bfloat16", H100).dtype == "float32"


def test_bad_setting_is_an_input_error_naming_the_field():
    with pytest.raises(InputError, match="forward_dtype.*auto, float32, bfloat16, float16"):
        choose_precision("float99", "float32", CPU)


def test_the_choice_is_printed_once_per_process(capsys):
    p = choose_precision("auto", "bfloat16", DeviceInfo("cuda", "Fake GPU 1", (8, 6)))
    announce(p)
    announce(p)
    err = capsys.readouterr().err
    assert err.count("precision: bfloat16") == 1 and "Fake GPU 1" in err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("prec") / "data"
    build(d, [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=2, seed=0, canvas=10)
    return d


def test_train_and_predict_apply_the_same_rule_and_checkpoints_keep_the_preference(data, tmp_path, monkeypatch):
    """A fake A100 makes train build a bf16 model (on this CPU) and record why; the checkpoint keeps the preset's
    preference; predict on a fake T4 loads the same checkpoint in fp32, on a fake L4 in bf16."""
    from arcsolver.inference.predict import load_model
    monkeypatch.setattr(precision_mod, "device_info", lambda device: A100)
    cfg = build_config("tiny-cpu", ["max_steps=1", "arch.forward_dtype=bfloat16"], data=str(data),
                       out=str(tmp_path / "run"))
    res = train_mod.train(cfg, cpu=True, quiet=True, final_eval=False)
    saved = load_config(res.checkpoint)
    assert saved["precision"]["dtype"] == "bfloat16" and "A100" in saved["precision"]["reason"]
    assert saved["model"]["forward_dtype"] == "bfloat16"  # the preference, not the device's choice
    for device, dtype in ((T4, torch.float32), (L4, torch.bfloat16), (CPU, torch.float32)):
        monkeypatch.setattr(precision_mod, "device_info", lambda d, device=device: device)
        model, _ = load_model(res.checkpoint, torch.device("cpu"))
        assert model.inner.dtype == dtype, device
    # the previous CPU rule of predict (bf16 -> fp32 only) and of train (an env override) are gone: one rule
    monkeypatch.setattr(precision_mod, "device_info", lambda d: CPU)
    monkeypatch.setenv("ARCSOLVER_CPU_BF16", "1")
    assert load_model(res.checkpoint, torch.device("cpu"))[0].inner.dtype == torch.float32


def _tiny_head(seed=0):
    from arcsolver.model.losses import ACTLossHead
    from arcsolver.model.puzzle_embedding import SignSGDSparse
    from arcsolver.model.adam_atan2 import AdamAtan2
    from arcsolver.model.trm import TRM, TRMConfig
    cfg = TRMConfig(batch_size=4, seq_len=8, vocab_size=6, hidden_size=16, num_heads=2, expansion=2.0, H_cycles=2,
                    L_cycles=1, puzzle_emb_ndim=16, puzzle_emb_len=1, num_puzzle_identifiers=3,
                    forward_dtype="float32", halt_max_steps=2)
    torch.manual_seed(seed)
    head = ACTLossHead(TRM(cfg))
    opt = AdamAtan2([p for p in head.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    emb_opt = SignSGDSparse(head.model.inner.puzzle_emb, lr=1e-2, weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    batch = {"inputs": torch.randint(0, 6, (4, 8), generator=g, dtype=torch.int32),
             "labels": torch.randint(1, 6, (4, 8), generator=g).long(),
             "puzzle_identifiers": torch.tensor([0, 1, 2, 1], dtype=torch.int32)}
    return head, opt, emb_opt, batch


def _one_step(scaling: LossScaling, poison: bool = False) -> tuple[dict, bool]:
    head, opt, emb_opt, batch = _tiny_head()
    carry, loss, *_ = head(head.initial_carry(batch), batch)
    if poison:
        loss = loss * float("inf")
    scaling.backward(loss / 4)
    stepped = scaling.step(opt, emb_opt)
    opt.zero_grad()
    emb_opt.zero_grad()
    return {k: v.clone() for k, v in head.state_dict().items()}, stepped


def test_loss_scaling_steps_like_the_unscaled_step_and_skips_both_optimizers_on_overflow():
    plain, ok = _one_step(LossScaling(False, "cpu"))
    assert ok
    scaling = LossScaling(True, "cpu", init_scale=1024.0)
    scaled, ok = _one_step(scaling)
    assert ok and scaling.scaler.get_scale() == 1024.0
    for k in plain:  # powers of two: the scaled gradients unscale exactly
        assert torch.allclose(plain[k], scaled[k], rtol=1e-6, atol=1e-7), k
    untouched, _ = _tiny_head()[0].state_dict(), None
    scaling = LossScaling(True, "cpu", init_scale=1024.0)
    skipped, ok = _one_step(scaling, poison=True)
    assert not ok and scaling.steps_skipped == 1 and scaling.scaler.get_scale() == 512.0
    for k, v in untouched.items():  # neither Adam nor the puzzle rows moved
        assert torch.equal(v, skipped[k]), k


def test_float16_training_runs_through_the_grad_scaler_and_resumes_it(data, tmp_path):
    cfg = build_config("tiny-cpu", ["max_steps=2", "forward_dtype=float16"], data=str(data),
                       out=str(tmp_path / "fp16"))
    res = train_mod.train(cfg, cpu=True, quiet=True, final_eval=False)
    st = torch.load(res.checkpoint / "train_state.pt", weights_only=False)
    assert st["loss_scaling"]["scaler"]["scale"] > 1.0 and st["loss_scaling"]["scaler"]["_growth_tracker"] == 2
    assert load_config(res.checkpoint)["precision"]["loss_scaling"] is True
    res2 = train_mod.train(build_config("tiny-cpu", ["max_steps=3", "forward_dtype=float16"], data=str(data),
                                        out=str(tmp_path / "fp16")), resume=str(res.checkpoint), cpu=True,
                           quiet=True, final_eval=False)
    st2 = torch.load(res2.checkpoint / "train_state.pt", weights_only=False)
    assert st2["loss_scaling"]["scaler"]["_growth_tracker"] == 3  # continued, not restarted


def test_accelerator_ignores_the_environment_accelerate_launch_sets():
    """`accelerate launch` hands a saved config to the processes as ACCELERATE_* variables."""
    code = ("from arcsolver.runtime.precision import make_accelerator; a = make_accelerator(True); "
            "print(a.mixed_precision, a.state.dynamo_plugin.backend.value)")
    env = dict(os.environ, ACCELERATE_MIXED_PRECISION="fp16", ACCELERATE_DYNAMO_BACKEND="INDUCTOR",
               CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["no", "NO"]
