"""`--log-with`: the trackers' names, a missing package (one line naming the extra, exit 2, nothing written), the
config as flat hyper-parameters, and W&B offline. TensorBoard's numbers are checked against metrics.jsonl on the
2-process run of test_train.py."""
import importlib.util

import pytest
from click.testing import CliRunner

from arcsolver.cli import main
from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.runtime import trackers
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.trackers import hyperparameters, parse_log_with, scalars
from arcsolver.training.config import build_config
from arcsolver.training.train import train

from conftest import BUNDLED


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("trackers") / "data"
    build(d, [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=2, seed=1, canvas=10)
    return d


def test_tracker_names(monkeypatch):
    monkeypatch.setattr(trackers, "installed", lambda name: name in ("tensorboard", "mlflow"))
    assert parse_log_with("none") == [] and parse_log_with("") == []
    assert parse_log_with("all") == ["tensorboard", "mlflow"]  # every installed one
    assert parse_log_with("TensorBoard, mlflow,tensorboard") == ["tensorboard", "mlflow"]
    with pytest.raises(InputError, match="unknown tracker 'comet'"):
        parse_log_with("comet")
    with pytest.raises(InputError, match=r"wandb is not installed: pip install 'arcsolver\[wandb\]'"):
        parse_log_with("tensorboard,wandb")
    monkeypatch.setattr(trackers, "installed", lambda name: False)
    with pytest.raises(InputError, match="no tracker is installed"):
        parse_log_with("all")


@pytest.mark.parametrize("how", [["--log-with", "tensorboard"], ["--set", "log_with=tensorboard"]])
def test_a_missing_tracker_is_one_line_naming_the_extra_and_nothing_is_written(tmp_path, data, monkeypatch, how):
    monkeypatch.setattr(trackers, "installed", lambda name: False)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--preset", "tiny-cpu", "--data", str(data), "--out", str(out), "--cpu",
                                  *how])
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert "pip install 'arcsolver[tensorboard]'" in lines[0] and "Traceback" not in r.output
    assert not out.exists()


def test_the_config_becomes_flat_hyperparameters_and_metrics_become_split_scalars():
    h = hyperparameters({"train": {"lr": 1e-3, "arch": {"hidden_size": 32}, "log_with": "none"},
                         "data": {"canvas": None, "shape": [1, 2]}})
    assert h == {"train.lr": 1e-3, "train.arch.hidden_size": 32, "train.log_with": "none", "data.canvas": "None",
                 "data.shape": "[1, 2]"}
    assert scalars("eval", {"exact_accuracy": 0.5, "count": 8, "in_sync": True, "fps": [1.0]}) == {
        "eval/exact_accuracy": 0.5, "eval/count": 8}


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None,
                    reason="wandb is not installed (pip install 'arcsolver[wandb]'); the offline run is not checked")
def test_wandb_runs_offline_into_the_run_folder(tmp_path, data, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = build_config("tiny-cpu", ["max_steps=2", "log_every=1", "eval_max_batches=1", "log_with=wandb"],
                       data=str(data), out=str(tmp_path / "run"))
    train(cfg, cpu=True, quiet=True)
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))
