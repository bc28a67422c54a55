"""The competition's challenges file read task by task, for the Kaggle run: one bad task costs only its own answer.

`load_tasks` refuses a whole file for one malformed task, which is right for a user's command but wrong inside the
notebook: Kaggle wants an entry for every task id anyway, and every other task can still be solved. Here:

* every task id of the file gets a *shape*: a `Task` with one test pair per item of its `test` list, whose input is
  the parsed grid, or `UNUSABLE` (the 1x1 grid [[0]]) where that input is not a valid ARC grid. A task whose `test`
  is not a list at all gets one entry. The shapes are what the fallback submission, the merge and the validation of
  the written file use, so the file always has the entries Kaggle expects and only valid grids;
* the valid tasks are the ones handed to the solver, minus those that cannot fit the checkpoint's canvas (a 30x30
  grid on a 10x10 model would make the whole fine-tune refuse); each one left out is reported with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arcsolver.data.arc_tasks import Pair, Task, parse_grid, parse_task
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json

UNUSABLE = np.zeros((1, 1), dtype=np.uint8)  # what a test input that is not a valid grid is answered with


@dataclass
class Challenges:
    path: Path
    shapes: list[Task]  # one per task id, file order: the parsed task, or its shape when malformed
    solvable: list[Task]  # the valid tasks
    problems: dict[str, str] = field(default_factory=dict)  # task id -> one line: why it was left to the fallback

    @property
    def n_tests(self) -> int:
        return sum(len(t.test) for t in self.shapes)


def _shape_of(task_id: str, obj: object, file: str) -> Task:
    tests = obj.get("test") if isinstance(obj, dict) else None
    if not isinstance(tests, list):
        return Task(task_id, [], [Pair(UNUSABLE, None)], source=file)
    pairs = []
    for i, item in enumerate(tests):
        try:
            grid = parse_grid(item.get("input") if isinstance(item, dict) else None, file=file, task=task_id,
                              field=f"test[{i}].input")
        except InputError:
            grid = UNUSABLE
        pairs.append(Pair(grid, None))
    return Task(task_id, [], pairs, source=file)


def read_challenges(path: str | Path) -> Challenges:
    """Every task of a Kaggle challenges file, task by task. Raises InputError only when the file itself is
    unreadable or not an object keyed by task id (then no valid submission can be built)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"expected an object keyed by task id, got {type(data).__name__}", file=str(path))
    shapes, solvable, problems = [], [], {}
    for tid, obj in data.items():
        try:
            task = parse_task(obj, task_id=tid, file=str(path))
        except InputError as e:
            problems[tid] = str(e)
            shapes.append(_shape_of(tid, obj, str(path)))
            continue
        shapes.append(task)
        solvable.append(task)
    return Challenges(path, shapes, solvable, problems)


def largest_side(task: Task) -> int:
    return max(max(g.shape) for p in task.train + task.test for g in (p.input, p.output) if g is not None)


def fit_canvas(ch: Challenges, canvas: int) -> list[Task]:
    """The solvable tasks whose grids fit a `canvas` x `canvas` model; the others move to `ch.problems`."""
    keep = []
    for t in ch.solvable:
        side = largest_side(t)
        if side > canvas:
            ch.problems[t.id] = (f"{ch.path}: task {t.id}: a {side}-cell side does not fit the checkpoint's "
                                 f"{canvas}x{canvas} canvas")
        else:
            keep.append(t)
    return keep


def checkpoint_canvas(checkpoint: Path) -> int:
    """The canvas side a checkpoint was trained on (config.json data.canvas; 30, the reference's, when absent)."""
    try:
        cfg = read_json(Path(checkpoint) / "config.json")
        return int((cfg.get("data") or {}).get("canvas") or 30)
    except (InputError, AttributeError, TypeError, ValueError):
        return 30
