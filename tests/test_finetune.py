"""Fine-tuning on unseen tasks: new puzzle rows, both phases, the deadline plan that degrades instead of refusing,
a valid submission. Time is simulated (an injected clock, injected step and batch times): no wall-clock asserts."""
import json
import subprocess
import sys

import pytest
import torch

from arcsolver.model import checkpoint
from arcsolver.training import finetune as finetune_mod
from arcsolver.inference import predict as predict_mod
from arcsolver.training import train as train_mod
from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.training.config import build_config
from arcsolver.runtime.deadline import Deadline, ManualClock
from arcsolver.training.finetune import finetune
from arcsolver.training.finetune_plan import AUG_FLOOR, MIN_STEPS, Costs, decide
from arcsolver.inference.submission import check_submission
from arcsolver.training.train import train

from conftest import BUNDLED


def test_mean_table_initialisation():
    from arcsolver.model.puzzle_embedding import extend_table
    old = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 6.0]])
    new, kept = extend_table(old, None, ["<blank>", "a", "b", "c"])
    assert kept == 0 and new.shape == (4, 2) and torch.equal(new, torch.tensor([[2.0, 4.0]] * 4))  # blank excluded
    # with the checkpoint's row names, a row it was trained for keeps its row; the others start at the mean
    new, kept = extend_table(old, ["<blank>", "x", "y"], ["<blank>", "new", "y", "x"])
    assert kept == 2 and torch.equal(new, torch.tensor([[2.0, 4.0], [2.0, 4.0], [3.0, 6.0], [1.0, 2.0]]))


# ---------------------------------------------------------------------------------------------------------------
# the ladder, on synthetic costs

COSTS = Costs(sup_step_s=0.5, predict_batch=256, predict_steps=16, train_batch=768, h_cycles=3, load_s=5.0,
              checkpoint_s=2.0, phase_start_s=5.0, prepare_per_version_s=1e-3)
# a Kaggle-like job: 120 tasks, 172 test inputs, 300 augmentations
JOB = dict(n_tasks=120, n_test_inputs=172, num_aug=300, predict=True, embed_fraction=0.2)
ORDER = ["steps", "augmentations", "versions", "training"]


def test_a_time_budget_override_is_refused_not_ignored():
    """The run's one Deadline comes from --time-budget / --deadline; a training field cannot add a second clock."""
    from arcsolver.runtime.errors import InputError
    with pytest.raises(InputError, match="--time-budget or --deadline") as e:
        finetune_mod._finetune_config({}, ["time_budget_s=60"], None, 1.0, 0)
    assert e.value.field == "time_budget_s"


def test_cost_model_arithmetic():
    c = COSTS
    assert c.row_s == 0.5 / 256
    assert c.train_step_s() == pytest.approx(0.5 / 256 * 768 * (1 + 2 / 3) * 0.9)
    assert c.train_step_s(embed_only=True) == c.train_step_s()  # measured: the same cost on CPU
    # 172 inputs x 301 versions = 51772 rows = 202.2 batches of 256, 16 steps each, +10% for undo/vote, + load
    assert c.predict_s(172, 301) == pytest.approx(5.0 + 51772 / 256 * 16 * 0.5 * 1.1)


def test_a_long_window_cuts_nothing():
    d = decide(COSTS, 12 * 3600, **JOB)
    assert d.cuts == [] and d.num_aug == 300 and d.versions == 301 and d.steps > 1000
    assert "prediction" in d.plan.reserves and d.plan.choices["cut"] == "nothing"


def test_the_ladder_cuts_steps_then_augmentations_then_versions_then_training():
    seen = []
    for window in [20000, 3000, 2000, 1500, 1000, 600, 300, 120, 60, 30, 10, 1, 0, -5]:
        d = decide(COSTS, window, **JOB)
        assert d.cuts == ORDER[:len(d.cuts)] or d.cuts == ["steps", "training"] or \
            d.cuts == ["steps", "augmentations", "training"], d.cuts  # always a prefix of the order
        assert 1 <= d.versions <= d.num_aug + 1 and AUG_FLOOR <= d.num_aug <= 300
        if d.train_s > 0:
            assert d.steps >= MIN_STEPS
            # what is planned fits the window
            assert d.train_s + d.plan.reserves["prediction"] + d.plan.phases["prepare"] <= window
        seen.append(tuple(d.cuts))
    assert ("steps", "augmentations") in seen and ("steps", "augmentations", "versions") in seen
    assert seen[-1][-1] == "training"
    # lengths of the cut list only grow as the window shrinks
    assert [len(c) for c in seen] == sorted(len(c) for c in seen)


