"""A function's parameter defaults, read from its module's source without importing the module.

Why: the command line shows every option's default in `--help` and must not write it a second time, so it reads
the default from the signature of the function the option feeds. Importing those modules would import torch
(~7 s) for every `arcsolver --help`; parsing their source takes milliseconds. A default may be a literal, a name
bound to one at module level (also through `from arcsolver... import NAME`), or arithmetic on those
(`30 * 60`); anything else (a call, an attribute) is refused with the function and parameter named, so a new
default the reader cannot evaluate fails at import, in every CLI test, not silently.
tests/test_cli_defaults.py checks every value against `inspect.signature` of the imported function.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import operator
from pathlib import Path

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


@functools.lru_cache(maxsize=None)
def _module(name: str) -> ast.Module:
    spec = importlib.util.find_spec(name)  # imports the parent packages only (docstrings)
    if spec is None or not spec.origin:
        raise ImportError(f"no source for {name}")
    return ast.parse(Path(spec.origin).read_text(encoding="utf-8"), filename=spec.origin)


def _evaluate(node: ast.expr, module: str, where: str):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_evaluate(e, module, where) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand, module, where)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left, module, where), _evaluate(node.right, module, where))
    if isinstance(node, ast.Name):
        return _module_constant(module, node.id, where)
    raise ValueError(f"{where}: default {ast.unparse(node)!r} is not a literal the command line can read")


def _module_constant(module: str, name: str, where: str):
    for stmt in _module(module).body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
            return _evaluate(stmt.value, module, where)
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name \
                and stmt.value is not None:
            return _evaluate(stmt.value, module, where)
        if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
            for alias in stmt.names:
                if (alias.asname or alias.name) == name:
                    return _module_constant(stmt.module, alias.name, where)
    raise ValueError(f"{where}: {name} is not a module-level constant of {module}")


@functools.lru_cache(maxsize=None)
def defaults_of(module: str, function: str) -> dict[str, object]:
    """{parameter: default} of the module-level `function` of `module` (dotted name), for the parameters that have
    a default the reader can evaluate; reading one it cannot raises (see `default_of`)."""
    fn = next((s for s in _module(module).body
               if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == function), None)
    if fn is None:
        raise ValueError(f"{module} has no function {function}")
    a = fn.args
    positional = a.posonlyargs + a.args
    pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults))
    pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
    out: dict[str, object] = {}
    for arg, node in pairs:
        try:
            out[arg.arg] = _evaluate(node, module, f"{module}.{function}({arg.arg})")
        except ValueError as e:
            out[arg.arg] = e  # raised only if the command line asks for it
    return out


def default_of(module: str, function: str, parameter: str):
    """The default of one parameter (see the module docstring for what can be read)."""
    found = defaults_of(module, function)
    if parameter not in found:
        raise ValueError(f"{module}.{function} has no parameter {parameter} with a default")
    value = found[parameter]
    if isinstance(value, ValueError):
        raise value
    return value
