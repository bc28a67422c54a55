"""Kaggle last mile: package folder + generated notebook, the in-notebook runner, and the upload sequence.

No network, no real Kaggle API: the runner runs against a fake /kaggle tree in tmp_path, the notebook is executed
with nbclient against the same kind of tree, and uploads go to a recording fake API.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from arcsolver.kaggle import runner as kaggle_runner
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.deadline import Deadline, ManualClock
from arcsolver.kaggle.credentials import kaggle_username
from arcsolver.kaggle.metadata import (DATASET_METADATA, KERNEL_METADATA, check_kernel_folder, slugify,
                                       validate_dataset_metadata, validate_kernel_metadata)
from arcsolver.kaggle.notebook import TEMPLATE, template_cells
from arcsolver.kaggle.package import package, package_cmd
from arcsolver.kaggle.wheel import build_wheel
from arcsolver.kaggle.runner import find_files, finetune_command, merge, run
from arcsolver.kaggle.upload import credential_source, upload, upload_cmd
from arcsolver.inference.submission import fallback_submission, validate_submission

from conftest import random_task, untrained_checkpoint

OWNER = "alice"
DATASET_REF = f"{OWNER}/arcsolver-trm-checkpoint"
KERNEL_REF = f"{OWNER}/arcsolver-trm-submission"
KAGGLE_ENV = ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "KAGGLE_API_V1_TOKEN_PATH",
              "KAGGLE_IS_COMPETITION_RERUN", "ARCSOLVER_KAGGLE_MODE", "ARCSOLVER_KAGGLE_SOLVE",
              "ARCSOLVER_KAGGLE_ROOT", "ARCSOLVER_KAGGLE_SKIP_INSTALL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No real credentials, rerun flag or hook leaks in; HOME points at an empty folder."""
    for k in KAGGLE_ENV:
        monkeypatch.delenv(k, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: a fake checkpoint, the real wheel, one package, tasks, a fake Kaggle tree


def make_checkpoint(folder: Path, hidden_size: int = 16) -> Path:
    return untrained_checkpoint(folder, hidden_size=hidden_size)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def packaged(tmp_path_factory, wheel) -> Path:
    base = tmp_path_factory.mktemp("pkg")
    ck = make_checkpoint(base / "run" / "step_0000010")
    return package(ck, base / "out", owner=OWNER, wheel=wheel, machine_shape="NvidiaL4", margin_s=45 * 60)


@pytest.fixture
def tasks_json() -> dict:
    rng = np.random.default_rng(7)
    tasks = {f"{i:08x}": random_task(rng, n_test=2 if i == 1 else 1) for i in range(5)}
    for t in tasks.values():  # challenges carry no test outputs
        for p in t["test"]:
            del p["output"]
    return tasks


def make_tree(root: Path, tasks_json: dict, packaged: Path | None, layout: str = "new") -> Path:
    comp = root / "input" / ("competitions/arc-prize-2025" if layout == "new" else "arc-prize-2025")
    comp.mkdir(parents=True)
    (comp / "arc-agi_test_challenges.json").write_text(json.dumps(tasks_json))
    (comp / "sample_submission.json").write_text("{}")
    if packaged is not None:
        ds = root / "input" / ("datasets/alice/arcsolver-trm-checkpoint" if layout == "new"
                               else "arcsolver-trm-checkpoint")
        shutil.copytree(packaged / "dataset", ds)
    return root


def predicted(challenges: Path) -> dict:
    """What the fake solvers answer: attempt_1 = input flipped upside down, attempt_2 = transposed."""
    data = json.loads(Path(challenges).read_text())
    return {tid: [{"attempt_1": np.flipud(np.array(p["input"])).tolist(),
                   "attempt_2": np.array(p["input"]).T.tolist()} for p in t["test"]] for tid, t in data.items()}


def good_solve(tasks_path: Path, checkpoint: Path, out_dir: Path, deadline: Deadline, smoke: bool) -> Path:
    assert (checkpoint / "model.safetensors").is_file() and deadline.remaining() > 0
    out = out_dir / "submission.json"
    out.write_text(json.dumps(predicted(tasks_path)))
    return out


def read(path: Path):
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------------------------------------------------------
# package()


def test_package_structure(packaged, wheel):
    ds, kn = packaged / "dataset", packaged / "kernel"
    assert (ds / wheel.name).is_file()
    assert sorted(p.name for p in (ds / "checkpoint").iterdir()) == ["config.json", "ema.safetensors",
                                                                     "model.safetensors"]
    assert not list(packaged.rglob("train_state.pt"))
    marker = read(ds / "arcsolver-kaggle.json")
    assert marker["wheel"] == wheel.name and marker["checkpoint"] == "checkpoint"
    with zipfile.ZipFile(ds / wheel.name) as zf:  # the real wheel carries what the notebook runs
        assert "arcsolver/kaggle/runner.py" in zf.namelist()

    ds_meta = read(ds / DATASET_METADATA)
    assert validate_dataset_metadata(ds_meta, ds) == []
    assert ds_meta["id"] == DATASET_REF and len(ds_meta["licenses"]) == 1

    kn_meta = read(kn / KERNEL_METADATA)
    assert validate_kernel_metadata(kn_meta, kn) == []
    assert kn_meta["enable_internet"] == "false"
    assert kn_meta["id"] == KERNEL_REF and slugify(kn_meta["title"]) == "arcsolver-trm-submission"
    assert kn_meta["dataset_sources"] == [DATASET_REF]
    assert kn_meta["competition_sources"] == ["arc-prize-2025"]
    assert kn_meta["machine_shape"] == "NvidiaL4" and kn_meta["enable_gpu"] == "true"
    assert kn_meta["kernel_type"] == "notebook" and kn_meta["is_private"] == "true"


def test_notebook_is_valid_and_carries_the_config(packaged, wheel):
    import nbformat

    kn_meta = read(packaged / "kernel" / KERNEL_METADATA)
    nb = nbformat.read(packaged / "kernel" / kn_meta["code_file"], as_version=4)
    nbformat.validate(nb)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for cell in nb.cells:
        if cell.cell_type == "code":
            ast.parse(cell.source)
    assert "pip\", \"install\", \"--no-index\", \"--no-deps\"" in code
    assert "from arcsolver.kaggle.runner import run" in code
    cfg_cell = next(c.source for c in nb.cells if "ARCSOLVER_CONFIG: dict =" in c.source)
    cfg = next(ast.literal_eval(n.value) for n in ast.parse(cfg_cell).body
               if isinstance(n, ast.AnnAssign) and n.target.id == "ARCSOLVER_CONFIG")
    assert cfg["deadline_s"] == 12 * 3600 - 45 * 60 and cfg["margin_s"] == 45 * 60
    assert cfg["wheel"] == wheel.name and cfg["dataset"] == DATASET_REF and cfg["smoke"] is None
    # The safety net (stdlib fallback) comes before the install, which comes before the arcsolver import.
    order = [i for i, c in enumerate(nb.cells) for key in ("Safety net", "Offline install", "kaggle.runner import")
             if key in c.source]
    assert order == sorted(order) and len(order) == 3


def test_template_cells_parse():
    cells = template_cells(TEMPLATE.read_text())
    assert cells[0][0] == "markdown" and not cells[0][1].startswith("#  ")
    assert all(kind in ("code", "markdown") for kind, _ in cells)
    assert not any("Cells of the Kaggle submission notebook" in src for _, src in cells)  # docstring dropped


def test_package_replaces_only_its_own_folder(tmp_path, wheel):
    ck = make_checkpoint(tmp_path / "ck")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="not written by arcsolver"):
        package(ck, foreign, owner=OWNER, wheel=wheel)
    assert (foreign / "precious.txt").read_text() == "keep me"
    out = package(ck, tmp_path / "out", owner=OWNER, wheel=wheel, gpu=False, kernel_slug="my-arc-notebook")
    out = package(ck, out, owner=OWNER, wheel=wheel, gpu=False, kernel_slug="my-arc-notebook")  # again: replaced
    kn_meta = read(out / "kernel" / KERNEL_METADATA)
    assert kn_meta["id"] == "alice/my-arc-notebook" and kn_meta["enable_gpu"] == "false"
    assert "machine_shape" not in kn_meta and (out / "kernel" / "my-arc-notebook.ipynb").is_file()


