"""arcsolver installed from its wheel (not editable) into a fresh virtual environment with no source tree on the path:
the bundled tasks, the notebook template and the presets ship inside the package, so `arcsolver --help`,
`arcsolver prepare arc` (the bundled tasks by default) and `arcsolver kaggle package` work from the install alone.

The fresh environment is `kaggle rehearse`'s: torch, numpy and the rest come from this environment's site-packages
through a path line in a .pth file, to a folder of links that leaves out arcsolver and the editable install's
hooks (.pth files inside a folder added that way are not processed anyway); `arcsolver.__file__` is checked to lie
inside the fresh environment. One wheel and one environment serve the whole module.
"""
import base64
import hashlib
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from arcsolver.kaggle.wheel import build_wheel
from arcsolver.kaggle.rehearse import rehearsal_env

CHECKPOINT = Path(__file__).resolve().parent / "fixtures" / "old_layout" / "checkpoint"  # tiny (hidden size 16)


class Installed:
    def __init__(self, root: Path):
        self.root = root
        self.wheel = build_wheel(root / "dist")
        # kaggle rehearse's environment: a fresh venv whose .pth points at this interpreter's packages minus
        # arcsolver and the editable install's hooks (a folder of links), as a Kaggle image would be
        python = rehearsal_env(root)
        self.env, self.bin = python.parent.parent, python.parent
        self.cwd = root / "cwd"  # no arcsolver/ here: the current directory cannot shadow the install
        self.cwd.mkdir()
        self.environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        self.environ["PYTHONNOUSERSITE"] = "1"
        r = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                            "--disable-pip-version-check", str(self.wheel)], capture_output=True, text=True,
                           cwd=self.cwd, env=self.environ)
        assert r.returncode == 0, r.stdout + r.stderr

    def python(self, code: str) -> str:
        r = subprocess.run([str(self.bin / "python"), "-c", code], capture_output=True, text=True, cwd=self.cwd,
                           env=self.environ)
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout

    def arcsolver(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "arcsolver"), *args], capture_output=True, text=True, cwd=self.cwd,
                              env=self.environ, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    return Installed(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_carries_the_package_data(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert {"arcsolver/data/bundled/flip-lr.json", "arcsolver/kaggle/notebook_template.py",
            "arcsolver/training/presets/tiny-cpu.toml", "arcsolver/cli.py"} <= names
    assert len([n for n in names if n.startswith("arcsolver/data/bundled/")]) == 12


def test_the_fresh_environment_imports_the_installed_copy(installed):
    out = installed.python("import arcsolver, arcsolver.data.prepare as p; print(arcsolver.__file__); "
                           "print(p.BUNDLED_TASKS)").split()
    assert Path(out[0]).is_relative_to(installed.env), out  # not the checkout, not the editable install
    assert Path(out[1]).is_relative_to(installed.env) and Path(out[1], "flip-lr.json").is_file()


def test_help_from_the_wheel(installed):
    r = installed.arcsolver("--help")
    assert r.returncode == 0, r.stderr
    for command in ("prepare", "train", "predict", "finetune", "kaggle"):
        assert command in r.stdout


def test_prepare_arc_defaults_to_the_bundled_tasks(installed):
    r = installed.arcsolver("prepare", "arc", "--out", "x")
    assert r.returncode == 0, r.stderr[-3000:]
    counts = installed.python("import json; c = json.load(open('x/meta.json'))['counts']; "
                              "print(c['tasks'], c['test_tasks'])").split()
    assert counts == ["12", "12"]  # the twelve bundled tasks, routed as evaluation tasks


def test_kaggle_package_from_the_wheel_ships_the_installed_files(installed):
    r = installed.arcsolver("kaggle", "package", "--checkpoint", str(CHECKPOINT), "--out", "k", "--owner", "tester",
                            "--allow-small-canvas")
    assert r.returncode == 0, r.stderr[-3000:]
    out = installed.cwd / "k"
    shipped = out / "dataset" / installed.wheel.name
    assert shipped.is_file()
    notebook = next((out / "kernel").glob("*.ipynb")).read_text()
    assert "from arcsolver.kaggle.runner import run" in notebook  # rendered from the packaged template
    # No checkout to build from: the installed files are packed back, the same files as the wheel we installed ...
    built, repacked = zipfile.ZipFile(installed.wheel), zipfile.ZipFile(shipped)
    assert set(repacked.namelist()) == set(built.namelist())
    for name in built.namelist():
        if not name.endswith("RECORD"):
            assert repacked.read(name) == built.read(name), name
    # ... with a RECORD whose hashes and sizes hold (pip checks them when the notebook installs it)
    info = next(n for n in repacked.namelist() if n.endswith(".dist-info/RECORD"))
    for line in repacked.read(info).decode().splitlines():
        name, digest, size = line.rsplit(",", 2)
        if name == info:
            continue
        data = repacked.read(name)
        assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert int(size) == len(data)
