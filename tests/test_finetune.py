"""Fine-tuning on unseen tasks: new puzzle rows, both phases, the time budget, a valid submission."""
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from arcsolver import checkpoint
from arcsolver.arc_dataset import TaskSet, build
from arcsolver.arc_tasks import load_tasks
from arcsolver.config import build_config
from arcsolver.finetune import _mean_table
from arcsolver.submission import check_submission
from arcsolver.train import train

from conftest import BUNDLED


def test_mean_table_initialisation():
    old = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 6.0]])
    new = _mean_table(old, 4)
    assert new.shape == (4, 2) and torch.equal(new, torch.tensor([[2.0, 4.0]] * 4))  # blank row excluded


def test_finetune_within_budget_and_valid_submission(tmp_path):
    tasks = load_tasks(BUNDLED)
    data = tmp_path / "data"
    build(data, [TaskSet("pre", tasks[:8], test_set=True)], num_aug=3, seed=0, canvas=10)
    res = train(build_config("tiny-cpu", ["max_steps=3"], data=str(data), out=str(tmp_path / "pre")), cpu=True,
                quiet=True, final_eval=False)
    unseen = tmp_path / "unseen"
    unseen.mkdir()
    for t in tasks[8:]:
        (unseen / f"{t.id}.json").write_text(json.dumps(t.to_json()))
    budget = 30
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "arcsolver.cli", "finetune", "--from", str(res.checkpoint), "--tasks",
                        str(unseen), "--time-budget", f"{budget}s", "--predict", "--out", str(tmp_path / "ft"),
                        "--num-aug", "5", "--cpu"], capture_output=True, text=True)
    wall = time.time() - t0
    assert r.returncode == 0, r.stderr[-2000:]
    assert wall <= budget + 10, wall
    summary = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert summary["embed_steps"] > 0 and summary["full_steps"] > 0
    sub = json.loads((tmp_path / "ft" / "submission.json").read_text())
    check_submission(sub, load_tasks(unseen))
    # the fine-tuned table has rows for the new versions only, and the network moved in phase 2
    w = checkpoint.load_weights(summary["checkpoint"], ema=False)
    meta = json.loads((tmp_path / "ft" / "data" / "meta.json").read_text())
    assert w["model.inner.puzzle_emb.weights"].shape[0] == meta["num_puzzle_identifiers"]
    w0 = checkpoint.load_weights(res.checkpoint, ema=True)
    k = "model.inner.lm_head.weight"
    assert not torch.equal(w[k], w0[k])
