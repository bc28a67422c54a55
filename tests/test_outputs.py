"""Nothing a user owns is destroyed: the output rule (runtime/outputs.py) for every command.

A table of destructive cases, each run in-process: exit 2, one line naming the path, and every file that existed
before byte-identical afterwards (hashed before and after), nothing new written. Then every command run twice into
the same --out: the second run replaces only its own earlier output of that kind (one line saying so), and
`train` points to --resume. Then the unit rules (kinds recognised, inputs kept apart), and the predict flush that
publishes into a working submission file.
"""
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from arcsolver.cli import main
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.outputs import MARKER, claim_output, recognise

from conftest import BUNDLED


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    tasks = root / "tasks"
    shutil.copytree(BUNDLED, tasks)
    data = root / "data"
    r = CliRunner().invoke(main, ["prepare", "arc", "--eval", str(tasks), "--num-aug", "1", "--canvas", "10",
                                  "--out", str(data)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["train", "--preset", "tiny-cpu", "--data", str(data), "--out", str(root / "run"),
                                  "--steps", "1", "--set", "eval_max_batches=1", "--cpu"])
    assert r.exit_code == 0, r.output
    keep = root / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("notes")
    (root / "notes.txt").write_text("mine")
    from PIL import Image
    Image.new("RGB", (2, 2)).save(root / "mine.png")  # a picture arcsolver did not draw
    (root / "sub.json").write_text(json.dumps({"t": [{"attempt_1": [[1]], "attempt_2": [[1]]}]}))
    return {"root": str(root), "tasks": str(tasks), "data": str(data), "run": str(root / "run"), "keep": str(keep),
            "file": str(root / "notes.txt"), "png": str(root / "mine.png"), "sub": str(root / "sub.json"),
            "ck": str(root / "run" / (root / "run" / "latest").read_text().strip())}


def _hashes(root: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


BIG = "9" * 26
CASES = [
    # an existing folder or file arcsolver did not write
    ("prepare-into-users-folder", ["prepare", "arc", "--eval", "{tasks}", "--out", "{keep}"], "not written by"),
    ("prepare-onto-a-file", ["prepare", "arc", "--eval", "{tasks}", "--out", "{file}"], "is not a folder"),
    ("prepare-onto-meta-json", ["prepare", "arc", "--eval", "{tasks}", "--out", "{data}/meta.json"], "not a folder"),
    ("generate-into-users-folder", ["generate", "--families", "flip", "--out", "{keep}"], "not written by"),
    ("train-into-users-folder", ["train", "--preset", "tiny-cpu", "--data", "{data}", "--out", "{keep}", "--cpu"],
     "not written by"),
    ("predict-onto-users-file", ["predict", "--checkpoint", "{run}", "--out", "{file}", "--cpu"], "not written by"),
    ("finetune-into-users-folder", ["finetune", "--from", "{run}", "--tasks", "{tasks}", "--out", "{keep}",
                                    "--embed-steps", "1", "--cpu"], "not written by"),
    ("show-into-users-folder", ["show", "--tasks", "{tasks}", "--out", "{keep}"], "not written by"),
    ("show-png-onto-users-file", ["show", "--tasks", "{tasks}", "--task", "flip-lr", "--out", "{png}"],
     "not written by"),
    ("export-into-users-folder", ["export-checkpoint", "{run}", "--out", "{keep}"], "not written by"),
    ("package-into-users-folder", ["kaggle", "package", "--checkpoint", "{run}", "--out", "{keep}", "--owner",
                                   "alice"], "not written by"),
    # an output equal to, inside, or containing an input
    ("prepare-out-is-its-input", ["prepare", "arc", "--eval", "{tasks}", "--out", "{tasks}"], "is also an input"),
    ("prepare-out-inside-input", ["prepare", "arc", "--eval", "{tasks}", "--out", "{tasks}/sub"], "inside the input"),
    ("prepare-out-contains-input", ["prepare", "arc", "--eval", "{tasks}", "--out", "{root}"], "contains the input"),
    ("predict-onto-meta-json", ["predict", "--checkpoint", "{run}", "--out", "{data}/meta.json", "--cpu"],
     "inside the input"),
    ("predict-onto-latest", ["predict", "--checkpoint", "{run}", "--out", "{run}/latest", "--cpu"],
     "inside the input"),
    ("predict-into-checkpoint", ["predict", "--checkpoint", "{ck}", "--out", "{ck}/s.json", "--cpu"],
     "inside the input"),
    ("train-out-inside-data", ["train", "--preset", "tiny-cpu", "--data", "{data}", "--out", "{data}/run", "--cpu"],
     "inside the input"),
    ("train-again-without-resume", ["train", "--preset", "tiny-cpu", "--data", "{data}", "--out", "{run}", "--cpu"],
     "--resume"),
    ("finetune-into-its-run", ["finetune", "--from", "{run}", "--tasks", "{tasks}", "--out", "{run}/ft",
                               "--embed-steps", "1", "--cpu"], "inside the input"),
    ("finetune-into-tasks", ["finetune", "--from", "{run}", "--tasks", "{tasks}", "--out", "{tasks}",
                             "--embed-steps", "1", "--cpu"], "is also an input"),
    ("export-into-run", ["export-checkpoint", "{run}", "--out", "{run}/exported"], "inside the input"),
    ("show-into-tasks", ["show", "--tasks", "{tasks}", "--out", "{tasks}/report"], "inside the input"),
    # options checked before the first byte (an existing submission must survive a bad option)
    ("predict-device-batch-neg", ["predict", "--checkpoint", "{run}", "--out", "{sub}", "--device-batch-size", "-1",
                                  "--cpu"], "--device-batch-size"),
    ("predict-batch-0", ["predict", "--checkpoint", "{run}", "--out", "{sub}", "--batch-size", "0", "--cpu"],
     "--batch-size"),
    ("predict-batch-neg", ["predict", "--checkpoint", "{run}", "--out", "{sub}", "--batch-size", "-4", "--cpu"],
     "--batch-size"),
    ("predict-batch-huge", ["predict", "--checkpoint", "{run}", "--out", "{sub}", "--batch-size", "9" * 20, "--cpu"],
     "--batch-size"),
    ("predict-steps-neg", ["predict", "--checkpoint", "{run}", "--out", "{sub}", "--steps", "-1", "--cpu"],
     "--steps"),
    ("predict-publish-not-a-submission", ["predict", "--checkpoint", "{run}", "--out", "{root}/new.json",
                                          "--publish", "{file}", "--cpu"], "--publish"),
    ("train-max-steps-huge", ["train", "--preset", "tiny-cpu", "--data", "{data}", "--out", "{root}/new-run",
                              "--set", f"max_steps={BIG}", "--cpu"], "max_steps: expected an integer within 64"),
    ("train-seed-huge", ["train", "--preset", "tiny-cpu", "--data", "{data}", "--out", "{root}/new-run",
                         "--set", "seed=99999999999999999999", "--cpu"], "seed: expected an integer within 64"),
    ("finetune-seed-huge", ["finetune", "--from", "{run}", "--tasks", "{tasks}", "--out", "{root}/new-ft",
                            "--seed", "99999999999999999999", "--embed-steps", "1", "--cpu"], "--seed"),
    ("finetune-steps-neg", ["finetune", "--from", "{run}", "--tasks", "{tasks}", "--out", "{root}/new-ft",
                            "--embed-steps", "-1", "--cpu"], "--embed-steps"),
    ("generate-seed-huge", ["generate", "--families", "flip", "--seed", BIG, "--out", "{root}/gen"], "--seed"),
    ("package-finetune-args-max-steps", ["kaggle", "package", "--checkpoint", "{run}", "--out", "{root}/pkg",
                                         "--owner", "alice", "--finetune-args", f"--set max_steps={BIG}"],
     "max_steps: expected an integer within 64"),
    ("package-finetune-args-seed", ["kaggle", "package", "--checkpoint", "{run}", "--out", "{root}/pkg",
                                    "--owner", "alice", "--finetune-args", "--set seed=99999999999999999999"],
     "seed"),
    ("package-finetune-args-publish", ["kaggle", "package", "--checkpoint", "{run}", "--out", "{root}/pkg",
                                       "--owner", "alice", "--finetune-args", "--publish x.json"],
     "set by the notebook"),
]


@pytest.mark.parametrize("case_id,argv,words", CASES, ids=[c[0] for c in CASES])
def test_destructive_case_is_refused_and_changes_nothing(fx, case_id, argv, words):
    root = Path(fx["root"])
    before = _hashes(root)
    r = CliRunner().invoke(main, [a.format(**fx) for a in argv])
    assert r.exit_code == 2, f"exit {r.exit_code}: {r.output}\n{r.exception!r}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output, r.stderr
    assert words in lines[0], lines[0]
    assert _hashes(root) == before, "a file was changed, removed or added"


def test_read_only_folder_is_refused_before_any_work(fx, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    for argv in (["prepare", "arc", "--eval", fx["tasks"], "--out", str(ro / "d")],
                 ["generate", "--families", "flip", "--out", str(ro / "g")],
                 ["finetune", "--from", fx["run"], "--tasks", fx["tasks"], "--out", str(ro / "f"), "--embed-steps",
                  "1", "--cpu"]):
        r = CliRunner().invoke(main, argv)
        assert r.exit_code == 2 and "no write permission" in r.stderr, r.output
    assert list(ro.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# the same command twice into the same --out


def _ok(argv):
    r = CliRunner().invoke(main, [str(a) for a in argv])
    assert r.exit_code == 0, f"{r.output}\n{r.exception!r}"
    return r


def test_each_command_twice_replaces_only_its_own_output(fx, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    cases = [
        (["prepare", "arc", "--eval", fx["tasks"], "--num-aug", "1", "--canvas", "10", "--out", tmp_path / "d"],
         tmp_path / "d", "dataset"),
        (["generate", "--families", "flip", "--tasks-per-family", "2", "--out", tmp_path / "g"], tmp_path / "g",
         "generated-tasks"),
        (["predict", "--checkpoint", fx["run"], "--out", tmp_path / "s.json", "--cpu"], tmp_path / "s.json",
         "submission"),
        (["finetune", "--from", fx["run"], "--tasks", fx["tasks"], "--out", tmp_path / "f", "--embed-steps", "1",
          "--full-steps", "1", "--num-aug", "1", "--cpu"], tmp_path / "f", "finetune"),
        (["show", "--tasks", fx["tasks"], "--out", tmp_path / "rep"], tmp_path / "rep", "report"),
        (["export-checkpoint", fx["run"], "--out", tmp_path / "exp"], tmp_path / "exp", "export"),
    ]
    for argv, out, kind in cases:
        first = _ok(argv)
        assert "replacing" not in first.stderr
        assert recognise(out) == kind
        if out.is_dir():
            (out / "stale-from-run-1").write_text("x")  # what the first run left that the second does not write
        second = _ok(argv)
        assert f"{out}: replacing what arcsolver wrote there earlier" in second.stderr, second.stderr
        assert recognise(out) == kind
        if kind in ("finetune", "report", "export", "dataset", "generated-tasks"):
            assert not (out / "stale-from-run-1").exists(), kind  # replaced whole: nothing of run 1 passes as run 2's
    assert outside.read_text() == "untouched"


def test_train_twice_points_to_resume_and_overwrite_starts_over(fx, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--preset", "tiny-cpu", "--data", fx["data"], "--out", run, "--steps", "1", "--set",
            "eval_max_batches=1", "--cpu"]
    _ok(argv)
    r = CliRunner().invoke(main, [str(a) for a in argv])
    assert r.exit_code == 2 and f"continue it with --resume {run}" in r.stderr
    _ok(argv + ["--resume", run, "--steps", "2"])  # continuing the same run into its own folder is the purpose
    assert (run / "step_0000002").is_dir() and (run / "step_0000001").is_dir()
    r = _ok(argv + ["--overwrite"])
    assert "starting over (--overwrite)" in r.stderr
    assert sorted(p.name for p in run.glob("step_*")) == ["step_0000001"]


# ---------------------------------------------------------------------------------------------------------------
# the rule itself


def test_kinds_are_recognised_and_other_things_are_not(fx, tmp_path):
    assert recognise(fx["data"]) == "dataset" and recognise(fx["run"]) == "run"
    assert recognise(fx["sub"]) == "submission"
    assert recognise(fx["file"]) is None and recognise(fx["keep"]) is None
    assert recognise(Path(fx["data"]) / "meta.json") is None
    legacy = tmp_path / "legacy"
    shutil.copytree(fx["data"], legacy)
    (legacy / MARKER).unlink()  # a dataset written before markers existed
    assert recognise(legacy) == "dataset"


def test_an_empty_folder_is_taken_and_overwrite_never_reaches_an_input(fx, tmp_path):
    (tmp_path / "empty").mkdir()
    assert claim_output(tmp_path / "empty", "dataset").replaces is None
    assert claim_output(fx["keep"], "dataset", overwrite=True).overwrite
    with pytest.raises(InputError, match="is also an input"):
        claim_output(fx["tasks"], "dataset", inputs=[fx["tasks"]], overwrite=True)
    link = tmp_path / "link"
    link.symlink_to(fx["tasks"], target_is_directory=True)
    with pytest.raises(InputError, match="is also an input"):  # another name of the same folder
        claim_output(link, "dataset", inputs=[fx["tasks"]], overwrite=True)


def test_predict_publishes_every_flush_into_the_working_file(fx, tmp_path):
    """What the Kaggle runner relies on: after each flush returns, the working file (all tasks, at their fallback
    to begin with) already holds every answer voted so far, so a kernel killed right after a flush keeps them."""
    from arcsolver.data.arc_tasks import load_tasks
    from arcsolver.inference.predict import predict
    from arcsolver.inference.submission import fallback_submission, validate_submission, write_submission
    tasks = load_tasks(fx["tasks"])
    working = tmp_path / "working.json"
    write_submission(working, fallback_submission(tasks), tasks)
    seen = []

    def on_flush(info):
        sub = json.loads(working.read_text())
        own = json.loads((tmp_path / "s.json").read_text())
        voted = json.loads((tmp_path / "s.candidates.json").read_text())
        assert validate_submission(sub, tasks) == [] and set(sub) == {t.id for t in tasks}
        for tid, entries in voted.items():
            for e in entries:
                assert sub[tid][e["test_index"]] == own[tid][e["test_index"]]
        seen.append(sum(len(v) for v in voted.values()))
    predict(fx["run"], tmp_path / "s.json", cpu=True, quiet=True, batch_size=8, flush_every=1, on_flush=on_flush,
            publish=working)
    assert len(seen) >= 3 and seen[-1] > seen[1] > 0  # answers arrived flush by flush


def test_an_os_error_names_the_users_path_not_our_temporary_file():
    from arcsolver.cli import os_error_line
    e = OSError(2, "No such file or directory", "/proc/.x.json.v9mz6zl_.tmp")
    assert os_error_line(e) == "/proc/x.json: No such file or directory"
    assert os_error_line(OSError(13, "Permission denied", "/a/b.json")) == "/a/b.json: Permission denied"


@pytest.mark.parametrize("margin, expected", [(0, 0.0), (600, 600.0), (None, 1800.0)])
def test_rehearse_reads_the_packaged_margin_even_when_it_is_zero(tmp_path, margin, expected):
    from arcsolver.kaggle.rehearse import _baked_margin
    cfg = {} if margin is None else {"margin_s": margin}
    nb = {"cells": [{"cell_type": "code", "source": f"ARCSOLVER_CONFIG: dict = {cfg!r}\n"}]}
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    assert _baked_margin(tmp_path / "nb.ipynb") == expected
