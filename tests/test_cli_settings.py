"""Every command-line option and argument is built from one declared setting (runtime/settings.py), and what the
command receives, what --help shows and what the checks enforce all come from that declaration.

The test walks every click command under `arcsolver.cli.main`; nothing here lists options by hand, so a parameter
written in cli.py without a declaration, or a default, bound or help that differs from its field, fails.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from arcsolver.cli import SettingArgument, SettingOption, main, option_name
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.settings import check_value, declared, setting
from arcsolver.data import maze, sudoku
from arcsolver.data.generate import generate
from arcsolver.data.prepare import prepare_arc
from arcsolver.data.settings import ARC_PREPARE, GENERATE, MAZE, SUDOKU
from arcsolver.inference.predict import predict
from arcsolver.inference.settings import PREDICT
from arcsolver.kaggle.package import package
from arcsolver.kaggle.rehearse import rehearse
from arcsolver.kaggle.settings import PACKAGE, REHEARSE, UPLOAD
from arcsolver.kaggle.upload import upload
from arcsolver.training.config import FINETUNE, IMPORT, REPORT, build_config
from arcsolver.training.finetune import finetune
from arcsolver.training.import_ckpt import import_checkpoint
from arcsolver.training.run_report import report


def _commands(group: click.Group, prefix: str = ""):
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


COMMANDS = dict(_commands(main))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_parameter_is_built_from_a_declared_setting(command):
    cmd = COMMANDS[command]
    ctx = cmd.make_context(cmd.name, [], resilient_parsing=True)
    for param in cmd.params:
        if param.name == "help":
            continue
        assert isinstance(param, (SettingOption, SettingArgument)), f"{command}: {param.name} is written by hand"
        d = param.declared
        assert param.name == d.name
        assert d.name in {f.name for f in dataclasses.fields(d.owner)}
        if isinstance(param, SettingOption):
            assert param.help == d.spec.help and param.help, (command, d.name)
            assert param.opts[0] == option_name(d)
            assert param.required == d.spec.required
            received = ctx.params[d.name]
            if param.default is not None and not param.required:  # None: a later source (preset, checkpoint) decides; --help says which
                want = d.default if not isinstance(d.default, tuple) else tuple(d.default)
                got = tuple(received) if isinstance(received, (list, tuple)) else received
                assert got == want, (command, d.name, got, want)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_each_declared_default_and_bound(command):
    cmd = COMMANDS[command]
    ctx = cmd.make_context(cmd.name, [], resilient_parsing=True)
    for param in cmd.params:
        if not isinstance(param, SettingOption):
            continue
        d = param.declared
        _, text = param.get_help_record(ctx)
        text = " ".join(text.split())
        if param.show_default is True and not param.is_bool_flag:
            assert f"[default: {d.default}" in text, (command, d.name, text)
        if d.kind in (int, float) and d.spec.low is not None and not d.spec.duration and d.spec.choices is None:
            assert re.search(rf"{re.escape(str(d.spec.low))}(<|\]|;| )", text.replace("x>=", "")), \
                (command, d.name, text)


# The functions that take the settings as keyword arguments use the declared defaults.
CALLEES = [(prepare_arc, ARC_PREPARE), (sudoku.prepare, SUDOKU), (maze.prepare, MAZE), (generate, GENERATE),
           (predict, PREDICT), (finetune, FINETUNE), (import_checkpoint, IMPORT), (report, REPORT),
           (package, PACKAGE), (rehearse, REHEARSE), (upload, UPLOAD)]


@pytest.mark.parametrize("fn, settings", CALLEES, ids=lambda x: getattr(x, "__qualname__", type(x).__name__))
def test_functions_default_to_the_declared_value(fn, settings):
    params = inspect.signature(fn).parameters
    shared = [n for n in declared(type(settings)) if n in params and params[n].default is not inspect.Parameter.empty]
    assert shared, "the function takes none of these settings"
    for name in shared:
        want = getattr(settings, name)
        assert params[name].default == want or tuple(params[name].default) == want, (fn.__qualname__, name)


def test_a_value_is_checked_against_its_declaration():
    @dataclasses.dataclass
    class Probe:
        count: int = setting(3, "A count.", low=1)
        rate: float = setting(0.5, "A share.", low=0, high=1.0)
        mode: str = setting("a", "A mode.", choices=("a", "b"))
        limit: int | None = setting(None, "Optional.", low=0)

    assert check_value(Probe, "count", 4) == 4
    assert check_value(Probe, "rate", 1) == 1.0 and isinstance(check_value(Probe, "rate", 1), float)
    assert check_value(Probe, "limit", None) is None
    for name, value, words in (("count", 0, "expected >= 1"), ("count", True, "expected an integer"),
                               ("rate", float("nan"), "finite"), ("rate", 1.5, "<= 1.0"),
                               ("mode", "c", "expected one of a, b"), ("nope", 1, "unknown field 'nope'")):
        with pytest.raises(InputError, match=words) as e:
            check_value(Probe, name, value, file="f.toml")
        assert e.value.file == "f.toml" and e.value.field == name


def test_a_bad_value_on_the_command_line_is_one_line_naming_the_option(tmp_path):
    r = CliRunner().invoke(main, ["predict", "--checkpoint", str(tmp_path), "--batch-size", "0"])
    assert r.exit_code == 2 and "--batch-size" in r.output and len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(main, ["prepare", "maze", "--generate", "2", "--loops", "nan", "--out",
                                  str(tmp_path / "m")])
    assert r.exit_code == 2 and "--loops" in r.output and "finite" in r.output
    assert not (tmp_path / "m").exists()


def test_the_command_line_imports_neither_torch_nor_numpy():
    # --help builds every option from the settings modules: they must stay light (torch takes seconds to import).
    code = "import sys, arcsolver.cli; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_a_further_check_names_where_the_value_came_from():
    with pytest.raises(InputError, match="unknown tracker 'bogus'") as e:
        build_config(None, ['log_with="bogus"'])
    assert e.value.file == "--set" and e.value.field == "log_with"
