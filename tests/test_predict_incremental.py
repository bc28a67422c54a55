"""predict keeps what it has: whole tasks first, a complete valid file flushed atomically every batch, on SIGTERM
and at the deadline. Kill points are counted in flushes (a log line or the on_flush hook), never in seconds, and the
deadline runs on an injected clock."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from arcsolver.inference import predict as predict_mod
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.cli import main
from arcsolver.runtime.deadline import Deadline, ManualClock
from arcsolver.kaggle.runner import model_answers
from arcsolver.inference.predict import _task_completion_points, candidates_path, cheapest_tasks_first, predict
from arcsolver.inference.submission import build_submission, check_submission, fallback_submission
from arcsolver.inference.vote import candidates_json

from conftest import BUNDLED, bundled_tiny_checkpoint, free_port, launch_failure

BATCH = 8


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny checkpoint and the submission of one complete, uninterrupted prediction (the reference)."""
    tmp = tmp_path_factory.mktemp("incr")
    ckpt = bundled_tiny_checkpoint(tmp, num_aug=8)
    full = predict(ckpt, tmp / "full.json", quiet=True, cpu=True, batch_size=BATCH)
    assert full.stopped_by == "done" and full.tasks_complete == full.tasks
    return tmp, ckpt, json.loads((tmp / "full.json").read_text()), full


def ref_candidates(tmp) -> dict:
    """The candidates file of the fixture's complete run."""
    return json.loads(candidates_path(tmp / "full.json").read_text())


def _same_as_full(sub: dict, full: dict) -> int:
    return sum(sub[t] == full[t] for t in full)


def test_cheapest_tasks_first_groups_items_by_task():
    task = np.array([0, 0, 0, 1, 2, 2, 1, 3, 3, 3, 3])  # task 1's items are split: they get regrouped
    ver = np.arange(len(task))
    v, e = cheapest_tasks_first(ver, ver.copy(), task)
    assert task[v].tolist() == [1, 1, 2, 2, 0, 0, 0, 3, 3, 3, 3]  # 2-item tasks (dataset order), then 3, then 4
    assert v[:2].tolist() == [3, 6] and np.array_equal(v, e)
    assert _task_completion_points(task[v]).tolist() == [2, 4, 7, 11]