def test_package_rejects_bad_inputs(tmp_path, wheel):
    ck = make_checkpoint(tmp_path / "ck")
    with pytest.raises(InputError, match="machine_shape"):
        package(ck, tmp_path / "o1", owner=OWNER, wheel=wheel, machine_shape="NvidiaL4x4")
    with pytest.raises(InputError, match="characters"):
        package(ck, tmp_path / "o2", owner=OWNER, wheel=wheel, dataset_slug="abc")
    with pytest.raises(InputError, match="slugifies"):
        package(ck, tmp_path / "o2", owner=OWNER, wheel=wheel, title="My ARC notebook", kernel_slug="other-slug")
    (ck / "config.json").unlink()
    with pytest.raises(InputError, match="config.json"):
        package(ck, tmp_path / "o3", owner=OWNER, wheel=wheel)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o3").exists()  # nothing half-written


def test_package_refuses_weights_of_another_architecture(tmp_path, wheel):
    # complete, readable weights whose shapes are not the model config.json records (a config copied from another
    # run): inference on Kaggle would fail loading them, hours later
    ck = make_checkpoint(tmp_path / "ck")
    other = make_checkpoint(tmp_path / "other", hidden_size=32)
    (ck / "config.json").write_bytes((other / "config.json").read_bytes())
    with pytest.raises(InputError, match=r"model.safetensors: .*shape .*(another architecture\?)"):
        package(ck, tmp_path / "o", owner=OWNER, wheel=wheel)
    assert not (tmp_path / "o").exists()
    from click.testing import CliRunner
    from arcsolver.cli import main
    r = CliRunner().invoke(main, ["kaggle", "package", "--checkpoint", str(ck), "--out", str(tmp_path / "o"),
                                  "--owner", OWNER])
    assert r.exit_code == 2 and "another architecture" in r.stderr and not (tmp_path / "o").exists()
    assert len(r.stderr.strip().splitlines()) == 1


def test_default_slugs_name_the_model(tmp_path, wheel):
    ck = untrained_checkpoint(tmp_path / "urm", name="urm")
    out = package(ck, tmp_path / "o", owner=OWNER, wheel=wheel)
    ds = json.loads((out / "dataset" / "dataset-metadata.json").read_text())
    kn = json.loads((out / "kernel" / "kernel-metadata.json").read_text())
    assert ds["id"] == f"{OWNER}/arcsolver-urm-checkpoint" and kn["id"] == f"{OWNER}/arcsolver-urm-submission"
    assert kn["dataset_sources"] == [ds["id"]]


