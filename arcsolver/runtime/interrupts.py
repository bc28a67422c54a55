"""Interrupts: Ctrl-C (SIGINT) and SIGTERM end a command with its finished work on disk and one line saying so.

Two mechanisms:
  * `StopRequests`, in the training loop (`train`, and `finetune` through it), on every process: SIGTERM and the
    first SIGINT are recorded, not raised. The loop finishes the step in progress, the processes agree on the stop
    (`stop_code` values are all-reduced with MAX once per step, one 4-byte collective, so a signal delivered to any
    single rank stops all of them after the same step), one checkpoint is written and the command exits: 130 after
    Ctrl-C (the shell's convention), 0 after SIGTERM (the scheduler's "save and go": Kaggle and SLURM send it before
    killing). A second Ctrl-C aborts at once (KeyboardInterrupt; the CLI prints one line, exit 130). A SIGINT that
    follows the first within `relay_window_s` counts as the same one: `accelerate launch` relays the terminal's
    Ctrl-C to its workers, which already got it from the terminal.
  * `ctrl_c_exits_quietly`, around every CLI command: the first Ctrl-C raises KeyboardInterrupt and is remembered,
    so whatever a library turns it into (numba, compiling, re-raises it as a RuntimeError) the command ends with one
    line and exit 130, no traceback. Outputs are written atomically (jsonio), so nothing is left half-written.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from typing import Callable, Iterator

from arcsolver.runtime.report import say

EXIT_CTRL_C = 130

# Why a loop stops, in increasing priority: processes that disagree adopt the highest (all-reduce MAX).
STOP_REASONS = (None, "steps", "time", "SIGTERM", "SIGINT")

_ctrl_c_seen = False  # set by every Ctrl-C handler of this module; read by ctrl_c_exits_quietly


def stop_code(reason: str | None) -> int:
    return STOP_REASONS.index(reason)


def stop_reason(code: int) -> str | None:
    return STOP_REASONS[int(code)]


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class StopRequests:
    """Records SIGTERM / SIGINT while installed (a context manager; a no-op outside the main thread, where Python
    cannot install handlers). `received` is "SIGINT", "SIGTERM" or None."""

    def __init__(self, relay_window_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.received: str | None = None
        self.relay_window_s, self.clock = relay_window_s, clock
        self._first_sigint: float | None = None
        self._previous: dict[int, object] = {}

    def _on_signal(self, signum: int, frame) -> None:
        global _ctrl_c_seen
        if signum == signal.SIGINT:
            now = self.clock()
            if self._first_sigint is not None and now - self._first_sigint > self.relay_window_s:
                _ctrl_c_seen = True
                raise KeyboardInterrupt  # second Ctrl-C: abort at once
            if self._first_sigint is None:
                self._first_sigint = now
            self.received = "SIGINT"
        elif self.received is None:
            self.received = "SIGTERM"

    def install(self) -> "StopRequests":
        if _in_main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> "StopRequests":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()


@contextlib.contextmanager
def ctrl_c_exits_quietly() -> Iterator[None]:
    """Around a CLI command: Ctrl-C, or any error raised while handling one, becomes one line and exit 130."""
    global _ctrl_c_seen
    if not _in_main_thread() or getattr(signal.getsignal(signal.SIGINT), "_arcsolver_quiet", False):
        yield  # nested group, or not the main thread: the outer one handles it
        return

    def on_sigint(signum, frame):
        global _ctrl_c_seen
        _ctrl_c_seen = True
        raise KeyboardInterrupt

    on_sigint._arcsolver_quiet = True
    previous = signal.signal(signal.SIGINT, on_sigint)
    _ctrl_c_seen = False
    try:
        yield
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt) or (_ctrl_c_seen and isinstance(e, Exception)):
            say("interrupted (Ctrl-C): stopped; no output was left half-written")
            sys.exit(EXIT_CTRL_C)
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
