"""predict --vote end to end on a tiny checkpoint: complete valid submission, candidates file, CLI errors."""
import json
import subprocess
import sys

import pytest

from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.training.config import build_config
from arcsolver.inference.predict import predict
from arcsolver.inference.submission import check_submission
from arcsolver.training.train import train

from conftest import BUNDLED, bundled_tiny_checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pred")
    return tmp, bundled_tiny_checkpoint(tmp, num_aug=4)


def test_predict_vote_writes_complete_submission_and_candidates(run):
    tmp, ck = run
    res = predict(ck, tmp / "sub.json", quiet=True, cpu=True)
    tasks = load_tasks(BUNDLED)
    sub = json.loads((tmp / "sub.json").read_text())
    check_submission(sub, tasks)
    assert res.tasks == len(tasks) and res.test_inputs == sum(len(t.test) for t in tasks)
    cands = json.loads(res.candidates.read_text())
    assert set(cands) <= {t.id for t in tasks}
    votes = sum(c["votes"] for entries in cands.values() for e in entries for c in e["candidates"])
    invalid = sum(e["n_invalid"] for entries in cands.values() for e in entries)
    assert votes + invalid == res.predictions  # every prediction is either a vote or counted invalid
    assert res.predictions == sum(5 * len(t.test) for t in tasks)  # 5 versions (original + 4) per test input


def test_no_vote_runs_only_the_original_version(run):
    tmp, ck = run
    res = predict(ck, tmp / "novote.json", vote=False, quiet=True, cpu=True)
    assert res.predictions == sum(len(t.test) for t in load_tasks(BUNDLED))


def test_predict_errors(run, tmp_path):
    tmp, ck = run
    r = subprocess.run([sys.executable, "-m", "arcsolver.cli", "predict", "--checkpoint", str(tmp_path / "none")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not a checkpoint" in r.stderr and "Traceback" not in r.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "zzz.json").write_text(json.dumps({"train": [{"input": [[1]], "output": [[2]]}],
                                                "test": [{"input": [[1]]}]}))
    r = subprocess.run([sys.executable, "-m", "arcsolver.cli", "predict", "--checkpoint", str(ck), "--tasks",
                        str(other), "--out", str(tmp_path / "s.json"), "--cpu"], capture_output=True, text=True)
    assert r.returncode == 2 and "no puzzle ids" in r.stderr and "arcsolver finetune" in r.stderr
    assert not (tmp_path / "s.json").exists()


def test_voted_scores_of_true_answers_is_one_and_training_eval_reports_it(tmp_path):
    """Feeding the true output canvases of every version through the vote gives pass@1 = 1; a wrong answer for one
    task lowers it by exactly that task's share. Training evaluation on ARC data reports the voted scores."""
    import numpy as np
    import torch

    from arcsolver.data.loader import ArcSource, PuzzleLoader
    from arcsolver.inference.predict import add_to_book, voted_scores
    from arcsolver.inference.vote import VoteBook

    tasks = load_tasks(BUNDLED)
    data = tmp_path / "data"
    build(data, [TaskSet("b", tasks, test_set=True)], num_aug=3, seed=0, canvas=10)
    source = ArcSource(data)
    ver, ex = source.test_items()
    wrong = source.store.task_ids[source.store.test_task_indices()[0]]
    book = VoteBook()
    for b in PuzzleLoader(source, "test", global_batch_size=16).test_batches():
        labels = b["labels"].clone()
        labels[labels < 0] = 0  # PAD
        tid = np.array(source.store.task_ids, dtype=object)[source.a["ver_task"][ver[b["index"].clamp(min=0)]]]
        labels[torch.from_numpy(tid == wrong)] = 0  # one task answered with nothing valid
        add_to_book(book, source, ver, ex, b["index"], labels, torch.zeros(len(labels)))
    s = voted_scores(book, source)
    assert s["vote_tasks"] == len(tasks)
    assert s["vote_pass@1"] == pytest.approx(1 - 1 / len(tasks)) and s["vote_pass@2"] == s["vote_pass@1"]

    res = train(build_config("tiny-cpu", ["max_steps=2", "eval_max_batches=0"], data=str(data),
                             out=str(tmp_path / "run")), cpu=True, quiet=True)
    assert 0.0 <= res.eval_metrics["vote_pass@1"] <= res.eval_metrics["vote_pass@2"] <= 1.0
    assert res.eval_metrics["vote_tasks"] == len(tasks)
