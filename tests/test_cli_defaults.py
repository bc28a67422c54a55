"""Every CLI option's default is the default of the function parameter it feeds, and `--help` shows it.

The test walks every click command under `arcsolver.cli.main`, builds each command's parameters with nothing given
(the values the command body receives), and compares each with `inspect.signature` of the function the command
calls, parameter matched by name. Options that feed no parameter with a default are listed below, each with the
reason; a new option that is in neither place fails here, so a default cannot be written twice unnoticed.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import shlex

import click
import pytest

from arcsolver.cli import main
from arcsolver.data.generate import generate
from arcsolver.data import maze, sudoku
from arcsolver.data.prepare import prepare_arc, prepare_maze, prepare_sudoku
from arcsolver.inference.predict import predict
from arcsolver.inference.score import score_cmd
from arcsolver.inference.show import show_cmd
from arcsolver.inference.submission import validate_file
from arcsolver.kaggle.package import package
from arcsolver.kaggle.rehearse import rehearse
from arcsolver.kaggle.upload import upload
from arcsolver.runtime.defaults import default_of
from arcsolver.runtime.units import parse_duration
from arcsolver.training.config import FINETUNE, TrainConfig, build_config
from arcsolver.training.finetune import finetune
from arcsolver.training.import_ckpt import export_checkpoint, import_checkpoint
from arcsolver.training.run_report import report
from arcsolver.training.train import train

# The functions each command calls, searched in order for a parameter of the option's name.
TARGETS = {
    "prepare arc": [prepare_arc], "prepare sudoku": [sudoku.prepare, prepare_sudoku], "prepare maze": [maze.prepare, prepare_maze],
    "generate": [generate], "train": [train, build_config], "predict": [predict], "finetune": [finetune],
    "import-checkpoint": [import_checkpoint], "export-checkpoint": [export_checkpoint],
    "validate": [validate_file], "score": [score_cmd], "show": [show_cmd],
    "kaggle package": [package], "kaggle rehearse": [rehearse], "kaggle upload": [upload],
    "report": [report],
}

# Options whose parameter has another name or unit: (parameter, the CLI value as the function receives it).
RENAMED = {
    ("prepare arc", "eval_"): ("eval", lambda v: v),  # `eval` is a builtin
    ("kaggle package", "margin_minutes"): ("margin_s", lambda v: v * 60),
    ("kaggle rehearse", "time_limit"): ("time_limit_s", parse_duration),
    ("prepare sudoku", "size"): ("side", lambda v: v),  # prepare_sudoku passes it on as sudoku.prepare's side
    ("prepare maze", "size"): ("side", lambda v: v),
    ("prepare maze", "loops"): ("loop_frac", lambda v: v),
}

# train's options that name TrainConfig fields: None means "not given", so the preset (or TrainConfig) decides;
# showing TrainConfig's default in --help would be wrong whenever a preset sets the field.
FROM_PRESET = {"data", "out", "max_steps", "global_batch_size", "device_batch_size", "preset", "log_with"}

# Options that feed no function parameter with a default, and why.
NOT_A_PARAMETER = {
    ("train", "time_budget"): "parsed into the Deadline passed as `deadline` (anchored at process start)",
    ("train", "deadline_at"): "parsed into the Deadline passed as `deadline`",
    ("predict", "time_budget"): "parsed into the Deadline passed as `deadline`",
    ("predict", "deadline_at"): "parsed into the Deadline passed as `deadline`",
    ("predict", "out"): "a command-line default file name; the Python API asks for the path",
    ("finetune", "time_budget"): "parsed into the Deadline passed as `deadline`",
    ("finetune", "deadline_at"): "parsed into the Deadline passed as `deadline`",
    ("finetune", "out"): "a command-line default folder name; the Python API asks for the path",
    ("finetune", "log_with"): "None: not given; given, it is passed on as --set log_with=VALUE (a training field)",
    ("finetune", "per_task"): "chooses finetune_per_task over finetune; its default is FINETUNE.per_task (below)",
    ("finetune", "recipe"): "None: not given; a recipe's values fill the options the command line leaves unset",
    ("kaggle package", "recipe"): "None: not given; given, it is put in front of the notebook's finetune arguments",
    ("generate", "list_"): "a command-line mode: print the families instead of generating",
    ("kaggle package", "finetune_args"): "one shell-quoted string split into package()'s list (default: none)",
    ("kaggle package", "extra_wheels"): "a folder whose wheels the command lists for package() (default: none)",
    ("score", "as_json"): "a flag passed positionally to score_cmd, which has no defaults",
    ("show", "task_id"): "None: not given (show_cmd's parameters have no defaults; a PNG of one task when given)",
    ("show", "submission"): "None: not given (show_cmd's parameters have no defaults)",
}

# Defaults that live in a config object rather than a signature: (command, option) -> the one source.
OTHER_SOURCE = {("finetune", "per_task"): FINETUNE.per_task}


def _commands(group: click.Group, prefix: str = ""):
    for name, cmd in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, full + " ")
        else:
            yield full, cmd


COMMANDS = dict(_commands(main))


def _received(cmd: click.Command) -> dict:
    """What the command body receives with nothing given (required parameters left out)."""
    ctx = cmd.make_context(cmd.name, [], resilient_parsing=True)
    return ctx, ctx.params


def _signature_default(command: str, parameter: str):
    for fn in TARGETS[command]:
        p = inspect.signature(fn).parameters.get(parameter)
        if p is not None:
            return fn, p.default
    return None, None


def test_every_command_has_its_functions_listed():
    assert set(COMMANDS) == set(TARGETS), "a command was added or removed: list the functions it calls in TARGETS"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_default_is_the_function_default(command):
    cmd = COMMANDS[command]
    ctx, received = _received(cmd)
    problems = []
    for param in cmd.params:
        name = param.name
        if param.required or (command, name) in NOT_A_PARAMETER and (command, name) not in OTHER_SOURCE:
            continue
        value = received[name]
        if (command, name) in OTHER_SOURCE:
            if value != OTHER_SOURCE[(command, name)]:
                problems.append(f"--{name}: {value!r} != {OTHER_SOURCE[(command, name)]!r}")
            continue
        if command == "train" and name in FROM_PRESET:
            assert name in {f.name for f in dataclasses.fields(TrainConfig)} | {"preset"}, name
            if value is not None:
                problems.append(f"--{name}: {value!r}, expected None (the preset decides)")
            continue
        target, convert = RENAMED.get((command, name), (name, lambda v: v))
        fn, default = _signature_default(command, target)
        if fn is None:
            problems.append(f"{name}: no parameter {target} in {[f.__name__ for f in TARGETS[command]]} "
                            "(map it in RENAMED or list it in NOT_A_PARAMETER with the reason)")
        elif default is inspect.Parameter.empty:
            problems.append(f"{name}: {fn.__name__}({target}) has no default; the CLI's {value!r} is its only one")
        else:
            got = convert(value)
            got = tuple(got) if isinstance(got, list) else got
            want = tuple(default) if isinstance(default, list) else default
            if got != want or type(got) is not type(want) and not (isinstance(got, (int, float))
                                                                  and isinstance(want, (int, float))):
                problems.append(f"--{name}: CLI {got!r} != {fn.__name__}({target}={want!r})")
    assert not problems, f"arcsolver {command}: " + "; ".join(problems)


def test_the_exceptions_name_real_options():
    """A stale entry in the lists above would hide nothing, but it would mislead: each names a real option."""
    for command, name in list(NOT_A_PARAMETER) + list(RENAMED) + list(OTHER_SOURCE):
        assert name in {p.name for p in COMMANDS[command].params}, (command, name)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_the_default_the_command_uses(command):
    cmd = COMMANDS[command]
    ctx, received = _received(cmd)
    for param in cmd.params:
        if not isinstance(param, click.Option) or not param.show_default or param.is_bool_flag:
            continue
        _, text = param.get_help_record(ctx)
        shown = re.escape(f"[default: {received[param.name]}")
        assert re.search(shown + r"(\]|; )", " ".join(text.split())), (command, param.name, text)


def test_the_source_reader_refuses_what_it_cannot_evaluate(tmp_path, monkeypatch):
    # defaults_of reads source, not objects: a call as a default must fail loudly, naming the parameter.
    pkg = tmp_path / "defaults_probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("from pathlib import Path\nLIMIT = 30 * 60\n"
                                "def f(a, b=LIMIT, *, c=Path('x'), d=(1, -2), e='s'):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert default_of("defaults_probe_pkg.mod", "f", "b") == 1800
    assert default_of("defaults_probe_pkg.mod", "f", "d") == (1, -2)
    assert default_of("defaults_probe_pkg.mod", "f", "e") == "s"
    with pytest.raises(ValueError, match=r"defaults_probe_pkg.mod.f\(c\)"):
        default_of("defaults_probe_pkg.mod", "f", "c")
    with pytest.raises(ValueError, match="no parameter a with a default"):
        default_of("defaults_probe_pkg.mod", "f", "a")


def test_finetune_args_default_is_no_extra_arguments():
    # (listed in NOT_A_PARAMETER: the one string splits into package()'s empty default)
    _, received = _received(COMMANDS["kaggle package"])
    assert tuple(shlex.split(received["finetune_args"])) == tuple(inspect.signature(package).parameters[
        "finetune_args"].default)
