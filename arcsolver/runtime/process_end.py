"""How a command's process ends: with the command's exit code, and in a multi-process run without teardown.

Choice. A process of a multi-process run (`accelerate launch`, torch.distributed initialised) leaves through
`os._exit` once its output is flushed, skipping the interpreter's teardown. In that teardown gloo's worker thread
(`pt_gloo_runloop`) can still be releasing the last collective's work object, whose tensors hold Python references;
the decref wants the GIL while the interpreter is finalising, the thread is unwound, and unwinding through the
destructor calls std::terminate: SIGABRT, "terminate called without an active exception", after the run has finished
and written everything. torchrun then reports the whole launch as failed (exit 1) and a script chaining commands
stops. Destroying the process group first does not prevent it (the worker thread can still be alive at
finalisation); skipping the teardown does. The soak that measured both, and the gdb backtrace: runs/LOG.md
(2026-11-30), `benchmarks/two_process_soak.py`. A single process ends normally (`sys.exit`), atexit hooks and all.

What the skip costs: atexit hooks of libraries do not run. Everything arcsolver writes is closed before the command
returns (files written whole and renamed, metrics.jsonl flushed per line, TensorBoard/wandb closed by the run);
stdout, stderr and logging are flushed here.
"""

from __future__ import annotations

import logging
import os
import sys

from arcsolver.runtime.report import say


def end_process(code: object) -> None:
    """Exit with `code`, as `sys.exit(code)` reads it (None: 0, an int, anything else printed to stderr: 1);
    through `os._exit` when torch.distributed is initialised in this process (see the module docstring)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not (dist.is_available() and dist.is_initialized()):
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        say(str(code))
        status = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            pass
    os._exit(status)
