"""Interrupts: SIGTERM/SIGINT recorded on every rank and agreed on, a second Ctrl-C aborts, Ctrl-C in prepare (one
line, nothing written), and a signal to one rank of a 2-process run stops both after the same step with one
checkpoint. (Ctrl-C in train, checkpoint + exit 130 + bit-exact resume: test_train.py.)"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import torch

from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.runtime.interrupts import STOP_REASONS, StopRequests, stop_code, stop_reason
from arcsolver.runtime.ranks import agree_on_stop

from conftest import BUNDLED, free_port

PY = sys.executable
BIN = Path(PY).parent
COMMON = ["--preset", "tiny-cpu", "--set", "arch.hidden_size=64", "--set", "eval_max_batches=1", "--set",
          "log_every=1", "--set", "checkpoint_interval_steps=0", "--batch-size", "16", "--cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("intr") / "data"
    build(d, [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=20, seed=1, canvas=10)
    return d


# ---------------------------------------------------------------------------------------------------------------
# the recording handler and the agreement, in process


def test_stop_requests_record_signals_and_a_later_second_ctrl_c_aborts():
    now = [100.0]
    with StopRequests(relay_window_s=1.0, clock=lambda: now[0]) as stops:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stops.received == "SIGTERM"
        os.kill(os.getpid(), signal.SIGINT)
        assert stops.received == "SIGINT"  # Ctrl-C outranks SIGTERM
        now[0] += 0.2
        os.kill(os.getpid(), signal.SIGINT)  # the launcher relaying the same Ctrl-C: not a second one
        assert stops.received == "SIGINT"
        now[0] += 2.0
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is not stops._on_signal  # handlers restored


def test_stop_reasons_are_ordered_and_a_received_signal_wins():
    assert [stop_reason(stop_code(r)) for r in STOP_REASONS] == list(STOP_REASONS)
    assert agree_on_stop(None, 1, None, None) == (None, None)
    assert agree_on_stop(None, 1, "time", None) == ("time", None)
    assert agree_on_stop(None, 1, "time", "SIGTERM") == ("signal", "SIGTERM")
    assert agree_on_stop(None, 1, "steps", "SIGINT") == ("signal", "SIGINT")


# ---------------------------------------------------------------------------------------------------------------
# one process


def _train_lines(run: Path) -> int:
    f = run / "metrics.jsonl"
    if not f.is_file():
        return 0
    return sum(1 for line in f.read_text().splitlines() if '"train"' in line)


def _wait(cond, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    end = time.time() + timeout
    while time.time() < end and not cond():
        assert proc.poll() is None, "the process ended before it could be signalled"
        time.sleep(0.01)
    assert cond(), "timed out waiting"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see the child's progress")
def test_ctrl_c_in_prepare_prints_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "work" / "sudoku"
    out.parent.mkdir()
    p = subprocess.Popen([PY, "-m", "arcsolver.cli", "prepare", "sudoku", "--generate", "500000", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait(lambda: _cpu_seconds(p.pid) > 2.5, p, timeout=120)  # imports done: generating (or compiling kernels)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.strip().startswith("interrupted (Ctrl-C)") and len(err.strip().splitlines()) == 1, err
    assert list(out.parent.iterdir()) == []  # no dataset, no temporary folder


# ---------------------------------------------------------------------------------------------------------------
# two processes (gloo on CPU): a signal to one rank


def _launch(data: Path, out: Path, port: int, steps: int, hf_home: Path, *extra: str) -> subprocess.Popen:
    cmd = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--main_process_port", str(port), "-m", "arcsolver.cli", "train", *COMMON, "--data", str(data),
           "--out", str(out), "--steps", str(steps), *extra]
    # HF_HOME holds `accelerate config`'s saved file: an empty one means no saved config at all.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", HF_HOME=str(hf_home))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _worker_pids(launcher: int) -> dict[int, int]:
    """rank -> pid of the launcher's training processes (their RANK environment variable)."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) != launcher:
                continue
            env = dict(kv.split("=", 1) for kv in (d / "environ").read_text().split("\0") if "=" in kv)
        except (OSError, ValueError):
            continue
        if "RANK" in env:
            found[int(env["RANK"])] = int(d.name)
    return found


