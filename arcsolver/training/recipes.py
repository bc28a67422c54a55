"""Fine-tuning recipes as files (`arcsolver/training/recipes/*.toml`), like the training presets.

A recipe names `finetune` options (`[finetune]`: num_aug, batch_size, embed_fraction, lr_scale, ema) and training
fields (`[set]`, exactly as `--set key=value`), each with its source in a comment. `finetune --recipe NAME` takes its
values wherever the command line does not give the option itself; an explicit option or `--set` wins. `kaggle
package --recipe NAME` ships the choice in the notebook's command (the files are package data of the wheel).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arcsolver.runtime.errors import InputError
from arcsolver.runtime.settings import check_value
from arcsolver.training.config import FinetuneSettings, read_tables

RECIPES = Path(__file__).resolve().parent / "recipes"
DEFAULT_RECIPE = "cpu-default"

# The finetune options a recipe may set (each checked against its declaration in FinetuneSettings).
RECIPE_OPTIONS = ("num_aug", "batch_size", "embed_fraction", "lr_scale", "ema")


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.toml"))


def load_recipe(name: str) -> tuple[dict[str, Any], list[str]]:
    """(finetune options, `--set` items) of the recipe `name` (a bundled name or a path to a .toml file)."""
    path = Path(name) if Path(name).suffix else RECIPES / f"{name}.toml"
    if not path.is_file():
        raise InputError(f"unknown recipe (available: {', '.join(recipe_names())}, or a path to a .toml file)",
                         file=name, field="--recipe")
    raw = read_tables(path, ("finetune", "set"), "recipe")
    options = {}
    for key, value in raw.get("finetune", {}).items():
        if key not in RECIPE_OPTIONS:
            raise InputError(f"unknown option (recipes set {', '.join(RECIPE_OPTIONS)})", file=str(path),
                             field=f"finetune.{key}")
        options[key] = check_value(FinetuneSettings, key, value, file=str(path), field=f"finetune.{key}")
    sets = [f"{k}={_toml_text(v)}" for k, v in raw.get("set", {}).items()]
    return options, sets


def _toml_text(value: Any) -> str:
    """A value as `--set` reads it back (TOML syntax)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, (int, float)) else f'"{value}"'
