"""torch.compile where it pays, and eager when compiling fails.

The `compile` training setting: "auto" (default) compiles on CUDA, where the recursion's many small element-wise
kernels fuse and the reference compiles too, and not on CPU, where minutes of compile time are not won back in
CPU-sized runs; true / false force it either way.

What is compiled: the inner network (`TRMInner`, one supervision step), in place (`Module.compile`), so parameter
names, state dicts and checkpoints are the same as eager. `dynamic=False`: the carry and batch shapes are fixed.

Failure: a missing C++ compiler or Triton, an unsupported GPU, or a dynamo/inductor bug must not end a run that
eager mode would finish. Compile errors surface at the first call (compilation is lazy), so the compiled call is
guarded: a dynamo/inductor exception prints one warning and the module runs eager from then on, that call included.
(Failures raised later in the backward pass, which inductor compiles on first use, are not caught here.)
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from arcsolver.runtime.errors import InputError
from arcsolver.runtime.report import say


def compile_enabled(setting: Any, device: torch.device | str) -> bool:
    """Resolve the `compile` setting ("auto", true or false) for `device`."""
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return torch.device(device).type == "cuda"
    raise InputError(f"must be auto, true or false, got {setting!r}", field="compile")


def _compile_errors() -> tuple[type[BaseException], ...]:
    # Imported here: torch._dynamo takes ~1.0 s to import after torch (measured, 2-core CPU), and only a run that
    # compiles needs it.
    import torch._dynamo.exc as dynamo_exc
    return (dynamo_exc.TorchDynamoException,)


def compile_with_fallback(module: torch.nn.Module, *, backend: str | Callable = "inductor",
                          warn: Callable[[str], None] | None = None) -> torch.nn.Module:
    """Compile `module` in place; on a compile error, warn once and run it eager from then on. Returns `module`."""
    warn = warn or say
    module.compile(dynamic=False, backend=backend)
    compiled = module._compiled_call_impl  # what Module.compile installed; Module.__call__ runs it when set
    errors = _compile_errors()

    def guarded(*args, **kwargs):
        try:
            return compiled(*args, **kwargs)
        except errors as e:
            module._compiled_call_impl = None  # eager from now on
            warn(f"warning: torch.compile failed ({_one_line(e)}); running without compiling")
            return module._call_impl(*args, **kwargs)

    module._compiled_call_impl = guarded
    return module


def _one_line(e: BaseException) -> str:
    """`Type: first line` of the error, or of the compiler error a dynamo wrapper carries."""
    inner = getattr(e, "inner_exception", None) or e.__cause__ or e
    text = next((line.strip() for line in str(inner).splitlines() if line.strip()), "")
    return f"{type(e).__name__}: {type(inner).__name__}: {text[:200]}" if inner is not e else \
        f"{type(e).__name__}: {text[:200]}"
