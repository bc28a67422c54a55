"""Long phases are visible: the final evaluation says its size and estimated time before it starts (and how to cap
it when it would outlast the training), then shows a bar over its batches. Simulated time (an injected clock and
step time), so nothing here depends on the machine's speed; a signal during the evaluation stops it."""
import os
import signal

import pytest

from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.runtime.deadline import Deadline, ManualClock
from arcsolver.training import train as train_mod
from arcsolver.training.config import build_config
from arcsolver.training.train import final_eval_notice, train

from conftest import BUNDLED


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("progress") / "data"
    build(d, [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=4, seed=1, canvas=10)
    return d


def test_the_final_evaluation_announces_its_estimate_and_the_cap_then_shows_a_bar(tmp_path, data, monkeypatch,
                                                                                   capsys):
    clock = ManualClock(1000.0)
    real = train_mod.batch_to

    def two_seconds_per_step(batch, device):
        clock.advance(2.0)
        return real(batch, device)
    monkeypatch.setattr(train_mod, "batch_to", two_seconds_per_step)
    cfg = build_config("tiny-cpu", ["max_steps=2", "eval_max_batches=3"], data=str(data), out=str(tmp_path / "r"))
    train(cfg, cpu=True, quiet=False, deadline=Deadline(None, clock))
    err = capsys.readouterr().err
    lines = [x for x in err.replace("\r", "\n").splitlines() if x.startswith("final evaluation")]
    # 3 batches of 8 rows; tiny-cpu's evaluation costs 2 training steps per batch (8 rows x 4 supervision steps
    # against 8 rows x (1 + 2/H_cycles=2)): 6 steps x 2 s = 12 s, three times the 4 s of training.
    assert lines[0] == ("final evaluation: 3 batches (24 test rows), about 12s, longer than the 4.0s of training "
                        "before it; cap it with --set eval_max_batches=1 (about 4.0s)"), err
    assert any("3/3" in x for x in lines[1:]), err  # then the bar, which ends at its total


def test_an_evaluation_shorter_than_the_training_is_announced_without_a_warning():
    assert final_eval_notice(80, 10, 5.0, 2.0, 100.0) == "final evaluation: 10 batches (80 test rows), about 10s"
    assert final_eval_notice(80, 10, 5.0, None, 0.0) == "final evaluation: 10 batches (80 test rows)"


def test_a_signal_during_the_final_evaluation_ends_it_after_the_batch_and_keeps_the_checkpoint(tmp_path, data,
                                                                                              monkeypatch):
    """SIGTERM (or Ctrl-C) takes effect within one batch of an evaluation too: the run ends as a signal ends it,
    with its checkpoint, and logs no evaluation it did not finish."""
    from arcsolver.inference import rollout as rollout_mod
    real, calls = rollout_mod.rollout, []

    def rollout_then_sigterm(*a, **kw):
        calls.append(1)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the first evaluation batch is in hand
        return real(*a, **kw)
    monkeypatch.setattr(rollout_mod, "rollout", rollout_then_sigterm)
    cfg = build_config("tiny-cpu", ["max_steps=2", "eval_max_batches=3"], data=str(data), out=str(tmp_path / "r"))
    res = train(cfg, cpu=True, quiet=True)
    assert (res.stopped_by, res.signal, res.steps, len(calls)) == ("signal", "SIGTERM", 2, 1)
    assert res.checkpoint is not None and (res.checkpoint / "model.safetensors").is_file()
    assert '"eval"' not in (tmp_path / "r" / "metrics.jsonl").read_text() and not res.eval_metrics
