"""Kaggle `submission.json`: build it from votes, validate it, write it atomically.

Format: `{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}`, one dict per test input in test order, every
task of the challenges file present. Kaggle rejects the WHOLE file for one missing task, a wrong number of entries,
a missing attempt or a malformed grid, so:

* `build_submission` is complete by construction: every task, every test input, both attempts. Fallbacks, in order:
  attempt_1 = best candidate, else the test input; attempt_2 = second candidate, else the test input. With a single
  candidate, attempt_2 is therefore the test input rather than a repeat of attempt_1 (the reference repeats it): a
  repeat can never score, a different guess sometimes can. A fault while processing one task (a bug, a bad
  candidate) is logged and that task falls back to its test inputs; the rest of the file is unaffected.
* `validate_submission` lists every problem (one line each, naming the task and field); `write_submission` refuses to
  write an invalid file and writes a valid one atomically, so a crash never leaves a half-written file.
* `fallback_submission` (every attempt = the test input) lets a Kaggle notebook write a valid file before doing
  anything risky.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from arcsolver.data.arc_tasks import Task, load_tasks, parse_grid
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json, write_json
from arcsolver.inference.vote import VoteBook
from arcsolver.runtime.report import logger

log = logger(__name__)  # warnings: runtime/report.py

ATTEMPTS = ("attempt_1", "attempt_2")

Grid = list[list[int]]
Submission = dict[str, list[dict[str, Grid]]]


def _as_list(grid: np.ndarray) -> Grid:
    return np.asarray(grid, dtype=np.uint8).tolist()  # uint8 -> plain Python ints, which orjson and Kaggle expect


def _fallback_entries(task: Task) -> list[dict[str, Grid]]:
    return [{a: _as_list(p.input) for a in ATTEMPTS} for p in task.test]


def fallback_submission(tasks: list[Task]) -> Submission:
    """A valid submission where every attempt is the test input itself (scores ~0, but Kaggle accepts it)."""
    return {t.id: _fallback_entries(t) for t in tasks}


def _task_entries(task: Task, book: VoteBook, k: int) -> list[dict[str, Grid]]:
    entries = []
    for i, pair in enumerate(task.test):
        grids = [c.grid for c in book.ranked(task.id, i)[:k]]
        while len(grids) < len(ATTEMPTS):
            grids.append(pair.input)
        entry = {}
        for name, g in zip(ATTEMPTS, grids):
            g = np.asarray(g)
            # A candidate that is not a valid ARC grid would get the whole file rejected: check it here, where the
            # per-task guard below can fall back, rather than in write_submission where it would sink everything.
            if g.ndim != 2 or not (1 <= g.shape[0] <= 30 and 1 <= g.shape[1] <= 30) or g.min() < 0 \
                    or g.max() > 9:
                raise ValueError(f"test[{i}].{name}: candidate of shape {g.shape} is not a valid ARC grid")
            entry[name] = _as_list(g)
        entries.append(entry)
    return entries


def build_submission(tasks: list[Task], book: VoteBook, k: int = 2) -> Submission:
    """Kaggle submission from a VoteBook: the top-`k` candidates (k = 1 or 2) fill the attempts, in rank order.

    Slots without a candidate get the test input (see the module docstring). Never raises for a single task's
    fault: that task gets its fallback entries and a warning is logged.
    """
    if k not in (1, 2):
        raise ValueError(f"k must be 1 or 2 (Kaggle takes two attempts), got {k}")
    sub: Submission = {}
    n_failed = 0
    for task in tasks:
        try:
            sub[task.id] = _task_entries(task, book, k)
        except Exception as e:  # noqa: BLE001 - one broken task must not cost the whole submission
            n_failed += 1
            log.warning("task %s: building its entries failed (%s: %s); using the test inputs as attempts",
                        task.id, type(e).__name__, e)
            sub[task.id] = _fallback_entries(task)
    if n_failed:
        log.warning("%d of %d tasks fell back to their test inputs after errors", n_failed, len(tasks))
    try:
        strangers = set(book.task_ids()) - set(sub)
    except Exception:  # noqa: BLE001 - a diagnostic must not cost the submission either
        strangers = set()
    if strangers:
        # Votes for tasks outside the challenges usually mean predictions from another task source.
        log.warning("the votes name %d task ids that are not among the %d tasks (e.g. %s); they are ignored",
                    len(strangers), len(tasks), sorted(strangers)[0])
    return sub


# ---------------------------------------------------------------------------------------------------------------
# Validation


def validate_submission(sub: Any, tasks: list[Task], file: str | None = None) -> list[str]:
    """Every reason Kaggle would reject `sub` for these tasks, one line each (empty list = valid)."""
    problems: list[str] = []

    def add(msg: str, task: str | None = None, field: str | None = None) -> None:
        problems.append(str(InputError(msg, file=file, task=task, field=field)))

    if not isinstance(sub, dict):
        add(f"expected an object keyed by task id, got {type(sub).__name__}")
        return problems
    expected = {t.id: t for t in tasks}
    for tid in sub:
        if tid not in expected:
            add("extra task, not in the challenges", task=str(tid))
    for tid, task in expected.items():
        if tid not in sub:
            add("missing task", task=tid)
            continue
        entries = sub[tid]
        if not isinstance(entries, list):
            add(f"expected a list of {len(task.test)} attempt objects, got {type(entries).__name__}", task=tid)
            continue
        if len(entries) != len(task.test):
            add(f"{len(entries)} entries for {len(task.test)} test inputs (one per test input, in order)", task=tid)
        for i, entry in enumerate(entries):
            where = f"[{i}]"
            if not isinstance(entry, dict):
                add(f"expected an object with attempt_1 and attempt_2, got {type(entry).__name__}", tid, where)
                continue
            for name in ATTEMPTS:
                if name not in entry:
                    add(f"missing '{name}'", tid, where)
                    continue
                try:
                    parse_grid(entry[name], file=file or "", task=tid, field=f"{where}.{name}")
                except InputError as e:
                    problems.append(str(e))
            for key in entry:
                if key not in ATTEMPTS:
                    add(f"unexpected key {key!r} (only attempt_1 and attempt_2 are allowed)", tid, where)
    return problems


def check_submission(sub: Any, tasks: list[Task], file: str | None = None) -> None:
    """Raise InputError (one line: the first problem, plus how many more) unless `sub` is valid."""
    problems = validate_submission(sub, tasks, file=file)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InputError(problems[0] + more)


def write_submission(path: str | Path, sub: Submission, tasks: list[Task]) -> None:
    """Validate, then write atomically; an invalid submission raises InputError and nothing is written."""
    check_submission(sub, tasks, file=str(path))
    write_json(path, sub)


def validate_file(submission_path: str | Path, tasks_spec: str | Path) -> str:
    """`arcsolver validate`: check a submission file against a task source; returns a one-line OK summary.

    Raises InputError (naming file, task and field) on the first problem.
    """
    tasks = load_tasks(tasks_spec)
    sub = read_json(submission_path)
    check_submission(sub, tasks, file=str(submission_path))
    n_tests = sum(len(t.test) for t in tasks)
    return f"OK: {submission_path}: {len(tasks)} tasks, {n_tests} test inputs, {2 * n_tests} attempts"


def publish_answers(path: str | Path, sub: Submission, answered) -> int:
    """Copy the entries `answered` ((task id, test index) pairs: what the model voted) of the complete submission
    `sub` into the complete submission at `path`, which may hold more tasks (the Kaggle working file), atomically:
    the file there stays valid and complete at every moment and gains every answer as soon as it is flushed.
    Returns the number of entries copied."""
    target = read_json(path)
    if not isinstance(target, dict):
        raise InputError("expected a submission (a JSON object of task ids)", file=str(path))
    n = 0
    for task, i in answered:
        entries = target.get(task)
        if isinstance(entries, list) and i < len(entries) and task in sub:
            entries[i] = sub[task][i]
            n += 1
    write_json(path, target)
    return n
