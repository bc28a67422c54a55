"""Training: the 2-process Accelerate run keeps ranks identical; resume after SIGKILL is bit-exact; the CLI."""
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks

from conftest import BUNDLED, free_port, launch_failure, sigkill_at_first_checkpoint

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


STEPS = 12


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data):
    """The uninterrupted run the interrupted-and-resumed ones must equal bit for bit."""
    out = tmp_path_factory.mktemp("straight") / "run"
    r = cli("train", *COMMON, "--data", str(data), "--out", str(out), "--steps", str(STEPS))
    assert r.returncode == 0, r.stderr
    return out


def test_resume_after_sigkill_is_bit_exact(tmp_path, data, straight):
    steps = STEPS
    # Same run, killed with SIGKILL once the step-4 checkpoint exists, then resumed.
    killed = tmp_path / "killed"
    at = sigkill_at_first_checkpoint([PY, "-m", "arcsolver.cli", "train", *COMMON, "--data", str(data), "--out",
                                      str(killed), "--steps", str(steps)], killed)
    assert at != f"step_{steps:07d}", "the run finished before it could be killed"
    r = cli("train", *COMMON, "--data", str(data), "--out", str(killed), "--steps", str(steps), "--resume", str(killed))
    assert r.returncode == 0, r.stderr
    assert (killed / "latest").read_text().strip() == f"step_{steps:07d}"
    a, b = weights(straight), weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_ctrl_c_checkpoints_exits_130_with_one_line_and_resumes_bit_exact(tmp_path, data, straight):
    """SIGINT (Ctrl-C) finishes the step, writes a checkpoint, says where in one line, exits 130; resuming from it
    gives the uninterrupted run's weights."""
    run = tmp_path / "interrupted"
    p = subprocess.Popen([PY, "-m", "arcsolver.cli", "train", *COMMON, "--data", str(data), "--out", str(run),
                          "--steps", str(STEPS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.is_file() and '"train"' in metrics.read_text()):
        assert p.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.005)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    at = (run / "latest").read_text().strip()
    assert at != f"step_{STEPS:07d}", "the run finished before it could be interrupted"
    lines = [x for x in err.splitlines() if x.startswith("interrupted")]
    assert len(lines) == 1 and f"checkpoint {run / at}" in lines[0] and "--resume" in lines[0], err
    assert "Traceback" not in err and "Aborted" not in err
    r = cli("train", *COMMON, "--data", str(data), "--out", str(run), "--steps", str(STEPS), "--resume", str(run))
    assert r.returncode == 0, r.stderr
    a, b = weights(straight), weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _launch_two(data: Path, out: Path, port: int, hf_home: Path, steps: int = 6,
                extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """A 2-process gloo run through plain `accelerate launch`, no precision flags: the maths is pinned in code.
    HF_HOME holds `accelerate config`'s saved file (an empty folder: no saved config)."""
    cmd = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--main_process_port", str(port), "-m", "arcsolver.cli", "train", *COMMON, "--data", str(data),
           "--out", str(out), "--steps", str(steps), *extra,
           "--time-budget", "10m"]  # a deadline far away: the plan is made and broadcast, max_steps still ends it
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", HF_HOME=str(hf_home))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("ddp")
    # with TensorBoard where its extra is installed (test_tensorboard_gets_what_metrics_jsonl_gets reads it back)
    tb = ("--log-with", "tensorboard") if importlib.util.find_spec("tensorboard") else ()
    r = _launch_two(data, tmp / "ddp", free_port(), tmp / "empty-hf", extra=tb)
    assert r.returncode == 0, launch_failure(r.stderr)
    (tmp / "stdout.txt").write_text(r.stdout)
    return tmp / "ddp"


def test_two_process_accelerate_run_keeps_ranks_identical(two_process_run):
    out = two_process_run
    recs = [read_json_line(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["choices"]["planned_steps"] for x in recs if x["split"] == "plan"][-1] == 6
    sync = [x for x in recs if x["split"] == "sync"]
    assert sync and sync[-1]["in_sync"] and len(sync[-1]["rank_fingerprints"]) == 2
    assert (out / "step_0000006" / "model.safetensors").is_file()


def test_tensorboard_gets_what_metrics_jsonl_gets(two_process_run):
    """The 2-process run's TensorBoard events (first process only, read back with TensorBoard's own reader) hold
    every number of metrics.jsonl, at its step, and the run's config as hyper-parameters."""
    if not importlib.util.find_spec("tensorboard"):
        pytest.skip("tensorboard is not installed (pip install 'arcsolver[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from arcsolver.runtime.trackers import scalars
    expected: dict[str, list] = {}
    for rec in (read_json_line(x) for x in (two_process_run / "metrics.jsonl").read_text().splitlines()):
        metrics = {k: v for k, v in rec.items() if k not in ("step", "split", "time")}
        for tag, v in scalars(rec["split"], metrics).items():
            expected.setdefault(tag, []).append((rec["step"], pytest.approx(v, rel=1e-6, abs=1e-30)))
    runs = list((two_process_run / "trackers").iterdir())
    assert [p.name for p in runs] == ["arcsolver"]  # one writer: rank 1 logs nothing
    events = EventAccumulator(str(runs[0]), size_guidance={"scalars": 0})
    events.Reload()
    got = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert {"train/loss_per_sample", "train/lr", "train/samples_per_s", "eval/exact_accuracy"} <= set(got)
    assert got == expected
    assert list(runs[0].glob("*/hparams.yml")) and "train.lr" in next(runs[0].glob("*/hparams.yml")).read_text()


def test_only_the_first_process_prints_the_summary(two_process_run):
    # rank 1 saves no checkpoint; it once printed its own summary line too, "...; checkpoint None"
    lines = [x for x in (two_process_run.parent / "stdout.txt").read_text().splitlines() if x.startswith("stopped after")]
    assert len(lines) == 1 and lines[0].endswith(f"checkpoint {two_process_run / 'step_0000006'}"), lines


def test_a_hostile_accelerate_config_does_not_change_the_run(tmp_path, data, two_process_run):
    """A saved `accelerate config` asking for fp16 and an inductor-compiled model gives the same weights as no
    config (unpinned, this run compiles the DDP model for minutes and its weights differ in the 8th digit)."""
    hostile = tmp_path / "hostile-hf"
    (hostile / "accelerate").mkdir(parents=True)
    (hostile / "accelerate" / "default_config.yaml").write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nmixed_precision: fp16\n"
        "dynamo_config:\n  dynamo_backend: INDUCTOR\nnum_machines: 1\nnum_processes: 2\nmachine_rank: 0\n"
        "use_cpu: true\n")
    r = _launch_two(data, tmp_path / "hostile", free_port(), hostile)
    assert r.returncode == 0, launch_failure(r.stderr)
    a, b = weights(two_process_run), weights(tmp_path / "hostile")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_first_three_steps_use_the_reference_learning_rates(tmp_path, data, monkeypatch):
    """The step is counted before its LR is computed (reference pretrain.py train_batch): with a 4-step warm-up the
    optimizers step at 1/4, 2/4, 3/4 of their base LR -- the first step is not at lr 0."""
    from arcsolver.model.adam_atan2 import AdamAtan2
    from arcsolver.training.config import build_config
    from arcsolver.model.puzzle_embedding import SignSGDSparse
    from arcsolver.training.train import train
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


def test_resume_from_an_earlier_checkpoint_logs_each_step_once(tmp_path, data):
    from arcsolver.training.config import build_config
    from arcsolver.training.train import train
    out = tmp_path / "run"
    cfg = build_config("tiny-cpu", ["checkpoint_interval_steps=2", "log_every=1", "eval_max_batches=1"],
                       data=str(data), out=str(out), max_steps=4)
    train(cfg, cpu=True, quiet=True)
    # Resume from step 2 while the log already holds steps 3 and 4 (as after a crash past a checkpoint).
    train(cfg, resume=str(out / "step_0000002"), cpu=True, quiet=True)
    recs = [read_json_line(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in recs if r["split"] == "train"]
    assert train_steps == [1, 2, 3, 4]
    assert [r["step"] for r in recs if r["split"] == "eval"] == [4]


def test_drop_after_keeps_lines_up_to_the_step_and_drops_a_torn_last_line(tmp_path):
    from arcsolver.runtime.metrics_log import drop_after
    p = tmp_path / "m.jsonl"
    p.write_bytes(b'{"step": 1, "split": "train"}\n{"step": 2, "split": "eval"}\n{"step": 3, "split": "train"}\n{"st')
    assert drop_after(p, 2) == 2
    assert p.read_bytes() == b'{"step": 1, "split": "train"}\n{"step": 2, "split": "eval"}\n'
    assert drop_after(p, 2) == 0