def test_whole_tasks_complete_early(run, tmp_path):
    tmp, ck, full, ref = run
    seen = []
    predict(ck, tmp_path / "s.json", quiet=True, cpu=True, batch_size=BATCH, flush_every=1, on_flush=seen.append)
    # after the first quarter of the items, whole tasks (not slices of all tasks) are done
    quarter = next(f for f in seen if f["items_done"] >= ref.predictions // 4)
    assert quarter["tasks_complete"] >= 2
    assert [f["flush"] for f in seen] == list(range(len(seen))) and seen[-1]["final"]


@pytest.mark.parametrize("at_flush", [0, 3, 9])
def test_sigterm_at_any_flush_keeps_every_vote_so_far(run, tmp_path, at_flush):
    tmp, ck, full, ref = run
    out = tmp_path / "s.json"
    seen = []
    before = signal.getsignal(signal.SIGTERM)

    def hook(info):
        seen.append(info)
        if info["flush"] == at_flush:
            os.kill(os.getpid(), signal.SIGTERM)  # handled by predict: finish the batch, flush, return
    res = predict(ck, out, quiet=True, cpu=True, batch_size=BATCH, flush_every=1, on_flush=hook)
    assert res.stopped_by == "signal" and res.items_done < ref.predictions
    tasks = load_tasks(BUNDLED)
    sub = json.loads(out.read_text())
    check_submission(sub, tasks)  # valid and complete
    assert sub == build_submission(tasks, res.book)  # every vote taken before the stop is in the file
    assert json.loads(candidates_path(out).read_text()) == candidates_json(res.book)  # and its candidates
    assert _same_as_full(sub, full) >= res.tasks_complete  # the finished tasks answer as the full run does
    if at_flush == 0:
        assert sub == fallback_submission(tasks)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored


def test_deadline_mid_prediction_keeps_the_answers_and_stops_in_time(run, tmp_path, monkeypatch):
    tmp, ck, full, ref = run
    clock = ManualClock(0.0)
    real = predict_mod.rollout

    def one_second_per_batch(model, batch, steps=None):
        clock.advance(1.0)
        return real(model, batch, steps)
    monkeypatch.setattr(predict_mod, "rollout", one_second_per_batch)
    deadline = Deadline(7.0, clock)
    out = tmp_path / "s.json"
    res = predict(ck, out, quiet=True, cpu=True, batch_size=BATCH, deadline=deadline, flush_every=100)
    assert res.stopped_by == "deadline" and clock.now() <= deadline.at
    assert 0 < res.items_done < ref.predictions
    sub = json.loads(out.read_text())
    check_submission(sub, load_tasks(BUNDLED))
    assert sub == build_submission(load_tasks(BUNDLED), res.book)
    assert _same_as_full(sub, full) >= res.tasks_complete >= 1


def test_cli_with_a_passed_deadline_writes_a_complete_file_and_exits_0(run, tmp_path):
    tmp, ck, full, ref = run
    out = tmp_path / "s.json"
    r = CliRunner().invoke(main, ["predict", "--checkpoint", str(ck), "--out", str(out), "--cpu",
                                  "--deadline", "1000"])
    assert r.exit_code == 0, r.output
    assert "stopped by the deadline" in r.output
    assert json.loads(out.read_text()) == fallback_submission(load_tasks(BUNDLED))


# The SIGKILL child: predict with a flush per batch, one stdout line per flush (its info as JSON), and after its
# final flush it waits (on stdin) to be killed, so it can never end on its own before the parent's kill, however the
# two processes are scheduled. It exits if the parent goes away (stdin closes).
_KILL_CHILD = """
import json, sys
from arcsolver.inference.predict import predict

def hook(info):
    print(json.dumps(info), flush=True)
    if info["final"]:
        sys.stdin.read()

predict(sys.argv[1], sys.argv[2], quiet=True, cpu=True, batch_size=int(sys.argv[3]), flush_every=1, on_flush=hook)
"""


@pytest.mark.parametrize("share", [0.3, 0.6, 0.9])
def test_sigkill_after_a_flush_leaves_a_valid_complete_file(run, tmp_path, share):
    """SIGKILL right after the child reports flush k (k = share of its batches; with a flush per batch the run
    makes exactly one flush before the first batch, one after each batch and a final one): whatever it was doing
    then (a batch, another flush, or waiting after its last), the file on disk is valid, complete and has every task
    finished by flush k."""
    tmp, ck, full, ref = run
    n_batches = -(-ref.predictions // BATCH)
    k = max(1, round(share * n_batches))
    assert k < n_batches + 1  # a flush the run makes before its final one
    out = tmp_path / "s.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_CHILD, str(ck), str(out), str(BATCH)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    at_k = None
    try:
        for line in proc.stdout:
            info = json.loads(line)
            if info["flush"] == k:
                at_k = info
                alive = proc.poll() is None
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait()
    assert at_k is not None and alive, "the child ended before flush k"
    assert not at_k["final"] and at_k["items_done"] == min(k * BATCH, ref.predictions)
    tasks = load_tasks(BUNDLED)
    sub = json.loads(out.read_text())
    check_submission(sub, tasks)
    assert _same_as_full(sub, full) >= at_k["tasks_complete"]
    # The candidates are flushed with the submission (after it): at least the test inputs voted by flush k, and
    # every test input whose votes were all in (as many predictions as the full run's) is answered in the
    # submission by its top two candidates, in rank order.
    cands = json.loads(candidates_path(out).read_text())
    full_n = {(t, e["test_index"]): e["n_predictions"] for t, es in ref_candidates(tmp).items() for e in es}
    named = {(t, e["test_index"]): e for t, es in cands.items() for e in es}
    assert len(named) >= at_k["test_inputs_voted"] >= 1
    complete = [key for key, e in named.items() if e["n_predictions"] == full_n[key]]
    by_id = {x.id: x for x in tasks}
    assert len(complete) >= at_k["tasks_complete"]
    for (t, i) in complete:
        grids = [c["grid"] for c in named[(t, i)]["candidates"][:2]]
        grids += [by_id[t].test[i].input.tolist()] * (2 - len(grids))  # no second candidate: the input
        assert [sub[t][i]["attempt_1"], sub[t][i]["attempt_2"]] == grids
    # and the Kaggle runner counts the model's answers from them
    assert model_answers(out, sub, tasks) == {key for key, e in named.items() if e["candidates"]}


def test_automatic_flushing_backs_off_when_writing_is_expensive(run, tmp_path, monkeypatch):
    """flush_every=0: every 4 batches, doubled while a flush costs > 5% of the time since the previous one (batches
    of 1 s and writes of 0.5 s, simulated)."""
    tmp, ck, full, ref = run
    clock = ManualClock(0.0)
    real_rollout, real_write = predict_mod.rollout, predict_mod.write_submission

    def rollout(model, batch, steps=None):
        clock.advance(1.0)
        return real_rollout(model, batch, steps)

    def write(*a, **k):
        clock.advance(0.5)
        return real_write(*a, **k)
    monkeypatch.setattr(predict_mod, "rollout", rollout)
    monkeypatch.setattr(predict_mod, "write_submission", write)
    seen = []
    res = predict(ck, tmp_path / "s.json", quiet=True, cpu=True, batch_size=BATCH, deadline=Deadline(None, clock),
                  on_flush=seen.append)
    batches = [-(-f["items_done"] // BATCH) for f in seen if not f["final"]]
    gaps = [b - a for a, b in zip(batches, batches[1:])]
    assert gaps[0] == 4 and gaps == sorted(gaps) and gaps[-1] > 4  # 4, then 8, ...
    assert res.stopped_by == "done" and seen[-1]["final"]


def test_an_error_mid_prediction_still_leaves_every_vote_on_disk(run, tmp_path, monkeypatch):
    tmp, ck, full, ref = run
    real = predict_mod.rollout
    calls = {"n": 0}

    def failing(model, batch, steps=None):
        calls["n"] += 1
        if calls["n"] == 6:
            # not an out-of-memory error: those halve the micro-batch and retry (microbatch.run_halving_on_oom)
            raise RuntimeError("CUDA error: device-side assert triggered (simulated)")
        return real(model, batch, steps)
    monkeypatch.setattr(predict_mod, "rollout", failing)
    seen = []
    out = tmp_path / "s.json"
    with pytest.raises(RuntimeError, match="device-side assert"):
        predict(ck, out, quiet=True, cpu=True, batch_size=BATCH, flush_every=100, on_flush=seen.append)
    assert seen[-1]["final"] and seen[-1]["items_done"] == 5 * BATCH  # flushed on the way out, 5 batches voted
    sub = json.loads(out.read_text())
    check_submission(sub, load_tasks(BUNDLED))
    assert _same_as_full(sub, full) >= seen[-1]["tasks_complete"] >= 1


def test_two_processes_stop_and_flush_together(run, tmp_path):
    """Under `accelerate launch` every process takes the same stop decision each batch (a collective): with a
    deadline far away and a flush per batch the run completes, and the main process's file is complete."""
    from pathlib import Path
    tmp, ck, full, ref = run
    out = tmp_path / "s.json"
    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()),
           "-m", "arcsolver.cli", "predict", "--checkpoint", str(ck), "--out", str(out), "--cpu", "--batch-size",
           str(BATCH), "--flush-every", "1", "--time-budget", "10m"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, launch_failure(r.stderr)
    flushes = [line for line in r.stderr.replace("\r", "\n").splitlines() if "predict: flush " in line]
    assert len(flushes) >= ref.predictions // BATCH and "12/12 tasks complete" in flushes[-1]
    check_submission(json.loads(out.read_text()), load_tasks(BUNDLED))
