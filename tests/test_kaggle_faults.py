"""The Kaggle run's fault table: every row ends with a valid, complete submission.json (every task id, one entry
per test input, only valid grids). Plus `kaggle package`'s checks and `arcsolver kaggle rehearse` on a generated
test file in the real 2025 format (240 tasks), through the real notebook, install and solver, on CPU.

Rows: corrupt checkpoint, missing dataset, deadline during finetune, deadline during predict, a task without
`train`, a ragged test input, a 30x30 task, an image missing a dependency, a typo in --finetune-args.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from arcsolver.kaggle import runner as kaggle_runner
from arcsolver.kaggle.package import SOLVE_MODULES, package
from arcsolver.kaggle.wheel import build_wheel
from arcsolver.kaggle.rehearse import format_report, rehearse
from arcsolver.kaggle.runner import run
from arcsolver.kaggle.tasks import read_challenges
from arcsolver.inference.submission import validate_submission

from conftest import BUNDLED, random_task, untrained_checkpoint

OWNER = "alice"


def cli(*args):
    """The CLI in-process (no interpreter start-up per call): (exit code, stdout, stderr)."""
    from click.testing import CliRunner
    from arcsolver.cli import main
    r = CliRunner().invoke(main, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, r.stderr
REPO = Path(__file__).resolve().parent.parent
FAST_FT = ["--embed-steps", "1", "--full-steps", "2", "--num-aug", "2", "--batch-size", "4", "--cpu"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for k in ("KAGGLE_USERNAME", "KAGGLE_IS_COMPETITION_RERUN", "ARCSOLVER_KAGGLE_MODE", "ARCSOLVER_KAGGLE_SOLVE",
              "ARCSOLVER_KAGGLE_ROOT", "ARCSOLVER_KAGGLE_SKIP_INSTALL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def kaggle_2025_tasks(n: int = 240, seed: int = 2025) -> dict:
    """A challenges file shaped like the real 2025 `arc-agi_test_challenges.json`: 8-hex ids, 2-5 demos (mean ~3.2),
    one test input for most tasks and two for a few (mean ~1.08), grids 1..30, no test outputs. Task 0 is 30x30."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        task = random_task(rng, n_train=int(rng.choice([2, 3, 3, 3, 4, 5])), n_test=2 if rng.random() < 0.08 else 1,
                           max_side=int(rng.choice([5, 10, 30])))
        for p in task["test"]:
            del p["output"]
        out[f"{rng.integers(0, 2**32):08x}"] = task
    first = next(iter(out))
    big = rng.integers(0, 10, size=(30, 30)).tolist()
    out[first]["train"][0] = {"input": big, "output": big[::-1]}
    out[first]["test"][0] = {"input": big}
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def checkpoint30(tmp_path_factory) -> Path:
    """A tiny trained checkpoint on the full 30x30 canvas (a few seconds of CPU)."""
    from arcsolver.data.arc_dataset import TaskSet, build
    from arcsolver.data.arc_tasks import load_tasks
    from arcsolver.training.config import build_config
    from arcsolver.training.train import train
    base = tmp_path_factory.mktemp("ck30")
    build(base / "data", [TaskSet("b", load_tasks(BUNDLED)[:4], test_set=True)], num_aug=2, seed=0, canvas=30)
    return train(build_config("tiny-cpu", ["max_steps=4", "global_batch_size=4"], data=str(base / "data"),
                              out=str(base / "run")), cpu=True, quiet=True, final_eval=False).checkpoint


@pytest.fixture(scope="module")
def packaged30(tmp_path_factory, wheel, checkpoint30) -> Path:
    return package(checkpoint30, tmp_path_factory.mktemp("pkg30") / "out", owner=OWNER, wheel=wheel,
                   finetune_args=FAST_FT)