def test_owner_from_env_file_or_error(tmp_path, monkeypatch, wheel):
    ck = make_checkpoint(tmp_path / "ck")
    with pytest.raises(InputError, match="no Kaggle owner"):
        package(ck, tmp_path / "o", wheel=wheel)
    kdir = Path(os.environ["HOME"]) / ".kaggle"
    kdir.mkdir()
    (kdir / "kaggle.json").write_text(json.dumps({"username": "bob", "key": "s3cret-key"}))
    assert kaggle_username() == "bob"
    monkeypatch.setenv("KAGGLE_USERNAME", "carol")
    out = package(ck, tmp_path / "o", wheel=wheel)
    assert read(out / "kernel" / KERNEL_METADATA)["id"] == "carol/arcsolver-trm-submission"
    assert not any(b"s3cret-key" in p.read_bytes() for p in out.rglob("*") if p.is_file())


def test_package_cmd_report(tmp_path, monkeypatch, wheel):
    ck = make_checkpoint(tmp_path / "ck")
    import arcsolver.kaggle.package as kp

    monkeypatch.setattr(kp, "build_wheel", lambda dest, repo=None: Path(shutil.copy2(wheel, dest / wheel.name)))
    text = package_cmd(ck, tmp_path / "out", "arc-prize-2025", OWNER, None, None, True, "NvidiaL4", 60.0)
    assert "alice/arcsolver-trm-checkpoint" in text and "internet off" in text and "11.00 h" in text
    assert "kaggle kernels push -p" in text


# ---------------------------------------------------------------------------------------------------------------
# Metadata validators

GOOD_DATASET = {"title": "arcsolver TRM checkpoint", "id": "alice/arcsolver-trm",
                "licenses": [{"name": "CC0-1.0"}]}


@pytest.mark.parametrize("change, needle", [
    ({"title": "short"}, "title"),
    ({"title": "x" * 51}, "title"),
    ({"title": None}, "title"),
    ({"id": "no-owner-slug"}, "id"),
    ({"id": "alice/Upper-Case"}, "lowercase"),
    ({"id": "alice/abc"}, "characters"),
    ({"id": "alice/" + "a" * 51}, "characters"),
    ({"id": "a/b/c"}, "id"),
    ({"licenses": [{"name": "CC0-1.0"}, {"name": "CC-BY-4.0"}]}, "exactly one"),
    ({"licenses": []}, "exactly one"),
    ({"licenses": None}, "exactly one"),
    ({"licenses": [{"name": "MIT"}]}, "not a Kaggle licence"),
    ({"subtitle": "too short"}, "subtitle"),
])
def test_dataset_validator_rejects(change, needle):
    assert validate_dataset_metadata(GOOD_DATASET) == []
    meta = {**GOOD_DATASET, **change}
    meta = {k: v for k, v in meta.items() if v is not None}
    problems = validate_dataset_metadata(meta)
    assert problems and any(needle in p for p in problems), problems


def good_kernel(folder: Path) -> dict:
    (folder / "nb.ipynb").write_text("{}")
    return {"id": "alice/arc-solver", "title": "ARC Solver", "code_file": "nb.ipynb", "language": "python",
            "kernel_type": "notebook", "is_private": "true", "enable_gpu": "true", "enable_internet": "false",
            "dataset_sources": ["alice/arcsolver-trm"], "competition_sources": ["arc-prize-2025"]}


@pytest.mark.parametrize("change, needle", [
    ({"enable_internet": "true"}, "enable_internet"),
    ({"enable_internet": True}, "enable_internet"),
    ({"enable_internet": None}, "enable_internet: missing"),
    ({"enable_internet": "nope"}, "enable_internet"),
    ({"title": "Another Title"}, "slugifies"),
    ({"title": "ARC"}, "title"),
    ({"id": "arc-solver"}, "id"),
    ({"code_file": "missing.ipynb"}, "does not exist"),
    ({"code_file": None}, "code_file"),
    ({"language": "julia"}, "language"),
    ({"kernel_type": "app"}, "kernel_type"),
    ({"competition_sources": []}, "competition_sources"),
    ({"competition_sources": None}, "competition_sources"),
    ({"dataset_sources": ["no-slash"]}, "dataset_sources"),
    ({"machine_shape": "NvidiaL4x4"}, "machine_shape"),
    ({"machine_shape": "NvidiaL4", "enable_gpu": "false"}, "enable_gpu is false"),
    ({"is_private": "yes"}, "is_private"),
])
def test_kernel_validator_rejects(tmp_path, change, needle):
    base = good_kernel(tmp_path)
    assert validate_kernel_metadata(base, tmp_path) == []
    meta = {k: v for k, v in {**base, **change}.items() if v is not None}
    problems = validate_kernel_metadata(meta, tmp_path)
    assert problems and any(needle in p for p in problems), problems


def test_slugify_matches_kaggle_rule():
    assert slugify("ARC Prize: arcsolver's TRM  v2!") == "arc-prize-arcsolvers-trm-v2"
    assert slugify("arcsolver trm submission") == "arcsolver-trm-submission"


# ---------------------------------------------------------------------------------------------------------------
# Runner


def test_runner_merges_a_good_solution(tmp_path, tasks_json, packaged):
    root = make_tree(tmp_path / "kaggle", tasks_json, packaged)
    calls = []

    def solve(tp, ck, od, budget, smoke):
        calls.append((tp, ck, budget, smoke))
        return good_solve(tp, ck, od, budget, smoke)

    out = run(root, smoke=False, solve=solve)
    challenges = root / "input/competitions/arc-prize-2025/arc-agi_test_challenges.json"
    assert out == root / "working" / "submission.json"
    assert read(out) == predicted(challenges)
    assert validate_submission(read(out), load_tasks(challenges)) == []
    (tp, ck, budget, smoke), = calls
    assert tp == challenges and (ck / "model.safetensors").is_file() and not smoke
    assert 0 < budget.remaining() <= 12 * 3600
    summary = read(root / "working" / "arcsolver-run-summary.json")
    assert summary["outcome"] == "solved" and summary["answered_tasks"] == 5 and summary["answered_tests"] == 6


