"""What runs inside the Kaggle notebook: a valid fallback first, then the solver under a deadline, then a merge.

`run()` is the whole notebook body, importable and testable on CPU against a fake Kaggle tree:

1. Find `arc-agi_test_challenges.json` by searching `<root>/input` (root = `$ARCSOLVER_KAGGLE_ROOT`, default
   `/kaggle`); both the old `/kaggle/input/<slug>/` and the newer `/kaggle/input/competitions/<slug>/` mounts work
   because nothing is hard-coded.
2. Read the tasks one by one (`kaggle.tasks`): a malformed task is reported and keeps its fallback, the others are
   solved. Write a valid fallback `<root>/working/submission.json` (every attempt = the test input, [[0]] where a
   test input is not a valid grid) before anything that can fail: Kaggle rejects a missing file, so a scoring-run
   crash must never leave us without one.
3. Find the checkpoint in the attached dataset (the `arcsolver-kaggle.json` marker that `kaggle.package` writes, else
   any folder holding `model.safetensors`, else a zip holding one, extracted to scratch space).
4. Decide the mode: the scoring rerun (`KAGGLE_IS_COMPETITION_RERUN` set) runs in full; an interactive or
   "Save & Run All" commit run does a cheap smoke run (a few tasks, a few minutes) so commits do not burn GPU quota.
   `$ARCSOLVER_KAGGLE_MODE=full|smoke` or the `smoke` argument forces either.
5. Make the one `Deadline` (start + 12 h - margin) and from it the solver's moments (`solver_stops`, each a
   Deadline, logged and saved in the summary as the plan): the solver's deadline, passed down as `--deadline`,
   SIGTERM, SIGKILL after a grace period, the merge. Call `solve(tasks_path, checkpoint, out_dir, deadline, smoke)
   -> submission path` in a worker thread (in smoke mode the solver gets the smoke budget and is stopped at 2 x
   that + start-up, so a solver that ignores its deadline cannot burn a commit run's GPU quota). The default solve
   runs `arcsolver finetune --deadline ... --predict` as a subprocess (through `accelerate launch` on several GPUs);
   prediction flushes its submission as it goes and on SIGTERM, so a solver stopped at the deadline (or exiting
   non-zero) still hands over every answer it voted. Any exception, a missing file or checkpoint keeps the
   fallback; nothing here raises past `run()` except a missing or unreadable challenges file, for which no valid
   submission can exist.
6. Validate the solver's file entry by entry: each test input the *model* answered (a candidate in the solver's
   candidates file, not the solver's own fallback) with a valid entry replaces the fallback entry and is counted;
   then write `submission.json` atomically and validated, plus `arcsolver-run-summary.json` beside it (counts,
   tasks left to the fallback and why, time per phase, the solver's plan).

Testing/advanced hook: `$ARCSOLVER_KAGGLE_SOLVE=module:function` names a solve function to use instead of the CLI
(the function must be importable in the notebook's kernel); an explicit `solve=` argument wins over it.
"""

from __future__ import annotations

import fnmatch
import importlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

from safetensors import safe_open

from arcsolver.runtime.deadline import SYSTEM_CLOCK, Deadline
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json, write_json
from arcsolver.inference.submission import (check_submission, fallback_submission, validate_submission,
                                            write_submission)
from arcsolver.training.plan_log import PLAN_NAME, format_table
from arcsolver.kaggle.settings import PACKAGE, RUN_LIMIT_S
from arcsolver.kaggle.tasks import checkpoint_canvas, fit_canvas, read_challenges

log = logging.getLogger("arcsolver.kaggle")

DEFAULT_MARGIN_S = PACKAGE.margin_minutes * 60  # merge + write + Kaggle's own shutdown must fit in here
CHALLENGES_NAME = "arc-agi_test_challenges.json"
SUBMISSION_NAME = "submission.json"
SUMMARY_NAME = "arcsolver-run-summary.json"
MARKER_NAME = "arcsolver-kaggle.json"  # written by kaggle.package at the dataset root
WEIGHTS_NAME = "model.safetensors"
SMOKE_TASKS = 3
SMOKE_BUDGET_S = 300.0
SMOKE_STARTUP_S = 120.0  # a smoke solve is stopped at 2 x its budget + this, whatever the deadline
MAX_SEARCH_DEPTH = 10  # /kaggle/input/models/<o>/<m>/<fw>/<var>/<ver>/<dir>/... is ~8 deep

