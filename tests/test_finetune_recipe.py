"""The fine-tuning recipe options the TTT benchmark compares (EMA during fine-tuning, one model per task), the
defaults written once, and the benchmark's --quick smoke run."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from arcsolver.runtime.deadline import Deadline
from arcsolver.model import checkpoint
from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.training.config import FINETUNE, build_config
from arcsolver.training.finetune import finetune
from arcsolver.data.generate import generate
from arcsolver.training.train import train

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    generate("flip,recolour_map", 2, 6, 0, root / "pre-tasks")
    generate("flip,invert", 1, 6, 1, root / "new")
    build(root / "data", [TaskSet("pre", load_tasks(str(root / "pre-tasks")), test_set=True)], num_aug=1, seed=0,
          canvas=6)
    res = train(build_config("tiny-cpu", ["max_steps=2", "ema=true"], data=str(root / "data"), out=str(root / "pre")),
                cpu=True, quiet=True, final_eval=False)
    return root, res.checkpoint


def _ft_config(run: Path) -> dict:
    return checkpoint.load_config(checkpoint.resolve(run))["train"]


def test_ema_off_during_fine_tuning_or_kept_as_the_checkpoint(pretrained, tmp_path):
    root, ckpt = pretrained
    common = dict(deadline=Deadline.after(600), num_aug=1, embed_steps=1, full_steps=2, cpu=True, quiet=True)
    finetune(ckpt, str(root / "new"), tmp_path / "off", ema=False, **common)
    finetune(ckpt, str(root / "new"), tmp_path / "kept", ema=None, **common)
    assert _ft_config(tmp_path / "off" / "full")["ema"] is False
    assert _ft_config(tmp_path / "kept" / "full")["ema"] is True  # the checkpoint's setting
    # with EMA off the prediction weights are the raw ones: the checkpoint holds no separate EMA copy that differs
    raw = checkpoint.load_weights(checkpoint.resolve(tmp_path / "off" / "full"), ema=False)
    used = checkpoint.load_weights(checkpoint.resolve(tmp_path / "off" / "full"), ema=True)
    assert all(torch.equal(raw[k], used[k]) for k in raw)
    raw = checkpoint.load_weights(checkpoint.resolve(tmp_path / "kept" / "full"), ema=False)
    used = checkpoint.load_weights(checkpoint.resolve(tmp_path / "kept" / "full"), ema=True)
    assert any(not torch.equal(raw[k], used[k]) for k in raw if k.endswith("lm_head.weight"))


def test_lr_zero_is_the_no_learning_baseline(pretrained, tmp_path):
    """The benchmark's "before" row: with lr 0 the network and the new rows stay what they were (rows at the mean)."""
    root, ckpt = pretrained
    finetune(ckpt, str(root / "new"), tmp_path / "b", deadline=Deadline.after(600), num_aug=1, embed_steps=1,
             full_steps=1, overrides=["lr=0.0", "puzzle_emb_lr=0.0"], ema=False, cpu=True, quiet=True)
    w0 = checkpoint.load_weights(ckpt, ema=True)
    w1 = checkpoint.load_weights(checkpoint.resolve(tmp_path / "b" / "full"), ema=False)
    table = w1["model.inner.puzzle_emb.weights"]
    old = w0["model.inner.puzzle_emb.weights"]
    assert torch.allclose(table, old[1:].mean(0, keepdim=True).expand_as(table))
    assert all(torch.equal(w0[k], w1[k]) for k in w0 if "puzzle_emb" not in k)


def test_cli_defaults_are_the_recipe_defaults():
    r = subprocess.run([sys.executable, "-m", "arcsolver.cli", "finetune", "--help"], capture_output=True, text=True)
    assert f"[default: {FINETUNE.num_aug}; x>=0]" in " ".join(r.stdout.split())


def test_ttt_benchmark_quick_smoke(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ttt_cpu.py"), "--quick", "--work",
                        str(tmp_path / "w")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "w" / "results.json").read_text())
    assert res["complete"] and res["stamp"]["commit"]
    from importlib import util
    spec = util.spec_from_file_location("ttt_cpu", REPO / "benchmarks" / "ttt_cpu.py")
    mod = util.module_from_spec(spec)
    sys.modules["ttt_cpu"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    assert [(r["split"], r["variant"]) for r in res["rows"]] == [(s, v.name) for s in ("i", "ii") for v in mod.VARIANTS]
    before = res["rows"][0]
    assert before["full_steps"] == 0 and all(0.0 <= r["pass@2"] <= 1.0 for r in res["rows"])
    more = next(r for r in res["rows"] if "num-aug" in r["variant"])
    assert more["num_aug"] == mod.QUICK.aug_more != mod.QUICK.aug
    assert "| split | variant | pass@2 |" in (tmp_path / "w" / "results.md").read_text()