def test_runner_smoke_on_commit_full_on_rerun(tmp_path, tasks_json, packaged, monkeypatch):
    root = make_tree(tmp_path / "kaggle", tasks_json, packaged)
    seen = []

    def solve(tp, ck, od, budget, smoke):
        seen.append((len(read(tp)), budget.remaining(), smoke))
        return good_solve(tp, ck, od, budget, smoke)

    out = run(root, solve=solve, smoke_tasks=2, smoke_budget_s=42)
    assert seen[-1][0] == 2 and seen[-1][1] == pytest.approx(42, abs=0.01) and seen[-1][2] is True
    sub, fb = read(out), fallback_submission(load_tasks(root / "input/competitions/arc-prize-2025/"
                                                        "arc-agi_test_challenges.json"))
    ids = list(tasks_json)
    assert [sub[t] != fb[t] for t in ids] == [True, True, False, False, False]  # only the smoke tasks answered
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    run(root, solve=solve, smoke_tasks=2)
    assert seen[-1][0] == 5 and seen[-1][2] is False
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN")
    monkeypatch.setenv("ARCSOLVER_KAGGLE_MODE", "full")
    run(root, solve=solve)
    assert seen[-1][2] is False


def _assert_fallback(root: Path) -> dict:
    challenges = next(find_files(root / "input", "arc-agi_test_challenges.json").__iter__())
    tasks = load_tasks(challenges)
    sub = read(root / "working" / "submission.json")
    assert validate_submission(sub, tasks) == []
    assert sub == fallback_submission(tasks)
    summary = read(root / "working" / "arcsolver-run-summary.json")
    assert summary["outcome"] == "fallback" and summary["reason"]
    return summary


def test_runner_keeps_fallback_when_solve_raises(tmp_path, tasks_json, packaged):
    root = make_tree(tmp_path / "kaggle", tasks_json, packaged)

    def boom(*args):
        raise RuntimeError("CUDA out of memory")

    run(root, smoke=False, solve=boom)
    assert "CUDA out of memory" in _assert_fallback(root)["reason"]


def test_runner_stops_waiting_at_the_deadline(tmp_path, tasks_json, packaged):
    root = make_tree(tmp_path / "kaggle", tasks_json, packaged)

    release, finished = threading.Event(), threading.Event()

    def slow(tp, ck, od, budget, smoke):  # runs until the test releases it, i.e. after run() has returned
        release.wait(60)
        finished.set()
        return good_solve(tp, ck, od, budget, smoke)

    run(root, smoke=False, solve=slow, deadline_s=1.5, margin_s=0)
    # No wall-clock bound: run() returned while the solve was still blocked, so it stopped waiting by itself.
    assert not finished.is_set()
    assert "TimeoutError" in _assert_fallback(root)["reason"]
    release.set()


def test_smoke_run_is_stopped_early(tmp_path, tasks_json, packaged, monkeypatch):
    root = make_tree(tmp_path / "kaggle", tasks_json, packaged)
    monkeypatch.setattr(kaggle_runner, "SMOKE_STARTUP_S", 0.5)

    release, finished = threading.Event(), threading.Event()

    def slow(tp, ck, od, budget, smoke):
        release.wait(60)
        finished.set()
        return good_solve(tp, ck, od, budget, smoke)

    run(root, solve=slow, smoke_budget_s=0.5)  # commit run -> smoke; the 11.5 h deadline is far away
    assert not finished.is_set()  # stopped waiting at the smoke limit, not at the far deadline
    assert "TimeoutError" in _assert_fallback(root)["reason"]
    release.set()


def test_runner_without_checkpoint_keeps_fallback(tmp_path, tasks_json):
    root = make_tree(tmp_path / "kaggle", tasks_json, packaged=None)
    called = []
    run(root, smoke=False, solve=lambda *a: called.append(a))
    assert not called
    assert "no checkpoint" in _assert_fallback(root)["reason"]


def test_runner_merges_only_valid_entries(tmp_path, tasks_json, packaged):
    root = make_tree(tmp_path / "kaggle", tasks_json, packaged, layout="old")  # old /kaggle/input/<slug>/ layout
    ids = list(tasks_json)

    def sloppy(tp, ck, od, budget, smoke):
        sub = predicted(tp)
        sub[ids[0]][0]["attempt_1"] = [[11]]  # invalid colour: this entry falls back
        sub[ids[1]] = sub[ids[1]][:1]  # wrong number of entries: the whole task falls back
        del sub[ids[2]]  # missing: falls back
        sub["ffffffff"] = sub[ids[3]]  # extra task: ignored
        (od / "s.json").write_text(json.dumps(sub))
        return od / "s.json"

    out = run(root, smoke=False, solve=sloppy)
    challenges = root / "input/arc-prize-2025/arc-agi_test_challenges.json"
    tasks = load_tasks(challenges)
    sub, fb, good = read(out), fallback_submission(tasks), predicted(challenges)
    assert validate_submission(sub, tasks) == []
    assert sub[ids[0]] == fb[ids[0]] and sub[ids[1]] == fb[ids[1]] and sub[ids[2]] == fb[ids[2]]
    assert sub[ids[3]] == good[ids[3]] and sub[ids[4]] == good[ids[4]] and "ffffffff" not in sub
    summary = read(root / "working" / "arcsolver-run-summary.json")
    assert summary["answered_tasks"] == 2 and summary["answered_tests"] == 2