ENV_ROOT = "ARCSOLVER_KAGGLE_ROOT"
ENV_RERUN = "KAGGLE_IS_COMPETITION_RERUN"
ENV_MODE = "ARCSOLVER_KAGGLE_MODE"
ENV_SOLVE = "ARCSOLVER_KAGGLE_SOLVE"
ENV_PROCESSES = "ARCSOLVER_KAGGLE_PROCESSES"

SolveFn = Callable[[Path, Path, Path, Deadline, bool], Path]


# ---------------------------------------------------------------------------------------------------------------
# Finding things under /kaggle/input


def kaggle_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root if root is not None else os.environ.get(ENV_ROOT, "/kaggle"))


def find_files(base: Path, pattern: str, max_depth: int = MAX_SEARCH_DEPTH) -> list[Path]:
    """Files under `base` whose name matches `pattern`, sorted. Follows symlinks (Kaggle mounts inputs through
    them), guards against link cycles, and stops at `max_depth` so a huge dataset cannot stall the notebook."""
    found: list[Path] = []
    seen: set[str] = set()
    base_depth = len(Path(base).parts)
    for dirpath, dirnames, filenames in os.walk(base, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        if len(Path(dirpath).parts) - base_depth >= max_depth:
            dirnames[:] = []
        dirnames.sort()
        found.extend(Path(dirpath) / f for f in filenames if fnmatch.fnmatch(f, pattern))
    return sorted(found)


def _prefer(paths: list[Path], hint: str | None) -> list[Path]:
    """Paths whose parts contain `hint` (a competition or dataset slug) first; otherwise the original order."""
    if not hint:
        return paths
    slug = hint.split("/")[-1]
    return sorted(paths, key=lambda p: slug not in p.parts)


def find_challenges(root: Path, competition: str | None = None) -> Path:
    found = _prefer(find_files(root / "input", CHALLENGES_NAME), competition)
    if not found:
        raise InputError(f"no {CHALLENGES_NAME} under {root / 'input'}: attach the competition to the notebook "
                         f"(competition_sources in kernel-metadata.json)")
    if len(found) > 1:
        log.warning("%d challenge files found, using %s (others: %s)", len(found), found[0],
                    ", ".join(map(str, found[1:])))
    return found[0]


def find_checkpoint(root: Path, dataset: str | None = None, scratch: Path | None = None) -> Path | None:
    """The checkpoint folder in the attached inputs, or None (logged) when there is none."""
    inputs = root / "input"
    for marker in _prefer(find_files(inputs, MARKER_NAME), dataset):
        try:
            rel = read_json(marker).get("checkpoint", "checkpoint")
        except Exception as e:  # noqa: BLE001 - a broken marker must not stop the search
            log.warning("unreadable marker %s (%s); ignoring it", marker, e)
            continue
        cand = marker.parent / rel
        if (cand / WEIGHTS_NAME).is_file():
            return cand
        log.warning("marker %s names %s but it holds no %s (zipped upload?); searching further",
                    marker, cand, WEIGHTS_NAME)
    weights = _prefer(find_files(inputs, WEIGHTS_NAME), dataset)
    if weights:
        # A folder with config.json beside the weights is a real arcsolver checkpoint, not some other model.
        weights.sort(key=lambda p: not (p.parent / "config.json").is_file())
        return weights[0].parent
    # `kaggle datasets create --dir-mode zip` uploads sub-folders as zips; Kaggle normally unpacks them, but if a
    # zip arrives as-is, unpack it into scratch space rather than give up on the model.
    for z in _prefer(find_files(inputs, "*.zip"), dataset):
        try:
            with zipfile.ZipFile(z) as zf:
                names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == WEIGHTS_NAME]
                if not names:
                    continue
                dest = (scratch or root / "temp") / "checkpoint-unzipped" / z.stem
                shutil.rmtree(dest, ignore_errors=True)
                zf.extractall(dest)
        except (OSError, zipfile.BadZipFile) as e:
            log.warning("could not read %s (%s)", z, e)
            continue
        return (dest / names[0]).parent
    return None


