"""Parsing of human-friendly quantities on the command line: durations (`2h`, `90m`, `45s`, `1h30m`, `300`) and
deadlines (epoch seconds or an ISO 8601 time).

Choices: a duration must be a finite number of seconds > 0; nan, inf, negative, zero and anything unreadable are
refused with one line naming the option (an `InputError`, exit 2), because each of them would otherwise become a
silent billion-step run or an instant stop. "No limit" must be spelled out as `none` and is returned as None. A deadline
is an absolute wall-clock time: epoch seconds (what `date +%s` prints and what the Kaggle runner passes down) or an
ISO time such as `2026-11-30T18:00:00Z`; an ISO time without a zone is read as UTC, so the same string means the
same moment on every machine.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

from arcsolver.runtime.errors import InputError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
NO_LIMIT = "none"  # the one spelling of "no time limit"
_EXAMPLES = "use e.g. 90s, 15m, 2h, 1h30m, or 'none' for no limit"


def check_seconds(value: float, option: str) -> float:
    """`value` as a float if it is a finite number of seconds > 0, else an InputError naming `option`."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{value!r} is not a number of seconds ({_EXAMPLES})", field=option) from None
    if math.isnan(x) or math.isinf(x):
        raise InputError(f"{value!r} is not a finite duration ({_EXAMPLES})", field=option)
    if x <= 0:
        raise InputError(f"{value!r}: a duration must be > 0 ({_EXAMPLES})", field=option)
    return x


def parse_duration(text: str, option: str = "--time-budget") -> float | None:
    """Seconds in `text` (`90`, `90s`, `15m`, `1h30m`, `1.5h`), or None for `none` (no limit)."""
    t = str(text).strip().lower()
    if t == NO_LIMIT:
        return None
    if re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?", t) or t in ("nan", "inf", "+inf", "-inf", "infinity"):
        return check_seconds(t, option)  # plain seconds (and the special floats, refused there)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", t)
    if not parts or "".join(a + b for a, b in parts) != t.replace(" ", ""):
        raise InputError(f"cannot read duration {text!r} ({_EXAMPLES})", field=option)
    return check_seconds(sum(float(a) * _UNITS[b] for a, b in parts), option)


def parse_deadline(text: str, option: str = "--deadline") -> float | None:
    """Epoch seconds of `text` (epoch seconds, or an ISO 8601 time; UTC when no zone is given), None for `none`."""
    t = str(text).strip()
    if t.lower() == NO_LIMIT:
        return None
    try:
        x = float(t)
    except ValueError:
        try:
            when = datetime.fromisoformat(t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t)
        except ValueError:
            raise InputError(f"cannot read deadline {text!r} (epoch seconds such as `date +%s` prints, an ISO "
                             "time such as 2026-11-30T18:00:00Z, or 'none')", field=option) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    if math.isnan(x) or math.isinf(x) or x <= 0:
        raise InputError(f"{text!r} is not a deadline (epoch seconds > 0, an ISO time, or 'none')", field=option)
    return x


def format_seconds(s: float) -> str:
    """`4m00s`, `2h05m`, `37s`: how durations are printed in plans and progress bars."""
    if s is None or math.isinf(s):
        return "no limit"
    s = max(0.0, float(s))
    if s < 60:
        return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"