def test_merge_per_test_input():
    tasks = load_tasks(Path(__file__).resolve().parent.parent / "arcsolver" / "data" / "bundled")[:2]
    fb = fallback_submission(tasks)
    cand = {tasks[0].id: [{"attempt_1": [[1]], "attempt_2": [[2]]}] * len(tasks[0].test)}
    merged, n_tasks, n_tests = merge(tasks, fb, cand)
    assert merged[tasks[0].id][0] == {"attempt_1": [[1]], "attempt_2": [[2]]}
    assert merged[tasks[1].id] == fb[tasks[1].id] and n_tasks == 1 and n_tests == len(tasks[0].test)
    assert merge(tasks, fb, "garbage")[1:] == (0, 0)


def test_runner_finds_a_zipped_checkpoint_and_uses_the_env_hook(tmp_path, tasks_json, packaged, monkeypatch):
    root = make_tree(tmp_path / "kaggle", tasks_json, packaged=None)
    ds = root / "input" / "datasets" / "alice" / "arcsolver-trm-checkpoint"
    ds.mkdir(parents=True)
    with zipfile.ZipFile(ds / "checkpoint.zip", "w") as zf:
        for f in (packaged / "dataset" / "checkpoint").iterdir():
            zf.write(f, f"checkpoint/{f.name}")
    hook = tmp_path / "hooks"
    hook.mkdir()
    (hook / "kaggle_hook_solver.py").write_text(
        "import json, pathlib\n"
        "def solve(tp, ck, od, budget, smoke):\n"
        "    assert (pathlib.Path(ck) / 'model.safetensors').is_file()\n"
        "    data = json.loads(pathlib.Path(tp).read_text())\n"
        "    sub = {t: [{'attempt_1': [[7]], 'attempt_2': [[8]]} for _ in v['test']] for t, v in data.items()}\n"
        "    (pathlib.Path(od) / 'submission.json').write_text(json.dumps(sub))\n"
        "    return pathlib.Path(od) / 'submission.json'\n")
    monkeypatch.syspath_prepend(str(hook))
    monkeypatch.setenv("ARCSOLVER_KAGGLE_SOLVE", "kaggle_hook_solver:solve")
    out = run(root, smoke=False)
    assert all(e == {"attempt_1": [[7]], "attempt_2": [[8]]} for v in read(out).values() for e in v)


def test_runner_without_challenges_raises(tmp_path):
    (tmp_path / "input").mkdir()
    with pytest.raises(InputError, match="arc-agi_test_challenges.json"):
        run(tmp_path, solve=good_solve)


def test_solver_stops_come_in_order_from_one_deadline():
    from arcsolver.kaggle.runner import solver_stops
    clock = ManualClock(1_000_000.0)
    now = clock.now()

    def stops(seconds: float, **kw) -> dict[str, float]:
        return {k: d.at for k, d in solver_stops(Deadline(now + seconds, clock), **kw).items()}
    full = stops(11.5 * 3600)
    assert full["solver"] < full["sigterm"] < full["sigkill"] < full["merge"] <= now + 11.5 * 3600
    assert full["sigkill"] - full["sigterm"] == 30.0  # the grace period for the last flush
    assert full["merge"] - full["solver"] == 45.0  # 5 s for the solver to end by itself + grace + kill wait
    short = stops(20)  # a rehearsal or test: the margins shrink with the time left
    assert short["solver"] - now > 17 and short["merge"] <= now + 20
    smoke = stops(11.5 * 3600, smoke=True, smoke_budget_s=300)
    assert smoke["solver"] == now + 300 and smoke["sigterm"] == now + 600 + 120
    assert stops(-5)["merge"] <= now  # a passed deadline: nothing left to give


def test_finetune_command_single_and_multi_gpu(tmp_path):
    one = finetune_command(tmp_path / "c.json", tmp_path / "ck", tmp_path / "o", Deadline(1796000000.7), 1)
    assert one[:3] == [sys.executable, "-m", "arcsolver.cli"]
    assert one[3:] == ["finetune", "--from", str(tmp_path / "ck"), "--tasks", str(tmp_path / "c.json"),
                       "--deadline", "1796000000", "--predict", "--out", str(tmp_path / "o")]  # rounded down
    four = finetune_command(tmp_path / "c.json", tmp_path / "ck", tmp_path / "o", Deadline(1796000060), 4)
    assert four[1:8] == ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "4", "-m",
                         "arcsolver.cli"]
    assert four[8:] == one[3:7] + [str(tmp_path / "c.json"), "--deadline", "1796000060"] + one[10:]
    # the working file every prediction flush publishes into, so a kernel killed before the merge keeps the answers
    pub = finetune_command(tmp_path / "c.json", tmp_path / "ck", tmp_path / "o", Deadline(1796000000), 1, ["--num-aug", "2"],
                           publish=tmp_path / "working" / "submission.json")
    assert pub[3:] == one[3:] + ["--publish", str(tmp_path / "working" / "submission.json"), "--num-aug", "2"]