def test_mean_embedding_keeps_as_many_versions_as_fit():
    d = decide(COSTS, 40, **JOB)
    assert d.mean_embedding_only and d.steps == 0
    assert d.versions > 1 and COSTS.predict_s(172, d.versions) + COSTS.prepare_s(120, d.num_aug) <= 40
    assert COSTS.predict_s(172, min(d.num_aug + 1, 2 * d.versions)) + COSTS.prepare_s(120, d.num_aug) > 40


def test_without_prediction_all_time_goes_to_training():
    d = decide(COSTS, 600, **{**JOB, "predict": False})
    assert d.cuts == [] and "prediction" not in d.plan.reserves and d.steps > 0


def test_a_prepared_dataset_keeps_its_augmentations():
    d = decide(COSTS, 400, **JOB, prepared=True, versions_per_task=250)
    assert d.num_aug == 300 and "augmentations" not in d.cuts and d.versions <= 250


# ---------------------------------------------------------------------------------------------------------------
# finetune end to end in simulated time


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ft")
    tasks = load_tasks(BUNDLED)
    data = tmp / "data"
    build(data, [TaskSet("pre", tasks[:8], test_set=True)], num_aug=3, seed=0, canvas=10)
    res = train(build_config("tiny-cpu", ["max_steps=3"], data=str(data), out=str(tmp / "pre")), cpu=True,
                quiet=True, final_eval=False)
    unseen = tmp / "unseen"
    unseen.mkdir()
    for t in tasks[8:]:
        (unseen / f"{t.id}.json").write_text(json.dumps(t.to_json()))
    return res.checkpoint, unseen


def _simulate(monkeypatch, clock, *, step_s, batch_s, costs):
    """Training steps take `step_s`, prediction batches `batch_s` simulated seconds; the plan's measurement returns
    `costs`."""
    real_batch_to, real_rollout = train_mod.batch_to, predict_mod.rollout

    def timed_batch_to(batch, device):
        clock.advance(step_s)
        return real_batch_to(batch, device)

    def timed_rollout(model, batch, steps=None):
        clock.advance(batch_s)
        return real_rollout(model, batch, steps)
    monkeypatch.setattr(train_mod, "batch_to", timed_batch_to)
    monkeypatch.setattr(predict_mod, "rollout", timed_rollout)
    monkeypatch.setattr(finetune_mod, "measure_costs", lambda *a, **k: costs)


def _tiny_costs(sup_step_s):
    return Costs(sup_step_s=sup_step_s, predict_batch=24, predict_steps=4, train_batch=8, h_cycles=2, load_s=1.0,
                 checkpoint_s=1.0, phase_start_s=1.0, prepare_per_version_s=1e-3)


def test_finetune_under_a_deadline_trains_both_phases_and_predicts_in_time(pretrained, tmp_path, monkeypatch):
    ck, unseen = pretrained
    clock = ManualClock(0.0)
    _simulate(monkeypatch, clock, step_s=0.5, batch_s=0.5, costs=_tiny_costs(0.1))
    deadline = Deadline(30.0, clock)
    s = finetune(ck, str(unseen), tmp_path / "ft", deadline=deadline, predict_after=True, num_aug=5, cpu=True,
                 quiet=True)
    assert clock.now() <= deadline.at
    assert s["embed_steps"] > 0 and s["full_steps"] > 0 and not s["mean_embedding_only"]
    assert s["plan"]["choices"]["cut"] == "nothing" and s["predict_stopped_by"] == "done"
    sub = json.loads((tmp_path / "ft" / "submission.json").read_text())
    check_submission(sub, load_tasks(unseen))
    # the fine-tuned table has rows for the new versions only, and the network moved in phase 2
    w = checkpoint.load_weights(s["checkpoint"], ema=False)
    meta = json.loads((tmp_path / "ft" / "data" / "meta.json").read_text())
    assert w["model.inner.puzzle_emb.weights"].shape[0] == meta["num_puzzle_identifiers"]
    w0 = checkpoint.load_weights(ck, ema=True)
    k = "model.inner.lm_head.weight"
    assert not torch.equal(w[k], w0[k])