def make_tree(root: Path, challenges: dict, packaged: Path | None) -> Path:
    import shutil
    comp = root / "input" / "competitions" / "arc-prize-2025"
    comp.mkdir(parents=True)
    path = comp / "arc-agi_test_challenges.json"
    path.write_text(json.dumps(challenges))
    if packaged is not None:
        shutil.copytree(packaged / "dataset", root / "input" / "datasets" / OWNER / "arcsolver-trm-checkpoint")
    return path


def assert_valid_complete(root: Path, challenges: Path) -> dict:
    sub = json.loads((root / "working" / "submission.json").read_text())
    shapes = read_challenges(challenges).shapes
    assert validate_submission(sub, shapes) == []
    assert list(sub) == [t.id for t in shapes]
    return sub


def summary(root: Path) -> dict:
    return json.loads((root / "working" / "arcsolver-run-summary.json").read_text())


def small_tasks(n: int = 4, seed: int = 5) -> dict:
    rng = np.random.default_rng(seed)
    tasks = {f"{i:08x}": random_task(rng, n_test=2 if i == 1 else 1) for i in range(n)}
    for t in tasks.values():
        for p in t["test"]:
            del p["output"]
    return tasks


def flip_solve(tasks_path: Path, checkpoint: Path, out_dir: Path, deadline, smoke: bool) -> Path:
    """A solver that answers every task it is given (flipped inputs) and records what it was given."""
    data = json.loads(Path(tasks_path).read_text())
    (out_dir / "given.json").write_text(json.dumps(sorted(data)))
    sub = {tid: [{"attempt_1": np.flipud(np.array(p["input"])).tolist(), "attempt_2": [[1]]} for p in t["test"]]
           for tid, t in data.items()}
    (out_dir / "submission.json").write_text(json.dumps(sub))
    return out_dir / "submission.json"


# ---------------------------------------------------------------------------------------------------------------
# The fault table


