"""Checks shared by every stage's input validation: one value against its rule, and an output location.

A rule is a type (`int`, `float`, `bool`, `str`), a tuple (type, lower bound, lower bound inclusive?, upper bound or
None) for numbers, or a tuple of allowed values (compared with their types: 1 is not true) for an enumeration.
Rules come from the settings' declarations (runtime/settings.py), whose callers raise `InputError` naming their field.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from arcsolver.runtime.errors import InputError

_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}

# Every integer setting ends up in a 64-bit tensor, a numpy array or a checkpoint's JSON/pickle: beyond this it would
# fail far from the option that caused it (at the first checkpoint save, after the work it was meant to keep).
INT64_MAX = 2**63 - 1
# Seeds feed numpy and torch generators (and `seed + rank`): the 32-bit range every one of them accepts.
SEED_MAX = 2**32 - 1


def check_rule(rule: Any, value: Any, fail) -> Any:
    """Check one value against its rule; return it (ints widened to float for float fields)."""
    if isinstance(rule, tuple) and rule and not isinstance(rule[0], type):  # an enumeration
        if not any(type(value) is type(v) and value == v for v in rule):  # 1 is not true, "1" is not 1
            fail(f"expected one of {', '.join(_word(v) for v in rule)}, got {value!r}")
        return value
    kind, lo, lo_incl, hi = rule if isinstance(rule, tuple) else (rule, None, True, None)
    if kind is bool or kind is str:
        if type(value) is not kind:
            fail(f"expected {_TYPE_WORDS[kind]}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and isinstance(value, float)):
        fail(f"expected {_TYPE_WORDS[kind]}, got {value!r}")
    if kind is int and not -INT64_MAX - 1 <= value <= INT64_MAX:
        fail(f"expected an integer within 64 bits (|value| < 2**63), got {value!r}")
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            fail(f"expected a finite number, got {value!r}")
    if lo is not None and (value < lo or (value == lo and not lo_incl)):
        fail(f"expected {'>=' if lo_incl else '>'} {lo}{f' and <= {hi}' if hi is not None else ''}, got {value!r}")
    if hi is not None and value > hi:
        fail(f"expected <= {hi}, got {value!r}")
    return value


def _word(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def check_writable(path: str | Path, *, folder: bool = False) -> None:
    """The output `path` (a file, or a folder with `folder`) can be created: its nearest existing ancestor is a
    writable folder, and the path itself is not something else. Writes nothing."""
    p = Path(path)
    if p.exists():
        if folder and not p.is_dir():
            raise InputError("exists and is not a folder", file=str(p))
        if not folder and p.is_dir():
            raise InputError("is a folder, expected a file path", file=str(p))
    q = p if folder and p.exists() else p.parent
    while not q.exists():
        q = q.parent
    if not q.is_dir():
        raise InputError(f"cannot create: {q} is not a folder", file=str(p))
    if not os.access(q, os.W_OK | os.X_OK):
        raise InputError(f"cannot create: no write permission in {q}", file=str(p))
