"""Durations, deadlines, the step planner and training under a deadline: all in simulated time (an injected clock,
an injected step time), so nothing here depends on the machine's speed."""
import math
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from arcsolver.training import train as train_mod
from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.cli import main
from arcsolver.training.config import build_config
from arcsolver.runtime.deadline import Deadline, ManualClock, StepPlanner, TickingClock
from arcsolver.runtime.errors import InputError
from arcsolver.training.train import lr_at, size_schedule, train
from arcsolver.runtime.units import format_seconds, parse_deadline, parse_duration

from conftest import BUNDLED


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("3m", 180), ("2h", 7200), ("1h30m", 5400),
                                          ("1.5h", 5400), (" 45s ", 45), ("0.5", 0.5), ("none", None),
                                          ("NONE", None)])
def test_durations_read(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "infinity", "-5", "0", "0s", "0h0m", "-5m", "soon",
                                  "", "5x", "1e999", "m5", "1h 30"])
def test_bad_durations_are_refused_naming_the_option(text):
    with pytest.raises(InputError) as e:
        parse_duration(text, "--time-budget")
    assert e.value.field == "--time-budget" and "\n" not in str(e.value)


def test_deadlines_read_epoch_and_iso_and_refuse_garbage():
    assert parse_deadline("1796000000") == 1796000000.0
    assert parse_deadline("none") is None
    utc = datetime(2026, 11, 30, 18, 0, tzinfo=timezone.utc).timestamp()
    assert parse_deadline("2026-11-30T18:00:00Z") == utc
    assert parse_deadline("2026-11-30T18:00:00") == utc  # no zone: UTC, the same moment everywhere
    assert parse_deadline("2026-11-30T19:00:00+01:00") == utc
    for bad in ["tomorrow", "nan", "inf", "-3", "0", "2026-13-01T00:00"]:
        with pytest.raises(InputError) as e:
            parse_deadline(bad)
        assert e.value.field == "--deadline"


def test_format_seconds():
    assert [format_seconds(s) for s in (5, 37, 240, 7500, math.inf)] == ["5.0s", "37s", "4m00s", "2h05m",
                                                                         "no limit"]


def test_deadline_resolve_earlier_wins_and_sub_deadlines():
    clock = ManualClock(1000.0)
    assert Deadline.resolve(None, None, 1000.0, clock).at is None
    assert Deadline.resolve(None, 60.0, 990.0, clock).at == 1050.0  # the budget counts from process start
    assert Deadline.resolve(1030.0, 60.0, 990.0, clock).at == 1030.0
    assert Deadline.resolve(1100.0, 60.0, 990.0, clock).at == 1050.0
    d = Deadline(1050.0, clock)
    assert d.remaining() == 50.0 and not d.passed()
    assert d.earlier_by(20).remaining() == 30.0
    clock.advance(50)
    assert d.passed() and Deadline(None, clock).remaining() == math.inf


def test_step_planner_plans_from_timed_steps_and_stops_before_the_reserves():
    clock = ManualClock(0.0)
    p = StepPlanner(Deadline(100.0, clock), {"checkpoint": 4.0})
    assert p.fit(0) is None and not p.should_stop()  # nothing timed yet, no prior estimate
    for s in (9.0, 2.0, 2.0):  # the first step warms up: not trusted once others are timed
        clock.advance(s)
        p.observe(s)
    assert p.step_s() == 2.0
    # 100 - 13 elapsed - 4 reserve = 83 s; less half a step of margin -> 41 whole steps after step 3
    assert p.fit(3) == 3 + 41
    steps = 3
    while not p.should_stop():
        clock.advance(2.0)
        p.observe(2.0)
        steps += 1
    assert steps == 44 and clock.now() + 4.0 <= 100.0  # the reserve is intact
    # periodic evaluations/checkpoints amortized over the steps shorten the plan
    r = StepPlanner(Deadline(100.0, ManualClock(0.0)))
    r.observe(2.0)
    r.observe(2.0)
    assert r.fit(0) == 49
    r.overhead_per_step = 2.0  # e.g. a 20 s evaluation every 10 steps
    assert r.fit(0) == 24
    # a prior (throughput) estimate is used before any step is timed
    q = StepPlanner(Deadline(10.0, ManualClock(0.0)), {"checkpoint": 4.0}, prior_step_s=5.0)
    assert q.should_stop()  # 6 s usable < 1.5 steps of 5 s


