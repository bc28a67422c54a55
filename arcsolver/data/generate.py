"""`arcsolver generate`: write procedurally generated ARC tasks (the families of `families.py`) as task JSON.

Determinism: task i of family F draws everything from `np.random.default_rng([seed, crc32(F), i])`, so the same
(seed, family, index) gives the same task whichever other families are asked for, and the same command writes
byte-identical files. Each task picks its rule parameters once, then 3 or 4 demonstration pairs and 1 test pair.

Every task is checked before it is kept: grids rectangular, colours 0..9, sides 1..max_size; >= 2 train pairs;
no pair whose output equals its input (unless the family declares identity legitimate); no two pairs with the same
input; the test output implied by the demonstrations (the family's identifiability rule, `families.why_not_implied`);
no task identical to an earlier one of this run. A test pair that is not implied is redrawn (up to TEST_TRIES times),
then the whole task; every redraw comes from the same stream (still deterministic). A family that cannot make a valid
task in many draws is a bug and stops the run.

Output: OUT/<family>-<seed>-<index>.json, the ordinary ARC format ({"train": [{input, output}...], "test": [...]}),
written into a temporary folder renamed into place at the end, so a failure leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arcsolver.runtime.checks import SEED_MAX
from arcsolver.runtime.errors import InputError
from arcsolver.data.families import FAMILIES, MIN_SIZE, Family, Pair, why_not_implied
from arcsolver.data.settings import GENERATE
from arcsolver.runtime.jsonio import atomic_dir, dumps
from arcsolver.runtime.outputs import claim_output, mark_folder
from arcsolver.runtime.report import say

MAX_SIDE = 30
PAIR_TRIES = 60  # draws per pair before the task's parameters are drawn again
TASK_TRIES = 40  # parameter draws per task before giving up (a family bug)
TEST_TRIES = 20  # test pairs drawn for one set of demonstrations before the task is drawn again


@dataclass
class GeneratedTask:
    id: str
    family: str
    params: dict
    train: list[Pair]
    test: list[Pair]

    def to_json(self) -> dict:
        def pair(p: Pair) -> dict:
            return {"input": p[0].tolist(), "output": p[1].tolist()}
        return {"train": [pair(p) for p in self.train], "test": [pair(p) for p in self.test]}


def grid_problem(g, max_size: int) -> str | None:
    """Why `g` is not a valid ARC grid within max_size, or None."""
    if not isinstance(g, np.ndarray) or g.ndim != 2:
        return "not a 2-d array"
    if not (1 <= g.shape[0] <= max_size and 1 <= g.shape[1] <= max_size):
        return f"shape {g.shape} outside 1..{max_size}"
    if g.size and (g.min() < 0 or g.max() > 9):
        return "colour outside 0..9"
    return None


def task_problem(task: GeneratedTask, max_size: int, identity_ok: bool) -> str | None:
    """Why `task` must not be written, or None (the checks every generated task passes)."""
    if len(task.train) < 2:
        return "fewer than 2 train pairs"
    if len(task.test) < 1:
        return "no test pair"
    seen = set()
    for i, (a, b) in enumerate(task.train + task.test):
        for g in (a, b):
            why = grid_problem(g, max_size)
            if why:
                return f"pair {i}: {why}"
        if not identity_ok and a.shape == b.shape and np.array_equal(a, b):
            return f"pair {i}: output equals input"
        key = (a.shape, a.tobytes())
        if key in seen:
            return f"pair {i}: repeated input"
        seen.add(key)
    return None


def _stream(seed: int, name: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), index])


def _draw_pair(fam: Family, rng: np.random.Generator, params: dict, max_size: int, used: set) -> Pair | None:
    for _ in range(PAIR_TRIES):
        p = fam.pair(rng, params, max_size)
        if p is None:
            continue
        a, b = np.asarray(p[0], dtype=np.uint8), np.asarray(p[1], dtype=np.uint8)
        if grid_problem(a, max_size) or grid_problem(b, max_size):
            continue
        if not fam.identity_ok and a.shape == b.shape and np.array_equal(a, b):
            continue
        key = (a.shape, a.tobytes())
        if key in used:
            continue
        used.add(key)
        return a, b
    return None


def _implied_test(fam: Family, rng: np.random.Generator, params: dict, max_size: int, used: set,
                  train: list[Pair], test: Pair | None) -> Pair | None:
    """`test`, or the first of up to TEST_TRIES - 1 redrawn test pairs, whose output the demonstrations imply."""
    for attempt in range(TEST_TRIES):
        if test is None:
            return None
        if not why_not_implied(fam, params, train, test):
            return test
        if attempt + 1 < TEST_TRIES:
            test = _draw_pair(fam, rng, params, max_size, used)
    return None


def generate_task(name: str, seed: int, index: int, max_size: int, taken: set | None = None) -> GeneratedTask:
    """Task `index` of family `name`; `taken` (task fingerprints of this run) is updated and avoided."""
    fam = FAMILIES[name]
    rng = _stream(seed, name, index)
    for _ in range(TASK_TRIES):
        params = fam.params(rng, max_size)
        n_train = int(rng.integers(3, 5))
        used: set = set()
        pairs = []
        for _ in range(n_train + 1):
            p = _draw_pair(fam, rng, params, max_size, used)
            if p is None:
                break
            pairs.append(p)
        else:
            train = pairs[:n_train]
            test = _implied_test(fam, rng, params, max_size, used, train, pairs[n_train])
            if test is None:
                continue
            task = GeneratedTask(f"{name}-{seed}-{index:04d}", name, params, train, [test])
            if task_problem(task, max_size, fam.identity_ok):
                continue
            fp = hashlib.blake2b(dumps(task.to_json()), digest_size=16).digest()
            if taken is not None:
                if fp in taken:
                    continue
                taken.add(fp)
            return task
    raise RuntimeError(f"family {name} made no valid task in {TASK_TRIES} draws (seed {seed}, index {index}, "
                       f"max size {max_size})")


def parse_families(spec: str) -> list[str]:
    """`all` or a comma-separated list of family names (order kept, repeats dropped)."""
    spec = (spec or "").strip()
    if spec == "all":
        return list(FAMILIES)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise InputError("no family named (use `all` or a comma-separated list; `--list` shows them)",
                         field="--families")
    bad = [n for n in names if n not in FAMILIES]
    if bad:
        raise InputError(f"unknown family {bad[0]!r} (known: {', '.join(FAMILIES)})", field="--families")
    return list(dict.fromkeys(names))


def check_arguments(families: str, tasks_per_family: int, max_size: int, seed: int, out: Path) -> list[str]:
    """Validate every argument before anything is drawn or written; returns the family names."""
    names = parse_families(families)
    if isinstance(tasks_per_family, bool) or not isinstance(tasks_per_family, int) or tasks_per_family < 1:
        raise InputError(f"must be an integer >= 1, got {tasks_per_family!r}", field="--tasks-per-family")
    if isinstance(max_size, bool) or not isinstance(max_size, int) or not MIN_SIZE <= max_size <= MAX_SIDE:
        raise InputError(f"must be an integer in {MIN_SIZE}..{MAX_SIDE}, got {max_size!r}", field="--max-size")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise InputError(f"must be an integer in 0..{SEED_MAX}, got {seed!r}", field="--seed")
    return names


def generate(families: str = GENERATE.families, tasks_per_family: int = GENERATE.tasks_per_family,
             max_size: int = GENERATE.max_size, seed: int = GENERATE.seed, out: Path | None = GENERATE.out,
             overwrite: bool = GENERATE.overwrite) -> dict:
    """Generate and write the tasks into the folder `out` (new, empty, or generated tasks written earlier; anything
    else only with `overwrite`); returns a summary (counts per family, seconds)."""
    t0 = time.time()
    if out is None:
        raise InputError("missing (the folder to write)", field="--out")
    names = check_arguments(families, tasks_per_family, max_size, seed, out)
    notice = claim_output(out, "generated-tasks", overwrite=overwrite).notice()
    if notice:
        say(notice)
    taken: set = set()
    counts = {}
    with atomic_dir(out) as tmp:
        mark_folder(tmp, "generated-tasks")
        for name in names:
            for i in range(tasks_per_family):
                task = generate_task(name, seed, i, max_size, taken)
                (tmp / f"{task.id}.json").write_bytes(dumps(task.to_json()))
            counts[name] = tasks_per_family
    return {"out": str(out), "tasks": sum(counts.values()), "families": counts, "seconds": time.time() - t0}