@pytest.mark.parametrize("script, outcome", [
    ("import json,sys; o=sys.argv[sys.argv.index('--out')+1]; t=json.load(open(sys.argv[sys.argv.index('--tasks')+1]));"
     "json.dump({k:[{'attempt_1':[[5]],'attempt_2':[[6]]} for _ in v['test']] for k,v in t.items()},"
     "open(o+'/submission.json','w'))", "solved"),
    ("import sys; print('crash'); sys.exit(3)", "exited with code 3"),
    ("import sys, time; time.sleep(30); open(sys.argv[-1] + '/woke', 'w')", "TimeoutError"),
    # writes its answers, then hangs and ignores SIGTERM: SIGKILL after the grace period, and its file is used
    ("import json,sys,signal,time; o=sys.argv[sys.argv.index('--out')+1]; "
     "t=json.load(open(sys.argv[sys.argv.index('--tasks')+1]));"
     "json.dump({k:[{'attempt_1':[[5]],'attempt_2':[[6]]} for _ in v['test']] for k,v in t.items()},"
     "open(o+'/submission.json','w')); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60); open(o + '/woke', 'w')", "solved"),
])
def test_default_cli_solve_subprocess(tmp_path, tasks_json, packaged, monkeypatch, script, outcome):
    """The default solve path end to end, with the finetune command swapped for a tiny script."""
    root = make_tree(tmp_path / "kaggle", tasks_json, packaged)
    passed = []

    def command(tp, ck, od, deadline, n, extra=(), publish=None):
        passed.append(deadline.at)
        return [sys.executable, "-c", script, "--tasks", str(tp), "--out", str(od)]
    monkeypatch.setattr(kaggle_runner, "finetune_command", command)
    t0 = time.time()
    out = run(root, smoke=False, deadline_s=8, margin_s=0)
    assert t0 < passed[0] < t0 + 8  # one absolute deadline, before the run's own, passed down
    # The sleeping scripts would write this after their sleep: absent, so the runner stopped them (no time bound).
    assert not list(root.rglob("woke"))
    summary = read(root / "working" / "arcsolver-run-summary.json")
    if outcome == "solved":
        assert summary["outcome"] == "solved"
        assert all(e == {"attempt_1": [[5]], "attempt_2": [[6]]} for v in read(out).values() for e in v)
    else:
        assert outcome in _assert_fallback(root)["reason"]
    if "crash" in script:
        assert "crash" in (root / "working" / "arcsolver-solve.log").read_text()


# ---------------------------------------------------------------------------------------------------------------
# The notebook, executed


