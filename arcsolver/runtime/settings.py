"""Settings declared once: a dataclass field holds a setting's type (its annotation), default, bounds or choices and
one line of help.

Why: a value reaches the code from a preset, `--set key=value`, a recipe, a checkpoint's config.json or a command-line
option. Each of those paths reads the same declaration — `check_value` checks a value against it (one line naming
the file and field on failure), and cli.py builds every click option from it (name, type, bounds, default, help) —
so a default, a bound or a help text cannot differ between them. Functions that take a setting as a keyword
argument use the declared default (`NAME.field` of the class's default instance), never a literal of their own.

    @dataclass
    class PredictSettings:
        batch_size: int = setting(256, "Rows per prediction batch.", low=1)
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from arcsolver.runtime.checks import check_rule
from arcsolver.runtime.errors import InputError

_KEY = "arcsolver.setting"
# The help of every command's --overwrite (train's, which starts a run over, and predict's say more).
OVERWRITE_HELP = "Replace --out even when it is not an earlier output of this command (never an input)."


@dataclass(frozen=True)
class Spec:
    """How one setting may be given (see `setting`)."""

    help: str
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    choices: tuple | None = None
    option: str | None = None  # the command-line name(s): "--steps", "--vote/--no-vote"; default --field-name
    metavar: str | None = None
    required: bool = False
    argument: bool = False  # a positional command-line argument, not an option
    shown_default: str | None = None  # what --help says for a default that is decided later (None default)
    cli: bool = True  # False: a field set only through presets, --set and recipes
    check: Callable[[Any, str], Any] | None = None  # a further check of a valid value (value, field) -> value
    duration: bool = False  # seconds, given on the command line as a duration (90s, 15m, 2h)
    like: tuple[type, str] | None = None  # (class, field): take that setting's bounds, choices, check (and help)


def setting(default: Any = None, help: str = "", *, factory: Callable[[], Any] | None = None, **spec: Any):
    """A dataclass field declaring one setting: its default (or `factory` for a mutable one), help and `Spec`."""
    meta = {_KEY: Spec(help=help, **spec)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Declared:
    """One setting as declared: its class, field name, base type, whether None is allowed, default and spec."""

    owner: type
    name: str
    kind: type  # int, float, bool, str, Path or tuple (a repeatable option's values)
    optional: bool
    default: Any
    spec: Spec

    @property
    def rule(self) -> Any:
        """The rule `runtime.checks.check_rule` applies."""
        s = self.spec
        if s.choices is not None:
            return tuple(s.choices)
        if self.kind in (int, float):
            return (self.kind, s.low, not s.low_open, s.high)
        return self.kind


@functools.lru_cache(maxsize=None)
def declared(cls: type) -> dict[str, Declared]:
    """{field name: Declared} for every field of `cls` declared with `setting`, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if _KEY not in f.metadata:
            continue
        kind, optional = _base_type(hints[f.name], f"{cls.__name__}.{f.name}")
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        spec = f.metadata[_KEY]
        if spec.like is not None:
            base = declared(spec.like[0])[spec.like[1]].spec
            spec = dataclasses.replace(spec, low=base.low, low_open=base.low_open, high=base.high,
                                       choices=base.choices, check=base.check, help=spec.help or base.help,
                                       metavar=spec.metavar or base.metavar, like=None)
        out[f.name] = Declared(cls, f.name, kind, optional, default, spec)
    return out


def _base_type(hint: Any, where: str) -> tuple[type, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = tuple(a for a in args if a is not type(None))
        if len(rest) == 1:
            return _base_type(rest[0], where)[0], len(rest) < len(args)
        return object, type(None) in args  # a union of several types: only its `choices` say what is allowed
    if typing.get_origin(hint) is tuple:
        return tuple, False
    if hint in (int, float, bool, str, Path):
        return hint, False
    raise TypeError(f"{where}: a setting's type must be int, float, bool, str, Path, a tuple or one of those | None")


def check_value(cls: type, name: str, value: Any, *, file: str | None = None, field: str | None = None) -> Any:
    """`value` for the setting `name` of `cls`, checked against its declaration; raises InputError naming `file`
    and `field` (default: the setting's name). Returns the value (an int widened to float for a float setting)."""
    field = field or name
    known = declared(cls)
    if name not in known:
        raise InputError(f"unknown field '{name}' (fields: {', '.join(known)})", file=file, field=field)
    d = known[name]

    def fail(msg: str):
        raise InputError(msg, file=file, field=field)
    if value is None and d.optional:
        return None
    if d.kind is Path:
        if not isinstance(value, (str, Path)):
            fail(f"expected a path, got {value!r}")
        value = Path(value)
    elif d.kind is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            fail(f"expected a list of strings, got {value!r}")
        value = tuple(value)
    else:
        value = check_rule(d.rule, value, fail)
    if d.spec.check is not None:
        try:
            value = d.spec.check(value, field)
        except InputError as e:  # the further check knows the field, not where the value came from
            raise InputError(e.reason, file=file, field=e.field) from None
    return value


@dataclass
class DeadlineSettings:
    """`--time-budget` and `--deadline`, the same on every command that runs against the clock; the command line
    turns them into the process's one `Deadline` (runtime/deadline.py)."""

    time_budget: str | None = setting(None, "Stop cleanly before this long, e.g. 15m, 2h, 90s: --deadline "
                                      "now+DURATION, counted from the command's start ('none': no limit).",
                                      metavar="DURATION")
    deadline_at: str | None = setting(None, "Absolute deadline: epoch seconds (`date +%s`) or ISO time (UTC unless "
                                      "a zone is given); the earlier of this and --time-budget wins.",
                                      option="--deadline", metavar="TIME")
