"""Tasks from the community's synthetic generators, whose files hold lists of examples rather than ARC tasks.

Two layouts, named by a prefix on the source (`prepare arc --train rearc:DIR`, `--train jsonl:FILE`):
  * `rearc:DIR`: re-arc's output (github.com/michaelhodel/re-arc): one JSON file per generator, `<key>.json`, holding
    a list of `{"input": grid, "output": grid}` examples (searched recursively; hidden files skipped). Google's
    ARC-GEN writes the same shape, one file per task.
  * `jsonl:FILE`: JSON Lines, one task per line, as BARC / ARC-Heavy and similar sets are distributed: each line an
    object with `"examples"` (a list of `[input, output]` pairs or `{"input", "output"}` objects) and an optional
    `"id"` / `"uid"`, or a bare list of examples. A line that is an ordinary ARC task (`train` / `test`) is taken as
    it is.

The split rule (stated, seeded, the same on every machine): a source's example list is shuffled with a stream seeded
by (`seed`, the task's key), then cut into consecutive groups of `demos` + 1 examples; in each group the first `demos`
are the demonstrations and the last is the test pair. A list of n examples gives n // (demos + 1) tasks, named
`<key>.<group>` (a `rearc:` file of 1,000 examples and `--demos 3`: 250 tasks); a shorter tail is left out. Every
grid is validated as any task's is (data/arc_tasks.py); a problem is one line naming the file, the line (JSON Lines)
and the field. `prepare` reads these sources through data/task_stream.py: a file or a line at a time, chunk by chunk,
so memory holds one chunk of tasks whatever the source's size (`load_example_lists` here returns them all).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson

from arcsolver.data.arc_tasks import Pair, Task, check_unique, parse_grid, parse_task
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json

PREFIXES = ("rearc:", "jsonl:")
DEFAULT_DEMOS = 3  # ARC tasks have 2-5 demonstrations, 3 the most common


def is_example_list_source(spec: str) -> bool:
    return str(spec).startswith(PREFIXES)


def check_demos(demos: int) -> None:
    if isinstance(demos, bool) or not isinstance(demos, int) or demos < 1:
        raise InputError(f"expected an integer >= 1, got {demos!r}", field="--demos")


def load_example_lists(spec: str, *, demos: int = DEFAULT_DEMOS, seed: int = 0) -> list[Task]:
    """Every task of a `rearc:DIR` or `jsonl:FILE` source, split by the module's rule (all in memory: `prepare`
    reads these sources chunk by chunk through data/task_stream.py instead)."""
    check_demos(demos)
    kind, _, where = str(spec).partition(":")
    path = Path(where)
    if not where or not path.exists():
        raise InputError(f"no such {'folder' if kind == 'rearc' else 'file'}", file=where or str(spec))
    sources = _rearc(path) if kind == "rearc" else _jsonl(path)
    tasks: list[Task] = []
    for key, file, field, content in sources:
        if isinstance(content, Task):
            tasks.append(content)
        else:
            tasks.extend(split(key, file, field, content, demos, seed))
    if not tasks:
        raise InputError(no_task_reason(demos), file=where)
    return check_unique(tasks)


def no_task_reason(demos: int) -> str:
    return f"no task: every example list is shorter than --demos {demos} + 1"


def rearc_files(folder: Path) -> list[Path]:
    """The example-list files of a `rearc:` folder, in order (searched recursively; hidden files skipped)."""
    if not folder.is_dir():
        raise InputError("rearc: expects a folder of <key>.json example lists", file=str(folder))
    files = sorted(p for p in folder.rglob("*.json") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError("no .json example lists found in this folder", file=str(folder))
    return files


def _rearc(folder: Path) -> Iterator[tuple[str, str, str | None, Any]]:
    for p in rearc_files(folder):
        yield p.stem, str(p), None, read_json(p)


def _jsonl(file: Path) -> Iterator[tuple[str, str, str | None, Any]]:
    if not file.is_file():
        raise InputError("jsonl: expects a JSON Lines file", file=str(file))
    with open(file, "rb") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield parse_jsonl_line(file, n, line)


def parse_jsonl_line(file: Path, n: int, line: bytes) -> tuple[str, str, str | None, Any]:
    """Line `n` of a JSON Lines source -> (key, file, field, a Task or a list of examples to `split`)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e})", file=str(file), field=f"line {n}") from None
    key = f"{file.stem}-{n}"
    if isinstance(obj, dict):
        key = str(obj.get("id", obj.get("uid", key)))
        if "train" in obj and "test" in obj:  # already a task: demonstrations and tests as given
            obj = parse_task(obj, task_id=key, file=f"{file}:{n}")
        elif "examples" in obj:
            obj = obj["examples"]
        else:
            raise InputError("expected 'examples' (or 'train' and 'test')", file=str(file), field=f"line {n}")
    return key, str(file), f"line {n}", obj


def split(key: str, file: str, where: str | None, examples: Any, demos: int, seed: int) -> list[Task]:
    """One example list -> its tasks by the module's rule."""
    prefix = f"{where}." if where else ""
    if not isinstance(examples, list):
        raise InputError(f"expected a list of examples, got {type(examples).__name__}", file=file,
                         field=where or None)
    pairs = [_pair(e, file=file, task=key, field=f"{prefix}examples[{i}]") for i, e in enumerate(examples)]
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    order = rng.permutation(len(pairs))
    group = demos + 1
    tasks = []
    for g in range(len(pairs) // group):
        chosen = [pairs[i] for i in order[g * group:(g + 1) * group]]
        tasks.append(Task(f"{key}.{g}", chosen[:demos], chosen[demos:], source=file))
    return tasks


def _pair(example: Any, *, file: str, task: str, field: str) -> Pair:
    if isinstance(example, dict):
        if "input" not in example or "output" not in example:
            raise InputError("expected 'input' and 'output'", file=file, task=task, field=field)
        inp, out = example["input"], example["output"]
    elif isinstance(example, list) and len(example) == 2:
        inp, out = example
    else:
        raise InputError("expected {'input', 'output'} or an [input, output] pair", file=file, task=task,
                         field=field)
    return Pair(parse_grid(inp, file=file, task=task, field=f"{field}.input"),
                parse_grid(out, file=file, task=task, field=f"{field}.output"))
