"""runtime/report.py: the one way a run reports progress (bar, lines, warnings), and no module going around it."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import arcsolver
from arcsolver.runtime import report

PACKAGE = Path(arcsolver.__file__).resolve().parent


def test_say_writes_one_line_to_stderr_and_nothing_to_stdout(capsys):
    report.say("step 3: eval exact 0.5000")
    out, err = capsys.readouterr()
    assert out == "" and err == "step 3: eval exact 0.5000\n"


def test_say_writes_above_an_open_bar_and_the_bar_is_not_cut(capsys):
    bar = report.progress_bar("train", total=4)
    bar.update(1)
    report.say("plan: 3 more steps")
    bar.update(1)
    bar.close()
    _, err = capsys.readouterr()
    lines = [line for chunk in err.split("\r") for line in chunk.splitlines() if line.strip()]
    assert "plan: 3 more steps" in lines  # a line of its own, not glued to a bar line
    assert any(line.startswith("train:") for line in lines)


def test_no_bar_when_disabled():
    assert report.progress_bar("predict", total=3, enabled=False) is None


def test_library_warnings_print_through_say_unless_the_application_configured_logging(capsys, monkeypatch):
    log = report.logger("arcsolver.inference.probe")
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as a plain CLI run: nobody configured logging
    log.warning("task %s fell back to its test inputs", "abcd0001")
    log.info("not shown: below warning")
    assert capsys.readouterr().err == "task abcd0001 fell back to its test inputs\n"
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    monkeypatch.setattr(root, "handlers", [handler])  # as the Kaggle notebook: its handler gets it, printed once
    log.warning("out of memory")
    assert capsys.readouterr().err == "" and [r.getMessage() for r in records] == ["out of memory"]


def _direct_output_calls(path: Path) -> list[str]:
    """print(...), warnings.warn(...), tqdm(...)/tqdm.write(...), sys.stderr.write(...), logging.getLogger(...)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else (
            f"{ast.unparse(f.value)}.{f.attr}" if isinstance(f, ast.Attribute) else "")
        if name in ("print", "tqdm", "tqdm.write", "warnings.warn", "sys.stderr.write", "sys.stdout.write",
                    "logging.getLogger"):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {name}")
    return found


def test_run_paths_report_only_through_runtime_report():
    # The command line prints its result with click.echo (stdout); the Kaggle notebook and its runner are their own
    # program (they log to the notebook's file) and print what a child process says; report.py is the one way.
    exempt = {PACKAGE / "runtime" / "report.py", PACKAGE / "cli.py"}
    offenders = [hit for p in sorted(PACKAGE.rglob("*.py")) if p not in exempt and "kaggle" not in p.parts
                 for hit in _direct_output_calls(p)]
    assert not offenders, "report through arcsolver.runtime.report (say / progress_bar / logger):\n" + \
        "\n".join(offenders)
