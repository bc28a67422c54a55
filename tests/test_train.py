"""Training: the 2-process Accelerate run keeps ranks identical; resume after SIGKILL is bit-exact; the CLI."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from arcsolver.arc_dataset import TaskSet, build
from arcsolver.arc_tasks import load_tasks
from arcsolver.jsonio import read_json

from conftest import BUNDLED

PY = sys.executable
BIN = Path(PY).parent


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("train") / "data"
    build(d, [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=20, seed=1, canvas=10)
    return d


def cli(*args, **kw):
    return subprocess.run([PY, "-m", "arcsolver.cli", *args], capture_output=True, text=True, **kw)


COMMON = ["--preset", "tiny-cpu", "--set", "arch.hidden_size=64", "--set", "checkpoint_interval_steps=4",
          "--set", "eval_max_batches=1", "--set", "log_every=1", "--batch-size", "16", "--cpu"]


def weights(run: Path) -> dict[str, torch.Tensor]:
    ck = run / (run / "latest").read_text().strip()
    w = {f"model/{k}": v for k, v in load_file(str(ck / "model.safetensors")).items()}
    w.update({f"ema/{k}": v for k, v in load_file(str(ck / "ema.safetensors")).items()})
    return w


def test_resume_after_sigkill_is_bit_exact(tmp_path, data):
    steps = 12
    straight = tmp_path / "straight"
    r = cli("train", *COMMON, "--data", str(data), "--out", str(straight), "--steps", str(steps))
    assert r.returncode == 0, r.stderr
    # Same run, killed with SIGKILL once the step-4 checkpoint exists, then resumed.
    killed = tmp_path / "killed"
    p = subprocess.Popen([PY, "-m", "arcsolver.cli", "train", *COMMON, "--data", str(data), "--out", str(killed),
                          "--steps", str(steps)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "latest").exists():
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    at = (killed / "latest").read_text().strip()
    assert at != f"step_{steps:07d}", "the run finished before it could be killed"
    r = cli("train", *COMMON, "--data", str(data), "--out", str(killed), "--steps", str(steps), "--resume", str(killed))
    assert r.returncode == 0, r.stderr
    assert (killed / "latest").read_text().strip() == f"step_{steps:07d}"
    a, b = weights(straight), weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_two_process_accelerate_run_keeps_ranks_identical(tmp_path, data):
    out = tmp_path / "ddp"
    cmd = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
           "-m", "arcsolver.cli", "train", *COMMON, "--data", str(data), "--out", str(out), "--steps", "6"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    recs = [read_json_line(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    sync = [x for x in recs if x["split"] == "sync"]
    assert sync and sync[-1]["in_sync"] and len(sync[-1]["rank_fingerprints"]) == 2
    assert (out / "step_0000006" / "model.safetensors").is_file()


def test_first_three_steps_use_the_reference_learning_rates(tmp_path, data, monkeypatch):
    """The step is counted before its LR is computed (reference pretrain.py train_batch): with a 4-step warm-up the
    optimizers step at 1/4, 2/4, 3/4 of their base LR -- the first step is not at lr 0."""
    from arcsolver.adam_atan2 import AdamAtan2
    from arcsolver.config import build_config
    from arcsolver.puzzle_embedding import SignSGDSparse
    from arcsolver.train import train
    seen: dict[str, list[float]] = {"adam": [], "sign": []}
    adam_step, sign_step = AdamAtan2.step, SignSGDSparse.step

    def record_adam(self, *a, **kw):
        seen["adam"].append(float(self.param_groups[0]["lr"]))
        return adam_step(self, *a, **kw)

    def record_sign(self):
        seen["sign"].append(float(self.lr))
        return sign_step(self)
    monkeypatch.setattr(AdamAtan2, "step", record_adam)
    monkeypatch.setattr(SignSGDSparse, "step", record_sign)
    cfg = build_config("tiny-cpu", ["max_steps=3", "lr=1e-3", "puzzle_emb_lr=1e-2", "lr_warmup_steps=4",
                                    "lr_min_ratio=0.1", "log_every=1"], data=str(data), out=str(tmp_path / "r"))
    train(cfg, cpu=True, quiet=True, final_eval=False)
    assert seen["adam"] == pytest.approx([2.5e-4, 5e-4, 7.5e-4], rel=1e-12)
    assert seen["sign"] == pytest.approx([2.5e-3, 5e-3, 7.5e-3], rel=1e-12)
    logged = [read_json_line(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [x["lr"] for x in logged if x["split"] == "train"] == pytest.approx([2.5e-4, 5e-4, 7.5e-4], rel=1e-12)


def read_json_line(line: str) -> dict:
    import orjson
    return orjson.loads(line)


def test_train_cli_errors_are_one_line(tmp_path):
    r = cli("train", "--preset", "tiny-cpu", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "not a prepared dataset" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--preset", "nope", "--data", str(tmp_path))
    assert r.returncode == 2 and "unknown preset" in r.stderr