def test_fault_corrupt_checkpoint(tmp_path, packaged30):
    """A truncated upload: the runner names the file in one line and keeps the fallback (no solver launched);
    `kaggle package` refuses it in one line, writing nothing."""
    challenges = make_tree(tmp_path / "kaggle", small_tasks(), packaged30)
    weights = next((tmp_path / "kaggle" / "input").rglob("model.safetensors"))
    data = weights.read_bytes()
    weights.unlink()  # hard-linked from the package: never write through the link
    weights.write_bytes(data[: len(data) // 2])
    run(tmp_path / "kaggle", smoke=False, deadline_s=120, margin_s=0)
    assert_valid_complete(tmp_path / "kaggle", challenges)
    s = summary(tmp_path / "kaggle")
    assert s["outcome"] == "fallback" and "model.safetensors: not a readable safetensors file" in s["reason"]
    assert not (tmp_path / "kaggle" / "working" / "arcsolver-solve.log").exists()

    code, _, err = cli("kaggle", "package", "--checkpoint", weights.parent, "--out", tmp_path / "pkg", "--owner", OWNER)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "model.safetensors" in err and "truncated" in err and not (tmp_path / "pkg").exists()


def test_fault_missing_dataset(tmp_path):
    challenges = make_tree(tmp_path / "kaggle", small_tasks(), None)
    run(tmp_path / "kaggle", smoke=False, deadline_s=60, margin_s=0)
    assert_valid_complete(tmp_path / "kaggle", challenges)
    s = summary(tmp_path / "kaggle")
    assert s["outcome"] == "fallback" and "dataset attached" in s["reason"]


def test_fault_deadline_during_finetune(tmp_path, packaged30):
    """The real `arcsolver finetune`, asked for far more training steps than fit before the notebook's deadline:
    the deadline passed down stops the training (or, failing that, the runner's SIGTERM/SIGKILL stops the process),
    and the file is valid and complete on time, with whatever the model answered merged in."""
    challenges = make_tree(tmp_path / "kaggle", small_tasks(), packaged30)
    # No wall-clock bound (the box's speed varies): 10^6 steps cannot run here, so returning at all means the
    # deadline (or the runner's SIGTERM/SIGKILL) stopped the training.
    run(tmp_path / "kaggle", smoke=False, deadline_s=30, margin_s=0,
        finetune_args=[*FAST_FT[:2], "--full-steps", "1000000", *FAST_FT[4:]])
    assert_valid_complete(tmp_path / "kaggle", challenges)
    s = summary(tmp_path / "kaggle")
    # The deadline cut the training (fixed steps keep prediction's reserve), then prediction ran and flushed.
    assert s["solver"]["full_steps"] < 1_000_000 and s["solver"]["predict_seconds"] > 0
    log = (tmp_path / "kaggle" / "working" / "arcsolver-solve.log").read_text()
    assert "Traceback" not in log and "predict: flush" in log
    # The outcome is what the solver's candidates say: every test input the model gave a valid grid for is counted
    # and merged (a model this small may give none: then, and only then, the fallback stands).
    cands = json.loads((tmp_path / "kaggle" / "temp" / "arcsolver" / "solve" / "submission.candidates.json")
                       .read_text())
    voted = sum(1 for entries in cands.values() for e in entries if e["candidates"])
    assert s["answered_tests"] == voted
    assert s["outcome"] == ("solved" if voted else "fallback"), s.get("reason")


def test_fault_deadline_during_predict(tmp_path, packaged30, monkeypatch):
    """A solver killed at the deadline mid-prediction, after it flushed a valid file with the answers voted so
    far (and their candidates): those answers are merged, the rest is the fallback."""
    tasks = small_tasks()
    challenges = make_tree(tmp_path / "kaggle", tasks, packaged30)
    flushed = list(tasks)[:2]
    script = (
        "import json, sys, time\n"
        "o = sys.argv[sys.argv.index('--out') + 1]; t = json.load(open(sys.argv[sys.argv.index('--tasks') + 1]))\n"
        f"done = {flushed!r}\n"
        "sub = {k: [{'attempt_1': [[7]] if k in done else p['input'], 'attempt_2': p['input']} for p in v['test']]"
        " for k, v in t.items()}\n"
        "cands = {k: [{'test_index': i, 'candidates': [{'grid': [[7]], 'votes': 3}] if k in done else []}"
        " for i, _ in enumerate(v['test'])] for k, v in t.items()}\n"
        "json.dump(cands, open(o + '/submission.candidates.json', 'w')); json.dump(sub, open(o + '/submission.json', 'w'))\n"
        "print('predict: flushed', flush=True); time.sleep(600)\n")
    monkeypatch.setattr(kaggle_runner, "finetune_command",
                        lambda tp, ck, od, dl, n, extra=(), publish=None: [sys.executable, "-c", script, "--tasks",
                                                                          str(tp), "--out", str(od)])
    run(tmp_path / "kaggle", smoke=False, deadline_s=8, margin_s=0)
    sub = assert_valid_complete(tmp_path / "kaggle", challenges)
    s = summary(tmp_path / "kaggle")
    assert s["outcome"] == "solved"  # stopped at the deadline (SIGTERM, then SIGKILL), its flushed answers kept
    n_flushed = sum(len(tasks[k]["test"]) for k in flushed)
    assert s["answered_tests"] == n_flushed and s["answered_tasks"] == len(flushed)
    for k, entries in sub.items():
        assert all((e["attempt_1"] == [[7]]) == (k in flushed) for e in entries)


def test_fault_task_without_train_and_ragged_test_input(tmp_path, packaged30):
    """One task has no `train`, one has a ragged test input: both are reported and keep a fallback ([[0]] for the
    unusable input); every other task goes to the solver and is answered."""
    tasks = small_tasks(5)
    ids = list(tasks)
    del tasks[ids[1]]["train"]
    tasks[ids[3]]["test"][0]["input"] = [[1, 2, 3], [4, 5]]
    challenges = make_tree(tmp_path / "kaggle", tasks, packaged30)
    run(tmp_path / "kaggle", smoke=False, deadline_s=60, margin_s=0, solve=flip_solve)
    sub = assert_valid_complete(tmp_path / "kaggle", challenges)
    s = summary(tmp_path / "kaggle")
    given = json.loads(next((tmp_path / "kaggle").rglob("given.json")).read_text())
    assert given == sorted(set(ids) - {ids[1], ids[3]})
    assert set(s["left_to_fallback"]) == {ids[1], ids[3]}
    assert "missing key 'train'" in s["left_to_fallback"][ids[1]]
    assert "not rectangular" in s["left_to_fallback"][ids[3]]
    assert sub[ids[3]][0] == {"attempt_1": [[0]], "attempt_2": [[0]]}
    assert sub[ids[1]][0]["attempt_1"] == tasks[ids[1]]["test"][0]["input"]
    assert s["answered_tasks"] == 3 and s["outcome"] == "solved"


def test_fault_30x30_task_on_a_small_canvas_checkpoint(tmp_path, wheel):
    """A checkpoint on a 10x10 canvas (packaged with --allow-small-canvas) cannot take a 30x30 task: that task is
    left to the fallback and reported; the others are solved. (On a 30x30 checkpoint the same task is solved by
    the real pipeline: test_rehearse_on_the_2025_format.)"""
    ck = untrained_checkpoint(tmp_path / "ck", canvas=10)
    pkg = package(ck, tmp_path / "pkg", owner=OWNER, wheel=wheel, allow_small_canvas=True)
    tasks = small_tasks(3)
    big = np.ones((30, 30), dtype=int).tolist()
    tasks["0badbig0"] = {"train": [{"input": big, "output": big}], "test": [{"input": big}]}
    challenges = make_tree(tmp_path / "kaggle", tasks, pkg)
    run(tmp_path / "kaggle", smoke=False, deadline_s=60, margin_s=0, solve=flip_solve)
    sub = assert_valid_complete(tmp_path / "kaggle", challenges)
    s = summary(tmp_path / "kaggle")
    assert list(s["left_to_fallback"]) == ["0badbig0"] and "10x10 canvas" in s["left_to_fallback"]["0badbig0"]
    assert sub["0badbig0"][0]["attempt_1"] == big
    assert s["answered_tasks"] == 3


def test_fault_image_missing_a_dependency(tmp_path, packaged30):
    """The notebook on an image without orjson (and a ragged test input in the file): the install works, the
    missing module is named, arcsolver cannot run, and the stdlib safety net's file is valid and complete."""
    tasks = small_tasks(4)
    ragged = list(tasks)[2]
    tasks[ragged]["test"][0]["input"] = [[1, 2], [3]]
    tasks[list(tasks)[0]]["test"].append({"input": [[1, "x"]]})
    test_file = tmp_path / "arc-agi_test_challenges.json"
    test_file.write_text(json.dumps(tasks))
    r = rehearse(packaged30, test_file=test_file, time_limit_s=120, image_exclude=("orjson",),
                 keep=tmp_path / "rehearsal")
    assert r["valid"] and r["complete"], format_report(r)
    assert r["answered_tests"] == 0 and r["run_summary"] == {}
    log = (tmp_path / "rehearsal" / "notebook.log").read_text()
    assert "missing from this image: orjson" in log
    assert "the safety-net submission.json stands" in log
    sub = json.loads((tmp_path / "rehearsal" / "kaggle" / "working" / "submission.json").read_text())
    assert sub[ragged][0]["attempt_1"] == [[0]]
    assert sub[list(tasks)[0]][1] == {"attempt_1": [[0]], "attempt_2": [[0]]}


@pytest.mark.parametrize("args, needle", [
    ("--num-augs 300", "No such option '--num-augs'"),
    ("--num-aug lots", "'lots' is not a valid integer"),
    ("--set no_such_field=1", "unknown field 'no_such_field'"),
    ("--set lr=fast", "lr: expected a number, got 'fast'"),
    ("--out /tmp/elsewhere", "--out is set by the notebook itself"),
    ("--num-aug '300", "cannot split"),
])
def test_fault_finetune_args_typo_is_refused_at_package_time(tmp_path, checkpoint30, args, needle):
    code, _, err = cli("kaggle", "package", "--checkpoint", checkpoint30, "--out", tmp_path / "pkg", "--owner", OWNER,
                       "--finetune-args", args)
    assert code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pkg").exists()


# ---------------------------------------------------------------------------------------------------------------
# kaggle package checks


def test_package_refuses_a_small_canvas_for_arc_unless_allowed(tmp_path, wheel):
    from arcsolver.runtime.errors import InputError
    ck = untrained_checkpoint(tmp_path / "ck", canvas=12)
    with pytest.raises(InputError, match="12x12 canvas.*--allow-small-canvas"):
        package(ck, tmp_path / "a", owner=OWNER, wheel=wheel)
    assert not (tmp_path / "a").exists()
    package(ck, tmp_path / "b", owner=OWNER, wheel=wheel, allow_small_canvas=True)
    package(ck, tmp_path / "c", owner=OWNER, wheel=wheel, competition="some-other-competition")


def test_package_extra_wheels_dir(tmp_path, checkpoint30, wheel):
    from arcsolver.kaggle.wheel import wheels_in
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "tomli-2.0.1-py3-none-any.whl").write_bytes(b"PK")
    (extra / "notes.txt").write_text("not a wheel")
    package(checkpoint30, tmp_path / "pkg", owner=OWNER, wheel=wheel, extra_wheels=wheels_in(extra))
    assert (tmp_path / "pkg" / "dataset" / "wheels" / "tomli-2.0.1-py3-none-any.whl").is_file()
    marker = json.loads((tmp_path / "pkg" / "dataset" / "arcsolver-kaggle.json").read_text())
    assert marker["extra_wheels"] == ["tomli-2.0.1-py3-none-any.whl"]
    (tmp_path / "empty").mkdir()
    code, _, err = cli("kaggle", "package", "--checkpoint", checkpoint30, "--out", tmp_path / "pkg2", "--owner", OWNER,
                       "--extra-wheels", tmp_path / "empty")
    assert code == 2 and "--extra-wheels: no *.whl files" in err and not (tmp_path / "pkg2").exists()


def test_notebook_module_check_covers_the_solve_path(tmp_path, checkpoint30):
    """Run `arcsolver finetune --predict` (the notebook's solve path) and list every third-party module it
    imported: each must be in the list the notebook checks after the install."""
    challenges = tmp_path / "arc-agi_test_challenges.json"
    challenges.write_text(json.dumps(small_tasks(2)))
    probe = ("import sys, json\nfrom arcsolver.cli import main\n"
             "try:\n    main(sys.argv[1:], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
             "mods = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)\n"
             "print('MODULES', json.dumps(sorted(m for m in mods if not m.startswith('_'))))\n")
    r = subprocess.run([sys.executable, "-c", probe, "finetune", "--from", str(checkpoint30), "--tasks",
                        str(challenges), "--time-budget", "5m", "--predict", "--out", str(tmp_path / "ft"),
                        "--embed-steps", "0", "--full-steps", "1", *FAST_FT[4:]], capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "ft" / "submission.json").is_file(), r.stderr[-2000:]
    mods = set(json.loads(r.stdout.split("MODULES", 1)[1]))
    # not separately installable: torchgen ships inside the torch wheel, cython_runtime is numba's built-in,
    # `google` is an empty namespace accelerate probes for (google.colab)
    assert mods - {"arcsolver", "torchgen", "cython_runtime", "google"} <= set(SOLVE_MODULES)


def test_wheel_code_runs_on_python_3_10():
    """Kaggle's image may be older than ours: nothing in the package (nor the notebook) may need 3.11 syntax or
    stdlib (tomllib only behind its fallback)."""
    py311_only = ("tomllib", "ExceptionGroup", "TaskGroup", "StrEnum", "datetime.UTC", "typing.Self",
                  "from typing import Self", "hashlib.file_digest", "contextlib.chdir", "assert_never", "except*")
    files = sorted((REPO / "arcsolver").rglob("*.py"))  # the notebook template included
    for f in files:
        src = f.read_text()
        ast.parse(src, filename=str(f), feature_version=(3, 10))
        for name in py311_only:
            if name in src and not (f.name == "config.py" and name == "tomllib"):
                raise AssertionError(f"{f}: uses {name} (Python >= 3.11)")
    config_src = (REPO / "arcsolver" / "training" / "config.py").read_text()
    assert "except ModuleNotFoundError" in config_src and "import tomli as tomllib" in config_src
    assert 'requires-python = ">=3.10"' in (REPO / "pyproject.toml").read_text()


def test_config_without_a_toml_parser(monkeypatch):
    from arcsolver.training import config
    from arcsolver.runtime.errors import InputError
    monkeypatch.setattr(config, "tomllib", None)
    cfg = config.build_config(None, ["lr=2e-4", "ema=false", "max_steps=5", "loss_type='softmax_cross_entropy'"])
    assert (cfg.lr, cfg.ema, cfg.max_steps, cfg.loss_type) == (2e-4, False, 5, "softmax_cross_entropy")
    with pytest.raises(InputError, match="tomli"):
        config.build_config("tiny-cpu")


# ---------------------------------------------------------------------------------------------------------------
# arcsolver kaggle rehearse


def test_rehearse_on_the_2025_format(tmp_path, packaged30):
    """The packaged notebook, rehearsed on a 240-task file in the 2025 format (first task 30x30), commit-run smoke
    mode on CPU: the notebook installs the wheel offline, the real finetune + predict run on the first tasks, and
    the file is valid, complete and holds model answers."""
    test_file = tmp_path / "arc-agi_test_challenges.json"
    tasks = kaggle_2025_tasks()
    test_file.write_text(json.dumps(tasks))
    r = subprocess.run([sys.executable, "-m", "arcsolver.cli", "kaggle", "rehearse", str(packaged30),
                        "--test-file", str(test_file), "--time-limit", "6m", "--keep", str(tmp_path / "keep")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "submission: VALID, complete (240 tasks" in out
    s = json.loads((tmp_path / "keep" / "kaggle" / "working" / "arcsolver-run-summary.json").read_text())
    assert s["mode"] == "smoke" and s["outcome"] == "solved" and s["answered_tests"] > 0
    assert f"answered by the model: {s['answered_tasks']} tasks, {s['answered_tests']} of " in out
    assert "time per phase: install_s" in out and "plan:" in out
    log = (tmp_path / "keep" / "notebook.log").read_text()
    assert "installed arcsolver-" in log  # the offline install really ran
    given = json.loads((tmp_path / "keep" / "kaggle" / "temp" / "arcsolver" /
                        "arc-agi_smoke_challenges.json").read_text())
    assert list(given)[0] == list(tasks)[0]  # the 30x30 task went through the real pipeline


def test_rehearse_scores_with_solutions(tmp_path, packaged30, monkeypatch):
    """--solutions: the report carries the score; the fallback-only run on a test file whose answers are the
    inputs scores 1.0 (the solver is made to fail so the result is known)."""
    tasks = small_tasks(3)
    test_file = tmp_path / "arc-agi_evaluation_challenges.json"
    test_file.write_text(json.dumps(tasks))
    sols = tmp_path / "arc-agi_evaluation_solutions.json"
    sols.write_text(json.dumps({k: [p["input"] for p in v["test"]] for k, v in tasks.items()}))
    r = rehearse(packaged30, test_file=test_file, solutions=sols, time_limit_s=60, image_exclude=("orjson",))
    assert r["valid"] and r["score"]["per_task"]["pass@2"] == 1.0
    assert "score: pass@2 1.0000 per task" in format_report(r)