def test_schedule_is_sized_to_the_planned_steps():
    assert size_schedule(50, 100000, None) == train_mod._Schedule(50, 100000, 100000)
    s = size_schedule(50, 100000, 200)
    assert (s.warmup, s.total, s.end) == (20, 200, 200)  # warm-up cut to 10% of the planned steps
    assert size_schedule(5, 100000, 200).warmup == 5  # a short warm-up is kept
    assert size_schedule(50, 100, 400).end == 100  # max_steps still caps
    lr_end = lr_at(s.end - 1, 1e-3, s.warmup, s.total, 0.1)
    assert lr_end == pytest.approx(1e-4, rel=0.01)  # the cosine has decayed by the last planned step


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("deadline") / "data"
    build(d, [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=4, seed=1, canvas=10)
    return d


def _simulated_steps(monkeypatch, clock: ManualClock, step_s):
    """Each training step takes `step_s(k)` simulated seconds (k = 0, 1, ...), whatever the machine does."""
    real = train_mod.batch_to
    k = {"n": 0}

    def timed(batch, device):
        clock.advance(step_s(k["n"]))
        k["n"] += 1
        return real(batch, device)
    monkeypatch.setattr(train_mod, "batch_to", timed)
    return k


@pytest.mark.parametrize("slowdown", [False, True])
def test_train_under_a_deadline_plans_steps_sizes_lr_and_stops_in_time(tmp_path, data, monkeypatch, slowdown):
    clock = ManualClock(5000.0)
    # 2 s per step; with `slowdown` the machine gets twice as slow after 10 steps (a shared box): re-planning follows.
    _simulated_steps(monkeypatch, clock, lambda k: 4.0 if slowdown and k >= 10 else 2.0)
    deadline = Deadline(clock.now() + 60.0, clock)
    cfg = build_config("tiny-cpu", ["max_steps=100000", "lr_min_ratio=0.1", "lr_warmup_steps=50", "log_every=1"],
                       data=str(data), out=str(tmp_path / "run"))
    res = train(cfg, cpu=True, quiet=True, deadline=deadline, final_eval=False)
    assert res.stopped_by == "time" and 10 < res.steps < 30
    assert clock.now() <= deadline.at - res.plan["reserves"]["checkpoint"]  # the checkpoint's reserve is intact
    plan = res.plan["choices"]
    assert plan["planned_steps"] in (res.steps, res.steps + 1) and plan["max_steps"] == 100000
    assert plan["warmup"] <= math.ceil(0.1 * plan["planned_steps"])
    lines = [r for r in (read_json_lines(tmp_path / "run" / "metrics.jsonl")) if r["split"] == "train"]
    # the cosine spans the planned steps, not max_steps: the LR has come down to ~lr * lr_min_ratio at the end
    assert lines[-1]["lr"] < 0.15 * cfg.lr
    assert max(r["lr"] for r in lines) > 0.5 * cfg.lr
    assert res.checkpoint is not None and res.checkpoint.is_dir()


def test_into_a_log_file_the_bar_is_drawn_on_its_timer_not_at_every_replan_or_metrics_line(tmp_path, data,
                                                                                              monkeypatch, capsys):
    """stderr is a file here (not a terminal): re-plans (every few steps near the end) and metrics lines (every
    step with log_every=1) change the bar without drawing it; tqdm's 30 s timer and the close draw it."""
    clock = ManualClock(5000.0)
    _simulated_steps(monkeypatch, clock, lambda k: 2.0)
    cfg = build_config("tiny-cpu", ["max_steps=100000", "log_every=1"], data=str(data), out=str(tmp_path / "run"))
    res = train(cfg, cpu=True, quiet=False, deadline=Deadline(clock.now() + 60.0, clock), final_eval=False)
    err = capsys.readouterr().err
    assert res.steps > 15 and err.count("train [budget") <= 4, err


def test_train_without_a_deadline_keeps_max_steps_and_its_schedule(tmp_path, data, monkeypatch):
    clock = ManualClock(0.0)
    _simulated_steps(monkeypatch, clock, lambda k: 1000.0)
    cfg = build_config("tiny-cpu", ["max_steps=6"], data=str(data), out=str(tmp_path / "run"))
    res = train(cfg, cpu=True, quiet=True, deadline=Deadline(None, clock), final_eval=False)
    assert res.steps == 6 and res.stopped_by == "steps" and res.plan is None


def test_train_refuses_a_passed_deadline_and_writes_nothing(tmp_path, data):
    clock = ManualClock(100.0)
    cfg = build_config("tiny-cpu", [], data=str(data), out=str(tmp_path / "run"))
    with pytest.raises(InputError, match="deadline passed"):
        train(cfg, cpu=True, quiet=True, deadline=Deadline(90.0, clock))
    assert not (tmp_path / "run").exists()


def test_a_ticking_clock_advances_on_every_read():
    c = TickingClock(0.5, start=0.0)
    assert (c.now(), c.now()) == (0.5, 1.0)


def read_json_lines(path):
    import orjson
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("command", ["train", "finetune", "predict"])
@pytest.mark.parametrize("option,value", [("--time-budget", "nan"), ("--time-budget", "-5"), ("--time-budget", "0"),
                                          ("--time-budget", "soon"), ("--deadline", "nan"),
                                          ("--deadline", "yesterday-ish")])
def test_cli_refuses_bad_durations_in_one_line_and_writes_nothing(tmp_path, data, command, option, value):
    out = tmp_path / "out"
    args = {"train": ["train", "--preset", "tiny-cpu", "--data", str(data), "--out", str(out), "--cpu"],
            "finetune": ["finetune", "--from", str(tmp_path / "ck"), "--tasks", str(BUNDLED), "--out", str(out),
                         "--cpu"],
            "predict": ["predict", "--checkpoint", str(tmp_path / "ck"), "--out", str(out / "s.json"), "--cpu"]}
    r = CliRunner().invoke(main, args[command] + [option, value])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and option in lines[0] and "Traceback" not in r.output
    assert not out.exists()