def _records(run: Path) -> list[dict]:
    return [orjson.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("rank,sig,code", [(1, signal.SIGTERM, 0), (0, signal.SIGINT, 130)])
def test_a_signal_to_one_rank_stops_both_after_the_same_step_with_one_checkpoint(tmp_path, data, rank, sig, code):
    run, steps = tmp_path / "run", 5000
    p = _launch(data, run, free_port(), steps, tmp_path / "hf")
    _wait(lambda: _train_lines(run) >= 2 and len(_worker_pids(p.pid)) == 2, p)
    os.kill(_worker_pids(p.pid)[rank], sig)
    out, err = p.communicate(timeout=240)
    if code == 0:
        assert p.returncode == 0, err[-3000:]
    else:  # both workers exit 130; the launcher reports that its workers failed
        assert p.returncode != 0
        assert err.count("interrupted (Ctrl-C) after step") == 1, err[-3000:]
    ckpts = sorted(x.name for x in run.glob("step_*"))
    assert len(ckpts) == 1 and ckpts[0] == (run / "latest").read_text().strip()
    stopped_at = int(ckpts[0].split("_")[1])
    assert 2 <= stopped_at < steps
    recs = _records(run)
    sync = [x for x in recs if x["split"] == "sync"]
    assert len(sync) == 1 and sync[0]["step"] == stopped_at and sync[0]["in_sync"]
    st = torch.load(run / ckpts[0] / "train_state.pt", weights_only=False)
    assert st["step"] == stopped_at and len(st["loader"]) == 2  # both ranks' positions, saved at that step
    assert max(x["step"] for x in recs if x["split"] == "train") == stopped_at



# ---------------------------------------------------------------------------------------------------------------
# a signal during an evaluation: it ends within the batch in progress, the checkpoint is written


@pytest.mark.parametrize("which,sig,code", [("periodic", signal.SIGTERM, 0), ("final", signal.SIGTERM, 0),
                                            ("final", signal.SIGINT, 130)])
def test_a_signal_during_evaluation_stops_it_within_one_batch_with_a_checkpoint(tmp_path, data, monkeypatch, which,
                                                                                 sig, code):
    """`arcsolver train`, in process: the evaluation is made deterministic, not slow: the signal is sent from inside
    its second batch, and the evaluation must run no third batch (the old code evaluated every version of every test
    input regardless). Exit 0 after SIGTERM, 130 after Ctrl-C, as after a signal during training."""
    import arcsolver.inference.rollout as rollout_module
    from click.testing import CliRunner
    from arcsolver.cli import main
    from arcsolver.model.checks import check_checkpoint

    calls = {"n": 0}
    real = rollout_module.rollout

    def rollout_that_signals(model, batch, steps=None):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), sig)
        return real(model, batch, steps)

    monkeypatch.setattr(rollout_module, "rollout", rollout_that_signals)
    every = 1 if which == "periodic" else 0
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--preset", "tiny-cpu", "--data", str(data), "--out", str(run),
                                  "--steps", "3", "--batch-size", "8", "--cpu", "--set", "arch.hidden_size=16",
                                  "--set", "eval_batch_size=2", "--set", f"eval_interval_steps={every}",
                                  "--set", "checkpoint_interval_steps=0"])
    assert r.exit_code == code, r.output
    assert calls["n"] == 2, f"{calls['n']} evaluation batches ran; the stop came in the second"
    steps = 1 if which == "periodic" else 3
    assert f"after step {steps}: checkpoint" in r.stderr
    ck, _ = check_checkpoint(run)  # present, complete and loadable
    assert ck.name == f"step_{steps:07d}"
    records = [orjson.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert not [x for x in records if x.get("split") == "eval"], "a cut-short evaluation was logged as one"
