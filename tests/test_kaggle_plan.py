"""The Kaggle run's plan priced for the machine it runs on (issue 22): costs per process, compile charged as the code
incurs it, the probe in the run's dtype; recipes as files; plan.json planned vs actual."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from arcsolver.cli import check_finetune_args, main
from arcsolver.runtime.errors import InputError
from arcsolver.training.config import FINETUNE
from arcsolver.training.finetune_plan import COMPILE_S, Costs, decide
from arcsolver.training.plan_log import PlanLog, format_table, side_by_side
from arcsolver.training.recipes import load_recipe, recipe_names

from conftest import bundled_tiny_checkpoint

ROW_S = 0.002  # seconds per row per forward supervision step on one process (a CPU: linear in rows)
PREDICT_BATCH, TRAIN_BATCH = 256, 128
JOB = dict(n_tasks=120, n_test_inputs=172, num_aug=128, predict=True, embed_fraction=0.0)


def costs_for(world: int, **kw) -> Costs:
    """What the probe measures as one of `world` processes: a rollout of its slice, PREDICT_BATCH // world rows."""
    return Costs(sup_step_s=ROW_S * (PREDICT_BATCH // world), predict_batch=PREDICT_BATCH, predict_steps=16,
                 train_batch=TRAIN_BATCH, h_cycles=3, load_s=5.0, checkpoint_s=2.0, phase_start_s=5.0, world=world,
                 **kw)


def _planned_total(d) -> float:
    return sum(d.plan.phases.values()) + sum(d.plan.reserves.values())


@pytest.mark.parametrize("window_s", [3600.0, 12 * 3600.0])
def test_one_two_four_processes_fill_the_same_window_with_their_share_of_the_work(window_s):
    d = {n: decide(costs_for(n), window_s, **JOB) for n in (1, 2, 4)}
    for n, dn in d.items():
        assert _planned_total(dn) == pytest.approx(window_s, rel=0.10), n  # the window is filled, not left idle
        assert dn.cuts == [] and dn.num_aug == JOB["num_aug"]  # nothing cut that N processes can afford
    # each process trains on G / N rows and predicts 1 / N of every batch: N x the steps of one process, or more
    # (prediction, now N x shorter, leaves training more of the window)
    assert d[2].steps >= 2 * d[1].steps and d[4].steps >= 4 * d[1].steps
    assert d[4].plan.reserves["prediction"] < d[1].plan.reserves["prediction"] / 3


def test_the_all_reduce_is_charged_per_step_on_several_processes_only():
    one, four = costs_for(1, grad_bytes=4 * 7_000_000), costs_for(4, grad_bytes=4 * 7_000_000)
    assert one.allreduce_s() == 0.0
    assert four.train_step_s() == pytest.approx(ROW_S * TRAIN_BATCH / 4 * (1 + 2 / 3) * 0.9 + 2 * 28e6 / 1e9)


def test_compile_is_charged_at_each_training_phase_as_the_code_compiles(monkeypatch, tmp_path):
    """The plan reserves one compile per training phase; a fine-tuning run with compile on compiles exactly once
    per phase (each phase builds its own model)."""
    job = {**JOB, "embed_fraction": 0.25}  # two phases
    eager = decide(costs_for(1), 3600.0, **job)
    compiled = decide(costs_for(1, compile_s=COMPILE_S), 3600.0, **job)
    assert eager.train_s - compiled.train_s == pytest.approx(2 * COMPILE_S)  # one compile per phase
    assert sum(eager.plan.phases.values()) == pytest.approx(sum(compiled.plan.phases.values()))
    one_phase = decide(costs_for(1, compile_s=COMPILE_S), 3600.0, **JOB)  # embed_fraction 0: the full phase only
    assert one_phase.train_s - compiled.train_s == pytest.approx(COMPILE_S + 5.0 + 2.0)
    import arcsolver.training.train as train_mod
    from arcsolver.training.finetune import finetune
    compiled_models = []
    monkeypatch.setattr(train_mod, "compile_with_fallback", lambda inner: compiled_models.append(inner))
    ck = bundled_tiny_checkpoint(tmp_path / "pre", num_aug=1)
    from conftest import BUNDLED
    finetune(ck, str(BUNDLED), tmp_path / "ft", embed_steps=1, full_steps=1, num_aug=1, cpu=True, quiet=True,
             overrides=["compile=true"])
    assert len(compiled_models) == 2 and compiled_models[0] is not compiled_models[1]


def test_the_probe_runs_in_the_dtype_the_run_is_configured_for(monkeypatch, tmp_path):
    import arcsolver.inference.predict as predict_mod
    import arcsolver.training.finetune as finetune_mod
    from arcsolver.training.finetune_plan import measure_costs
    from arcsolver.runtime.deadline import Deadline
    seen = []
    real = predict_mod.load_model
    import arcsolver.training.finetune_plan as plan_mod

    def spy(*a, **k):
        seen.append(k.get("forward_dtype"))
        return real(*a, **k)
    monkeypatch.setattr(predict_mod, "load_model", spy)
    monkeypatch.setattr(plan_mod, "load_model", spy)
    asked = {}
    monkeypatch.setattr(finetune_mod, "measure_costs", lambda *a, **k: asked.update(k) or measure_costs(*a, **k))
    ck = bundled_tiny_checkpoint(tmp_path / "pre", num_aug=1)
    from conftest import BUNDLED
    import time
    finetune_mod.finetune(ck, str(BUNDLED), tmp_path / "ft", deadline=Deadline(time.time() + 600), predict_after=True,
                          embed_steps=1, full_steps=1, num_aug=1, cpu=True, quiet=True,
                          overrides=["forward_dtype=bfloat16"])
    assert asked["forward_dtype"] == "bfloat16" and asked["world"] == 1
    assert seen == ["bfloat16", "bfloat16"]  # the probe's load, then prediction's: the same dtype
    plan = json.loads((tmp_path / "ft" / "plan.json").read_text())
    assert {"planning", "prepare", "embeddings-only", "full fine-tune", "prediction"} <= set(plan["actual"])
    assert plan["planned"]["prediction"]["seconds"] > 0 and 0 < plan["busy_share"] <= 1


# ---------------------------------------------------------------------------------------------------------------
# recipes


def test_recipes_load_and_the_default_one_is_the_cli_default():
    assert {"cpu-default", "kaggle-4xL4"} <= set(recipe_names())
    options, sets = load_recipe("cpu-default")
    assert options == {"num_aug": FINETUNE.num_aug, "embed_fraction": FINETUNE.embed_fraction,
                       "lr_scale": FINETUNE.lr_scale} and sets == []
    options, sets = load_recipe("kaggle-4xL4")
    assert options == {"num_aug": 128, "batch_size": 128, "embed_fraction": 0.0, "ema": True}
    assert sets == ["lr=0.0001", "lr_warmup_steps=200", "arch.H_cycles=4", "arch.L_cycles=4",
                    "arch.halt_max_steps=10"]


def test_bad_recipes_are_one_line(tmp_path):
    with pytest.raises(InputError, match="unknown recipe"):
        load_recipe("nope")
    bad = tmp_path / "r.toml"
    bad.write_text("[finetune]\nnum_augs = 3\n")
    with pytest.raises(InputError, match="finetune.num_augs: unknown option"):
        load_recipe(str(bad))
    bad.write_text("[finetune]\nnum_aug = -3\n")
    with pytest.raises(InputError, match="finetune.num_aug: expected >= 0"):
        load_recipe(str(bad))


def test_the_command_line_wins_over_the_recipe(monkeypatch, tmp_path):
    import arcsolver.training.finetune as finetune_mod
    got = {}
    monkeypatch.setattr(finetune_mod, "finetune", lambda *a, **k: got.update(k) or {
        "interrupted": None, "mean_embedding_only": True, "train_seconds": 0, "checkpoint": "x", "seconds": 0})
    r = CliRunner().invoke(main, ["finetune", "--from", "ck", "--tasks", "t", "--embed-steps", "1", "--recipe",
                                  "kaggle-4xL4", "--num-aug", "16", "--set", "lr=3e-4"])
    assert r.exit_code == 0, r.output
    assert got["num_aug"] == 16 and got["batch_size"] == 128 and got["embed_fraction"] == 0.0 and got["ema"] is True
    assert got["overrides"][-1] == "lr=3e-4" and "arch.halt_max_steps=10" in got["overrides"]


def test_finetune_may_change_the_recursion_but_not_the_weights_shapes(tmp_path):
    from arcsolver.training.finetune import _finetune_config
    ck = Path(bundled_tiny_checkpoint(tmp_path / "pre", num_aug=1))
    base = json.loads((ck / "config.json").read_text())
    cfg = _finetune_config(base, ["arch.halt_max_steps=3", "arch.H_cycles=2"], None, 1.0, 0)
    assert cfg.arch["halt_max_steps"] == 3 and cfg.arch["H_cycles"] == 2
    with pytest.raises(InputError, match="keeps the checkpoint's architecture"):
        _finetune_config(base, ["arch.hidden_size=32"], None, 1.0, 0)


def test_package_ships_only_bundled_recipes_and_checks_their_fields():
    check_finetune_args(["--recipe", "kaggle-4xL4", "--num-aug", "64"])
    with pytest.raises(InputError, match="only use a bundled recipe"):
        check_finetune_args(["--recipe", "my.toml"])
    with pytest.raises(InputError, match="arch.hidden_size: fine-tuning keeps"):
        check_finetune_args(["--set", "arch.hidden_size=32"])


# ---------------------------------------------------------------------------------------------------------------
# plan.json


def test_plan_log_lays_the_plan_end_to_end_and_compares(tmp_path):
    from arcsolver.runtime.deadline import Plan
    log = PlanLog(tmp_path / "plan.json", window_s=100.0)
    log.plan(Plan("finetune", 100.0, {"planning (done)": 2.0, "prepare (done)": 3.0, "embeddings-only": 10.0,
                                      "full fine-tune": 60.0}, {"exit": 3.0, "prediction": 20.0}, {"cut": "nothing"}))
    log.actual("planning", 2.0)
    log.actual("full fine-tune", 66.0, busy_s=63.0, steps=120)
    log.actual("prediction", 18.0, busy_s=18.0, rows=900)
    data = json.loads((tmp_path / "plan.json").read_text())
    assert data["planned"]["full fine-tune"] == {"seconds": 60.0, "start_s": 15.0, "end_s": 75.0}
    assert data["planned"]["prediction"] == {"seconds": 20.0, "start_s": 75.0, "end_s": 95.0}
    rows = {r["phase"]: r for r in side_by_side(data)}
    assert rows["full fine-tune"]["ratio"] == 1.1 and rows["embeddings-only"]["actual_s"] is None
    assert data["busy_share"] == pytest.approx(0.81)
    assert format_table(data)[-1].startswith("training steps + prediction: 81.0% of the")