# ---------------------------------------------------------------------------------------------------------------
# Mode, accelerators


def is_rerun(env: Mapping[str, str] = os.environ) -> bool:
    """True during Kaggle's scoring rerun on the hidden tasks (the variable is absent on commits)."""
    return bool(env.get(ENV_RERUN, "").strip())


def decide_smoke(smoke: bool | None, env: Mapping[str, str] = os.environ) -> bool:
    if smoke is not None:
        return smoke
    forced = env.get(ENV_MODE, "").strip().lower()
    if forced in ("full", "smoke"):
        return forced == "smoke"
    if forced:
        log.warning("%s=%r is neither 'full' nor 'smoke'; ignoring it", ENV_MODE, forced)
    return not is_rerun(env)


def solver_processes() -> int:
    """How many processes the solver runs: one per GPU; `$ARCSOLVER_KAGGLE_PROCESSES` overrides it (`kaggle
    rehearse --processes N` sets it to run the multi-process path on CPU processes, gloo)."""
    forced = os.environ.get(ENV_PROCESSES, "").strip()
    if forced:
        try:
            return max(1, int(forced))
        except ValueError:
            log.warning("ignoring $%s=%r (not an integer)", ENV_PROCESSES, forced)
    return gpu_count()


def gpu_count() -> int:
    # torch is imported here, not at the top: a broken torch install must not stop the fallback submission.
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - no torch or a broken driver both mean "no GPU"
        return 0


def describe_accelerators() -> str:
    """One line naming the GPUs; logged at start because Kaggle can silently hand out another accelerator than
    the one asked for (docs/kaggle-format.md, 'Accelerator selection')."""
    try:
        import torch

        n = torch.cuda.device_count()
        if n == 0:
            return "no GPU (CPU only)"
        names = [torch.cuda.get_device_name(i) for i in range(n)]
        return f"{n} GPU(s): " + ", ".join(names)
    except Exception as e:  # noqa: BLE001
        return f"no GPU information ({type(e).__name__}: {e})"


# ---------------------------------------------------------------------------------------------------------------
# Solvers


def finetune_command(tasks_path: Path, checkpoint: Path, out_dir: Path, deadline: Deadline,
                     n_gpus: int, extra_args: tuple[str, ...] | list[str] = (),
                     publish: Path | None = None) -> list[str]:
    """`arcsolver finetune ... --deadline EPOCH --predict [extra_args]`, through `accelerate launch` when several
    GPUs are present. `deadline` is the solver's absolute deadline (passed as epoch seconds, rounded down): the one
    clock every layer below plans against. `extra_args` are the package's `finetune_args` (e.g. `--num-aug 300`).
    `publish`: the working submission.json, which every prediction flush updates with the answers so far (so a
    kernel killed before the merge still submits them).

    `python -m` rather than the `arcsolver` script: after an offline `pip install` the script directory may not be
    on PATH, while the kernel's own interpreter always is.
    """
    args = ["finetune", "--from", str(checkpoint), "--tasks", str(tasks_path),
            "--deadline", str(int(deadline.at)), "--predict", "--out", str(out_dir),
            *(["--publish", str(publish)] if publish is not None else []), *extra_args]
    if n_gpus > 1:
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n_gpus),
                "-m", "arcsolver.cli", *args]
    return [sys.executable, "-m", "arcsolver.cli", *args]


def _relay(stream: Any, log_file: Path) -> None:
    # Child output goes to the notebook cell (Kaggle keeps it in the log) and to a file that outlives the session.
    with open(log_file, "a", encoding="utf-8", errors="replace") as f:
        for line in stream:
            sys.stdout.write(line)
            sys.stdout.flush()
            f.write(line)
            f.flush()