def test_notebook_runs_end_to_end(tmp_path, tasks_json, packaged, monkeypatch, wheel):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    import nbformat
    from nbclient import NotebookClient

    if importlib.metadata.version("arcsolver") != wheel.name.split("-")[1]:
        # Never let the notebook's pip install touch the test environment.
        monkeypatch.setenv("ARCSOLVER_KAGGLE_SKIP_INSTALL", "1")
    root = make_tree(tmp_path / "kaggle", tasks_json, packaged)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "nb_fake_solver.py").write_text(
        "import json, pathlib\nimport numpy as np\n"
        "def solve(tp, ck, od, budget, smoke):\n"
        "    data = json.loads(pathlib.Path(tp).read_text())\n"
        "    sub = {t: [{'attempt_1': np.flipud(np.array(p['input'])).tolist(),\n"
        "                'attempt_2': np.array(p['input']).T.tolist()} for p in v['test']] for t, v in data.items()}\n"
        "    (pathlib.Path(od) / 'submission.json').write_text(json.dumps(sub))\n"
        "    return pathlib.Path(od) / 'submission.json'\n")
    monkeypatch.setenv("ARCSOLVER_KAGGLE_ROOT", str(root))
    monkeypatch.setenv("ARCSOLVER_KAGGLE_SOLVE", "nb_fake_solver:solve")
    monkeypatch.setenv("ARCSOLVER_KAGGLE_MODE", "full")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]))
    kn = packaged / "kernel"
    nb = nbformat.read(kn / read(kn / KERNEL_METADATA)["code_file"], as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    out = root / "working" / "submission.json"
    challenges = root / "input/competitions/arc-prize-2025/arc-agi_test_challenges.json"
    assert validate_submission(read(out), load_tasks(challenges)) == []
    assert read(out) == predicted(challenges)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "safety-net submission.json: 5 tasks" in text
    assert "already installed" in text or "SKIP_INSTALL" in os.environ
    assert '"outcome": "solved"' in text
    assert "Traceback" not in text


# ---------------------------------------------------------------------------------------------------------------
# Upload


class FakeHTTPError(Exception):
    def __init__(self, code: int):
        super().__init__(f"{code} Client Error")
        self.response = SimpleNamespace(status_code=code)


class Recorder:
    """Stands in for kaggle.api: records each call and plays back scripted answers."""

    def __init__(self, exists=True, dataset_statuses=("ready",), kernel_statuses=("running", "complete"),
                 push=None):
        self.calls: list[tuple[str, dict]] = []
        self.exists = exists
        self.dataset_statuses = list(dataset_statuses)
        self.kernel_statuses = list(kernel_statuses)
        self.push = push or SimpleNamespace(error=None, version_number=7, url="https://kaggle.example/k",
                                            invalid_dataset_sources=[], invalid_competition_sources=[])
        self.checked = False

    def dataset_status(self, dataset):
        self.calls.append(("dataset_status", {"dataset": dataset}))
        if not self.checked:
            self.checked = True
            if not self.exists:
                raise FakeHTTPError(404)
            return "ready"
        return self.dataset_statuses.pop(0) if len(self.dataset_statuses) > 1 else self.dataset_statuses[0]

    def dataset_create_new(self, **kw):
        self.calls.append(("dataset_create_new", kw))
        return SimpleNamespace(error=None, status="ok", ref=kw["folder"])

    def dataset_create_version(self, **kw):
        self.calls.append(("dataset_create_version", kw))
        return SimpleNamespace(error=None, status="ok")

    def kernels_push(self, **kw):
        self.calls.append(("kernels_push", kw))
        return self.push

    def kernels_status(self, kernel):
        self.calls.append(("kernels_status", {"kernel": kernel}))
        s = self.kernel_statuses.pop(0) if len(self.kernel_statuses) > 1 else self.kernel_statuses[0]
        return SimpleNamespace(status=SimpleNamespace(name=s.upper()), failure_message="boom" if s == "error" else "")

    def competition_submit_code(self, **kw):
        self.calls.append(("competition_submit_code", kw))
        return SimpleNamespace(message="Submission successful")


def _upload(folder, api, **kw):
    return upload(folder, api=api, sleep=lambda s: None, echo=lambda s: None, **kw)


def test_upload_new_dataset_sequence(packaged):
    api = Recorder(exists=False, dataset_statuses=("blobs_received", "ready"))
    calls = _upload(packaged, api, message="v1")
    ds, kn = str(packaged / "dataset"), str(packaged / "kernel")
    assert api.calls == [
        ("dataset_status", {"dataset": DATASET_REF}),
        ("dataset_create_new", {"folder": ds, "public": False, "quiet": False, "dir_mode": "zip"}),
        ("dataset_status", {"dataset": DATASET_REF}),
        ("dataset_status", {"dataset": DATASET_REF}),
        ("kernels_push", {"folder": kn}),
    ]
    assert [(c.method, c.kwargs) for c in calls] == api.calls


def test_upload_existing_dataset_and_submit(packaged):
    api = Recorder(exists=True, kernel_statuses=("queued", "running", "complete"))
    _upload(packaged, api, message="v2", submit=True)
    ds, kn = str(packaged / "dataset"), str(packaged / "kernel")
    assert api.calls == [
        ("dataset_status", {"dataset": DATASET_REF}),
        ("dataset_create_version", {"folder": ds, "version_notes": "v2", "quiet": False, "dir_mode": "zip"}),
        ("dataset_status", {"dataset": DATASET_REF}),
        ("kernels_push", {"folder": kn}),
        ("kernels_status", {"kernel": KERNEL_REF}),
        ("kernels_status", {"kernel": KERNEL_REF}),
        ("kernels_status", {"kernel": KERNEL_REF}),
        ("competition_submit_code", {"file_name": "submission.json", "message": "v2", "competition": "arc-prize-2025",
                                     "kernel": KERNEL_REF, "kernel_version": 7}),
    ]


def test_upload_does_not_trust_a_stale_complete(packaged):
    # "complete" right after the push may be the previous version: submitted only after a few polls.
    api = Recorder(kernel_statuses=("complete",))
    _upload(packaged, api, submit=True)
    assert [m for m, _ in api.calls].count("kernels_status") == 3
    assert api.calls[-1][0] == "competition_submit_code"


def test_upload_failures_are_one_line_errors(packaged):
    api = Recorder(kernel_statuses=("running", "error"))
    with pytest.raises(InputError, match="ended as error boom; not submitted"):
        _upload(packaged, api, submit=True)
    assert "competition_submit_code" not in [m for m, _ in api.calls]
    api = Recorder(dataset_statuses=("blobs_received",))
    with pytest.raises(InputError, match="still 'blobs_received'"):
        _upload(packaged, api, dataset_wait_s=60, poll_s=30)
    assert [m for m, _ in api.calls].count("dataset_status") == 1 + 3 and "kernels_push" not in str(api.calls)
    api = Recorder(push=SimpleNamespace(error="Notebook not found", version_number=None))
    with pytest.raises(InputError, match="kernel push failed: Notebook not found"):
        _upload(packaged, api)
    api = Recorder(push=SimpleNamespace(error=None, version_number=3, invalid_dataset_sources=[DATASET_REF]))
    with pytest.raises(InputError, match="rejected its sources"):
        _upload(packaged, api, submit=True)

    class Broken(Recorder):
        def dataset_status(self, dataset):
            raise ConnectionError("network is unreachable")

    with pytest.raises(InputError, match="kaggle API dataset_status failed: ConnectionError"):
        _upload(packaged, Broken())


def test_upload_of_a_missing_or_foreign_folder_names_the_folder(tmp_path):
    # it once said "<folder>/dataset/dataset-metadata.json: file not found" for a mistyped folder
    with pytest.raises(InputError) as e:
        upload(tmp_path / "kaggle-oot", dry_run=True)
    assert str(e.value).startswith(f"{tmp_path / 'kaggle-oot'}: no such folder") and "metadata" not in str(e.value)
    (tmp_path / "runs").mkdir()
    with pytest.raises(InputError, match="not a folder written by `arcsolver kaggle package`") as e:
        upload(tmp_path / "runs", dry_run=True)
    assert str(tmp_path / "runs") in str(e.value)


def test_upload_dry_run_makes_no_calls(packaged, capsys):
    sys.modules.pop("kaggle", None)
    api = Recorder()
    plan = upload(packaged, dry_run=True, submit=True, message="try", api=api)
    assert api.calls == []
    out = capsys.readouterr().out
    assert [c.method for c in plan] == ["dataset_status", "dataset_create_version", "dataset_create_new",
                                        "dataset_status", "kernels_push", "kernels_status",
                                        "competition_submit_code"]
    assert out.count("[dry-run] api.") == 7 and "none made" in out
    assert f"api.kernels_push(folder='{packaged / 'kernel'}')" in out
    # No credentials and no api: a dry run still works and never imports kaggle.
    assert "dry run" in upload_cmd(packaged, submit=False, dry_run=True, message="m")
    assert "kaggle" not in sys.modules


@pytest.mark.parametrize("value", ["true", True, None])
def test_upload_refuses_internet(tmp_path, packaged, value):
    folder = tmp_path / "pkg"
    shutil.copytree(packaged, folder)
    meta_file = folder / "kernel" / KERNEL_METADATA
    meta = read(meta_file)
    if value is None:
        del meta["enable_internet"]
    else:
        meta["enable_internet"] = value
    meta_file.write_text(json.dumps(meta))
    api = Recorder()
    with pytest.raises(InputError, match="enable_internet"):
        _upload(folder, api)
    with pytest.raises(InputError, match="enable_internet"):
        check_kernel_folder(folder / "kernel")
    assert api.calls == []


def test_upload_without_credentials_never_imports_kaggle(packaged):
    assert credential_source() is None
    sys.modules.pop("kaggle", None)
    with pytest.raises(InputError, match="no Kaggle credentials"):
        upload(packaged, echo=lambda s: None)
    with pytest.raises(InputError, match="no Kaggle credentials"):
        upload_cmd(packaged, submit=True, dry_run=False, message="m")
    assert "kaggle" not in sys.modules


def test_credentials_found_but_never_written(tmp_path, packaged, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "sentinel-secret-123")
    assert credential_source() == "$KAGGLE_USERNAME + $KAGGLE_KEY"
    folder = tmp_path / "pkg"
    shutil.copytree(packaged, folder)
    _upload(folder, Recorder(), submit=True)
    assert not any(b"sentinel-secret" in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    monkeypatch.delenv("KAGGLE_KEY")
    kdir = Path(os.environ["HOME"]) / ".kaggle"
    kdir.mkdir()
    (kdir / "access_token").write_text("tok")
    assert credential_source() == str(kdir / "access_token")


def test_upload_kwargs_match_the_installed_kaggle_client(packaged):
    """Every keyword we pass exists in kaggle's KaggleApi signatures (read from source: importing would auth)."""
    spec = importlib.util.find_spec("kaggle")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("kaggle package not installed")
    src = Path(list(spec.submodule_search_locations)[0]) / "api" / "kaggle_api_extended.py"
    cls = next(n for n in ast.parse(src.read_text()).body if isinstance(n, ast.ClassDef) and n.name == "KaggleApi")
    params = {f.name: {a.arg for a in f.args.args + f.args.kwonlyargs} for f in cls.body
              if isinstance(f, ast.FunctionDef)}
    api = Recorder(exists=False)
    _upload(packaged, api, submit=True)
    for method, kwargs in api.calls:
        assert method in params, method
        assert set(kwargs) <= params[method], (method, set(kwargs) - params[method])
    assert "kaggle" not in sys.modules


# ---------------------------------------------------------------------------------------------------------------
# The notebook with a real checkpoint and the real solve path, against the CLI


def test_notebook_with_a_real_checkpoint_scores_as_the_cli(tmp_path, monkeypatch, wheel):
    """A trained checkpoint, packaged; the generated notebook runs `arcsolver finetune --predict` (fixed steps,
    so both runs are the same computation) against a fake Kaggle tree. Its submission.json must be valid, be the
    model's (not the fallback), and equal what the same commands give through the CLI, hence score the same."""
    pytest.importorskip("nbclient")
    import nbformat
    from nbclient import NotebookClient

    from arcsolver.data.arc_dataset import TaskSet, build
    from arcsolver.training.config import build_config
    from arcsolver.inference.score import load_solutions_any, score_submission
    from arcsolver.training.train import train
    from conftest import BUNDLED

    if importlib.metadata.version("arcsolver") != wheel.name.split("-")[1]:
        monkeypatch.setenv("ARCSOLVER_KAGGLE_SKIP_INSTALL", "1")
    tasks = load_tasks(BUNDLED)[:4]
    data = tmp_path / "pre"
    build(data, [TaskSet("b", tasks, test_set=True)], num_aug=4, seed=0, canvas=10)
    ck = train(build_config("tiny-cpu", ["max_steps=120"], data=str(data), out=str(tmp_path / "run")), cpu=True,
               quiet=True, final_eval=False).checkpoint
    ft_args = ["--embed-steps", "2", "--full-steps", "3", "--num-aug", "3", "--batch-size", "8", "--cpu"]
    pkg = package(ck, tmp_path / "pkg", owner=OWNER, wheel=wheel, finetune_args=ft_args, allow_small_canvas=True)
    challenges = {t.id: {"train": t.to_json()["train"], "test": [{"input": p["input"]} for p in t.to_json()["test"]]}
                  for t in tasks}
    solutions = {t.id: [p["output"] for p in t.to_json()["test"]] for t in tasks}
    root = make_tree(tmp_path / "kaggle", challenges, pkg)
    comp = root / "input/competitions/arc-prize-2025"
    (comp / "arc-agi_test_solutions.json").write_text(json.dumps(solutions))

    monkeypatch.setenv("ARCSOLVER_KAGGLE_ROOT", str(root))
    monkeypatch.setenv("ARCSOLVER_KAGGLE_MODE", "full")
    kn = pkg / "kernel"
    nb = nbformat.read(kn / read(kn / KERNEL_METADATA)["code_file"], as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert '"outcome": "solved"' in text and "Traceback" not in text
    nb_sub = read(root / "working" / "submission.json")
    assert validate_submission(nb_sub, load_tasks(comp / "arc-agi_test_challenges.json")) == []

    # The same fine-tune through the CLI, from the packaged checkpoint the notebook used.
    import subprocess
    packaged_ck = next((pkg / "dataset").rglob("model.safetensors")).parent
    cli_out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "arcsolver.cli", "finetune", "--from", str(packaged_ck), "--tasks",
                        str(comp / "arc-agi_test_challenges.json"), "--time-budget", "10m", "--predict", "--out",
                        str(cli_out), *ft_args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    cli_sub = read(cli_out / "submission.json")
    cands = read(cli_out / "submission.candidates.json")
    assert any(e["candidates"] for entries in cands.values() for e in entries)  # the model answered something
    assert nb_sub == cli_sub
    sols = load_solutions_any(comp / "arc-agi_test_challenges.json")
    assert score_submission(nb_sub, sols) == score_submission(cli_sub, sols)
