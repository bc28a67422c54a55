"""`arcsolver kaggle rehearse`: run a packaged notebook here, the way Kaggle will, before spending a submission.

Competitors get one submission a day; a notebook that only writes its fallback costs one. The rehearsal:

* builds a fake /kaggle tree (`$ARCSOLVER_KAGGLE_ROOT`): the competition's files under
  `input/competitions/<slug>/` (from `--competition-data DIR`, or the single `--test-file` standing in for
  `arc-agi_test_challenges.json`, e.g. an evaluation set), the package's dataset under `input/datasets/<owner>/<slug>/`,
  an empty `working/`;
* runs the notebook's code cells, in order, in one fresh Python process whose environment is a new virtual
  environment that sees the current interpreter's packages *except arcsolver*: the notebook's own offline
  `pip install` (forced offline: `PIP_NO_INDEX`, links only to the dataset) is what puts arcsolver there, as on Kaggle;
* scales the clock: the notebook's deadline becomes `--time-limit` minus the package's margin scaled by the same
  factor (12 h -> time limit); a commit run (smoke mode) unless `--mode full` (then it is the scoring rerun);
* reports: is the file valid and complete, how many tasks and test outputs the model answered (not the fallback),
  the score when `--solutions` are given, the time per phase, and the solver's plan.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from arcsolver.kaggle.settings import REHEARSE
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json
from arcsolver.runtime.outputs import claim_folder
from arcsolver.runtime.deadline import Plan
from arcsolver.inference.submission import validate_submission
from arcsolver.inference.score import load_solutions_any, score_submission
from arcsolver.training.plan_log import format_table
from arcsolver.kaggle.runner import DEFAULT_MARGIN_S
from arcsolver.kaggle.metadata import KERNEL_METADATA
from arcsolver.kaggle.package import PACKAGE_MARKER
from arcsolver.kaggle.tasks import read_challenges

CODE_FILE_KEY = "code_file"
CHALLENGES_NAME = "arc-agi_test_challenges.json"
LIMIT_S = 12 * 3600


def _package_parts(folder: Path) -> tuple[dict, Path, Path]:
    marker = folder / PACKAGE_MARKER
    if not marker.is_file():
        raise InputError(f"not a package folder from `arcsolver kaggle package` (no {PACKAGE_MARKER})",
                         file=str(folder))
    info = read_json(marker)
    kmeta = read_json(folder / "kernel" / KERNEL_METADATA)
    notebook = folder / "kernel" / str(kmeta.get(CODE_FILE_KEY, ""))
    if not notebook.is_file():
        raise InputError("the package's notebook is missing", file=str(notebook))
    return info, folder / "dataset", notebook


def notebook_script(notebook: Path, overrides: dict) -> str:
    """The notebook's code cells as one script, with `overrides` applied to its baked-in config right after the
    config cell (the clock scaled to the rehearsal)."""
    nb = read_json(notebook)
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    parts = []
    for c in cells:
        src = c.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        parts.append(src)
        if "ARCSOLVER_CONFIG: dict =" in src:
            parts.append(f"ARCSOLVER_CONFIG.update({overrides!r})  # kaggle rehearse: the clock, scaled")
    return "\n\n".join(parts) + "\n"


def fake_tree(root: Path, competition: str, dataset_ref: str, dataset: Path, competition_data: Path | None,
              test_file: Path | None) -> Path:
    """`root/input/competitions/<slug>/` and `root/input/datasets/<owner>/<slug>/` as Kaggle mounts them."""
    comp = root / "input" / "competitions" / competition
    comp.mkdir(parents=True)
    if competition_data is not None:
        for f in sorted(competition_data.iterdir()):
            if f.is_file() and not f.name.endswith("_solutions.json"):  # Kaggle's test rerun has no solutions
                shutil.copy2(f, comp / f.name)
    if test_file is not None:
        shutil.copy2(test_file, comp / CHALLENGES_NAME)
    if not (comp / CHALLENGES_NAME).is_file():
        raise InputError(f"no {CHALLENGES_NAME} in the competition data (pass --test-file)",
                         file=str(competition_data))
    owner, slug = dataset_ref.split("/", 1)
    shutil.copytree(dataset, root / "input" / "datasets" / owner / slug)
    (root / "working").mkdir()
    return comp / CHALLENGES_NAME


def rehearsal_env(base: Path, exclude: tuple[str, ...] = ()) -> Path:
    """A virtual environment that sees this interpreter's packages but not arcsolver (its Python). `exclude`
    names more top-level packages to leave out: an image that lacks a dependency."""
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    shadow = base / "image-packages"  # the "Kaggle image": every installed package but ours
    shadow.mkdir()
    for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for entry in sorted(Path(site).iterdir()):
            low = entry.name.lower()
            if low.startswith(("arcsolver", "__editable__")) or entry.name.endswith(".pth") or \
                    (shadow / entry.name).exists() or low.split(".")[0].split("-")[0] in exclude:
                continue
            (shadow / entry.name).symlink_to(entry)
    site_dir = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True).stdout.strip())
    site_dir.mkdir(parents=True, exist_ok=True)
    (site_dir / "zz-kaggle-image.pth").write_text(str(shadow) + "\n")
    return python


def rehearse(folder: str | os.PathLike, *, competition_data: str | os.PathLike | None = None,
             test_file: str | os.PathLike | None = None, solutions: str | os.PathLike | None = None,
             time_limit_s: float = REHEARSE.time_limit_s, mode: str = REHEARSE.mode,
             keep: str | os.PathLike | None = REHEARSE.keep, image_exclude: tuple[str, ...] = (),
             processes: int = REHEARSE.processes) -> dict:
    """Run the package's notebook on a fake Kaggle tree; returns the report (see the module docstring).
    `image_exclude`: top-level packages the simulated Kaggle image lacks (fault drills). `processes` > 1 runs the
    solver through `accelerate launch` with that many CPU processes (gloo), as the notebook does on several GPUs."""
    folder = Path(folder)
    info, dataset, notebook = _package_parts(folder)
    if mode not in ("smoke", "full"):
        raise InputError(f"expected smoke or full, got {mode!r}", field="--mode")
    if not time_limit_s > 0:
        raise InputError(f"must be > 0, got {time_limit_s}", field="--time-limit")
    if not isinstance(processes, int) or isinstance(processes, bool) or not 1 <= processes <= 64:
        raise InputError(f"must be an integer in 1..64, got {processes!r}", field="--processes")
    competition = info.get("competition") or "arc-prize-2025"
    if competition_data is None and test_file is None:
        # default: the competition's files unpacked in ./<slug>/ (`kaggle competitions download -c <slug>`, unzip)
        if (Path(competition) / CHALLENGES_NAME).is_file():
            competition_data = Path(competition)
        else:
            raise InputError(f"no ./{competition}/{CHALLENGES_NAME}: give the competition's files (--competition-data "
                             f"DIR, as downloaded with `kaggle competitions download -c {competition}`) or a "
                             f"--test-file", field="--competition-data")
    cdata = Path(competition_data) if competition_data is not None else None
    if cdata is not None and not cdata.is_dir():
        raise InputError("not a folder", file=str(cdata), field="--competition-data")
    tfile = Path(test_file) if test_file is not None else None
    if tfile is not None and not tfile.is_file():
        raise InputError("no such file", file=str(tfile), field="--test-file")
    sols = None
    if solutions is not None:
        sols = load_solutions_any(solutions)

    if keep is not None:
        claim_folder(keep, "rehearsal", inputs=[folder, cdata, tfile, solutions], field="--keep")
    base = Path(keep).resolve() if keep is not None else Path(tempfile.mkdtemp(prefix="arcsolver-rehearse-"))
    try:
        root = base / "kaggle"
        challenges = fake_tree(root, competition, info["dataset"], dataset, cdata, tfile)
        ch = read_challenges(challenges)  # the same task-by-task reading the notebook does
        margin_s = _baked_margin(notebook)  # the package's margin, scaled with the clock
        scale = time_limit_s / LIMIT_S
        overrides = {"deadline_s": round(time_limit_s - margin_s * scale, 3), "margin_s": round(margin_s * scale, 3)}
        script = base / "notebook.py"
        script.write_text(notebook_script(notebook, overrides))
        python = rehearsal_env(base, tuple(image_exclude))
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "KAGGLE_IS_COMPETITION_RERUN", "ARCSOLVER_KAGGLE_MODE",
                            "ARCSOLVER_KAGGLE_SKIP_INSTALL", "VIRTUAL_ENV")}
        env.update(ARCSOLVER_KAGGLE_ROOT=str(root), PIP_NO_INDEX="1", PIP_FIND_LINKS=str(dataset),
                   PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONUNBUFFERED="1")
        if mode == "full":
            env["KAGGLE_IS_COMPETITION_RERUN"] = "1"
        if processes > 1:
            # CPU processes stand in for the GPUs: no GPU visible, one thread each (they share the cores)
            env.update(ARCSOLVER_KAGGLE_PROCESSES=str(processes), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
        else:
            env.pop("ARCSOLVER_KAGGLE_PROCESSES", None)
        t0 = time.time()
        log_path = base / "notebook.log"
        with open(log_path, "w") as log:
            # the notebook stops itself at its deadline; the hard stop here is only for a broken one
            proc = subprocess.run([str(python), str(script)], cwd=str(root / "working"), env=env, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=time_limit_s + 300)
        wall = time.time() - t0
        sub_path = root / "working" / "submission.json"
        summary_path = root / "working" / "arcsolver-run-summary.json"
        report: dict = {"exit_code": proc.returncode, "wall_s": round(wall, 1),
                        "tasks": len(ch.shapes), "test_outputs": ch.n_tests, "malformed_tasks": len(ch.problems),
                        "mode": mode, "time_limit_s": time_limit_s, "deadline_s": overrides["deadline_s"],
                        "processes": processes}
        if not sub_path.is_file():
            report.update(valid=False, complete=False, problems=["no submission.json written"])
        else:
            try:
                sub = json.loads(sub_path.read_text())
                problems = validate_submission(sub, ch.shapes, file=str(sub_path))
            except ValueError as e:
                sub, problems = None, [f"{sub_path}: not JSON ({e})"]
            report.update(valid=not problems, problems=problems[:5],
                          complete=isinstance(sub, dict) and set(sub) == {t.id for t in ch.shapes})
            if sols is not None and isinstance(sub, dict) and not problems:
                report["score"] = score_submission(sub, sols)
        # what to show when it went wrong: the notebook's warnings and errors, then the solver's last lines
        log_lines = [ln for ln in log_path.read_text(errors="replace").splitlines()
                     if " WARNING " in ln or " ERROR " in ln or "Error" in ln]
        solve_log = root / "working" / "arcsolver-solve.log"
        if solve_log.is_file():
            lines = solve_log.read_text(errors="replace").replace("\r", "\n").splitlines()
            log_lines += ["--- solver log (last lines):"] + [ln for ln in lines if ln.strip()][-12:]
        report["log_tail"] = log_lines[-30:]
        summary = read_json(summary_path) if summary_path.is_file() else {}
        report["run_summary"] = summary
        report["kept"] = str(base) if keep is not None else None
        report["answered_tasks"] = summary.get("answered_tasks", 0)
        report["answered_tests"] = summary.get("answered_tests", 0)
        return report
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def _baked_margin(notebook: Path) -> float:
    """The margin (seconds before Kaggle's 12 h) baked into the notebook's config cell."""
    nb = read_json(notebook)
    for c in nb.get("cells", []):
        src = c.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        for node in ast.parse(src).body if "ARCSOLVER_CONFIG: dict =" in src else []:
            if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "ARCSOLVER_CONFIG":
                try:
                    cfg = ast.literal_eval(node.value)
                except ValueError:
                    cfg = {}
                margin = cfg.get("margin_s")
                return float(DEFAULT_MARGIN_S if margin is None else margin)  # a package built with margin 0 keeps 0
    return float(DEFAULT_MARGIN_S)


def format_report(r: dict) -> str:
    s = r.get("run_summary") or {}
    phases = dict(s.get("phases") or {})
    solver = s.get("solver") or {}
    if "train_seconds" in solver:
        phases["solve: fine-tune"] = round(float(solver["train_seconds"]), 1)
    if "predict_seconds" in solver:
        phases["solve: predict"] = round(float(solver["predict_seconds"]), 1)
    lines = [
        f"rehearsal ({r['mode']} mode, {r.get('processes', 1)} solver process(es), time limit "
        f"{r['time_limit_s']:.0f} s, notebook deadline "
        f"{r['deadline_s']:.0f} s): notebook exit code {r['exit_code']}, {r['wall_s']:.0f} s",
        f"  submission: {'VALID' if r.get('valid') else 'INVALID'}, "
        f"{'complete' if r.get('complete') else 'INCOMPLETE'} ({r['tasks']} tasks, {r['test_outputs']} test outputs"
        f", {r['malformed_tasks']} malformed)",
    ]
    lines += [f"    {p}" for p in r.get("problems") or []]
    if r.get("kept"):
        lines.append(f"  kept: {r['kept']} (fake tree, notebook.py, notebook.log)")
    lines.append(f"  answered by the model: {r['answered_tasks']} tasks, {r['answered_tests']} of "
                 f"{r['test_outputs']} test outputs (outcome: {s.get('outcome', '?')}"
                 + (f"; {s['reason']}" if s.get("reason") else "") + ")")
    if "score" in r:
        sc = r["score"]
        lines.append(f"  score: pass@2 {sc['per_task']['pass@2']:.4f} per task, {sc['per_output']['pass@2']:.4f} per "
                     f"output; pass@1 {sc['per_task']['pass@1']:.4f} per task")
    if phases:
        lines.append("  time per phase: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    if s.get("plan"):
        lines.append("  runner plan (s from the solve's start): " + ", ".join(f"{k} {v}" for k, v in s["plan"].items()))
    plan = solver.get("plan")
    if plan:
        lines.append("  solver plan: " + _describe_plan(plan))
        lines.append(f"  steps: {solver.get('embed_steps', '?')} embeddings-only + {solver.get('full_steps', '?')} "
                     f"full")
    if solver.get("plan_vs_actual"):
        lines.append("  the solver's plan vs what happened:")
        lines += [f"    {ln}" for ln in format_table(solver["plan_vs_actual"])]
    left = s.get("left_to_fallback") or {}
    if left:
        lines.append(f"  left to the fallback: {len(left)} task(s), e.g. {next(iter(left.values()))}")
    if not r.get("valid") or s.get("outcome") != "solved" or r["exit_code"] != 0:
        lines.append("  notebook warnings/errors and the solver's last lines:")
        lines += [f"    | {ln}" for ln in r.get("log_tail") or []]
    return "\n".join(lines)


def _describe_plan(plan: dict) -> str:
    """One line from a saved plan (deadline.Plan.to_dict(), or a fixed-steps marker)."""
    if "what" in plan:
        try:
            return Plan(plan["what"], plan["deadline_in_s"], plan.get("phases", {}), plan.get("reserves", {}),
                        plan.get("choices", {})).describe()
        except (TypeError, KeyError, ValueError):
            pass
    return ", ".join(f"{k} {v}" for k, v in plan.items())