def test_finetune_with_no_time_to_train_predicts_with_the_mean_embedding(pretrained, tmp_path, monkeypatch):
    ck, unseen = pretrained
    clock = ManualClock(0.0)
    _simulate(monkeypatch, clock, step_s=5.0, batch_s=0.5, costs=_tiny_costs(5.0))
    deadline = Deadline(30.0, clock)
    s = finetune(ck, str(unseen), tmp_path / "ft", deadline=deadline, predict_after=True, num_aug=5, cpu=True,
                 quiet=True)
    assert s["mean_embedding_only"] and s["embed_steps"] == s["full_steps"] == 0
    assert "training" in s["plan"]["choices"]["cut"] and clock.now() <= deadline.at
    check_submission(json.loads((tmp_path / "ft" / "submission.json").read_text()), load_tasks(unseen))
    w = checkpoint.load_weights(s["checkpoint"], ema=False)
    table = w["model.inner.puzzle_emb.weights"]
    assert torch.equal(table, table[:1].expand_as(table))  # every row is the mean row


def test_finetune_cli_never_refuses_for_lack_of_time(pretrained, tmp_path):
    """A 1 s budget is over before the imports finish: still exit 0 and a valid, complete submission (whatever
    this machine's speed made of it), never exit 2."""
    ck, unseen = pretrained
    r = subprocess.run([sys.executable, "-m", "arcsolver.cli", "finetune", "--from", str(ck), "--tasks",
                        str(unseen), "--time-budget", "1s", "--predict", "--out", str(tmp_path / "ft"),
                        "--num-aug", "3", "--cpu"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    check_submission(json.loads((tmp_path / "ft" / "submission.json").read_text()), load_tasks(unseen))


def test_finetune_without_any_limit_needs_fixed_steps(pretrained, tmp_path):
    from arcsolver.runtime.errors import InputError
    ck, unseen = pretrained
    with pytest.raises(InputError, match="no time limit"):
        finetune(ck, str(unseen), tmp_path / "ft", cpu=True, quiet=True)
    assert not (tmp_path / "ft").exists()


def test_fixed_steps_that_would_overrun_the_deadline_are_cut_and_prediction_still_runs(pretrained, tmp_path,
                                                                                        monkeypatch):
    """--embed-steps/--full-steps under a deadline: 50 + 50 steps of 0.5 s do not fit in 30 s. Training stops at
    the deadline minus the prediction reserve (priced by the planner's cost model and listed in the plan), so the
    prediction runs to the end and the submission holds the model's votes."""
    ck, unseen = pretrained
    clock = ManualClock(0.0)
    costs = _tiny_costs(0.85)  # the cost model's step: 0.85 / 24 rows x 8 rows x (1 + 2/2) x 0.9 = 0.51 s
    _simulate(monkeypatch, clock, step_s=0.5, batch_s=0.5, costs=costs)
    deadline = Deadline(30.0, clock)
    out = tmp_path / "ft"
    s = finetune(ck, str(unseen), out, deadline=deadline, predict_after=True, num_aug=5, cpu=True, quiet=True,
                 embed_steps=50, full_steps=50)
    reserves = s["plan"]["reserves"]
    assert reserves["prediction"] > 0 and s["predict_estimate_s"] == reserves["prediction"]
    assert s["plan"]["choices"]["cut"].startswith("steps")
    assert 0 < s["embed_steps"] + s["full_steps"] < 100  # trained, and cut
    assert s["predict_stopped_by"] == "done" and clock.now() <= deadline.at
    tasks = load_tasks(unseen)
    sub = json.loads((out / "submission.json").read_text())
    check_submission(sub, tasks)
    cands = json.loads((out / "submission.candidates.json").read_text())
    assert sum(len(e) for e in cands.values()) == sum(len(t.test) for t in tasks)  # every test input has votes
    assert s["tasks_complete"] == len(tasks)
