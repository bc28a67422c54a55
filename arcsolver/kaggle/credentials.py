"""The Kaggle user a package is named after: `--owner`, else $KAGGLE_USERNAME, else the `username` of a
kaggle.json in the places the kaggle client looks (docs/kaggle-format.md, 'Credentials').

Choices: kaggle.json is read as plain JSON, never through the kaggle module (importing it tries to authenticate,
which needs the network, or exits the process); the API key in it is never read into anything kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from arcsolver.kaggle.metadata import OWNER_RE
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json


def kaggle_config_dirs(env: Mapping[str, str] = os.environ) -> list[Path]:
    """Where the kaggle client looks for kaggle.json / access_token, in its order (docs/kaggle-format.md,
    'Credentials')."""
    dirs = []
    if env.get("KAGGLE_CONFIG_DIR"):
        dirs.append(Path(env["KAGGLE_CONFIG_DIR"]).expanduser())
    home = Path(env.get("HOME") or Path.home())
    dirs.append(home / ".kaggle")
    dirs.append(Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle")
    return dirs


def kaggle_username(env: Mapping[str, str] = os.environ) -> str | None:
    """The Kaggle user name from $KAGGLE_USERNAME or a kaggle.json; the key is never read into anything kept."""
    if env.get("KAGGLE_USERNAME", "").strip():
        return env["KAGGLE_USERNAME"].strip()
    for d in kaggle_config_dirs(env):
        f = d / "kaggle.json"
        if f.is_file():
            try:
                name = read_json(f).get("username")
            except (InputError, AttributeError):
                continue
            if isinstance(name, str) and name.strip():
                return name.strip()
    return None


def resolve_owner(owner: str | None, env: Mapping[str, str] = os.environ) -> str:
    owner = owner or kaggle_username(env)
    if not owner:
        raise InputError("no Kaggle owner: pass --owner, or set KAGGLE_USERNAME, or put a kaggle.json (with "
                         "'username') in ~/.kaggle")
    if not OWNER_RE.match(owner):
        raise InputError(f"owner {owner!r} is not a Kaggle user name (letters, digits, '-', '_')")
    return owner
