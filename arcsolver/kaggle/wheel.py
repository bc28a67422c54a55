"""The arcsolver wheel a Kaggle package ships (the notebook installs it offline from the dataset).

Choices: the wheel is built from a copy of the checkout's sources (no build/ or egg-info litter in the working tree),
without build isolation or dependencies, so packaging works offline; torch and the rest come from the Kaggle image.
Run from an installed wheel (no checkout around it), the installed files are packed back into a wheel byte for byte.
A prebuilt wheel is checked for the one module the notebook runs (arcsolver/kaggle/runner.py).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from arcsolver.runtime.errors import InputError

REPO = Path(__file__).resolve().parents[2]  # the checkout, when arcsolver runs from one


def wheel_version(wheel: Path) -> str:
    parts = wheel.name.split("-")
    if len(parts) < 5 or parts[0] != "arcsolver" or not wheel.name.endswith(".whl"):
        raise InputError("not an arcsolver wheel (arcsolver-<version>-<py>-<abi>-<platform>.whl)", file=str(wheel))
    return parts[1]


def check_wheel(wheel: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile) as e:
        raise InputError(f"unreadable wheel ({e})", file=str(wheel)) from None
    if "arcsolver/kaggle/runner.py" not in names:
        raise InputError("this wheel has no arcsolver/kaggle/runner.py, which the notebook runs", file=str(wheel))


def build_wheel(dest: Path, repo: Path = REPO) -> Path:
    """The arcsolver wheel in `dest`, offline: built from a copy of the sources of the checkout `repo`, or, when
    arcsolver runs from an installed wheel (no checkout around it), the installed files packed back."""
    if not (repo / "pyproject.toml").is_file() or not (repo / "arcsolver").is_dir():
        if repo == REPO:
            return installed_wheel(dest)
        raise InputError("not an arcsolver checkout (no pyproject.toml + arcsolver/); pass a prebuilt wheel",
                         file=str(repo))
    with tempfile.TemporaryDirectory(prefix="arcsolver-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE", "setup.py", "setup.cfg", "MANIFEST.in"):
            if (repo / name).is_file():
                shutil.copy2(repo / name, src / name)
        shutil.copytree(repo / "arcsolver", src / "arcsolver",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        out = Path(tmp) / "dist"
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w",
               str(out), str(src)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(out.glob("arcsolver-*.whl")) if out.is_dir() else []
        if res.returncode != 0 or len(wheels) != 1:
            tail = (res.stdout + res.stderr).strip().splitlines()[-5:]
            raise InputError(f"building the arcsolver wheel failed (exit {res.returncode}): {' | '.join(tail)}",
                             file=str(repo))
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheels[0], dest / wheels[0].name))


def installed_wheel(dest: Path) -> Path:
    """The installed arcsolver packed back into a wheel in `dest` (`kaggle package` from a wheel install): the files
    its RECORD lists under site-packages, byte for byte, and a fresh RECORD with their hashes. Left out: what pip adds
    at install time (INSTALLER, REQUESTED, direct_url.json), scripts outside site-packages (pip makes them again from
    entry_points.txt) and bytecode."""
    try:
        dist = distribution("arcsolver")
    except PackageNotFoundError:
        raise InputError("arcsolver is neither a checkout nor an installed distribution; pass a prebuilt wheel",
                         file=str(REPO)) from None
    info = f"{dist.metadata['Name']}-{dist.version}.dist-info"
    added = {f"{info}/{name}" for name in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}
    names = sorted(str(f) for f in dist.files or [])
    names = [n for n in names if not n.startswith("..") and "__pycache__/" not in n and not n.endswith(".pyc")
             and n not in added]
    if f"{info}/WHEEL" not in names or "arcsolver/kaggle/runner.py" not in names:
        raise InputError("the installed arcsolver lists no package files (an editable install without its "
                         "checkout?); pass a prebuilt wheel", file=str(dist.locate_file(info)))
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"arcsolver-{dist.version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            data = Path(dist.locate_file(name)).read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            zf.writestr(name, data)
            record.append(f"{name},sha256={digest},{len(data)}")
        zf.writestr(f"{info}/RECORD", "\n".join(record + [f"{info}/RECORD,,"]) + "\n")
    return path


def wheels_in(folder: Path) -> list[Path]:
    """The *.whl files of `--extra-wheels DIR` (InputError when there are none)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder", file=str(folder), field="--extra-wheels")
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise InputError("no *.whl files in this folder", file=str(folder), field="--extra-wheels")
    return wheels