def _kill_group(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    # The child runs in its own session, so the whole group (accelerate's workers included) goes.
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def cli_solve(tasks_path: Path, checkpoint: Path, out_dir: Path, deadline: Deadline, smoke: bool, *,
              sigterm_at: Deadline | None = None, log_file: Path | None = None,
              finetune_args: tuple[str, ...] | list[str] = (), grace_s: float = 30.0,
              publish: Path | None = None) -> Path:
    """The default solve: run `arcsolver finetune --deadline ... --predict` and return `out_dir/submission.json`.

    `deadline` is passed down; at `sigterm_at` (default: the deadline plus 10 % of the time left, at least 60 s)
    the process group gets SIGTERM, then SIGKILL after `grace_s`. Prediction flushes its
    submission as it goes and on SIGTERM, so a solver stopped at the timeout (or one that exits non-zero after
    writing) still yields the answers it has: the file is returned and `run()` merges its valid entries. Raises
    only when there is no file.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = finetune_command(tasks_path, checkpoint, out_dir, deadline, solver_processes(), finetune_args, publish)
    left = deadline.remaining()
    timeout = sigterm_at.remaining() if sigterm_at is not None else left + max(60.0, 0.1 * left)
    log_file = log_file or out_dir / "solve.log"
    log.info("solve (%s): %s", "smoke" if smoke else "full", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            start_new_session=True)
    relay = threading.Thread(target=_relay, args=(proc.stdout, log_file), daemon=True)
    relay.start()
    problem = None
    try:
        rc = proc.wait(timeout=max(1.0, timeout))
        if rc != 0:
            problem = RuntimeError(f"arcsolver finetune exited with code {rc} (output in {log_file})")
    except subprocess.TimeoutExpired:
        _kill_group(proc, grace_s)
        problem = TimeoutError(f"arcsolver finetune still running after {timeout:.0f} s; stopped (SIGTERM, "
                               f"SIGKILL after {grace_s:.0f} s)")
    finally:
        relay.join(timeout=10)
    sub = out_dir / SUBMISSION_NAME
    if problem is not None:
        if sub.is_file():
            log.warning("%s; using the answers it flushed to %s", problem, sub)
            return sub
        raise problem
    if not sub.is_file():
        raise FileNotFoundError(f"arcsolver finetune exited 0 but wrote no {sub}")
    return sub


def load_solve_hook(spec: str) -> SolveFn:
    """`module:function` -> the function (the testing/advanced hook behind $ARCSOLVER_KAGGLE_SOLVE)."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise InputError(f"expected module:function, got {spec!r}", field=ENV_SOLVE)
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise InputError(f"{module} has no function {name!r}", field=ENV_SOLVE)
    return fn


def _call_with_deadline(solve: SolveFn, args: tuple, wait_until: Deadline) -> Path:
    """Run `solve(*args)` in a daemon thread and stop waiting at `wait_until`: a Python solve cannot be killed, but
    the notebook must finish and keep its fallback rather than overrun Kaggle's hard limit."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["path"] = solve(*args)
        except BaseException as e:  # noqa: BLE001 - SystemExit from a click command included
            box["error"] = e

    worker = threading.Thread(target=target, name="arcsolver-solve", daemon=True)
    wait_s = max(0.0, wait_until.remaining())
    worker.start()
    worker.join(timeout=wait_s)
    if worker.is_alive():
        raise TimeoutError(f"solve still running at the deadline ({wait_s:.0f} s)")
    if "error" in box:
        raise box["error"]
    if box.get("path") is None:
        raise RuntimeError("solve returned no path")
    return Path(box["path"])


# ---------------------------------------------------------------------------------------------------------------
# Merge


def merge(tasks: list, base: dict, candidate: Any,
          model_answered: set[tuple[str, int]] | None = None) -> tuple[dict, int, int]:
    """`base` with each valid entry of `candidate` swapped in, per test input.

    With `model_answered`, only those (task id, test index) entries are taken and counted: entries where the solver
    itself fell back to the test input are not answers of the model. A task whose entry list has the wrong length
    is skipped whole (its order cannot be trusted). Returns the merged submission, the number of tasks answered
    completely, and the number of test inputs answered.
    """
    merged = {tid: list(entries) for tid, entries in base.items()}
    if not isinstance(candidate, dict):
        return merged, 0, 0
    n_tasks = n_tests = 0
    for task in tasks:
        entries = candidate.get(task.id)
        if not isinstance(entries, list) or len(entries) != len(task.test):
            continue
        answered = 0
        for i, entry in enumerate(entries):
            if model_answered is not None and (task.id, i) not in model_answered:
                continue
            trial = list(merged[task.id])
            trial[i] = entry
            if not validate_submission({task.id: trial}, [task]):
                merged[task.id] = trial
                answered += 1
        n_tests += answered
        n_tasks += answered == len(task.test)
    return merged, n_tasks, n_tests


def model_answers(produced: Path, candidate: Any, tasks: list) -> set[tuple[str, int]]:
    """The (task id, test index) entries of the solver's file that hold a model prediction: those with at least one
    candidate in the `*.candidates.json` beside it (what `predict` flushes with every submission it writes, so a
    solver killed mid-prediction still has its count), else, for solvers that write none, the
    entries that differ from the test input (the solvers' own fallback)."""
    cand_file = produced.with_name(produced.stem + ".candidates.json")
    if cand_file.is_file():
        try:
            cands = read_json(cand_file)
            return {(tid, int(e["test_index"])) for tid, entries in cands.items() for e in entries
                    if e.get("candidates")}
        except Exception as e:  # noqa: BLE001 - an unreadable side file must not cost the answers
            log.warning("unreadable %s (%s); counting the entries that differ from the test input", cand_file, e)
    out = set()
    if not isinstance(candidate, dict):
        return out
    for task in tasks:
        entries = candidate.get(task.id)
        if not isinstance(entries, list):
            continue
        for i, (entry, pair) in enumerate(zip(entries, task.test)):
            given = pair.input.tolist()
            if isinstance(entry, dict) and any(entry.get(a) != given for a in ("attempt_1", "attempt_2")):
                out.add((task.id, i))
    return out


def solver_report(out_dir: Path) -> dict:
    """What `arcsolver finetune` recorded about its run, for the run summary: its summary (plan, steps, seconds;
    written at its end) and its plan.json (planned vs actual per phase; written as it goes, so a solver stopped at
    the deadline still has one); {} if neither."""
    out: dict = {}
    for name in ("finetune.json", PLAN_NAME):
        f = out_dir / name
        try:
            data = read_json(f) if f.is_file() else None
        except Exception:  # noqa: BLE001 - an unreadable side file must not cost the run summary
            data = None
        if not isinstance(data, dict):
            continue
        if name == PLAN_NAME:
            out["plan_vs_actual"] = data
        else:
            keys = ("plan", "embed_steps", "full_steps", "train_seconds", "predict_seconds", "seconds")
            out.update({k: data[k] for k in keys if k in data})
    return out


def partial_output(out_dir: Path, error: BaseException) -> Path:
    """The submission a solver left on disk before it failed or was stopped at the deadline (predict flushes
    complete, valid files as it goes), or `error` re-raised when there is none."""
    sub = out_dir / SUBMISSION_NAME
    if not sub.is_file():
        raise error
    log.warning("solve ended early (%s: %s); merging the answers it had written", type(error).__name__, error)
    return sub


def checkpoint_problem(ck: Path) -> str | None:
    """One line naming what makes a checkpoint folder unusable (missing or unreadable config.json or weights,
    e.g. a truncated upload), or None. Checked before the solver starts, so the log says why, not a traceback."""
    try:
        if not isinstance(read_json(ck / "config.json"), dict):
            return f"{ck / 'config.json'}: expected a JSON object"
    except Exception as e:  # noqa: BLE001 - InputError or OS errors: one line either way
        return f"{ck / 'config.json'}: unreadable ({e})"
    for name in (WEIGHTS_NAME, "ema.safetensors"):
        f = ck / name
        if name == WEIGHTS_NAME and not f.is_file():
            return f"{f}: missing"
        if f.is_file():
            try:
                with safe_open(str(f), "pt") as h:
                    h.keys()
            except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
                return f"{f}: not a readable safetensors file ({type(e).__name__}: {e})"
    return None


def _tasks_to_solve(challenges, checkpoint: Path, smoke: bool, smoke_tasks: int, scratch: Path,
                    summary: dict) -> tuple[list, Path]:
    """The valid tasks that fit the checkpoint's canvas (first `smoke_tasks` in smoke mode) and the challenges file
    the solver reads (the original when it is all of them). The others keep their fallback and are reported."""
    solve_tasks = fit_canvas(challenges, checkpoint_canvas(checkpoint))
    summary["left_to_fallback"] = dict(challenges.problems)
    for why in challenges.problems.values():
        log.warning("left to the fallback: %s", why)
    if not solve_tasks:
        raise ValueError("no task is both valid and small enough for the checkpoint")
    if smoke:
        # A few tasks through the real pipeline prove the install, the GPU and the checkpoint work, cheaply.
        solve_tasks = solve_tasks[:max(1, smoke_tasks)]
    if len(solve_tasks) == len(challenges.shapes):
        return solve_tasks, challenges.path
    tasks_path = scratch / ("arc-agi_smoke_challenges.json" if smoke else "arc-agi_solve_challenges.json")
    write_json(tasks_path, {t.id: t.to_json() for t in solve_tasks})
    return solve_tasks, tasks_path


# ---------------------------------------------------------------------------------------------------------------
# The notebook body


def _scratch_dir(root: Path) -> Path:
    # /kaggle/temp is scratch space that is not saved with the notebook version (finetune may write checkpoints
    # there); if it cannot be created, fall back to a folder in working.
    for cand in (root / "temp" / "arcsolver", root / "working" / "arcsolver-scratch"):
        try:
            cand.mkdir(parents=True, exist_ok=True)
            return cand
        except OSError:
            continue
    raise OSError(f"no writable scratch folder under {root}")


SIGTERM_GRACE_S = 30.0  # from SIGTERM to SIGKILL: the solver finishes its batch and flushes its submission
KILL_WAIT_S = 10.0  # after SIGKILL, for the process group to be gone


def solver_stops(deadline: Deadline, smoke: bool = False,
                 smoke_budget_s: float = SMOKE_BUDGET_S) -> dict[str, Deadline]:
    """The moments of the solve, each a Deadline on `deadline`'s clock: the deadline passed down to the solver,
    when it gets SIGTERM if it is still running, when SIGKILL, and by when the merge must start. Grace and kill
    wait are at most 5% of the time left each, so short deadlines (tests, rehearsals) keep most of their time for
    the solver. A smoke (commit) run gets `smoke_budget_s` and is stopped at twice that plus start-up, so a solver
    that ignores its deadline cannot burn a commit run's GPU quota."""
    left = max(0.0, deadline.remaining())
    grace, kill_wait = min(SIGTERM_GRACE_S, 0.05 * left), min(KILL_WAIT_S, 0.05 * left)
    sigkill = deadline.earlier_by(kill_wait)
    sigterm = sigkill.earlier_by(grace)
    solver = sigterm.earlier_by(min(5.0, 0.02 * left))  # it should be done by itself; the signal is the backstop
    if smoke:
        solver = solver.within(smoke_budget_s)
        sigterm = sigterm.within(2 * smoke_budget_s + SMOKE_STARTUP_S)
        sigkill = sigkill.min(sigterm.at + grace)
    return {"solver": solver, "sigterm": sigterm, "sigkill": sigkill,
            "merge": Deadline(sigkill.at + kill_wait, deadline.clock)}


def run(root: str | os.PathLike | None = None, *, deadline_s: float | None = None,
        margin_s: float = DEFAULT_MARGIN_S, smoke: bool | None = None, solve: SolveFn | None = None,
        started_at: float | None = None, competition: str | None = None, dataset: str | None = None,
        smoke_tasks: int = SMOKE_TASKS, smoke_budget_s: float = SMOKE_BUDGET_S,
        finetune_args: tuple[str, ...] | list[str] = ()) -> Path:
    """The notebook body (see the module docstring). Returns the path of the written `submission.json`.

    `finetune_args`: extra arguments for the default solve's `arcsolver finetune` command line.

    `deadline_s`: seconds after `started_at` (default: now) by which the file must be final; default 12 h minus
    `margin_s`. `competition` / `dataset` only break ties when several inputs match.
    """
    clock = SYSTEM_CLOCK
    t_enter = clock.now()
    t0 = t_enter if started_at is None else started_at
    # The one deadline of the notebook; everything below gets it (or a moment derived from it) as a Deadline.
    deadline = Deadline.after(RUN_LIMIT_S - margin_s if deadline_s is None else deadline_s, start=t0, clock=clock)
    root = kaggle_root(root)
    working = root / "working"
    working.mkdir(parents=True, exist_ok=True)
    out_path = working / SUBMISSION_NAME
    summary: dict[str, Any] = {"outcome": "fallback", "reason": None}

    # 1-2: the fallback, before anything else can fail.
    challenges = find_challenges(root, competition)
    ch = read_challenges(challenges)  # task by task: a malformed task gets its fallback, the others are solved
    tasks = ch.shapes
    fallback = fallback_submission(tasks)
    write_submission(out_path, fallback, tasks)
    n_tests_all = ch.n_tests
    # phases: notebook start -> runner (the offline install), the fallback, then solve and merge below
    summary["phases"] = {"install_s": round(t_enter - t0, 1), "fallback_s": round(clock.now() - t_enter, 1)}
    summary.update(malformed_tasks=len(ch.problems), left_to_fallback=dict(ch.problems))
    log.info("fallback %s written: %d tasks, %d test inputs (from %s); %d malformed task(s)", out_path, len(tasks),
             n_tests_all, challenges, len(ch.problems))

    smoke = decide_smoke(smoke)
    summary.update(mode="smoke" if smoke else "full", rerun=is_rerun(), challenges=str(challenges),
                   tasks=len(tasks), test_inputs=n_tests_all, answered_tasks=0, answered_tests=0)
    log.info("mode: %s (%s); %s; deadline in %.0f s (margin %.0f s)", summary["mode"],
             "scoring rerun" if summary["rerun"] else "commit/interactive run", describe_accelerators(),
             deadline.remaining(), margin_s)

    merged = fallback
    try:
        scratch = _scratch_dir(root)
        checkpoint = find_checkpoint(root, dataset, scratch)
        summary["checkpoint"] = str(checkpoint) if checkpoint else None
        if checkpoint is None:
            raise FileNotFoundError(f"no checkpoint ({WEIGHTS_NAME}) under {root / 'input'}: is the arcsolver "
                                    f"dataset attached (dataset_sources)?")
        log.info("checkpoint: %s", checkpoint)
        problem = checkpoint_problem(checkpoint)
        if problem:
            raise ValueError(problem)

        solve_tasks, tasks_path = _tasks_to_solve(ch, checkpoint, smoke, smoke_tasks, scratch, summary)
        summary["solved_tasks_given"] = len(solve_tasks)
        out_dir = scratch / "solve"
        shutil.rmtree(out_dir, ignore_errors=True)  # a stale submission.json must never pass as this run's
        out_dir.mkdir(parents=True)

        remaining = deadline.remaining()
        if remaining <= 1:
            raise TimeoutError(f"no time left before the deadline ({remaining:.0f} s)")
        stops = solver_stops(deadline, smoke, smoke_budget_s)
        summary["plan"] = {k: round(v.remaining(), 1) for k, v in stops.items()}
        log.info("deadline plan (seconds from now): solver deadline %.0f (passed down as --deadline), SIGTERM at "
                 "%.0f, SIGKILL at %.0f, merge and write by %.0f (%.0f s before the %.0f h limit)",
                 *(stops[k].remaining() for k in ("solver", "sigterm", "sigkill", "merge")), margin_s,
                 RUN_LIMIT_S / 3600)
        # A Python solve cannot be signalled: stop waiting for it at the SIGTERM moment. The default CLI solve
        # signals its process itself and returns whatever the solver flushed: wait for that, until the merge.
        wait_until = stops["sigterm"]
        if solve is None:
            hook = os.environ.get(ENV_SOLVE, "").strip()
            if hook:
                solve = load_solve_hook(hook)
                log.info("solve hook from $%s: %s", ENV_SOLVE, hook)
            else:
                wait_until = stops["merge"]

                def solve(tp: Path, ck: Path, od: Path, dl: Deadline, sm: bool) -> Path:
                    return cli_solve(tp, ck, od, dl, sm, sigterm_at=stops["sigterm"],
                                     log_file=working / "arcsolver-solve.log", finetune_args=finetune_args,
                                     grace_s=stops["sigkill"].at - stops["sigterm"].at, publish=out_path)
        t_solve = clock.now()
        try:
            produced = _call_with_deadline(solve, (tasks_path, checkpoint, out_dir, stops["solver"], smoke),
                                           wait_until)
        except Exception as e:  # noqa: BLE001 - a solver stopped early may still have flushed answers
            produced = partial_output(out_dir, e)
            summary["solve_error"] = f"{type(e).__name__}: {e}"
        summary["solve_s"] = round(clock.now() - t_solve, 1)
        summary["phases"]["solve_s"] = summary["solve_s"]
        summary["solver"] = solver_report(out_dir)
        if summary["solver"].get("plan_vs_actual"):
            log.info("the solver's plan vs what happened:\n%s", "\n".join(format_table(
                summary["solver"]["plan_vs_actual"])))

        t_merge = clock.now()
        candidate = read_json(produced)
        try:
            check_submission(candidate, solve_tasks, file=str(produced))
        except Exception as e:  # noqa: BLE001 - partly valid files are merged entry by entry below
            log.warning("solver output is not fully valid (%s); merging its valid entries only", e)
        merged, n_tasks, n_tests = merge(tasks, fallback, candidate, model_answers(produced, candidate, solve_tasks))
        summary.update(answered_tasks=n_tasks, answered_tests=n_tests)
        summary["phases"]["merge_s"] = round(clock.now() - t_merge, 1)
        if n_tests == 0:
            raise ValueError(f"{produced} holds no model answer (every entry is a fallback or invalid)")
        summary["outcome"] = "solved"
    except Exception as e:  # noqa: BLE001 - whatever happened, the fallback (already on disk) stands
        merged = fallback
        summary["reason"] = f"{type(e).__name__}: {e}"
        log.error("solve failed, keeping the fallback submission: %s", summary["reason"])

    try:
        if merged is not fallback:
            write_submission(out_path, merged, tasks)
    except Exception as e:  # noqa: BLE001 - the fallback file on disk is still valid
        summary.update(outcome="fallback", reason=f"writing the merged file failed: {type(e).__name__}: {e}")
        log.error("%s; keeping the fallback submission", summary["reason"])
    summary["elapsed_s"] = round(clock.now() - t0, 1)
    summary["submission"] = str(out_path)
    try:
        write_json(working / SUMMARY_NAME, summary, indent=True)
    except Exception as e:  # noqa: BLE001
        log.warning("could not write %s: %s", SUMMARY_NAME, e)
    log.info("done: %s, mode %s, %d/%d tasks and %d/%d test inputs answered by the model, %.0f s used, "
             "%.0f s before the deadline -> %s", summary["outcome"], summary["mode"], summary["answered_tasks"],
             len(tasks), summary["answered_tests"], n_tests_all, summary["elapsed_s"], deadline.remaining(),
             out_path)
    return out_path
