"""Parsing of human-friendly quantities on the command line (durations like `2h`, `90m`, `45s`, `1h30m`)."""

from __future__ import annotations

import re

from .errors import InputError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    t = str(text).strip().lower()
    try:
        return float(t)  # plain seconds
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", t)
    if not parts or "".join(a + b for a, b in parts) != t.replace(" ", ""):
        raise InputError(f"cannot read duration {text!r} (use e.g. 90s, 15m, 2h, 1h30m)", field="--time-budget")
    return sum(float(a) * _UNITS[b] for a, b in parts)
