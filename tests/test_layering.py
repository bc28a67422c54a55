"""Imports go one way: runtime < data < model < inference < training < kaggle < cli (arcsolver/__init__.py).

Every module's imports are read with `ast`, including the ones inside functions (a lazy import is still a
dependency), and each is mapped to the stage it names; a module may import its own stage and the stages below it.
"""
import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "arcsolver"
STAGES = ("runtime", "data", "model", "inference", "training", "kaggle", "cli")
RANK = {s: i for i, s in enumerate(STAGES)}


def stage_of_module(dotted: str) -> str | None:
    """`arcsolver.data.loader` -> "data"; `arcsolver` itself (the version) -> "runtime", the bottom; None when not
    an arcsolver module."""
    parts = dotted.split(".")
    if parts[0] != "arcsolver":
        return None
    if len(parts) == 1:
        return "runtime"
    return parts[1]  # a name that is no stage is reported by the caller


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted module) for every import in `tree`, relative ones resolved against `module`."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[:len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            if base == "arcsolver":  # `from arcsolver import data` names a stage; `__version__` the package
                out += [(node.lineno, f"arcsolver.{a.name}" if a.name in RANK else "arcsolver") for a in node.names]
            elif node.level and not node.module:  # `from . import colors`
                out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, base))
    return out


def violations(path: Path, source: str | None = None) -> list[str]:
    """One line per import of `path` that reaches a stage above its own (or names no stage)."""
    module = module_name(path)
    own = stage_of_module(module)
    if own not in RANK:
        return [f"{path.relative_to(PACKAGE.parent)}: module outside every stage (put it in one of "
                f"{', '.join(STAGES[:-1])}, or it is arcsolver/cli.py)"]
    tree = ast.parse(source if source is not None else path.read_text(), filename=str(path))
    bad = []
    for line, target in imported_modules(tree, module, path.name == "__init__.py"):
        stage = stage_of_module(target)
        if stage is None:
            continue
        where = f"{path.relative_to(PACKAGE.parent)}:{line}"
        if stage not in RANK:
            bad.append(f"{where}: imports {target}, which is in no stage")
        elif RANK[stage] > RANK[own]:
            bad.append(f"{where}: imports {target} ({stage}) from the {own} stage; imports go only down "
                       f"({' < '.join(STAGES)})")
    return bad


def test_no_module_imports_from_a_stage_above_its_own():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 40  # the walk found the package
    problems = [v for p in modules for v in violations(p)]
    assert not problems, "\n".join(problems)


def test_every_module_lives_in_a_stage():
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "cli.py"]
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()) == \
        sorted(STAGES[:-1])


@pytest.mark.parametrize("source, expect", [
    ("def f():\n    from arcsolver.training.train import train\n", "arcsolver/data/loader.py:2: imports "
     "arcsolver.training.train (training) from the data stage"),
    ("import arcsolver.kaggle.package as kp\n", "arcsolver/data/loader.py:1: imports arcsolver.kaggle.package"),
    ("from arcsolver import model\n", "arcsolver/data/loader.py:1: imports arcsolver.model (model)"),
    ("from ..inference import vote\n", "arcsolver/data/loader.py:1: imports arcsolver.inference (inference)"),
    ("from arcsolver.flat import x\n", "arcsolver/data/loader.py:1: imports arcsolver.flat, which is in no stage"),
])
def test_an_upward_import_is_named_with_its_line(source, expect):
    found = violations(PACKAGE / "data" / "loader.py", source)
    assert len(found) == 1 and found[0].startswith(expect), found


def test_same_stage_and_lower_stages_are_allowed():
    source = ("from arcsolver.runtime.errors import InputError\nfrom arcsolver.data import colors\n"
              "from .arc_tasks import Task\nimport numpy\n\ndef f():\n    from arcsolver import __version__\n")
    assert violations(PACKAGE / "data" / "loader.py", source) == []
    assert violations(PACKAGE / "cli.py", "from arcsolver.kaggle.package import package_cmd\n") == []


@functools.lru_cache(maxsize=None)
def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                names |= {e.id for e in ast.walk(target) if isinstance(e, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _module_file(dotted: str) -> Path | None:
    p = PACKAGE.parent.joinpath(*dotted.split("."))
    return p / "__init__.py" if (p / "__init__.py").is_file() else p.with_suffix(".py") if \
        p.with_suffix(".py").is_file() else None


def test_every_arcsolver_import_in_the_repository_resolves():
    """Static (no import runs): benchmarks and scripts have no test importing them, so an import of a module that
    moved (a branch written before the layout) would otherwise only fail when someone runs them."""
    repo = PACKAGE.parent
    files = [p for d in ("arcsolver", "tests", "benchmarks", "tasks", "runs") for p in (repo / d).rglob("*.py")]
    bad = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Import):
                bad += [f"{f.relative_to(repo)}:{node.lineno}: no module {a.name}" for a in node.names
                        if a.name.split(".")[0] == "arcsolver" and _module_file(a.name) is None]
            elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == \
                    "arcsolver":
                target = _module_file(node.module)
                if target is None:
                    bad.append(f"{f.relative_to(repo)}:{node.lineno}: no module {node.module}")
                    continue
                bad += [f"{f.relative_to(repo)}:{node.lineno}: {node.module} has no {a.name}" for a in node.names
                        if _module_file(f"{node.module}.{a.name}") is None and a.name not in
                        _top_level_names(target)]
    assert not bad, "\n".join(bad)
